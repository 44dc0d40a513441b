//! `host-loss`: the host and its disks are gone. SIGKILL, the container
//! removed, the data destroyed (volume, host directory, live subvolume).
//! Recovery provisions new storage on which a backup strategy restores its
//! latest backup ([`crate::backup::Backups::restore`]); any other strategy
//! starts empty.

use super::{Behaviour, Cx, FaultError, Recovered, fired};
use crashlab_reports::Fired;
use futures_util::future::BoxFuture;

pub struct HostLoss;

impl Behaviour for HostLoss {
    fn inject<'a>(&'a self, cx: &'a mut Cx<'_>) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async move {
            // The host is gone at once: no graceful anything.
            cx.deployment.kill().await?;
            cx.deployment.remove().await?;
            cx.deployment.lose_storage().await?;
            Ok(())
        })
    }

    fn fired<'a>(&'a self, _cx: &'a mut Cx<'_>) -> BoxFuture<'a, Fired> {
        Box::pin(async { fired("the server was killed, its container removed and its data destroyed") })
    }

    fn recover<'a>(&'a self, cx: &'a mut Cx<'_>) -> BoxFuture<'a, Result<Recovered, FaultError>> {
        Box::pin(async move {
            let restored = match cx.backups.as_deref_mut() {
                Some(backups) => Some(backups.restore(cx.deployment).await?),
                None => {
                    cx.deployment.reprovision(None).await?;
                    cx.deployment.create().await?;
                    None
                }
            };
            cx.deployment.start().await?;
            Ok(Recovered { restored })
        })
    }
}
