//! A run's identity and everything it owns.
//!
//! Every container and volume a run creates carries the label
//! `crashlab.run=<run id>`; host directories live under
//! `<state dir>/runs/<run id>/`, beside a `pid` file naming the process that
//! owns them, and so do the fault filesystem's mounts (`fs/<name>/mnt`) and
//! the btrfs pools' images and mounts (`btrfs/<name>/{image,mnt}`):
//! `/proc/self/mounts` lists what is still mounted there, and sysfs which
//! loop devices hold an image there. [`cleanup_run`] removes all of it by
//! label and path, so a run cleans up the same way whether it finished,
//! failed or was interrupted, and `crashlab clean` can remove what a killed
//! run left.

pub mod agent;
pub mod deployment;
pub mod readiness;
pub mod runner;

use crate::docker::{Docker, DockerError};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The label key every created object carries.
pub const RUN_LABEL: &str = "crashlab.run";
/// The owning process, so that `crashlab clean` can tell a live run from a
/// dead one whatever state directory it used.
pub const PID_LABEL: &str = "crashlab.pid";

/// Where crashlab keeps run directories and build caches:
/// `$CRASHLAB_STATE_DIR`, else `/var/lib/crashlab` for root, else
/// `~/.local/state/crashlab`.
pub fn state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CRASHLAB_STATE_DIR") {
        return PathBuf::from(dir);
    }
    let is_root = std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0);
    if is_root.unwrap_or(false) {
        return PathBuf::from("/var/lib/crashlab");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".local/state/crashlab")
}

/// One run: its id and its directory.
#[derive(Debug, Clone)]
pub struct RunContext {
    id: String,
    dir: PathBuf,
}

impl RunContext {
    /// Creates the run directory and records this process as its owner.
    pub fn create(state_dir: &Path) -> std::io::Result<RunContext> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let id = format!("{}-{:04x}", now.as_secs(), (now.subsec_nanos() ^ std::process::id()) & 0xffff);
        let dir = state_dir.join("runs").join(&id);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("pid"), std::process::id().to_string())?;
        Ok(RunContext { id, dir })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn labels(&self) -> HashMap<String, String> {
        HashMap::from([(RUN_LABEL.to_owned(), self.id.clone()), (PID_LABEL.to_owned(), std::process::id().to_string())])
    }

    /// A Docker object name unique to this run.
    pub fn object_name(&self, suffix: &str) -> String {
        format!("crashlab-{}-{suffix}", self.id)
    }
}

/// What a cleanup removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Cleaned {
    pub containers: usize,
    pub volumes: usize,
    pub dirs: usize,
    /// Fault-filesystem mounts detached.
    pub mounts: usize,
    /// btrfs pools unmounted or whose loop devices were freed.
    pub btrfs_pools: usize,
}

/// Removes every container and volume labelled with `run_id`, then detaches
/// the mounts under its directory and removes the directory. Containers go
/// first: a volume in use cannot be removed, and a container keeps the
/// fault filesystem it binds alive. Mounts go before the directory: a
/// recursive removal must never walk through a FUSE mount, live (it would
/// delete the backing data through it) or dead (it fails with `ENOTCONN`),
/// nor through a btrfs pool. The pools go before the lazy detach of every
/// other mount, so that they are unmounted properly and their loop devices
/// freed rather than left holding an image nobody can reach.
pub async fn cleanup_run(docker: &Docker, state_dir: &Path, run_id: &str) -> Result<Cleaned, DockerError> {
    let label = format!("{RUN_LABEL}={run_id}");
    let mut cleaned = Cleaned::default();
    for container in docker.containers_labelled(&label).await? {
        if let Some(id) = container.id {
            docker.remove_container(&id).await?;
            cleaned.containers += 1;
        }
    }
    for volume in docker.volumes_labelled(&label).await? {
        docker.remove_volume(&volume.name).await?;
        cleaned.volumes += 1;
    }
    let dir = state_dir.join("runs").join(run_id);
    cleaned.btrfs_pools += crate::storage::btrfs::detach_btrfs_under(&dir);
    cleaned.mounts += crate::storage::faultmount::detach_mounts_under(&dir);
    if !crate::images::mounts_under(&dir).is_empty() {
        tracing::warn!("{} still has mounts; left in place", dir.display());
    } else if dir.exists() {
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            tracing::warn!("could not remove {}: {e}", dir.display());
        } else {
            cleaned.dirs += 1;
        }
    }
    Ok(cleaned)
}

/// Whether `pid` is a live crashlab process (this one included).
fn crashlab_alive(pid: &str) -> bool {
    let pid = pid.trim();
    pid == std::process::id().to_string()
        || std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|cmd| String::from_utf8_lossy(&cmd).contains("crashlab"))
}

/// Removes what runs whose process is gone left behind: labelled
/// containers and volumes, and run directories. Live runs are left alone,
/// whichever state directory they use.
pub async fn clean_stale(docker: &Docker, state_dir: &Path) -> Result<Cleaned, DockerError> {
    // run id -> whether some object of it names a live owner
    let mut runs: HashMap<String, bool> = HashMap::new();
    let mut note = |labels: &HashMap<String, String>| {
        if let Some(run) = labels.get(RUN_LABEL) {
            let live = labels.get(PID_LABEL).is_some_and(|p| crashlab_alive(p));
            *runs.entry(run.clone()).or_default() |= live;
        }
    };
    for container in docker.containers_labelled(RUN_LABEL).await? {
        note(&container.labels.unwrap_or_default());
    }
    for volume in docker.volumes_labelled(RUN_LABEL).await? {
        note(&volume.labels);
    }
    if let Ok(entries) = std::fs::read_dir(state_dir.join("runs")) {
        for entry in entries.flatten() {
            let live = std::fs::read_to_string(entry.path().join("pid")).is_ok_and(|p| crashlab_alive(&p));
            *runs.entry(entry.file_name().to_string_lossy().into_owned()).or_default() |= live;
        }
    }
    let mut total = Cleaned::default();
    for (run, _) in runs.iter().filter(|(_, live)| !**live) {
        let c = cleanup_run(docker, state_dir, run).await?;
        total.containers += c.containers;
        total.volumes += c.volumes;
        total.dirs += c.dirs;
        total.mounts += c.mounts;
        total.btrfs_pools += c.btrfs_pools;
    }
    Ok(total)
}
