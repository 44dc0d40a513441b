//! `report.md`: the verdict matrix and the per-cell metrics as Markdown
//! tables, readable in a terminal, a pull request or a wiki.

use crate::{CellReport, Report, Unsupported};
use std::fmt::Write;

/// Renders the whole report.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let env = &report.environment;
    let verdict = if report.passed() { "PASS" } else { "FAIL" };
    let _ = writeln!(out, "# crashlab report: {} ({verdict})\n", report.scenario);
    let _ = writeln!(
        out,
        "Run `{}`, seed {}, {} cells, {:.1} s. Docker {} (API {}), kernel {}, storage driver {}, host filesystem {}, {} CPUs, crashlab {}.\n",
        report.run_id,
        report.seed,
        report.cells.len(),
        report.duration_s,
        env.docker_version,
        env.docker_api_version,
        env.kernel,
        env.storage_driver,
        env.host_filesystem,
        env.cpus,
        env.crashlab_version,
    );
    let workloads =
        report.cells.iter().map(|c| c.workload.as_str()).chain(report.unsupported.iter().map(|u| u.workload.as_str()));
    for workload in distinct(workloads) {
        let cells: Vec<&CellReport> = report.cells.iter().filter(|c| c.workload == workload).collect();
        let unsupported: Vec<&Unsupported> = report.unsupported.iter().filter(|u| u.workload == workload).collect();
        let _ = writeln!(out, "## {workload}: verdicts\n");
        out.push_str(&matrix_with(&cells, &unsupported));
        out.push_str(&unsupported_reasons(&unsupported));
        out.push('\n');
    }
    out.push_str("## Metrics\n\n");
    out.push_str(&metrics(&report.cells));
    let failing: Vec<&CellReport> =
        report.cells.iter().filter(|c| c.cycle_details.iter().any(|d| !d.detail.is_empty())).collect();
    if !failing.is_empty() {
        out.push_str("\n## Details\n\n");
        for cell in failing {
            for (i, cycle) in cell.cycle_details.iter().enumerate() {
                if !cycle.detail.is_empty() {
                    let _ = writeln!(
                        out,
                        "- {}/{}/{} cycle {}: **{}**: {}",
                        cell.workload,
                        cell.strategy,
                        cell.fault,
                        i + 1,
                        cycle.verdict,
                        cycle.detail
                    );
                }
            }
        }
    }
    out
}

/// The strategy × fault matrix of one workload's cells. A cell that missed
/// its expectation shows what was expected.
pub fn matrix(cells: &[&CellReport]) -> String {
    matrix_with(cells, &[])
}

/// [`matrix`], with the pairs that were not run shown as `n/a`; see
/// [`unsupported_reasons`] for the why.
pub fn matrix_with(cells: &[&CellReport], unsupported: &[&Unsupported]) -> String {
    let strategies =
        distinct(cells.iter().map(|c| c.strategy.as_str()).chain(unsupported.iter().map(|u| u.strategy.as_str())));
    let faults = distinct(cells.iter().map(|c| c.fault.as_str()).chain(unsupported.iter().map(|u| u.fault.as_str())));
    let mut out = String::new();
    let _ = writeln!(out, "| strategy | {} |", faults.join(" | "));
    let _ = writeln!(out, "|---|{}", "---|".repeat(faults.len()));
    for strategy in &strategies {
        let row: Vec<String> = faults
            .iter()
            .map(|fault| {
                cells
                    .iter()
                    .find(|c| c.strategy == *strategy && c.fault == *fault)
                    .map(|c| verdict_cell(c))
                    .or_else(|| {
                        unsupported.iter().any(|u| u.strategy == *strategy && u.fault == *fault).then(|| "n/a".into())
                    })
                    .unwrap_or_default()
            })
            .collect();
        let _ = writeln!(out, "| {strategy} | {} |", row.join(" | "));
    }
    out
}

/// Why each `n/a` of a matrix was not run, one line per reason with the
/// pairs it covers; empty when everything ran.
pub fn unsupported_reasons(unsupported: &[&Unsupported]) -> String {
    let mut out = String::new();
    for reason in distinct(unsupported.iter().map(|u| u.reason.as_str())) {
        let pairs: Vec<String> = unsupported
            .iter()
            .filter(|u| u.reason == reason)
            .map(|u| format!("{} × {}", u.strategy, u.fault))
            .collect();
        let _ = writeln!(out, "- n/a ({}): {reason}", pairs.join(", "));
    }
    if !out.is_empty() {
        out.insert(0, '\n');
    }
    out
}

