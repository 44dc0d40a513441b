//! `commit-image`: the data lives in the container's writable layer; the
//! container is committed to an image (paused by the daemon for the
//! commit) and the image saved as an archive, as a container-only setup
//! carries a container to another host. After a host loss the host's
//! images are gone: the archive is loaded and a new container created from
//! its image.

use super::{Artifact, BackupError, BackupMethod, Site};
use crate::deploy::deployment::Deployment;
use crashlab_workloads::Workload;
use futures_util::future::BoxFuture;

/// The latest complete archive, and the one being written.
const LATEST: &str = "latest-image.tar";
const PARTIAL: &str = "partial-image.tar";

/// Committed images.
pub struct CommitImage {
    site: Site,
    /// Every image id committed over the cell's life, in order, removed at
    /// its end (a loaded image has its commit's id).
    images: Vec<String>,
    /// The tag of this cycle's latest saved image, removed once a newer
    /// one is saved.
    saved: Option<String>,
}

impl CommitImage {
    pub fn new(site: Site) -> CommitImage {
        CommitImage { site, images: vec![], saved: None }
    }

    /// Commits the container (paused by the daemon for the commit) and
    /// saves the image to [`LATEST`], replacing the previous archive only
    /// once the save is whole.
    async fn commit(&mut self, d: &Deployment) -> Result<Artifact, BackupError> {
        let seq = self.site.next_seq();
        let tag = format!("{}-commit:{seq}", self.site.name);
        let docker = &self.site.docker;
        let id = d.container_id().ok_or(BackupError::NoContainer)?;
        let image = docker.commit_container(id, &tag).await?;
        self.images.push(image);
        let partial = self.site.path(PARTIAL);
        let bytes = docker.save_image(&tag, &partial).await?;
        let archive = self.site.path(LATEST);
        std::fs::rename(&partial, &archive).map_err(|source| BackupError::Dir { path: archive.clone(), source })?;
        // Only the latest is kept, as for the tar copies.
        if let Some(previous) = self.saved.replace(tag.clone())
            && let Err(e) = docker.remove_image(&previous).await
        {
            tracing::debug!("could not remove the superseded image {previous}: {e}");
        }
        Ok(Artifact { bytes, repo_bytes: None, handle: tag })
    }
}

impl BackupMethod for CommitImage {
    fn describe(&self) -> String {
        "container committed to an image (paused for the commit), image saved as an archive".into()
    }

    fn begin_cycle<'a>(&'a mut self, _d: &'a Deployment) -> BoxFuture<'a, Result<(), BackupError>> {
        // A cycle restores only its own backups.
        self.saved = None;
        Box::pin(async { Ok(()) })
    }

    fn take<'a>(
        &'a mut self,
        d: &'a mut Deployment,
        _workload: &'a dyn Workload,
    ) -> BoxFuture<'a, Result<Option<Artifact>, BackupError>> {
        Box::pin(async move { self.commit(d).await.map(Some) })
    }

    fn restore<'a>(
        &'a mut self,
        d: &'a mut Deployment,
        latest: Option<&'a Artifact>,
    ) -> BoxFuture<'a, Result<(), BackupError>> {
        Box::pin(async move {
            d.reprovision(None).await?;
            // The host's image store went with the host: what comes back
            // is what the archive holds. Newest first: a commit of a
            // container run from a loaded image is that image's child.
            for image in self.images.iter().rev() {
                self.site.docker.remove_image(image).await?;
            }
            if let Some(image) = latest {
                self.site.docker.load_image(&self.site.path(LATEST), &image.handle).await?;
                d.set_image(image.handle.clone());
            }
            d.create().await?;
            Ok(())
        })
    }

    fn teardown(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            for image in std::mem::take(&mut self.images).iter().rev() {
                if let Err(e) = self.site.docker.remove_image(image).await {
                    tracing::warn!("could not remove image {image}: {e}");
                }
            }
        })
    }
}
