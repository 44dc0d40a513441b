//! A volume's mount holder: the process that serves one `crashlab`
//! volume's fault filesystem while containers use it, apart from the
//! driver, so that the driver can stop, restart or be upgraded under
//! running containers without taking their mounts with it.
//!
//! The driver starts it (`crashlab volume hold DIR`, in a process group of
//! its own) at a volume's first `Mount`; it mounts the fault filesystem at
//! `DIR/fs/mnt` over `DIR/fs/backing` with the options of
//! `DIR/volume.json`, and answers the driver on `DIR/holder.sock` with the
//! same JSON-over-HTTP as Docker's plugin protocol:
//! `/Holder.Status`, `/Holder.Cut`, `/Holder.Aim` (cut at the next
//! unsynced write of `Bytes` or more), `/Holder.States` (up to `Max` crash
//! states of what is unsynced, written under `Out`; the volume must record
//! its history), `/Holder.Capture` (a crash point handed over to a
//! `crash-states` cycle: the durable base's copy stays where it was made,
//! the unsynced history is written under `Out`), `/Holder.Fail` (a fault
//! rule) and
//! `/Holder.Unmount`, after which it exits. A restarted driver finds a
//! running holder by its socket. SIGINT or SIGTERM unmount and end it too,
//! the unsynced writes made durable first unless the power was cut, as a
//! clean shutdown of a disk would; so does its mount being taken away
//! (`umount`), checked every second.

use super::http::{self, Handler, PluginError};
use super::{Record, VolumeStatus};
use crate::storage::faultmount::FaultMount;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, Notify};

/// The holder's socket in a volume's directory, by a path short enough
/// for a socket address.
pub fn socket(dir: &Path) -> SocketPath {
    SocketPath::new(dir.join("holder.sock"))
}

/// A socket's path as `bind` and `connect` can take it. A socket address
/// holds at most 107 bytes of path, and a volume's directory under the
/// driver's root with a run's volume name (`crashlab-<run>-c0-volume-…`)
/// can be longer: such a path is reached through the directory opened
/// here, as `/proc/self/fd/N/holder.sock`, for as long as this value
/// lives. [`SocketPath::shown`] is the real path, for messages.
pub struct SocketPath {
    path: PathBuf,
    real: PathBuf,
    _dir: Option<std::fs::File>,
}

/// The longest path a socket address holds (`sun_path` less its NUL).
const SUN_PATH_MAX: usize = 107;

impl SocketPath {
    fn new(real: PathBuf) -> SocketPath {
        use std::os::fd::AsRawFd;
        use std::os::unix::ffi::OsStrExt;
        if real.as_os_str().as_bytes().len() <= SUN_PATH_MAX {
            return SocketPath { path: real.clone(), real, _dir: None };
        }
        let (Some(parent), Some(name)) = (real.parent(), real.file_name()) else {
            return SocketPath { path: real.clone(), real, _dir: None };
        };
        match std::fs::File::open(parent) {
            Ok(dir) => {
                let path = Path::new("/proc/self/fd").join(dir.as_raw_fd().to_string()).join(name);
                SocketPath { path, real, _dir: Some(dir) }
            }
            // Left to fail at `bind` or `connect` with the real path.
            Err(_) => SocketPath { path: real.clone(), real, _dir: None },
        }
    }

    /// The socket's real path.
    pub fn shown(&self) -> &Path {
        &self.real
    }
}

impl std::ops::Deref for SocketPath {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

/// Where the holder's log goes: its standard error.
pub fn log(dir: &Path) -> PathBuf {
    dir.join("holder.log")
}

/// One volume's mount, served by this process.
struct Holder {
    fs: Mutex<Option<FaultMount>>,
    /// Told once the mount is gone (`/Holder.Unmount`).
    done: Notify,
}

/// Mounts the volume in `dir` and serves it until `/Holder.Unmount`, the
/// mount's disappearance or `stop`; then unmounts (if still mounted) and
/// removes the socket.
pub async fn hold(dir: &Path, stop: impl std::future::Future<Output = ()>) -> Result<(), String> {
    let path = dir.join("volume.json");
    let record: Record = std::fs::read(&path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        .map_err(|e| format!("read {}: {e}", path.display()))?;
    let options = record.faultfs_options();
    let fs_dir = dir.join("fs");
    let fs = tokio::task::spawn_blocking(move || FaultMount::create(&fs_dir, options, None))
        .await
        .map_err(|e| format!("mount volume {}: {e}", record.name))?
        .map_err(|e| crate::text::error_chain(&e))?;
    let mountpoint = fs.mountpoint().to_owned();
    tracing::info!("volume {} mounted at {}", record.name, mountpoint.display());
    let holder = Arc::new(Holder { fs: Mutex::new(Some(fs)), done: Notify::new() });
    let done = holder.clone();
    let ended = async move {
        tokio::select! {
            () = stop => tracing::info!("stopping on a signal"),
            () = done.done.notified() => {}
            () = mount_gone(&mountpoint) => tracing::warn!("{} was unmounted under the holder", mountpoint.display()),
        }
    };
    let served = http::serve(holder.clone(), &socket(dir), ended, Duration::from_secs(5)).await;
    let unmounted = holder.unmount().await;
    served.map_err(|e| crate::text::error_chain(&e))?;
    unmounted.map(|_| ())
}

/// Resolves once nothing is mounted at `mountpoint` any more.
async fn mount_gone(mountpoint: &Path) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if !crate::images::mounts_under(mountpoint).iter().any(|m| m == mountpoint) {
            return;
        }
    }
}