fn verdict_cell(cell: &CellReport) -> String {
    if cell.passed {
        cell.verdict.to_string()
    } else {
        format!("**{}** ✗ (expected {})", cell.verdict, cell.expected)
    }
}

/// One row a cell: throughput, latency, recovery and write counts.
pub fn metrics(cells: &[CellReport]) -> String {
    let mut out = String::from(
        "| workload | strategy | fault | verdict | acked | lost | in doubt | violations | tps | p50 ms | p99 ms | max ms | recovery p50 ms | recovery max ms |\n\
         |---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for c in cells {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.1} | {:.0} | {:.0} |",
            c.workload,
            c.strategy,
            c.fault,
            c.verdict,
            c.acked_writes,
            c.lost_acked_writes,
            c.in_doubt_writes,
            c.invariant_violations,
            c.throughput_tps,
            c.latency_ms.p50,
            c.latency_ms.p99,
            c.latency_ms.max,
            c.recovery_ms.p50,
            c.recovery_ms.max,
        );
    }
    out
}

/// Distinct values in first-seen order, so tables follow the scenario's
/// order rather than the alphabet.
pub(crate) fn distinct<'a>(items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen = Vec::new();
    for item in items {
        if !seen.contains(&item) {
            seen.push(item);
        }
    }
    seen
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::*;

    fn cell(strategy: &str, fault: &str, verdict: Verdict, expected: Verdict, lost: u64) -> CellReport {
        CellReport {
            workload: "mariadb".into(),
            strategy: strategy.into(),
            fault: fault.into(),
            cycles: 1,
            verdict,
            verdicts: vec![verdict],
            expected,
            passed: verdict.meets(expected),
            acked_writes: 1000,
            lost_acked_writes: lost,
            in_doubt_writes: 4,
            invariant_violations: 0,
            throughput_tps: 333.3,
            latency_ms: LatencySummary { p50: 1.0, p95: 2.0, p99: 3.0, max: 9.5 },
            recovery_ms: RecoverySummary { p50: 500.0, max: 600.0 },
            cycle_details: vec![CycleReport {
                verdict,
                acked_writes: 1000,
                lost_acked_writes: lost,
                in_doubt_writes: 4,
                invariant_violations: 0,
                load_s: 3.0,
                recovery_ms: Some(500.0),
                cycle_ms: 4200.0,
                detail: if lost > 0 { format!("{lost} of 1000 acknowledged commits missing") } else { String::new() },
                faultfs: None,
                phases: PhaseTimes { ready_ms: 300.0, setup_ms: 40.0, inject_ms: 60.0, drain_ms: 5.0, verify_ms: 30.0 },
            }],
            fault_rules: vec![],
        }
    }

    pub(crate) fn sample_report() -> Report {
        Report {
            schema_version: SCHEMA_VERSION,
            scenario: "smoke".into(),
            seed: 42,
            run_id: "r1".into(),
            started_at_unix: 0,
            duration_s: 12.0,
            environment: Environment::default(),
            cells: vec![
                cell("named-volume", "process-kill", Verdict::Intact, Verdict::Intact, 0),
                cell("named-volume", "restart", Verdict::LostWrites, Verdict::Intact, 7),
                cell("tmpfs", "process-kill", Verdict::DataGone, Verdict::DataGone, 0),
            ],
            unsupported: vec![Unsupported {
                workload: "mariadb".into(),
                strategy: "tmpfs".into(),
                fault: "disk-full".into(),
                reason: "tmpfs is memory: there is no disk to fill".into(),
            }],
        }
    }

    #[test]
    fn matrix_shows_strategies_as_rows_and_flags_misses() {
        let md = render(&sample_report());
        assert!(md.starts_with("# crashlab report: smoke (FAIL)"));
        assert!(md.contains("| strategy | process-kill | restart |"));
        assert!(md.contains("| named-volume | intact | **lost-writes** ✗ (expected intact) |"));
        assert!(md.contains("| strategy | process-kill | restart | disk-full |"), "{md}");
        assert!(md.contains("| tmpfs | data-gone |  | n/a |"), "{md}");
        assert!(md.contains("\n- n/a (tmpfs × disk-full): tmpfs is memory: there is no disk to fill\n"), "{md}");
        assert!(md.contains("cycle 1: **lost-writes**: 7 of 1000 acknowledged commits missing"));
    }

    #[test]
    fn markdown_snapshot() {
        insta::assert_snapshot!(render(&sample_report()));
    }

    #[test]
    fn first_seen_order_is_kept() {
        assert_eq!(distinct(["b", "a", "b", "c"].into_iter()), ["b", "a", "c"]);
    }
}
