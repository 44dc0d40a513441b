//! Persistence strategies: where a workload's data directory lives.
//!
//! | strategy | data directory is | survives |
//! |---|---|---|
//! | `container-layer` | the container's copy-on-write writable layer | kill, restart; not a new container |
//! | `anonymous-volume` | a volume created for this container only | kill, restart; not a new container |
//! | `named-volume` | a volume the harness creates and reattaches | kill, restart, a new container |
//! | `bind-mount` | a host directory under the run's state directory | kill, restart, a new container |
//! | `tmpfs` | memory, mounted per container start | nothing that stops the container |
//!
//! The backup strategies keep the live data on a named volume (but
//! `commit-image`, whose point is the writable layer) and take backups of
//! it during the load (see [`crate::backup`] for how each copies and
//! restores):
//!
//! | strategy | live data on | backup |
//! |---|---|---|
//! | `backup-hot` | a named volume | tar of the live volume while the engine writes |
//! | `backup-quiesced` | a named volume | tar while the engine is held still (read lock, or the container paused) |
//! | `backup-stopped` | a named volume | tar while the container is stopped |
//! | `btrfs-snapshot` | a named volume bound to a subvolume of a loop-mounted btrfs the harness owns | read-only snapshot |
//! | `sync-agent` | a named volume | a sidecar archives, compresses and uploads it to an object store |
//! | `backup-restic` | a named volume | a restic sidecar backs it up, incrementally, into a repository |
//! | `backup-mariabackup` | a named volume | a mariadb-backup sidecar backs it up hot, full then incremental |
//! | `backup-pgbackrest` | a named volume | pgBackRest backs it up, full then incremental, and archives every WAL segment |
//! | `wal-stream` | a named volume | as `backup-pgbackrest`, and `pg_receivewal` streams the WAL to the backup host |
//! | `wal-stream-sync` | a named volume | as `wal-stream`, the stream a synchronous standby |
//! | `binlog-stream` | a named volume | as `backup-mariabackup`, and `mariadb-binlog` streams the binary log to the backup host |
//! | `commit-image` | the container's writable layer | the container committed to an image, saved as an archive |
//!
//! The replicated strategies put each host's data on its own named volume
//! and replicate from the primary's host to the replica's ([`crate::deploy::hosts`]):
//!
//! | strategy | data on | a commit is acknowledged |
//! |---|---|---|
//! | `replica-async` | a named volume per host | once durable on the primary; the replica follows |
//! | `replica-semisync` | a named volume per host | once a replica has it too (MariaDB semi-sync, `AFTER_SYNC`) |
//! | `streaming-async` | a named volume per host | once durable on the primary; the standby streams it (PostgreSQL) |
//! | `streaming-sync` | a named volume per host | once the standby flushed it too (`synchronous_standby_names`) |
//! | `cluster-3` | a named volume per member of the engine's own three-member cluster, on the fault filesystem for `host-kill` | once the engine's own replication says so (a JetStream `PubAck` of a stream with three replicas: a quorum has it) |
//!
//! The shared strategy keeps the data on storage hosts that any host can
//! mount ([`gluster`]):
//!
//! | strategy | data on | survives |
//! |---|---|---|
//! | `glusterfs-replica` | a replicated GlusterFS volume (replica 3) on three storage hosts, mounted with the FUSE client | the database's host (a new container on another host's mount), one storage host |
//!
//! A volume of any Docker volume driver is a strategy too, named by its
//! driver and options ([`driver`]):
//!
//! | strategy | data directory is | survives |
//! |---|---|---|
//! | `volume:DRIVER[,KEY=VALUE...]` | a volume of that driver, created with those options | what the driver keeps between a container's unmount and the next mount |
//!
//! For the faults that need it (see [`crate::faults`]), `bind-mount` and
//! `named-volume` put the data on the fault filesystem instead: the harness
//! mounts `crashlab-faultfs` at `<run dir>/fs/<name>/mnt` over
//! `<run dir>/fs/<name>/backing`, and the bind mount, or a local-driver
//! named volume with `type=none,o=bind,device=<mountpoint>`, points there.
//! Every other cell keeps the plain storage above.

