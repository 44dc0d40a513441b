//! Backups: the backup strategies, how each takes a copy of the live
//! data during the load, and how the copy comes back after a host loss.
//!
//! A backup method is one file of this module implementing
//! [`BackupMethod`] — what it needs before the load, a backup, what goes
//! with the lost host, the restore, its words for the report, its
//! teardown — registered once, in `method`, under the
//! [`BackupKind`] its strategy's row in [`crate::storage::TABLE`] names.
//! [`Backups`] keeps what all methods share: the schedule and the
//! records. `tar.rs` holds the three tar copies (hot, quiesced, stopped),
//! which differ only in what holds the engine during the copy;
//! `btrfs_snapshot.rs`, `sync_agent.rs`, `restic.rs`, `commit_image.rs`,
//! `mariabackup.rs` and `pgbackrest.rs` one method each; `wal_stream.rs`
//! adds a stream to `pgbackrest.rs`'s, and `binlog_stream.rs` one to
//! `mariabackup.rs`'s.
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
//! | `backup-mariabackup` | a sidecar of Debian's `mariadb-backup` sharing the server's network and mounting its volume read-only takes a hot physical backup (by Docker exec): the cycle's first full, each later one incremental on the one before (`--incremental-basedir`) | a one-shot container copies the full backup into a new volume, runs `--prepare` and applies the incrementals in order (`--prepare --incremental-dir`); its outcome, with the LSNs applied or the tool's error, is the cycle's tool check |
//! | `backup-pgbackrest` | PostgreSQL archives every WAL segment with pgBackRest (in the server's image) into a repository off the host; `pgbackrest backup` by Docker exec in the server's container: the cycle's first full, each later one incremental | a one-shot container of the server's image runs `pgbackrest restore` of the cycle's latest backup into a new volume; the server then replays every archived segment to the end of the archive; `pgbackrest verify` after every cycle |
//! | `wal-stream` | as `backup-pgbackrest`, and a sidecar of the server's image in its network namespace streams the WAL with `pg_receivewal` into a directory off the host as the server writes it | as `backup-pgbackrest`, with the streamed files (the segment in progress included) copied into the new cluster's `pg_wal`: recovery replays the archive, then what only the stream has |
//! | `wal-stream-sync` | as `wal-stream`, with the stream named in `synchronous_standby_names` once it streams (`pg_receivewal --synchronous`): a commit is acknowledged once the stream has flushed it | as `wal-stream` |
//! | `binlog-stream` | as `backup-mariabackup`, with the server's binary log on and a sidecar of the server's image in its network namespace streaming it with `mariadb-binlog --read-from-remote-server --raw --stop-never` into a directory off the host as the server writes it | as `backup-mariabackup`, then a one-shot container of the server's image replays the streamed binlogs onto the prepared backup from the binlog position it recorded, before the server starts |
//! | `commit-image` | the data lives in the container's writable layer; the container is committed to an image (paused by the daemon for the commit) and the image saved as an archive, as a container-only setup carries a container to another host | the host's images are gone: the archive is loaded and a new container created from its image |
//!
//! A point-in-time restore drill (`[backup] restore-to`, see
//! [`crate::settings::RestoreTo`]) restores instead the latest backup that
//! ended before the target and has the method bring it forward to that
//! instant ([`BackupMethod::restore_to`]; only methods whose
//! [`BackupKind::restores_to_a_point`] keep a log to replay, and the
//! scenario refuses the key for the others). The cycle is then judged
//! against the ack log cut at the target
//! ([`crashlab_workloads::AckLog::restored_to`]), and its recovery point
//! runs to the target.
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
use crate::settings::BackupSection;
use crate::storage::{BackupKind, StorageError, Strategy};
use bollard::models::{Mount, MountType};
use crashlab_reports::{BackupCycle, BackupRecord, RestoreStep, Stall, ToolCheck};
use crashlab_workloads::{AckLog, LogPosition, Outcome, Workload, latency_histogram};
use futures_util::future::BoxFuture;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// A bind mount of the host directory `dir` at `target` in a sidecar or
/// one-shot container: the backup host's directories are the daemon's
/// host's, as the cell's bind mounts are.
fn bind(dir: &Path, target: &str, read_only: bool) -> Mount {
    Mount {
        target: Some(target.into()),
        source: Some(dir.display().to_string()),
        typ: Some(MountType::BIND),
        read_only: Some(read_only),
        ..Default::default()
    }
}

