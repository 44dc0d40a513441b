//! Comparing two runs: what got worse between a baseline report and a new
//! one. A verdict that got worse, a cell that stopped meeting its
//! expectation, or a metric that moved past its threshold is a regression;
//! CI fails the build on any.
//!
//! Cells are matched by (workload, strategy, fault). A cell present in the
//! baseline but missing from the new run is a regression too: silence is not
//! evidence.

use crate::{CellReport, Report, Verdict};
use serde::{Deserialize, Serialize};
use std::fmt::Write;

/// Version of the JSON form of a comparison ([`render_json`]), bumped on
/// any breaking change as the report's is.
pub const COMPARE_SCHEMA_VERSION: u32 = 1;

/// How much a metric may worsen, in percent of the baseline, before it
/// counts as a regression.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    pub max_throughput_drop: f64,
    pub max_p99_rise: f64,
    pub max_recovery_rise: f64,
}

impl Default for Thresholds {
    /// Generous, because a 2-core machine is noisy: a real regression in a
    /// storage path is usually far larger.
    fn default() -> Self {
        Thresholds { max_throughput_drop: 20.0, max_p99_rise: 50.0, max_recovery_rise: 50.0 }
    }
}

/// One matched cell.
#[derive(Debug, Clone, PartialEq)]
pub struct CellDiff {
    pub key: String,
    pub base: CellReport,
    pub new: CellReport,
    /// What regressed, one phrase each; empty when nothing did.
    pub regressions: Vec<String>,
}

/// The comparison of two reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub cells: Vec<CellDiff>,
    /// In the baseline, not in the new run.
    pub missing: Vec<String>,
    /// In the new run only.
    pub added: Vec<String>,
    pub thresholds: Thresholds,
    /// How the two runs executed their cells, when that differs (`--jobs`,
    /// `[matrix] cpus` or `memory`): their throughput and latency then
    /// measure contention as much as the change.
    pub execution_differs: Option<String>,
}

/// `--jobs`, CPUs and memory of a run (of its first shard, for a merge).
fn execution_of(report: &Report) -> Option<String> {
    let e = match &report.merged {
        Some(m) => &m.shards.first()?.execution,
        None => report.execution.as_ref()?,
    };
    let cpus = e.cpus.map_or("unlimited".to_owned(), |c| c.to_string());
    let memory = e.memory_bytes.map_or("unlimited".to_owned(), |m| format!("{} MiB", m >> 20));
    Some(format!("--jobs {}, cpus {cpus}, memory {memory}", e.jobs))
}

impl Comparison {
    pub fn regressed(&self) -> bool {
        !self.missing.is_empty() || self.cells.iter().any(|c| !c.regressions.is_empty())
    }
}

fn key(c: &CellReport) -> String {
    format!("{}/{}/{}", c.workload, c.strategy, c.fault)
}

/// Change from `base` to `new` in percent of `base`; `None` when the base is
/// zero and the change has no meaningful percentage.
pub fn change_pct(base: f64, new: f64) -> Option<f64> {
    (base > 0.0).then(|| (new - base) / base * 100.0)
}

/// Compares `new` against `base`.
pub fn compare(base: &Report, new: &Report, thresholds: Thresholds) -> Comparison {
    let mut cells = Vec::new();
    let mut missing = Vec::new();
    for b in &base.cells {
        let Some(n) = new.cells.iter().find(|n| key(n) == key(b)) else {
            missing.push(key(b));
            continue;
        };
        let mut regressions = Vec::new();
        if n.verdict > b.verdict {
            regressions.push(format!("verdict {} → {}", b.verdict, n.verdict));
        }
        if b.passed && !n.passed {
            regressions.push(format!("no longer meets its expectation ({})", n.expected));
        }
        if let Some(pct) = change_pct(b.throughput_tps, n.throughput_tps)
            && -pct > thresholds.max_throughput_drop
        {
            regressions.push(format!("throughput {pct:+.1}% (limit -{}%)", thresholds.max_throughput_drop));
        }
        if let Some(pct) = change_pct(b.latency_ms.p99, n.latency_ms.p99)
            && pct > thresholds.max_p99_rise
        {
            regressions.push(format!("p99 latency {pct:+.1}% (limit +{}%)", thresholds.max_p99_rise));
        }
        if let Some(pct) = change_pct(b.recovery_ms.p50, n.recovery_ms.p50)
            && pct > thresholds.max_recovery_rise
        {
            regressions.push(format!("recovery time {pct:+.1}% (limit +{}%)", thresholds.max_recovery_rise));
        }
        cells.push(CellDiff { key: key(b), base: b.clone(), new: n.clone(), regressions });
    }
    let added = new.cells.iter().map(key).filter(|k| !base.cells.iter().any(|b| key(b) == *k)).collect();
    let execution_differs = match (execution_of(base), execution_of(new)) {
        (Some(b), Some(n)) if b != n => Some(format!("{n} here, {b} in the baseline")),
        _ => None,
    };
    Comparison { cells, missing, added, thresholds, execution_differs }
}

