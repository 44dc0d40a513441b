//! Shared storage across hosts on the real daemon with real MariaDB: a
//! replicated GlusterFS volume (replica 3) on three storage containers,
//! mounted on this host with the FUSE client and bound into the
//! database's container (`glusterfs-replica`). The database's host is
//! lost and a new container starts on another mount of the same volume;
//! a storage host is lost while the load goes on. The same oracle checks
//! every acknowledged commit after each, and nothing of the run (the
//! containers, volumes, network, the FUSE mounts) may be left.

mod common;

use crashlab_reports::{CellReport, Verdict};

fn scenario(fault: &str) -> String {
    format!(
        r#"
name = "glusterfs"
seed = 7
[workload]
kind = "mariadb"
server-args = ["--innodb-flush-log-at-trx-commit=1"]
clients = 4
load = "2s"
# MariaDB initialises its data directory over the FUSE mount, which on a
# busy 2-core machine took longer than the default 60 s.
ready-timeout = "300s"
[matrix]
strategies = ["glusterfs-replica"]
faults = ["{fault}"]
cycles = 1
"#
    )
}

async fn run_cell(fault: &str) -> CellReport {
    // The storage hosts' image, besides MariaDB's.
    common::docker_with(crashlab_workloads::glusterfs::IMAGE).await;
    let (outcome, state) = common::run(&scenario(fault)).await;
    let docker = common::docker().await;
    let label = format!("crashlab.run={}", outcome.report.run_id);
    let networks = docker.networks_labelled(&label).await.unwrap();
    assert!(networks.is_empty(), "networks left behind: {networks:?}");
    let mounts = crashlab::images::mounts_under(state.path());
    assert!(mounts.is_empty(), "FUSE mounts left behind: {mounts:?}");
    assert!(outcome.complete);
    outcome.report.cells.into_iter().next().expect("one cell")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_volume_keeps_every_acked_commit_when_the_database_host_is_lost() {
    if common::skip_docker() {
        return;
    }
    let cell = run_cell("host-loss").await;
    assert_eq!(cell.verdict, Verdict::Intact, "{:?}", cell.cycle_details);
    assert!(cell.passed);
    for c in &cell.cycle_details {
        assert!(c.acked_writes > 0, "{c:?}");
        assert_eq!(c.lost_acked_writes, 0, "{c:?}");
        let r = c.replication.as_ref().expect("a shared-storage failover reports its times");
        let f = r.failover.expect("the failover was timed");
        assert!(f.detection_ms > 0.0 && f.promotion_ms > 0.0 && f.reconnection_ms > 0.0, "{f:?}");
        assert!((f.rto_ms - (f.detection_ms + f.promotion_ms + f.reconnection_ms)).abs() < 1e-6);
        assert_eq!(r.rpo_s, Some(0.0), "{r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_a_storage_host_loses_no_acked_commit_and_the_load_goes_on() {
    if common::skip_docker() {
        return;
    }
    let cell = run_cell("storage-node-loss").await;
    assert_eq!(cell.verdict, Verdict::Intact, "{:?}", cell.cycle_details);
    assert!(cell.passed);
    for c in &cell.cycle_details {
        let fired = c.fired.as_ref().expect("fired recorded");
        assert!(fired.fired && fired.what.contains("bricks online after: 2 of 3"), "{fired:?}");
        let r = c.replication.as_ref().expect("the loss is recorded");
        // The volume kept taking the load's writes without the lost host.
        assert!(r.acked_after_loss.unwrap_or(0) > 0, "{r:?}");
        assert_eq!(c.lost_acked_writes, 0, "{c:?}");
    }
}
