//! `btrfs-snapshot`: a read-only snapshot of the btrfs subvolume the live
//! volume binds, in the loop-mounted pool the cell's storage owns; after a
//! host loss a writable snapshot of the latest becomes the new volume. The
//! pool stands for a volume plugin's snapshots, kept off the lost host.

use super::{Artifact, BackupError, BackupMethod, Site};
use crate::deploy::deployment::Deployment;
use crashlab_workloads::Workload;
use futures_util::future::BoxFuture;

/// Snapshots of the live subvolume.
pub struct BtrfsSnapshot {
    site: Site,
    /// Snapshots taken over the cell's life and not yet deleted: each
    /// cycle deletes the previous cycle's as it begins.
    snapshots: Vec<String>,
}

impl BtrfsSnapshot {
    pub fn new(site: Site) -> BtrfsSnapshot {
        BtrfsSnapshot { site, snapshots: vec![] }
    }
}

impl BackupMethod for BtrfsSnapshot {
    fn describe(&self) -> String {
        "read-only btrfs snapshot of the volume's subvolume".into()
    }

    fn begin_cycle<'a>(&'a mut self, d: &'a Deployment) -> BoxFuture<'a, Result<(), BackupError>> {
        Box::pin(async move {
            for snapshot in std::mem::take(&mut self.snapshots) {
                d.storage().delete_snapshot(&snapshot).await?;
            }
            Ok(())
        })
    }

    fn take<'a>(
        &'a mut self,
        d: &'a mut Deployment,
        _workload: &'a dyn Workload,
    ) -> BoxFuture<'a, Result<Option<Artifact>, BackupError>> {
        Box::pin(async move {
            let snapshot = format!("snap-{}", self.site.next_seq());
            d.storage().snapshot(&snapshot).await?;
            self.snapshots.push(snapshot.clone());
            // The snapshot shares its blocks with the live data: it adds
            // nothing to count until they diverge.
            Ok(Some(Artifact { bytes: 0, repo_bytes: None, handle: snapshot }))
        })
    }

    fn restore<'a>(
        &'a mut self,
        d: &'a mut Deployment,
        latest: Option<&'a Artifact>,
    ) -> BoxFuture<'a, Result<(), BackupError>> {
        Box::pin(async move {
            d.reprovision(latest.map(|snapshot| snapshot.handle.as_str())).await?;
            d.create().await?;
            Ok(())
        })
    }
}
