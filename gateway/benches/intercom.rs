//! Intercom (对讲) figures, in release mode: `cargo bench -p gateway --bench
//! intercom`. The `gatehouse` binary runs as a child process with simulated
//! Hikvision door stations (`HikStationSim`: digest auth, alert stream,
//! call status, remote unlock) served by this program, and this program is
//! the panel: it logs in as a guard and keeps the ringing banner's stream
//! (`GET /intercom/ringing`, server-sent events) open, as every panel page
//! does.
//!
//! 1. Call → banner: a visitor rings at the station (the alert stream's
//!    doorbell event); the time until the call is in the banner's stream.
//!    `GATEHOUSE_BENCH_CALLS` calls (default 200), each missed (hung up)
//!    before the next.
//! 2. Unlock → station: while each call rings, the guard's unlock (`POST
//!    /intercom/{id}/unlock` with the CSRF token, a one-time key and a
//!    reason, as the banner's button sends it); the time from sending the
//!    POST until the station has the `RemoteControl/door` request.
//! 3. 50 stations: the gateway's CPU (share of one core) over
//!    `GATEHOUSE_BENCH_SECONDS` (default 60) and its RSS, against the same
//!    gateway with no station; a station rings every 2 s meanwhile.

use std::path::Path;
use std::time::{Duration, Instant};

mod common;

use anyhow::{Context, bail};
use drivers::sim::hik_station::HikStationSim;

use common::{cpu_time, proc_field};

const PASSWORD: &str = "bench guard password";

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn station(id: &str, url: &str, password_file: &Path) -> String {
    format!(
        "[[intercom]]\nid = \"{id}\"\nname = \"{id}\"\ntype = \"hik-intercom\"\nurl = \"{url}\"\n\
         user = \"admin\"\npassword = {{ file = \"{}\" }}\ncall_poll = \"100ms\"\ntimeout = \"2s\"\n",
        password_file.display()
    )
}

struct Gateway {
    child: std::process::Child,
    panel: String,
    _dir: tempfile::TempDir,
}

