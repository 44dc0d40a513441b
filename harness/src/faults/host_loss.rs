//! `host-loss`: the host and its disks are gone. SIGKILL, the container
//! removed, the data destroyed (volume, host directory, live subvolume).
//! Recovery provisions new storage on which a backup strategy restores its
//! latest backup ([`crate::backup::Backups::restore`]); any other strategy
//! starts empty. On a replicated strategy the primary's host is lost and
//! the service fails over to the replica ([`crate::deploy::hosts`]); on shared
//! storage (`glusterfs-replica`) the volume survives, and a new container
//! starts on another host's mount of it ([`crate::deploy::hosts::shared`]).
//! Which of these happens is the deployment's [`crate::deploy::topology`]'s
//! business: the fault asks it to lose the host and to fail over.

use super::{Behaviour, Cx, Fault, FaultError, Recovered, fired};
use crate::deploy::topology::FailOver;
use crashlab_reports::Fired;
use futures_util::future::BoxFuture;

pub struct HostLoss;

impl Behaviour for HostLoss {
    fn loses_host(&self) -> bool {
        true
    }

    fn simpler(&self) -> Option<Fault> {
        Some(Fault::HostKill)
    }

    fn arm(&self, cx: &mut Cx<'_>) -> Result<(), FaultError> {
        cx.deployment.begin_fault();
        Ok(())
    }

    fn inject<'a>(&'a self, cx: &'a mut Cx<'_>) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async move { Ok(cx.deployment.lose_host(cx.workload).await?) })
    }

    fn fired<'a>(&'a self, cx: &'a mut Cx<'_>) -> BoxFuture<'a, Fired> {
        Box::pin(async move { fired(cx.deployment.describe_host_loss()) })
    }

    fn recover<'a>(&'a self, cx: &'a mut Cx<'_>) -> BoxFuture<'a, Result<Recovered, FaultError>> {
        Box::pin(async move {
            if let FailOver::Served(replication) = cx.deployment.fail_over(cx.workload).await? {
                return Ok(Recovered { restored: None, replication: Some(*replication) });
            }
            // No host stood by: a new one, from the latest backup where
            // the strategy keeps backups, else empty.
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
