//! `backup-hot`, `backup-quiesced` and `backup-stopped`: the data
//! directory copied out of the container as a tar archive through the
//! Docker API (`docker cp`), and extracted into the new container before it
//! starts after a host loss. The three are one implementation because
//! they differ only in what holds the engine during the copy ([`Hold`]):
//! the same archive, the same restore.

use super::{Artifact, BackupError, BackupMethod, Site};
use crate::deploy::deployment::Deployment;
use crate::settings::QuiesceMode;
use crashlab_workloads::Workload;
use futures_util::future::BoxFuture;
use std::time::Duration;

/// Seconds a `backup-stopped` stop waits before Docker kills the server.
const STOP_TIMEOUT_S: i32 = 30;
/// How long a server stopped for a backup may take to answer again.
const BACK_WITHIN: Duration = Duration::from_secs(60);
/// The latest complete archive, and the one being written.
const LATEST: &str = "latest.tar";
const PARTIAL: &str = "partial.tar";

/// What holds the engine during the copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// Nothing: the engine writes while its files are read (`backup-hot`).
    Nothing,
    /// The engine's own command, else the container paused
    /// (`backup-quiesced`).
    Quiesce(QuiesceMode),
    /// The container stopped, then started again (`backup-stopped`).
    Stop,
}

/// A tar copy of the data directory.
pub struct Tar {
    site: Site,
    hold: Hold,
}

impl Tar {
    pub fn new(site: Site, hold: Hold) -> Tar {
        Tar { site, hold }
    }

    /// Copies the data directory out of the container into [`LATEST`],
    /// replacing the previous archive only once the copy is whole.
    async fn copy_out(&self, d: &Deployment) -> Result<Artifact, BackupError> {
        let id = d.container_id().ok_or(BackupError::NoContainer)?;
        let partial = self.site.path(PARTIAL);
        let bytes = self.site.docker.download(id, &d.spec().data_dir, &partial).await?;
        let latest = self.site.path(LATEST);
        std::fs::rename(&partial, &latest).map_err(|source| BackupError::Dir { path: latest.clone(), source })?;
        Ok(Artifact { bytes, repo_bytes: None, handle: LATEST.to_owned() })
    }

    /// The copy with the engine held still: its own command when it has
    /// one and `quiesce = "engine"`, else the container paused.
    async fn copy_quiesced(
        &self,
        d: &mut Deployment,
        workload: &dyn Workload,
        mode: QuiesceMode,
    ) -> Result<Artifact, BackupError> {
        let held = match (mode, d.addr()) {
            (QuiesceMode::Engine, Some(addr)) => workload.quiesce(addr).await.map_err(BackupError::Quiesce)?,
            _ => None,
        };
        match held {
            Some(guard) => {
                let copied = self.copy_out(d).await;
                let released = guard.release().await.map_err(BackupError::Quiesce);
                let copied = copied?;
                released?;
                Ok(copied)
            }
            None => {
                d.pause().await?;
                let copied = self.copy_out(d).await;
                d.unpause().await?;
                copied
            }
        }
    }

    /// The copy with the container stopped; done once the server answers
    /// again.
    async fn copy_stopped(&self, d: &mut Deployment, workload: &dyn Workload) -> Result<Artifact, BackupError> {
        d.stop(STOP_TIMEOUT_S).await?;
        let copied = self.copy_out(d).await;
        d.start().await?;
        d.wait_ready(workload, BACK_WITHIN, None).await.map_err(|e| BackupError::NotBack(e.detail()))?;
        tracing::debug!("server back at {:?} after the copy", d.addr());
        copied
    }
}

impl BackupMethod for Tar {
    fn describe(&self) -> String {
        match self.hold {
            Hold::Nothing => "tar of the live data directory through the Docker API while the engine writes",
            Hold::Quiesce(QuiesceMode::Engine) => {
                "tar through the Docker API with the engine quiesced (its own command, else the container paused)"
            }
            Hold::Quiesce(QuiesceMode::Pause) => "tar through the Docker API with the container paused",
            Hold::Stop => "container stopped, tar through the Docker API, container started",
        }
        .into()
    }

    fn take<'a>(
        &'a mut self,
        d: &'a mut Deployment,
        workload: &'a dyn Workload,
    ) -> BoxFuture<'a, Result<Option<Artifact>, BackupError>> {
        Box::pin(async move {
            let copied = match self.hold {
                Hold::Nothing => self.copy_out(d).await,
                Hold::Quiesce(mode) => self.copy_quiesced(d, workload, mode).await,
                Hold::Stop => self.copy_stopped(d, workload).await,
            };
            copied.map(Some)
        })
    }

    fn restore<'a>(
        &'a mut self,
        d: &'a mut Deployment,
        latest: Option<&'a Artifact>,
    ) -> BoxFuture<'a, Result<(), BackupError>> {
        Box::pin(async move {
            d.reprovision(None).await?;
            d.create().await?;
            if let Some(archive) = latest {
                // The archive holds the data directory itself: it is
                // extracted into the directory's parent.
                let id = d.container_id().ok_or(BackupError::NoContainer)?.to_owned();
                let data_dir = d.spec().data_dir.trim_end_matches('/').to_owned();
                let parent = match data_dir.rsplit_once('/') {
                    Some(("", _)) | None => "/".to_owned(),
                    Some((parent, _)) => parent.to_owned(),
                };
                self.site.docker.upload_file(&id, &parent, &self.site.path(&archive.handle)).await?;
            }
            Ok(())
        })
    }
}