pub mod btrfs;
pub mod driver;
pub mod faultmount;
pub mod gluster;
pub mod plugin_client;
mod strategy;

pub use strategy::{BackupKind, DataOn, Strategy, StrategyDef, TABLE, UnderData, VOLUME_DEF};

use crate::docker::{Docker, DockerError};
use crate::run::RunContext;
use crate::storage::btrfs::{BtrfsError, BtrfsPool};
use crate::storage::driver::{DriverVolume, LoopDevice};
use crate::storage::faultmount::{FaultMount, FaultMountError};
use crate::storage::gluster::{GlusterError, GlusterVolume};
use bollard::models::{Mount, MountTmpfsOptions, MountType, MountVolumeOptions};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Failure to set up or tear down a strategy's storage.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error("create host directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("remove host directory {path}")]
    RemoveDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    FaultFs(#[from] FaultMountError),
    #[error(transparent)]
    Btrfs(#[from] BtrfsError),
    #[error(transparent)]
    Gluster(#[from] GlusterError),
    /// Docker's answer to a volume of a driver: the driver is not
    /// installed, refused the options, or failed.
    #[error("create a volume of driver `{driver}` ({options})")]
    Driver {
        driver: String,
        options: String,
        #[source]
        source: Box<DockerError>,
    },
    #[error("snapshot the data of {name}: its storage takes no snapshots (only `btrfs-snapshot`'s pool does)")]
    NoSnapshots { name: String },
}

/// Size of the sparse image under a `btrfs-snapshot` cell's pool, beyond
/// three times the ballast: room for the dataset, its snapshots' diverging
/// blocks and a restored copy.
const BTRFS_POOL_BASE: u64 = 4 << 30;

/// How to put a cell's data on the fault filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultFsOptions {
    /// Seed of the cell's mounts (each remount derives its own from it).
    pub seed: u64,
    /// See `[faults] fsync-reaches-disk` in the scenario.
    pub fsync_reaches_disk: bool,
    /// Record the unsynced history (for faults that explore crash states);
    /// off, the write path keeps no copy of the data it caches.
    pub record_history: bool,
    /// What a failed fsync (only fault rules fail one) does to the data it
    /// did not write: a cycle's mounts behave as ext4 and XFS, the file
    /// systems databases run on (the data is marked clean and lost at a
    /// cut); a volume of crashlab's driver takes `-o fsync-failure=`.
    pub fsync_failure: crashlab_faultfs::FsyncFailure,
}

/// What to provision: a strategy (a volume of any driver and options
/// among them), or `crashlab bench`'s host directory, which is
/// provisioned the same way and differs only in where the data goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    Strategy(Strategy),
    /// A new subdirectory of a host directory, bind-mounted. The caller
    /// journals the subdirectory before provisioning, since it lies
    /// outside the run directory.
    HostSubdir(PathBuf),
}

/// Options of [`Storage::provision`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProvisionOptions {
    /// Put the data on the fault filesystem (only where the strategy's
    /// [`UnderData`] is `FaultFs`; ignored elsewhere).
    pub faultfs: Option<FaultFsOptions>,
    /// Bytes the workload adds to its data (`[backup] ballast`), for
    /// sizing a `btrfs-snapshot` pool.
    pub ballast: u64,
    /// Ask crashlab's own volume driver for a volume that records the
    /// unsynced history (`history=true`, for faults that explore crash
    /// states through it), unless the strategy's options say otherwise.
    pub driver_history: bool,
}

