//! Whether the gateway's wall clock is synchronised (NTP/chrony/timesyncd),
//! as the kernel reports it through `adjtimex(2)`.
//!
//! Every envelope records this next to its timestamp, so the platform can
//! tell a guard-room box that booted without network (and whose clock may be
//! hours off) from one whose times can be trusted.

/// Asks the kernel whether the clock is synchronised.
///
/// Returns `false` when the kernel says `TIME_ERROR` (unsynchronised) or the
/// call fails.
#[allow(unsafe_code)]
pub fn is_synchronised() -> bool {
    // SAFETY: `timex` is plain data; with `modes = 0` adjtimex only reads the
    // kernel's clock state into the struct we own.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    let state = unsafe { libc::adjtimex(&mut tx) };
    state >= 0 && state != libc::TIME_ERROR
}

#[cfg(test)]
mod tests {
    #[test]
    fn clock_state_agrees_with_the_kernel_status_bits() {
        // Whatever the machine's state, the answer must match STA_UNSYNC.
        #[allow(unsafe_code)]
        let (state, status) = {
            // SAFETY: read-only query as above.
            let mut tx: libc::timex = unsafe { std::mem::zeroed() };
            let state = unsafe { libc::adjtimex(&mut tx) };
            (state, tx.status)
        };
        let unsync = state == libc::TIME_ERROR || status & libc::STA_UNSYNC != 0;
        assert_eq!(super::is_synchronised(), !unsync && state >= 0);
    }
}
