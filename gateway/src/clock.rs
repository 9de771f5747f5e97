//! Whether the gateway's wall clock is synchronised (NTP/chrony/timesyncd).
//!
//! Every envelope records this next to its timestamp, so the platform can
//! tell a guard-room box that booted without network (and whose clock may be
//! hours off) from one whose times can be trusted.
//!
//! The kernel knows best (`adjtimex(2)` with `modes = 0`, a pure query), but
//! the service unit's `ProtectClock=yes` forbids that system call outright
//! (`EPERM`). So the answer comes from the first source that works:
//!
//! 1. `adjtimex`: `TIME_ERROR` means unsynchronised;
//! 2. systemd-timesyncd's flag file `/run/systemd/timesync/synchronized`
//!    (created once it has synchronised the clock since boot): present
//!    means synchronised;
//! 3. `timedatectl show -p NTPSynchronized --value` (asks systemd-timedated
//!    over D-Bus, outside the sandbox; works for chrony and ntpd too).
//!
//! When none answers, the clock counts as unsynchronised and the failure is
//! logged (once per change of cause, not every check).

use std::path::PathBuf;
use std::time::Duration;

/// Where systemd-timesyncd marks a synchronised clock.
pub const TIMESYNC_FLAG: &str = "/run/systemd/timesync/synchronized";

/// How long `timedatectl` may take.
const TIMEDATECTL_TIMEOUT: Duration = Duration::from_secs(2);

/// What one source said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The source knows: synchronised or not.
    Known(bool),
    /// The source could not be asked (the reason).
    Unavailable(String),
}

/// The clock check with its sources; keeps what it last logged.
#[derive(Debug, Clone)]
pub struct ClockCheck {
    flag: PathBuf,
    timedatectl: Option<Vec<String>>,
    last_problem: Option<String>,
}

impl Default for ClockCheck {
    fn default() -> Self {
        Self {
            flag: PathBuf::from(TIMESYNC_FLAG),
            timedatectl: Some(
                ["timedatectl", "show", "-p", "NTPSynchronized", "--value"]
                    .map(String::from)
                    .to_vec(),
            ),
            last_problem: None,
        }
    }
}

impl ClockCheck {
    /// A check that reads the timesyncd flag at `flag` and asks the daemon
    /// with the command line `timedatectl` (`None`: never), which prints
    /// `yes` or `no`.
    pub fn with_sources(flag: PathBuf, timedatectl: Option<Vec<String>>) -> Self {
        Self {
            flag,
            timedatectl,
            last_problem: None,
        }
    }

    /// Whether the clock is synchronised, from the first source that answers.
    pub async fn synchronised(&mut self) -> bool {
        let kernel = kernel();
        let Answer::Unavailable(kernel_error) = kernel else {
            self.clear();
            return kernel == Answer::Known(true);
        };
        if self.flag.exists() {
            self.clear();
            return true;
        }
        let daemon = match &self.timedatectl {
            Some(command) => timedatectl(command).await,
            None => Answer::Unavailable("not asked".into()),
        };
        match daemon {
            Answer::Known(synced) => {
                self.clear();
                synced
            }
            Answer::Unavailable(daemon_error) => {
                let problem = format!("adjtimex: {kernel_error}; timedatectl: {daemon_error}");
                if self.last_problem.as_deref() != Some(problem.as_str()) {
                    tracing::warn!(
                        problem,
                        flag = %self.flag.display(),
                        "The clock's synchronisation cannot be read; events are marked clock_synced=false."
                    );
                    self.last_problem = Some(problem);
                }
                false
            }
        }
    }

    fn clear(&mut self) {
        if self.last_problem.take().is_some() {
            tracing::info!("The clock's synchronisation can be read again.");
        }
    }
}

/// Asks the kernel (`adjtimex` with `modes = 0`: a read-only query).
#[allow(unsafe_code)]
pub fn kernel() -> Answer {
    // SAFETY: `timex` is plain data; with `modes = 0` adjtimex only reads the
    // kernel's clock state into the struct we own.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    let state = unsafe { libc::adjtimex(&mut tx) };
    if state < 0 {
        return Answer::Unavailable(std::io::Error::last_os_error().to_string());
    }
    Answer::Known(state != libc::TIME_ERROR)
}