mod binlog_stream;
mod btrfs_snapshot;
mod commit_image;
mod mariabackup;
mod pgbackrest;
mod restic;
mod sync_agent;
mod tar;
mod wal_stream;

/// Where a sidecar (sync agent, restic) sees the live data.
const SIDECAR_DATA: &str = "/data";

/// How often the schedule looks again at a method that keeps its own time
/// while the fault waits for its backups.
const POLL: Duration = Duration::from_millis(200);

/// The one place a backup method is registered: the implementation of
/// each [`BackupKind`] a strategy names. No arm is a catch-all, so a new
/// kind is a compile error here until it has its method.
fn method(kind: BackupKind, site: Site, settings: &BackupSection) -> Box<dyn BackupMethod> {
    match kind {
        BackupKind::Hot => Box::new(tar::Tar::new(site, tar::Hold::Nothing)),
        BackupKind::Quiesced => Box::new(tar::Tar::new(site, tar::Hold::Quiesce(settings.quiesce))),
        BackupKind::Stopped => Box::new(tar::Tar::new(site, tar::Hold::Stop)),
        BackupKind::BtrfsSnapshot => Box::new(btrfs_snapshot::BtrfsSnapshot::new(site)),
        BackupKind::SyncAgent => Box::new(sync_agent::SyncAgent::new(site, settings)),
        BackupKind::Restic => Box::new(restic::Restic::new(site, settings)),
        BackupKind::CommitImage => Box::new(commit_image::CommitImage::new(site)),
        BackupKind::Mariabackup => Box::new(mariabackup::Mariabackup::new(site)),
        BackupKind::Pgbackrest => Box::new(pgbackrest::PgBackRest::new(site)),
        BackupKind::WalStream { sync } => Box::new(wal_stream::WalStream::new(site, sync)),
        BackupKind::BinlogStream => Box::new(binlog_stream::BinlogStream::new(site)),
    }
}

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
    /// A backup tool's command failed (`restic`, `mariadb-backup`).
    #[error("`{command}` exited with {code:?}: {output}")]
    Tool { command: String, code: Option<i64>, output: String },
    #[error("`restic backup` printed no summary: {0}")]
    NoResticSummary(String),
    #[error(transparent)]
    Agent(#[from] crate::deploy::agent::AgentError),
    #[error("the deployment has no container")]
    NoContainer,
    /// A point-in-time restore needs a backup that ended before its
    /// target: recovery can stop no earlier than where the backup is
    /// consistent.
    #[error("no backup of this cycle completed before the restore target, {target_s:.3} s into the load ({first})")]
    NoneBefore { target_s: f64, first: String },
    #[error("this backup method restores its latest backup only, not to a point in time")]
    NoPointInTime,
}

/// What a restore after a host loss did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Restored {
    /// Index of the backup restored in the cycle's list; `None` when the
    /// cycle had no completed backup and the service got empty storage.
    pub backup: Option<usize>,
    pub restore_ms: f64,
    /// The point a point-in-time restore brought the data back to; `None`
    /// for a restore of everything the backups held.
    pub to: Option<PointInTime>,
}

