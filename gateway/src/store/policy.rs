//! The capacity policy: pure functions that decide, from the queue's byte
//! accounting alone, whether an event is stored, stored after shedding old
//! telemetry, or refused, and which [`Pressure`] the queue is under. No IO
//! here, so every rule is unit-tested directly.

use drivers::Class;

use super::Pressure;

/// The byte bounds of the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Telemetry must fit below this; critical events shed telemetry to stay below it.
    pub(crate) max_bytes: u64,
    /// Extra room above `max_bytes` that only access, alarm and audit may use.
    pub(crate) critical_reserve_bytes: u64,
}

/// The queue's byte accounting, by class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    /// Encoded bytes queued, per [`Class::index`].
    pub(crate) class_bytes: [u64; 4],
}

impl Usage {
    /// All queued bytes.
    pub(crate) fn total(&self) -> u64 {
        self.class_bytes.iter().sum()
    }

    /// Queued telemetry bytes (the only sheddable class).
    pub(crate) fn sheddable(&self) -> u64 {
        Class::ALL
            .into_iter()
            .filter(|c| c.is_sheddable())
            .map(|c| self.class_bytes[c.index()])
            .sum()
    }
}

/// What to do with one incoming event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Store it; nothing else changes.
    Accept,
    /// Delete the oldest telemetry until at least `bytes` are freed (or no
    /// telemetry is left), then store it.
    ShedThenAccept {
        /// Bytes to free.
        bytes: u64,
    },
    /// Refuse it (counted and reported as [`super::StoreError::Full`]).
    Refuse,
}

/// Decides what happens to an event of `class` and encoded `size` given the
/// current `usage`.
///
/// - Anything that fits below `max_bytes` is accepted.
/// - Telemetry above `max_bytes` displaces the oldest telemetry; when even all
///   queued telemetry would not make room, the new telemetry is refused.
/// - Access, alarm and audit displace the oldest telemetry too (it is shed
///   first), and may then use `critical_reserve_bytes` above `max_bytes`;
///   beyond the reserve they are refused, never dropped silently.
/// - A refusal never sheds anything.
pub(crate) fn decide(limits: Limits, usage: &Usage, class: Class, size: u64) -> Decision {
    let total = usage.total();
    let after = total.saturating_add(size);
    if after <= limits.max_bytes {
        return Decision::Accept;
    }
    let need = after - limits.max_bytes;
    let sheddable = usage.sheddable();
    let ceiling = if class.is_sheddable() {
        limits.max_bytes
    } else {
        limits
            .max_bytes
            .saturating_add(limits.critical_reserve_bytes)
    };
    // Shedding frees at least this much (possibly more: whole rows go).
    let freed = need.min(sheddable);
    if after - freed > ceiling {
        Decision::Refuse
    } else if freed == 0 {
        Decision::Accept
    } else {
        Decision::ShedThenAccept { bytes: need }
    }
}

/// The pressure after a change, with hysteresis: shedding telemetry starts
/// `SheddingTelemetry`, which lasts until the queue drains below three
/// quarters of `max_bytes`; anything above `max_bytes` is `OverCapacity`.
pub(crate) fn next_pressure(
    limits: Limits,
    total: u64,
    shed_now: bool,
    prev: Pressure,
) -> Pressure {
    if total > limits.max_bytes {
        Pressure::OverCapacity
    } else if shed_now || (prev != Pressure::Normal && total > low_water(limits)) {
        Pressure::SheddingTelemetry
    } else {
        Pressure::Normal
    }
}

fn low_water(limits: Limits) -> u64 {
    limits.max_bytes / 4 * 3
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_bytes: 1000,
        critical_reserve_bytes: 200,
    };

    fn usage(telemetry: u64, access: u64) -> Usage {
        let mut u = Usage::default();
        u.class_bytes[Class::Telemetry.index()] = telemetry;
        u.class_bytes[Class::Access.index()] = access;
        u
    }

    #[test]
    fn anything_that_fits_is_accepted() {
        for class in Class::ALL {
            assert_eq!(
                decide(LIMITS, &usage(400, 500), class, 100),
                Decision::Accept
            );
        }
    }

    #[test]
    fn telemetry_displaces_oldest_telemetry_when_full() {
        assert_eq!(
            decide(LIMITS, &usage(500, 450), Class::Telemetry, 100),
            Decision::ShedThenAccept { bytes: 50 }
        );
    }

    #[test]
    fn telemetry_is_refused_when_no_telemetry_can_make_room() {
        assert_eq!(
            decide(LIMITS, &usage(0, 950), Class::Telemetry, 100),
            Decision::Refuse
        );
        // Some telemetry, but not enough to make room: refuse, shed nothing.
        assert_eq!(
            decide(LIMITS, &usage(30, 950), Class::Telemetry, 100),
            Decision::Refuse
        );
        // Larger than the whole queue.
        assert_eq!(
            decide(LIMITS, &usage(0, 0), Class::Telemetry, 1001),
            Decision::Refuse
        );
    }

    #[test]
    fn critical_events_shed_telemetry_first_then_use_the_reserve() {
        assert_eq!(
            decide(LIMITS, &usage(100, 900), Class::Alarm, 50),
            Decision::ShedThenAccept { bytes: 50 }
        );
        // Not enough telemetry: shed it all, the rest goes into the reserve.
        assert_eq!(
            decide(LIMITS, &usage(30, 970), Class::Access, 150),
            Decision::ShedThenAccept { bytes: 150 }
        );
        // No telemetry at all: straight into the reserve.
        assert_eq!(
            decide(LIMITS, &usage(0, 1000), Class::Audit, 200),
            Decision::Accept
        );
    }

    #[test]
    fn critical_events_are_refused_beyond_the_reserve() {
        assert_eq!(
            decide(LIMITS, &usage(0, 1100), Class::Alarm, 101),
            Decision::Refuse
        );
        assert_eq!(
            decide(LIMITS, &usage(0, 1100), Class::Alarm, 100),
            Decision::Accept
        );
        // Even shedding all telemetry would not be enough: refuse without shedding.
        assert_eq!(
            decide(LIMITS, &usage(50, 1100), Class::Access, 200),
            Decision::Refuse
        );
    }

    #[test]
    fn pressure_follows_the_bytes_with_hysteresis() {
        use Pressure::*;
        assert_eq!(next_pressure(LIMITS, 900, false, Normal), Normal);
        assert_eq!(next_pressure(LIMITS, 1000, true, Normal), SheddingTelemetry);
        assert_eq!(
            next_pressure(LIMITS, 900, false, SheddingTelemetry),
            SheddingTelemetry
        );
        assert_eq!(next_pressure(LIMITS, 750, false, SheddingTelemetry), Normal);
        assert_eq!(next_pressure(LIMITS, 1001, false, Normal), OverCapacity);
        assert_eq!(
            next_pressure(LIMITS, 900, false, OverCapacity),
            SheddingTelemetry
        );
        assert_eq!(next_pressure(LIMITS, 100, false, OverCapacity), Normal);
    }
}
