//! The ack log: the harness's record of every transaction a driver sent and
//! what the server said about it. It is the oracle for durability, so it
//! lives in the harness process, never in the system under test.

/// One bank transfer: move `amount` from account `src` to `dst`, and insert
/// a ledger row with the unique `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Transfer {
    pub id: u64,
    pub src: u32,
    pub dst: u32,
    pub amount: i64,
}

/// What the server said about a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The commit was acknowledged: it must survive any fault the
    /// strategy claims to survive.
    Acked,
    /// The transaction failed before `COMMIT` was sent, so the server cannot
    /// have committed it: its ledger row must never appear.
    Aborted,
    /// The connection failed while `COMMIT` was in flight: the row may or
    /// may not be there, and either is correct.
    InDoubt,
    /// Begun after the point a point-in-time restore brought the data back
    /// to ([`AckLog::restored_to`]): whatever the server said, the restored
    /// data must not hold it. Only a cut log has it.
    AfterTarget,
}

/// When a transaction was sent and answered, in microseconds since the
/// load began ([`crate::LoadOutcome::epoch`]). `end_us` is 0 until the
/// server answered the commit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Span {
    pub start_us: u64,
    pub end_us: u64,
}

impl Span {
    pub fn latency_us(&self) -> u64 {
        self.end_us.saturating_sub(self.start_us)
    }
}

/// Every transaction sent during one load phase, with its outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AckLog {
    pub entries: Vec<(Transfer, Outcome)>,
    /// When each entry was sent and acknowledged, index for index; empty
    /// for a log built without a clock (the checker's own tests). Recovery
    /// point objectives and backup stalls are read from it.
    pub times: Vec<Span>,
}

impl AckLog {
    pub fn count(&self, outcome: Outcome) -> u64 {
        self.entries.iter().filter(|(_, o)| *o == outcome).count() as u64
    }

    pub fn acked(&self) -> u64 {
        self.count(Outcome::Acked)
    }

    /// Appends another client's log.
    pub fn extend(&mut self, other: AckLog) {
        self.entries.extend(other.entries);
        self.times.extend(other.times);
    }

    /// The span of entry `index`, when the log has times.
    pub fn span(&self, index: usize) -> Option<Span> {
        self.times.get(index).copied()
    }

    /// The log as it stood at a crash `at_us` microseconds after the load
    /// began: a commit acknowledged later was, at the crash, only in
    /// flight, so it becomes in doubt (present or absent, both correct).
    /// Aborted transactions stay aborted, since nothing could commit them.
    /// Without times (a log built by hand) the log is returned whole.
    pub fn cut_at(&self, at_us: u64) -> AckLog {
        let mut cut = self.clone();
        for ((_, outcome), span) in cut.entries.iter_mut().zip(&self.times) {
            if *outcome == Outcome::Acked && span.end_us > at_us {
                *outcome = Outcome::InDoubt;
            }
        }
        cut
    }

    /// The log as a restore to the instant `at_us` microseconds after the
    /// load began must show it (a point-in-time restore): a commit
    /// acknowledged by then must be there; a transaction begun after it
    /// must not be, whatever the server later said of it
    /// ([`Outcome::AfterTarget`]); one begun before and not acknowledged by
    /// then may or may not be, as at a crash ([`Self::cut_at`]). A commit's
    /// own time lies between its transaction's start and its
    /// acknowledgement, which is what makes the first two sure. A target
    /// read from the server (its log's end, asked at `at_us` and answered
    /// at `until_us`) lies somewhere in that window: what was acknowledged
    /// before the question must be there, what began after the answer must
    /// not, and a transaction begun in between may or may not be. For an
    /// instant, `until_us` is `at_us`. Without times the log is returned
    /// whole.
    pub fn restored_to(&self, at_us: u64, until_us: u64) -> AckLog {
        let mut cut = self.cut_at(at_us);
        for ((_, outcome), span) in cut.entries.iter_mut().zip(&self.times) {
            // One begun in the window was acknowledged, if at all, after
            // `at_us`: the cut has made it in doubt already.
            if span.start_us >= until_us.max(at_us) {
                *outcome = Outcome::AfterTarget;
            }
        }
        cut
    }
}

