//! `crashlab volume-driver`: crashlab's fault filesystem as a Docker volume
//! driver, so that any container (not only those crashlab starts) can keep
//! its data on it, and `crashlab volume cut NAME` can cut its power.
//!
//! The driver speaks Docker's volume plugin protocol (a legacy plugin:
//! JSON over HTTP on a unix socket in `/run/docker/plugins`, which the
//! daemon finds by name; no registry and no managed plugin):
//! `/Plugin.Activate`, `/VolumeDriver.Create`, `Remove`, `Mount`,
//! `Unmount`, `Path`, `Get`, `List` and `Capabilities` (scope `local`),
//! plus crashlab's own `/Crashlab.Cut`, `/Crashlab.Aim` (cut at the next
//! unsynced write, as `host-kill` does), `/Crashlab.States` (the crash
//! states of what is unsynced, written out), `/Crashlab.Capture` (a crash
//! point handed over to a `crash-states` cycle), `/Crashlab.Fail` (a fault rule of
//! the `io-error`/`disk-full` grammar, for the volume's current mount) and
//! `/Crashlab.Status`.
//!
//! Each volume lives under the driver's root (`<state dir>/volume-driver`
//! by default): `volumes/<name>/volume.json` is what it was created with,
//! `volumes/<name>/fs/backing` what would survive a power cut, and
//! `volumes/<name>/fs/mnt` the faultfs mountpoint Docker binds into the
//! containers. The mount is made at the first `Mount` and unmounted (its
//! unsynced writes made durable, unless the power was cut) after the last
//! `Unmount`. Each mounted volume is served by a process of its own, its
//! mount holder ([`holder`]), not by the driver: the driver can stop,
//! crash or restart under running containers, and a restarted driver finds
//! the volumes on disk (`volume.json`, the mounts' ids in `users.json`)
//! and their holders by their sockets, and goes on cutting and unmounting
//! them.
//!
//! Options of `docker volume create -d crashlab -o KEY=VALUE`:
//! `fsync-reaches-disk` (`true` or `false`, the default): whether a durable
//! write also fsyncs the backing file, as in a scenario's `[faults]`;
//! `history` (`false` by default): whether the mounts record the unsynced
//! history that `/Crashlab.States` needs; `fsync-failure` (`ext4`, the
//! default, `xfs` its synonym, `btrfs` or `keep-dirty`): what an fsync a
//! fault rule failed does to the data it did not write; `backing` (an
//! absolute path): the directory that holds what survives a power cut, in
//! place of one under the root (created if missing, left in place when the
//! volume is removed; `fs/backing` is then a symbolic link to it).

pub mod holder;
pub mod http;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// The driver's name, as `docker volume create -d` takes it.
pub const NAME: &str = crate::storage::plugin_client::CRASHLAB_DRIVER;

/// Where Docker looks for the driver's socket.
pub const SOCKET: &str = "/run/docker/plugins/crashlab.sock";

/// The options a volume takes, and their meaning.
const OPTIONS: [&str; 4] = ["fsync-reaches-disk", "history", "fsync-failure", "backing"];

/// What a volume was created with: `volume.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Record {
    name: String,
    fsync_reaches_disk: bool,
    /// Whether its mounts record the unsynced history, which `crashlab
    /// volume states` materialises crash states from (each write then
    /// keeps a copy of its data until it is durable).
    #[serde(default)]
    history: bool,
    /// What a failed fsync does (`ext4`, `xfs`, `btrfs`, `keep-dirty`).
    #[serde(default = "default_fsync_failure")]
    fsync_failure: String,
    /// The user's backing directory, when not the one under the root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    backing: Option<PathBuf>,
}

fn default_fsync_failure() -> String {
    "ext4".to_owned()
}

