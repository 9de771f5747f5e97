//! `/traffic` (车流): vehicles in and out per hour over the last 24 hours
//! (from the journal's `vehicle_entered` / `vehicle_exited` records) as a
//! bar chart drawn on the server (SVG, no script), and the vehicles
//! currently inside.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::Chrome;
use crate::auth::Permission;
use crate::store::JournalQuery;
use crate::web::panel::error::render;
use crate::web::panel::guard::Viewer;
use crate::web::panel::view::local_time;
use crate::web::panel::{Panel, PanelError};

const HOUR_MS: i64 = 3600 * 1000;
const HOURS: usize = 24;
/// Most records read per kind.
const MAX_RECORDS: usize = 50_000;

/// One bar of the chart, in SVG coordinates.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Bar {
    pub(crate) x: i64,
    pub(crate) y: i64,
    pub(crate) height: i64,
    pub(crate) count: u32,
    pub(crate) class: &'static str,
}

/// One hour's label.
#[derive(Debug, Clone)]
pub(crate) struct Tick {
    pub(crate) x: i64,
    pub(crate) label: String,
}

/// The chart's geometry.
pub(crate) const WIDTH: i64 = 720;
pub(crate) const HEIGHT: i64 = 200;
const SLOT: i64 = WIDTH / HOURS as i64;
const BAR: i64 = SLOT / 2 - 2;

/// Counts per hour slot: `times` within `[start, start + 24 h)`.
pub(crate) fn per_hour(start_ms: i64, times: &[i64]) -> [u32; HOURS] {
    let mut counts = [0u32; HOURS];
    for t in times {
        let slot = (t - start_ms).div_euclid(HOUR_MS);
        if let Ok(slot) = usize::try_from(slot)
            && let Some(c) = counts.get_mut(slot)
        {
            *c += 1;
        }
    }
    counts
}

/// The bars of both series, scaled to the largest count.
pub(crate) fn bars(ins: &[u32; HOURS], outs: &[u32; HOURS]) -> (Vec<Bar>, u32) {
    let max = ins
        .iter()
        .chain(outs.iter())
        .copied()
        .max()
        .unwrap_or(0)
        .max(1);
    let mut bars = Vec::new();
    for (i, (a, b)) in ins.iter().zip(outs.iter()).enumerate() {
        let x0 = i as i64 * SLOT + 1;
        for (offset, count, class) in [(0, *a, "in"), (BAR + 1, *b, "out")] {
            let height = i64::from(count) * (HEIGHT - 10) / i64::from(max);
            bars.push(Bar {
                x: x0 + offset,
                y: HEIGHT - height,
                height,
                count,
                class,
            });
        }
    }
    (bars, max)
}

/// A vehicle inside.
#[derive(Debug, Clone)]
pub(crate) struct InsideRow {
    pub(crate) plate: String,
    pub(crate) lane: String,
    pub(crate) since: String,
}

#[derive(Template)]
#[template(path = "traffic.html")]
struct TrafficPage {
    c: Chrome,
    width: i64,
    height: i64,
    bar_width: i64,
    bars: Vec<Bar>,
    ticks: Vec<Tick>,
    total_in: u32,
    total_out: u32,
    inside: Vec<InsideRow>,
}

/// `GET /traffic`.
pub(in crate::web::panel) async fn page(
    State(panel): State<Panel>,
    viewer: Viewer,
) -> Result<Response, PanelError> {
    viewer.require(Permission::View)?;
    let core = panel.core()?;
    let now = drivers::contract::now_ms();
    // Whole hours: the last slot is the current hour.
    let start = (now.div_euclid(HOUR_MS) + 1 - HOURS as i64) * HOUR_MS;
    let mut series = Vec::new();
    for kind in ["vehicle_entered", "vehicle_exited"] {
        let times: Vec<i64> = core
            .journal
            .query(JournalQuery {
                kind: Some(kind.into()),
                from_ms: Some(start),
                limit: MAX_RECORDS,
                ..JournalQuery::default()
            })
            .await?
            .iter()
            .map(|e| e.time_ms)
            .collect();
        series.push(per_hour(start, &times));
    }
    let (ins, outs) = (series[0], series[1]);
    let (bars, _max) = bars(&ins, &outs);
    let ticks = (0..HOURS)
        .step_by(3)
        .map(|i| Tick {
            x: i as i64 * SLOT + 1,
            label: local_time(start + i as i64 * HOUR_MS)
                .get(11..16)
                .unwrap_or("")
                .to_owned(),
        })
        .collect();
    let mut inside: Vec<InsideRow> = core
        .plates
        .inside()
        .into_iter()
        .map(|(plate, lane, since)| InsideRow {
            plate,
            lane: core.board.lane(&lane).map_or(lane, |l| l.name),
            since: local_time(since),
        })
        .collect();
    inside.sort_by(|a, b| b.since.cmp(&a.since));
    let page = TrafficPage {
        c: Chrome::new(&viewer, "traffic"),
        width: WIDTH,
        height: HEIGHT,
        bar_width: BAR,
        bars,
        ticks,
        total_in: ins.iter().sum(),
        total_out: outs.iter().sum(),
        inside,
    };
    Ok(render(StatusCode::OK, &page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traffic_counts_per_hour_and_scales_bars_to_the_busiest_hour() {
        let start = 1_000 * HOUR_MS;
        let times = [
            start - 1,
            start,
            start + 10,
            start + 3 * HOUR_MS + 5,
            start + 24 * HOUR_MS,
        ];
        let counts = per_hour(start, &times);
        assert_eq!(counts[0], 2);
        assert_eq!(counts[3], 1);
        assert_eq!(counts.iter().sum::<u32>(), 3, "outside the window ignored");
        let (bars, max) = bars(&counts, &[0; HOURS]);
        assert_eq!(max, 2);
        assert_eq!(bars.len(), 2 * HOURS);
        assert_eq!(bars[0].height, HEIGHT - 10);
        assert_eq!(bars[6].height, (HEIGHT - 10) / 2);
        assert_eq!(bars[1].height, 0);
    }
}
