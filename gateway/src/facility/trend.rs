//! The 24-hour trend of every numeric point: a compact on-disk ring per
//! device, and its server-side SVG.
//!
//! A ring file holds [`SLOTS`] slots of [`SLOT_SECONDS`] each (24 hours);
//! slot `k` is at a fixed offset and holds the slot's number (minutes since
//! the epoch / 2, to tell a current slot from one left from a day before)
//! and one `f32` per point: the mean of the good samples in that slot, NaN
//! when there were none. The file's size is fixed by the table:
//! `16 + SLOTS × (4 + 4 × points)` bytes (288 KB for 50 points), written
//! once per slot with one `pwrite` per device. A header names the table
//! (a hash of its point names); a file made for another table is moved
//! aside (`.old`, replacing the previous one), never mixed in.
//!
//! The trend is a view, not a record (the queue and the platform hold the
//! samples): a power cut may lose the slot being written, nothing else.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use drivers::Quality;
use drivers::points::PointsView;
use tokio_util::sync::CancellationToken;

use super::Facility;

/// Seconds per slot.
pub const SLOT_SECONDS: i64 = 120;
/// Slots in the ring: 24 hours.
pub const SLOTS: usize = 720;
const MAGIC: &[u8; 8] = b"GHTREND1";
const HEADER: u64 = 16;

/// One device's ring file.
#[derive(Debug)]
pub struct Ring {
    file: File,
    points: usize,
}

fn fingerprint(view: &PointsView) -> u64 {
    let mut h = DefaultHasher::new();
    for p in view.table().points() {
        p.name.hash(&mut h);
    }
    h.finish()
}

impl Ring {
    fn record_len(points: usize) -> u64 {
        4 + 4 * points as u64
    }

    /// Opens (or creates) the ring of `view`'s table at `path`.
    pub fn open(path: &Path, view: &PointsView) -> io::Result<Self> {
        let points = view.table().points().len();
        let id = fingerprint(view);
        let mut header = [0u8; HEADER as usize];
        header[..8].copy_from_slice(MAGIC);
        header[8..].copy_from_slice(&id.to_le_bytes());
        let size = HEADER + SLOTS as u64 * Self::record_len(points);
        if let Ok(file) = File::open(path) {
            let mut found = [0u8; HEADER as usize];
            let same = file.read_exact_at(&mut found, 0).is_ok()
                && found == header
                && file.metadata()?.len() == size;
            if !same {
                std::fs::rename(path, path.with_extension("old"))?;
            }
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        if file.metadata()?.len() != size {
            file.set_len(size)?;
            file.write_all_at(&header, 0)?;
            file.sync_all()?;
        }
        Ok(Self { file, points })
    }

    /// Writes slot number `slot` (absolute: seconds since the epoch /
    /// [`SLOT_SECONDS`]) with one value per point.
    pub fn write(&self, slot: i64, values: &[f32]) -> io::Result<()> {
        let mut record = Vec::with_capacity(4 + 4 * self.points);
        record.extend_from_slice(
            &u32::try_from(slot.rem_euclid(1 << 32))
                .unwrap_or(0)
                .to_le_bytes(),
        );
        for i in 0..self.points {
            record.extend_from_slice(&values.get(i).copied().unwrap_or(f32::NAN).to_le_bytes());
        }
        let at = HEADER + slot.rem_euclid(SLOTS as i64) as u64 * Self::record_len(self.points);
        self.file.write_all_at(&record, at)
    }

    /// The last 24 hours of point `point` up to slot `now_slot`, oldest
    /// first: `(slot, value)` for the slots that hold a value.
    pub fn read(&self, point: usize, now_slot: i64) -> io::Result<Vec<(i64, f32)>> {
        let mut out = Vec::new();
        if point >= self.points {
            return Ok(out);
        }
        let len = Self::record_len(self.points);
        let mut stamp = [0u8; 4];
        let mut value = [0u8; 4];
        for slot in now_slot - SLOTS as i64 + 1..=now_slot {
            let at = HEADER + slot.rem_euclid(SLOTS as i64) as u64 * len;
            self.file.read_exact_at(&mut stamp, at)?;
            if i64::from(u32::from_le_bytes(stamp)) != slot.rem_euclid(1 << 32) {
                continue;
            }
            self.file
                .read_exact_at(&mut value, at + 4 + 4 * point as u64)?;
            let v = f32::from_le_bytes(value);
            if v.is_finite() {
                out.push((slot, v));
            }
        }
        Ok(out)
    }
}

/// The slot of Unix time `ms`.
pub fn slot_of(ms: i64) -> i64 {
    ms.div_euclid(1000 * SLOT_SECONDS)
}

/// Where device `id`'s ring lives.
pub fn ring_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.trend"))
}

