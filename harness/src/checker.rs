//! The checker: compares what the server kept ([`Observation`]) with what
//! the harness knows was sent and acknowledged ([`AckLog`]), and reaches a
//! verdict.
//!
//! The rules, in order of severity:
//! - the engine's integrity check failed, or the data could not be read:
//!   `corrupt`;
//! - an invariant broke: a ledger row that was never sent, one whose
//!   transaction failed before its commit was sent, one that differs from
//!   what was sent, or an account whose balance is not its initial balance
//!   plus the ledger rows present (a half-applied transfer): `inconsistent`;
//!   so is, after a restore to a point in time, a row of a transaction
//!   begun after that point (the log cut there, [`AckLog::restored_to`]);
//! - the dataset is not there: `data-gone`;
//! - an acknowledged commit is missing: `lost-writes`;
//! - otherwise `intact`.
//!
//! Transactions whose commit was in flight when the fault hit are in doubt:
//! present or absent, both are correct.
//!
//! What the engine's check could not cover (its notes) closes the detail
//! whatever the verdict, so that an `intact` says what it was not based on.

use crashlab_reports::Verdict;
use crashlab_workloads::{AckLog, INITIAL_BALANCE, Observation, Outcome};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Ledger ids and account numbers are integers the harness made itself, not
/// attacker input, so a multiplicative hash serves and is several times
/// faster than the default SipHash on a million-entry history.
#[derive(Default, Clone, Copy)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        // Fold the product's high half into the low half: the table indexes
        // buckets with low bits and tags entries with the top seven.
        let h = (self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 = h ^ (h >> 32);
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
}

type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// The checker's findings for one cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub verdict: Verdict,
    pub acked: u64,
    pub lost: u64,
    pub in_doubt: u64,
    pub violations: u64,
    /// Why, in a sentence, then what the engine's check left out; empty
    /// when intact and fully checked.
    pub detail: String,
    /// When the last acknowledged commit that is present was acknowledged
    /// (microseconds since the load began); `None` when none is present or
    /// the log has no times. The recovery point is measured from it.
    pub last_surviving_ack_us: Option<u64>,
    /// When the first and the last acknowledged commit found missing had
    /// been acknowledged (microseconds since the load began); `None` when
    /// none is missing or the log has no times.
    pub lost_acks_us: Option<(u64, u64)>,
}

impl Check {
    /// The recovery point in seconds: from the last surviving acknowledged
    /// commit to the fault at `fault_us`, or from the start of the load when
    /// none survived.
    pub fn rpo_s(&self, fault_us: u64) -> f64 {
        fault_us.saturating_sub(self.last_surviving_ack_us.unwrap_or(0)) as f64 / 1e6
    }
}

/// Accounts whose balance disagrees with what the ledger says it should
/// be: listed twice, missing, unexpected, or with another balance.
fn unbalanced(balances: &[(u32, i64)], expected: &IdMap<u32, i64>) -> u64 {
    let mut unbalanced = 0u64;
    let mut actual: IdMap<u32, i64> = IdMap::with_capacity_and_hasher(balances.len(), Default::default());
    for &(id, balance) in balances {
        if actual.insert(id, balance).is_some() {
            unbalanced += 1;
        }
    }
    for (id, want) in expected {
        if actual.get(id) != Some(want) {
            unbalanced += 1;
        }
    }
    unbalanced + actual.keys().filter(|id| !expected.contains_key(id)).count() as u64
}

/// When the acknowledged commits that were (`present`) or were not found
/// had been acknowledged, in microseconds since the load began; nothing
/// for a log without times.
fn acks_at<'l>(log: &'l AckLog, seen: &'l [bool], present: bool) -> impl Iterator<Item = u64> + 'l {
    log.entries
        .iter()
        .zip(seen)
        .zip(&log.times)
        .filter(move |(((_, outcome), seen), _)| *outcome == Outcome::Acked && **seen == present)
        .map(|(_, span)| span.end_us)
}