impl Holder {
    async fn unmount(&self) -> Result<VolumeStatus, String> {
        let mut fs = self.fs.lock().await;
        let Some(mut mount) = fs.take() else { return Ok(VolumeStatus::default()) };
        let status = status_of(&mut mount);
        mount.unmount().await.map_err(|e| crate::text::error_chain(&e))?;
        tracing::info!("unmounted: {status:?}");
        Ok(status)
    }

    async fn act(&self, path: &str, body: &Value) -> Result<VolumeStatus, String> {
        if path == "/Holder.Unmount" {
            let status = self.unmount().await;
            self.done.notify_one();
            return status;
        }
        let mut fs = self.fs.lock().await;
        let mount = fs.as_mut().ok_or("the volume is being unmounted")?;
        match path {
            "/Holder.States" | "/Holder.Capture" => return Err(format!("{path} answers with its own fields")),
            "/Holder.Status" => {}
            "/Holder.Cut" => {
                mount.power_cut().map_err(|e| crate::text::error_chain(&e))?;
                tracing::info!("power cut: {:?}", status_of(mount));
            }
            "/Holder.Aim" => {
                let bytes = body.get("Bytes").and_then(Value::as_u64).unwrap_or(1);
                mount.cut_at_next_write(bytes).map_err(|e| crate::text::error_chain(&e))?;
            }
            "/Holder.Fail" => {
                let rule = body.get("Rule").and_then(Value::as_str).unwrap_or_default();
                let parsed: crashlab_faultfs::FaultRule = rule.parse().map_err(|e| format!("rule `{rule}`: {e}"))?;
                mount.add_rule(parsed).map_err(|e| crate::text::error_chain(&e))?;
                tracing::info!("rule {rule} installed");
            }
            other => return Err(format!("unknown call {other}")),
        }
        Ok(status_of(mount))
    }
}

impl Holder {
    /// Captures a crash point now (the durable base and the unsynced
    /// history; requests wait during the copy), and writes up to `max` of
    /// its distinct crash states as `state-NNN` directories under `out`,
    /// with `states.txt` naming each state's id; the copy is removed after.
    async fn states(&self, out: PathBuf, max: usize) -> Result<Value, String> {
        let point = {
            let mut fs = self.fs.lock().await;
            let mount = fs.as_mut().ok_or("the volume is being unmounted")?;
            mount.capture_crash_point().map_err(|e| crate::text::error_chain(&e))?;
            mount.take_crash_points().pop().ok_or("no crash point was captured")?
        };
        let base_dir = point.base.clone();
        let written = tokio::task::spawn_blocking(move || write_states(&point.base, &point.history, &out, max))
            .await
            .map_err(|e| format!("write the states: {e}"));
        if let Err(e) = std::fs::remove_dir_all(&base_dir) {
            tracing::warn!("could not remove the crash point {}: {e}", base_dir.display());
        }
        written?
    }
}

impl Holder {
    /// Captures a crash point now, as [`Holder::states`] does, and hands it
    /// over to a `crash-states` cycle: the history goes into `out`
    /// (`history.json`, `history.bin`), and the answer names the base's
    /// copy, which the caller removes once it has checked the point. A
    /// point whose history is incomplete (the volume records none) is
    /// removed and answered with `Complete` false.
    async fn capture(&self, out: PathBuf) -> Result<Value, String> {
        let point = {
            let mut fs = self.fs.lock().await;
            let mount = fs.as_mut().ok_or("the volume is being unmounted")?;
            mount.capture_crash_point().map_err(|e| crate::text::error_chain(&e))?;
            mount.take_crash_points().pop().ok_or("no crash point was captured")?
        };
        let history = point.history;
        let complete = history.is_complete();
        let saved = if complete {
            std::fs::create_dir_all(&out)
                .map_err(|e| format!("create {}: {e}", out.display()))
                .and_then(|()| crate::replay::save_history(&history, &out).map_err(|e| crate::text::error_chain(&e)))
        } else {
            Ok(())
        };
        if (!complete || saved.is_err())
            && let Err(e) = std::fs::remove_dir_all(&point.base)
        {
            tracing::warn!("could not remove the crash point {}: {e}", point.base.display());
        }
        saved?;
        tracing::info!("crash point handed over: {} operations, {} bytes", history.ops().len(), history.bytes());
        Ok(json!({
            "Base": if complete { point.base } else { PathBuf::new() },
            "Complete": complete,
            "Operations": history.ops().len(),
            "Err": "",
        }))
    }
}

