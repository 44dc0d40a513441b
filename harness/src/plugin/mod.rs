//! `crashlab volume-driver`: crashlab's fault filesystem as a Docker volume
//! driver, so that any container (not only those crashlab starts) can keep
//! its data on it, and `crashlab volume cut NAME` can cut its power.
//!
//! The driver speaks Docker's volume plugin protocol (a legacy plugin:
//! JSON over HTTP on a unix socket in `/run/docker/plugins`, which the
//! daemon finds by name; no registry and no managed plugin):
//! `/Plugin.Activate`, `/VolumeDriver.Create`, `Remove`, `Mount`,
//! `Unmount`, `Path`, `Get`, `List` and `Capabilities` (scope `local`),
//! plus crashlab's own `/Crashlab.Cut`, `/Crashlab.Fail` (a fault rule of
//! the `io-error`/`disk-full` grammar, for the volume's current mount) and
//! `/Crashlab.Status`.
//!
//! Each volume lives under the driver's root (`<state dir>/volume-driver`
//! by default): `volumes/<name>/volume.json` is what it was created with,
//! `volumes/<name>/fs/backing` what would survive a power cut, and
//! `volumes/<name>/fs/mnt` the faultfs mountpoint Docker binds into the
//! containers. The mount is made at the first `Mount` and unmounted (its
//! unsynced writes made durable, unless the power was cut) after the last
//! `Unmount`; the volumes' records stay on disk, so a restarted driver
//! lists them and mounts them again. The FUSE filesystem is served by the
//! driver's own process: a container still running when the driver stops
//! sees its mount gone (`ENOTCONN`) and must be restarted after it.
//!
//! Options of `docker volume create -d crashlab -o KEY=VALUE`:
//! `fsync-reaches-disk` (`true` or `false`, the default): whether a durable
//! write also fsyncs the backing file, as in a scenario's `[faults]`.

pub mod http;

use crate::storage::FaultFsOptions;
use crate::storage::faultmount::FaultMount;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use tokio::sync::Mutex;

/// The driver's name, as `docker volume create -d` takes it.
pub const NAME: &str = "crashlab";

/// Where Docker looks for legacy plugins' sockets.
pub const SOCKET: &str = "/run/docker/plugins/crashlab.sock";

/// The options a volume takes, and their meaning.
const OPTIONS: [&str; 1] = ["fsync-reaches-disk"];

/// What a volume was created with: `volume.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Record {
    name: String,
    fsync_reaches_disk: bool,
}

/// A volume and, while containers use it, its mount.
struct Volume {
    record: Record,
    mount: Option<FaultMount>,
    /// The ids Docker gave the mounts that use it.
    users: BTreeSet<String>,
}

/// The driver's volumes under its root.
pub struct Driver {
    root: PathBuf,
    volumes: Mutex<BTreeMap<String, Volume>>,
}

/// What `/Crashlab.Cut` and `/Crashlab.Status` answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeStatus {
    pub mounted: bool,
    /// Bytes and namespace operations not yet durable.
    pub unsynced: u64,
    pub power_cut: bool,
    /// What the last cut dropped: bytes, files, namespace operations.
    pub dropped_bytes: u64,
    pub dropped_files: u64,
    pub dropped_ops: u64,
    /// Operations the rules failed on the current mount.
    pub injected_errors: u64,
    /// The rules installed on the current mount, as written.
    pub rules: Vec<String>,
}

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
}

