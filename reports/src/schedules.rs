//! What `crashlab explore` did for one scenario, and its "Explore" section
//! in `report.md` and `report.html`: schedules tried and faults injected,
//! the distinct failures grouped by verdict and the minimal schedule's
//! shape (which faults, in which order), and each minimal schedule as a
//! timeline — its load, faults, recovery and verification, and when the
//! acknowledged commits it lost had been acknowledged — with its replay
//! rate.
//!
//! Every instant of a timeline is in milliseconds after the schedule's
//! first load began (the zero of its ack log), in the replay whose verdict
//! was the worst.

use crate::Verdict;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// One `crashlab explore` of one scenario.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExploreReport {
    /// The strategy the schedules ran on.
    pub strategy: String,
    /// The generator's seed.
    pub seed: u64,
    /// The search's budget, and how long it ran, in seconds.
    pub budget_s: f64,
    pub elapsed_s: f64,
    /// Schedules drawn from the seed and run (stored ones not counted).
    pub schedules: u64,
    /// Faults those schedules injected.
    pub faults: u64,
    /// Schedules that ended `error` (no evidence either way).
    pub errors: u64,
    /// The stored schedules replayed first, then the failure found (the
    /// search stops at its first), shrunk.
    pub findings: Vec<Finding>,
    /// Where the drawn schedules' time went; `None` when none ran.
    pub cost: Option<ScheduleCost>,
}

/// Where the time of the schedules drawn in the search went, per schedule
/// on average (the stored schedules and the shrink's replays are not
/// counted), in milliseconds. The parts are the cycle's own phase clocks;
/// `own_ms` is what is left of the wall time: crashlab between the phases
/// (planning, arming, journal and report bookkeeping, the next schedule's
/// draw). `cpu_ms` is the CPU the crashlab process used, its load
/// clients included; the servers and Docker run in other processes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScheduleCost {
    /// Schedules the figures are over.
    pub schedules: u64,
    /// How long they took in all, run `jobs` at once.
    pub elapsed_ms: f64,
    pub jobs: u32,
    /// From asking for the schedule to its verdict.
    pub wall_ms: f64,
    /// Waiting for the server before the cycle (deploying it when the
    /// schedule could not reuse the last one's).
    pub ready_ms: f64,
    /// Creating the dataset afresh.
    pub setup_ms: f64,
    /// The schedule's loads, as long as it asked.
    pub load_ms: f64,
    /// The faults' own calls (a kill) and the load's clients stopping.
    pub fault_ms: f64,
    /// From the end of the last fault until the server answered again.
    pub recovery_ms: f64,
    /// Reading the data back and checking it.
    pub verify_ms: f64,
    /// The rest of the wall time: crashlab's own, between the phases.
    pub own_ms: f64,
    /// CPU time of the crashlab process.
    pub cpu_ms: f64,
}

impl ScheduleCost {
    /// In a sentence, for the report and the explore's last lines.
    pub fn summary(&self) -> String {
        format!(
            "{:.1} schedules a minute ({}, {} at once); one took {:.0} ms on average: ready {:.0}, setup {:.0}, \
             load {:.0}, faults {:.0}, recovery {:.0}, verify {:.0}, crashlab between the phases {:.0}; crashlab's \
             CPU {:.0} ms",
            self.per_minute(),
            count(self.schedules, "schedule"),
            self.jobs,
            self.wall_ms,
            self.ready_ms,
            self.setup_ms,
            self.load_ms,
            self.fault_ms,
            self.recovery_ms,
            self.verify_ms,
            self.own_ms,
            self.cpu_ms,
        )
    }

    /// Schedules run a minute.
    pub fn per_minute(&self) -> f64 {
        if self.elapsed_ms > 0.0 { self.schedules as f64 * 60_000.0 / self.elapsed_ms } else { 0.0 }
    }
}

