//! Event acknowledgements while big lists are written (a plain main, not a
//! timed test): `cargo bench -p gateway --bench contention`.
//!
//! Plate reads are appended at 50/s (each producer waits for its own
//! durable acknowledgement, as a camera does) while, on the blocking pool,
//! a 100,000-card CSV import and then a 100,000-plate platform sync of the
//! residents' list run through the store's one writer in bounded chunks.
//! Prints the acknowledgement latency p50 / p99 / max during each, and how
//! long each list write took.

use std::time::{Duration, Instant};

use drivers::Class;
use gateway::doors::credentials::CredentialStore;
use gateway::lists::plates::{PlateRegistry, SyncRows};
use gateway::rules::vehicle::Resident;
use gateway::store::{Store, StoreConfig};
use gateway::vocab::import::ImportMode;
use gateway::wire::{Envelope, SCHEMA_VERSION};
use uuid::Uuid;

const ROWS: usize = 100_000;

fn plate_read(i: u64) -> Envelope {
    Envelope {
        schema: SCHEMA_VERSION,
        id: Uuid::now_v7(),
        seq: 0,
        time_ms: drivers::contract::now_ms(),
        clock_synced: true,
        device_time_ms: None,
        estate_id: "estate-0042".into(),
        gateway_id: "gw-0042-a".into(),
        device_id: "cam-south-in".into(),
        kind: "plate_read".into(),
        class: Class::Access,
        body: serde_json::json!({"plate": format!("浙A{:05}", i % 100_000), "decision": "allow"}),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len().max(1) - 1) as f64 * p).round() as usize;
    sorted.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// Appends plate reads at 50/s until `work` finishes; returns the latencies
/// and how long `work` took.
async fn during<F>(store: &Store, work: F) -> anyhow::Result<(Vec<Duration>, Duration)>
where
    F: FnOnce() -> anyhow::Result<()> + Send + 'static,
{
    let start = Instant::now();
    let job = tokio::task::spawn_blocking(work);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut pending = Vec::new();
    let mut i = 0;
    while !job.is_finished() {
        tick.tick().await;
        let store = store.clone();
        i += 1;
        pending.push(tokio::spawn(async move {
            let t0 = Instant::now();
            store.append(plate_read(i)).await.map(|_| t0.elapsed())
        }));
    }
    let took = start.elapsed();
    job.await??;
    let mut latencies = Vec::new();
    for p in pending {
        latencies.push(p.await??);
    }
    latencies.sort_unstable();
    Ok((latencies, took))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (store, _) = Store::open(StoreConfig::new(dir.path().join("gatehouse.db")))?;
    let cards = std::sync::Arc::new(CredentialStore::open(&store)?);
    let plates = std::sync::Arc::new(PlateRegistry::open(&store)?);

    let mut csv = String::from("number,holder,house,valid_from,valid_to,groups\n");
    for n in 0..ROWS {
        csv.push_str(&format!(
            "{},住户{n},{}-1-{}01,,,\n",
            10_000_000 + n,
            n % 30,
            n % 9
        ));
    }
    let import = {
        let cards = cards.clone();
        move || {
            let report =
                cards.import_cards_csv(csv.as_bytes(), ImportMode::AllOrNothing, |_| {})?;
            anyhow::ensure!(report.written == ROWS, "{report:?}");
            Ok(())
        }
    };
    let residents: Vec<Resident> = (0..ROWS)
        .map(|n| Resident {
            plate: format!("浙A{n:05}"),
            house: format!("{}-2-{}01", n % 30, n % 9),
            owner: format!("业主{n}"),
            valid_from: None,
            valid_to: None,
            lanes: Vec::new(),
        })
        .collect();
    let sync = {
        let plates = plates.clone();
        move || {
            plates.sync_apply("residents", None, 1, SyncRows::Residents(residents), &[])?;
            anyhow::ensure!(plates.snapshot().residents.len() == ROWS, "residents");
            Ok(())
        }
    };

    println!(
        "| plate-read acknowledgements at 50/s during | p50 | p99 | max | the list write took |"
    );
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (what, work) in [
        (
            "a 100,000-card CSV import",
            Box::new(import) as Box<dyn FnOnce() -> anyhow::Result<()> + Send>,
        ),
        ("a 100,000-plate platform sync", Box::new(sync)),
    ] {
        let (lat, took) = during(&store, work).await?;
        println!(
            "| {what} ({} reads) | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} s |",
            lat.len(),
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
            percentile(&lat, 1.0),
            took.as_secs_f64()
        );
    }
    store.close().await?;
    Ok(())
}