/// What a cell's data sits on beyond what Docker mounts by itself: one
/// value, so that what exists is never a combination of optional fields.
#[derive(Debug)]
enum Backing {
    /// Nothing the harness owns: the writable layer, an anonymous volume
    /// or tmpfs (Docker's, per container), or data lost with its host and
    /// not yet provisioned again.
    Nothing,
    /// A named volume of the local driver.
    Volume(String),
    /// A volume of a driver with a strategy's options, the scope the
    /// driver gave it, and the loop device crashlab made for its `device`.
    Driver { volume: String, scope: String, device: Option<LoopDevice> },
    /// A host directory, bind-mounted.
    HostDir(PathBuf),
    /// The fault filesystem, reached through a local volume bound to its
    /// mountpoint (`volume`) or, without one, by binding the mountpoint.
    FaultFs { fs: Box<FaultMount>, volume: Option<String> },
    /// `btrfs-snapshot`: the pool, which outlives a host loss (it stands
    /// for a volume plugin's off-host snapshots), and the live subvolume
    /// with the volume that binds it, gone after a loss.
    Btrfs { pool: Arc<BtrfsPool>, live: Option<Live> },
    /// `glusterfs-replica`: the volume on its storage hosts, and this
    /// host's client mount of it.
    Gluster(GlusterVolume),
}

/// The live subvolume of a btrfs pool and the named volume binding it.
#[derive(Debug)]
struct Live {
    subvolume: String,
    volume: String,
}

/// The storage one cell's containers use; created before the first
/// container and removed after the last.
#[derive(Debug)]
pub struct Storage {
    data_on: DataOn,
    /// The driver and options, for a volume of a driver.
    driver: Option<&'static DriverVolume>,
    /// Base of the names of what it creates.
    name: String,
    backing: Backing,
    /// Times the data was provisioned again after a host loss.
    generation: u32,
    options: ProvisionOptions,
    /// The fault filesystem's options, when the data is on one (kept so
    /// that a new host after a loss gets its own).
    faultfs: Option<FaultFsOptions>,
    /// What crashlab's driver said its last power cut of the volume
    /// dropped, until the fault reads it.
    driver_cut: Option<plugin_client::VolumeStatus>,
    /// Crash points crashlab's driver handed over, until the fault
    /// explores them.
    driver_points: Vec<faultmount::CrashPoint>,
}

impl Storage {
    /// Creates what `place` needs outside any container: a labelled
    /// volume, a host directory (under the run's state directory for
    /// strategies), a btrfs subvolume, or the fault filesystem and the
    /// volume or directory that binds it.
    pub async fn provision(
        docker: &Docker,
        run: &RunContext,
        place: &Place,
        name: &str,
        options: ProvisionOptions,
    ) -> Result<Storage, StorageError> {
        let (data_on, driver) = match place {
            Place::Strategy(s) => (s.def().data_on, s.driver_volume()),
            Place::HostSubdir(_) => (DataOn::HostDir, None),
        };
        let faultfs = match place {
            Place::Strategy(s) => options.faultfs.filter(|_| s.def().under == UnderData::FaultFs),
            Place::HostSubdir(_) => None,
        };
        let mut storage = Storage {
            data_on,
            driver,
            name: name.to_owned(),
            backing: Backing::Nothing,
            generation: 0,
            options,
            faultfs,
            driver_cut: None,
            driver_points: Vec::new(),
        };
        let created = match place {
            Place::Strategy(_) => storage.create_data(docker, run, None).await,
            Place::HostSubdir(root) => {
                let path = root.join(name);
                storage.backing = Backing::HostDir(path.clone());
                std::fs::create_dir(&path).map_err(|source| StorageError::CreateDir { path, source })
            }
        };
        if let Err(e) = created {
            storage.teardown(docker).await.ok();
            return Err(e);
        }
        Ok(storage)
    }

    /// Makes one volume of the driver volume `strategy` as a cell would,
    /// reads the scope its driver declared, and removes it again: what a
    /// run checks before its first cell, so that a driver that is not
    /// installed or refuses the options stops it with Docker's answer.
    pub async fn probe(
        docker: &Docker,
        run: &RunContext,
        strategy: Strategy,
        name: &str,
    ) -> Result<driver::DriverFacts, StorageError> {
        let storage =
            Storage::provision(docker, run, &Place::Strategy(strategy), name, ProvisionOptions::default()).await?;
        let scope = storage.driver_scope().unwrap_or("local").to_owned();
        storage.teardown(docker).await?;
        Ok(driver::DriverFacts { scope })
    }

    /// The name of the data of the current generation.
    fn generation_name(&self) -> String {
        match self.generation {
            0 => self.name.clone(),
            g => format!("{}-{g}", self.name),
        }
    }