/// Opens the ring of one device under `dir` and hands it to `facility`
/// (which serves the panel's reads); a device whose ring cannot be opened
/// has no trend, the others keep theirs.
fn open_one(facility: &Facility, dir: &Path, device: &super::PointDevice) {
    let ring = std::fs::create_dir_all(dir)
        .and_then(|()| Ring::open(&ring_path(dir, &device.id), &device.view));
    match ring {
        Ok(ring) => facility.set_ring(&device.id, Some(ring)),
        Err(error) => {
            tracing::warn!(%error, device = %device.id, "Point trend ring unavailable.");
            facility.set_ring(&device.id, None);
        }
    }
}

/// Opens every device's ring under `dir` and hands them to `facility`.
pub fn open(facility: &Facility, dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for device in facility.devices().iter() {
        open_one(facility, dir, device);
    }
    Ok(())
}

/// One device as the recorder follows it: its table's fingerprint and the
/// sums of the slot being gathered, one per point.
struct Followed {
    table: u64,
    sums: Vec<(f64, u32)>,
}

/// Follows the facility's devices as a reload changes them: a ring opened
/// for each new device (or a device whose table changed: its old file is
/// moved aside), and closed for each one gone.
fn follow(facility: &Facility, dir: &Path, followed: &mut HashMap<String, Followed>) {
    let devices = facility.devices();
    followed.retain(|id, _| {
        let stays = devices.iter().any(|d| &d.id == id);
        if !stays {
            facility.set_ring(id, None);
        }
        stays
    });
    for device in devices.iter() {
        let table = fingerprint(&device.view);
        if followed.get(&device.id).is_some_and(|f| f.table == table) {
            continue;
        }
        open_one(facility, dir, device);
        followed.insert(
            device.id.clone(),
            Followed {
                table,
                sums: vec![(0.0, 0); device.view.table().points().len()],
            },
        );
    }
}

/// Samples every device's good numeric values every `every`, and writes
/// each slot's means when the slot ends, until `cancel`. The only writer
/// of the rings; it follows the devices a reload adds, removes and changes.
pub async fn record(facility: Facility, dir: PathBuf, every: Duration, cancel: CancellationToken) {
    let mut followed: HashMap<String, Followed> = HashMap::new();
    let mut slot = slot_of(drivers::contract::now_ms());
    let mut ticker = tokio::time::interval(every);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        follow(&facility, &dir, &mut followed);
        let now_slot = slot_of(drivers::contract::now_ms());
        if now_slot != slot {
            for (id, device) in &mut followed {
                let values: Vec<f32> = device
                    .sums
                    .iter()
                    .map(|(sum, n)| {
                        if *n == 0 {
                            f32::NAN
                        } else {
                            (sum / f64::from(*n)) as f32
                        }
                    })
                    .collect();
                if let Some(ring) = facility.ring(id)
                    && let Err(error) = ring.write(slot, &values)
                {
                    tracing::debug!(%error, "trend slot not written");
                }
                device.sums.iter_mut().for_each(|s| *s = (0.0, 0));
            }
            slot = now_slot;
        }
        for d in facility.devices().iter() {
            let Some(device) = followed.get_mut(&d.id) else {
                continue;
            };
            let status = d.view.read();
            for (s, acc) in status.iter().zip(device.sums.iter_mut()) {
                if s.quality == Quality::Good
                    && let Some(v) = s.value.as_ref().and_then(drivers::Reading::as_f64)
                {
                    acc.0 += v;
                    acc.1 += 1;
                }
            }
        }
    }
}