/// Explores the crash states of `history` over the base in `base` and
/// materialises up to `max` of them under `out`.
fn write_states(base: &Path, history: &crashlab_faultfs::History, out: &Path, max: usize) -> Result<Value, String> {
    use crashlab_faultfs::{Base, ExploreConfig, explore, materialise};
    if !history.is_complete() {
        return Err("the volume records no unsynced history: create it with `-o history=true`".into());
    }
    let base = Base::open(base).map_err(|e| crate::text::error_chain(&e))?;
    let config = ExploreConfig { max_states: max.max(1), ..ExploreConfig::default() };
    let exploration = explore(&base, history, &config).map_err(|e| crate::text::error_chain(&e))?;
    std::fs::create_dir_all(out).map_err(|e| format!("create {}: {e}", out.display()))?;
    let mut index = String::new();
    for (i, state) in exploration.states.iter().enumerate() {
        let dir = out.join(format!("state-{i:03}"));
        materialise(&base, history, &state.id, &dir).map_err(|e| crate::text::error_chain(&e))?;
        index.push_str(&format!("state-{i:03} {}\n", state.id));
    }
    std::fs::write(out.join("states.txt"), index).map_err(|e| format!("write {}/states.txt: {e}", out.display()))?;
    Ok(json!({
        "States": exploration.states.len(),
        "Distinct": exploration.distinct,
        "Candidates": exploration.candidates,
        "Sampled": exploration.sampled,
        "Operations": history.events().len(),
        "Err": "",
    }))
}

impl Handler for Holder {
    fn handle<'a>(&'a self, path: &'a str, body: &'a [u8]) -> BoxFuture<'a, Value> {
        Box::pin(async move {
            let body = serde_json::from_slice::<Value>(body).unwrap_or(Value::Null);
            if path == "/Holder.States" {
                let out = PathBuf::from(body.get("Out").and_then(Value::as_str).unwrap_or_default());
                let max = body.get("Max").and_then(Value::as_u64).map_or(16, |m| usize::try_from(m).unwrap_or(16));
                return self.states(out, max).await.unwrap_or_else(|e| json!({ "Err": e }));
            }
            if path == "/Holder.Capture" {
                let out = PathBuf::from(body.get("Out").and_then(Value::as_str).unwrap_or_default());
                return self.capture(out).await.unwrap_or_else(|e| json!({ "Err": e }));
            }
            match self.act(path, &body).await {
                Ok(status) => {
                    let mut value = json!(status);
                    value["Err"] = json!("");
                    value
                }
                Err(e) => json!({ "Err": e }),
            }
        })
    }
}

/// What the mount has done so far, its counters taken in first.
pub(super) fn status_of(fs: &mut FaultMount) -> VolumeStatus {
    fs.injected_errors();
    let record = fs.recorded();
    VolumeStatus {
        mounted: true,
        unsynced: fs.unsynced(),
        power_cut: fs.powered_off(),
        dropped_bytes: record.power_cut_dirty_bytes,
        dropped_files: record.power_cut_dirty_files,
        dropped_ops: record.power_cut_namespace_ops,
        injected_errors: record.injected_errors,
        torn_writes: record.torn_writes,
        aimed_write_bytes: record.aimed_cut_write_bytes,
        rules: record.rules.clone(),
    }
}

/// Calls the holder of the volume in `dir`: `call` is e.g. `/Holder.Cut`.
pub async fn call(dir: &Path, call: &str, body: Value) -> Result<VolumeStatus, String> {
    let answer = call_value(dir, call, body).await?;
    serde_json::from_value(answer).map_err(|e| format!("read the mount holder's answer to {call}: {e}"))
}

/// [`call`], answered with the JSON as it came.
pub async fn call_value(dir: &Path, call: &str, body: Value) -> Result<Value, String> {
    let socket = socket(dir);
    http::call(&socket, call, body).await.map_err(|e| match e {
        PluginError::Connect { source, .. } => {
            format!("its mount holder does not answer on {}: {source}", socket.shown().display())
        }
        other => crate::text::error_chain(&other),
    })
}

/// Whether a holder answers for the volume in `dir` (a quick, blocking
/// probe: a socket whose server is gone refuses at once).
pub fn answers(dir: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(&*socket(dir)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_socket_binds_and_answers_in_a_directory_too_deep_for_a_socket_address() {
        let root = tempfile::tempdir().unwrap();
        // As deep as the driver's root and a run's volume name make it.
        let dir =
            root.path().join("volumes").join(format!("crashlab-1796692529-8905-c0-volume-crashlab-{}", "x".repeat(60)));
        std::fs::create_dir_all(&dir).unwrap();
        let path = socket(&dir);
        assert!(path.shown().as_os_str().len() > SUN_PATH_MAX, "the test's path is too short to show anything");
        let listener = std::os::unix::net::UnixListener::bind(&*path).expect("bound through the directory");
        assert!(dir.join("holder.sock").exists(), "the socket is in the volume's directory");
        assert!(answers(&dir), "a connect through another opening of the directory reaches it");
        drop(listener);
    }
}