    /// Mounts the fault filesystem under the run directory and binds the
    /// data to it, by a host-directory bind or a local volume bound to the
    /// mountpoint.
    async fn create_on_faultfs(
        &mut self,
        docker: &Docker,
        run: &RunContext,
        options: FaultFsOptions,
    ) -> Result<(), StorageError> {
        let name = self.generation_name();
        let fs = FaultMount::create(&run.dir().join("fs").join(&name), options, Some(run.journal()))?;
        let device = fs.mountpoint().display().to_string();
        let bound = matches!(self.data_on, DataOn::NamedVolume | DataOn::Cluster(_));
        self.backing = Backing::FaultFs { fs: Box::new(fs), volume: bound.then(|| name.clone()) };
        if bound {
            docker.create_bind_volume(&name, run.labels(), &device).await?;
        }
        Ok(())
    }

    /// Creates the volume, directory, subvolume or fault filesystem the
    /// data lives on; for `btrfs-snapshot`, as a writable snapshot of
    /// `from_snapshot` when given (a restore), the pool being created on
    /// first use.
    async fn create_data(
        &mut self,
        docker: &Docker,
        run: &RunContext,
        from_snapshot: Option<&str>,
    ) -> Result<(), StorageError> {
        if let Some(options) = self.faultfs {
            return self.create_on_faultfs(docker, run, options).await;
        }
        let name = self.generation_name();
        match self.data_on {
            DataOn::NamedVolume | DataOn::Replicated(_) | DataOn::Cluster(_) => {
                self.backing = Backing::Volume(name.clone());
                docker.create_volume(&name, run.labels()).await?;
            }
            DataOn::HostDir => {
                let path = run.dir().join("data").join(&name);
                self.backing = Backing::HostDir(path.clone());
                std::fs::create_dir_all(&path).map_err(|source| StorageError::CreateDir { path, source })?;
            }
            DataOn::BtrfsSubvolume => self.create_subvolume(docker, run, &name, from_snapshot).await?,
            DataOn::Gluster => {
                // The volume outlives a host: a reprovision after a host
                // loss is another host's fresh client mount of it.
                if !matches!(self.backing, Backing::Gluster(_)) {
                    self.backing = Backing::Gluster(GlusterVolume::create(docker, run, &self.name).await?);
                }
                if let Backing::Gluster(volume) = &mut self.backing {
                    volume.mount(run).await?;
                }
            }
            DataOn::DriverVolume => {
                let volume = self.driver.expect("a driver volume's storage knows its driver");
                self.create_driver_volume(docker, run, volume, &name).await?;
            }
            DataOn::WritableLayer | DataOn::AnonymousVolume | DataOn::Tmpfs => {}
        }
        Ok(())
    }

    /// A volume of `volume`'s driver with its options, on a loop device
    /// crashlab makes first when its `device` is `loop`; the driver's
    /// scope is read back from Docker.
    async fn create_driver_volume(
        &mut self,
        docker: &Docker,
        run: &RunContext,
        volume: &'static DriverVolume,
        name: &str,
    ) -> Result<(), StorageError> {
        let mut options: HashMap<String, String> = volume.options.iter().cloned().collect();
        if self.options.driver_history && volume.driver == plugin_client::CRASHLAB_DRIVER {
            options.entry("history".to_owned()).or_insert_with(|| "true".to_owned());
        }
        let device = match volume.loop_fs().expect("checked when parsed") {
            Some(fs) => {
                let (dir, journal) = (run.dir().join("loop").join(name), run.journal().clone());
                let device = blocking(move || LoopDevice::create(&dir, fs, &journal)).await?;
                let path = device.device().expect("a made loop device is attached").display().to_string();
                options.insert("device".to_owned(), path);
                Some(device)
            }
            None => None,
        };
        self.backing = Backing::Driver { volume: name.to_owned(), scope: String::new(), device };
        let failed = |source| StorageError::Driver {
            driver: volume.driver.clone(),
            options: if volume.options.is_empty() { "no options".into() } else { volume.option_texts().join(",") },
            source: Box::new(source),
        };
        docker.create_driver_volume(name, run.labels(), &volume.driver, options).await.map_err(failed)?;
        let read = docker.volume_scope(name).await?;
        if let Backing::Driver { scope, .. } = &mut self.backing {
            *scope = read;
        }
        Ok(())
    }

