//! `host-loss`: the host and its disks are gone. SIGKILL, the container
//! removed, the data destroyed (volume, host directory, live subvolume).
//! Recovery provisions new storage on which a backup strategy restores its
//! latest backup ([`crate::backup::Backups::restore`]); any other strategy
//! starts empty. On a replicated strategy the primary's host is lost and
//! the service fails over to the replica ([`crate::deploy::hosts`]); on shared
//! storage (`glusterfs-replica`) the volume survives, and a new container
//! starts on another host's mount of it ([`crate::deploy::hosts::shared`]).

use super::{Behaviour, Cx, FaultError, Recovered, fired};
use crate::deploy::hosts;
use crashlab_reports::Fired;
use futures_util::future::BoxFuture;

pub struct HostLoss;

impl Behaviour for HostLoss {
    fn arm(&self, cx: &mut Cx<'_>) -> Result<(), FaultError> {
        hosts::shared::start_record(cx.deployment);
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
            if cx.deployment.storage().gluster().is_some() {
                return Ok(hosts::shared::lose_host(cx.deployment, cx.workload).await?);
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
            if cx.deployment.storage().gluster().is_some() {
                return fired(
                    "the database's host was lost (killed, its container removed, its client mount of the shared \
                     volume gone); the volume stayed on its storage hosts",
                );
            }
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
            if cx.deployment.storage().gluster().is_some() {
                let record = hosts::shared::fail_over(cx.deployment, cx.workload).await?;
                return Ok(Recovered { restored: None, replication: Some(record) });
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
