//! `host-loss`: the host and its disks are gone. SIGKILL, the container
//! removed, the data destroyed (volume, host directory, live subvolume).
//! Recovery provisions new storage on which a backup strategy restores its
//! latest backup ([`crate::backup::Backups::restore`]); any other strategy
//! starts empty. On a replicated strategy the primary's host is lost and
//! the service fails over to the replica ([`crate::hosts`]).

use super::{Behaviour, Cx, FaultError, Recovered, fired};
use crate::hosts;
use crashlab_reports::Fired;
use futures_util::future::BoxFuture;

pub struct HostLoss;

impl Behaviour for HostLoss {
    fn arm(&self, cx: &mut Cx<'_>) -> Result<(), FaultError> {
        if let Some(primary) = cx.deployment.addr()
            && let Some(cluster) = cx.deployment.cluster_mut()
        {
            cluster.start_sampling(primary);
        }
        Ok(())
    }

    fn inject<'a>(&'a self, cx: &'a mut Cx<'_>) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async move {
            if cx.deployment.cluster().is_some() {
                return Ok(hosts::lose_primary(cx.deployment, cx.workload).await?);
            }
            // The host is gone at once: no graceful anything.
            cx.deployment.kill().await?;
            cx.deployment.remove().await?;
            cx.deployment.lose_storage().await?;
            Ok(())
        })
    }

    fn fired<'a>(&'a self, cx: &'a mut Cx<'_>) -> BoxFuture<'a, Fired> {
        Box::pin(async move {
            let Some(record) = cx.deployment.cluster().map(|c| c.record()) else {
                return fired("the server was killed, its container removed and its data destroyed");
            };
            fired(hosts::describe(record, "the primary's host was lost (killed, removed, its volume destroyed)"))
        })
    }

    fn recover<'a>(&'a self, cx: &'a mut Cx<'_>) -> BoxFuture<'a, Result<Recovered, FaultError>> {
        Box::pin(async move {
            if cx.deployment.cluster().is_some() {
                let replication = hosts::fail_over(cx.deployment).await?;
                return Ok(Recovered { restored: None, replication: Some(replication) });
            }
            let restored = match cx.backups.as_deref_mut() {
                Some(backups) => Some(backups.restore(cx.deployment).await?),
                None => {
                    cx.deployment.reprovision(None).await?;
                    cx.deployment.create().await?;
                    None
                }
            };
            cx.deployment.start().await?;
            Ok(Recovered { restored, replication: None })
        })
    }
}
