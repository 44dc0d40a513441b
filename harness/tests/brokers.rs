//! NATS JetStream and etcd on the real daemon, from crashlab's images of
//! Debian's packages: with NATS's default sync behaviour (its block files
//! fsynced every two minutes) a `PubAck` survives a process kill, which
//! keeps the page cache, and is lost to a power cut; with `sync_interval:
//! always` it survives both. etcd with `--unsafe-no-fsync` has the same
//! shape. A three-member NATS cluster (`cluster-3`) with the default loses
//! its PubAcks to a coordinated power loss of every member at once,
//! replicas or not, and keeps every one through a partition that cuts
//! one member off the other two; so does a three-member etcd cluster
//! with its defaults, through a power loss of every member too, and a
//! quorum queue on three RabbitMQ nodes through the power loss. Each
//! test is named after the property it checks.

mod common;

use crashlab_reports::{CellReport, Verdict};

async fn bind_mount_kill_and_power_cut(kind: &str, args: &str) -> Vec<CellReport> {
    let text = common::scenario(kind, args, r#""bind-mount""#, r#""process-kill", "host-kill""#, 1, "");
    let (outcome, _state) = common::run(&text).await;
    assert!(outcome.complete, "{:?}", outcome.report);
    outcome.report.cells
}

fn cell<'a>(cells: &'a [CellReport], fault: &str) -> &'a CellReport {
    cells.iter().find(|c| c.fault == fault).unwrap_or_else(|| panic!("no {fault} cell"))
}

/// `min_acked`: what a cell must have acknowledged to be judged; an etcd
/// transfer takes three round trips and a synced commit, a NATS publish
/// one.
fn assert_intact(cell: &CellReport, min_acked: u64) {
    assert_eq!(cell.verdict, Verdict::Intact, "{}: {:?}", cell.fault, cell.cycle_details);
    assert!(cell.acked_writes >= min_acked, "too little load to judge: {cell:?}");
    assert_eq!(cell.lost_acked_writes, 0);
}

