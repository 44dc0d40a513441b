//! A run's identity and everything it owns.
//!
//! Every container, volume and network a run creates carries the labels
//! `crashlab.run=<run id>` and `crashlab.state=<state dir>`; host
//! directories live under `<state dir>/runs/<run id>/`, and so do the fault
//! filesystem's mounts (`fs/<name>/mnt`) and the btrfs pools' images and
//! mounts (`btrfs/<name>/{image,mnt}`). The run's [`journal`] lists each of
//! them before it is created (and the one thing made elsewhere, a bench
//! host-path directory), and its lock tells a live run from a dead one.
//! [`crate::cleanup`] removes all of it. This module is the bottom of the
//! engine: it knows no Docker, storage or image.

pub mod journal;

use journal::Journal;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// The label key every created object carries.
pub const RUN_LABEL: &str = "crashlab.run";
/// The canonical state directory of the run, so that `crashlab clean` only
/// ever considers runs of its own state directory.
pub const STATE_LABEL: &str = "crashlab.state";
/// The owning process. This crashlab never reads it (liveness is the
/// journal's lock); it is kept so that an older crashlab's `clean`, which
/// calls a run without it dead, leaves live runs alone.
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

/// One run: its id, its directory and its journal, whose lock it holds
/// until the last clone is dropped.
#[derive(Debug, Clone)]
pub struct RunContext {
    id: String,
    dir: PathBuf,
    /// The canonical state directory.
    state: PathBuf,
    journal: Arc<Journal>,
}

impl RunContext {
    /// Creates the run directory and its locked journal. A `pid` file
    /// names this process, so that it can find its own run; it says nothing
    /// about liveness.
    pub fn create(state_dir: &Path) -> std::io::Result<RunContext> {
        let runs = state_dir.join("runs");
        let _birth = journal::lock_runs(&runs, false)?;
        let state = std::fs::canonicalize(state_dir)?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let id = format!("{}-{:04x}", now.as_secs(), (now.subsec_nanos() ^ std::process::id()) & 0xffff);
        let dir = state.join("runs").join(&id);
        // Not `create_dir_all`: two runs must never share a directory.
        std::fs::create_dir(&dir)?;
        let journal = Arc::new(Journal::create(&dir)?);
        std::fs::write(dir.join("pid"), std::process::id().to_string())?;
        Ok(RunContext { id, dir, state, journal })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The canonical state directory the run lives in.
    pub fn state_dir(&self) -> &Path {
        &self.state
    }

    pub fn journal(&self) -> &Arc<Journal> {
        &self.journal
    }

    pub fn labels(&self) -> HashMap<String, String> {
        HashMap::from([
            (RUN_LABEL.to_owned(), self.id.clone()),
            (STATE_LABEL.to_owned(), self.state.display().to_string()),
            (PID_LABEL.to_owned(), std::process::id().to_string()),
        ])
    }

    /// A Docker object name unique to this run.
    pub fn object_name(&self, suffix: &str) -> String {
        format!("crashlab-{}-{suffix}", self.id)
    }
}