impl Record {
    /// The record of `name` with the options of `docker volume create -o`.
    fn from_options(name: &str, opts: Option<&BTreeMap<String, String>>) -> Result<Record, String> {
        let mut record = Record {
            name: name.to_owned(),
            fsync_reaches_disk: false,
            history: false,
            fsync_failure: default_fsync_failure(),
            backing: None,
        };
        let flag = |key: &str, value: &str| match value {
            "true" => Ok(true),
            "false" => Ok(false),
            v => Err(format!("{key} must be true or false, not `{v}`")),
        };
        for (key, value) in opts.into_iter().flatten() {
            match key.as_str() {
                "fsync-reaches-disk" => record.fsync_reaches_disk = flag(key, value)?,
                "history" => record.history = flag(key, value)?,
                "fsync-failure" => {
                    let _: crashlab_faultfs::FsyncFailure = value.parse().map_err(|_| {
                        format!("fsync-failure must be ext4, xfs, btrfs or keep-dirty, not `{}`", value.escape_debug())
                    })?;
                    record.fsync_failure = value.clone();
                }
                "backing" => {
                    let path = Path::new(value);
                    if !path.is_absolute() || path.components().any(|c| c == std::path::Component::ParentDir) {
                        return Err(format!("backing must be an absolute path without `..`, not `{value}`"));
                    }
                    record.backing = Some(path.to_owned());
                }
                k => return Err(format!("unknown option `{k}` (known: {})", OPTIONS.join(", "))),
            }
        }
        Ok(record)
    }

    /// The fault filesystem's options for this volume's mounts.
    fn faultfs_options(&self) -> crate::storage::FaultFsOptions {
        crate::storage::FaultFsOptions {
            seed: seed_of(&self.name),
            fsync_reaches_disk: self.fsync_reaches_disk,
            record_history: self.history,
            fsync_failure: self.fsync_failure.parse().unwrap_or(crashlab_faultfs::FsyncFailure::Ext4),
        }
    }
}

/// How long a new mount holder may take to mount and answer.
const HOLDER_START: Duration = Duration::from_secs(20);

/// A volume and whether a holder serves its mount.
struct Volume {
    record: Record,
    /// Whether a mount holder was started for it and not told to unmount.
    held: bool,
    /// The ids Docker gave the mounts that use it, each with how many
    /// `Mount`s it has not yet undone (`users.json`). Docker calls `Mount`
    /// again with the id a running container's mount already has when it
    /// needs the volume once more (`docker cp` does), and `Unmount` after:
    /// the mount stays until every one is undone, as Docker's own local
    /// driver counts.
    users: BTreeMap<String, u32>,
}

/// How the driver starts a volume's mount holder: a program and the
/// arguments before the volume's directory (`crashlab volume hold`).
#[derive(Debug, Clone)]
pub struct HolderCommand {
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

/// The driver's volumes under its root.
pub struct Driver {
    root: PathBuf,
    holder: HolderCommand,
    volumes: Mutex<BTreeMap<String, Volume>>,
}

pub use crate::storage::plugin_client::VolumeStatus;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Request {
    #[serde(default)]
    name: String,
    #[serde(default)]
    opts: Option<BTreeMap<String, String>>,
    #[serde(default, rename = "ID")]
    id: String,
    /// A fault rule, for `/Crashlab.Fail`.
    #[serde(default)]
    rule: String,
    /// The smallest unsynced write an aimed cut lands on, for `/Crashlab.Aim`.
    #[serde(default)]
    bytes: u64,
    /// Where `/Crashlab.States` writes the states, and how many at most.
    #[serde(default)]
    out: String,
    #[serde(default)]
    max: usize,
}

impl Driver {
    /// Opens the driver's root, reading the volumes a previous run of the
    /// driver created, finding the holders still serving their mounts and
    /// detaching the mounts that dead holders left behind.
    pub fn open(root: &Path, holder: HolderCommand) -> std::io::Result<Driver> {
        std::fs::create_dir_all(root.join("volumes"))?;
        let mut volumes = BTreeMap::new();
        for entry in std::fs::read_dir(root.join("volumes"))?.flatten() {
            let dir = entry.path();
            let path = dir.join("volume.json");
            let record = match std::fs::read(&path).map(|b| serde_json::from_slice::<Record>(&b)) {
                Ok(Ok(record)) => record,
                Ok(Err(e)) => {
                    tracing::warn!("{}: {e}; skipped", path.display());
                    continue;
                }
                Err(e) => {
                    tracing::warn!("{}: {e}; skipped", path.display());
                    continue;
                }
            };
            let held = holder::answers(&dir);
            if !held && crate::storage::faultmount::detach_mounts_under(&dir) > 0 {
                tracing::warn!("detached the mount a dead holder left under {}", dir.display());
            }
            let users: BTreeMap<String, u32> = std::fs::read(dir.join("users.json"))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default();
            tracing::info!("volume {} found on disk (held: {held}, mounted by {})", record.name, users.len());
            volumes.insert(record.name.clone(), Volume { record, held, users });
        }
        Ok(Driver { root: root.to_owned(), holder, volumes: Mutex::new(volumes) })
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.root.join("volumes").join(name)
    }

