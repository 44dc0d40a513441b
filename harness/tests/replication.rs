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
    format!(
        r#"
name = "replication"
seed = 7
[workload]
kind = "mariadb"
server-args = [{SERVER_ARGS}]
clients = 4
load = "2s"
[matrix]
strategies = ["{strategy}"]
faults = ["host-loss"]
cycles = 3
"#
    )
}

async fn run_cell(strategy: &str) -> CellReport {
    let (outcome, _state) = common::run(&scenario(strategy)).await;
    let docker = common::docker().await;
    let networks = docker.networks_labelled(&format!("crashlab.run={}", outcome.report.run_id)).await.unwrap();
    assert!(networks.is_empty(), "networks left behind: {networks:?}");
    assert!(outcome.complete);
    outcome.report.cells.into_iter().next().expect("one cell")
}

/// Every cycle failed over and timed it, and lost commits are lost whole.
fn assert_failed_over(cell: &CellReport) {
    assert_eq!(cell.cycle_details.len(), 3, "{cell:?}");
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
        assert!(sync.acknowledged > 0, "{sync:?}");
    }
}
