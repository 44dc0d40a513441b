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
//! The backup strategies keep the live data on a named volume and take
//! backups of it during the load (see [`crate::backup`] for how each copies
//! and restores):
//!
//! | strategy | live data on | backup |
//! |---|---|---|
//! | `backup-hot` | a named volume | tar of the live volume while the engine writes |
//! | `backup-quiesced` | a named volume | tar while the engine is held still (read lock, or the container paused) |
//! | `backup-stopped` | a named volume | tar while the container is stopped |
//! | `btrfs-snapshot` | a named volume bound to a subvolume of a loop-mounted btrfs the harness owns | read-only snapshot |
//! | `sync-agent` | a named volume | a sidecar archives, compresses and uploads it to an object store |
//!
//! For the faults that need it (see [`crate::faults`]), `bind-mount` and
//! `named-volume` put the data on the fault filesystem instead: the harness
//! mounts `crashlab-faultfs` at `<run dir>/fs/<name>/mnt` over
//! `<run dir>/fs/<name>/backing`, and the bind mount, or a local-driver
//! named volume with `type=none,o=bind,device=<mountpoint>`, points there.
//! Every other cell keeps the plain storage above.

pub mod btrfs;
pub mod faultmount;

use crate::docker::{Docker, DockerError};
use crate::run::RunContext;
use crate::storage::btrfs::{BtrfsError, BtrfsPool};
use crate::storage::faultmount::{FaultMount, FaultMountError};
use bollard::models::{Mount, MountTmpfsOptions, MountType, MountVolumeOptions};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    ContainerLayer,
    AnonymousVolume,
    NamedVolume,
    BindMount,
    Tmpfs,
    BackupHot,
    BackupQuiesced,
    BackupStopped,
    BtrfsSnapshot,
    SyncAgent,
}

impl Strategy {
    /// Where data can live.
    pub const PLACES: [Strategy; 5] = [
        Strategy::ContainerLayer,
        Strategy::AnonymousVolume,
        Strategy::NamedVolume,
        Strategy::BindMount,
        Strategy::Tmpfs,
    ];

    /// A named volume plus backups of it.
    pub const BACKUPS: [Strategy; 5] = [
        Strategy::BackupHot,
        Strategy::BackupQuiesced,
        Strategy::BackupStopped,
        Strategy::BtrfsSnapshot,
        Strategy::SyncAgent,
    ];

    pub const ALL: [Strategy; 10] = [
        Strategy::ContainerLayer,
        Strategy::AnonymousVolume,
        Strategy::NamedVolume,
        Strategy::BindMount,
        Strategy::Tmpfs,
        Strategy::BackupHot,
        Strategy::BackupQuiesced,
        Strategy::BackupStopped,
        Strategy::BtrfsSnapshot,
        Strategy::SyncAgent,
    ];

    /// Whether the strategy takes backups during the load.
    pub fn is_backup(self) -> bool {
        Strategy::BACKUPS.contains(&self)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::ContainerLayer => "container-layer",
            Strategy::AnonymousVolume => "anonymous-volume",
            Strategy::NamedVolume => "named-volume",
            Strategy::BindMount => "bind-mount",
            Strategy::Tmpfs => "tmpfs",
            Strategy::BackupHot => "backup-hot",
            Strategy::BackupQuiesced => "backup-quiesced",
            Strategy::BackupStopped => "backup-stopped",
            Strategy::BtrfsSnapshot => "btrfs-snapshot",
            Strategy::SyncAgent => "sync-agent",
        }
    }
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

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
}

/// The storage one cell's containers use; created before the first
/// container and removed after the last.
#[derive(Debug)]
pub struct Storage {
    pub strategy: Strategy,
    /// Base of the names of what it creates.
    name: String,
    volume: Option<String>,
    host_dir: Option<PathBuf>,
    faultfs: Option<FaultMount>,
    /// `btrfs-snapshot`: the pool, and the subvolume the volume binds.
    btrfs: Option<(Arc<BtrfsPool>, String)>,
    /// Times the data was provisioned again after a host loss.
    generation: u32,
    /// `btrfs-snapshot`: the ballast the pool must hold besides the data.
    btrfs_ballast: u64,
}

impl Storage {
    /// Creates what the strategy needs outside any container: a labelled
    /// named volume, or a host directory under the run's state directory.
    pub async fn provision(
        docker: &Docker,
        run: &RunContext,
        strategy: Strategy,
        name: &str,
    ) -> Result<Storage, StorageError> {
        Storage::provision_with(docker, run, strategy, name, None, 0).await
    }