/// A Markdown diff suitable for a pull-request comment.
pub fn render_markdown(c: &Comparison, base_name: &str, new_name: &str) -> String {
    let mut out = String::new();
    let regressed: Vec<&CellDiff> = c.cells.iter().filter(|d| !d.regressions.is_empty()).collect();
    let headline = if c.regressed() {
        format!("**{} regression(s)**", regressed.len() + c.missing.len())
    } else {
        "no regressions".to_owned()
    };
    let _ = writeln!(out, "## crashlab: {new_name} vs {base_name}: {headline}\n");
    let t = c.thresholds;
    let _ = writeln!(
        out,
        "Thresholds: throughput drop {}%, p99 rise {}%, recovery rise {}%.\n",
        t.max_throughput_drop, t.max_p99_rise, t.max_recovery_rise
    );
    if let Some(how) = &c.execution_differs {
        let _ = writeln!(
            out,
            "Note: the runs executed their cells differently ({how}); cells run side by side compete for the host, so throughput and latency compare contention as much as the change.\n"
        );
    }
    out.push_str("| cell | verdict | tps | p99 ms | recovery p50 ms | regression |\n|---|---|---:|---:|---:|---|\n");
    for d in &c.cells {
        let verdict = if d.base.verdict == d.new.verdict {
            d.new.verdict.to_string()
        } else {
            format!("{} → {}", d.base.verdict, d.new.verdict)
        };
        let _ = writeln!(
            out,
            "| {} | {verdict} | {} | {} | {} | {} |",
            d.key,
            metric(d.base.throughput_tps, d.new.throughput_tps, 0),
            metric(d.base.latency_ms.p99, d.new.latency_ms.p99, 2),
            metric(d.base.recovery_ms.p50, d.new.recovery_ms.p50, 0),
            if d.regressions.is_empty() { String::new() } else { format!("**{}**", d.regressions.join("; ")) }
        );
    }
    for k in &c.missing {
        let _ = writeln!(out, "| {k} | missing from the new run | | | | **missing** |");
    }
    for k in &c.added {
        let _ = writeln!(out, "| {k} | new cell | | | | |");
    }
    out
}

/// A comparison as `crashlab compare --format json` prints it: what CI
/// reads instead of the Markdown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComparisonJson {
    pub schema_version: u32,
    /// The two reports, as named on the command line.
    pub base: String,
    pub new: String,
    /// A cell regressed or went missing: `compare` exits 1.
    pub regressed: bool,
    pub thresholds: Thresholds,
    /// How the runs' execution differed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_differs: Option<String>,
    /// The cells of both runs, in the baseline's order.
    pub cells: Vec<CellChange>,
    /// Cells of the baseline missing from the new run (each a regression),
    /// and cells of the new run only, as `workload/strategy/fault`.
    pub missing: Vec<String>,
    pub added: Vec<String>,
}

/// One cell in both runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellChange {
    /// `workload/strategy/fault`.
    pub cell: String,
    pub base: Figures,
    pub new: Figures,
    /// What regressed, one phrase each; empty when nothing did.
    pub regressions: Vec<String>,
}

/// The figures a comparison looks at, of one cell in one run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    pub verdict: Verdict,
    pub passed: bool,
    pub throughput_tps: f64,
    pub latency_p99_ms: f64,
    pub recovery_p50_ms: f64,
}

impl Figures {
    fn of(c: &CellReport) -> Figures {
        Figures {
            verdict: c.verdict,
            passed: c.passed,
            throughput_tps: c.throughput_tps,
            latency_p99_ms: c.latency_ms.p99,
            recovery_p50_ms: c.recovery_ms.p50,
        }
    }
}

impl ComparisonJson {
    pub fn of(c: &Comparison, base_name: &str, new_name: &str) -> ComparisonJson {
        ComparisonJson {
            schema_version: COMPARE_SCHEMA_VERSION,
            base: base_name.to_owned(),
            new: new_name.to_owned(),
            regressed: c.regressed(),
            thresholds: c.thresholds,
            execution_differs: c.execution_differs.clone(),
            cells: c
                .cells
                .iter()
                .map(|d| CellChange {
                    cell: d.key.clone(),
                    base: Figures::of(&d.base),
                    new: Figures::of(&d.new),
                    regressions: d.regressions.clone(),
                })
                .collect(),
            missing: c.missing.clone(),
            added: c.added.clone(),
        }
    }
}

/// The comparison as pretty-printed JSON ([`ComparisonJson`]), with a
/// final newline.
pub fn render_json(c: &Comparison, base_name: &str, new_name: &str) -> String {
    serde_json::to_string_pretty(&ComparisonJson::of(c, base_name, new_name)).expect("a comparison always serialises")
        + "\n"
}

