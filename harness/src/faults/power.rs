//! Power loss: `host-kill` (everything unsynced is gone) and `torn-write`
//! (the same, with the last unsynced writes torn). On the fault filesystem
//! both *aim* the cut: a power cut with nothing unsynced tests no more than
//! a process kill, so once the load time is up faultfs is armed to cut the
//! power itself right after a write that is not made durable at once, while
//! the load goes on; the container is killed once the cut landed. For
//! `host-kill` it is the write with the most at stake within
//! [`AIM_WINDOW`] (files with unsynced data times their unsynced bytes, so
//! a batch of data pages beside the log is preferred to a log write alone;
//! chosen as the crash-state explorer chooses a point within a slice of the
//! load), or the first one after it; for `torn-write`, the next write of
//! two sectors or more, so that it can be torn. A
//! cut that found nothing unsynced within [`AIM_DEADLINE`] did not fire.
//! Both need the data on the fault filesystem, except that a host kill on
//! `tmpfs` runs without it: power loss empties memory, and Docker discards
//! a tmpfs mount when the container stops, so freeze, SIGKILL and start
//! lose exactly what a power cut would (everything).
//!
//! On a cluster strategy (`cluster-3`) a host kill is a coordinated power
//! loss: every member's fault filesystem is armed, the first aimed cut
//! that lands cuts the others in the same instant, every server is killed
//! and every host boots again on what its own disk kept.

use super::{Behaviour, Cx, Disk, Fault, FaultError, Recovered, fired, not_fired};
use crashlab_faultfs::FaultRule;
use crashlab_reports::Fired;
use futures_util::future::BoxFuture;
use std::time::{Duration, Instant};

/// How long `torn-write` holds its cut, once the load time is up, for a
/// write with something to tear; the load goes on meanwhile. A cycle in
/// which none came is `error`: its fault did not fire.
pub const AIM_DEADLINE: Duration = Duration::from_secs(10);
/// The smallest write a `torn-write` cut is aimed at: two sectors, so that
/// a torn write can keep some and lose some.
const AIM_MIN_TORN_BYTES: u64 = 2 * 512;
pub(super) const AIM_POLL: Duration = Duration::from_millis(2);
/// How long a `host-kill` cut, once the load time is up, looks for the
/// write with the most at stake (files with unsynced data times their
/// unsynced bytes: a batch of data pages beside the log outscores a log
/// write alone) before it takes the next write; see
/// [`crashlab_faultfs::FaultHandle::cut_at_best_write`]. Half a second is
/// a few of an engine's checkpoint or page-flush rounds.
pub const AIM_WINDOW: Duration = Duration::from_millis(500);

/// Freeze the container, cut the power, SIGKILL; remount the fault
/// filesystem over what its backing directory kept and start again.
pub struct HostKill;

impl Behaviour for HostKill {
    fn disk(&self) -> Disk {
        Disk::Needed { on_memory: true, on_clusters: true }
    }

    fn simpler(&self) -> Option<Fault> {
        Some(Fault::ProcessKill)
    }

    fn through_crashlabs_driver(&self) -> bool {
        true
    }

    fn inject<'a>(&'a self, cx: &'a mut Cx<'_>) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async move {
            if cx.deployment.faultfs_mut().is_some() {
                return aimed_cut(cx, Fault::HostKill, 1, Some(AIM_WINDOW)).await;
            }
            if let Some(volume) = cx.deployment.storage().crashlab_volume().map(str::to_owned) {
                return super::driver_cut::aimed(cx, &volume, 1).await;
            }
            // Memory: frozen, then killed, so that nothing happens between.
            cx.deployment.pause().await?;
            cx.deployment.kill().await?;
            Ok(())
        })
    }

    fn fired<'a>(&'a self, cx: &'a mut Cx<'_>) -> BoxFuture<'a, Fired> {
        Box::pin(async move {
            if let Some(cut) = cx.deployment.storage_mut().take_driver_cut() {
                return super::driver_cut::fired_by(&cut);
            }
            if cx.deployment.faultfs_mut().is_none() {
                return fired("the container was frozen and killed: its memory, and the tmpfs in it, are gone");
            }
            cut_fired(cx)
        })
    }

    fn recover<'a>(&'a self, cx: &'a mut Cx<'_>) -> BoxFuture<'a, Result<Recovered, FaultError>> {
        Box::pin(power_back(cx))
    }
}