    fn mountpoint(&self, name: &str) -> PathBuf {
        self.dir(name).join("fs").join("mnt")
    }

    /// Answers one request of the protocol: the path, the JSON body.
    pub async fn handle(&self, path: &str, body: &[u8]) -> Value {
        let request: Request = match serde_json::from_slice(if body.is_empty() { b"{}" } else { body }) {
            Ok(r) => r,
            Err(e) => return json!({ "Err": format!("read the request to {path}: {e}") }),
        };
        let answer = match path {
            "/Plugin.Activate" => Ok(json!({ "Implements": ["VolumeDriver"] })),
            "/VolumeDriver.Capabilities" => Ok(json!({ "Capabilities": { "Scope": "local" } })),
            "/VolumeDriver.Create" => self.create(&request).await,
            "/VolumeDriver.Remove" => self.remove(&request.name).await,
            "/VolumeDriver.Mount" => self.mount(&request.name, &request.id).await,
            "/VolumeDriver.Unmount" => self.unmount(&request.name, &request.id).await,
            "/VolumeDriver.Path" => self.path(&request.name).await,
            "/VolumeDriver.Get" => self.get(&request.name).await,
            "/VolumeDriver.List" => Ok(self.list().await),
            "/Crashlab.Cut" => self.cut(&request.name).await.map(|s| json!(s)),
            "/Crashlab.Aim" => self.aim(&request.name, request.bytes).await.map(|s| json!(s)),
            "/Crashlab.States" => self.states(&request).await,
            "/Crashlab.Capture" => self.capture(&request).await,
            "/Crashlab.Fail" => self.fail(&request.name, &request.rule).await.map(|s| json!(s)),
            "/Crashlab.Status" => self.status(&request.name).await.map(|s| json!(s)),
            other => Err(format!("unknown call {other}")),
        };
        match answer {
            Ok(mut value) => {
                if let Some(map) = value.as_object_mut() {
                    map.entry("Err").or_insert(json!(""));
                }
                value
            }
            Err(e) => {
                // Docker asks every driver for a volume it cannot place.
                if path == "/VolumeDriver.Get" {
                    tracing::debug!("{path} {}: {e}", request.name);
                } else {
                    tracing::warn!("{path} {}: {e}", request.name);
                }
                json!({ "Err": e })
            }
        }
    }

    async fn create(&self, request: &Request) -> Result<Value, String> {
        let name = &request.name;
        check_name(name)?;
        let record = Record::from_options(name, request.opts.as_ref())?;
        let mut volumes = self.volumes.lock().await;
        if let Some(v) = volumes.get(name) {
            // Docker creates a volume again when a container names it.
            return if v.record == record {
                Ok(json!({}))
            } else {
                Err(format!("volume {name} exists with other options"))
            };
        }
        let dir = self.dir(name);
        let text = serde_json::to_vec_pretty(&record).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(&dir)
            .and_then(|()| match &record.backing {
                // The fault filesystem serves `fs/backing`; the link makes
                // that the user's directory.
                Some(backing) => std::fs::create_dir_all(backing)
                    .and_then(|()| std::fs::create_dir_all(dir.join("fs")))
                    .and_then(|()| std::os::unix::fs::symlink(backing, dir.join("fs").join("backing"))),
                None => Ok(()),
            })
            .and_then(|()| std::fs::write(dir.join("volume.json"), text))
            .map_err(|e| {
                let _ = std::fs::remove_dir_all(&dir);
                format!("create {}: {e}", dir.display())
            })?;
        tracing::info!(
            "created volume {name} (fsync-reaches-disk={}, history={}, fsync-failure={}, backing={})",
            record.fsync_reaches_disk,
            record.history,
            record.fsync_failure,
            record.backing.as_deref().map_or_else(|| "under the root".to_owned(), |b| b.display().to_string())
        );
        volumes.insert(name.clone(), Volume { record, held: false, users: BTreeMap::new() });
        Ok(json!({}))
    }

    async fn remove(&self, name: &str) -> Result<Value, String> {
        let mut volumes = self.volumes.lock().await;
        let Some(volume) = volumes.get_mut(name) else { return Err(format!("no volume {name}")) };
        if !volume.users.is_empty() {
            return Err(format!("volume {name} is in use by {} mount(s)", volume.users.len()));
        }
        let dir = self.dir(name);
        if volume.held {
            self.release(&dir).await?;
            volume.held = false;
        }
        if !crate::images::mounts_under(&dir).is_empty() {
            return Err(format!("{} still has mounts; not removed", dir.display()));
        }
        std::fs::remove_dir_all(&dir).map_err(|e| format!("remove {}: {e}", dir.display()))?;
        volumes.remove(name);
        tracing::info!("removed volume {name}");
        Ok(json!({}))
    }

