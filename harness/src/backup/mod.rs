//! Backups: the five backup strategies, how each takes a copy of the live
//! data during the load, and how the copy comes back after a host loss.
//!
//! Every backup strategy keeps the live data on a named volume. From one
//! [`interval`](crate::scenario::BackupSection::interval) after the load
//! starts, a backup is taken every interval until the fault; a backup in
//! progress when the load time is up is let finish, then the fault lands.
//!
//! | strategy | a backup | restore after `host-loss` |
//! |---|---|---|
//! | `backup-hot` | the live data directory copied out of the running container as a tar archive (the Docker API's `docker cp`), while the engine writes | a new volume; the archive extracted into a new container before it starts |
//! | `backup-quiesced` | the same copy while the engine is held still: `FLUSH TABLES WITH READ LOCK` for MariaDB, the container paused (cgroup freezer) for engines without such a command or with `quiesce = "pause"` | as `backup-hot` |
//! | `backup-stopped` | the container stopped (graceful), the copy taken, the container started again — what docker-volume-backup does | as `backup-hot` |
//! | `btrfs-snapshot` | a read-only snapshot of the btrfs subvolume the volume binds | a writable snapshot of the latest read-only one becomes the new volume |
//! | `sync-agent` | a sidecar container (`crashlab-agent sync`) mounting the volume read-only archives and gzips the directory every interval and uploads it to an object store, one object per application | a one-shot `crashlab-agent restore` container unpacks the object into a new volume |
//!
//! Only the latest backup of the current cycle is ever restored, once: a
//! restore that does not start or fails the engine's integrity check makes
//! the cycle `corrupt`, however recent the backup, and no older backup is
//! tried in its place. Each cycle starts a fresh dataset, so a backup from
//! an earlier cycle is never restored into a later one.
//!
//! What `host-loss` leaves: the tar archives and the local object store
//! live under the run directory and the btrfs snapshots in the harness's
//! pool — they stand for storage off the lost host (a backup server, an S3
//! bucket, a volume plugin's snapshots). The live volume, its subvolume and
//! the containers are destroyed.
//!
//! The measures: a backup's duration runs from its start until the copy is
//! complete and the engine writing again (for `backup-stopped`, until the
//! server answers again). The recovery point after a host loss is read
//! from the ack log, not from the backup's timestamp: the acknowledged
//! commits missing, and the seconds from the last acknowledged commit that
//! survived to the fault. The stall compares commits while a backup ran
//! with commits outside backups ([`stall`]).

use crate::docker::{Docker, DockerError};
use crate::run::RunContext;
use crate::run::deployment::{Deployment, DeploymentError};
use crate::scenario::{BackupSection, QuiesceMode, Store};
use crate::storage::{StorageError, Strategy};
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType};
use crashlab_reports::{BackupCycle, BackupRecord, Stall};
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
    #[error(transparent)]
    Agent(#[from] crate::run::agent::AgentError),
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
        Ok(())
    }

    /// Takes a backup every interval from `load_started` until `deadline`,
    /// or until cancelled. `sync-agent`'s sidecar keeps its own time.
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
        loop {
            let until = if self.method == Method::SyncAgent { deadline } else { next.min(deadline) };
            tokio::select! {
                _ = tokio::time::sleep_until(until.into()) => {}
                _ = cancel.wait_for(|c| *c) => return,
            }
            if Instant::now() >= deadline {
                return;
            }
            let at_s = load_started.elapsed().as_secs_f64();
            let started = Instant::now();
            let taken = self.take(d, workload).await;
            let duration_ms = started.elapsed().as_secs_f64() * 1e3;
            let index = self.records.len();
            match taken {
                Ok((bytes, artifact)) => {
                    self.records.push(BackupRecord { at_s, duration_ms, bytes, error: None });
                    self.latest = Some((index, artifact));
                }
                Err(e) => {
                    let error = crate::run::runner::error_chain(&e);
                    tracing::warn!("backup failed: {error}");
                    self.records.push(BackupRecord { at_s, duration_ms, bytes: 0, error: Some(error) });
                }
            }
            // Ticks missed while a long backup ran are skipped, not made up.
            while next <= Instant::now() {
                next += interval;
            }
        }
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
        }
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
                    self.records.push(BackupRecord { at_s, duration_ms, bytes: event.bytes, error: None });
                    self.latest = Some((index, Artifact::Object));
                }
                Some(error) => self.records.push(BackupRecord { at_s, duration_ms, bytes: 0, error: Some(error) }),
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
        if let Some((_, Artifact::Object)) = &latest {
            self.restore_object(d).await?;
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

    /// The cycle's backups, with the recovery point when the host was lost.
    pub fn cycle_report(&self, stall: Stall, restored: Option<Restored>, rpo_s: Option<f64>) -> BackupCycle {
        BackupCycle {
            backups: self.records.clone(),
            restored: restored.and_then(|r| r.backup),
            restore_ms: restored.map(|r| r.restore_ms),
            rpo_s,
            stall,
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
        let agent = crate::run::agent::locate()?;
        let archive = crate::run::deployment::tar_of(&agent)
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
