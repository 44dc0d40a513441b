//! SQLite and the fsync-log probe, hosted by `crashlab-agent` in the
//! container, on the real daemon: their durable settings keep every
//! acknowledged write through a process kill (and, for the probe, a power
//! cut), tmpfs loses the dataset, and the known-unsafe settings, which a
//! process kill cannot expose since the page cache survives it, are caught
//! by `host-kill`. Each test is named after the property it checks.
//!
//! The agent binary comes from the same cargo build as these tests
//! (`cargo test --workspace` builds it); see `crashlab::deploy::agent::locate`.

mod common;

use crashlab_reports::{CellReport, Verdict};

async fn cells(kind: &str, args: &str, strategies: &str, faults: &str, cycles: u32) -> Vec<CellReport> {
    let text = common::scenario(kind, args, strategies, faults, cycles, "");
    let (outcome, _state) = common::run(&text).await;
    assert!(outcome.complete, "{:?}", outcome.report);
    outcome.report.cells
}

fn cell<'a>(cells: &'a [CellReport], strategy: &str, fault: &str) -> &'a CellReport {
    cells.iter().find(|c| c.strategy == strategy && c.fault == fault).unwrap_or_else(|| panic!("no {strategy}/{fault}"))
}

fn assert_intact(cell: &CellReport) {
    assert_eq!(cell.verdict, Verdict::Intact, "{}/{}: {:?}", cell.strategy, cell.fault, cell.cycle_details);
    assert!(cell.acked_writes > 100, "too little load to judge: {cell:?}");
    assert_eq!(cell.lost_acked_writes, 0);
}

fn assert_gone(cell: &CellReport) {
    assert_eq!(cell.verdict, Verdict::DataGone, "{cell:?}");
    assert_eq!(cell.lost_acked_writes, cell.acked_writes);
}

/// Only a power cut tells an unsafe setting apart: the process kill keeps
/// the page cache, the host kill drops what was never fsynced.
fn assert_caught_only_by_host_kill(cells: &[CellReport]) {
    assert_intact(cell(cells, "bind-mount", "process-kill"));
    let cut = cell(cells, "bind-mount", "host-kill");
    assert_eq!(cut.verdict, Verdict::LostWrites, "{cut:?}");
    assert!(!cut.passed, "an unsafe setting must miss the default `intact` expectation");
    assert!(cut.lost_acked_writes > 0 && cut.lost_acked_writes <= cut.acked_writes, "{cut:?}");
    assert_eq!(cut.invariant_violations, 0, "lost commits are lost whole: {cut:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_sqlite_keeps_acked_commits_through_process_kill_and_tmpfs_loses_them() {
    if common::skip_docker() {
        return;
    }
    let args = r#""--journal-mode=wal", "--synchronous=full""#;
    let cells = cells("sqlite", args, r#""named-volume", "tmpfs""#, r#""process-kill""#, 1).await;
    assert_intact(cell(&cells, "named-volume", "process-kill"));
    assert_gone(cell(&cells, "tmpfs", "process-kill"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_fsync_log_keeps_acked_records_through_process_kill_and_power_loss_and_tmpfs_loses_them() {
    if common::skip_docker() {
        return;
    }
    let cells = cells("fsync-log", r#""--fsync-every=1""#, r#""named-volume", "tmpfs""#, r#""process-kill""#, 1).await;
    assert_intact(cell(&cells, "named-volume", "process-kill"));
    assert_gone(cell(&cells, "tmpfs", "process-kill"));
    let cells = cells_bind_host_kill("fsync-log", r#""--fsync-every=1""#).await;
    assert_intact(cell(&cells, "bind-mount", "host-kill"));
}

async fn cells_bind_host_kill(kind: &str, args: &str) -> Vec<CellReport> {
    cells(kind, args, r#""bind-mount""#, r#""process-kill", "host-kill""#, 1).await
}

/// `synchronous=OFF` hands each commit to the kernel and does not wait for
/// the disk: nothing is lost to a process kill, commits are lost to a
/// power cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_synchronous_off_survives_process_kill_but_loses_acked_commits_on_host_kill() {
    if common::skip_docker() {
        return;
    }
    let cells = cells_bind_host_kill("sqlite", r#""--journal-mode=wal", "--synchronous=off""#).await;
    assert_caught_only_by_host_kill(&cells);
}

/// With `--fsync-every=0` the probe acknowledges a record once `pwrite`
/// returned: the same shape as `synchronous=OFF`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsync_log_without_fsync_survives_process_kill_but_loses_acked_records_on_host_kill() {
    if common::skip_docker() {
        return;
    }
    let cells = cells_bind_host_kill("fsync-log", r#""--fsync-every=0""#).await;
    assert_caught_only_by_host_kill(&cells);
}
