//! Surveillance-camera figures, in release mode: `cargo bench -p gateway
//! --bench cameras`. The simulated ONVIF cameras (`OnvifSim`), plate
//! cameras and barrier modules run on their own runtime (their own
//! thread), as other machines on the estate's network would.
//!
//! 1. Latency, the whole gateway in-process. Two entry lanes, one watched
//!    by a camera, the other not; residents' reads are pushed one at a time,
//!    alternating between the lanes (`GATEHOUSE_BENCH_READS`, default 200):
//!    - push → OPEN at the barrier module, on the watched and on the
//!      unwatched lane (the snapshot must add nothing to it);
//!    - push → the read's `camera_snapshot` recorded (fetched over ONVIF
//!      HTTP, saved, its event on disk).
//!
//!    Then the camera's tamper is raised and cleared `GATEHOUSE_BENCH_EVENTS`
//!    times (default 200): the camera's notification → the `camera_alarm`
//!    on disk (the event feed publishes only what the store holds).
//! 2. Size: the `gatehouse` binary as a child process, first with no
//!    camera, then with 64 (`GATEHOUSE_BENCH_CAMERAS`), each subscribed to
//!    its camera's events (UsernameToken), something moving in front of
//!    every camera every 20 s: CPU (share of one core) over
//!    `GATEHOUSE_BENCH_SECONDS` (default 60) and RSS, with and without.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

mod common;

use anyhow::bail;
use drivers::PlateColour;
use drivers::lpr::Vendor;
use drivers::sim::barrier::{BarrierSim, BarrierSimConfig, SimArm, SimCommand, SimHandle};
use drivers::sim::camera::CameraSim;
use drivers::sim::onvif::{OnvifSim, SimAuth, SimCameraConfig};
use gateway::rules::vehicle::Resident;

use common::{cpu_time, env_number, proc_field};

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn summary(samples: &mut [Duration]) -> String {
    samples.sort();
    let at = |p: f64| {
        let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
        millis(samples.get(i).copied().unwrap_or_default())
    };
    format!(
        "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} samples)",
        at(0.50),
        at(0.99),
        at(1.0),
        samples.len()
    )
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "waited 30 s for {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn lanes_config(
    data_dir: &std::path::Path,
    barriers: [SocketAddr; 2],
    camera: &str,
    secret: &std::path::Path,
) -> String {
    let mut text = format!(
        "[gateway]\nestate_id = \"bench\"\ngateway_id = \"gw-bench\"\ndata_dir = \"{}\"\n\
         [panel]\nlisten = \"127.0.0.1:0\"\n[ingress]\nlisten = \"127.0.0.1:0\"\n\
         [[devices]]\nid = \"cctv-0\"\ntype = \"onvif-camera\"\naddress = \"{camera}\"\n\
         username = \"gatehouse\"\npassword = {{ file = \"{}\" }}\n\
         lanes = [\"watched\"]\n",
        data_dir.display(),
        secret.display()
    );
    for (lane, addr) in ["watched", "unwatched"].iter().zip(barriers) {
        let _ = write!(
            text,
            "[[devices]]\nid = \"cam-{lane}\"\ntype = \"lpr-camera\"\nvendor = \"vzenith\"\nlane = \"{lane}\"\n\
             [[devices]]\nid = \"barrier-{lane}\"\ntype = \"modbus-barrier\"\naddress = \"{addr}\"\n\
             poll_interval = \"20ms\"\nauto_close_delay = \"1ms\"\nunused_close_after = \"0s\"\n\
             [[lanes]]\nid = \"{lane}\"\ndirection = \"entry\"\nbarrier = \"barrier-{lane}\"\n\
             repeat_window = \"1ms\"\n"
        );
    }
    text
}

fn token() -> SimAuth {
    SimAuth::UsernameToken {
        username: "gatehouse".into(),
        password: "bench-cam-pass".into(),
    }
}

/// Pushes one resident's read at `lane` and returns (push → OPEN, the
/// moment of the push); the car then passes and the arm closes.
async fn one_read(
    camera: &CameraSim,
    sim: &SimHandle,
    board: &gateway::lanes::LaneBoard,
    lane: &str,
    plate: &str,
) -> (Duration, Instant) {
    wait_until("the arm to close", || sim.arm() == SimArm::Closed).await;
    let before = sim.command_times().len();
    let mut commands = sim.commands_watch();
    let t0 = Instant::now();
    let reply = camera
        .push_plate(plate, PlateColour::Blue, 95)
        .await
        .expect("push");
    assert_eq!(reply.status, 200);
    commands
        .wait_for(|count| *count > before)
        .await
        .expect("the simulator is running");
    let (command, at) = sim.command_times()[before];
    assert_eq!(command, SimCommand::Open, "a resident's read opens");
    sim.vehicle_arrives();
    wait_until("the gateway to see the car on the loop", || {
        board.lane(lane).and_then(|l| l.loop_occupied) == Some(true)
    })
    .await;
    sim.vehicle_leaves();
    (at.saturating_duration_since(t0), t0)
}