    /// `btrfs-snapshot`'s live data: a new subvolume in the cell's pool
    /// (created on first use), or a writable snapshot of `from_snapshot`,
    /// and a volume binding it.
    async fn create_subvolume(
        &mut self,
        docker: &Docker,
        run: &RunContext,
        name: &str,
        from_snapshot: Option<&str>,
    ) -> Result<(), StorageError> {
        let pool = match &self.backing {
            Backing::Btrfs { pool, .. } => pool.clone(),
            _ => {
                let dir = run.dir().join("btrfs").join(&self.name);
                let size = BTRFS_POOL_BASE + 3 * self.options.ballast;
                let journal = run.journal().clone();
                let pool = Arc::new(blocking(move || BtrfsPool::create(&dir, size, Some(&journal))).await?);
                self.backing = Backing::Btrfs { pool: pool.clone(), live: None };
                pool
            }
        };
        let subvolume = format!("live-{}", self.generation);
        let path = {
            let (pool, subvolume, from) = (pool.clone(), subvolume.clone(), from_snapshot.map(str::to_owned));
            blocking(move || match from {
                Some(snapshot) => pool.snapshot(&snapshot, &subvolume, false).map(|s| s.path),
                None => pool.create_subvolume(&subvolume),
            })
            .await?
        };
        let device = path.display().to_string();
        self.backing = Backing::Btrfs { pool, live: Some(Live { subvolume, volume: name.to_owned() }) };
        docker.create_bind_volume(name, run.labels(), &device).await?;
        Ok(())
    }

    /// Destroys the data as the loss of the host would: the volume, the
    /// host directory, the fault filesystem or the live subvolume. Backups
    /// kept elsewhere (tar files and the object store under the run
    /// directory, the btrfs pool's read-only snapshots, which stand for a
    /// volume plugin's off-host snapshots) stay, and so does a GlusterFS
    /// volume, which lives on its storage hosts: only the host's client
    /// mount goes. Containers using the data must be gone.
    pub async fn lose(&mut self, docker: &Docker) -> Result<(), StorageError> {
        match std::mem::replace(&mut self.backing, Backing::Nothing) {
            Backing::Nothing => {}
            Backing::Volume(volume) => docker.remove_volume(&volume).await?,
            Backing::Driver { volume, device, .. } => {
                docker.remove_volume(&volume).await?;
                if let Some(device) = device {
                    blocking(move || device.teardown()).await?;
                }
            }
            Backing::HostDir(path) => remove_dir(&path)?,
            Backing::FaultFs { fs, volume } => {
                if let Some(volume) = volume {
                    docker.remove_volume(&volume).await?;
                }
                (*fs).teardown().await?;
            }
            Backing::Btrfs { pool, live } => {
                self.backing = Backing::Btrfs { pool: pool.clone(), live: None };
                if let Some(Live { subvolume, volume }) = live {
                    docker.remove_volume(&volume).await?;
                    blocking(move || pool.delete_subvolume(&subvolume)).await?;
                }
            }
            Backing::Gluster(mut volume) => {
                let unmounted = volume.unmount();
                self.backing = Backing::Gluster(volume);
                unmounted?;
            }
        }
        Ok(())
    }

    /// New, empty storage of the same kind after [`Storage::lose`], or
    /// for `btrfs-snapshot` a writable copy of the read-only snapshot
    /// `from_snapshot`.
    pub async fn reprovision(
        &mut self,
        docker: &Docker,
        run: &RunContext,
        from_snapshot: Option<&str>,
    ) -> Result<(), StorageError> {
        self.generation += 1;
        self.create_data(docker, run, from_snapshot).await
    }

    /// The named volume the data is on, if it is on one.
    pub fn volume(&self) -> Option<&str> {
        match &self.backing {
            Backing::Volume(volume)
            | Backing::Driver { volume, .. }
            | Backing::FaultFs { volume: Some(volume), .. } => Some(volume),
            Backing::Btrfs { live: Some(live), .. } => Some(&live.volume),
            _ => None,
        }
    }