/// A schedule explore replayed with a rate: a stored regression, or the
/// minimal schedule of a failure it found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Where it came from, e.g. `stored seed3-1` or `schedule #8 of seed
    /// 11, shrunk in 6 steps (24 replays)`.
    pub origin: String,
    /// The schedule, in its textual form.
    pub schedule: String,
    /// Its faults in order, e.g. `partition → host-loss`.
    pub shape: String,
    /// The worst verdict of its replays.
    pub verdict: Verdict,
    /// Replays that failed, of how many.
    pub failed: u32,
    pub runs: u32,
    /// The worst replay's detail.
    pub detail: String,
    /// The worst replay's steps in time.
    #[serde(default)]
    pub steps: Vec<StepTime>,
    /// Acknowledged commits the worst replay lost, and when the first and
    /// the last of them had been acknowledged.
    pub lost: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost_acks_ms: Option<(f64, f64)>,
}

impl Finding {
    /// Whether it failed at all (a verdict worse than `intact`, not the
    /// harness's `error`).
    pub fn failing(&self) -> bool {
        self.failed > 0
    }
}

/// One step of a schedule in time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StepTime {
    /// The step as the schedule writes it (`load 500ms clients=1`,
    /// `host-kill on primary`, `recover`).
    pub step: String,
    /// When it began and ended, in milliseconds after the first load began.
    pub from_ms: f64,
    pub to_ms: f64,
}

/// The "Explore" section of `report.md`: a summary line, the failures
/// grouped by verdict and shape, then each schedule's timeline.
pub fn markdown(explore: &ExploreReport) -> String {
    let mut out = String::from("\n## Explore\n\n");
    let failing: Vec<&Finding> = explore.findings.iter().filter(|f| f.failing()).collect();
    let groups = groups(&failing);
    let _ = writeln!(
        out,
        "On {}, seed {}, budget {:.0} s: {} tried, {} injected, {}, in {:.0} s; {}.\n",
        explore.strategy,
        explore.seed,
        explore.budget_s,
        count(explore.schedules, "schedule"),
        count(explore.faults, "fault"),
        count(explore.errors, "error"),
        explore.elapsed_s,
        count(groups.len() as u64, "distinct failure"),
    );
    if let Some(cost) = &explore.cost {
        let _ = writeln!(out, "{}.\n", cost.summary());
    }
    if !explore.findings.is_empty() {
        out.push_str("| verdict | shape | schedule | replay rate | origin |\n|---|---|---|---|---|\n");
        for f in
            groups.iter().flat_map(|(_, fs)| fs.iter().copied()).chain(explore.findings.iter().filter(|f| !f.failing()))
        {
            let _ = writeln!(
                out,
                "| {} | {} | `{}` | failed {} of {} | {} |",
                f.verdict, f.shape, f.schedule, f.failed, f.runs, f.origin
            );
        }
    }
    for f in &explore.findings {
        out.push_str(&timeline(f));
    }
    out
}

/// The failures grouped by (verdict, shape), worst verdict first, in the
/// order found within a group.
pub fn groups<'f>(failing: &[&'f Finding]) -> Vec<((Verdict, String), Vec<&'f Finding>)> {
    let mut out: Vec<((Verdict, String), Vec<&Finding>)> = Vec::new();
    for f in failing {
        let key = (f.verdict, f.shape.clone());
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(f),
            None => out.push((key, vec![f])),
        }
    }
    out.sort_by_key(|g| std::cmp::Reverse(g.0.0));
    out
}

/// One schedule's timeline: its steps, then the lost commits' window.
fn timeline(f: &Finding) -> String {
    let mut out = format!("\n### `{}`\n\n{}, {}: **{}**", f.schedule, f.origin, rate(f), f.verdict);
    if !f.detail.is_empty() {
        let _ = write!(out, ": {}", f.detail);
    }
    if f.steps.is_empty() {
        out.push('\n');
        return out;
    }
    out.push_str("\n\n");
    out.push_str("| from (ms) | to (ms) | step |\n|---|---|---|\n");
    for s in &f.steps {
        let _ = writeln!(out, "| {} | {} | {} |", ms(s.from_ms), ms(s.to_ms), s.step);
    }
    if let Some((first, last)) = f.lost_acks_ms {
        let _ = writeln!(out, "| {} | {} | acknowledged, then lost: {} commits |", ms(first), ms(last), f.lost);
    }
    out
}