/// Asks systemd-timedated through `timedatectl` (the command line).
async fn timedatectl(command: &[String]) -> Answer {
    let Some((program, args)) = command.split_first() else {
        return Answer::Unavailable("no command".into());
    };
    let run = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(TIMEDATECTL_TIMEOUT, run).await {
        Err(_) => Answer::Unavailable("timed out".into()),
        Ok(Err(error)) => Answer::Unavailable(error.to_string()),
        Ok(Ok(output)) if !output.status.success() => {
            Answer::Unavailable(format!("exited with {}", output.status))
        }
        Ok(Ok(output)) => match String::from_utf8_lossy(&output.stdout).trim() {
            "yes" => Answer::Known(true),
            "no" => Answer::Known(false),
            other => Answer::Unavailable(format!("unexpected answer {other:?}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Makes `adjtimex` (and `clock_adjtime`, which glibc uses for it) fail
    /// with EPERM on the calling thread, as the unit's
    /// `ProtectClock=yes` seccomp filter does (a seccomp filter installed
    /// without TSYNC binds only this thread: the test's own).
    #[allow(unsafe_code)]
    fn forbid_adjtimex_on_this_thread() {
        use libc::{sock_filter, sock_fprog};
        const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
        const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
        const RET_K: u16 = 0x06; // BPF_RET | BPF_K
        let stmt = |code, k| sock_filter {
            code,
            jt: 0,
            jf: 0,
            k,
        };
        let filter = [
            // seccomp_data.nr is at offset 0.
            stmt(LD_W_ABS, 0),
            sock_filter {
                code: JEQ_K,
                jt: 1,
                jf: 0,
                k: libc::SYS_adjtimex as u32,
            },
            sock_filter {
                code: JEQ_K,
                jt: 0,
                jf: 1,
                k: libc::SYS_clock_adjtime as u32,
            },
            stmt(RET_K, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
            stmt(RET_K, libc::SECCOMP_RET_ALLOW),
        ];
        let program = sock_fprog {
            len: filter.len() as u16,
            filter: filter.as_ptr().cast_mut(),
        };
        // SAFETY: plain prctl calls with a valid, live filter program.
        unsafe {
            assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
            assert_eq!(
                libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &raw const program,
                ),
                0,
                "seccomp: {}",
                std::io::Error::last_os_error()
            );
        }
    }

    #[test]
    fn the_kernel_answer_agrees_with_its_status_bits() {
        #[allow(unsafe_code)]
        let (state, status) = {
            // SAFETY: read-only query as above.
            let mut tx: libc::timex = unsafe { std::mem::zeroed() };
            let state = unsafe { libc::adjtimex(&mut tx) };
            (state, tx.status)
        };
        let unsync = state == libc::TIME_ERROR || status & libc::STA_UNSYNC != 0;
        assert_eq!(kernel(), Answer::Known(!unsync));
    }

    #[test]
    fn under_protect_clock_the_timesyncd_flag_and_timedatectl_answer() {
        forbid_adjtimex_on_this_thread();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        assert!(
            matches!(kernel(), Answer::Unavailable(ref e) if e.contains("not permitted")),
            "{:?}",
            kernel()
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let flag = dir.path().join("synchronized");

        // No flag, no timedatectl: unsynchronised (and logged).
        let mut check = ClockCheck::with_sources(flag.clone(), None);
        assert!(!runtime.block_on(check.synchronised()));
        assert!(
            check
                .last_problem
                .as_deref()
                .is_some_and(|p| p.contains("adjtimex"))
        );

        // timesyncd's flag: synchronised, although the kernel cannot be asked.
        std::fs::write(&flag, b"").expect("flag");
        assert!(runtime.block_on(check.synchronised()));
        assert_eq!(check.last_problem, None);
        std::fs::remove_file(&flag).expect("unflag");

        // timedatectl's answer (a stand-in printing what it prints).
        for (answer, expected) in [("yes", true), ("no", false)] {
            let command = ["sh", "-c", &format!("echo {answer}")].map(String::from);
            let mut check = ClockCheck::with_sources(flag.clone(), Some(command.to_vec()));
            assert_eq!(runtime.block_on(check.synchronised()), expected, "{answer}");
        }
        // A daemon that cannot be asked counts as unsynchronised.
        let failing = ["sh", "-c", "exit 1"].map(String::from).to_vec();
        let mut check = ClockCheck::with_sources(flag, Some(failing));
        assert!(!runtime.block_on(check.synchronised()));
        assert!(
            check
                .last_problem
                .as_deref()
                .is_some_and(|p| p.contains("timedatectl"))
        );
    }
}
