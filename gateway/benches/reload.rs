//! Memory across list reloads, in release mode:
//! `cargo bench -p gateway --bench reload`.
//!
//! The `gatehouse` binary runs as a child process with two door groups, as
//! an estate runs it. The same 100,000-card CSV is imported
//! `GATEHOUSE_BENCH_RELOADS` times (default 20) with `gatehouse cards
//! import`, the way a property manager or a nightly job does it: the CLI
//! writes the database and bumps the change counter, and the running
//! gateway reloads its credential snapshot. Then the same for a
//! 100,000-plate residents' list with `gatehouse plates import`, on a
//! fresh gateway (so that one list's leftovers do not hide the other's).
//! After each import the bench waits for the gateway's "reloaded" log line
//! and reads the gateway's RSS from `/proc`.
//!
//! Reported: RSS idle, after the first load, after every reload, the last
//! against the first, and what the list costs above the idle gateway.
//! `GATEHOUSE_BENCH_CARDS` scales the lists (default 100,000).

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod common;

use anyhow::{Context, bail};
use common::proc_field;

fn env_or(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn config(data_dir: &Path, panel: SocketAddr, ingress: SocketAddr) -> String {
    format!(
        "[gateway]\nestate_id = \"bench\"\ngateway_id = \"gw-bench\"\ndata_dir = \"{}\"\n\
         [panel]\nlisten = \"{panel}\"\n[ingress]\nlisten = \"{ingress}\"\n\
         [[door_groups]]\nid = \"b3\"\n[[door_groups]]\nid = \"basement\"\n",
        data_dir.display()
    )
}

/// 100,000 cards as an estate has them: short Chinese names, houses shared
/// by a few cards, a handful of distinct group sets, some with a validity
/// window.
fn write_cards(path: &Path, n: usize) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(out, "number,holder,house,valid_from,valid_to,groups")?;
    let groups = ["b3", "b3;basement", "", "basement"];
    for i in 0..n {
        let (from, to) = if i % 5 == 0 {
            ("2026-01-01", "2030-12-31")
        } else {
            ("", "")
        };
        writeln!(
            out,
            "{},住户{i},{}-{}-{:04},{from},{to},{}",
            1_000_000_000u64 + i as u64 * 7,
            i % 20 + 1,
            i % 4 + 1,
            (i / 3) % 3000,
            groups[i % groups.len()],
        )?;
    }
    out.flush()?;
    Ok(())
}

/// 100,000 residents' vehicles: `京A00000` … `京A99999` and beyond.
fn write_plates(path: &Path, n: usize) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(out, "plate,house,owner,valid_from,valid_to,lanes")?;
    let letters = ['A', 'B', 'C', 'D', 'E', 'F', 'G', 'H'];
    for i in 0..n {
        writeln!(
            out,
            "京{}{:05},{}-{}-{:04},车主{i},,,",
            letters[(i / 100_000) % letters.len()],
            i % 100_000,
            i % 20 + 1,
            i % 4 + 1,
            (i / 2) % 3000,
        )?;
    }
    out.flush()?;
    Ok(())
}

fn wait_ready(panel: SocketAddr) -> anyhow::Result<()> {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut stream) = std::net::TcpStream::connect(panel) {
            use std::io::Read;
            let request =
                format!("GET /readyz HTTP/1.1\r\nHost: {panel}\r\nConnection: close\r\n\r\n");
            stream.write_all(request.as_bytes())?;
            let mut reply = String::new();
            let _ = stream.read_to_string(&mut reply);
            if reply.starts_with("HTTP/1.1 200") {
                return Ok(());
            }
        }
        if Instant::now() > end {
            bail!("the gateway did not become ready");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Gateway {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Gateway {
    /// Waits for a log line containing `needle`.
    fn wait_for(&self, needle: &str) -> anyhow::Result<()> {
        let end = Instant::now() + Duration::from_secs(120);
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Ok(()),
                Ok(_) => {}
                Err(_) => bail!("no log line {needle:?} from the gateway"),
            }
        }
    }

    fn rss(&self) -> anyhow::Result<u64> {
        proc_field(self.child.id(), "status", "VmRSS:")
    }
}