/// An instant of the load a restore aims at (`[backup] restore-to`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PointInTime {
    /// On the harness's clock: the ack log is cut there.
    pub at: Instant,
    /// `at` itself, or, for a target the method read from the server
    /// ([`BackupMethod::marks_target`]), when the answer came: nothing
    /// begun after it may be restored.
    pub until: Instant,
    /// Seconds from the load's start: the target the scenario named
    /// (`at` may be a little later, when read from the server).
    pub into_load_s: f64,
}

impl PointInTime {
    /// The instant on the wall clock, which the host's containers share:
    /// what a database's recovery target is written in.
    pub fn wall_clock(&self) -> SystemTime {
        let (wall, now) = (SystemTime::now(), Instant::now());
        match now.checked_duration_since(self.at) {
            Some(ago) => wall - ago,
            None => wall + self.at.duration_since(now),
        }
    }
}

/// A completed backup, as its method will find it again to restore it.
#[derive(Debug, Clone, PartialEq)]
pub struct Artifact {
    /// Bytes the backup stored (for an incremental one, what it added).
    pub bytes: u64,
    /// The repository's size after it, when the method keeps a
    /// repository on the host.
    pub repo_bytes: Option<u64>,
    /// What the method restores it by: an archive's path, a snapshot's
    /// name or id, an image's tag, an object's key.
    pub handle: String,
}

/// A backup a method took on its own clock (a sidecar), reported when the
/// host is lost.
#[derive(Debug, Clone, PartialEq)]
pub struct Reported {
    /// Seconds from the load's start.
    pub at_s: f64,
    pub duration_ms: f64,
    /// What it left, or why it failed.
    pub result: Result<Artifact, String>,
}

/// What every method works with: the daemon, the run (for labels), the
/// cell's backup directory on the host (which stands for storage off the
/// host) and the cell's object name, with a counter for unique names.
pub struct Site {
    pub docker: Docker,
    pub run: RunContext,
    pub dir: PathBuf,
    pub name: String,
    seq: u32,
}

impl Site {
    /// A number not used before over the cell's life, for names of
    /// snapshots, images and helper containers.
    pub fn next_seq(&mut self) -> u32 {
        self.seq += 1;
        self.seq
    }

    /// `path` in the cell's backup directory.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// `path` in the cell's backup directory, made anew and empty: what a
    /// stream writes into from the start of each cycle.
    pub fn empty_dir(&self, file: &str) -> Result<PathBuf, BackupError> {
        let dir = self.path(file);
        if let Err(source) = std::fs::remove_dir_all(&dir)
            && source.kind() != std::io::ErrorKind::NotFound
        {
            return Err(BackupError::Dir { path: dir, source });
        }
        std::fs::create_dir_all(&dir).map_err(|source| BackupError::Dir { path: dir.clone(), source })?;
        Ok(dir)
    }

    /// Starts the created one-shot container `id`, waits for it to end,
    /// and returns its exit code and whole output; the container is
    /// removed whatever came of it.
    pub async fn run_to_end(&self, id: &str) -> Result<(i64, String), BackupError> {
        let result = async {
            self.docker.start(id).await?;
            let code = self.docker.wait(id).await?;
            Ok::<_, BackupError>((code, self.docker.logs_all(id).await?))
        }
        .await;
        self.docker.remove_container(id).await.ok();
        result
    }

    /// Runs `cmd` in the sidecar `id` and returns its output; a non-zero
    /// exit is the tool's error, named `shown` (the command as messages
    /// may show it) with the output's tail.
    pub async fn exec_checked(&self, id: &str, cmd: &[String], shown: String) -> Result<String, BackupError> {
        let run = self.docker.exec(id, cmd).await?;
        if run.exit_code != Some(0) {
            let output = crate::text::folded_tail(&run.output, 600);
            return Err(BackupError::Tool { command: shown, code: run.exit_code, output });
        }
        Ok(run.output)
    }
}

