//! A run's identity and everything it owns.
//!
//! Every container and volume a run creates carries the label
//! `crashlab.run=<run id>`; host directories live under
//! `<state dir>/runs/<run id>/`, beside a `pid` file naming the process that
//! owns them. [`cleanup_run`] removes all of it by label and path, so a run
//! cleans up the same way whether it finished, failed or was interrupted,
//! and `crashlab clean` can remove what a killed run left.

use crate::docker::{Docker, DockerError};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The label key every created object carries.
pub const RUN_LABEL: &str = "crashlab.run";

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
        HashMap::from([(RUN_LABEL.to_owned(), self.id.clone())])
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
}

/// Removes every container and volume labelled with `run_id`, then its
/// directory. Containers go first: a volume in use cannot be removed.
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
    if dir.exists() {
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            tracing::warn!("could not remove {}: {e}", dir.display());
        } else {
            cleaned.dirs += 1;
        }
    }
    Ok(cleaned)
}

/// Whether the process that owns `run_id` is still alive.
fn run_is_live(state_dir: &Path, run_id: &str) -> bool {
    let pid_file = state_dir.join("runs").join(run_id).join("pid");
    let Ok(pid) = std::fs::read_to_string(pid_file) else { return false };
    let pid = pid.trim();
    if pid == std::process::id().to_string() {
        return true;
    }
    std::fs::read_to_string(format!("/proc/{pid}/cmdline")).is_ok_and(|cmd| cmd.contains("crashlab"))
}

/// Removes what runs whose process is gone left behind: labelled
/// containers and volumes, and run directories. Live runs are left alone.
pub async fn clean_stale(docker: &Docker, state_dir: &Path) -> Result<Cleaned, DockerError> {
    let mut runs: Vec<String> = Vec::new();
    for container in docker.containers_labelled(RUN_LABEL).await? {
        if let Some(run) = container.labels.and_then(|l| l.get(RUN_LABEL).cloned()) {
            runs.push(run);
        }
    }
    for volume in docker.volumes_labelled(RUN_LABEL).await? {
        if let Some(run) = volume.labels.get(RUN_LABEL) {
            runs.push(run.clone());
        }
    }
    if let Ok(entries) = std::fs::read_dir(state_dir.join("runs")) {
        runs.extend(entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()));
    }
    runs.sort();
    runs.dedup();
    let mut total = Cleaned::default();
    for run in runs.iter().filter(|r| !run_is_live(state_dir, r)) {
        let c = cleanup_run(docker, state_dir, run).await?;
        total.containers += c.containers;
        total.volumes += c.volumes;
        total.dirs += c.dirs;
    }
    Ok(total)
}