    async fn mount(&self, name: &str, id: &str) -> Result<Value, String> {
        let mut volumes = self.volumes.lock().await;
        let Some(volume) = volumes.get_mut(name) else { return Err(format!("no volume {name}")) };
        let dir = self.dir(name);
        if !volume.held || !holder::answers(&dir) {
            // A holder that died leaves a mount no call reaches.
            crate::storage::faultmount::detach_mounts_under(&dir);
            self.start_holder(&dir).await?;
            tracing::info!("mounted volume {name} at {}", self.mountpoint(name).display());
            volume.held = true;
        }
        *volume.users.entry(id.to_owned()).or_default() += 1;
        save_users(&dir, &volume.users)?;
        Ok(json!({ "Mountpoint": self.mountpoint(name) }))
    }

    async fn unmount(&self, name: &str, id: &str) -> Result<Value, String> {
        let mut volumes = self.volumes.lock().await;
        let Some(volume) = volumes.get_mut(name) else { return Err(format!("no volume {name}")) };
        let dir = self.dir(name);
        if let Some(count) = volume.users.get_mut(id) {
            *count -= 1;
            if *count == 0 {
                volume.users.remove(id);
            }
        }
        save_users(&dir, &volume.users)?;
        if volume.users.is_empty() && volume.held {
            self.release(&dir).await?;
            volume.held = false;
            tracing::info!("unmounted volume {name}");
        }
        Ok(json!({}))
    }

