//! Failover on shared storage (`glusterfs-replica`,
//! [`crate::storage::gluster`]): the database's host is lost, and the
//! service starts on another host on the same volume.
//!
//! 1. the database is killed and its container removed while a monitor
//!    probes it every 10 ms (**detection**: the kill to the first failed
//!    probe), and the host's client mount goes with the host; the volume
//!    stays on its storage hosts;
//! 2. **promotion**: another host mounts the volume afresh with its own
//!    FUSE client, starts a new container on it and waits until the
//!    server answers (the engine's own crash recovery on the shared data);
//! 3. **reconnection**: a client connects and commits a write (outside
//!    the dataset, where the workload has such a write; otherwise a
//!    query). RTO is the sum of the three, measured back to back, as for
//!    the replicated strategies ([`crate::deploy::hosts`]).
//!
//! `storage-node-loss` recovers the same way, minus the monitor: the
//! server is killed and started on a fresh client mount, so that what is
//! verified is read from the surviving bricks, not from the server's
//! memory or the old client's cache.

use super::{HostsError, REPLICA_HOST};
use crate::deploy::deployment::Deployment;
use crashlab_reports::{FailoverTimes, ReplicationCycle};
use crashlab_workloads::Workload;
use std::time::{Duration, Instant};

/// How long the server on the new host gets to recover and answer.
const START_TIMEOUT: Duration = Duration::from_secs(180);
/// How long the first write on the new host may take.
const FIRST_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// `host-loss` of the database's host: SIGKILL, the container removed, the
/// host's client mount gone, while a monitor probes the server.
pub async fn lose_host(d: &mut Deployment, workload: &dyn Workload) -> Result<(), HostsError> {
    let addr = d.addr().ok_or(HostsError::Failover("the database is not running"))?;
    let killed = Instant::now();
    let detected = super::kill_while_probing(d, workload, addr, killed).await?;
    let record = shared_record(d)?;
    record.host_lost_after_ms = Some(0.0);
    record.failover = Some(FailoverTimes { detection_ms: detected.as_secs_f64() * 1e3, ..Default::default() });
    Ok(())
}

/// After [`lose_host`] (or a storage host's loss, with the server still
/// running and killed here): another host's client mounts the volume, a
/// new container starts on it, and a client's first acknowledged write is
/// timed. Returns the cycle's record.
pub async fn fail_over(d: &mut Deployment, workload: &dyn Workload) -> Result<ReplicationCycle, HostsError> {
    if d.container_id().is_some() {
        d.kill_if_running().await?;
        d.remove().await?;
        d.lose_storage().await?;
    }
    let started = Instant::now();
    d.reprovision(None).await?;
    d.create().await?;
    d.start().await?;
    let addr = d
        .wait_ready(workload, START_TIMEOUT, None)
        .await
        .map_err(|e| HostsError::NotReady { host: REPLICA_HOST.to_owned(), detail: e.detail() })?;
    let promotion = started.elapsed();
    let started = Instant::now();
    let written = match workload.replication() {
        Some(replication) => tokio::time::timeout(FIRST_WRITE_TIMEOUT, replication.write_probe(addr)).await,
        None => tokio::time::timeout(FIRST_WRITE_TIMEOUT, workload.probe(addr)).await,
    };
    match written {
        Ok(written) => written.map_err(|source| HostsError::Workload { what: "write on the new host", source })?,
        Err(_) => return Err(HostsError::FirstWriteTimeout(FIRST_WRITE_TIMEOUT)),
    }
    let reconnection = started.elapsed();
    let record = shared_record(d)?;
    let times = record.failover.get_or_insert_with(FailoverTimes::default);
    times.promotion_ms = promotion.as_secs_f64() * 1e3;
    times.reconnection_ms = reconnection.as_secs_f64() * 1e3;
    times.rto_ms = times.detection_ms + times.promotion_ms + times.reconnection_ms;
    Ok(record.clone())
}

/// The cycle's record of a deployment on shared storage.
pub(crate) fn shared_record(d: &mut Deployment) -> Result<&mut ReplicationCycle, HostsError> {
    d.topology_mut().shared_record_mut().ok_or(HostsError::Failover("the storage is not shared"))
}
