//! PostgreSQL and Redis on the real daemon: their durable settings keep
//! every acknowledged write through the Docker-only faults where the data
//! survives, tmpfs loses the dataset, and each known-unsafe setting is
//! caught with counts. Each test is named after the property it checks.

mod common;

use crashlab_reports::{CellReport, Verdict};

const PG_DURABLE: &str = r#""-c", "synchronous_commit=on", "-c", "fsync=on""#;
const REDIS_DURABLE: &str = r#""--appendonly", "yes", "--appendfsync", "always""#;
const NAMED: &str = r#""named-volume""#;
const KILL: &str = r#""process-kill""#;

async fn cells(kind: &str, args: &str, strategies: &str, faults: &str, cycles: u32) -> Vec<CellReport> {
    let (outcome, _state) = common::run(&common::scenario(kind, args, strategies, faults, cycles, "")).await;
    assert!(outcome.complete, "{:?}", outcome.report);
    outcome.report.cells
}

fn assert_intact(cell: &CellReport) {
    assert_eq!(cell.verdict, Verdict::Intact, "{}/{}: {:?}", cell.strategy, cell.fault, cell.cycle_details);
    assert!(cell.acked_writes > 100, "too little load to judge: {cell:?}");
    assert_eq!(cell.lost_acked_writes, 0);
    assert!(cell.recovery_ms.max > 0.0, "recovery time measured: {cell:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_postgres_keeps_acked_commits_through_kill_and_restart() {
    if common::skip_docker() {
        return;
    }
    for cell in cells("postgres", PG_DURABLE, NAMED, r#""process-kill", "restart""#, 1).await {
        assert_intact(&cell);
        // crashlab's image has data checksums, so nothing went unchecked.
        assert!(cell.cycle_details.iter().all(|c| c.detail.is_empty()), "{:?}", cell.cycle_details);
    }
}

/// `synchronous_commit=off` acknowledges a commit before its WAL is
/// flushed; the WAL writer flushes every 200 ms, so a killed server forgets
/// the commits still in its WAL buffers, even though the page cache
/// survives a process kill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_synchronous_commit_off_loses_acked_commits_on_process_kill() {
    if common::skip_docker() {
        return;
    }
    let cells = cells("postgres", r#""-c", "synchronous_commit=off""#, NAMED, KILL, 2).await;
    let cell = &cells[0];
    assert_eq!(cell.verdict, Verdict::LostWrites, "{cell:?}");
    assert!(!cell.passed, "an unsafe setting must miss the default `intact` expectation");
    assert!(cell.lost_acked_writes > 0 && cell.lost_acked_writes < cell.acked_writes, "{cell:?}");
    assert_eq!(cell.invariant_violations, 0, "lost commits are lost whole, never half-applied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_on_tmpfs_loses_the_dataset_on_restart() {
    if common::skip_docker() {
        return;
    }
    let cells = cells("postgres", PG_DURABLE, r#""tmpfs""#, r#""restart""#, 1).await;
    let cell = &cells[0];
    assert_eq!(cell.verdict, Verdict::DataGone, "{cell:?}");
    assert_eq!(cell.lost_acked_writes, cell.acked_writes);
    assert!(cell.acked_writes > 0);
}

/// Also runs `redis-check-aof` in the container after each recovery: an
/// AOF it rejects would make the cell `corrupt`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_redis_keeps_acked_transactions_through_kill_and_restart() {
    if common::skip_docker() {
        return;
    }
    for cell in cells("redis", REDIS_DURABLE, NAMED, r#""process-kill", "restart""#, 1).await {
        assert_intact(&cell);
    }
}

/// Redis hands every AOF write to the kernel before it replies, whatever
/// `appendfsync` says, and a process kill keeps the kernel's page cache:
/// `appendfsync no` is unsafe only against power loss, and the harness
/// must not cry wolf here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_appendfsync_no_survives_process_kill() {
    if common::skip_docker() {
        return;
    }
    let cells = cells("redis", r#""--appendfsync", "no""#, NAMED, KILL, 1).await;
    assert_intact(&cells[0]);
}

/// With the AOF off Redis keeps only its last snapshot (the one taken at
/// setup): a killed server comes back without any transaction the load
/// made, every one of them acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_without_aof_loses_every_acked_transaction_on_process_kill() {
    if common::skip_docker() {
        return;
    }
    let cells = cells("redis", r#""--appendonly", "no""#, NAMED, KILL, 1).await;
    let cell = &cells[0];
    assert_eq!(cell.verdict, Verdict::LostWrites, "{cell:?}");
    assert!(!cell.passed);
    assert!(cell.acked_writes > 100);
    assert_eq!(cell.lost_acked_writes, cell.acked_writes, "{cell:?}");
    assert_eq!(cell.invariant_violations, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_on_tmpfs_loses_the_dataset_on_process_kill() {
    if common::skip_docker() {
        return;
    }
    let cells = cells("redis", REDIS_DURABLE, r#""tmpfs""#, KILL, 1).await;
    let cell = &cells[0];
    assert_eq!(cell.verdict, Verdict::DataGone, "{cell:?}");
    assert_eq!(cell.lost_acked_writes, cell.acked_writes);
}