/// When the next `kind` event (an alarm: raised or cleared as `active`)
/// reached the feed.
async fn next(
    arrivals: &mut tokio::sync::mpsc::UnboundedReceiver<(String, bool, Instant)>,
    kind: &str,
    active: bool,
) -> Instant {
    loop {
        let (k, a, at) = arrivals.recv().await.expect("the feed");
        if k == kind && (kind != "camera_alarm" || a == active) {
            return at;
        }
    }
}

async fn latency() {
    let reads: usize = env_number("GATEHOUSE_BENCH_READS", 200);
    let alarms: usize = env_number("GATEHOUSE_BENCH_EVENTS", 200);
    let outside = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("outside")
        .enable_all()
        .build()
        .expect("outside runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut barriers = Vec::new();
    for _ in 0..2 {
        barriers.push(
            outside
                .spawn(BarrierSim::spawn_tcp(BarrierSimConfig {
                    rise: Duration::ZERO,
                    fall: Duration::ZERO,
                    ..BarrierSimConfig::default()
                }))
                .await
                .expect("outside runtime")
                .expect("barrier simulator"),
        );
    }
    let cctv = outside
        .spawn(OnvifSim::start(SimCameraConfig {
            auth: token(),
            ..SimCameraConfig::default()
        }))
        .await
        .expect("outside runtime")
        .expect("camera simulator");
    let secret = dir.path().join("cctv-password");
    std::fs::write(&secret, "bench-cam-pass\n").expect("secret file");
    let text = lanes_config(
        &dir.path().join("data"),
        [barriers[0].0, barriers[1].0],
        &cctv.device_url(),
        &secret,
    );
    let config = gateway::config::parse(&text, "bench.toml").expect("bench config");
    let running = gateway::app::start(config).await.expect("gateway starts");
    let plates = running.plates.clone();
    tokio::task::spawn_blocking(move || {
        for i in 0..reads {
            plates
                .upsert_resident(&Resident {
                    plate: format!("苏A{i:05}"),
                    house: "3-2-1201".into(),
                    owner: String::new(),
                    valid_from: None,
                    valid_to: None,
                    lanes: vec![],
                })
                .expect("resident");
        }
    })
    .await
    .expect("lists");
    let ctl = cctv.control().clone();
    wait_until("the camera to subscribe", || ctl.stats().pulls > 0).await;
    let ingress = running.ingress_addr.expect("device listener");
    let base = format!("http://{ingress}");

    // When each camera event reached the feed (it is on disk by then).
    let (tx, mut arrivals) = tokio::sync::mpsc::unbounded_channel();
    let mut feed = running.feed.subscribe();
    tokio::spawn(async move {
        loop {
            match feed.recv().await {
                Ok(event) if event.kind.starts_with("camera_") => {
                    let active = event.body["active"].as_bool().unwrap_or(false);
                    if tx
                        .send((event.kind.clone(), active, Instant::now()))
                        .is_err()
                    {
                        return;
                    }
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    let mut open_watched = Vec::new();
    let mut open_unwatched = Vec::new();
    let mut snapshot = Vec::new();
    for i in 0..reads {
        let lane = if i % 2 == 0 { "watched" } else { "unwatched" };
        let camera =
            CameraSim::new(&base, &format!("cam-{lane}"), Vendor::Vzenith).expect("camera");
        let sim = barriers[i % 2].1.clone();
        let board = running.board.clone();
        let plate = format!("苏A{i:05}");
        let lane_id = lane.to_owned();
        let (open, t0) = outside
            .spawn(async move { one_read(&camera, &sim, &board, &lane_id, &plate).await })
            .await
            .expect("read");
        if lane == "watched" {
            open_watched.push(open);
            snapshot.push(next(&mut arrivals, "camera_snapshot", false).await - t0);
        } else {
            open_unwatched.push(open);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut alarm = Vec::new();
    for _ in 0..alarms {
        for raised in [true, false] {
            let ctl = ctl.clone();
            let t0 = outside
                .spawn(async move {
                    let t0 = Instant::now();
                    ctl.tamper(raised);
                    t0
                })
                .await
                .expect("tamper");
            let at = next(&mut arrivals, "camera_alarm", raised).await;
            if raised {
                alarm.push(at - t0);
            }
        }
    }
    println!("## 1. Latency (in-process gateway; cameras and modules on their own thread)");
    println!(
        "push → OPEN, lane watched by a camera: {}",
        summary(&mut open_watched)
    );
    println!(
        "push → OPEN, lane without a camera:   {}",
        summary(&mut open_unwatched)
    );
    println!(
        "push → the read's camera_snapshot on disk: {}",
        summary(&mut snapshot)
    );
    println!(
        "tamper at the camera → camera_alarm on disk: {}",
        summary(&mut alarm)
    );
    assert!(running.shutdown().await.is_clean());
    outside.shutdown_background();
}

/// A child `gatehouse run` with `cameras` (their device URLs).
struct Child {
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Child {
    async fn start(cameras: &[String]) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let panel: SocketAddr = format!("127.0.0.1:{}", testkit::free_port()).parse()?;
        let mut text = format!(
            "[gateway]\nestate_id = \"bench\"\ngateway_id = \"gw-bench\"\ndata_dir = \"{}\"\n\
             [panel]\nlisten = \"{panel}\"\n[ingress]\nlisten = \"127.0.0.1:0\"\n",
            dir.path().join("data").display()
        );
        for (i, url) in cameras.iter().enumerate() {
            let _ = write!(
                text,
                "[[devices]]\nid = \"cctv-{i}\"\ntype = \"onvif-camera\"\naddress = \"{url}\"\n\
                 username = \"gatehouse\"\npassword = {{ env = \"BENCH_CCTV_PASSWORD\" }}\n"
            );
        }
        let config = dir.path().join("gateway.toml");
        std::fs::write(&config, text)?;
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .arg("run")
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "error")
            .env("BENCH_CCTV_PASSWORD", "bench-cam-pass")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .spawn()?;
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(reply) = reqwest::get(format!("http://{panel}/readyz")).await
                && reply.status().is_success()
            {
                break;
            }
            if Instant::now() > end {
                bail!("the gateway did not become ready");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(Self { child, _dir: dir })
    }

    /// (CPU share of one core over `window`, RSS KiB at its end).
    async fn measure(&self, window: Duration) -> anyhow::Result<(f64, u64)> {
        let pid = self.child.id();
        let cpu0 = cpu_time(pid)?;
        let t0 = Instant::now();
        tokio::time::sleep(window).await;
        let cpu = cpu_time(pid)? - cpu0;
        let share = cpu.as_secs_f64() / t0.elapsed().as_secs_f64();
        Ok((share, proc_field(pid, "status", "VmRSS:")?))
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn size() -> anyhow::Result<()> {
    let count: usize = env_number("GATEHOUSE_BENCH_CAMERAS", 64);
    let window = Duration::from_secs(env_number("GATEHOUSE_BENCH_SECONDS", 60));
    let outside = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("outside")
        .enable_all()
        .build()?;
    let mut sims = Vec::new();
    for _ in 0..count {
        sims.push(
            outside
                .spawn(OnvifSim::start(SimCameraConfig {
                    auth: token(),
                    ..SimCameraConfig::default()
                }))
                .await??,
        );
    }
    let urls: Vec<String> = sims.iter().map(OnvifSim::device_url).collect();

    let bare = Child::start(&[]).await?;
    // Settled: the start's allocations are done.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (bare_cpu, bare_rss) = bare.measure(window.min(Duration::from_secs(20))).await?;
    drop(bare);

    let watched = Child::start(&urls).await?;
    wait_until("every camera to subscribe", || {
        sims.iter().all(|s| s.control().stats().created > 0)
    })
    .await;
    // Something moves in front of every camera every 20 s, staggered: a
    // motion start, and its end after the driver's 10 s hold.
    let controls: Vec<_> = sims.iter().map(|s| s.control().clone()).collect();
    let motion = outside.spawn(async move {
        let step = Duration::from_secs(20) / u32::try_from(controls.len().max(1)).unwrap_or(1);
        loop {
            for ctl in &controls {
                ctl.motion(true);
                ctl.motion(false);
                tokio::time::sleep(step).await;
            }
        }
    });
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (cpu, rss) = watched.measure(window).await?;
    motion.abort();
    println!("## 2. Size (`gatehouse run` as a child, {window:?} windows)");
    println!(
        "no camera: CPU {:.2} % of a core, RSS {:.1} MiB",
        bare_cpu * 100.0,
        bare_rss as f64 / 1024.0
    );
    println!(
        "{count} cameras subscribed, motion at each every 20 s: CPU {:.2} % of a core, RSS {:.1} MiB (+{:.1} MiB)",
        cpu * 100.0,
        rss as f64 / 1024.0,
        (rss as f64 - bare_rss as f64) / 1024.0
    );
    drop(watched);
    outside.shutdown_background();
    Ok(())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    latency().await;
    size().await
}
