//! A pass must mean something: cycles that put nothing at stake, or whose
//! fault did not do what it names, are `error` with the reason in one
//! line, never `intact`; a plan with nothing to run is refused. Each class
//! is run for real.

mod common;

use crashlab_reports::{CellReport, Report, Verdict};
use std::process::Command;

fn cell<'a>(report: &'a Report, strategy: &str, fault: &str) -> &'a CellReport {
    report
        .cells
        .iter()
        .find(|c| c.strategy == strategy && c.fault == fault)
        .unwrap_or_else(|| panic!("no cell {strategy}/{fault} in {:?}", report.cells))
}

/// The one-line reason of a cell's first cycle.
fn reason(c: &CellReport) -> &str {
    &c.cycle_details[0].detail
}

/// Redis with `MULTI` disabled refuses every transfer while its setup (plain
/// commands) works: the load acknowledges nothing, so the kill after it
/// proves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_that_acknowledged_nothing_is_an_error_naming_the_first_client_error() {
    if common::skip_docker() {
        return;
    }
    let args = r#""--appendonly", "yes", "--appendfsync", "always", "--rename-command", "MULTI", """#;
    let text = common::scenario("redis", args, r#""named-volume""#, r#""process-kill""#, 1, "");
    let (outcome, _state) = common::run(&text).await;
    let c = cell(&outcome.report, "named-volume", "process-kill");
    assert_eq!(c.verdict, Verdict::Error, "{c:#?}");
    assert!(!c.passed && !outcome.report.passed());
    assert_eq!(c.acked_writes, 0);
    let why = reason(c);
    assert!(why.contains("acknowledged no write") && why.contains("MULTI"), "{why}");
    assert!(!why.contains('\n'), "one line: {why}");
}

/// A disk-full budget the load never spends and an `eio` rule that never
/// matches are faults that did not fire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_faults_that_never_fired_are_errors_not_passes() {
    if common::skip_docker() {
        return;
    }
    let knobs = "[faults]\ndisk-full-after = \"64GiB\"\nio-error = \"eio:fsync:10000000\"\n";
    let args = r#""--innodb-flush-log-at-trx-commit=1""#;
    let text = common::mariadb_scenario(args, r#""bind-mount""#, r#""disk-full", "io-error""#, 1, knobs);
    let (outcome, _state) = common::run(&text).await;
    let report = &outcome.report;
    assert!(!report.passed());
    let full = cell(report, "bind-mount", "disk-full");
    assert_eq!(full.verdict, Verdict::Error, "{full:#?}");
    assert!(full.acked_writes > 0, "writes were at stake: {full:#?}");
    let fired = full.cycle_details[0].fired.as_ref().expect("the fault's outcome is reported");
    assert!(!fired.fired);
    assert!(reason(full).contains("disk-full did not fire") && reason(full).contains("never filled"), "{full:#?}");
    let eio = cell(report, "bind-mount", "io-error");
    assert_eq!(eio.verdict, Verdict::Error, "{eio:#?}");
    assert!(reason(eio).contains("io-error did not fire") && reason(eio).contains("never matched"), "{eio:#?}");
}

/// A scenario whose every cell is `n/a` exits 2 with the reasons, before
/// anything is created; `validate` says the same.
#[test]
fn a_scenario_with_nothing_to_run_exits_2_with_the_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("all-na.toml");
    std::fs::write(
        &path,
        "name = \"all-na\"\n[workload]\nkind = \"mariadb\"\n[matrix]\nstrategies = [\"container-layer\", \"tmpfs\"]\n\
         faults = [\"torn-write\", \"disk-full\"]\n",
    )
    .unwrap();
    for command in ["validate", "run"] {
        let out = Command::new(env!("CARGO_BIN_EXE_crashlab"))
            .args([command, path.to_str().unwrap()])
            .env("CRASHLAB_STATE_DIR", dir.path().join("state"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
        assert!(stderr.contains("nothing to run"), "{command}: {stderr}");
        assert!(stderr.contains("container-layer × torn-write") && stderr.contains("tmpfs is memory"), "{stderr}");
        assert!(!dir.path().join("state").join("runs").exists(), "{command} created nothing");
    }
}