/// Judges one observation against the log of the load that preceded it
/// (cut at the point a restore brought the data back to, when it did).
pub fn check(log: &AckLog, observation: &Observation, accounts: u32) -> Check {
    let acked = log.acked();
    let in_doubt = log.count(Outcome::InDoubt);
    let mut result = Check {
        verdict: Verdict::Intact,
        acked,
        lost: 0,
        in_doubt,
        violations: 0,
        detail: String::new(),
        last_surviving_ack_us: None,
        lost_acks_us: None,
    };
    let (ledger, balances, engine_check, engine_notes) = match observation {
        Observation::Gone { detail } => {
            result.verdict = Verdict::DataGone;
            result.lost = acked;
            result.detail = format!("dataset gone ({detail}); {acked} acknowledged commits lost with it");
            return result;
        }
        Observation::Unreadable { detail } => {
            result.verdict = Verdict::Corrupt;
            result.detail = format!("data unreadable: {detail}");
            return result;
        }
        Observation::Present { ledger, balances, engine_check, engine_notes } => {
            (ledger, balances, engine_check, engine_notes)
        }
    };

    let index: IdMap<u64, usize> = log.entries.iter().enumerate().map(|(i, (t, _))| (t.id, i)).collect();
    let mut seen = vec![false; log.entries.len()];
    let mut phantom = 0u64;
    let mut altered = 0u64;
    let mut resurrected = 0u64;
    let mut duplicated = 0u64;
    let mut after_target = 0u64;
    let mut expected_balance: IdMap<u32, i64> = (0..accounts).map(|id| (id, INITIAL_BALANCE)).collect();
    for row in ledger {
        *expected_balance.entry(row.src).or_insert(INITIAL_BALANCE) -= row.amount;
        *expected_balance.entry(row.dst).or_insert(INITIAL_BALANCE) += row.amount;
        let Some(&i) = index.get(&row.id) else {
            phantom += 1;
            continue;
        };
        let (sent, outcome) = log.entries[i];
        if std::mem::replace(&mut seen[i], true) {
            duplicated += 1;
        }
        if sent != *row {
            altered += 1;
        }
        match outcome {
            Outcome::Aborted => resurrected += 1,
            Outcome::AfterTarget => after_target += 1,
            Outcome::Acked | Outcome::InDoubt => {}
        }
    }
    result.lost =
        log.entries.iter().zip(&seen).filter(|((_, outcome), seen)| *outcome == Outcome::Acked && !**seen).count()
            as u64;
    result.last_surviving_ack_us = acks_at(log, &seen, true).max();
    result.lost_acks_us = acks_at(log, &seen, false).min().zip(acks_at(log, &seen, false).max());

    let unbalanced = unbalanced(balances, &expected_balance);

    result.violations = phantom + altered + resurrected + duplicated + after_target + unbalanced;
    let mut problems = Vec::new();
    for (n, what) in [
        (phantom, "ledger rows that were never sent"),
        (altered, "ledger rows that differ from what was sent"),
        (resurrected, "ledger rows of transactions that failed before commit"),
        (duplicated, "duplicated ledger rows"),
        (after_target, "ledger rows of transactions begun after the restore's target"),
        (unbalanced, "accounts whose balance disagrees with the ledger"),
    ] {
        if n > 0 {
            problems.push(format!("{n} {what}"));
        }
    }
    if result.lost > 0 {
        problems.push(format!("{} of {acked} acknowledged commits missing", result.lost));
    }
    if let Err(e) = engine_check {
        problems.insert(0, format!("integrity check failed: {e}"));
        result.verdict = Verdict::Corrupt;
    } else if result.violations > 0 {
        result.verdict = Verdict::Inconsistent;
    } else if result.lost > 0 {
        result.verdict = Verdict::LostWrites;
    }
    problems.extend(engine_notes.iter().cloned());
    result.detail = problems.join("; ");
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crashlab_workloads::Transfer;
    use proptest::prelude::*;

    const ACCOUNTS: u32 = 4;

    fn t(id: u64, src: u32, dst: u32, amount: i64) -> Transfer {
        Transfer { id, src, dst, amount }
    }

    /// The observation a perfect server would give for the rows it kept.
    fn observe(kept: &[Transfer]) -> Observation {
        let mut balances: Vec<(u32, i64)> = (0..ACCOUNTS).map(|id| (id, INITIAL_BALANCE)).collect();
        for row in kept {
            balances[row.src as usize].1 -= row.amount;
            balances[row.dst as usize].1 += row.amount;
        }
        Observation::Present { ledger: kept.to_vec(), balances, engine_check: Ok(()), engine_notes: vec![] }
    }

    fn log(entries: &[(Transfer, Outcome)]) -> AckLog {
        AckLog { entries: entries.to_vec(), times: vec![] }
    }

    #[test]
    fn every_acked_commit_present_is_intact() {
        let a = t(1, 0, 1, 10);
        let b = t(2, 1, 2, 5);
        let c = check(&log(&[(a, Outcome::Acked), (b, Outcome::Acked)]), &observe(&[a, b]), ACCOUNTS);
        assert_eq!(c.verdict, Verdict::Intact, "{c:?}");
        assert_eq!((c.acked, c.lost, c.violations), (2, 0, 0));
        assert!(c.detail.is_empty());
    }

    #[test]
    fn a_missing_acked_commit_is_a_lost_write() {
        let a = t(1, 0, 1, 10);
        let b = t(2, 1, 2, 5);
        let c = check(&log(&[(a, Outcome::Acked), (b, Outcome::Acked)]), &observe(&[a]), ACCOUNTS);
        assert_eq!(c.verdict, Verdict::LostWrites);
        assert_eq!(c.lost, 1);
        assert_eq!(c.detail, "1 of 2 acknowledged commits missing");
        assert_eq!(c.lost_acks_us, None, "a log without times says nothing of when");
    }

    #[test]
    fn the_lost_commits_window_runs_from_the_first_to_the_last_missing_acknowledgement() {
        let (a, b, c, d) = (t(1, 0, 1, 10), t(2, 1, 2, 5), t(3, 2, 3, 1), t(4, 3, 0, 2));
        let span = |start_us, end_us| crashlab_workloads::Span { start_us, end_us };
        let l = AckLog {
            entries: vec![(a, Outcome::Acked), (b, Outcome::Acked), (c, Outcome::Acked), (d, Outcome::InDoubt)],
            times: vec![span(0, 100), span(50, 300), span(120, 700), span(600, 0)],
        };
        let found = check(&l, &observe(&[a]), ACCOUNTS);
        assert_eq!((found.lost, found.lost_acks_us), (2, Some((300, 700))), "{found:?}");
        assert_eq!(check(&l, &observe(&[a, b, c]), ACCOUNTS).lost_acks_us, None);
    }

    #[test]
    fn in_doubt_commits_may_be_present_or_absent() {
        let a = t(1, 0, 1, 10);
        let l = log(&[(a, Outcome::InDoubt)]);
        assert_eq!(check(&l, &observe(&[a]), ACCOUNTS).verdict, Verdict::Intact);
        assert_eq!(check(&l, &observe(&[]), ACCOUNTS).verdict, Verdict::Intact);
        assert_eq!(check(&l, &observe(&[]), ACCOUNTS).in_doubt, 1);
    }

    #[test]
    fn invariant_violations_are_inconsistent() {
        let a = t(1, 0, 1, 10);
        let l = log(&[(a, Outcome::Acked)]);
        // A row that was never sent.
        let c = check(&l, &observe(&[a, t(99, 2, 3, 1)]), ACCOUNTS);
        assert_eq!((c.verdict, c.violations), (Verdict::Inconsistent, 1));
        assert!(c.detail.contains("1 ledger rows that were never sent"));
        // A row that differs from what was sent.
        let c = check(&l, &observe(&[t(1, 0, 1, 11)]), ACCOUNTS);
        assert_eq!(c.verdict, Verdict::Inconsistent);
        // A transaction that failed before commit yet is there.
        let c = check(&log(&[(a, Outcome::Aborted)]), &observe(&[a]), ACCOUNTS);
        assert_eq!(c.verdict, Verdict::Inconsistent);
        // Half a transfer: the ledger row without its balance change.
        let mut half = observe(&[]);
        if let Observation::Present { ledger, .. } = &mut half {
            ledger.push(a);
        }
        let c = check(&l, &half, ACCOUNTS);
        assert_eq!((c.verdict, c.violations), (Verdict::Inconsistent, 2), "{c:?}");
        // A missing account.
        let mut short = observe(&[a]);
        if let Observation::Present { balances, .. } = &mut short {
            balances.pop();
        }
        assert_eq!(check(&l, &short, ACCOUNTS).verdict, Verdict::Inconsistent);
    }

    #[test]
    fn gone_and_unreadable_data() {
        let a = t(1, 0, 1, 10);
        let l = log(&[(a, Outcome::Acked)]);
        let c = check(&l, &Observation::Gone { detail: "no schema".into() }, ACCOUNTS);
        assert_eq!((c.verdict, c.lost), (Verdict::DataGone, 1));
        let c = check(&l, &Observation::Unreadable { detail: "error 1932".into() }, ACCOUNTS);
        assert_eq!(c.verdict, Verdict::Corrupt);
        let mut bad = observe(&[a]);
        if let Observation::Present { engine_check, .. } = &mut bad {
            *engine_check = Err("Index PRIMARY is corrupted".into());
        }
        let c = check(&l, &bad, ACCOUNTS);
        assert_eq!(c.verdict, Verdict::Corrupt);
        assert!(c.detail.starts_with("integrity check failed: Index PRIMARY"));
    }

    #[test]
    fn what_the_engine_check_left_out_is_in_the_detail_but_not_the_verdict() {
        let a = t(1, 0, 1, 10);
        let note = "data checksums: not checked (cluster made without --data-checksums)";
        let mut noted = observe(&[a]);
        if let Observation::Present { engine_notes, .. } = &mut noted {
            engine_notes.push(note.into());
        }
        let c = check(&log(&[(a, Outcome::Acked)]), &noted, ACCOUNTS);
        assert_eq!((c.verdict, c.detail.as_str()), (Verdict::Intact, note));
        let c = check(&log(&[(a, Outcome::Acked), (t(2, 1, 2, 5), Outcome::Acked)]), &noted, ACCOUNTS);
        assert_eq!(c.verdict, Verdict::LostWrites);
        assert_eq!(c.detail, format!("1 of 2 acknowledged commits missing; {note}"));
    }

    fn outcome() -> impl Strategy<Value = Outcome> {
        prop_oneof![Just(Outcome::Acked), Just(Outcome::Aborted), Just(Outcome::InDoubt)]
    }

    proptest! {
        /// A server that keeps every acknowledged commit, any subset of the
        /// in-doubt ones and none of the aborted ones is always intact; drop
        /// one acknowledged commit and it is always a lost write.
        #[test]
        fn verdict_follows_what_was_kept(
            ops in proptest::collection::vec((0..ACCOUNTS, 1..ACCOUNTS, 1i64..100, outcome(), any::<bool>()), 0..200),
            drop_pick in any::<prop::sample::Index>(),
        ) {
            let mut entries = Vec::new();
            let mut kept = Vec::new();
            for (i, (src, offset, amount, outcome, keep_in_doubt)) in ops.into_iter().enumerate() {
                let transfer = t(i as u64, src, (src + offset) % ACCOUNTS, amount);
                entries.push((transfer, outcome));
                if outcome == Outcome::Acked || (outcome == Outcome::InDoubt && keep_in_doubt) {
                    kept.push(transfer);
                }
            }
            let l = log(&entries);
            let c = check(&l, &observe(&kept), ACCOUNTS);
            prop_assert_eq!(c.verdict, Verdict::Intact);
            prop_assert_eq!(c.lost, 0);

            let acked: Vec<usize> = kept.iter().enumerate()
                .filter(|(_, k)| entries.iter().any(|(e, o)| e == *k && *o == Outcome::Acked))
                .map(|(i, _)| i).collect();
            if !acked.is_empty() {
                let mut fewer = kept.clone();
                fewer.remove(acked[drop_pick.index(acked.len())]);
                let c = check(&l, &observe(&fewer), ACCOUNTS);
                prop_assert_eq!(c.verdict, Verdict::LostWrites);
                prop_assert_eq!(c.lost, 1);
            }
        }
    }

    #[test]
    fn a_restore_to_a_point_is_judged_against_the_log_cut_there() {
        let rows = [t(1, 0, 1, 5), t(2, 1, 2, 5), t(3, 2, 3, 5)];
        let mut l = log(&[(rows[0], Outcome::Acked), (rows[1], Outcome::Acked), (rows[2], Outcome::Acked)]);
        // Acknowledged at 1 s; begun before 2 s and acknowledged after;
        // begun after 2 s.
        l.times = [(0, 1_000_000), (1_900_000, 2_100_000), (2_500_000, 2_600_000)]
            .iter()
            .map(|&(start_us, end_us)| crashlab_workloads::Span { start_us, end_us })
            .collect();
        let cut = l.restored_to(2_000_000, 2_000_000);
        for kept in [&rows[..1], &rows[..2]] {
            let c = check(&cut, &observe(kept), ACCOUNTS);
            assert_eq!((c.verdict, c.acked, c.in_doubt), (Verdict::Intact, 1, 1), "{c:?}");
            assert_eq!(c.rpo_s(2_000_000), 1.0, "the recovery point runs to the target");
        }
        let c = check(&cut, &observe(&rows), ACCOUNTS);
        assert_eq!((c.verdict, c.violations), (Verdict::Inconsistent, 1));
        assert_eq!(c.detail, "1 ledger rows of transactions begun after the restore's target");
        let c = check(&cut, &observe(&rows[1..2]), ACCOUNTS);
        assert_eq!((c.verdict, c.lost), (Verdict::LostWrites, 1));
        assert_eq!(check(&l, &observe(&rows[..2]), ACCOUNTS).verdict, Verdict::LostWrites, "uncut, the third is lost");
    }

    #[test]
    fn recovery_point_runs_from_the_last_surviving_acknowledged_commit() {
        let rows = [t(1, 0, 1, 5), t(2, 1, 2, 5), t(3, 2, 3, 5)];
        let mut l = log(&[(rows[0], Outcome::Acked), (rows[1], Outcome::Acked), (rows[2], Outcome::InDoubt)]);
        l.times =
            [1_000_000, 2_000_000, 0].iter().map(|&end_us| crashlab_workloads::Span { start_us: 0, end_us }).collect();
        // The second commit is lost, the in-doubt one kept: the point is
        // the first commit's.
        let found = check(&l, &observe(&[rows[0], rows[2]]), ACCOUNTS);
        assert_eq!(found.last_surviving_ack_us, Some(1_000_000));
        assert_eq!(found.rpo_s(3_000_000), 2.0);
        let none = check(&l, &observe(&[]), ACCOUNTS);
        assert_eq!(none.rpo_s(3_000_000), 3.0, "nothing survived: back to the start of the load");
    }
}
