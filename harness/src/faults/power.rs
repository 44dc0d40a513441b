//! Power loss: `host-kill` (everything unsynced is gone) and `torn-write`
//! (the same, with the cut aimed at an unsynced write and that write torn).
//! Both need the data on the fault filesystem, except that a host kill on
//! `tmpfs` runs without it: power loss empties memory, and Docker discards
//! a tmpfs mount when the container stops, so freeze, SIGKILL and start
//! lose exactly what a power cut would (everything).

use super::{Behaviour, Cx, Fault, FaultError, Recovered, fired, needs_a_disk, not_fired};
use crate::storage::{StrategyDef, UnderData};
use crashlab_faultfs::FaultRule;
use crashlab_reports::Fired;
use futures_util::future::BoxFuture;
use std::time::{Duration, Instant};

/// How long `torn-write` holds its cut, once the load time is up, for a
/// write with something to tear; the load goes on meanwhile. A cycle in
/// which none came is `error`: its fault did not fire.
pub const AIM_DEADLINE: Duration = Duration::from_secs(10);
/// The smallest write a cut is aimed at: two sectors, so that a torn
/// write can keep some and lose some.
const AIM_MIN_BYTES: u64 = 2 * 512;
const AIM_POLL: Duration = Duration::from_millis(2);

/// Freeze the container, cut the power, SIGKILL; remount the fault
/// filesystem over what its backing directory kept and start again.
pub struct HostKill;

impl Behaviour for HostKill {
    fn needs_faultfs(&self, strategy: &StrategyDef) -> bool {
        strategy.under == UnderData::FaultFs
    }

    fn unsupported_on(&self, strategy: &StrategyDef) -> Option<&'static str> {
        needs_a_disk(strategy, true)
    }

    fn inject<'a>(&'a self, cx: &'a mut Cx<'_>) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async move {
            // Frozen first, so that no write lands between the cut and the
            // kill: the server's last view of its disk is what the power
            // cut leaves.
            cx.deployment.pause().await?;
            if let Some(fs) = cx.deployment.faultfs_mut() {
                fs.power_cut()?;
            }
            cx.deployment.kill().await?;
            Ok(())
        })
    }

    fn fired<'a>(&'a self, cx: &'a mut Cx<'_>) -> BoxFuture<'a, Fired> {
        Box::pin(async move {
            match cx.deployment.faultfs_mut() {
                Some(fs) => {
                    let r = fs.record();
                    fired(format!(
                        "the power cut dropped {} unsynced bytes in {} files and {} directory operations",
                        r.power_cut_dirty_bytes, r.power_cut_dirty_files, r.power_cut_namespace_ops
                    ))
                }
                None => fired("the container was frozen and killed: its memory, and the tmpfs in it, are gone"),
            }
        })
    }

    fn recover<'a>(&'a self, cx: &'a mut Cx<'_>) -> BoxFuture<'a, Result<Recovered, FaultError>> {
        Box::pin(power_back(cx))
    }
}

/// The host boots on what its disk kept.
async fn power_back(cx: &mut Cx<'_>) -> Result<Recovered, FaultError> {
    if let Some(fs) = cx.deployment.faultfs_mut() {
        fs.remount().await?;
    }
    cx.deployment.start().await?;
    Ok(Recovered::default())
}

/// A power cut aimed at an unsynced write, which persists only in part
/// (the scenario's `torn` mode), as do the other files' last unsynced
/// writes.
pub struct TornWrite;

impl Behaviour for TornWrite {
    fn needs_faultfs(&self, strategy: &StrategyDef) -> bool {
        strategy.under == UnderData::FaultFs
    }

    fn unsupported_on(&self, strategy: &StrategyDef) -> Option<&'static str> {
        needs_a_disk(strategy, false)
    }

    fn inject<'a>(&'a self, cx: &'a mut Cx<'_>) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async move {
            let torn = cx.knobs.torn;
            let fs = cx.deployment.faultfs_mut().ok_or(FaultError::NoFaultFs { fault: Fault::TornWrite })?;
            fs.add_rule(FaultRule::TornWrite { mode: torn, path: None })?;
            // The cut lands inside faultfs, right after the next write
            // worth tearing, while the load runs on.
            fs.cut_at_next_write(AIM_MIN_BYTES)?;
            let deadline = Instant::now() + AIM_DEADLINE;
            while !fs.powered_off() && Instant::now() < deadline {
                tokio::time::sleep(AIM_POLL).await;
            }
            if fs.powered_off() {
                fs.power_cut()?;
                // The server may already have died of the I/O errors that
                // follow a cut.
                cx.deployment.kill_if_running().await?;
            } else {
                // Nothing came to aim at: cut as `host-kill` does, so the
                // cycle ends cleanly; `fired` says it did not fire.
                cx.deployment.pause().await?;
                let fs = cx.deployment.faultfs_mut().ok_or(FaultError::NoFaultFs { fault: Fault::TornWrite })?;
                fs.power_cut()?;
                cx.deployment.kill().await?;
            }
            Ok(())
        })
    }

    fn fired<'a>(&'a self, cx: &'a mut Cx<'_>) -> BoxFuture<'a, Fired> {
        Box::pin(async move {
            let Some(fs) = cx.deployment.faultfs_mut() else {
                return not_fired("the data is not on the fault filesystem");
            };
            let r = fs.record();
            match (r.aimed_cut_write_bytes, r.torn_writes) {
                (Some(bytes), torn) if torn > 0 => fired(format!(
                    "the cut landed on an unsynced {bytes}-byte write and tore {torn} write(s); it dropped {} \
                     unsynced bytes in {} files and {} directory operations",
                    r.power_cut_dirty_bytes, r.power_cut_dirty_files, r.power_cut_namespace_ops
                )),
                (Some(bytes), _) => not_fired(format!(
                    "the cut landed on an unsynced {bytes}-byte write, but the torn mode kept or dropped every \
                     sector of it whole"
                )),
                (None, _) => not_fired(format!(
                    "no write of {AIM_MIN_BYTES} bytes or more went unsynced within {} s after the load, so \
                     there was nothing to tear",
                    AIM_DEADLINE.as_secs()
                )),
            }
        })
    }

    fn recover<'a>(&'a self, cx: &'a mut Cx<'_>) -> BoxFuture<'a, Result<Recovered, FaultError>> {
        Box::pin(power_back(cx))
    }
}
