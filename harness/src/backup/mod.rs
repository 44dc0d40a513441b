//! Backups: the seven backup strategies, how each takes a copy of the live
//! data during the load, and how the copy comes back after a host loss.
//!
//! Every backup strategy keeps the live data on a named volume. From one
//! [`interval`](crate::settings::BackupSection::interval) after the load
//! starts, a backup is taken every interval until the fault; a backup in
//! progress when the load time is up is let finish, then the fault lands.
//! With fewer than [`min_backups`](crate::settings::BackupSection::min_backups)
//! completed by then (a slow disk, a long copy), backups go on back to back
//! and the fault waits for them: a host lost before the first backup
//! measures nothing of the backup.
//!
//! | strategy | a backup | restore after `host-loss` |
//! |---|---|---|
//! | `backup-hot` | the live data directory copied out of the running container as a tar archive (the Docker API's `docker cp`), while the engine writes | a new volume; the archive extracted into a new container before it starts |
//! | `backup-quiesced` | the same copy while the engine is held still: `FLUSH TABLES WITH READ LOCK` for MariaDB, the container paused (cgroup freezer) for engines without such a command or with `quiesce = "pause"` | as `backup-hot` |
//! | `backup-stopped` | the container stopped (graceful), the copy taken, the container started again — what docker-volume-backup does | as `backup-hot` |
//! | `btrfs-snapshot` | a read-only snapshot of the btrfs subvolume the volume binds | a writable snapshot of the latest read-only one becomes the new volume |
//! | `sync-agent` | a sidecar container (`crashlab-agent sync`) mounting the volume read-only archives and gzips the directory every interval and uploads it to an object store, one object per application | a one-shot `crashlab-agent restore` container unpacks the object into a new volume |
//! | `backup-restic` | a restic sidecar (Debian's `restic`) mounting the volume read-only runs `restic backup` (by Docker exec) into a repository: incremental and deduplicated, so an unchanged file costs a metadata lookup and nothing stored | a one-shot restic container restores this cycle's latest snapshot into a new volume; `restic check` checks the repository after every cycle |
//! | `commit-image` | the data lives in the container's writable layer; the container is committed to an image (paused by the daemon for the commit) and the image saved as an archive, as a container-only setup carries a container to another host | the host's images are gone: the archive is loaded and a new container created from its image |
//!
//! Only the latest backup of the current cycle is ever restored, once: a
//! restore that does not start or fails the engine's integrity check makes
//! the cycle `corrupt`, however recent the backup, and no older backup is
//! tried in its place. Each cycle starts a fresh dataset, so a backup from
//! an earlier cycle is never restored into a later one.
//!
//! What `host-loss` leaves: the tar and image archives, the local object
//! store and the restic repository live under the run directory and the
//! btrfs snapshots in the harness's pool — they stand for storage off the
//! lost host (a backup server, an S3 bucket, a volume plugin's snapshots).
//! The live volume, its subvolume, the containers and the images committed
//! on the host are destroyed.
//!
//! What a committed image keeps: the container's files as its processes
//! left them at the pause, in the page cache or not (a process kill at
//! that instant, as far as the data is concerned), and its configuration.
//! What it loses: anything mounted (volumes, bind mounts, tmpfs), which
//! commit never includes, and the processes' memory. Its archive holds
//! every layer of the image beneath, so each backup is the whole image;
//! loading it where the base layers are present (the same daemon, here)
//! skips them, which a fresh host could not.
//!
//! The measures: a backup's duration runs from its start until the copy is
//! complete and the engine writing again (for `backup-stopped`, until the
//! server answers again). The recovery point after a host loss is read
//! from the ack log, not from the backup's timestamp: the acknowledged
//! commits missing, and the seconds from the last acknowledged commit that
//! survived to the fault. The stall compares commits while a backup ran
//! with commits outside backups ([`stall`]).

use crate::deploy::deployment::{Deployment, DeploymentError};
use crate::docker::{Docker, DockerError};
use crate::run::RunContext;
use crate::settings::{BackupSection, QuiesceMode, Repository, Store};
use crate::storage::{StorageError, Strategy};
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType};
use crashlab_reports::{BackupCycle, BackupRecord, Stall, ToolCheck};
use crashlab_workloads::{AckLog, Outcome, Workload, latency_histogram};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Seconds a `backup-stopped` stop waits before Docker kills the server.
const STOP_TIMEOUT_S: i32 = 30;
/// How long the sync-agent sidecar may take to report ready.
const SIDECAR_READY: Duration = Duration::from_secs(15);
/// Where the sidecar sees the data and the local object store.
const SIDECAR_DATA: &str = "/data";
const SIDECAR_STORE: &str = "/store";
/// Where the restic containers see a repository on the host.
const RESTIC_REPO: &str = "/repo";
/// The repository's password unless `sync-env` gives `RESTIC_PASSWORD`:
/// the repository stands for a backup server, not a secret.
const RESTIC_PASSWORD: &str = "RESTIC_PASSWORD=crashlab";
/// The host name restic records: the sidecar's changes every cycle, and
/// restic picks a backup's parent snapshot (the one whose unchanged files
/// it skips) by host and paths.
const RESTIC_HOST: &str = "crashlab";
/// How long a server stopped for a backup may take to answer again.
const BACK_WITHIN: Duration = Duration::from_secs(60);

