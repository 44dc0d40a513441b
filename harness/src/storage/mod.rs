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
//!
//! The shared strategy keeps the data on storage hosts that any host can
//! mount ([`gluster`]):
//!
//! | strategy | data on | survives |
//! |---|---|---|
//! | `glusterfs-replica` | a replicated GlusterFS volume (replica 3) on three storage hosts, mounted with the FUSE client | the database's host (a new container on another host's mount), one storage host |
//!
//! For the faults that need it (see [`crate::faults`]), `bind-mount` and
//! `named-volume` put the data on the fault filesystem instead: the harness
//! mounts `crashlab-faultfs` at `<run dir>/fs/<name>/mnt` over
//! `<run dir>/fs/<name>/backing`, and the bind mount, or a local-driver
//! named volume with `type=none,o=bind,device=<mountpoint>`, points there.
//! Every other cell keeps the plain storage above.

pub mod btrfs;
pub mod faultmount;
pub mod gluster;
mod strategy;

pub use strategy::{BackupKind, DataOn, Strategy, StrategyDef, TABLE, UnderData};

use crate::docker::{Docker, DockerError};
use crate::run::RunContext;
use crate::storage::btrfs::{BtrfsError, BtrfsPool};
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
}

/// What to provision: a built-in strategy, or one of `crashlab bench`'s
/// own backends, which are provisioned the same way and differ only in
/// where the data goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    Strategy(Strategy),
    /// A volume of any driver and options, mounted like a named volume.
    Volume {
        driver: String,
        options: Vec<(String, String)>,
    },
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
}

