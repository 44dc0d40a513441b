//! Power loss on a volume of crashlab's own volume driver (`crashlab
//! volume-driver`), for `host-kill` and `torn-write`: the fault filesystem
//! under the data is the driver's, served by the volume's mount holder, so
//! the cut goes through the driver's socket — aimed, as on a fault
//! filesystem of the run's own, at the next write that is not made durable
//! at once — and the container is killed after it. Docker's unmount after
//! the kill ends the mount with what was unsynced dropped; the next start
//! mounts what the backing directory kept.
//!
//! `crash-states` takes its crash point through the driver too
//! ([`capture`]): the volume's mount holder copies the durable base (beside
//! the volume's backing directory) and writes the unsynced history for the
//! cycle to read back, and the cycle explores the point as one of its own
//! fault filesystem's.

use super::power::{AIM_DEADLINE, AIM_POLL};
use super::{Cx, FaultError, fired, not_fired};
use crate::storage::faultmount::CrashPoint;
use crate::storage::plugin_client::{self, CRASHLAB_DRIVER, VolumeStatus};
use crashlab_reports::Fired;
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

/// Calls crashlab's driver on `call` for `volume`.
async fn ask(call: &str, volume: &str, bytes: u64) -> Result<VolumeStatus, FaultError> {
    let socket = plugin_client::socket_of(CRASHLAB_DRIVER);
    let failed = |detail: String| FaultError::Driver { volume: volume.to_owned(), detail };
    let answer = plugin_client::call(&socket, call, json!({ "Name": volume, "Bytes": bytes }))
        .await
        .map_err(|e| failed(crate::text::error_chain(&e)))?;
    serde_json::from_value(answer).map_err(|e| failed(format!("read the driver's answer to {call}: {e}")))
}

/// Arms the volume's mount to cut its power after the next unsynced write
/// of `min_bytes` or more and waits up to [`AIM_DEADLINE`] for it while the
/// load goes on; without one, freezes the container and cuts. Then kills
/// the container, and keeps what the driver said the cut dropped.
pub(super) async fn aimed(cx: &mut Cx<'_>, volume: &str, min_bytes: u64) -> Result<(), FaultError> {
    ask("/Crashlab.Aim", volume, min_bytes).await?;
    let deadline = Instant::now() + AIM_DEADLINE;
    let mut landed = false;
    while !landed && Instant::now() < deadline {
        tokio::time::sleep(AIM_POLL).await;
        landed = ask("/Crashlab.Status", volume, 0).await?.power_cut;
    }
    let status = if landed {
        let status = ask("/Crashlab.Cut", volume, 0).await?;
        cx.deployment.kill_if_running().await?;
        status
    } else {
        // Frozen first, so that no write lands between the cut and the kill.
        cx.deployment.pause().await?;
        let status = ask("/Crashlab.Cut", volume, 0).await?;
        cx.deployment.kill().await?;
        status
    };
    cx.deployment.storage_mut().set_driver_cut(status);
    Ok(())
}

/// `torn-write` through the driver: installs `rule` (a `torn` rule of the
/// scenario's mode) on the volume's mount, then cuts as [`aimed`] does at
/// the next unsynced write of `min_bytes` or more, which the cut tears.
pub(super) async fn torn(
    cx: &mut Cx<'_>,
    volume: &str,
    rule: &crashlab_faultfs::FaultRule,
    min_bytes: u64,
) -> Result<(), FaultError> {
    let socket = plugin_client::socket_of(CRASHLAB_DRIVER);
    plugin_client::call(&socket, "/Crashlab.Fail", json!({ "Name": volume, "Rule": rule.to_string() }))
        .await
        .map_err(|e| FaultError::Driver { volume: volume.to_owned(), detail: crate::text::error_chain(&e) })?;
    aimed(cx, volume, min_bytes).await
}

/// Whether the cut dropped anything: a cut with nothing unsynced tested no
/// more than a process kill.
pub(super) fn fired_by(cut: &VolumeStatus) -> Fired {
    let dropped = format!(
        "{} unsynced bytes in {} files and {} directory operations",
        cut.dropped_bytes, cut.dropped_files, cut.dropped_ops
    );
    if cut.dropped_bytes + cut.dropped_files + cut.dropped_ops > 0 {
        fired(format!("crashlab's volume driver cut the volume's power and dropped {dropped}"))
    } else {
        not_fired(format!(
            "nothing was unsynced at the power cut the volume driver made: no write went unsynced within {} s \
             after the load",
            AIM_DEADLINE.as_secs()
        ))
    }
}

/// Captures a crash point of `volume` now (the container should be frozen:
/// the point is this instant's) through the driver, and reads it back: the
/// base's copy stays where the mount holder made it, under the volume's
/// directory, until the cycle's exploration removes it. `None` when the
/// volume records no unsynced history (created with `history=false`).
pub(super) async fn capture(cx: &Cx<'_>, volume: &str) -> Result<Option<CrashPoint>, FaultError> {
    let failed = |detail: String| FaultError::DriverCapture { volume: volume.to_owned(), detail };
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let out = cx.deployment.run().dir().join("driver-points").join(format!("{}-{nanos}", cx.deployment.name()));
    let socket = plugin_client::socket_of(CRASHLAB_DRIVER);
    let at = Instant::now();
    let answer = plugin_client::call(&socket, "/Crashlab.Capture", json!({ "Name": volume, "Out": out }))
        .await
        .map_err(|e| failed(crate::text::error_chain(&e)))?;
    if answer["Complete"] != json!(true) {
        return Ok(None);
    }
    let base = PathBuf::from(answer["Base"].as_str().unwrap_or_default());
    let read = {
        let out = out.clone();
        tokio::task::spawn_blocking(move || crate::replay::load_history(&out)).await.expect("reading panicked")
    };
    if let Err(e) = std::fs::remove_dir_all(&out) {
        tracing::warn!("could not remove {}: {e}", out.display());
    }
    match read {
        Ok(history) => Ok(Some(CrashPoint { base, history, at })),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&base);
            Err(failed(crate::text::error_chain(&e)))
        }
    }
}

/// The unsynced bytes and operations on `volume` now, as the driver says.
pub(super) async fn unsynced(volume: &str) -> Result<u64, FaultError> {
    Ok(ask("/Crashlab.Status", volume, 0).await?.unsynced)
}

/// Cuts the power under `volume` now, through the driver.
pub(super) async fn cut(volume: &str) -> Result<VolumeStatus, FaultError> {
    ask("/Crashlab.Cut", volume, 0).await
}
