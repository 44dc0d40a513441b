//! `crash-states` on the real daemon: a crash point at the end of the load,
//! and every crash state the fault filesystem's model allows there (within
//! the scenario's `[explore]` bounds) checked in a fresh container on its
//! own copy of the data. Durable settings must pass in every state (no
//! false alarms); settings whose durability hangs on the order in which the
//! filesystem persists must fail in some. Each test is named after the
//! property it checks.

mod common;

use crashlab_reports::{CellReport, PointReport, Verdict};

async fn crash_states_cell(kind: &str, args: &str, max_states: u32) -> CellReport {
    let explore = format!("[explore]\nmax-states = {max_states}\n");
    let text = common::scenario(kind, args, r#""bind-mount""#, r#""crash-states""#, 1, &explore);
    let (outcome, _state) = common::run(&text).await;
    assert!(outcome.complete, "{:?}", outcome.report);
    outcome.report.cells.into_iter().next().expect("one cell")
}

fn the_point(cell: &CellReport) -> &PointReport {
    let cycle = &cell.cycle_details[0];
    assert!(cycle.fired.as_ref().is_some_and(|f| f.fired), "{cycle:?}");
    let explore = cycle.explore.as_ref().unwrap_or_else(|| panic!("the cycle explored nothing: {cycle:?}"));
    assert_eq!(explore.points.len(), 1, "{explore:?}");
    let point = &explore.points[0];
    assert!(point.error.is_none(), "{point:?}");
    assert!(point.ops > 0, "something was unsynced at the crash point: {point:?}");
    point
}

fn assert_every_state_intact(cell: &CellReport) {
    assert!(cell.acked_writes > 10, "too little load to judge: {cell:?}");
    let point = the_point(cell);
    assert!(point.states.len() > 1, "more than the live state was explored: {point:?}");
    assert!(point.distinct > 1, "{point:?}");
    assert_eq!(point.failed(), 0, "{:?}", point.first_failure);
    assert_eq!(cell.verdict, Verdict::Intact, "{:?}", cell.cycle_details);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_mariadb_is_intact_in_every_explored_crash_state() {
    if common::skip_docker() {
        return;
    }
    let cell = crash_states_cell("mariadb", r#""--innodb-flush-log-at-trx-commit=1""#, 8).await;
    assert_every_state_intact(&cell);
}

/// In rollback-journal mode a commit is the unlink of the journal; with
/// `synchronous=FULL` SQLite does not fsync the directory after it, so a
/// crash state that drops the unlink finds a hot journal and rolls the
/// acknowledged commit back. `synchronous=EXTRA` fsyncs the directory
/// before acknowledging: no state loses anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_delete_journal_loses_an_acked_commit_in_some_crash_state_unless_synchronous_extra() {
    if common::skip_docker() {
        return;
    }
    let full = crash_states_cell("sqlite", r#""--journal-mode=delete", "--synchronous=full""#, 16).await;
    let point = the_point(&full);
    let failure = point.first_failure.as_ref().unwrap_or_else(|| panic!("no state failed: {point:?}"));
    assert_eq!(failure.verdict, Verdict::LostWrites, "{failure:?}");
    assert!(failure.dropped.contains("unlink"), "the state dropped the journal's unlink: {failure:?}");
    assert_eq!(full.verdict, Verdict::LostWrites, "{:?}", full.cycle_details);
    assert!(!full.passed);

    let extra = crash_states_cell("sqlite", r#""--journal-mode=delete", "--synchronous=extra""#, 16).await;
    assert_every_state_intact(&extra);
}
