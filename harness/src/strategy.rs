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
//! For the faults that need it (see [`crate::fault`]), `bind-mount` and
//! `named-volume` put the data on the fault filesystem instead: the harness
//! mounts `crashlab-faultfs` at `<run dir>/fs/<name>/mnt` over
//! `<run dir>/fs/<name>/backing`, and the bind mount, or a local-driver
//! named volume with `type=none,o=bind,device=<mountpoint>`, points there.
//! Every other cell keeps the plain storage above.

use crate::docker::{Docker, DockerError};
use crate::faultmount::{FaultMount, FaultMountError};
use crate::run::RunContext;
use bollard::models::{Mount, MountTmpfsOptions, MountType, MountVolumeOptions};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    ContainerLayer,
    AnonymousVolume,
    NamedVolume,
    BindMount,
    Tmpfs,
}

impl Strategy {
    pub const ALL: [Strategy; 5] = [
        Strategy::ContainerLayer,
        Strategy::AnonymousVolume,
        Strategy::NamedVolume,
        Strategy::BindMount,
        Strategy::Tmpfs,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::ContainerLayer => "container-layer",
            Strategy::AnonymousVolume => "anonymous-volume",
            Strategy::NamedVolume => "named-volume",
            Strategy::BindMount => "bind-mount",
            Strategy::Tmpfs => "tmpfs",
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
}

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
    volume: Option<String>,
    host_dir: Option<PathBuf>,
    faultfs: Option<FaultMount>,
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
        Storage::provision_with(docker, run, strategy, name, None).await
    }

    /// [`Storage::provision`], with the data on the fault filesystem when
    /// `faultfs` is given and the strategy can have it there (`bind-mount`,
    /// `named-volume`); other strategies ignore it.
    pub async fn provision_with(
        docker: &Docker,
        run: &RunContext,
        strategy: Strategy,
        name: &str,
        faultfs: Option<FaultFsOptions>,
    ) -> Result<Storage, StorageError> {
        let mut storage = Storage { strategy, volume: None, host_dir: None, faultfs: None };
        if let Some(options) = faultfs
            && matches!(strategy, Strategy::BindMount | Strategy::NamedVolume)
        {
            let fs = FaultMount::create(&run.dir().join("fs").join(name), options.seed, options.fsync_reaches_disk)?;
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
        match strategy {
            Strategy::NamedVolume => {
                docker.create_volume(name, run.labels()).await?;
                storage.volume = Some(name.to_owned());
            }
            Strategy::BindMount => {
                let path = run.dir().join("data").join(name);
                std::fs::create_dir_all(&path)
                    .map_err(|source| StorageError::CreateDir { path: path.clone(), source })?;
                storage.host_dir = Some(path);
            }
            Strategy::ContainerLayer | Strategy::AnonymousVolume | Strategy::Tmpfs => {}
        }
        Ok(storage)
    }

    /// Storage on a volume the caller created with any driver (`crashlab
    /// bench`'s own backends): mounted like a named volume, and removed
    /// with it at teardown.
    pub fn on_volume(name: String) -> Storage {
        Storage { strategy: Strategy::NamedVolume, volume: Some(name), host_dir: None, faultfs: None }
    }

    /// Storage in a host directory the caller created (`crashlab bench`'s
    /// host paths): bind-mounted, and removed at teardown.
    pub fn in_host_dir(path: PathBuf) -> Storage {
        Storage { strategy: Strategy::BindMount, volume: None, host_dir: Some(path), faultfs: None }
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
            Strategy::NamedVolume => {
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
            match std::fs::remove_dir_all(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(StorageError::RemoveDir { path: path.clone(), source }),
            }
        }
        Ok(())
    }
}