/// Milliseconds, rounded; a load that began a few microseconds before
/// the log's zero shows as 0, not -0.
fn ms(x: f64) -> String {
    format!("{:.0}", x.round() + 0.0)
}

/// `1 fault`, `3 faults`.
fn count(n: u64, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// `failed 2 of 4 replays`.
pub fn rate(f: &Finding) -> String {
    format!("failed {} of {} replays", f.failed, f.runs)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn finding(verdict: Verdict, shape: &str, failed: u32, runs: u32) -> Finding {
        Finding {
            origin: String::new(),
            schedule: String::new(),
            shape: shape.into(),
            verdict,
            failed,
            runs,
            detail: String::new(),
            steps: Vec::new(),
            lost: 0,
            lost_acks_ms: None,
        }
    }

    pub(crate) fn sample() -> ExploreReport {
        let step = |step: &str, from_ms, to_ms| StepTime { step: step.into(), from_ms, to_ms };
        ExploreReport {
            strategy: "replica-semisync".into(),
            seed: 11,
            budget_s: 600.0,
            elapsed_s: 131.4,
            schedules: 9,
            faults: 14,
            errors: 1,
            findings: vec![
                Finding {
                    origin: "stored seed11-7".into(),
                    schedule: "load 500ms, host-kill on primary, recover, verify".into(),
                    ..finding(Verdict::Intact, "host-kill", 0, 4)
                },
                Finding {
                    origin: "schedule #8 of seed 11, shrunk in 6 steps (24 replays)".into(),
                    schedule: "load 100ms clients=1, partition on replica for 400ms, host-loss on primary, recover, \
                               verify"
                        .into(),
                    shape: "partition → host-loss".into(),
                    verdict: Verdict::LostWrites,
                    failed: 2,
                    runs: 4,
                    detail: "43 of 51 acknowledged commits missing".into(),
                    steps: vec![
                        step("load 100ms clients=1", -0.004, 101.2),
                        step("partition on replica for 400ms, host-loss on primary", 101.2, 655.0),
                        step("recover", 655.0, 4210.7),
                        step("verify", 4210.7, 4390.1),
                    ],
                    lost: 43,
                    lost_acks_ms: Some((48.5, 100.9)),
                },
            ],
            cost: Some(ScheduleCost {
                schedules: 9,
                elapsed_ms: 60_000.0,
                jobs: 1,
                wall_ms: 6_600.0,
                ready_ms: 100.0,
                setup_ms: 90.0,
                load_ms: 1_500.0,
                fault_ms: 700.0,
                recovery_ms: 4_000.0,
                verify_ms: 190.0,
                own_ms: 20.0,
                cpu_ms: 40.0,
            }),
        }
    }

    #[test]
    fn the_section_groups_failures_and_draws_each_schedule_in_time() {
        insta::assert_snapshot!(markdown(&sample()));
    }

    #[test]
    fn failures_group_by_verdict_and_shape_worst_first() {
        let f = |verdict, shape: &str| finding(verdict, shape, 1, 1);
        let (a, b, c) = (
            f(Verdict::LostWrites, "host-kill"),
            f(Verdict::Corrupt, "host-kill"),
            f(Verdict::LostWrites, "host-kill"),
        );
        let g = groups(&[&a, &b, &c]);
        let keys: Vec<(Verdict, usize)> = g.iter().map(|((v, _), m)| (*v, m.len())).collect();
        assert_eq!(keys, [(Verdict::Corrupt, 1), (Verdict::LostWrites, 2)]);
        let summary = markdown(&ExploreReport { findings: vec![a, b, c], ..ExploreReport::default() });
        assert!(summary.contains("2 distinct failures"), "{summary}");
    }
}