    /// Starts the holder of the volume in `dir` and waits until it has
    /// mounted and answers; a holder that exits or does not answer in time
    /// is an error with the end of its log.
    async fn start_holder(&self, dir: &Path) -> Result<(), String> {
        let log_path = holder::log(dir);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("open {}: {e}", log_path.display()))?;
        let mut child = tokio::process::Command::new(&self.holder.program)
            .args(&self.holder.args)
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("start the mount holder {}: {e}", self.holder.program.display()))?;
        let deadline = Instant::now() + HOLDER_START;
        let tail = || crate::text::folded_tail(&std::fs::read_to_string(&log_path).unwrap_or_default(), 600);
        while !holder::answers(dir) {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("the mount holder exited ({status}): {}", tail()));
            }
            if Instant::now() > deadline {
                let _ = child.kill().await;
                return Err(format!("the mount holder did not answer within {HOLDER_START:?}: {}", tail()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Reaps it when it ends, for as long as this driver runs.
        tokio::spawn(async move { child.wait().await });
        Ok(())
    }

    /// Tells the holder of the volume in `dir` to unmount and end; a holder
    /// already gone leaves a dead mount, which is detached.
    async fn release(&self, dir: &Path) -> Result<(), String> {
        if !holder::answers(dir) {
            crate::storage::faultmount::detach_mounts_under(dir);
            return Ok(());
        }
        holder::call(dir, "/Holder.Unmount", json!({})).await.map(|_| ())
    }

    async fn path(&self, name: &str) -> Result<Value, String> {
        let volumes = self.volumes.lock().await;
        let volume = volumes.get(name).ok_or_else(|| format!("no volume {name}"))?;
        let mountpoint = if volume.held { self.mountpoint(name) } else { PathBuf::new() };
        Ok(json!({ "Mountpoint": mountpoint }))
    }

    async fn get(&self, name: &str) -> Result<Value, String> {
        let volumes = self.volumes.lock().await;
        let volume = volumes.get(name).ok_or_else(|| format!("no volume {name}"))?;
        Ok(json!({ "Volume": self.describe(volume) }))
    }

    async fn list(&self) -> Value {
        let volumes = self.volumes.lock().await;
        json!({ "Volumes": volumes.values().map(|v| self.describe(v)).collect::<Vec<_>>() })
    }

    fn describe(&self, volume: &Volume) -> Value {
        let name = &volume.record.name;
        let mountpoint = if volume.held { self.mountpoint(name) } else { PathBuf::new() };
        json!({
            "Name": name,
            "Mountpoint": mountpoint,
            // No `Status`: Docker's API describes it as a map of objects,
            // and bollard (0.21) reads it as a map of empty maps, so that
            // any detail there makes `docker volume inspect` unreadable to
            // clients built on it, crashlab's own run among them.
            // `crashlab volume status` tells what there is to tell.
        })
    }

    /// Asks the holder of a mounted volume: `/Holder.Cut`, `/Holder.Fail`
    /// with a rule, `/Holder.Status`; an unmounted volume has a default
    /// status, and nothing to cut or fail.
    async fn ask(&self, name: &str, call: &str, body: Value) -> Result<VolumeStatus, String> {
        let volumes = self.volumes.lock().await;
        let volume = volumes.get(name).ok_or_else(|| format!("no volume {name}"))?;
        if !volume.held {
            return match call {
                "/Holder.Status" => Ok(VolumeStatus::default()),
                "/Holder.Cut" | "/Holder.Aim" => Err(format!("volume {name} is not mounted: nothing to cut")),
                _ => Err(format!("volume {name} is not mounted: no mount to fail")),
            };
        }
        let status = holder::call(&self.dir(name), call, body).await.map_err(|e| format!("volume {name}: {e}"))?;
        tracing::debug!("{call} volume {name}: {status:?}");
        Ok(status)
    }

    /// Cuts the power under a mounted volume: every write and directory
    /// entry not yet durable is dropped, and the mount fails every call
    /// until the next `Mount` after its last `Unmount` (`crashlab volume
    /// cut` kills the containers right after, as a power loss would).
    async fn cut(&self, name: &str) -> Result<VolumeStatus, String> {
        self.ask(name, "/Holder.Cut", json!({})).await
    }

    /// Arms the volume's mount to cut its own power right after the next
    /// write of `bytes` or more that is not made durable at once (as a
    /// `host-kill` aims its cut); `status` then says whether it landed.
    async fn aim(&self, name: &str, bytes: u64) -> Result<VolumeStatus, String> {
        self.ask(name, "/Holder.Aim", json!({ "Bytes": bytes })).await
    }

    /// Installs a fault rule (`eio:fsync:1`, `enospc:1m`, `latency:write:5ms`)
    /// on the volume's current mount; a later mount starts without rules.
    async fn fail(&self, name: &str, rule: &str) -> Result<VolumeStatus, String> {
        // Checked here too, so that a bad rule is an error on an unmounted volume.
        let _: crashlab_faultfs::FaultRule = rule.parse().map_err(|e| format!("rule `{rule}`: {e}"))?;
        self.ask(name, "/Holder.Fail", json!({ "Rule": rule })).await
    }

    /// Materialises the crash states of the volume's unsynced writes at
    /// this instant under `out` (see [`holder`]); the answer counts them.
    async fn states(&self, request: &Request) -> Result<Value, String> {
        self.ask_held(&request.name, "/Holder.States", json!({ "Out": request.out, "Max": request.max })).await
    }

    /// Captures a crash point of the volume for a `crash-states` cycle: its
    /// history written under `out`, its base's copy named in the answer
    /// (see [`holder`]).
    async fn capture(&self, request: &Request) -> Result<Value, String> {
        self.ask_held(&request.name, "/Holder.Capture", json!({ "Out": request.out })).await
    }

    /// Asks the holder of volume `name`, which must be mounted, at `path`,
    /// with the volumes' lock held so it cannot be unmounted meanwhile.
    async fn ask_held(&self, name: &str, path: &str, body: Value) -> Result<Value, String> {
        let volumes = self.volumes.lock().await;
        let volume = volumes.get(name).ok_or_else(|| format!("no volume {name}"))?;
        if !volume.held {
            return Err(format!("volume {name} is not mounted: nothing is unsynced"));
        }
        holder::call_value(&self.dir(name), path, body).await.map_err(|e| format!("volume {name}: {e}"))
    }

    async fn status(&self, name: &str) -> Result<VolumeStatus, String> {
        self.ask(name, "/Holder.Status", json!({})).await
    }

    /// As the driver stops: the holders go on serving their mounts, for the
    /// containers still using them and the next driver.
    pub async fn shutdown(&self) {
        let volumes = self.volumes.lock().await;
        let held = volumes.values().filter(|v| v.held).count();
        if held > 0 {
            tracing::info!("{held} volume(s) stay mounted, each served by its own holder");
        }
    }
}

impl http::Handler for Driver {
    fn handle<'a>(&'a self, path: &'a str, body: &'a [u8]) -> BoxFuture<'a, Value> {
        Box::pin(Driver::handle(self, path, body))
    }
}

