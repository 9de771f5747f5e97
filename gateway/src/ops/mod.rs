//! Operations on a gateway's box, for installers and property companies:
//! the data directory's lock (one gateway per data directory; restore
//! refuses while it is held), online backups and restores of the database
//! ([`backup`]), the installer's health report ([`doctor`]), the box's
//! gauges on `/metrics` ([`host`]: data disk, clock) and the systemd
//! notification protocol ([`notify`]: readiness, status, watchdog).

pub mod backup;
pub mod doctor;
pub mod host;
pub mod lock;
pub mod notify;
