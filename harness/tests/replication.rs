//! Replication across hosts on the real daemon with real MariaDB: a
//! primary and a replica, each a container on its own named volume on a
//! private network; the primary's host is lost and the service fails over
//! to the replica, where the same oracle checks every acknowledged commit.
//!
//! On one machine the replica's link is faster than any network, so
//! `read_binlog_speed_limit` (KiB/s, read by the replica's IO thread)
//! stands for a slower one: asynchronous replication then lags, and
//! semi-sync must make the primary wait instead of losing anything.

mod common;

use crashlab_reports::{CellReport, Verdict};

/// Durable servers, and a replica link of 100 KiB/s.
const SERVER_ARGS: &str = r#""--innodb-flush-log-at-trx-commit=1", "--read-binlog-speed-limit=100""#;

fn scenario(strategy: &str) -> String {
    scenario_of(SERVER_ARGS, &format!("\"{strategy}\""), "\"host-loss\"", 2)
}

fn scenario_of(server_args: &str, strategies: &str, faults: &str, cycles: u32) -> String {
    scenario_for("mariadb", server_args, strategies, faults, cycles)
}

fn scenario_for(kind: &str, server_args: &str, strategies: &str, faults: &str, cycles: u32) -> String {
    format!(
        r#"
name = "replication"
seed = 7
[workload]
kind = "{kind}"
server-args = [{server_args}]
clients = 4
load = "2s"
[matrix]
strategies = [{strategies}]
faults = [{faults}]
cycles = {cycles}
"#
    )
}

async fn run_cell(strategy: &str) -> CellReport {
    run_cells(&scenario(strategy)).await.into_iter().next().expect("one cell")
}

async fn run_cells(scenario: &str) -> Vec<CellReport> {
    let (outcome, _state) = common::run(scenario).await;
    let docker = common::docker().await;
    let networks = docker.networks_labelled(&format!("crashlab.run={}", outcome.report.run_id)).await.unwrap();
    assert!(networks.is_empty(), "networks left behind: {networks:?}");
    assert!(outcome.complete);
    outcome.report.cells
}