impl Driver {
    /// Opens the driver's root, reading the volumes a previous run of the
    /// driver created and detaching the mounts it left behind.
    pub fn open(root: &Path) -> std::io::Result<Driver> {
        std::fs::create_dir_all(root.join("volumes"))?;
        let detached = crate::storage::faultmount::detach_mounts_under(root);
        if detached > 0 {
            tracing::warn!("detached {detached} mount(s) a previous driver left under {}", root.display());
        }
        let mut volumes = BTreeMap::new();
        for entry in std::fs::read_dir(root.join("volumes"))?.flatten() {
            let path = entry.path().join("volume.json");
            match std::fs::read(&path).map(|b| serde_json::from_slice::<Record>(&b)) {
                Ok(Ok(record)) => {
                    tracing::info!("volume {} found on disk", record.name);
                    volumes.insert(record.name.clone(), Volume { record, mount: None, users: BTreeSet::new() });
                }
                Ok(Err(e)) => tracing::warn!("{}: {e}; skipped", path.display()),
                Err(e) => tracing::warn!("{}: {e}; skipped", path.display()),
            }
        }
        Ok(Driver { root: root.to_owned(), volumes: Mutex::new(volumes) })
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
        let mut fsync_reaches_disk = false;
        for (key, value) in request.opts.iter().flatten() {
            match (key.as_str(), value.as_str()) {
                ("fsync-reaches-disk", "true") => fsync_reaches_disk = true,
                ("fsync-reaches-disk", "false") => fsync_reaches_disk = false,
                ("fsync-reaches-disk", v) => {
                    return Err(format!("fsync-reaches-disk must be true or false, not `{v}`"));
                }
                (k, _) => return Err(format!("unknown option `{k}` (known: {})", OPTIONS.join(", "))),
            }
        }
        let mut volumes = self.volumes.lock().await;
        let record = Record { name: name.clone(), fsync_reaches_disk };
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
            .and_then(|()| std::fs::write(dir.join("volume.json"), text))
            .map_err(|e| format!("create {}: {e}", dir.display()))?;
        tracing::info!("created volume {name} (fsync-reaches-disk={fsync_reaches_disk})");
        volumes.insert(name.clone(), Volume { record, mount: None, users: BTreeSet::new() });
        Ok(json!({}))
    }

    async fn remove(&self, name: &str) -> Result<Value, String> {
        let mut volumes = self.volumes.lock().await;
        let Some(volume) = volumes.get_mut(name) else { return Err(format!("no volume {name}")) };
        if !volume.users.is_empty() {
            return Err(format!("volume {name} is in use by {} mount(s)", volume.users.len()));
        }
        if let Some(mut fs) = volume.mount.take() {
            fs.unmount().await.map_err(|e| crate::text::error_chain(&e))?;
        }
        let dir = self.dir(name);
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
        if volume.mount.is_none() {
            let options = FaultFsOptions {
                seed: seed_of(name),
                fsync_reaches_disk: volume.record.fsync_reaches_disk,
                record_history: false,
            };
            let dir = self.dir(name).join("fs");
            let fs = tokio::task::spawn_blocking(move || FaultMount::create(&dir, options, None))
                .await
                .map_err(|e| format!("mount volume {name}: {e}"))?
                .map_err(|e| crate::text::error_chain(&e))?;
            tracing::info!("mounted volume {name} at {}", fs.mountpoint().display());
            volume.mount = Some(fs);
        }
        volume.users.insert(id.to_owned());
        Ok(json!({ "Mountpoint": self.mountpoint(name) }))
    }

    async fn unmount(&self, name: &str, id: &str) -> Result<Value, String> {
        let mut volumes = self.volumes.lock().await;
        let Some(volume) = volumes.get_mut(name) else { return Err(format!("no volume {name}")) };
        volume.users.remove(id);
        if volume.users.is_empty()
            && let Some(mut fs) = volume.mount.take()
        {
            fs.unmount().await.map_err(|e| crate::text::error_chain(&e))?;
            tracing::info!("unmounted volume {name}");
        }
        Ok(json!({}))
    }

    async fn path(&self, name: &str) -> Result<Value, String> {
        let volumes = self.volumes.lock().await;
        let volume = volumes.get(name).ok_or_else(|| format!("no volume {name}"))?;
        let mountpoint = if volume.mount.is_some() { self.mountpoint(name) } else { PathBuf::new() };
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
        let mountpoint = if volume.mount.is_some() { self.mountpoint(name) } else { PathBuf::new() };
        let status = status_of(volume);
        json!({
            "Name": name,
            "Mountpoint": mountpoint,
            "Status": {
                "fsync-reaches-disk": volume.record.fsync_reaches_disk,
                "mounted-by": volume.users.len(),
                "unsynced": status.unsynced,
                "power-cut": status.power_cut,
            },
        })
    }