/// Keeps the ids of a volume's mounts on disk, for the next driver.
fn save_users(dir: &Path, users: &BTreeMap<String, u32>) -> Result<(), String> {
    let path = dir.join("users.json");
    let text = serde_json::to_vec(users).map_err(|e| e.to_string())?;
    std::fs::write(&path, text).map_err(|e| format!("write {}: {e}", path.display()))
}

/// A volume's mounts' seed, from its name: the same volume tears the same
/// way across runs of the driver.
fn seed_of(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Names become directories under the root.
fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name != "."
        && name != ".."
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok { Ok(()) } else { Err(format!("volume name `{}` must be 1-128 of [A-Za-z0-9._-]", name.escape_debug())) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// These tests mount nothing.
    fn no_holder() -> HolderCommand {
        HolderCommand { program: "/bin/false".into(), args: Vec::new() }
    }

    #[test]
    fn names_stay_one_directory() {
        assert!(check_name("db-data_1.v2").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "ä"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn unknown_calls_and_options_are_errors_docker_can_show() {
        let root = tempfile::tempdir().unwrap();
        let driver = Driver::open(root.path(), no_holder()).unwrap();
        let answer = driver.handle("/VolumeDriver.Create", br#"{"Name":"v","Opts":{"size":"1g"}}"#).await;
        assert_eq!(answer["Err"], "unknown option `size` (known: fsync-reaches-disk, history, fsync-failure, backing)");
        let answer =
            driver.handle("/VolumeDriver.Create", br#"{"Name":"v","Opts":{"fsync-reaches-disk":"true"}}"#).await;
        assert_eq!(answer["Err"], "");
        assert_eq!(driver.handle("/Plugin.Activate", b"").await["Implements"][0], "VolumeDriver");
        assert_eq!(driver.handle("/VolumeDriver.Capabilities", b"").await["Capabilities"]["Scope"], "local");
        assert_eq!(driver.handle("/VolumeDriver.List", b"{}").await["Volumes"][0]["Name"], "v");
        assert_eq!(driver.handle("/VolumeDriver.Cut", b"{}").await["Err"], "unknown call /VolumeDriver.Cut");
        // A driver opened again finds the volume on disk.
        let again = Driver::open(root.path(), no_holder()).unwrap();
        assert_eq!(again.handle("/VolumeDriver.Get", br#"{"Name":"v"}"#).await["Volume"]["Name"], "v");
        assert_eq!(again.handle("/VolumeDriver.Remove", br#"{"Name":"v"}"#).await["Err"], "");
        assert!(!root.path().join("volumes/v").exists());
    }

    #[tokio::test]
    async fn a_volume_takes_the_failed_fsync_model_and_a_backing_directory_of_the_users() {
        let root = tempfile::tempdir().unwrap();
        let driver = Driver::open(root.path(), no_holder()).unwrap();
        let create = |opts: &str| format!(r#"{{"Name":"v","Opts":{{{opts}}}}}"#).into_bytes();
        for (opts, err) in [
            (r#""fsync-failure":"zfs""#, "fsync-failure must be ext4, xfs, btrfs or keep-dirty, not `zfs`"),
            (r#""backing":"data""#, "backing must be an absolute path without `..`, not `data`"),
            (r#""backing":"/srv/../etc""#, "backing must be an absolute path without `..`, not `/srv/../etc`"),
        ] {
            assert_eq!(driver.handle("/VolumeDriver.Create", &create(opts)).await["Err"], err, "{opts}");
        }
        let backing = root.path().join("users/data");
        let opts = format!(r#""fsync-failure":"btrfs","backing":"{}""#, backing.display());
        assert_eq!(driver.handle("/VolumeDriver.Create", &create(&opts)).await["Err"], "");
        std::fs::write(backing.join("kept"), "mine").unwrap();
        let link = root.path().join("volumes/v/fs/backing");
        assert_eq!(std::fs::read_link(&link).unwrap(), backing);
        let record = Driver::open(root.path(), no_holder()).unwrap().volumes.into_inner().remove("v").unwrap().record;
        let options = record.faultfs_options();
        assert_eq!(options.fsync_failure, crashlab_faultfs::FsyncFailure::Btrfs);
        assert_eq!(driver.handle("/VolumeDriver.Remove", br#"{"Name":"v"}"#).await["Err"], "");
        assert!(!root.path().join("volumes/v").exists());
        assert_eq!(std::fs::read_to_string(backing.join("kept")).unwrap(), "mine", "the user's directory stays");
    }
}