    /// The Docker volume the data is on when it is a volume of crashlab's
    /// own driver, whose power the driver can cut.
    pub fn crashlab_volume(&self) -> Option<&str> {
        match (&self.backing, self.driver) {
            (Backing::Driver { volume, .. }, Some(d)) if d.driver == plugin_client::CRASHLAB_DRIVER => Some(volume),
            _ => None,
        }
    }

    /// Keeps what the driver said its power cut dropped, for the fault's
    /// report.
    pub fn set_driver_cut(&mut self, status: plugin_client::VolumeStatus) {
        self.driver_cut = Some(status);
    }

    /// What the driver said the cycle's power cut dropped, once.
    pub fn take_driver_cut(&mut self) -> Option<plugin_client::VolumeStatus> {
        self.driver_cut.take()
    }

    /// Keeps a crash point crashlab's driver handed over, for the fault's
    /// exploration.
    pub fn push_driver_point(&mut self, point: faultmount::CrashPoint) {
        self.driver_points.push(point);
    }

    /// The crash points crashlab's driver handed over this cycle.
    pub fn take_driver_points(&mut self) -> Vec<faultmount::CrashPoint> {
        std::mem::take(&mut self.driver_points)
    }

    /// The crash points crashlab's driver handed over this cycle, kept.
    pub fn driver_points(&self) -> &[faultmount::CrashPoint] {
        &self.driver_points
    }

    /// The scope the volume's driver gave it (`local` or `global`), for a
    /// volume of a driver.
    pub fn driver_scope(&self) -> Option<&str> {
        match &self.backing {
            Backing::Driver { scope, .. } => Some(scope),
            _ => None,
        }
    }

    /// The btrfs pool of the data, for its snapshots.
    fn pool(&self) -> Result<&Arc<BtrfsPool>, StorageError> {
        match &self.backing {
            Backing::Btrfs { pool, .. } => Ok(pool),
            _ => Err(StorageError::NoSnapshots { name: self.name.clone() }),
        }
    }

    /// Takes a read-only snapshot `name` of the live data, where the
    /// storage can (`btrfs-snapshot`); [`Storage::reprovision`] restores
    /// one after a loss.
    pub async fn snapshot(&self, name: &str) -> Result<(), StorageError> {
        let pool = self.pool()?.clone();
        let live = match &self.backing {
            Backing::Btrfs { live: Some(live), .. } => live.subvolume.clone(),
            _ => return Err(StorageError::NoSnapshots { name: self.name.clone() }),
        };
        let name = name.to_owned();
        blocking(move || pool.snapshot(&live, &name, true).map(|_| ())).await?;
        Ok(())
    }

    /// Deletes the snapshot `name` taken by [`Storage::snapshot`].
    pub async fn delete_snapshot(&self, name: &str) -> Result<(), StorageError> {
        let pool = self.pool()?.clone();
        let name = name.to_owned();
        blocking(move || pool.delete_subvolume(&name)).await?;
        Ok(())
    }

    /// `glusterfs-replica`'s volume and its storage hosts.
    pub fn gluster(&self) -> Option<&GlusterVolume> {
        match &self.backing {
            Backing::Gluster(volume) => Some(volume),
            _ => None,
        }
    }

    pub fn gluster_mut(&mut self) -> Option<&mut GlusterVolume> {
        match &mut self.backing {
            Backing::Gluster(volume) => Some(volume),
            _ => None,
        }
    }

    /// Whether the storage serves with less than it was built with (a
    /// storage host lost), so that the deployment is rebuilt before the
    /// next cycle.
    pub fn degraded(&self) -> bool {
        self.gluster().is_some_and(GlusterVolume::degraded)
    }