/// Renders a trend as an SVG line chart (`width` × `height` px) over the
/// 24 hours ending at `now_slot`, with the min and max labelled and `title`
/// as its accessible name. Pure.
pub fn svg(
    samples: &[(i64, f32)],
    now_slot: i64,
    unit: &str,
    title: &str,
    (width, height): (u32, u32),
) -> String {
    let (w, h) = (f64::from(width), f64::from(height));
    let pad = 28.0;
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="{}"><rect width="100%" height="100%" fill="none"/>"#,
        escape(title)
    );
    if samples.is_empty() {
        out.push_str(&format!(
            r#"<text x="{}" y="{}" text-anchor="middle" font-size="12">—</text></svg>"#,
            w / 2.0,
            h / 2.0
        ));
        return out;
    }
    let (lo, hi) = samples
        .iter()
        .fold((f32::MAX, f32::MIN), |(l, hh), (_, v)| {
            (l.min(*v), hh.max(*v))
        });
    let (lo, hi) = (f64::from(lo), f64::from(hi));
    let span = if hi > lo { hi - lo } else { 1.0 };
    let first = now_slot - SLOTS as i64 + 1;
    let x = |slot: i64| pad + (slot - first) as f64 / (SLOTS as f64 - 1.0) * (w - pad - 4.0);
    let y = |v: f64| 4.0 + (1.0 - (v - lo) / span) * (h - 20.0);
    let mut path = String::new();
    let mut previous: Option<i64> = None;
    for (slot, v) in samples {
        // A gap of more than two slots breaks the line.
        let joined = previous.is_some_and(|p| slot - p <= 2);
        path.push_str(&format!(
            "{}{:.1},{:.1}",
            if joined { " L" } else { " M" },
            x(*slot),
            y(f64::from(*v))
        ));
        previous = Some(*slot);
    }
    let unit = escape(unit);
    out.push_str(&format!(
        r#"<path d="{}" fill="none" stroke="currentColor" stroke-width="1.5"/><text x="2" y="12" font-size="10">{:.3} {unit}</text><text x="2" y="{:.0}" font-size="10">{:.3} {unit}</text><text x="{pad}" y="{:.0}" font-size="10">-24h</text><text x="{:.0}" y="{:.0}" font-size="10" text-anchor="end">now</text></svg>"#,
        path.trim_start(),
        hi,
        h - 18.0,
        lo,
        h - 2.0,
        w - 4.0,
        h - 2.0,
    ));
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use drivers::points::{DataType, Point, PointTable, PollGroup, RegisterKind};
    use std::sync::Arc;

    fn view(names: &[&str]) -> PointsView {
        let points = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                Point::new(
                    n,
                    RegisterKind::Holding,
                    u16::try_from(i).expect("small"),
                    DataType::U16,
                )
            })
            .collect();
        let groups = vec![PollGroup {
            name: "g".into(),
            interval: Duration::from_secs(1),
        }];
        PointsView::new(Arc::new(PointTable::new(points, groups).expect("valid")))
    }

    #[test]
    fn ring_keeps_24_hours_at_a_fixed_size_and_forgets_older_slots() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = ring_path(dir.path(), "pumps");
        let v = view(&["a", "b"]);
        let ring = Ring::open(&path, &v).expect("opens");
        let size = std::fs::metadata(&path).expect("exists").len();
        assert_eq!(size, 16 + 720 * 12);
        let now = 1_000_000;
        for slot in now - 800..=now {
            ring.write(slot, &[slot as f32, f32::NAN]).expect("writes");
        }
        assert_eq!(std::fs::metadata(&path).expect("exists").len(), size);
        let a = ring.read(0, now).expect("reads");
        assert_eq!(a.len(), SLOTS);
        assert_eq!(a.first().map(|s| s.0), Some(now - 719));
        assert_eq!(a.last(), Some(&(now, now as f32)));
        assert!(
            ring.read(1, now).expect("reads").is_empty(),
            "NaN = no value"
        );
        // A day later every slot is stale.
        assert!(ring.read(0, now + 720).expect("reads").is_empty());
        drop(ring);
        // Reopened with the same table: kept. With another table: moved aside.
        let ring = Ring::open(&path, &v).expect("reopens");
        assert_eq!(ring.read(0, now).expect("reads").len(), SLOTS);
        let _other = Ring::open(&path, &view(&["a", "c"])).expect("opens");
        assert!(path.with_extension("old").exists());
    }

    #[test]
    fn svg_draws_a_path_breaks_gaps_and_escapes_the_unit() {
        let samples = vec![(100, 0.3), (101, 0.4), (110, 0.35)];
        let s = svg(&samples, 110, "<m>", "出口压力 \"24h\"", (300, 80));
        assert!(s.starts_with("<svg"), "{s}");
        assert_eq!(
            s.matches(" M").count() + usize::from(s.contains("d=\"M")),
            2,
            "{s}"
        );
        assert!(s.contains("&lt;m&gt;"));
        assert!(
            s.contains(r#"aria-label="出口压力 &quot;24h&quot;""#),
            "{s}"
        );
        assert!(!s.contains("<m>"));
        assert!(svg(&[], 110, "m", "t", (300, 80)).contains("—"));
    }
}