/// Every cycle failed over and timed it, and lost commits are lost whole.
fn assert_failed_over(cell: &CellReport) {
    assert!(!cell.cycle_details.is_empty(), "{cell:?}");
    for c in &cell.cycle_details {
        assert!(c.verdict <= Verdict::LostWrites, "never inconsistent, corrupt or error: {c:?}");
        assert_eq!(c.invariant_violations, 0, "{c:?}");
        assert!(c.acked_writes > 0, "{c:?}");
        let r = c.replication.as_ref().expect("a replicated cycle reports replication");
        let f = r.failover.expect("the failover was timed");
        assert!(f.detection_ms > 0.0 && f.promotion_ms > 0.0 && f.reconnection_ms > 0.0, "{f:?}");
        assert!((f.rto_ms - (f.detection_ms + f.promotion_ms + f.reconnection_ms)).abs() < 1e-6);
        assert!(r.lag_samples > 0, "lag sampled during the load: {r:?}");
        assert!(r.rpo_s.is_some());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_replication_loses_acked_commits_when_the_primary_host_is_lost() {
    if common::skip_docker() {
        return;
    }
    let cell = run_cell("replica-async").await;
    assert_failed_over(&cell);
    assert_eq!(cell.verdict, Verdict::LostWrites, "{cell:?}");
    assert!(!cell.passed, "losing acknowledged commits misses the default `intact` expectation");
    let lossy = cell.cycle_details.iter().filter(|c| c.verdict == Verdict::LostWrites).count();
    assert!(lossy >= 1, "{cell:?}");
    assert!(cell.lost_acked_writes > 0 && cell.lost_acked_writes < cell.acked_writes, "{cell:?}");
    for c in cell.cycle_details.iter().filter(|c| c.lost_acked_writes > 0) {
        let r = c.replication.as_ref().unwrap();
        // What was lost had not reached the replica when the host went.
        assert!(r.at_fault_unreceived.unwrap_or(0) > 0, "{r:?}");
        assert!(r.rpo_s.unwrap() > 0.0, "{r:?}");
        assert!(r.sync.is_none(), "asynchronous replication has no semi-sync counters");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn semisync_after_sync_loses_no_acked_commit_when_the_primary_host_is_lost() {
    if common::skip_docker() {
        return;
    }
    let cell = run_cell("replica-semisync").await;
    assert_failed_over(&cell);
    assert_eq!(cell.verdict, Verdict::Intact, "{:?}", cell.cycle_details);
    assert!(cell.passed);
    assert_eq!(cell.lost_acked_writes, 0);
    for c in &cell.cycle_details {
        let sync = c.replication.as_ref().and_then(|r| r.sync.clone()).expect("semi-sync counters read at the fault");
        assert!(!sync.fell_back && sync.on, "semi-sync must not fall back during the test: {sync:?}");
        assert!(
            sync.acknowledged.is_some_and(|n| n > 0),
            "MariaDB counts the commits its replica acknowledged: {sync:?}"
        );
    }
}

/// A partition that heals costs asynchronous replication nothing: the
/// replica catches up. Semi-sync makes commits wait through it instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healed_partition_loses_no_acked_commit_and_the_replica_catches_up() {
    if common::skip_docker() {
        return;
    }
    let durable = r#""--innodb-flush-log-at-trx-commit=1""#;
    let cells = run_cells(&scenario_of(durable, r#""replica-async", "replica-semisync""#, r#""partition""#, 1)).await;
    for cell in &cells {
        assert_eq!(cell.verdict, Verdict::Intact, "{}: {:?}", cell.strategy, cell.cycle_details);
        let r = cell.cycle_details[0].replication.as_ref().expect("replication reported");
        assert!(r.failover.is_none(), "nothing failed over: {r:?}");
    }
    let lag = |s: &str| {
        let cell = cells.iter().find(|c| c.strategy == s).unwrap();
        cell.cycle_details[0].replication.as_ref().unwrap().at_fault_unreceived.unwrap()
    };
    assert!(lag("replica-async") > 10, "async kept committing through the cut");
    assert!(lag("replica-semisync") <= 4, "semi-sync committed nothing the replica lacked but in-flight ones");
}

/// Cut the replica off, keep writing, then lose the primary's host and
/// fail over: asynchronous replication loses what the primary
/// acknowledged after the cut; semi-sync acknowledged none of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_then_failover_loses_the_commits_acked_after_the_cut_only_when_async() {
    if common::skip_docker() {
        return;
    }
    let durable = r#""--innodb-flush-log-at-trx-commit=1""#;
    let strategies = r#""replica-async", "replica-semisync""#;
    let cells = run_cells(&scenario_of(durable, strategies, r#""partition-failover""#, 1)).await;
    let cell = |s: &str| cells.iter().find(|c| c.strategy == s).unwrap();
    let asynchronous = cell("replica-async");
    assert_failed_over(asynchronous);
    assert_eq!(asynchronous.verdict, Verdict::LostWrites, "{:?}", asynchronous.cycle_details);
    for c in &asynchronous.cycle_details {
        let r = c.replication.as_ref().unwrap();
        assert!(r.host_lost_after_ms.unwrap() >= 1000.0, "the host was lost after the cut: {r:?}");
        // What was lost was acknowledged after the cut: the surviving
        // commits end about when it began, a second before the loss.
        assert!(c.lost_acked_writes > 0 && r.at_fault_unreceived.unwrap() > 0, "{c:?}");
        assert!(r.rpo_s.unwrap() >= 0.8, "{r:?}");
    }
    let semisync = cell("replica-semisync");
    assert_failed_over(semisync);
    assert_eq!(semisync.verdict, Verdict::Intact, "{:?}", semisync.cycle_details);
}

/// The scenario's `server-args` win over crashlab's replication defaults:
/// with the user's `--rpl-semi-sync-master-timeout=300` (crashlab's own
/// default is ten minutes), a replica cut off for 3 s makes semi-sync fall
/// back to asynchronous replication after 300 ms, and the primary's host
/// lost then takes the commits it acknowledged alone with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_users_semisync_timeout_is_in_force_and_a_fallback_then_a_host_loss_loses_commits() {
    if common::skip_docker() {
        return;
    }
    let scenario = r#"
name = "semisync-timeout"
seed = 7
[workload]
kind = "mariadb"
server-args = ["--innodb-flush-log-at-trx-commit=1", "--rpl-semi-sync-master-timeout=300"]
clients = 4
load = "1s"
[faults]
partition = "3s"
[matrix]
strategies = ["replica-semisync"]
faults = ["partition-failover"]
cycles = 1
"#;
    let cells = run_cells(scenario).await;
    let cell = &cells[0];
    assert_failed_over(cell);
    assert_eq!(cell.verdict, Verdict::LostWrites, "{:?}", cell.cycle_details);
    for c in &cell.cycle_details {
        let r = c.replication.as_ref().unwrap();
        assert_eq!(r.user_settings, ["--rpl-semi-sync-master-timeout=300"], "{r:?}");
        assert!(r.sync.as_ref().is_some_and(|s| s.fell_back), "semi-sync fell back: {r:?}");
        assert!(c.lost_acked_writes > 0, "{c:?}");
        let fired = c.fired.as_ref().expect("fired");
        assert!(fired.what.contains("--rpl-semi-sync-master-timeout=300"), "the report says which value: {fired:?}");
    }
}

/// PostgreSQL: a synchronous standby (`synchronous_standby_names`,
/// `synchronous_commit=on`) loses nothing when the primary's host is lost,
/// cut off or not; an asynchronous one loses what the primary
/// acknowledged while it was cut off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sync_streaming_loses_nothing_and_async_loses_what_was_acked_after_a_cut() {
    if common::skip_docker() {
        return;
    }
    let strategies = r#""streaming-async", "streaming-sync""#;
    let faults = r#""host-loss", "partition-failover""#;
    let cells = run_cells(&scenario_for("postgres", "", strategies, faults, 1)).await;
    let cell = |s: &str, f: &str| cells.iter().find(|c| c.strategy == s && c.fault == f).unwrap();
    for fault in ["host-loss", "partition-failover"] {
        let sync = cell("streaming-sync", fault);
        assert_failed_over(sync);
        assert_eq!(sync.verdict, Verdict::Intact, "{fault}: {:?}", sync.cycle_details);
        let r = sync.cycle_details[0].replication.as_ref().unwrap();
        assert_eq!(r.lag_unit, "WAL bytes");
        assert!(r.sync.as_ref().is_some_and(|s| s.on && !s.fell_back), "{r:?}");
    }
    // On one machine an asynchronous standby keeps up with a plain host
    // loss more often than not; it may lose the last commits, whole.
    assert_failed_over(cell("streaming-async", "host-loss"));
    let cut = cell("streaming-async", "partition-failover");
    assert_failed_over(cut);
    assert_eq!(cut.verdict, Verdict::LostWrites, "{:?}", cut.cycle_details);
    for c in &cut.cycle_details {
        let r = c.replication.as_ref().unwrap();
        assert!(c.lost_acked_writes > 0 && r.rpo_s.unwrap() >= 0.8, "{c:?}");
        assert!(r.sync.is_none());
    }
}
