//! The test kit every test crate shares (drivers, gateway, e2e): free
//! loopback ports, the rule for missing external peers, and the Python
//! virtual environment that holds the third-party peers (pymodbus and
//! friends) listed in `tests/peers/requirements.txt`.
//!
//! It depends on nothing in the workspace, so every crate may use it as a
//! dev-dependency. [`disk`] mounts a small filesystem for a test to fill.

pub mod disk;

use std::fs::{self, OpenOptions};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A loopback port that was free a moment ago, for peers that cannot bind
/// port 0 and report what they got (mosquitto, nats-server, pymodbus).
/// Prefer binding port 0 yourself wherever the peer allows it.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding a loopback port")
}

/// [`free_port`] as a loopback address.
pub fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// Whether tests must fail when an external peer is missing (CI sets
/// `GATEHOUSE_REQUIRE_PEERS=1`).
pub fn peers_required() -> bool {
    std::env::var("GATEHOUSE_REQUIRE_PEERS").is_ok_and(|v| v == "1")
}

/// Reports a missing peer: a panic under `GATEHOUSE_REQUIRE_PEERS=1` (the
/// test fails, saying what is missing), otherwise a clear note on stderr
/// and `false` (the caller returns early: skipped).
pub fn require_peer(what: &str, why_missing: &str) -> bool {
    assert!(
        !peers_required(),
        "required peer missing: {what}: {why_missing}"
    );
    eprintln!(
        "SKIPPED (peer missing): {what}: {why_missing}. Set GATEHOUSE_REQUIRE_PEERS=1 to make this fail."
    );
    false
}

/// The workspace root (where `Cargo.toml` and `tests/peers/` are).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// The cargo target directory (`CARGO_TARGET_DIR` or `target/`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from)
}

/// A Python interpreter that can import every one of `modules`, or why
/// there is none.
///
/// Order: `GATEHOUSE_PYTHON` if set; else the kit's virtual environment
/// (`GATEHOUSE_VENV`, default `$CARGO_TARGET_DIR/peers-venv`), created on
/// first use from `tests/peers/requirements.txt` with `python3 -m venv`
/// and pip (PyPI). Creation is serialised across test processes with a
/// lock file, so parallel tests build it once.
pub fn python_with(modules: &[&str]) -> Result<PathBuf, String> {
    if let Some(python) = std::env::var_os("GATEHOUSE_PYTHON") {
        let python = PathBuf::from(python);
        return imports(&python, modules).map(|()| python);
    }
    let venv = std::env::var_os("GATEHOUSE_VENV")
        .map_or_else(|| target_dir().join("peers-venv"), PathBuf::from);
    let python = venv.join("bin/python");
    if imports(&python, modules).is_ok() {
        return Ok(python);
    }
    fs::create_dir_all(venv.parent().unwrap_or(Path::new("/")))
        .map_err(|e| format!("creating {}: {e}", venv.display()))?;
    let lock_path = venv.with_extension("lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| format!("opening {}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("locking {}: {e}", lock_path.display()))?;
    // Another process may have built it while we waited for the lock.
    if imports(&python, modules).is_ok() {
        return Ok(python);
    }
    if !python.exists() {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    let requirements = workspace_root().join("tests/peers/requirements.txt");
    run(Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
        ])
        .arg(&requirements))?;
    imports(&python, modules).map(|()| python)
}

/// Like [`python_with`], but reports a missing interpreter through
/// [`require_peer`]: `None` means "skip".
pub fn python_peer(what: &str, modules: &[&str]) -> Option<PathBuf> {
    match python_with(modules) {
        Ok(python) => Some(python),
        Err(why) => {
            require_peer(what, &why);
            None
        }
    }
}

/// A file inside the Node packages of `tests/peers/package.json` (e.g.
/// `axe-core/axe.min.js`), or why there is none.
///
/// The packages live in `GATEHOUSE_NODE_PEERS` (default
/// `$CARGO_TARGET_DIR/peers-node`), installed on first use with `npm
/// install` from the npm registry; serialised across test processes with a
/// lock file, like [`python_with`].
pub fn node_file(relative: &str) -> Result<PathBuf, String> {
    let dir = std::env::var_os("GATEHOUSE_NODE_PEERS")
        .map_or_else(|| target_dir().join("peers-node"), PathBuf::from);
    let file = dir.join("node_modules").join(relative);
    if file.is_file() {
        return Ok(file);
    }
    let npm = program("npm")?;
    fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let lock_path = dir.with_extension("lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| format!("opening {}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("locking {}: {e}", lock_path.display()))?;
    if file.is_file() {
        return Ok(file);
    }
    fs::copy(
        workspace_root().join("tests/peers/package.json"),
        dir.join("package.json"),
    )
    .map_err(|e| format!("copying package.json: {e}"))?;
    run(Command::new(npm)
        .args(["install", "--no-audit", "--no-fund", "--silent", "--prefix"])
        .arg(&dir))?;
    if file.is_file() {
        Ok(file)
    } else {
        Err(format!("{} is missing after npm install", file.display()))
    }
}

/// A program on `PATH` (or at an absolute path), or why it is missing.
pub fn program(name: &str) -> Result<PathBuf, String> {
    let candidate = Path::new(name);
    if candidate.is_absolute() {
        return if candidate.exists() {
            Ok(candidate.to_path_buf())
        } else {
            Err(format!("{name} does not exist"))
        };
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        .ok_or_else(|| format!("{name} is not on PATH (CI installs it with apt)"))
}

fn imports(python: &Path, modules: &[&str]) -> Result<(), String> {
    if !python.exists() {
        return Err(format!("{} does not exist", python.display()));
    }
    let code = modules
        .iter()
        .map(|m| format!("import {m}"))
        .collect::<Vec<_>>()
        .join("; ");
    let status = Command::new(python)
        .args(["-c", &code])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("running {}: {e}", python.display()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{} cannot `{code}`", python.display()))
    }
}

fn run(command: &mut Command) -> Result<(), String> {
    let output = command
        .output()
        .map_err(|e| format!("running {command:?}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_bindable() {
        let port = free_port();
        assert_ne!(port, 0);
        assert!(TcpListener::bind(("127.0.0.1", port)).is_ok());
    }

    #[test]
    fn a_missing_program_says_so() {
        let err = program("gatehouse-no-such-program").expect_err("no such program");
        assert!(err.contains("not on PATH"), "{err}");
        assert!(program("sh").is_ok());
    }

    #[test]
    fn python_peers_are_found_or_reported() {
        if let Some(python) = python_peer("pymodbus (tests/peers)", &["pymodbus"]) {
            assert!(imports(&python, &["pymodbus"]).is_ok());
        }
    }
}