fn assert_lost_to_the_power_cut_only(cells: &[CellReport], min_acked: u64) {
    assert_intact(cell(cells, "process-kill"), min_acked);
    let cut = cell(cells, "host-kill");
    assert_eq!(cut.verdict, Verdict::LostWrites, "{cut:?}");
    assert!(!cut.passed, "an unsafe setting must miss the default `intact` expectation");
    assert!(cut.lost_acked_writes > 0 && cut.lost_acked_writes <= cut.acked_writes, "{cut:?}");
    assert_eq!(cut.invariant_violations, 0, "lost writes are lost whole: {cut:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_default_sync_keeps_pubacks_through_process_kill_but_loses_them_on_host_kill() {
    if common::skip_docker() {
        return;
    }
    let cells = bind_mount_kill_and_power_cut("nats", "").await;
    assert_lost_to_the_power_cut_only(&cells, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_sync_always_keeps_pubacks_through_process_kill_and_host_kill() {
    if common::skip_docker() {
        return;
    }
    let cells = bind_mount_kill_and_power_cut("nats", r#""--sync-interval", "always""#).await;
    assert_intact(cell(&cells, "process-kill"), 100);
    assert_intact(cell(&cells, "host-kill"), 100);
}

/// `--unsafe-no-fsync` answers a transaction once its WAL entry is
/// written, not synced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_unsafe_no_fsync_keeps_transactions_through_process_kill_but_loses_them_on_host_kill() {
    if common::skip_docker() {
        return;
    }
    let cells = bind_mount_kill_and_power_cut("etcd", r#""--unsafe-no-fsync""#).await;
    assert_lost_to_the_power_cut_only(&cells, 30);
}

/// Three members, a stream of three replicas, the packaged default sync:
/// a PubAck means a quorum of members has the message in its page cache,
/// which a power cut of every member at once does not keep. (Killing every
/// server instead, which keeps the page cache, loses nothing: the runs in
/// docs/workloads.md; left out here to keep the test short.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_cluster_default_sync_loses_pubacks_to_a_coordinated_power_loss_of_every_member() {
    if common::skip_docker() {
        return;
    }
    let extra = "[faults]\nfsync-reaches-disk = false";
    let text = common::scenario("nats", "", r#""cluster-3""#, r#""host-kill""#, 1, extra);
    let (outcome, _state) = common::run(&text).await;
    assert!(outcome.complete, "{:?}", outcome.report);
    let cut = cell(&outcome.report.cells, "host-kill");
    assert_eq!(cut.verdict, Verdict::LostWrites, "{cut:?}");
    assert!(cut.acked_writes >= 30, "too little load to judge: {cut:?}");
    assert!(cut.lost_acked_writes > 0 && cut.lost_acked_writes <= cut.acked_writes, "{cut:?}");
    assert_eq!(cut.invariant_violations, 0, "lost writes are lost whole: {cut:?}");
    let fired: Vec<&str> = cut.cycle_details.iter().filter_map(|c| c.fired.as_ref().map(|f| f.what.as_str())).collect();
    assert!(fired.iter().all(|f| f.contains("coordinated power cut of all 3 members")), "{fired:?}");
}

/// `fired` of every cycle of `cell`.
fn fired(cell: &CellReport) -> Vec<&str> {
    cell.cycle_details.iter().filter_map(|c| c.fired.as_ref().map(|f| f.what.as_str())).collect()
}

fn assert_partition_fired(cell: &CellReport) {
    let fired = fired(cell);
    assert!(!fired.is_empty() && fired.iter().all(|f| f.contains("member h3's host was cut off")), "{fired:?}");
}

/// The last member is cut off the other two for a second while the load
/// publishes at the first, with the majority; every PubAck must survive
/// the heal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_cluster_keeps_every_puback_through_a_partition_of_one_member() {
    if common::skip_docker() {
        return;
    }
    let text = common::scenario("nats", "", r#""cluster-3""#, r#""partition""#, 1, "");
    let (outcome, _state) = common::run(&text).await;
    assert!(outcome.complete, "{:?}", outcome.report);
    let cut = cell(&outcome.report.cells, "partition");
    assert_intact(cut, 30);
    assert_partition_fired(cut);
}

/// etcd's defaults on three members: a transaction is answered once a
/// majority has fdatasynced it, so neither a power loss of every member
/// at once nor a partition of one member loses an answered one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "CI's time: the NATS cluster tests cover cluster-3's power loss and partition in the default suite; \
            this one (~30 s) runs with --ignored, its runs are in docs/workloads.md"]
async fn etcd_cluster_keeps_transactions_through_a_coordinated_power_loss_and_a_partition() {
    if common::skip_docker() {
        return;
    }
    let extra = "[faults]\nfsync-reaches-disk = false";
    let text = common::scenario("etcd", "", r#""cluster-3""#, r#""host-kill", "partition""#, 1, extra);
    let (outcome, _state) = common::run(&text).await;
    assert!(outcome.complete, "{:?}", outcome.report);
    let (power, cut) = (cell(&outcome.report.cells, "host-kill"), cell(&outcome.report.cells, "partition"));
    assert_intact(power, 30);
    assert!(fired(power).iter().all(|f| f.contains("coordinated power cut of all 3 members")), "{power:?}");
    assert_intact(cut, 30);
    assert_partition_fired(cut);
}

/// Quorum queues on three RabbitMQ nodes: a confirm means a quorum of the
/// queue's members has fdatasynced the message, so a power loss of every
/// node at once loses no confirmed one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "CI's time: it needs the RabbitMQ image, which CI does not build (~2 min), and ~30 s; it runs with \
            --ignored, its runs are in docs/workloads.md"]
async fn rabbitmq_quorum_queue_on_three_nodes_keeps_confirms_through_a_coordinated_power_loss() {
    if common::skip_docker() {
        return;
    }
    let extra = "[faults]\nfsync-reaches-disk = false";
    let text =
        common::scenario("rabbitmq", r#""--queue-type", "quorum""#, r#""cluster-3""#, r#""host-kill""#, 1, extra);
    let (outcome, _state) = common::run(&text).await;
    assert!(outcome.complete, "{:?}", outcome.report);
    let power = cell(&outcome.report.cells, "host-kill");
    assert_intact(power, 30);
    assert!(fired(power).iter().all(|f| f.contains("coordinated power cut of all 3 members")), "{power:?}");
}