/// A backup or restore that could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Deployment(#[from] DeploymentError),
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Btrfs(#[from] crate::storage::btrfs::BtrfsError),
    #[error("hold the engine still for the copy")]
    Quiesce(#[source] crashlab_workloads::WorkloadError),
    #[error("prepare backup directory {}", path.display())]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("restart the server after the copy: {0}")]
    NotBack(String),
    #[error("the sync-agent sidecar did not report ready: {0}")]
    SidecarNotReady(String),
    #[error("`crashlab-agent restore` exited with {code}: {output}")]
    RestoreFailed { code: i64, output: String },
    #[error("`{command}` exited with {code:?}: {output}")]
    Restic { command: String, code: Option<i64>, output: String },
    #[error("`restic backup` printed no summary: {0}")]
    NoResticSummary(String),
    #[error(transparent)]
    Agent(#[from] crate::deploy::agent::AgentError),
    #[error("the deployment has no container")]
    NoContainer,
}

/// What a restore after a host loss did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Restored {
    /// Index of the backup restored in the cycle's list; `None` when the
    /// cycle had no completed backup and the service got empty storage.
    pub backup: Option<usize>,
    pub restore_ms: f64,
}

/// What the latest completed backup left to restore.
#[derive(Debug, Clone)]
enum Artifact {
    /// A tar archive of the data directory on the host.
    Tar(PathBuf),
    /// A read-only snapshot in the btrfs pool.
    Snapshot(String),
    /// The application's object in the store.
    Object,
    /// A snapshot in the restic repository, and the repository's size
    /// after it when the repository is a host directory.
    Restic { snapshot: String, repo_bytes: Option<u64> },
    /// A committed image, saved to an archive on the host.
    Image { tag: String, archive: PathBuf },
}

/// The sync-agent sidecar while it runs.
struct Sidecar {
    id: String,
    /// The load's start, in Unix milliseconds: the sidecar reports its
    /// backups in wall-clock time.
    load_start_unix_ms: f64,
}

/// How a backup strategy copies the live data; a strategy names its
/// method in [`crate::storage::TABLE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// tar of the live data directory while the engine writes.
    Hot,
    /// tar while the engine is held still.
    Quiesced,
    /// tar while the container is stopped.
    Stopped,
    /// A read-only snapshot of the btrfs subvolume under the volume.
    BtrfsSnapshot,
    /// A sidecar archives and uploads the directory every interval.
    SyncAgent,
    /// A restic sidecar backs the volume up into a repository.
    Restic,
    /// The container committed to an image, saved as an archive.
    CommitImage,
}

/// One cell's backups.
pub struct Backups {
    method: Method,
    settings: BackupSection,
    docker: Docker,
    run: RunContext,
    /// Tar archives and the local object store.
    dir: PathBuf,
    /// The cell's object name; the sync agent's object key.
    name: String,
    /// This cycle's backups, completed or failed.
    records: Vec<BackupRecord>,
    latest: Option<(usize, Artifact)>,
    /// Snapshots taken over the cell's life, deleted at the next cycle.
    snapshots: Vec<String>,
    sidecar: Option<Sidecar>,
    /// `backup-restic`'s sidecar while the load runs.
    restic: Option<String>,
    /// `commit-image`: every image id committed over the cell's life, in
    /// order, removed at its end (a loaded image has its commit's id).
    images: Vec<String>,
    /// Counts every backup and helper container, for unique names.
    seq: u32,
}

impl Backups {
    /// The backups of a cell on `strategy`; `None` unless it is a backup
    /// strategy.
    pub fn new(
        strategy: Strategy,
        settings: &BackupSection,
        docker: &Docker,
        run: &RunContext,
        name: &str,
    ) -> Option<Backups> {
        strategy.def().backup.map(|method| Backups {
            method,
            settings: settings.clone(),
            docker: docker.clone(),
            run: run.clone(),
            dir: run.dir().join("backups").join(name),
            name: name.to_owned(),
            records: vec![],
            latest: None,
            snapshots: vec![],
            sidecar: None,
            restic: None,
            images: vec![],
            seq: 0,
        })
    }

    /// In words, for the report.
    pub fn method(&self) -> String {
        match self.method {
            Method::Hot => "tar of the live data directory through the Docker API while the engine writes".into(),
            Method::Quiesced => match self.settings.quiesce {
                QuiesceMode::Engine => {
                    "tar through the Docker API with the engine quiesced (its own command, else the container paused)"
                        .into()
                }
                QuiesceMode::Pause => "tar through the Docker API with the container paused".into(),
            },
            Method::Stopped => "container stopped, tar through the Docker API, container started".into(),
            Method::BtrfsSnapshot => "read-only btrfs snapshot of the volume's subvolume".into(),
            Method::SyncAgent => format!(
                "sidecar archiving (tar.gz) and uploading to {} every interval, one object per application",
                self.settings.store.as_ref().map_or_else(|| "a local object store".to_owned(), Store::to_string)
            ),
            Method::Restic => format!(
                "restic sidecar backing the volume up every interval into {} (incremental, deduplicated)",
                self.settings
                    .repository
                    .as_ref()
                    .map_or_else(|| "a repository in a local directory".to_owned(), |r| format!("repository {r}"))
            ),
            Method::CommitImage => {
                "container committed to an image (paused for the commit), image saved as an archive".into()
            }
        }
    }

