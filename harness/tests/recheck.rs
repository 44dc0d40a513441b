//! The recheck of a broken durable cycle on the real daemon with real
//! MariaDB: write → crash → restart → verify → copy the data directory,
//! start a fresh server on the copy and verify again. Each test is named
//! after the property it checks; `crashlab::cycle`'s recheck module says
//! what the recheck does and what the verdict becomes.

mod common;

use crashlab_reports::Verdict;

/// `innodb_flush_log_at_trx_commit=0` writes the redo log once a second,
/// so a killed server forgets its last commits: the loss is in the files
/// the server recovered from, and a fresh server on a copy of them finds
/// it again. The cell expects `intact` (the default), so the cycle is
/// rechecked, and its verdict stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_commits_of_an_unsafe_setting_are_found_in_the_files_by_a_fresh_server_on_a_copy() {
    if common::skip_docker() {
        return;
    }
    let unsafe_args = r#""--innodb-flush-log-at-trx-commit=0""#;
    let (outcome, state) =
        common::run(&common::mariadb_scenario(unsafe_args, r#""named-volume""#, r#""process-kill""#, 1, "")).await;
    let cell = &outcome.report.cells[0];
    assert_eq!(cell.expected, Verdict::Intact);
    assert_eq!(cell.verdicts, [Verdict::LostWrites], "{:?}", cell.cycle_details);
    assert!(!cell.passed, "an unsafe setting must miss the default `intact` expectation");
    let detail = &cell.cycle_details[0].detail;
    let marker = "the damage is in the files: a fresh server on a copy found lost-writes (";
    let (first, copy) = detail.split_once(marker).unwrap_or_else(|| panic!("no recheck in the detail: {detail}"));
    // The copy holds what the live server recovered, so its server misses
    // the same commits: the checker's first sentence is the same.
    let missing = first.split(';').next().unwrap();
    assert!(missing.contains("acknowledged commits missing"), "{detail}");
    assert!(copy.starts_with(missing), "the copy found other damage: {detail}");
    assert!(!detail.contains("reading artefact"), "{detail}");
    eprintln!("run {}: {detail}", outcome.report.run_id);
    // The copy and its directory went with its check.
    let copies = state.path().join("runs").join(&outcome.report.run_id).join("recheck");
    let left: Vec<_> = std::fs::read_dir(&copies).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "copies left behind: {left:?}");
}