/// What a method asks of the server's own containers, when the tool runs
/// inside them (PostgreSQL calls pgBackRest to archive each WAL segment).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerNeeds {
    /// Server flags, added after the workload's own unless the command
    /// already sets them: the scenario's `server-args` win.
    pub args: Vec<String>,
    /// Host directories that every container of the deployment binds
    /// read-write, each at its path in the container: storage off the
    /// host that the server writes to (a backup repository).
    pub dirs: Vec<(PathBuf, String)>,
}

/// One backup method: the hooks [`Backups`] calls, in this order each
/// cycle — [`begin_cycle`](Self::begin_cycle) as the load starts,
/// [`take`](Self::take) on the schedule, [`host_lost`](Self::host_lost)
/// at the fault, [`restore`](Self::restore) after a host loss,
/// [`tool_check`](Self::tool_check) for the report — and
/// [`teardown`](Self::teardown) at the cell's end. The defaults are what a
/// method with nothing running beside the service does.
pub trait BackupMethod: Send + Sync {
    /// The method in words, for the report.
    fn describe(&self) -> String;

    /// What the server's containers need for the method, asked once
    /// before the first is created. Nothing by default.
    fn server_needs(&self) -> ServerNeeds {
        ServerNeeds::default()
    }

    /// What the method needs before the load: a sidecar started, the
    /// previous cycle's copies deleted. Nothing by default.
    fn begin_cycle<'a>(&'a mut self, _d: &'a Deployment) -> BoxFuture<'a, Result<(), BackupError>> {
        Box::pin(async { Ok(()) })
    }