/// The storage one cell's containers use; created before the first
/// container and removed after the last.
#[derive(Debug)]
pub struct Storage {
    data_on: DataOn,
    /// Base of the names of what it creates.
    name: String,
    volume: Option<String>,
    host_dir: Option<PathBuf>,
    faultfs: Option<FaultMount>,
    /// `btrfs-snapshot`: the pool, and the subvolume the volume binds.
    btrfs: Option<(Arc<BtrfsPool>, String)>,
    /// `glusterfs-replica`: the storage hosts, the volume and the host's
    /// client mount.
    gluster: Option<GlusterVolume>,
    /// Times the data was provisioned again after a host loss.
    generation: u32,
    options: ProvisionOptions,
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
        let data_on = match place {
            Place::Strategy(s) => s.def().data_on,
            Place::Volume { .. } => DataOn::NamedVolume,
            Place::HostSubdir(_) => DataOn::HostDir,
        };
        let mut storage = Storage {
            data_on,
            name: name.to_owned(),
            volume: None,
            host_dir: None,
            faultfs: None,
            btrfs: None,
            gluster: None,
            generation: 0,
            options,
        };
        let created = match place {
            Place::Strategy(s) => match options.faultfs.filter(|_| s.def().under == UnderData::FaultFs) {
                Some(fs) => storage.create_on_faultfs(docker, run, fs).await,
                None => storage.create_data(docker, run, None).await,
            },
            Place::Volume { driver, options } => {
                let opts: HashMap<String, String> = options.iter().cloned().collect();
                storage.volume = Some(name.to_owned());
                docker.create_driver_volume(name, run.labels(), driver, opts).await.map_err(StorageError::from)
            }
            Place::HostSubdir(root) => {
                let path = root.join(name);
                storage.host_dir = Some(path.clone());
                std::fs::create_dir(&path).map_err(|source| StorageError::CreateDir { path, source })
            }
        };
        if let Err(e) = created {
            storage.teardown(docker).await.ok();
            return Err(e);
        }
        Ok(storage)
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
        let fs = FaultMount::create(&run.dir().join("fs").join(&self.name), options, Some(run.journal()))?;
        let mountpoint = fs.mountpoint().to_owned();
        self.faultfs = Some(fs);
        if self.data_on == DataOn::NamedVolume {
            let device = mountpoint.display().to_string();
            self.volume = Some(self.name.clone());
            docker.create_bind_volume(&self.name, run.labels(), &device).await?;
        } else {
            self.host_dir = Some(mountpoint);
        }
        Ok(())
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
        match self.data_on {
            DataOn::NamedVolume | DataOn::Replicated(_) => {
                self.volume = Some(name.clone());
                docker.create_volume(&name, run.labels()).await?;
            }
            DataOn::HostDir => {
                let path = run.dir().join("data").join(&name);
                self.host_dir = Some(path.clone());
                std::fs::create_dir_all(&path).map_err(|source| StorageError::CreateDir { path, source })?;
            }
            DataOn::BtrfsSubvolume => {
                let pool = match &self.btrfs {
                    Some((pool, _)) => pool.clone(),
                    None => {
                        let dir = run.dir().join("btrfs").join(&self.name);
                        let size = BTRFS_POOL_BASE + 3 * self.options.ballast;
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
                self.volume = Some(name.clone());
                docker.create_bind_volume(&name, run.labels(), &device).await?;
            }
            DataOn::Gluster => {
                // The volume outlives a host: a reprovision after a host
                // loss is another host's fresh client mount of it.
                let volume = match self.gluster.take() {
                    Some(volume) => volume,
                    None => GlusterVolume::create(docker, run, &self.name).await?,
                };
                let volume = self.gluster.insert(volume);
                volume.mount(run).await?;
            }
            DataOn::WritableLayer | DataOn::AnonymousVolume | DataOn::Tmpfs => {}
        }
        Ok(())
    }

    /// Destroys the data as the loss of the host would: the volume, the
    /// host directory or the live subvolume. Backups kept elsewhere (tar
    /// files and the object store under the run directory, the btrfs
    /// pool's read-only snapshots, which stand for a volume plugin's
    /// off-host snapshots) stay, and so does a GlusterFS volume, which
    /// lives on its storage hosts: only the host's client mount goes.
    /// Containers using the data must be gone.
    pub async fn lose(&mut self, docker: &Docker) -> Result<(), StorageError> {
        if let Some(volume) = self.gluster.as_mut() {
            volume.unmount()?;
        }
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
        self.volume.as_deref()
    }

    /// `btrfs-snapshot`'s pool and the subvolume holding the live data.
    pub fn btrfs(&self) -> Option<(&Arc<BtrfsPool>, &str)> {
        self.btrfs.as_ref().map(|(pool, subvolume)| (pool, subvolume.as_str()))
    }

    /// `glusterfs-replica`'s volume and its storage hosts.
    pub fn gluster(&self) -> Option<&GlusterVolume> {
        self.gluster.as_ref()
    }

    pub fn gluster_mut(&mut self) -> Option<&mut GlusterVolume> {
        self.gluster.as_mut()
    }

    /// Whether the storage serves with less than it was built with (a
    /// storage host lost), so that the deployment is rebuilt before the
    /// next cycle.
    pub fn degraded(&self) -> bool {
        self.gluster.as_ref().is_some_and(GlusterVolume::degraded)
    }

    /// The mounts a container on this storage gets at `data_dir`.
    pub fn mounts(&self, run: &RunContext, data_dir: &str) -> Vec<Mount> {
        let target = Some(data_dir.to_owned());
        match self.data_on {
            DataOn::WritableLayer => vec![],
            DataOn::AnonymousVolume => vec![Mount {
                target,
                typ: Some(MountType::VOLUME),
                volume_options: Some(MountVolumeOptions { labels: Some(run.labels()), ..Default::default() }),
                ..Default::default()
            }],
            DataOn::NamedVolume | DataOn::BtrfsSubvolume | DataOn::Replicated(_) => {
                vec![Mount { target, source: self.volume.clone(), typ: Some(MountType::VOLUME), ..Default::default() }]
            }
            DataOn::HostDir => vec![Mount {
                target,
                source: self.host_dir.as_ref().map(|p| p.display().to_string()),
                typ: Some(MountType::BIND),
                ..Default::default()
            }],
            DataOn::Gluster => vec![Mount {
                target,
                source: self.gluster.as_ref().and_then(GlusterVolume::data_path).map(|p| p.display().to_string()),
                typ: Some(MountType::BIND),
                ..Default::default()
            }],
            DataOn::Tmpfs => vec![Mount {
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
        if let Some(volume) = self.gluster.take() {
            volume.teardown().await?;
        }
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