    /// [`Storage::provision`], with the data on the fault filesystem when
    /// `faultfs` is given and the strategy can have it there (`bind-mount`,
    /// `named-volume`); other strategies ignore it. `ballast`: bytes the
    /// workload adds to its data (`[backup] ballast`), for sizing the
    /// `btrfs-snapshot` pool.
    pub async fn provision_with(
        docker: &Docker,
        run: &RunContext,
        strategy: Strategy,
        name: &str,
        faultfs: Option<FaultFsOptions>,
        ballast: u64,
    ) -> Result<Storage, StorageError> {
        let mut storage = Storage {
            strategy,
            name: name.to_owned(),
            volume: None,
            host_dir: None,
            faultfs: None,
            btrfs: None,
            generation: 0,
            btrfs_ballast: ballast,
        };
        if let Some(options) = faultfs
            && matches!(strategy, Strategy::BindMount | Strategy::NamedVolume)
        {
            let fs = FaultMount::create(
                &run.dir().join("fs").join(name),
                options.seed,
                options.fsync_reaches_disk,
                Some(run.journal()),
            )?;
            let mountpoint = fs.mountpoint().to_owned();
            storage.faultfs = Some(fs);
            if strategy == Strategy::NamedVolume {
                let device = mountpoint.display().to_string();
                if let Err(e) = docker.create_bind_volume(name, run.labels(), &device).await {
                    storage.teardown(docker).await.ok();
                    return Err(e.into());
                }
                storage.volume = Some(name.to_owned());
            } else {
                storage.host_dir = Some(mountpoint);
            }
            return Ok(storage);
        }
        if let Err(e) = storage.create_data(docker, run, None).await {
            storage.teardown(docker).await.ok();
            return Err(e);
        }
        Ok(storage)
    }

    /// Creates the volume, directory or subvolume the data lives on; for
    /// `btrfs-snapshot`, as a writable snapshot of `from_snapshot` when
    /// given (a restore), the pool being created on first use.
    async fn create_data(
        &mut self,
        docker: &Docker,
        run: &RunContext,
        from_snapshot: Option<&str>,
    ) -> Result<(), StorageError> {
        let name = match self.generation {
            0 => self.name.clone(),
            g => format!("{}-{g}", self.name),
        };
        match self.strategy {
            Strategy::NamedVolume
            | Strategy::BackupHot
            | Strategy::BackupQuiesced
            | Strategy::BackupStopped
            | Strategy::SyncAgent => {
                docker.create_volume(&name, run.labels()).await?;
                self.volume = Some(name);
            }
            Strategy::BindMount => {
                let path = run.dir().join("data").join(&name);
                std::fs::create_dir_all(&path)
                    .map_err(|source| StorageError::CreateDir { path: path.clone(), source })?;
                self.host_dir = Some(path);
            }
            Strategy::BtrfsSnapshot => {
                let pool = match &self.btrfs {
                    Some((pool, _)) => pool.clone(),
                    None => {
                        let dir = run.dir().join("btrfs").join(&self.name);
                        let size = BTRFS_POOL_BASE + 3 * self.btrfs_ballast;
                        let journal = run.journal().clone();
                        Arc::new(blocking(move || BtrfsPool::create(&dir, size, Some(&journal))).await?)
                    }
                };
                let subvolume = format!("live-{}", self.generation);
                let path = {
                    let (pool, subvolume, from) = (pool.clone(), subvolume.clone(), from_snapshot.map(str::to_owned));
                    blocking(move || match from {
                        Some(snapshot) => pool.snapshot(&snapshot, &subvolume, false).map(|s| s.path),
                        None => pool.create_subvolume(&subvolume),
                    })
                    .await
                };
                self.btrfs = Some((pool, subvolume));
                let device = path?.display().to_string();
                docker.create_bind_volume(&name, run.labels(), &device).await?;
                self.volume = Some(name);
            }
            Strategy::ContainerLayer | Strategy::AnonymousVolume | Strategy::Tmpfs => {}
        }
        Ok(())
    }