/// Arms faultfs to cut the power right after the next unsynced write of at
/// least `min_bytes` (with a `window`, the one with the most at stake in
/// it), waits up to [`AIM_DEADLINE`] for it while the load goes on, and
/// kills the server. Without such a write, cuts as a plain
/// power cut does (frozen, cut, killed), so the cycle ends cleanly and
/// `fired` can say what, if anything, was at stake. On a cluster every
/// member's filesystem is armed, and the first cut to land cuts them all
/// in the same instant: a coordinated power loss.
async fn aimed_cut(cx: &mut Cx<'_>, fault: Fault, min_bytes: u64, window: Option<Duration>) -> Result<(), FaultError> {
    let mut mounts = cx.deployment.fault_mounts_mut();
    if mounts.is_empty() {
        return Err(FaultError::NoFaultFs { fault });
    }
    for fs in &mounts {
        match window {
            Some(window) => fs.cut_at_best_write(min_bytes, window)?,
            None => fs.cut_at_next_write(min_bytes)?,
        }
    }
    let deadline = Instant::now() + AIM_DEADLINE;
    while !mounts.iter().any(|fs| fs.powered_off()) && Instant::now() < deadline {
        tokio::time::sleep(AIM_POLL).await;
    }
    if mounts.iter().any(|fs| fs.powered_off()) {
        // Recorded where the aimed cut landed; cut now on every other.
        for fs in &mut mounts {
            fs.power_cut()?;
        }
        // The servers may already have died of the I/O errors that follow
        // a cut.
        cx.deployment.on_every_host(async |d| d.kill_if_running().await).await?;
        return Ok(());
    }
    // Frozen first, so that no write lands between the cut and the kill.
    cx.deployment.on_every_host(async |d| d.pause().await).await?;
    for fs in cx.deployment.fault_mounts_mut() {
        fs.power_cut()?;
    }
    cx.deployment.on_every_host(async |d| d.kill().await).await?;
    Ok(())
}

/// Every host boots on what its disk kept.
pub(super) async fn power_back(cx: &mut Cx<'_>) -> Result<Recovered, FaultError> {
    for fs in cx.deployment.fault_mounts_mut() {
        fs.remount().await?;
    }
    cx.deployment.on_every_host(async |d| d.start().await).await?;
    Ok(Recovered::default())
}

/// Whether a host kill's cut fired, from each host's fault filesystem
/// (this host's first, then a cluster's other members, by host name): it
/// did where its aimed cut landed on an unsynced write or anything
/// unsynced was dropped.
fn cut_fired(cx: &mut Cx<'_>) -> Fired {
    let mut names: Vec<String> = std::iter::once(&*cx.deployment)
        .chain(cx.deployment.peers().map(|p| p.members()).unwrap_or_default())
        .map(|d| d.network().map_or_else(String::new, |(_, host)| host.to_owned()))
        .collect();
    let clustered = names.len() > 1;
    let mut parts = Vec::new();
    let mut at_stake = false;
    for (fs, host) in cx.deployment.fault_mounts_mut().into_iter().zip(names.drain(..)) {
        let r = fs.record();
        let dropped = format!(
            "{} unsynced bytes in {} files and {} directory operations",
            r.power_cut_dirty_bytes, r.power_cut_dirty_files, r.power_cut_namespace_ops
        );
        at_stake |= r.aimed_cut_write_bytes.is_some()
            || r.power_cut_dirty_bytes + r.power_cut_dirty_files + r.power_cut_namespace_ops > 0;
        let what = match r.aimed_cut_write_bytes {
            Some(bytes) => match r.aimed_cut_after_ms {
                Some(ms) => {
                    let window = AIM_WINDOW.as_secs_f64() * 1e3;
                    let chosen = if ms <= window {
                        format!("chosen within {window:.0} ms for the most files and bytes unsynced")
                    } else {
                        format!("the first after a {window:.0} ms look for more at stake")
                    };
                    format!(
                        "the cut landed on an unsynced {bytes}-byte write {ms:.0} ms after the fault's instant ({chosen}) and dropped {dropped}"
                    )
                }
                None => format!("the cut landed on an unsynced {bytes}-byte write and dropped {dropped}"),
            },
            None => format!("the power cut dropped {dropped}"),
        };
        parts.push(if clustered { format!("{host}: {what}") } else { what });
    }
    if !at_stake {
        return not_fired(format!(
            "nothing was unsynced at the power cut: no write went unsynced within {} s after the load",
            AIM_DEADLINE.as_secs()
        ));
    }
    if clustered {
        fired(format!("a coordinated power cut of all {} members at once; {}", parts.len(), parts.join("; ")))
    } else {
        fired(parts.join("; "))
    }
}