/// Ledger ids are unique across clients without coordination: the client
/// number sits above bit 40, the client's own sequence below.
pub fn ledger_id(client: u32, seq: u64) -> u64 {
    (u64::from(client) << 40) | (seq & ((1 << 40) - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_ids_of_different_clients_never_collide() {
        assert_ne!(ledger_id(0, 1), ledger_id(1, 1));
        assert_eq!(ledger_id(2, 5) >> 40, 2);
        assert_eq!(ledger_id(2, 5) & 0xff, 5);
    }

    #[test]
    fn counts_outcomes() {
        let t = Transfer { id: 1, src: 0, dst: 1, amount: 5 };
        let mut log = AckLog { entries: vec![(t, Outcome::Acked), (t, Outcome::InDoubt)], times: vec![] };
        log.extend(AckLog { entries: vec![(t, Outcome::Acked)], times: vec![] });
        assert_eq!(log.acked(), 2);
        assert_eq!(log.count(Outcome::InDoubt), 1);
        assert_eq!(log.count(Outcome::Aborted), 0);
    }

    #[test]
    fn a_commit_acknowledged_after_the_crash_point_is_in_doubt() {
        let t = |id| Transfer { id, src: 0, dst: 1, amount: 5 };
        let span = |end_us| Span { start_us: 0, end_us };
        let log = AckLog {
            entries: vec![
                (t(1), Outcome::Acked),
                (t(2), Outcome::Acked),
                (t(3), Outcome::Aborted),
                (t(4), Outcome::InDoubt),
            ],
            times: vec![span(100), span(200), span(300), span(0)],
        };
        let cut = log.cut_at(150);
        let outcomes: Vec<Outcome> = cut.entries.iter().map(|(_, o)| *o).collect();
        assert_eq!(outcomes, [Outcome::Acked, Outcome::InDoubt, Outcome::Aborted, Outcome::InDoubt]);
        assert_eq!(log.cut_at(200), log, "an acknowledgement at the crash point counts");
        let untimed = AckLog { entries: log.entries.clone(), times: vec![] };
        assert_eq!(untimed.cut_at(0), untimed);
    }

    #[test]
    fn a_restore_to_a_point_must_hold_what_was_acknowledged_before_it_and_nothing_begun_after() {
        let t = |id| Transfer { id, src: 0, dst: 1, amount: 5 };
        let span = |start_us, end_us| Span { start_us, end_us };
        let log = AckLog {
            entries: vec![
                (t(1), Outcome::Acked),
                (t(2), Outcome::Acked),
                (t(3), Outcome::Aborted),
                (t(4), Outcome::Acked),
                (t(5), Outcome::Aborted),
                (t(6), Outcome::InDoubt),
            ],
            times: vec![span(0, 100), span(90, 200), span(120, 0), span(150, 180), span(160, 0), span(170, 0)],
        };
        let outcomes = |log: AckLog| log.entries.iter().map(|(_, o)| *o).collect::<Vec<_>>();
        use Outcome::*;
        assert_eq!(
            outcomes(log.restored_to(150, 150)),
            [Acked, InDoubt, Aborted, AfterTarget, AfterTarget, AfterTarget]
        );
        assert_eq!(
            outcomes(log.restored_to(100, 100)),
            [Acked, InDoubt, AfterTarget, AfterTarget, AfterTarget, AfterTarget]
        );
        assert_eq!(outcomes(log.restored_to(200, 200)), [Acked, Acked, Aborted, Acked, Aborted, InDoubt]);
        // A target read from the server between 150 and 165: the commit
        // begun at 150 may be there or not; the one begun at 170 may not.
        assert_eq!(outcomes(log.restored_to(150, 165)), [Acked, InDoubt, Aborted, InDoubt, Aborted, AfterTarget]);
        let untimed = AckLog { entries: log.entries.clone(), times: vec![] };
        assert_eq!(untimed.restored_to(0, 0), untimed);
    }
}