    /// The mounts a container on this storage gets at `data_dir`.
    pub fn mounts(&self, run: &RunContext, data_dir: &str) -> Vec<Mount> {
        let target = Some(data_dir.to_owned());
        let bind = |path: &std::path::Path| Mount {
            target: target.clone(),
            source: Some(path.display().to_string()),
            typ: Some(MountType::BIND),
            ..Default::default()
        };
        if let Some(volume) = self.volume() {
            let source = Some(volume.to_owned());
            return vec![Mount { target, source, typ: Some(MountType::VOLUME), ..Default::default() }];
        }
        match &self.backing {
            Backing::HostDir(path) => return vec![bind(path)],
            Backing::FaultFs { fs, .. } => return vec![bind(fs.mountpoint())],
            Backing::Gluster(volume) => return volume.data_path().map(|p| bind(&p)).into_iter().collect(),
            Backing::Nothing | Backing::Volume(_) | Backing::Driver { .. } | Backing::Btrfs { .. } => {}
        }
        match self.data_on {
            DataOn::AnonymousVolume => vec![Mount {
                target,
                typ: Some(MountType::VOLUME),
                volume_options: Some(MountVolumeOptions { labels: Some(run.labels()), ..Default::default() }),
                ..Default::default()
            }],
            DataOn::Tmpfs => vec![Mount {
                target,
                typ: Some(MountType::TMPFS),
                tmpfs_options: Some(MountTmpfsOptions { mode: Some(0o1777), ..Default::default() }),
                ..Default::default()
            }],
            // Mounted above from their backing, or nothing at all.
            DataOn::WritableLayer
            | DataOn::NamedVolume
            | DataOn::HostDir
            | DataOn::BtrfsSubvolume
            | DataOn::Replicated(_)
            | DataOn::Cluster(_)
            | DataOn::Gluster
            | DataOn::DriverVolume => vec![],
        }
    }

    /// The fault filesystem under the data, if the data is on one.
    pub fn faultfs_mut(&mut self) -> Option<&mut FaultMount> {
        match &mut self.backing {
            Backing::FaultFs { fs, .. } => Some(fs),
            _ => None,
        }
    }

    /// Removes what the data is on, unmounting the fault filesystem
    /// before its directories go. Containers using it must be gone first.
    pub async fn teardown(mut self, docker: &Docker) -> Result<(), StorageError> {
        if let Some(volume) = self.volume() {
            docker.remove_volume(volume).await?;
        }
        match std::mem::replace(&mut self.backing, Backing::Nothing) {
            Backing::Nothing | Backing::Volume(_) => {}
            // The volume went above: Docker unmounted the device.
            Backing::Driver { device, .. } => {
                if let Some(device) = device {
                    blocking(move || device.teardown()).await?;
                }
            }
            Backing::HostDir(path) => remove_dir(&path)?,
            // The host directory is the mountpoint, removed with the mount.
            Backing::FaultFs { fs, .. } => (*fs).teardown().await?,
            Backing::Gluster(volume) => volume.teardown().await?,
            // Snapshot callers hold clones only while a call runs.
            Backing::Btrfs { pool, .. } => match Arc::try_unwrap(pool) {
                Ok(pool) => blocking(move || pool.teardown()).await?,
                Err(_) => tracing::warn!("btrfs pool still in use at teardown; the run's cleanup detaches it"),
            },
        }
        Ok(())
    }
}

fn remove_dir(path: &std::path::Path) -> Result<(), StorageError> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(StorageError::RemoveDir { path: path.to_owned(), source }),
    }
}

/// Runs a btrfs-progs call off the async workers: a snapshot commits a
/// btrfs transaction, which can take a while under write load.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BtrfsError> + Send + 'static,
) -> Result<T, BtrfsError> {
    tokio::task::spawn_blocking(f).await.expect("btrfs call panicked")
}

/// Bytes of the regular files under `dir`, as stored; what cannot be read
/// counts 0, and links are not followed. A backup repository's growth and
/// the crash points kept for replay are measured with it.
pub fn dir_size(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
mod dir_size_tests {
    use super::dir_size;

    #[test]
    fn a_directory_measures_its_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("data/00")).unwrap();
        std::fs::write(dir.path().join("config"), [0u8; 100]).unwrap();
        std::fs::write(dir.path().join("data/00/pack"), [0u8; 4000]).unwrap();
        assert_eq!(dir_size(dir.path()), 4100);
        assert_eq!(dir_size(&dir.path().join("absent")), 0);
    }
}