    /// Destroys the data as the loss of the host would: the volume, the
    /// host directory or the live subvolume. Backups kept elsewhere (tar
    /// files and the object store under the run directory, the btrfs
    /// pool's read-only snapshots, which stand for a volume plugin's
    /// off-host snapshots) stay. Containers using the data must be gone.
    pub async fn lose(&mut self, docker: &Docker) -> Result<(), StorageError> {
        if let Some(volume) = self.volume.take() {
            docker.remove_volume(&volume).await?;
        }
        if let Some((pool, subvolume)) = &self.btrfs {
            let (pool, subvolume) = (pool.clone(), subvolume.clone());
            blocking(move || pool.delete_subvolume(&subvolume)).await?;
        }
        if let Some(path) = self.host_dir.take() {
            remove_dir(&path)?;
        }
        Ok(())
    }

    /// New, empty storage of the same strategy after [`Storage::lose`], or
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
        self.volume.as_deref()
    }

    /// `btrfs-snapshot`'s pool and the subvolume holding the live data.
    pub fn btrfs(&self) -> Option<(&Arc<BtrfsPool>, &str)> {
        self.btrfs.as_ref().map(|(pool, subvolume)| (pool, subvolume.as_str()))
    }

    /// Storage on a volume the caller created with any driver (`crashlab
    /// bench`'s own backends): mounted like a named volume, and removed
    /// with it at teardown.
    pub fn on_volume(name: String) -> Storage {
        Storage {
            strategy: Strategy::NamedVolume,
            name: name.clone(),
            volume: Some(name),
            host_dir: None,
            faultfs: None,
            btrfs: None,
            generation: 0,
            btrfs_ballast: 0,
        }
    }

    /// Storage in a host directory the caller created (`crashlab bench`'s
    /// host paths): bind-mounted, and removed at teardown.
    pub fn in_host_dir(path: PathBuf) -> Storage {
        Storage {
            strategy: Strategy::BindMount,
            name: String::new(),
            volume: None,
            host_dir: Some(path),
            faultfs: None,
            btrfs: None,
            generation: 0,
            btrfs_ballast: 0,
        }
    }

    /// The mounts a container on this storage gets at `data_dir`.
    pub fn mounts(&self, run: &RunContext, data_dir: &str) -> Vec<Mount> {
        let target = Some(data_dir.to_owned());
        match self.strategy {
            Strategy::ContainerLayer => vec![],
            Strategy::AnonymousVolume => vec![Mount {
                target,
                typ: Some(MountType::VOLUME),
                volume_options: Some(MountVolumeOptions { labels: Some(run.labels()), ..Default::default() }),
                ..Default::default()
            }],
            Strategy::NamedVolume
            | Strategy::BackupHot
            | Strategy::BackupQuiesced
            | Strategy::BackupStopped
            | Strategy::BtrfsSnapshot
            | Strategy::SyncAgent => {
                vec![Mount { target, source: self.volume.clone(), typ: Some(MountType::VOLUME), ..Default::default() }]
            }
            Strategy::BindMount => vec![Mount {
                target,
                source: self.host_dir.as_ref().map(|p| p.display().to_string()),
                typ: Some(MountType::BIND),
                ..Default::default()
            }],
            Strategy::Tmpfs => vec![Mount {
                target,
                typ: Some(MountType::TMPFS),
                tmpfs_options: Some(MountTmpfsOptions { mode: Some(0o1777), ..Default::default() }),
                ..Default::default()
            }],
        }
    }

    /// The fault filesystem under the data, if the data is on one.
    pub fn faultfs_mut(&mut self) -> Option<&mut FaultMount> {
        self.faultfs.as_mut()
    }

    /// Removes the volume or host directory, unmounting the fault
    /// filesystem before its directories go. Containers using it must be
    /// gone first.
    pub async fn teardown(mut self, docker: &Docker) -> Result<(), StorageError> {
        if let Some(volume) = &self.volume {
            docker.remove_volume(volume).await?;
        }
        if let Some(fs) = self.faultfs.take() {
            // The host directory is the mountpoint, removed with the mount.
            fs.teardown().await?;
            return Ok(());
        }
        if let Some(path) = &self.host_dir {
            remove_dir(path)?;
        }
        if let Some((pool, _)) = self.btrfs.take() {
            // Snapshot callers hold clones only while a call runs.
            match Arc::try_unwrap(pool) {
                Ok(pool) => blocking(move || pool.teardown()).await?,
                Err(_) => tracing::warn!("btrfs pool still in use at teardown; the run's cleanup detaches it"),
            }
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