impl Gateway {
    /// The gateway with `stations` (`[[intercom]]` tables) and a guard
    /// `bench`.
    async fn start(stations: &str) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let panel = format!("127.0.0.1:{}", testkit::free_port());
        let text = format!(
            "[gateway]\nestate_id = \"bench\"\ngateway_id = \"gw-bench\"\ndata_dir = \"{}\"\n\
             [panel]\nlisten = \"{panel}\"\n{stations}",
            dir.path().join("data").display()
        );
        let config = dir.path().join("gateway.toml");
        std::fs::write(&config, text)?;
        let mut add = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .args(["user", "add", "--role", "guard", "bench", "--config"])
            .arg(&config)
            .env("GATEHOUSE_LOG", "error")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()?;
        {
            use std::io::Write as _;
            let mut input = add.stdin.take().context("stdin")?;
            writeln!(input, "{PASSWORD}")?;
        }
        if !add.wait()?.success() {
            bail!("gatehouse user add failed");
        }
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .arg("run")
            .arg("--config")
            .arg(&config)
            .env("GATEHOUSE_LOG", "error")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .spawn()?;
        let gateway = Self {
            child,
            panel: format!("http://{panel}"),
            _dir: dir,
        };
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(reply) = reqwest::get(format!("{}/readyz", gateway.panel)).await
                && reply.status().is_success()
            {
                return Ok(gateway);
            }
            if Instant::now() > end {
                bail!("the gateway did not become ready");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A logged-in guard's client and the session's CSRF token.
    async fn login(&self) -> anyhow::Result<(reqwest::Client, String)> {
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let page = client
            .get(format!("{}/login", self.panel))
            .send()
            .await?
            .text()
            .await?;
        let pre = value_after(&page, "name=\"csrf\" value=\"").context("login form token")?;
        let reply = client
            .post(format!("{}/login", self.panel))
            .form(&[("name", "bench"), ("password", PASSWORD), ("csrf", &pre)])
            .send()
            .await?;
        if !reply.status().is_redirection() {
            bail!("login refused: {}", reply.status());
        }
        let page = client
            .get(format!("{}/intercom", self.panel))
            .send()
            .await?
            .text()
            .await?;
        let csrf = value_after(&page, "name=\"csrf-token\" content=\"").context("CSRF token")?;
        Ok((client, csrf))
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn value_after(text: &str, marker: &str) -> Option<String> {
    let rest = &text[text.find(marker)? + marker.len()..];
    Some(rest[..rest.find('"')?].to_owned())
}

/// Follows the banner's stream: each `ring` event's calls (their units),
/// with the instant it was read.
async fn banner(
    client: &reqwest::Client,
    panel: &str,
) -> anyhow::Result<tokio::sync::mpsc::UnboundedReceiver<(Instant, Vec<String>)>> {
    let mut reply = client
        .get(format!("{panel}/intercom/ringing"))
        .send()
        .await?;
    if !reply.status().is_success() {
        bail!("banner stream: {}", reply.status());
    }
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut buffer = String::new();
        while let Ok(Some(chunk)) = reply.chunk().await {
            let at = Instant::now();
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let event: String = buffer.drain(..end + 2).collect();
                let Some(data) = event.lines().find_map(|l| l.strip_prefix("data:")) else {
                    continue;
                };
                let Ok(calls) = serde_json::from_str::<Vec<serde_json::Value>>(data.trim()) else {
                    continue;
                };
                let units = calls
                    .iter()
                    .filter_map(|c| c["unit"].as_str().map(str::to_owned))
                    .collect();
                if tx.send((at, units)).is_err() {
                    return;
                }
            }
        }
    });
    Ok(rx)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let calls: usize = std::env::var("GATEHOUSE_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let seconds: u64 = std::env::var("GATEHOUSE_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let work = tempfile::tempdir()?;
    let password = work.path().join("station.pw");
    std::fs::write(&password, "station-pw\n")?;
    latency(calls, &password).await?;
    fifty(Duration::from_secs(seconds), &password).await
}

async fn latency(calls: usize, password: &Path) -> anyhow::Result<()> {
    let sim = HikStationSim::start("admin", "station-pw").await?;
    let gateway = Gateway::start(&station("b3-door", &sim.base(), password)).await?;
    let (client, csrf) = gateway.login().await?;
    let mut ring = banner(&client, &gateway.panel).await?;
    let wait = Duration::from_secs(10);
    let end = Instant::now() + wait;
    while sim.streams() == 0 {
        if Instant::now() > end {
            bail!("the driver did not open the alert stream");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut unlocks = sim.unlocks();
    let mut to_banner = Vec::new();
    let mut to_station = Vec::new();
    for i in 0..calls {
        let unit = format!("3-1-{i}");
        while ring.try_recv().is_ok() {}
        let t0 = Instant::now();
        sim.ring(&unit);
        loop {
            let (at, units) = tokio::time::timeout(wait, ring.recv())
                .await
                .context("the call in the banner")?
                .context("banner stream")?;
            if units.contains(&unit) {
                to_banner.push((at - t0).as_secs_f64() * 1000.0);
                break;
            }
        }
        unlocks.mark_unchanged();
        let key = format!("bench-{i}-{}", std::process::id());
        let t0 = Instant::now();
        let post = client
            .post(format!("{}/intercom/b3-door/unlock", gateway.panel))
            .form(&[
                ("csrf", csrf.as_str()),
                ("key", key.as_str()),
                ("reason", "bench: visitor"),
                ("next", "/intercom"),
            ])
            .send();
        let (reply, changed) = tokio::join!(post, async {
            let changed = tokio::time::timeout(wait, unlocks.changed()).await;
            (Instant::now(), changed)
        });
        let (at, changed) = changed;
        changed.context("the unlock at the station")??;
        if !reply?.status().is_redirection() {
            bail!("the unlock was refused");
        }
        to_station.push((at - t0).as_secs_f64() * 1000.0);
        sim.hang_up();
        loop {
            let (_, units) = tokio::time::timeout(wait, ring.recv())
                .await
                .context("the missed call off the banner")?
                .context("banner stream")?;
            if !units.contains(&unit) {
                break;
            }
        }
    }
    for (what, mut v) in [
        ("call at the station → in the banner's stream", to_banner),
        ("unlock POST sent → request at the station", to_station),
    ] {
        v.sort_by(f64::total_cmp);
        println!(
            "{what} ({} calls): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            v.len(),
            percentile(&v, 0.5),
            percentile(&v, 0.99),
            v.last().copied().unwrap_or(0.0)
        );
    }
    Ok(())
}

/// CPU share of one core and RSS (KiB) of the gateway over `window`, while
/// `sims` ring one after the other every 2 s.
async fn cost(
    gateway: &Gateway,
    sims: &[HikStationSim],
    window: Duration,
) -> anyhow::Result<(f64, u64)> {
    // Settle: every station's stream open, then a little more.
    let end = Instant::now() + Duration::from_secs(60);
    while sims.iter().any(|s| s.streams() == 0) {
        if Instant::now() > end {
            bail!("not every station's stream opened");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let pid = gateway.pid();
    let (cpu0, t0) = (cpu_time(pid)?, Instant::now());
    let mut next = 0;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut ringing: Option<usize> = None;
    while t0.elapsed() < window {
        tick.tick().await;
        if let Some(i) = ringing.take() {
            sims[i].hang_up();
        } else if !sims.is_empty() {
            sims[next % sims.len()].ring(&format!("5-1-{next}"));
            ringing = Some(next % sims.len());
            next += 1;
        }
    }
    let cpu = (cpu_time(pid)? - cpu0).as_secs_f64() / t0.elapsed().as_secs_f64() * 100.0;
    let rss = proc_field(pid, "status", "VmRSS:")?;
    Ok((cpu, rss))
}

async fn fifty(window: Duration, password: &Path) -> anyhow::Result<()> {
    const STATIONS: usize = 50;
    let none = Gateway::start("").await?;
    let (cpu0, rss0) = cost(&none, &[], window).await?;
    drop(none);
    let mut sims = Vec::new();
    let mut tables = String::new();
    for i in 0..STATIONS {
        let sim = HikStationSim::start("admin", "station-pw").await?;
        tables.push_str(&station(&format!("door-{i}"), &sim.base(), password));
        sims.push(sim);
    }
    let gateway = Gateway::start(&tables).await?;
    let (cpu, rss) = cost(&gateway, &sims, window).await?;
    println!(
        "{STATIONS} door stations, a call every 2 s, {} s:",
        window.as_secs()
    );
    println!(
        "  gateway CPU: {cpu:.1} % of a core (no station: {cpu0:.1} %; added {:.1} %)",
        cpu - cpu0
    );
    println!(
        "  RSS: {:.1} MiB (no station: {:.1} MiB; added {:.1} MiB)",
        rss as f64 / 1024.0,
        rss0 as f64 / 1024.0,
        (rss as f64 - rss0 as f64) / 1024.0
    );
    Ok(())
}