fn cli(config: &Path, args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env("GATEHOUSE_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()?;
    if !status.success() {
        bail!("gatehouse {args:?}: {status}");
    }
    Ok(())
}

/// Imports `file` `reloads` times with `args`, each time waiting for the
/// gateway's `reloaded` line; returns the RSS after each (KiB).
fn reloads(
    gateway: &Gateway,
    config: &Path,
    args: &[&str],
    reloaded: &str,
    reloads: usize,
) -> anyhow::Result<Vec<u64>> {
    let mut after = Vec::with_capacity(reloads);
    for _ in 0..reloads {
        cli(config, args)?;
        gateway.wait_for(reloaded)?;
        after.push(gateway.rss()?);
    }
    Ok(after)
}

fn report(what: &str, before: u64, after: &[u64]) {
    let first = after[0];
    let last = *after.last().unwrap_or(&first);
    let max = after.iter().copied().max().unwrap_or(first);
    println!("{what}:");
    println!(
        "  gateway RSS idle, before the first load: {:.1} MiB",
        mib(before)
    );
    println!(
        "  RSS after each load: {}",
        after
            .iter()
            .map(|k| format!("{:.1}", mib(*k)))
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "  after the first load: {:.1} MiB (+{:.1} MiB above idle); after load {}: {:.1} MiB ({:+.1} % of the first; largest {:.1} MiB)",
        mib(first),
        mib(first.saturating_sub(before)),
        after.len(),
        mib(last),
        (last as f64 / first as f64 - 1.0) * 100.0,
        mib(max),
    );
}

/// Starts the gateway on a fresh data directory under `dir`.
fn start(dir: &Path) -> anyhow::Result<(Gateway, SocketAddr, std::path::PathBuf)> {
    let panel: SocketAddr = format!("127.0.0.1:{}", testkit::free_port()).parse()?;
    let ingress: SocketAddr = format!("127.0.0.1:{}", testkit::free_port()).parse()?;
    let config_path = dir.join("gateway.toml");
    std::fs::write(&config_path, config(&dir.join("data"), panel, ingress))?;
    let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("run")
        .arg("--config")
        .arg(&config_path)
        .env("GATEHOUSE_LOG", "info")
        .env("GATEHOUSE_LOG_FORMAT", "plain")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().context("stderr")?;
    let (send, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    Ok((Gateway { child, lines }, panel, config_path))
}

/// One list on a fresh gateway: idle RSS, then `count` imports of `file`.
fn measure(what: &str, import: &[&str], reloaded: &str, count: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (gateway, panel, config) = start(dir.path())?;
    let result = (|| {
        wait_ready(panel)?;
        // Let start-up settle (first scrapes, the first list checks).
        std::thread::sleep(Duration::from_secs(3));
        let idle = gateway.rss()?;
        let after = reloads(&gateway, &config, import, reloaded, count)?;
        report(what, idle, &after);
        Ok(())
    })();
    let Gateway { mut child, .. } = gateway;
    let _ = child.kill();
    let _ = child.wait();
    result
}

fn main() -> anyhow::Result<()> {
    let n = env_or("GATEHOUSE_BENCH_CARDS", 100_000);
    let count = env_or("GATEHOUSE_BENCH_RELOADS", 20);
    let files = tempfile::tempdir()?;
    let cards = files.path().join("cards.csv");
    write_cards(&cards, n)?;
    let plates = files.path().join("plates.csv");
    write_plates(&plates, n)?;
    println!(
        "list reloads: {n} cards, then {n} residents' vehicles on a fresh gateway, each list imported {count} times by the CLI while the gateway runs"
    );
    measure(
        &format!("{n} cards"),
        &["cards", "import", cards.to_str().context("path")?],
        "Door credentials changed; reloaded.",
        count,
    )?;
    measure(
        &format!("{n} residents' vehicles"),
        &[
            "plates",
            "import",
            plates.to_str().context("path")?,
            "--list",
            "residents",
        ],
        "Vehicle lists changed outside the gateway; reloaded.",
        count,
    )
}
