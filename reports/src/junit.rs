//! `junit.xml`: one test case per cell, failing when the verdict is worse
//! than expected, so CI systems show crash-test results natively. The
//! failure message carries the lost-write counts and the seed, which is all
//! a reader needs to reproduce the run.

use crate::{CellReport, Report};
use quick_junit::{NonSuccessKind, TestCase, TestCaseStatus, TestSuite};
use std::time::Duration;

/// Renders the report as JUnit XML.
pub fn render(report: &Report) -> String {
    let mut junit = quick_junit::Report::new(format!("crashlab {}", report.scenario));
    junit.set_time(Duration::from_secs_f64(report.duration_s.max(0.0)));
    let missing = report.merged.as_ref().map_or(&[][..], |m| &m.missing_cells[..]);
    let missing: Vec<[&str; 3]> = missing.iter().filter_map(|id| split_id(id)).collect();
    let mut workloads: Vec<&str> = Vec::new();
    for workload in report.cells.iter().map(|c| c.workload.as_str()).chain(missing.iter().map(|m| m[0])) {
        if !workloads.contains(&workload) {
            workloads.push(workload);
        }
    }
    for workload in workloads {
        let mut suite = TestSuite::new(format!("{}.{workload}", report.scenario));
        suite.add_property(("seed", report.seed.to_string().as_str()));
        suite.add_property(("run_id", report.run_id.as_str()));
        for cell in report.cells.iter().filter(|c| c.workload == workload) {
            suite.add_test_case(test_case(report, cell));
        }
        for &[_, strategy, fault] in missing.iter().filter(|m| m[0] == workload) {
            // A cell no shard reported fails: CI must not read a lost
            // runner as a pass.
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            status.set_type("missing");
            status.set_message(format!(
                "no shard reported this cell (missing shards: {})",
                report.merged.as_ref().map_or(String::new(), |m| m.missing_shards.join(", "))
            ));
            let mut case = TestCase::new(format!("{strategy} × {fault}"), status);
            case.set_classname(format!("crashlab.{workload}.{strategy}"));
            suite.add_test_case(case);
        }
        junit.add_test_suite(suite);
    }
    junit.to_string().expect("JUnit serialisation of in-memory strings cannot fail")
}

/// `workload/strategy/fault` split into its parts.
fn split_id(id: &str) -> Option<[&str; 3]> {
    let mut parts = id.splitn(3, '/');
    Some([parts.next()?, parts.next()?, parts.next()?])
}

fn test_case(report: &Report, cell: &CellReport) -> TestCase {
    let status = if cell.passed {
        TestCaseStatus::success()
    } else {
        let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
        status.set_type(cell.verdict.as_str());
        status.set_message(format!(
            "verdict {} is worse than expected {}: {} of {} acknowledged writes lost, {} invariant violations (seed {})",
            cell.verdict,
            cell.expected,
            cell.lost_acked_writes,
            cell.acked_writes,
            cell.invariant_violations,
            report.seed
        ));
        let details: Vec<String> = cell
            .cycle_details
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.detail.is_empty())
            .map(|(i, c)| format!("cycle {}: {}: {}", i + 1, c.verdict, c.detail))
            .collect();
        status.set_description(details.join("\n"));
        status
    };
    let mut case = TestCase::new(format!("{} × {}", cell.strategy, cell.fault), status);
    case.set_classname(format!("crashlab.{}.{}", cell.workload, cell.strategy));
    case.set_time(Duration::from_secs_f64(cell.cycle_details.iter().map(|c| c.cycle_ms).sum::<f64>() / 1e3));
    case.set_system_out(format!(
        "verdicts per cycle: {}; {:.0} tps; latency p50 {:.2} ms, p99 {:.2} ms; recovery p50 {:.0} ms",
        cell.verdicts.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", "),
        cell.throughput_tps,
        cell.latency_ms.p50,
        cell.latency_ms.p99,
        cell.recovery_ms.p50
    ));
    case
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::markdown::tests::sample_report;

    #[test]
    fn a_cell_worse_than_expected_is_a_failure_with_counts_and_seed() {
        let xml = render(&sample_report());
        assert!(xml.contains(r#"tests="3""#), "{xml}");
        assert!(xml.contains(r#"failures="1""#), "{xml}");
        assert!(xml.contains(
            "verdict lost-writes is worse than expected intact: 7 of 1000 acknowledged writes lost, 0 invariant violations (seed 42)"
        ));
        assert!(xml.contains(r#"name="named-volume × restart""#));
    }

    #[test]
    fn cells_no_shard_reported_fail() {
        let mut report = sample_report();
        report.merged = Some(crate::merge::Merged {
            missing_shards: vec!["hash:2/3".into()],
            missing_cells: vec!["mariadb/bind-mount/recreate".into()],
            ..Default::default()
        });
        let xml = render(&report);
        assert!(xml.contains(r#"tests="4""#), "{xml}");
        assert!(xml.contains(r#"failures="2""#), "{xml}");
        assert!(xml.contains(r#"name="bind-mount × recreate""#), "{xml}");
        assert!(xml.contains("no shard reported this cell (missing shards: hash:2/3)"), "{xml}");
    }

    #[test]
    fn junit_snapshot() {
        insta::assert_snapshot!(render(&sample_report()));
    }
}
