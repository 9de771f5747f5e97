//! Live-first scheduling (pure): which events to send next, and what a
//! batch's outcomes mean for the store and the cursors.
//!
//! The queue is read one class at a time in priority order (access, alarm,
//! audit, telemetry) through the `(class, seq)` index, strictly in `seq`
//! order within a class. Each class has a cursor: the highest `seq` already
//! handed to the sink. A new access or alarm event is therefore sent in the
//! very next batch, however deep a telemetry (or audit) backlog is; a
//! backlog of the *same* class drains oldest-first before it, which is what
//! keeps each device's events in order within a class.
//!
//! After a batch, [`settle`] splits the outcomes: delivered events are acked,
//! rejected ones go to the dead-letter table (and are acked), and at the
//! first event to retry the class's cursor is set back so that it and
//! everything after it is read again (what was delivered after it has been
//! acked by then, so only the unconfirmed events come back).

use std::time::Duration;

use drivers::Class;

use super::Outcome;
use crate::store::Seq;

/// The order classes are served in.
pub const PRIORITY: [Class; 4] = [Class::Access, Class::Alarm, Class::Audit, Class::Telemetry];

/// Per-class read positions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cursors {
    after: [Seq; 4],
}

impl Cursors {
    /// Where reading `class` continues (exclusive).
    pub fn after(&self, class: Class) -> Seq {
        self.after[class.index()]
    }

    /// Forgets every position: read everything still stored again.
    pub fn rewind_all(&mut self) {
        self.after = [0; 4];
    }
}

/// What a batch's outcomes mean.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settled {
    /// Confirmed by the platform: ack these.
    pub delivered: Vec<Seq>,
    /// Refused for good: dead-letter these (index into the batch, reason), then ack.
    pub rejected: Vec<(usize, String)>,
    /// Set when some event must be sent again; the hint is the platform's
    /// `Retry-After`, if it gave one.
    pub retry: Option<Option<Duration>>,
    /// Set when the platform refused the gateway itself (the reason): the
    /// events are retried, and the uplink raises an alarm.
    pub refused: Option<String>,
}

/// Settles a batch of one class (`seqs` in order, one outcome each) and
/// moves the class's cursor.
pub fn settle(cursors: &mut Cursors, class: Class, seqs: &[Seq], outcomes: &[Outcome]) -> Settled {
    let mut settled = Settled::default();
    let mut first_retry: Option<Seq> = None;
    for (index, (seq, outcome)) in seqs.iter().zip(outcomes).enumerate() {
        match outcome {
            Outcome::Delivered => settled.delivered.push(*seq),
            Outcome::Rejected(reason) => settled.rejected.push((index, reason.clone())),
            Outcome::Retry(_) | Outcome::Refused(_) => {
                if first_retry.is_none() {
                    first_retry = Some(*seq);
                }
                let hint = match outcome {
                    Outcome::Retry(hint) => *hint,
                    _ => None,
                };
                if let Outcome::Refused(reason) = outcome {
                    settled.refused.get_or_insert_with(|| reason.clone());
                }
                let longest = match (settled.retry.flatten(), hint) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
                settled.retry = Some(longest);
            }
        }
    }
    // A sink that answered fewer outcomes than events: retry the rest.
    if outcomes.len() < seqs.len() {
        if first_retry.is_none() {
            first_retry = seqs.get(outcomes.len()).copied();
        }
        settled.retry = Some(settled.retry.flatten());
    }
    let cursor = &mut cursors.after[class.index()];
    match first_retry {
        // The batch was read after the cursor, so this never moves it forward
        // past anything unconfirmed.
        Some(seq) => *cursor = seq.saturating_sub(1),
        None => {
            if let Some(last) = seqs.last() {
                *cursor = (*cursor).max(*last);
            }
        }
    }
    settled
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_serves_access_and_alarm_before_audit_and_telemetry() {
        assert_eq!(PRIORITY[0], Class::Access);
        assert_eq!(PRIORITY[1], Class::Alarm);
        assert_eq!(PRIORITY[3], Class::Telemetry);
    }

    #[test]
    fn a_fully_delivered_batch_moves_the_cursor_to_its_last_seq() {
        let mut c = Cursors::default();
        let s = settle(
            &mut c,
            Class::Telemetry,
            &[3, 5, 9],
            &[Outcome::Delivered, Outcome::Delivered, Outcome::Delivered],
        );
        assert_eq!(s.delivered, vec![3, 5, 9]);
        assert_eq!(s.retry, None);
        assert_eq!(c.after(Class::Telemetry), 9);
        assert_eq!(c.after(Class::Access), 0);
    }

    #[test]
    fn a_retry_sets_the_cursor_back_before_the_first_unconfirmed_event() {
        let mut c = Cursors::default();
        let s = settle(
            &mut c,
            Class::Access,
            &[10, 11, 12, 13],
            &[
                Outcome::Delivered,
                Outcome::Retry(None),
                Outcome::Delivered,
                Outcome::Retry(Some(Duration::from_secs(3))),
            ],
        );
        assert_eq!(s.delivered, vec![10, 12]);
        assert_eq!(s.retry, Some(Some(Duration::from_secs(3))));
        assert_eq!(c.after(Class::Access), 10);
    }

    #[test]
    fn a_refusal_of_the_gateway_is_retried_never_rejected() {
        let mut c = Cursors::default();
        let s = settle(
            &mut c,
            Class::Access,
            &[4, 5],
            &[
                Outcome::Refused("HTTP 401: bad token".into()),
                Outcome::Refused("HTTP 401: bad token".into()),
            ],
        );
        assert!(s.delivered.is_empty() && s.rejected.is_empty());
        assert_eq!(s.retry, Some(None));
        assert_eq!(s.refused.as_deref(), Some("HTTP 401: bad token"));
        assert_eq!(c.after(Class::Access), 3, "both are read again");
    }

    #[test]
    fn rejected_events_are_reported_with_their_index_and_do_not_block() {
        let mut c = Cursors::default();
        let s = settle(
            &mut c,
            Class::Alarm,
            &[1, 2],
            &[Outcome::Rejected("400 bad body".into()), Outcome::Delivered],
        );
        assert_eq!(s.rejected, vec![(0, "400 bad body".to_owned())]);
        assert_eq!(s.delivered, vec![2]);
        assert_eq!(c.after(Class::Alarm), 2);
    }

    #[test]
    fn missing_outcomes_are_retried() {
        let mut c = Cursors::default();
        let s = settle(&mut c, Class::Audit, &[4, 5, 6], &[Outcome::Delivered]);
        assert_eq!(s.delivered, vec![4]);
        assert_eq!(s.retry, Some(None));
        assert_eq!(c.after(Class::Audit), 4);
        c.rewind_all();
        assert_eq!(c, Cursors::default());
    }
}
