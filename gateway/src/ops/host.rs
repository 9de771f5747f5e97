//! The box's own gauges on `/metrics`, read at scrape time: free and total
//! bytes of the data directory's file system (`gatehouse_disk_free_bytes`,
//! `gatehouse_disk_size_bytes`) and whether the clock is synchronised
//! (`gatehouse_clock_synced`). The fleet's dashboard and alert rules
//! (`deploy/grafana`, `deploy/prometheus`) use them.

use std::path::PathBuf;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use crate::metrics::gauge;

/// Scrape-time collector for the data disk and the clock.
#[derive(Debug)]
pub struct HostCollector {
    data_dir: PathBuf,
}

impl HostCollector {
    /// Reports on the file system that holds `data_dir`.
    pub fn new(data_dir: PathBuf) -> HostCollector {
        HostCollector { data_dir }
    }
}

impl Collector for HostCollector {
    // statvfs counts are 32-bit on armhf and 64-bit elsewhere: the casts
    // are needed there.
    #[allow(clippy::unnecessary_cast)]
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        if let Ok(stat) = nix::sys::statvfs::statvfs(&self.data_dir) {
            let block = stat.fragment_size() as u64;
            gauge(
                &mut encoder,
                "disk_free_bytes",
                "Bytes available to the gateway on its data directory's file system",
                (stat.blocks_available() as u64 * block) as i64,
            )?;
            gauge(
                &mut encoder,
                "disk_size_bytes",
                "Size of the data directory's file system",
                (stat.blocks() as u64 * block) as i64,
            )?;
        }
        gauge(
            &mut encoder,
            "clock_synced",
            "1 when the system clock is synchronised (NTP)",
            i64::from(clock_synced()),
        )
    }
}

/// The kernel's answer, or timesyncd's flag where the sandbox hides the
/// kernel's (`ProtectClock=yes`); a scrape never waits on `timedatectl`.
fn clock_synced() -> bool {
    match crate::clock::kernel() {
        crate::clock::Answer::Known(synced) => synced,
        crate::clock::Answer::Unavailable(_) => {
            std::path::Path::new(crate::clock::TIMESYNC_FLAG).exists()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::registry::Registry;

    #[test]
    fn disk_and_clock_gauges_are_exported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut registry = Registry::with_prefix("gatehouse");
        registry.register_collector(Box::new(HostCollector::new(dir.path().to_path_buf())));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        for name in [
            "gatehouse_disk_free_bytes ",
            "gatehouse_disk_size_bytes ",
            "gatehouse_clock_synced ",
        ] {
            assert!(text.contains(name), "{name} missing from\n{text}");
        }
        let free: i64 = text
            .lines()
            .find_map(|l| l.strip_prefix("gatehouse_disk_free_bytes "))
            .and_then(|v| v.parse().ok())
            .expect("free bytes");
        assert!(free > 0);
    }
}