fn metric(base: f64, new: f64, decimals: usize) -> String {
    match change_pct(base, new) {
        Some(pct) => format!("{base:.decimals$} → {new:.decimals$} ({pct:+.1}%)"),
        None => format!("{base:.decimals$} → {new:.decimals$}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Verdict;
    use crate::markdown::tests::sample_report;

    #[test]
    fn identical_reports_do_not_regress() {
        let r = sample_report();
        let c = compare(&r, &r, Thresholds::default());
        assert!(!c.regressed(), "{c:?}");
        assert!(render_markdown(&c, "base", "new").contains("no regressions"));
    }

    #[test]
    fn runs_with_other_jobs_or_limits_are_flagged_but_not_failed() {
        let mut base = sample_report();
        base.execution = Some(crate::Execution { jobs: 1, ..Default::default() });
        let mut new = base.clone();
        assert_eq!(compare(&base, &new, Thresholds::default()).execution_differs, None);
        new.execution = Some(crate::Execution { jobs: 4, cpus: Some(1.0), ..Default::default() });
        let c = compare(&base, &new, Thresholds::default());
        assert!(!c.regressed());
        let how = "--jobs 4, cpus 1, memory unlimited here, --jobs 1, cpus unlimited, memory unlimited in the baseline";
        assert_eq!(c.execution_differs.as_deref(), Some(how));
        assert!(
            render_markdown(&c, "base", "new")
                .contains(&format!("Note: the runs executed their cells differently ({how})"))
        );
    }

    #[test]
    fn each_kind_of_regression_is_caught() {
        let base = sample_report();
        type Change = Box<dyn Fn(&mut CellReport)>;
        let cases: Vec<(&str, Change, &str)> = vec![
            (
                "verdict",
                Box::new(|c| {
                    c.verdict = Verdict::LostWrites;
                    c.passed = false;
                }),
                "verdict intact → lost-writes",
            ),
            ("throughput", Box::new(|c| c.throughput_tps *= 0.7), "throughput -30.0%"),
            ("p99", Box::new(|c| c.latency_ms.p99 *= 2.0), "p99 latency +100.0%"),
            ("recovery", Box::new(|c| c.recovery_ms.p50 *= 1.6), "recovery time +60.0%"),
        ];
        for (what, change, phrase) in cases {
            let mut new = base.clone();
            change(&mut new.cells[0]);
            let c = compare(&base, &new, Thresholds::default());
            assert!(c.regressed(), "{what}");
            assert!(c.cells[0].regressions.iter().any(|r| r.contains(phrase)), "{what}: {:?}", c.cells[0].regressions);
            assert!(render_markdown(&c, "b", "n").contains(phrase));
        }
    }

    #[test]
    fn changes_within_thresholds_and_improvements_pass() {
        let base = sample_report();
        let mut new = base.clone();
        new.cells[0].throughput_tps *= 0.9;
        new.cells[0].latency_ms.p99 *= 1.2;
        new.cells[1].verdict = Verdict::Intact;
        new.cells[1].passed = true;
        assert!(!compare(&base, &new, Thresholds::default()).regressed());
    }

    #[test]
    fn a_missing_cell_is_a_regression_and_a_new_one_is_not() {
        let base = sample_report();
        let mut new = base.clone();
        let mut extra = new.cells.pop().unwrap();
        let c = compare(&base, &new, Thresholds::default());
        assert_eq!(c.missing, ["mariadb/tmpfs/process-kill"]);
        assert!(c.regressed());
        extra.fault = "recreate".into();
        let mut more = base.clone();
        more.cells.push(extra);
        let c = compare(&base, &more, Thresholds::default());
        assert_eq!(c.added, ["mariadb/tmpfs/recreate"]);
        assert!(!c.regressed());
    }

    #[test]
    fn the_json_form_round_trips_and_carries_the_regressions() {
        let base = sample_report();
        let mut new = base.clone();
        new.cells[0].throughput_tps = 200.0;
        new.cells.pop();
        let c = compare(&base, &new, Thresholds::default());
        let json = render_json(&c, "base.json", "new.json");
        let back: ComparisonJson = serde_json::from_str(&json).unwrap();
        assert_eq!(back, ComparisonJson::of(&c, "base.json", "new.json"));
        assert!(back.regressed);
        assert_eq!(back.missing, ["mariadb/tmpfs/process-kill"]);
        assert_eq!(back.cells[0].cell, "mariadb/named-volume/process-kill");
        assert_eq!((back.cells[0].base.throughput_tps, back.cells[0].new.throughput_tps), (333.3, 200.0));
        assert!(back.cells[0].regressions[0].starts_with("throughput -40.0%"), "{:?}", back.cells[0].regressions);
        assert!(json.contains("\"schema_version\": 1") && json.contains("\"verdict\": \"intact\""), "{json}");
    }

    #[test]
    fn compare_markdown_snapshot() {
        let base = sample_report();
        let mut new = base.clone();
        new.cells[0].throughput_tps = 200.0;
        insta::assert_snapshot!(render_markdown(&compare(&base, &new, Thresholds::default()), "base.json", "new.json"));
    }
}
