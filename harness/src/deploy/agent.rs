//! Finding the `crashlab-agent` binary that agent-hosted workloads (SQLite,
//! the fsync-log probe) run in their containers. Cargo builds it next to
//! `crashlab` (`target/<profile>/`); `CRASHLAB_AGENT` names another build.
//! The host builds it for its own C library, and the agent image is a
//! Debian of the same release, so the binary runs there as built.

use crashlab_workloads::agent::BIN_NAME;
use std::path::{Path, PathBuf};

/// The environment variable that names the agent binary explicitly.
pub const ENV: &str = "CRASHLAB_AGENT";

/// Why the agent could not be found. Messages read well after "failed to".
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("find {BIN_NAME}: {ENV}={} is not a file", .0.display())]
    NotAFile(PathBuf),
    #[error("find {BIN_NAME} next to {} (nor is {ENV} set)", .0.display())]
    Missing(PathBuf),
}

impl AgentError {
    /// What to do about it.
    pub fn hint(&self) -> &'static str {
        "build it with `cargo build --release -p crashlab-agent` (or `cargo build --release --workspace`), \
         or point CRASHLAB_AGENT at a build"
    }
}

/// The agent binary on this host: `CRASHLAB_AGENT` when set (an explicit
/// choice wins), else the file next to the running executable, or one
/// directory up when that is cargo's `deps/` (test binaries run from
/// there).
pub fn locate() -> Result<PathBuf, AgentError> {
    if let Some(path) = std::env::var_os(ENV).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return if path.is_file() { Ok(path) } else { Err(AgentError::NotAFile(path)) };
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().unwrap_or(Path::new("."));
    let mut candidates = vec![dir.join(BIN_NAME)];
    if dir.file_name().is_some_and(|n| n == "deps")
        && let Some(up) = dir.parent()
    {
        candidates.push(up.join(BIN_NAME));
    }
    candidates.iter().find(|p| p.is_file()).cloned().ok_or_else(|| AgentError::Missing(dir.to_owned()))
}

/// Whether `agent` can use `s3://` stores: its `--version` line lists the
/// stores it was built with (`crashlab-agent 0.1.0 (stores: file, s3)`);
/// an agent too old to list them has file stores only.
pub fn has_s3(agent: &Path) -> std::io::Result<bool> {
    let out = std::process::Command::new(agent).arg("--version").output()?;
    let line = String::from_utf8_lossy(&out.stdout);
    let stores = line.split_once("(stores: ").map_or("", |(_, rest)| rest.trim_end().trim_end_matches(')'));
    Ok(stores.split(", ").any(|s| s == "s3"))
}