    /// Cuts the power under a mounted volume: every write and directory
    /// entry not yet durable is dropped, and the mount fails every call
    /// until the next `Mount` after its last `Unmount` (`crashlab volume
    /// cut` kills the containers right after, as a power loss would).
    async fn cut(&self, name: &str) -> Result<VolumeStatus, String> {
        let mut volumes = self.volumes.lock().await;
        let volume = volumes.get_mut(name).ok_or_else(|| format!("no volume {name}"))?;
        let fs = volume.mount.as_mut().ok_or_else(|| format!("volume {name} is not mounted: nothing to cut"))?;
        fs.power_cut().map_err(|e| crate::text::error_chain(&e))?;
        tracing::info!("cut the power of volume {name}: {:?}", status_of(volume));
        Ok(status_of(volume))
    }

    /// Installs a fault rule (`eio:fsync:1`, `enospc:1m`, `latency:write:5ms`)
    /// on the volume's current mount; a later mount starts without rules.
    async fn fail(&self, name: &str, rule: &str) -> Result<VolumeStatus, String> {
        let rule: crashlab_faultfs::FaultRule = rule.parse().map_err(|e| format!("rule `{rule}`: {e}"))?;
        let mut volumes = self.volumes.lock().await;
        let volume = volumes.get_mut(name).ok_or_else(|| format!("no volume {name}"))?;
        let fs = volume.mount.as_mut().ok_or_else(|| format!("volume {name} is not mounted: no mount to fail"))?;
        fs.add_rule(rule.clone()).map_err(|e| crate::text::error_chain(&e))?;
        tracing::info!("volume {name}: rule {rule} installed");
        Ok(status_of(volume))
    }

    async fn status(&self, name: &str) -> Result<VolumeStatus, String> {
        let mut volumes = self.volumes.lock().await;
        let volume = volumes.get_mut(name).ok_or_else(|| format!("no volume {name}"))?;
        if let Some(fs) = volume.mount.as_mut() {
            // Takes the counters in; status_of reads the record.
            fs.injected_errors();
        }
        Ok(status_of(volume))
    }

    /// Unmounts every volume (their unsynced writes made durable), as the
    /// driver stops.
    pub async fn shutdown(&self) {
        let mut volumes = self.volumes.lock().await;
        for (name, volume) in volumes.iter_mut() {
            if let Some(mut fs) = volume.mount.take() {
                match fs.unmount().await {
                    Ok(()) => tracing::info!("unmounted volume {name}"),
                    Err(e) => tracing::warn!("unmount volume {name}: {}", crate::text::error_chain(&e)),
                }
            }
        }
    }
}

fn status_of(volume: &Volume) -> VolumeStatus {
    let Some(fs) = &volume.mount else { return VolumeStatus::default() };
    let record = fs.recorded();
    VolumeStatus {
        mounted: true,
        unsynced: fs.unsynced(),
        power_cut: fs.powered_off(),
        dropped_bytes: record.power_cut_dirty_bytes,
        dropped_files: record.power_cut_dirty_files,
        dropped_ops: record.power_cut_namespace_ops,
        injected_errors: record.injected_errors,
        rules: record.rules.clone(),
    }
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
        let driver = Driver::open(root.path()).unwrap();
        let answer = driver.handle("/VolumeDriver.Create", br#"{"Name":"v","Opts":{"size":"1g"}}"#).await;
        assert_eq!(answer["Err"], "unknown option `size` (known: fsync-reaches-disk)");
        let answer =
            driver.handle("/VolumeDriver.Create", br#"{"Name":"v","Opts":{"fsync-reaches-disk":"true"}}"#).await;
        assert_eq!(answer["Err"], "");
        assert_eq!(driver.handle("/Plugin.Activate", b"").await["Implements"][0], "VolumeDriver");
        assert_eq!(driver.handle("/VolumeDriver.Capabilities", b"").await["Capabilities"]["Scope"], "local");
        assert_eq!(driver.handle("/VolumeDriver.List", b"{}").await["Volumes"][0]["Name"], "v");
        assert_eq!(driver.handle("/VolumeDriver.Cut", b"{}").await["Err"], "unknown call /VolumeDriver.Cut");
        // A driver opened again finds the volume on disk.
        let again = Driver::open(root.path()).unwrap();
        assert_eq!(again.handle("/VolumeDriver.Get", br#"{"Name":"v"}"#).await["Volume"]["Name"], "v");
        assert_eq!(again.handle("/VolumeDriver.Remove", br#"{"Name":"v"}"#).await["Err"], "");
        assert!(!root.path().join("volumes/v").exists());
    }
}
