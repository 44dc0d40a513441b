//! `storage-node-loss`: one of the shared volume's storage hosts is lost
//! during the load — SIGKILL, its container removed, its brick destroyed —
//! and the load goes on for [`LOAD_AFTER_LOSS`] on the two left. Recovery
//! kills the database and starts it on a fresh client mount, so that what
//! is verified is what the surviving bricks hold ([`crate::deploy::hosts::shared`]);
//! the report counts the commits acknowledged after the loss
//! (`replication.acked_after_loss`). The host lost is `s1`, the one the
//! client fetched the volume's description from.
//!
//! `n/a` on strategies without storage hosts.

use super::{Behaviour, Cx, FaultError, Recovered, fired, not_fired};
use crate::deploy::hosts;
use crate::deploy::topology::Host;
use crate::storage::{DataOn, StrategyDef};
use crashlab_reports::Fired;
use futures_util::future::BoxFuture;
use std::time::{Duration, Instant};

/// How long the load goes on after the storage host is lost.
pub const LOAD_AFTER_LOSS: Duration = Duration::from_secs(1);
/// The storage host lost (`s1`).
const LOST: usize = 0;

pub struct StorageNodeLoss;

impl Behaviour for StorageNodeLoss {
    fn unsupported_on(&self, strategy: &StrategyDef) -> Option<&'static str> {
        (strategy.data_on != DataOn::Gluster).then_some(
            "this strategy has no storage hosts apart from the database's own; run `storage-node-loss` on \
             `glusterfs-replica`, and `host-loss` here",
        )
    }

    fn load_goes_on(&self) -> bool {
        true
    }

    fn host(&self) -> Host {
        Host::Storage
    }

    fn arm(&self, cx: &mut Cx<'_>) -> Result<(), FaultError> {
        cx.deployment.begin_fault();
        Ok(())
    }

    fn inject<'a>(&'a self, cx: &'a mut Cx<'_>) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async move {
            let started = Instant::now();
            let volume = cx
                .deployment
                .storage_mut()
                .gluster_mut()
                .ok_or(hosts::HostsError::Failover("the storage has no storage hosts"))?;
            let killed = volume.lose_node(LOST).await.map_err(crate::storage::StorageError::from)?;
            let record = hosts::shared::shared_record(cx.deployment)?;
            record.host_lost_after_ms = Some(killed.duration_since(started).as_secs_f64() * 1e3);
            // The load's clients are told to stop only when this returns.
            tokio::time::sleep(LOAD_AFTER_LOSS).await;
            Ok(())
        })
    }

    fn fired<'a>(&'a self, cx: &'a mut Cx<'_>) -> BoxFuture<'a, Fired> {
        Box::pin(async move {
            let Some(volume) = cx.deployment.storage().gluster() else {
                return not_fired("the storage has no storage hosts");
            };
            if !volume.degraded() {
                return not_fired("no storage host was lost");
            }
            let online = match volume.bricks_online().await {
                Ok(n) => n.to_string(),
                Err(e) => format!("unknown ({})", crate::text::error_chain(&e)),
            };
            fired(format!(
                "storage host {} was lost (killed, removed, its brick destroyed) and the load went on for {:?}; \
                 bricks online after: {online} of {}",
                volume.host(LOST).unwrap_or("?"),
                LOAD_AFTER_LOSS,
                crate::storage::gluster::NODES
            ))
        })
    }

    fn recover<'a>(&'a self, cx: &'a mut Cx<'_>) -> BoxFuture<'a, Result<Recovered, FaultError>> {
        Box::pin(async move {
            let mut record = hosts::shared::fail_over(cx.deployment, cx.workload).await?;
            // The service never stopped for the storage host's loss: the
            // restart above is the harness's, for the verification, and its
            // times are no recovery objective.
            record.failover = None;
            Ok(Recovered { restored: None, replication: Some(record) })
        })
    }
}