/// A power cut aimed at an unsynced write, which persists only in part
/// (the scenario's `torn` mode), as do the other files' last unsynced
/// writes.
pub struct TornWrite;

impl Behaviour for TornWrite {
    fn disk(&self) -> Disk {
        Disk::Needed { on_memory: false, on_clusters: false }
    }

    fn strikes_the_loads_writes(&self) -> bool {
        true
    }

    fn simpler(&self) -> Option<Fault> {
        Some(Fault::HostKill)
    }

    fn through_crashlabs_driver(&self) -> bool {
        true
    }

    fn inject<'a>(&'a self, cx: &'a mut Cx<'_>) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async move {
            let torn = cx.knobs.torn;
            if let Some(volume) = cx.deployment.storage().crashlab_volume().map(str::to_owned) {
                let rule = FaultRule::TornWrite { mode: torn, path: None };
                return super::driver_cut::torn(cx, &volume, &rule, AIM_MIN_TORN_BYTES).await;
            }
            let fs = cx.deployment.faultfs_mut().ok_or(FaultError::NoFaultFs { fault: Fault::TornWrite })?;
            fs.add_rule(FaultRule::TornWrite { mode: torn, path: None })?;
            aimed_cut(cx, Fault::TornWrite, AIM_MIN_TORN_BYTES, None).await
        })
    }

    fn fired<'a>(&'a self, cx: &'a mut Cx<'_>) -> BoxFuture<'a, Fired> {
        Box::pin(async move {
            if let Some(cut) = cx.deployment.storage_mut().take_driver_cut() {
                return torn_fired(
                    cut.aimed_write_bytes,
                    cut.torn_writes,
                    (cut.dropped_bytes, cut.dropped_files, cut.dropped_ops),
                );
            }
            let Some(fs) = cx.deployment.faultfs_mut() else {
                return not_fired("the data is not on the fault filesystem");
            };
            let r = fs.record();
            let dropped = (r.power_cut_dirty_bytes, r.power_cut_dirty_files, r.power_cut_namespace_ops);
            torn_fired(r.aimed_cut_write_bytes, r.torn_writes, dropped)
        })
    }

    fn recover<'a>(&'a self, cx: &'a mut Cx<'_>) -> BoxFuture<'a, Result<Recovered, FaultError>> {
        Box::pin(power_back(cx))
    }
}

/// Whether a torn-write cut fired: it landed on an unsynced write and tore
/// one; `dropped` is what it dropped (bytes, files, namespace operations).
fn torn_fired(aimed: Option<u64>, torn: u64, dropped: (u64, u64, u64)) -> Fired {
    match (aimed, torn) {
        (Some(bytes), torn) if torn > 0 => fired(format!(
            "the cut landed on an unsynced {bytes}-byte write and tore {torn} write(s); it dropped {} unsynced bytes \
             in {} files and {} directory operations",
            dropped.0, dropped.1, dropped.2
        )),
        (Some(bytes), _) => not_fired(format!(
            "the cut landed on an unsynced {bytes}-byte write, but the torn mode kept or dropped every sector of it \
             whole"
        )),
        (None, _) => not_fired(format!(
            "no write of {AIM_MIN_TORN_BYTES} bytes or more went unsynced within {} s after the load, so there was \
             nothing to tear",
            AIM_DEADLINE.as_secs()
        )),
    }
}