    /// One backup, now, of the live data; `None` from a method that keeps
    /// its own time (a sidecar), whose backups [`host_lost`](Self::host_lost)
    /// reports.
    fn take<'a>(
        &'a mut self,
        d: &'a mut Deployment,
        workload: &'a dyn Workload,
    ) -> BoxFuture<'a, Result<Option<Artifact>, BackupError>>;

    /// Backups completed on the method's own clock and not yet reported;
    /// the fault waits for them as for the schedule's. None by default.
    fn unreported(&self) -> BoxFuture<'_, usize> {
        Box::pin(async { 0 })
    }

    /// The host is going down: stop what runs on it beside the service (a
    /// sidecar goes with it), and report the backups taken on the method's
    /// own clock. Nothing by default.
    fn host_lost(&mut self) -> BoxFuture<'_, Result<Vec<Reported>, BackupError>> {
        Box::pin(async { Ok(vec![]) })
    }

    /// After a host loss: new storage holding `latest` (empty without it)
    /// and a new container on it, created but not started.
    fn restore<'a>(
        &'a mut self,
        d: &'a mut Deployment,
        latest: Option<&'a Artifact>,
    ) -> BoxFuture<'a, Result<(), BackupError>>;

    /// Whether a point-in-time restore stops at the server's own log
    /// position read at the target during the load
    /// ([`Workload::log_position`]), rather than at a time the log's own
    /// clock is too coarse for. `false` by default.
    fn marks_target(&self) -> bool {
        false
    }

    /// After a host loss, a point-in-time restore: as
    /// [`restore`](Self::restore), with the data brought back to the wall
    /// clock's `at` — `backup` is the latest that completed before it —
    /// or to `marked`, the server's log position read at the target, when
    /// the method [marks it](Self::marks_target) and the reading
    /// succeeded. Only methods whose [`BackupKind::restores_to_a_point`]
    /// implement it; the scenario refuses `restore-to` for the others.
    fn restore_to<'a>(
        &'a mut self,
        _d: &'a mut Deployment,
        _backup: &'a Artifact,
        _at: SystemTime,
        _marked: Option<&'a LogPosition>,
    ) -> BoxFuture<'a, Result<(), BackupError>> {
        Box::pin(async { Err(BackupError::NoPointInTime) })
    }

    /// The parts of the cycle's restore the method timed, in order, taken
    /// after [`tool_check`](Self::tool_check) (which may read the
    /// restored server's log for the last). None by default.
    fn restore_steps(&mut self) -> Vec<RestoreStep> {
        vec![]
    }

    /// The backup tool's own check of what it stored, after the cycle's
    /// restore and verification. None by default.
    fn tool_check(&mut self) -> BoxFuture<'_, Option<ToolCheck>> {
        Box::pin(async { None })
    }

    /// Removes what the method left outside the cell's backup directory
    /// (sidecars, images). Nothing by default.
    fn teardown(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// One cell's backups: the schedule and the records; the method does the
/// rest.
pub struct Backups {
    method: Box<dyn BackupMethod>,
    settings: BackupSection,
    /// The cell's backup directory, removed at its end.
    dir: PathBuf,
    /// This cycle's backups, completed or failed.
    records: Vec<BackupRecord>,
    /// The completed ones, by their index in `records`, in order.
    done: Vec<(usize, Artifact)>,
    /// This cycle's load: when it started, and its length.
    load: Option<(Instant, Duration)>,
    /// The scenario's server flags that stood in for the method's own.
    user_settings: Vec<String>,
    /// The server's log position read at the target of a point-in-time
    /// restore, for a method that [marks it](BackupMethod::marks_target),
    /// when it could be read.
    marked: Option<LogPosition>,
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
        let kind = strategy.def().backup?;
        let dir = run.dir().join("backups").join(name);
        let site = Site { docker: docker.clone(), run: run.clone(), dir: dir.clone(), name: name.to_owned(), seq: 0 };
        Some(Backups {
            method: method(kind, site, settings),
            settings: settings.clone(),
            dir,
            records: vec![],
            done: vec![],
            load: None,
            user_settings: vec![],
            marked: None,
        })
    }

    /// In words, for the report, with the scenario's server flags that
    /// stood in for the method's own.
    pub fn method(&self) -> String {
        let mut said = self.method.describe();
        if self.settings.restore_to != crate::settings::RestoreTo::Latest {
            said += &format!(
                "; restore-to = \"{}\": the latest backup completed before that point, recovered up to it",
                self.settings.restore_to
            );
        }
        match self.user_settings.as_slice() {
            [] => said,
            kept => format!("{said}; the scenario's own {} in force", kept.join(" ")),
        }
    }

    /// What the server's containers need for the method, with the host
    /// directories it binds in made. Asked before the cell's storage is.
    pub fn server_needs(&self) -> Result<ServerNeeds, BackupError> {
        let needs = self.method.server_needs();
        for (host, _) in &needs.dirs {
            std::fs::create_dir_all(host).map_err(|source| BackupError::Dir { path: host.clone(), source })?;
        }
        Ok(needs)
    }

    /// Gives the server's containers what the method needs of them (its
    /// flags, its repository bound in), before the first is created.
    pub fn dress(&mut self, d: Deployment, needs: ServerNeeds) -> Deployment {
        let (mut d, kept) = d.with_default_args(needs.args);
        self.user_settings = kept;
        for (host, target) in needs.dirs {
            d = d.with_shared_dir(&host, &target);
        }
        d
    }

    /// Forgets the previous cycle's backups and readies the method (a
    /// sidecar started). Called as the load starts.
    pub async fn begin_cycle(&mut self, d: &Deployment) -> Result<(), BackupError> {
        self.records.clear();
        self.done.clear();
        self.load = None;
        self.marked = None;
        std::fs::create_dir_all(&self.dir).map_err(|source| BackupError::Dir { path: self.dir.clone(), source })?;
        self.method.begin_cycle(d).await
    }

    /// Takes a backup every interval from `load_started` until `deadline`,
    /// then back to back while fewer than
    /// [`min_backups`](BackupSection::min_backups) have completed (for at
    /// most [`BackupSection::min_backups_wait`]), or until cancelled. A
    /// method that keeps its own time is watched instead. For a
    /// point-in-time restore by a method that marks its target, the
    /// server's log position is read at the target meanwhile.
    pub async fn run_until(
        &mut self,
        d: &mut Deployment,
        workload: &dyn Workload,
        load_started: Instant,
        deadline: Instant,
        cancel: &mut tokio::sync::watch::Receiver<bool>,
    ) {
        self.load = Some((load_started, deadline.saturating_duration_since(load_started)));
        let target = self.point_in_time().filter(|_| self.method.marks_target());
        let (addr, mut stop_marking) = (d.addr(), cancel.clone());
        let mark = async move {
            let (to, addr) = (target?, addr?);
            tokio::select! {
                read = workload.log_position(addr, to.at) => Some(read),
                _ = stop_marking.wait_for(|c| *c) => None,
            }
        };
        let ((), marked) = tokio::join!(self.take_until(d, workload, cancel), mark);
        // Without a position the replay stops at the target's second,
        // which the restore's tool check says.
        self.marked = match marked {
            Some(Ok(Some(position))) => Some(position),
            Some(Ok(None)) => {
                tracing::warn!("the server keeps no log position to read at the restore target (is its log on?)");
                None
            }
            Some(Err(e)) => {
                tracing::warn!("the restore target's log position could not be read: {}", crate::text::error_chain(&e));
                None
            }
            None => None,
        };
    }

    /// [`run_until`](Self::run_until)'s backups, over the load it set.
    async fn take_until(
        &mut self,
        d: &mut Deployment,
        workload: &dyn Workload,
        cancel: &mut tokio::sync::watch::Receiver<bool>,
    ) {
        let Some((load_started, length)) = self.load else { return };
        let deadline = load_started + length;
        let interval = self.settings.interval;
        let mut next = load_started + interval;
        let last_chance = deadline + self.settings.min_backups_wait();
        loop {
            if Instant::now() < deadline {
                tokio::select! {
                    _ = tokio::time::sleep_until(next.min(deadline).into()) => {}
                    _ = cancel.wait_for(|c| *c) => return,
                }
            }
            if *cancel.borrow() {
                return;
            }
            let past_deadline = Instant::now() >= deadline;
            if past_deadline {
                // Past the load time: while fewer backups have completed
                // than the fault waits for, one more at once.
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
            } else if Instant::now() < next {
                continue;
            }
            let at_s = load_started.elapsed().as_secs_f64();
            let started = Instant::now();
            let taken = self.method.take(d, workload).await;
            let duration_ms = started.elapsed().as_secs_f64() * 1e3;
            match taken {
                Ok(Some(artifact)) => self.record(Reported { at_s, duration_ms, result: Ok(artifact) }),
                Err(e) => {
                    let error = crate::text::error_chain(&e);
                    tracing::warn!("backup failed: {error}");
                    self.record(Reported { at_s, duration_ms, result: Err(error) });
                }
                // The method keeps its own time: past the load time, look
                // at its count again shortly.
                Ok(None) if past_deadline => tokio::select! {
                    _ = tokio::time::sleep(POLL) => {}
                    _ = cancel.wait_for(|c| *c) => return,
                },
                Ok(None) => {}
            }
            // Ticks missed while a long backup ran are skipped, not made up.
            while next <= Instant::now() {
                next += interval;
            }
        }
    }

    /// Adds a backup to the cycle's list; a completed one becomes the one
    /// to restore.
    fn record(&mut self, backup: Reported) {
        let Reported { at_s, duration_ms, result } = backup;
        let index = self.records.len();
        match result {
            Ok(artifact) => {
                let (bytes, repo_bytes) = (artifact.bytes, artifact.repo_bytes);
                self.records.push(BackupRecord { at_s, duration_ms, bytes, repo_bytes, error: None });
                self.done.push((index, artifact));
            }
            Err(error) => {
                self.records.push(BackupRecord { at_s, duration_ms, error: Some(error), ..Default::default() })
            }
        }
    }

    /// Backups of this cycle that completed so far, the method's own
    /// unreported ones included.
    async fn completed(&self) -> usize {
        self.records.iter().filter(|r| r.error.is_none()).count() + self.method.unreported().await
    }

    /// Ends the cycle's backups at the fault: what runs beside the service
    /// goes down with the host, and backups the method took on its own
    /// clock join the records.
    pub async fn end_load(&mut self) -> Result<(), BackupError> {
        for backup in self.method.host_lost().await? {
            self.record(backup);
        }
        Ok(())
    }

    /// After a host loss: new storage with the latest backup on it and a
    /// new container, created but not started. Without a completed backup
    /// the storage stays empty, as it would for a strategy without backups.
    /// With a point in time to restore to (`restore-to`), the latest
    /// backup completed before it, brought forward to that point.
    pub async fn restore(&mut self, d: &mut Deployment) -> Result<Restored, BackupError> {
        let started = Instant::now();
        let marked = self.marked.as_ref();
        // A target read from the server stands where it was read.
        let to = self.point_in_time().map(|to| match marked {
            Some(m) => PointInTime { at: m.asked, until: m.answered, ..to },
            None => to,
        });
        let (backup, artifact) = match to {
            None => (self.done.last().map(|(i, _)| *i), self.done.last().map(|(_, a)| a.clone())),
            Some(to) => {
                let (i, artifact) = self.latest_before(to.into_load_s)?;
                (Some(i), Some(artifact))
            }
        };
        match (to, &artifact) {
            (Some(to), Some(artifact)) => self.method.restore_to(d, artifact, to.wall_clock(), marked).await?,
            _ => self.method.restore(d, artifact.as_ref()).await?,
        }
        Ok(Restored { backup, restore_ms: started.elapsed().as_secs_f64() * 1e3, to })
    }

    /// The point `restore-to` names in this cycle's load, if any.
    fn point_in_time(&self) -> Option<PointInTime> {
        let (started, length) = self.load?;
        let into = self.settings.restore_to.into_load(length)?;
        Some(PointInTime { at: started + into, until: started + into, into_load_s: into.as_secs_f64() })
    }

    /// The latest completed backup that ended by `into_load_s`: the one a
    /// restore to that point starts from.
    fn latest_before(&self, into_load_s: f64) -> Result<(usize, Artifact), BackupError> {
        let end_s = |i: usize| self.records[i].at_s + self.records[i].duration_ms / 1e3;
        match self.done.iter().rev().find(|(i, _)| end_s(*i) <= into_load_s) {
            Some((i, artifact)) => Ok((*i, artifact.clone())),
            None => Err(BackupError::NoneBefore {
                target_s: into_load_s,
                first: self.done.first().map_or_else(
                    || "none completed".to_owned(),
                    |(i, _)| format!("the first ended {:.3} s into it", end_s(*i)),
                ),
            }),
        }
    }

    /// The cycle's backups, with the recovery point when the host was
    /// lost and the backup tool's own check of its store when it has one
    /// (`restic check`; run here, after the cycle's restore and
    /// verification, so that it counts in neither).
    pub async fn cycle_report(&mut self, stall: Stall, restored: Option<Restored>, rpo_s: Option<f64>) -> BackupCycle {
        let any_completed = self.records.iter().any(|r| r.error.is_none());
        let tool_check = if any_completed { self.method.tool_check().await } else { None };
        let restore_steps = self.method.restore_steps();
        BackupCycle {
            backups: self.records.clone(),
            restored: restored.and_then(|r| r.backup),
            restore_ms: restored.map(|r| r.restore_ms),
            restored_to_s: restored.and_then(|r| r.to).map(|to| to.into_load_s),
            rpo_s,
            stall,
            restore_steps: if restored.is_some() { restore_steps } else { vec![] },
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
        self.method.teardown().await;
        if let Err(e) = std::fs::remove_dir_all(&self.dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("could not remove {}: {e}", self.dir.display());
        }
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
}
