//! Durability properties on the real daemon with real MariaDB, phase by
//! phase: write → crash → restart → verify. Each test is named after the
//! property it checks.

mod common;

use crashlab_reports::Verdict;

const DURABLE: &str = r#""--innodb-flush-log-at-trx-commit=1""#;
const ALL_STRATEGIES: &str = r#""container-layer", "anonymous-volume", "named-volume", "bind-mount", "tmpfs""#;
const DOCKER_FAULTS: &str = r#""process-kill", "restart", "recreate""#;

/// The durability table of `docs/design.md` for durable MariaDB:
/// (strategy, process-kill, restart, recreate).
const DESIGN_TABLE: [(&str, Verdict, Verdict, Verdict); 5] = [
    ("container-layer", Verdict::Intact, Verdict::Intact, Verdict::DataGone),
    ("anonymous-volume", Verdict::Intact, Verdict::Intact, Verdict::DataGone),
    ("named-volume", Verdict::Intact, Verdict::Intact, Verdict::Intact),
    ("bind-mount", Verdict::Intact, Verdict::Intact, Verdict::Intact),
    ("tmpfs", Verdict::DataGone, Verdict::DataGone, Verdict::DataGone),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_mariadb_reproduces_the_design_table() {
    if common::skip_docker() {
        return;
    }
    // Two cells at a time (`--jobs 2`): these verdicts are the storage's,
    // whatever the timing, and the 15 cells take a minute one at a time.
    let text = common::mariadb_scenario(DURABLE, ALL_STRATEGIES, DOCKER_FAULTS, 1, "");
    let (outcome, _state) = common::run_with(&text, |s| s.jobs = 2).await;
    let report = &outcome.report;
    assert!(outcome.complete);
    assert_eq!(report.cells.len(), 15);
    let mut mismatches = Vec::new();
    for (strategy, kill, restart, recreate) in DESIGN_TABLE {
        for (fault, expected) in [("process-kill", kill), ("restart", restart), ("recreate", recreate)] {
            let cell = report.cells.iter().find(|c| c.strategy == strategy && c.fault == fault).unwrap();
            assert!(cell.acked_writes > 100, "{strategy}/{fault}: too little load to judge: {cell:?}");
            if cell.verdict != expected {
                mismatches.push(format!(
                    "{strategy}/{fault}: got {}, docs/design.md's durability table says {expected}: {:?}",
                    cell.verdict, cell.cycle_details
                ));
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    // Nothing acknowledged may be lost where the data survives.
    for cell in report.cells.iter().filter(|c| c.verdict == Verdict::Intact) {
        assert_eq!(cell.lost_acked_writes, 0);
        assert!(cell.recovery_ms.max > 0.0, "recovery time measured: {cell:?}");
        assert!(cell.latency_ms.p50 > 0.0 && cell.latency_ms.p50 <= cell.latency_ms.p99);
    }
}

/// `innodb_flush_log_at_trx_commit=0` writes the redo log once a second, so
/// a killed server forgets the commits of its last second: the harness must
/// report it, with counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_log_at_trx_commit_0_loses_acked_commits_on_process_kill() {
    if common::skip_docker() {
        return;
    }
    let unsafe_args = r#""--innodb-flush-log-at-trx-commit=0""#;
    let (outcome, _state) =
        common::run(&common::mariadb_scenario(unsafe_args, r#""named-volume""#, r#""process-kill""#, 1, "")).await;
    let cell = &outcome.report.cells[0];
    assert_eq!(cell.verdict, Verdict::LostWrites, "{cell:?}");
    assert!(!cell.passed, "an unsafe setting must miss the default `intact` expectation");
    assert!(cell.lost_acked_writes > 0 && cell.lost_acked_writes < cell.acked_writes, "{cell:?}");
    assert_eq!(cell.invariant_violations, 0, "lost commits are lost whole, never half-applied");
}

/// The same durable server that survives a kill loses everything when its
/// data directory is the container's own tmpfs, even on a graceful restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tmpfs_loses_the_dataset_on_restart() {
    if common::skip_docker() {
        return;
    }
    let (outcome, _state) = common::run(&common::mariadb_scenario(DURABLE, r#""tmpfs""#, r#""restart""#, 1, "")).await;
    let cell = &outcome.report.cells[0];
    assert_eq!(cell.verdict, Verdict::DataGone, "{cell:?}");
    assert_eq!(cell.lost_acked_writes, cell.acked_writes);
}
