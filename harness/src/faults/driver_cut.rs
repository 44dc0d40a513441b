//! Power loss on a volume of crashlab's own volume driver (`crashlab
//! volume-driver`), for `host-kill` and `torn-write`: the fault filesystem
//! under the data is the driver's, served by the volume's mount holder, so
//! the cut goes through the driver's socket — aimed, as on a fault
//! filesystem of the run's own, at the next write that is not made durable
//! at once — and the container is killed after it. Docker's unmount after
//! the kill ends the mount with what was unsynced dropped; the next start
//! mounts what the backing directory kept.

use super::power::{AIM_DEADLINE, AIM_POLL};
use super::{Cx, FaultError, fired, not_fired};
use crate::storage::plugin_client::{self, CRASHLAB_DRIVER, VolumeStatus};
use crashlab_reports::Fired;
use serde_json::json;
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