    /// Forgets the previous cycle's backups and, for `sync-agent`, starts
    /// the sidecar. Called as the load starts.
    pub async fn begin_cycle(&mut self, d: &Deployment) -> Result<(), BackupError> {
        self.records.clear();
        self.latest = None;
        std::fs::create_dir_all(&self.dir).map_err(|source| BackupError::Dir { path: self.dir.clone(), source })?;
        if let Some((pool, _)) = d.storage().btrfs() {
            for snapshot in std::mem::take(&mut self.snapshots) {
                let pool = pool.clone();
                tokio::task::spawn_blocking(move || pool.delete_subvolume(&snapshot))
                    .await
                    .expect("btrfs call panicked")?;
            }
        }
        if self.method == Method::SyncAgent {
            self.start_sidecar(d).await?;
        }
        if self.method == Method::Restic {
            self.start_restic(d).await?;
        }
        Ok(())
    }

    /// Takes a backup every interval from `load_started` until `deadline`,
    /// then back to back while fewer than
    /// [`min_backups`](BackupSection::min_backups) have completed (for at
    /// most [`BackupSection::min_backups_wait`]), or until cancelled.
    /// `sync-agent`'s sidecar keeps its own time.
    pub async fn run_until(
        &mut self,
        d: &mut Deployment,
        workload: &dyn Workload,
        load_started: Instant,
        deadline: Instant,
        cancel: &mut tokio::sync::watch::Receiver<bool>,
    ) {
        let interval = self.settings.interval;
        let mut next = load_started + interval;
        let last_chance = deadline + self.settings.min_backups_wait();
        loop {
            if Instant::now() < deadline {
                let until = if self.method == Method::SyncAgent { deadline } else { next.min(deadline) };
                tokio::select! {
                    _ = tokio::time::sleep_until(until.into()) => {}
                    _ = cancel.wait_for(|c| *c) => return,
                }
            }
            if *cancel.borrow() {
                return;
            }
            if Instant::now() >= deadline {
                // Past the load time: while fewer backups have completed
                // than the fault waits for, one more at once (the sidecar,
                // which keeps its own time, is watched instead).
                let completed = self.completed().await;
                if completed >= self.settings.min_backups as usize {
                    return;
                }
                if Instant::now() >= last_chance {
                    tracing::warn!(
                        "{completed} of {} backups completed {:.0?} past the load time; the fault fires without the rest",
                        self.settings.min_backups,
                        self.settings.min_backups_wait()
                    );
                    return;
                }
                if self.method == Method::SyncAgent {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                        _ = cancel.wait_for(|c| *c) => return,
                    }
                    continue;
                }
            } else if Instant::now() < next {
                continue;
            }
            let at_s = load_started.elapsed().as_secs_f64();
            let started = Instant::now();
            let taken = self.take(d, workload).await;
            let duration_ms = started.elapsed().as_secs_f64() * 1e3;
            let index = self.records.len();
            match taken {
                Ok((bytes, artifact)) => {
                    let repo_bytes = match &artifact {
                        Artifact::Restic { repo_bytes, .. } => *repo_bytes,
                        _ => None,
                    };
                    self.records.push(BackupRecord { at_s, duration_ms, bytes, repo_bytes, error: None });
                    self.latest = Some((index, artifact));
                }
                Err(e) => {
                    let error = crate::text::error_chain(&e);
                    tracing::warn!("backup failed: {error}");
                    self.records.push(BackupRecord { at_s, duration_ms, error: Some(error), ..Default::default() });
                }
            }
            // Ticks missed while a long backup ran are skipped, not made up.
            while next <= Instant::now() {
                next += interval;
            }
        }
    }

    /// Backups of this cycle that completed so far: the sidecar's, from
    /// its log.
    async fn completed(&self) -> usize {
        let Some(sidecar) = &self.sidecar else {
            return self.records.iter().filter(|r| r.error.is_none()).count();
        };
        let logs = self.docker.logs_all(&sidecar.id).await.unwrap_or_default();
        logs.lines().filter_map(SidecarEvent::parse).filter(|e| e.error.is_none()).count()
    }

    /// One backup, by the strategy's method: its size and what to restore.
    async fn take(&mut self, d: &mut Deployment, workload: &dyn Workload) -> Result<(u64, Artifact), BackupError> {
        self.seq += 1;
        match self.method {
            Method::Hot => self.copy_out(d).await,
            Method::Quiesced => {
                let held = match (self.settings.quiesce, d.addr()) {
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
            Method::Stopped => {
                d.stop(STOP_TIMEOUT_S).await?;
                let copied = self.copy_out(d).await;
                d.start().await?;
                d.wait_ready(workload, BACK_WITHIN, None).await.map_err(|e| BackupError::NotBack(e.detail()))?;
                tracing::debug!("server back at {:?} after the copy", d.addr());
                copied
            }
            Method::BtrfsSnapshot => {
                let (pool, live) = d.storage().btrfs().expect("a btrfs-snapshot cell's storage has a pool");
                let (pool, live) = (pool.clone(), live.to_owned());
                let snapshot = format!("snap-{}", self.seq);
                let name = snapshot.clone();
                tokio::task::spawn_blocking(move || pool.snapshot(&live, &name, true))
                    .await
                    .expect("btrfs call panicked")?;
                self.snapshots.push(snapshot.clone());
                Ok((0, Artifact::Snapshot(snapshot)))
            }
            Method::SyncAgent => unreachable!("the sync agent's sidecar takes its own backups"),
            Method::Restic => self.restic_backup().await,
            Method::CommitImage => self.commit(d).await,
        }
    }

    /// `restic backup` in the sidecar: what it added to the repository and
    /// the snapshot it made.
    async fn restic_backup(&self) -> Result<(u64, Artifact), BackupError> {
        let id = self.restic.as_deref().ok_or(BackupError::NoContainer)?;
        let before = self.local_repo().map(|dir| crate::storage::dir_size(&dir));
        let cmd = ["restic", "backup", "--json", "--quiet", "--host", RESTIC_HOST, SIDECAR_DATA].map(str::to_owned);
        let run = self.docker.exec(id, &cmd).await?;
        let output = crate::text::folded_tail(&run.output, 600);
        if run.exit_code != Some(0) {
            return Err(BackupError::Restic { command: cmd.join(" "), code: run.exit_code, output });
        }
        let summary = ResticSummary::parse(&run.output).ok_or(BackupError::NoResticSummary(output))?;
        let repo_bytes = self.local_repo().map(|dir| crate::storage::dir_size(&dir));
        // A repository on the host is measured; a remote one is taken at
        // restic's word for what it added.
        let added = match (before, repo_bytes) {
            (Some(before), Some(after)) => after.saturating_sub(before),
            _ => summary.data_added,
        };
        Ok((added, Artifact::Restic { snapshot: summary.snapshot_id, repo_bytes }))
    }

    /// Commits the container (paused by the daemon for the commit) and
    /// saves the image to `latest-image.tar`, replacing the previous
    /// archive only once the save is whole.
    async fn commit(&mut self, d: &Deployment) -> Result<(u64, Artifact), BackupError> {
        let id = d.container_id().ok_or(BackupError::NoContainer)?;
        let tag = format!("{}-commit:{}", self.name, self.seq);
        let image = self.docker.commit_container(id, &tag).await?;
        self.images.push(image);
        let partial = self.dir.join("partial-image.tar");
        let bytes = self.docker.save_image(&tag, &partial).await?;
        let archive = self.dir.join("latest-image.tar");
        std::fs::rename(&partial, &archive).map_err(|source| BackupError::Dir { path: archive.clone(), source })?;
        // Only the latest is kept, as for the tar copies.
        if let Some((_, Artifact::Image { tag: previous, .. })) = &self.latest
            && let Err(e) = self.docker.remove_image(previous).await
        {
            tracing::debug!("could not remove the superseded image {previous}: {e}");
        }
        Ok((bytes, Artifact::Image { tag, archive }))
    }

    /// Copies the data directory out of the container into `latest.tar`,
    /// replacing the previous archive only once the copy is whole.
    async fn copy_out(&self, d: &Deployment) -> Result<(u64, Artifact), BackupError> {
        let id = d.container_id().ok_or(BackupError::NoContainer)?;
        let partial = self.dir.join("partial.tar");
        let bytes = self.docker.download(id, &d.spec().data_dir, &partial).await?;
        let latest = self.dir.join("latest.tar");
        std::fs::rename(&partial, &latest).map_err(|source| BackupError::Dir { path: latest.clone(), source })?;
        Ok((bytes, Artifact::Tar(latest)))
    }

    /// Ends the cycle's backups at the fault: the sync agent's sidecar is
    /// stopped and its report read.
    pub async fn end_load(&mut self) -> Result<(), BackupError> {
        if let Some(id) = self.restic.take() {
            // Gone with the host; a backup in flight was let finish.
            self.docker.remove_container(&id).await?;
        }
        let Some(sidecar) = self.sidecar.take() else { return Ok(()) };
        // Killed, not stopped: the host goes down with everything on it,
        // and an upload in flight must not finish after the fault.
        if let Err(e) = self.docker.kill(&sidecar.id, "SIGKILL").await
            && !e.is_not_found()
        {
            tracing::debug!("sync-agent sidecar already gone: {e}");
        }
        let logs = self.docker.logs_all(&sidecar.id).await;
        self.docker.remove_container(&sidecar.id).await.ok();
        for event in logs?.lines().filter_map(SidecarEvent::parse) {
            let at_s = (event.started_unix_ms - sidecar.load_start_unix_ms) / 1e3;
            let duration_ms = event.finished_unix_ms - event.started_unix_ms;
            let index = self.records.len();
            match event.error {
                None => {
                    let record = BackupRecord { at_s, duration_ms, bytes: event.bytes, ..Default::default() };
                    self.records.push(record);
                    self.latest = Some((index, Artifact::Object));
                }
                Some(error) => {
                    self.records.push(BackupRecord { at_s, duration_ms, error: Some(error), ..Default::default() })
                }
            }
        }
        Ok(())
    }

    /// After a host loss: new storage with the latest backup on it and a
    /// new container, created but not started. Without a completed backup
    /// the storage stays empty, as it would for a strategy without backups.
    pub async fn restore(&mut self, d: &mut Deployment) -> Result<Restored, BackupError> {
        let started = Instant::now();
        let latest = self.latest.clone();
        let snapshot = match &latest {
            Some((_, Artifact::Snapshot(name))) => Some(name.as_str()),
            _ => None,
        };
        d.reprovision(snapshot).await?;
        match &latest {
            Some((_, Artifact::Object)) => self.restore_object(d).await?,
            Some((_, Artifact::Restic { snapshot, .. })) => self.restore_restic(d, snapshot).await?,
            _ => {}
        }
        if self.method == Method::CommitImage {
            // The host's image store went with the host: what comes back
            // is what the archive holds. Newest first: a commit of a
            // container run from a loaded image is that image's child.
            for image in self.images.iter().rev() {
                self.docker.remove_image(image).await?;
            }
            if let Some((_, Artifact::Image { tag, archive })) = &latest {
                self.docker.load_image(archive, tag).await?;
                d.set_image(tag.clone());
            }
        }
        d.create().await?;
        if let Some((_, Artifact::Tar(archive))) = &latest {
            let id = d.container_id().ok_or(BackupError::NoContainer)?.to_owned();
            let data_dir = d.spec().data_dir.trim_end_matches('/').to_owned();
            let parent = match data_dir.rsplit_once('/') {
                Some(("", _)) | None => "/".to_owned(),
                Some((parent, _)) => parent.to_owned(),
            };
            self.docker.upload_file(&id, &parent, archive).await?;
        }
        Ok(Restored { backup: latest.map(|(i, _)| i), restore_ms: started.elapsed().as_secs_f64() * 1e3 })
    }

    /// The cycle's backups, with the recovery point when the host was
    /// lost and, for `backup-restic`, `restic check` of the repository
    /// (run here, after the cycle's restore and verification, so that it
    /// counts in neither).
    pub async fn cycle_report(&mut self, stall: Stall, restored: Option<Restored>, rpo_s: Option<f64>) -> BackupCycle {
        let tool_check = match self.method {
            Method::Restic if self.records.iter().any(|r| r.error.is_none()) => Some(self.restic_check().await),
            _ => None,
        };
        BackupCycle {
            backups: self.records.clone(),
            restored: restored.and_then(|r| r.backup),
            restore_ms: restored.map(|r| r.restore_ms),
            rpo_s,
            stall,
            tool_check,
        }
    }

    /// The windows of this cycle's backups, in microseconds since the load
    /// began.
    pub fn windows_us(&self) -> Vec<(u64, u64)> {
        self.records
            .iter()
            .map(|r| {
                let start = (r.at_s.max(0.0) * 1e6) as u64;
                (start, start + (r.duration_ms.max(0.0) * 1e3) as u64)
            })
            .collect()
    }

    /// Removes what the cell's backups left on the host (the btrfs pool
    /// goes with the cell's storage).
    pub async fn teardown(mut self) {
        if let Some(sidecar) = self.sidecar.take() {
            self.docker.remove_container(&sidecar.id).await.ok();
        }
        if let Some(id) = self.restic.take() {
            self.docker.remove_container(&id).await.ok();
        }
        for image in std::mem::take(&mut self.images).iter().rev() {
            if let Err(e) = self.docker.remove_image(image).await {
                tracing::warn!("could not remove image {image}: {e}");
            }
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("could not remove {}: {e}", self.dir.display());
        }
    }

    /// Where the sidecar's object store is, and the mount that puts a local
    /// one in its container.
    fn store(&self) -> (String, Option<Mount>) {
        sidecar_store(self.settings.store.as_ref(), &self.dir.join("store"))
    }

    /// A container running `crashlab-agent COMMAND --dir … --store … --key
    /// … EXTRA…` with the deployment's volume at [`SIDECAR_DATA`] and the
    /// local store (if any) at [`SIDECAR_STORE`], created with the agent
    /// uploaded, not started.
    async fn agent_container(
        &mut self,
        d: &Deployment,
        command: &str,
        extra: &[String],
        read_only: bool,
    ) -> Result<String, BackupError> {
        self.seq += 1;
        let (url, store_mount) = self.store();
        let mut args: Vec<String> = [command, "--dir", SIDECAR_DATA, "--store", &url, "--key", &self.name]
            .into_iter()
            .map(str::to_owned)
            .collect();
        args.extend_from_slice(extra);
        if let Some(source) = store_mount.as_ref().and_then(|m| m.source.as_ref()) {
            std::fs::create_dir_all(source)
                .map_err(|source_err| BackupError::Dir { path: source.into(), source: source_err })?;
        }
        let mut mounts = vec![Mount {
            target: Some(SIDECAR_DATA.into()),
            source: d.storage().volume().map(str::to_owned),
            typ: Some(MountType::VOLUME),
            read_only: Some(read_only),
            ..Default::default()
        }];
        mounts.extend(store_mount);
        let config = ContainerCreateBody {
            image: Some(crashlab_workloads::agent::IMAGE.into()),
            cmd: Some(args),
            env: Some(self.settings.sync_env.clone()),
            labels: Some(self.run.labels()),
            host_config: Some(HostConfig { mounts: Some(mounts), ..Default::default() }),
            ..Default::default()
        };
        let name = format!("{}-{command}-{}", self.name, self.seq);
        let id = self.docker.create_container(&name, config).await?;
        let agent = crate::deploy::agent::locate()?;
        let archive = crate::deploy::deployment::tar_of(&agent)
            .map_err(|source| DeploymentError::Archive { path: agent.clone(), source })?;
        self.docker.upload(&id, crashlab_workloads::agent::BIN_DIR, archive.into()).await?;
        Ok(id)
    }

    async fn start_sidecar(&mut self, d: &Deployment) -> Result<(), BackupError> {
        let interval = ["--interval".to_owned(), format!("{}ms", self.settings.interval.as_millis())];
        let id = self.agent_container(d, "sync", &interval, true).await?;
        self.docker.start(&id).await?;
        let load_start_unix_ms = unix_ms(SystemTime::now());
        self.sidecar = Some(Sidecar { id: id.clone(), load_start_unix_ms });
        let deadline = Instant::now() + SIDECAR_READY;
        loop {
            let logs = self.docker.logs_all(&id).await?;
            if logs.lines().any(|l| l.contains(r#""event":"ready""#)) {
                return Ok(());
            }
            let running = self.docker.inspect(&id).await?.state.and_then(|s| s.running).unwrap_or(false);
            if !running || Instant::now() > deadline {
                let tail: String = logs.chars().rev().take(600).collect::<Vec<_>>().into_iter().rev().collect();
                return Err(BackupError::SidecarNotReady(tail.split_whitespace().collect::<Vec<_>>().join(" ")));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The repository's host directory, when it is one.
    fn local_repo(&self) -> Option<PathBuf> {
        match &self.settings.repository {
            None => Some(self.dir.join("restic")),
            Some(Repository::Dir(dir)) => Some(dir.clone()),
            Some(Repository::Backend(_)) => None,
        }
    }

    /// A container of the restic image with the repository (and, given a
    /// deployment, its volume at [`SIDECAR_DATA`]), created, not started.
    /// Without `cmd` it idles (the sidecar); with it, it runs `restic CMD…`.
    async fn restic_container(
        &mut self,
        what: &str,
        data: Option<(&Deployment, bool)>,
        cmd: Option<Vec<String>>,
    ) -> Result<String, BackupError> {
        self.seq += 1;
        let mut mounts = Vec::new();
        if let Some((d, read_only)) = data {
            mounts.push(Mount {
                target: Some(SIDECAR_DATA.into()),
                source: d.storage().volume().map(str::to_owned),
                typ: Some(MountType::VOLUME),
                read_only: Some(read_only),
                ..Default::default()
            });
        }
        let repository = match (&self.settings.repository, self.local_repo()) {
            (Some(Repository::Backend(url)), _) => url.clone(),
            (_, Some(dir)) => {
                std::fs::create_dir_all(&dir).map_err(|source| BackupError::Dir { path: dir.clone(), source })?;
                mounts.push(Mount {
                    target: Some(RESTIC_REPO.into()),
                    source: Some(dir.display().to_string()),
                    typ: Some(MountType::BIND),
                    ..Default::default()
                });
                RESTIC_REPO.to_owned()
            }
            (_, None) => unreachable!("a repository is a directory or a backend"),
        };
        // Later entries win: `sync-env` may set its own password.
        let mut env = vec![RESTIC_PASSWORD.to_owned(), format!("RESTIC_REPOSITORY={repository}")];
        env.extend(self.settings.sync_env.iter().cloned());
        let config = ContainerCreateBody {
            image: Some(crashlab_workloads::restic::IMAGE.into()),
            entrypoint: cmd.is_some().then(|| vec!["restic".to_owned()]),
            cmd,
            env: Some(env),
            labels: Some(self.run.labels()),
            host_config: Some(HostConfig { mounts: Some(mounts), ..Default::default() }),
            ..Default::default()
        };
        let name = format!("{}-restic-{what}-{}", self.name, self.seq);
        Ok(self.docker.create_container(&name, config).await?)
    }

    /// Starts the restic sidecar on the deployment's volume, creating the
    /// repository the first time.
    async fn start_restic(&mut self, d: &Deployment) -> Result<(), BackupError> {
        let id = self.restic_container("sidecar", Some((d, true)), None).await?;
        self.restic = Some(id.clone());
        self.docker.start(&id).await?;
        let init = "restic cat config >/dev/null 2>&1 || restic init";
        let run = self.docker.exec(&id, &["sh".to_owned(), "-c".to_owned(), init.to_owned()]).await?;
        if run.exit_code != Some(0) {
            return Err(BackupError::Restic {
                command: init.into(),
                code: run.exit_code,
                output: crate::text::folded_tail(&run.output, 600),
            });
        }
        Ok(())
    }

    /// Runs `restic ARGS…` in a one-shot container and waits for it.
    async fn restic_once(&mut self, what: &str, data: Option<&Deployment>, args: &[&str]) -> Result<(), BackupError> {
        let cmd: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let id = self.restic_container(what, data.map(|d| (d, false)), Some(cmd)).await?;
        let result = async {
            self.docker.start(&id).await?;
            let code = self.docker.wait(&id).await?;
            if code != 0 {
                let output = self.docker.logs_tail(&id, 8).await.unwrap_or_default();
                let command = format!("restic {}", args.join(" "));
                return Err(BackupError::Restic {
                    command,
                    code: Some(code),
                    output: crate::text::folded_tail(&output, 600),
                });
            }
            Ok(())
        }
        .await;
        self.docker.remove_container(&id).await.ok();
        result
    }

    /// Restores `snapshot` into the deployment's new volume: its path was
    /// [`SIDECAR_DATA`], so restoring at `/` puts it there.
    async fn restore_restic(&mut self, d: &Deployment, snapshot: &str) -> Result<(), BackupError> {
        self.restic_once("restore", Some(d), &["restore", snapshot, "--target", "/"]).await
    }

    /// `restic check` of the repository: its own view of whether what it
    /// stored is whole.
    async fn restic_check(&mut self) -> ToolCheck {
        let command = "restic check".to_owned();
        match self.restic_once("check", None, &["check"]).await {
            Ok(()) => ToolCheck { command, passed: true, detail: String::new() },
            Err(e) => ToolCheck { command, passed: false, detail: crate::text::error_chain(&e) },
        }
    }

    /// Unpacks the application's object into the deployment's new volume
    /// with a one-shot `crashlab-agent restore` container.
    async fn restore_object(&mut self, d: &Deployment) -> Result<(), BackupError> {
        let id = self.agent_container(d, "restore", &[], false).await?;
        let result = async {
            self.docker.start(&id).await?;
            let code = self.docker.wait(&id).await?;
            if code != 0 {
                let output = self.docker.logs_tail(&id, 5).await.unwrap_or_default();
                return Err(BackupError::RestoreFailed {
                    code,
                    output: output.split_whitespace().collect::<Vec<_>>().join(" "),
                });
            }
            Ok(())
        }
        .await;
        self.docker.remove_container(&id).await.ok();
        result
    }
}

/// The store URL the sidecar is given and the bind mount it needs: a
/// directory on the host (`store`'s `file:///DIR`, else `default_dir`)
/// is mounted at [`SIDECAR_STORE`], since the sidecar sees only its own
/// filesystem; an S3 URL is passed as written.
fn sidecar_store(store: Option<&Store>, default_dir: &std::path::Path) -> (String, Option<Mount>) {
    let dir = match store {
        Some(Store::S3(url)) => return (url.clone(), None),
        Some(Store::Dir(dir)) => dir,
        None => default_dir,
    };
    let mount = Mount {
        target: Some(SIDECAR_STORE.into()),
        source: Some(dir.display().to_string()),
        typ: Some(MountType::BIND),
        ..Default::default()
    };
    (format!("file://{SIDECAR_STORE}"), Some(mount))
}

fn unix_ms(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64() * 1e3
}

/// One line of the sync agent's report.
#[derive(Debug, Clone, PartialEq)]
struct SidecarEvent {
    started_unix_ms: f64,
    finished_unix_ms: f64,
    bytes: u64,
    error: Option<String>,
}

impl SidecarEvent {
    /// A `backup` or `backup-failed` line; `None` for anything else.
    fn parse(line: &str) -> Option<SidecarEvent> {
        let start = line.find('{')?;
        let v: serde_json::Value = serde_json::from_str(&line[start..]).ok()?;
        let ms = |key: &str| v.get(key).and_then(serde_json::Value::as_f64);
        let error = match v.get("event")?.as_str()? {
            "backup" => None,
            "backup-failed" => Some(v.get("error").and_then(|e| e.as_str()).unwrap_or("unknown error").to_owned()),
            _ => return None,
        };
        Some(SidecarEvent {
            started_unix_ms: ms("started_unix_ms")?,
            finished_unix_ms: ms("finished_unix_ms")?,
            bytes: v.get("bytes").and_then(serde_json::Value::as_u64).unwrap_or(0),
            error,
        })
    }
}

/// What `restic backup --json` said it did.
#[derive(Debug, Clone, PartialEq)]
struct ResticSummary {
    snapshot_id: String,
    /// Bytes the backup added to the repository, as restic counts them.
    data_added: u64,
}

impl ResticSummary {
    /// The `summary` line of restic's JSON output, among its others.
    fn parse(output: &str) -> Option<ResticSummary> {
        output.lines().rev().find_map(|line| {
            let v: serde_json::Value = serde_json::from_str(line.get(line.find('{')?..)?).ok()?;
            (v.get("message_type")?.as_str()? == "summary").then_some(())?;
            Some(ResticSummary {
                snapshot_id: v.get("snapshot_id")?.as_str()?.to_owned(),
                data_added: v.get("data_added").and_then(serde_json::Value::as_u64).unwrap_or(0),
            })
        })
    }
}

/// Commits inside backup windows against commits outside them, over a
/// load of `load_us` microseconds. A commit counts towards a window's
/// throughput when it was acknowledged inside it, and towards its latency
/// when the transaction overlapped it (a transaction held up by a backup
/// ends after it).
pub fn stall(log: &AckLog, windows_us: &[(u64, u64)], load_us: u64) -> Stall {
    let windows = merged(windows_us, load_us);
    let window_us: u64 = windows.iter().map(|(a, b)| b - a).sum();
    let outside_us = load_us.saturating_sub(window_us);
    let mut inside = latency_histogram();
    let mut outside = latency_histogram();
    let (mut acked_inside, mut acked_outside) = (0u64, 0u64);
    let mut max_inside = 0u64;
    let mut max_outside = 0u64;
    for ((_, outcome), span) in log.entries.iter().zip(&log.times) {
        if *outcome != Outcome::Acked || span.end_us > load_us {
            continue;
        }
        let latency = span.latency_us().clamp(1, 600_000_000);
        if windows.iter().any(|&(a, b)| a <= span.end_us && span.end_us < b) {
            acked_inside += 1;
        } else {
            acked_outside += 1;
        }
        if windows.iter().any(|&(a, b)| span.start_us < b && span.end_us > a) {
            let _ = inside.record(latency);
            max_inside = max_inside.max(latency);
        } else {
            let _ = outside.record(latency);
            max_outside = max_outside.max(latency);
        }
    }
    let per_s = |n: u64, us: u64| if us > 0 { n as f64 / (us as f64 / 1e6) } else { 0.0 };
    let p99 =
        |h: &hdrhistogram::Histogram<u64>| if h.is_empty() { 0.0 } else { h.value_at_quantile(0.99) as f64 / 1e3 };
    Stall {
        window_s: window_us as f64 / 1e6,
        outside_s: outside_us as f64 / 1e6,
        window_tps: per_s(acked_inside, window_us),
        outside_tps: per_s(acked_outside, outside_us),
        window_p99_ms: p99(&inside),
        window_max_ms: max_inside as f64 / 1e3,
        outside_p99_ms: p99(&outside),
        outside_max_ms: max_outside as f64 / 1e3,
    }
}

/// Windows clipped to the load and merged where they overlap, in order.
fn merged(windows_us: &[(u64, u64)], load_us: u64) -> Vec<(u64, u64)> {
    let mut w: Vec<(u64, u64)> =
        windows_us.iter().map(|&(a, b)| (a.min(load_us), b.min(load_us))).filter(|(a, b)| a < b).collect();
    w.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(w.len());
    for (a, b) in w {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crashlab_workloads::{Span, Transfer};

    fn log(spans: &[(u64, u64, Outcome)]) -> AckLog {
        let t = |id| Transfer { id, src: 0, dst: 1, amount: 1 };
        AckLog {
            entries: spans.iter().enumerate().map(|(i, &(_, _, o))| (t(i as u64), o)).collect(),
            times: spans.iter().map(|&(start_us, end_us, _)| Span { start_us, end_us }).collect(),
        }
    }

    #[test]
    fn a_commit_held_up_by_a_backup_counts_as_its_stall() {
        // A 1 s load, a backup from 400 to 600 ms. Fast commits outside,
        // one commit that waited out the whole backup.
        let mut spans: Vec<(u64, u64, Outcome)> =
            (0..40).map(|i| (i * 10_000, i * 10_000 + 1_000, Outcome::Acked)).collect();
        spans.push((390_000, 610_000, Outcome::Acked));
        spans.push((700_000, 0, Outcome::InDoubt));
        let s = stall(&log(&spans), &[(400_000, 600_000)], 1_000_000);
        assert_eq!(s.window_s, 0.2);
        assert_eq!(s.outside_s, 0.8);
        assert_eq!(s.window_tps, 0.0, "nothing was acknowledged inside the window");
        assert!((s.window_max_ms - 220.0).abs() < 0.5, "{s:?}");
        assert!((s.outside_max_ms - 1.0).abs() < 0.01, "{s:?}");
        assert!((s.outside_tps - 41.0 / 0.8).abs() < 1e-9, "the held-up commit ended outside: {s:?}");
        assert_eq!(s.throughput_drop_pct(), Some(100.0));
    }

    #[test]
    fn overlapping_windows_are_counted_once_and_clipped_to_the_load() {
        assert_eq!(
            merged(&[(500, 900), (100, 200), (150, 300), (950, 2_000)], 1_000),
            [(100, 300), (500, 900), (950, 1_000)]
        );
        let s = stall(&log(&[]), &[(0, 600), (300, 1_500)], 1_000);
        assert_eq!(s.window_s, 0.001);
        assert_eq!(s.outside_s, 0.0);
        assert_eq!(s.throughput_drop_pct(), None, "no time outside the windows to compare with");
    }

    #[test]
    fn a_host_directory_store_is_mounted_into_the_sidecar() {
        let default = std::path::Path::new("/state/runs/r/backups/c/store");
        let given = Store::Dir("/srv/backups".into());
        for (store, source) in [(None, default.to_str().unwrap()), (Some(&given), "/srv/backups")] {
            let (url, mount) = sidecar_store(store, default);
            assert_eq!(url, "file:///store");
            let mount = mount.expect("a bind mount");
            assert_eq!((mount.source.as_deref(), mount.target.as_deref()), (Some(source), Some("/store")));
            assert_eq!(mount.typ, Some(MountType::BIND));
        }
        let s3 = Store::S3("s3://bucket/prefix".into());
        assert_eq!(sidecar_store(Some(&s3), default), ("s3://bucket/prefix".to_owned(), None));
    }

    #[test]
    fn restics_summary_is_found_among_its_other_lines() {
        let output = "using parent snapshot 63ab8408\n\
            {\"message_type\":\"status\",\"percent_done\":1}\n\
            {\"message_type\":\"summary\",\"files_new\":0,\"data_added\":1234,\"snapshot_id\":\"286a8d6e\"}\n";
        assert_eq!(
            ResticSummary::parse(output),
            Some(ResticSummary { snapshot_id: "286a8d6e".into(), data_added: 1234 })
        );
        assert_eq!(ResticSummary::parse("Fatal: unable to open repository"), None);
    }

    #[test]
    fn sidecar_lines_parse_and_others_are_skipped() {
        let ok = r#"{"event":"backup","seq":1,"started_unix_ms":1000,"finished_unix_ms":1250,"bytes":42,"files":3}"#;
        let e = SidecarEvent::parse(ok).unwrap();
        assert_eq!((e.started_unix_ms, e.finished_unix_ms, e.bytes, e.error), (1000.0, 1250.0, 42, None));
        let failed = r#"{"event":"backup-failed","seq":2,"started_unix_ms":1,"finished_unix_ms":2,"error":"disk"}"#;
        assert_eq!(SidecarEvent::parse(failed).unwrap().error.as_deref(), Some("disk"));
        assert_eq!(SidecarEvent::parse(r#"{"event":"ready"}"#), None);
        assert_eq!(SidecarEvent::parse("plain text"), None);
    }
}
