//! `crash-states`: a power cut at the end of the load, and beside it every
//! crash state the fault filesystem's model allows at that point, each
//! checked on its own storage in its own container ([`crate::explore`]).
//!
//! Once the load time is up, the fault waits (up to
//! [`AIM_DEADLINE`](super::power::AIM_DEADLINE), the load going on) until
//! something is unsynced, freezes the container and captures the crash
//! point (a copy of the durable base and the unsynced history, with every
//! filesystem request held off); if everything was synced by the time the
//! freeze took hold, it thaws the container and tries again. Then it cuts
//! the power and kills the server. The
//! freeze is what makes the crash point exact: no process of the container
//! runs between it and the kill, so every acknowledgement the clients ever
//! receive was sent before the point. Recovery is `host-kill`'s, and the
//! live cycle is judged as one: that is the crash state that keeps none
//! of the unsynced operations. Then [`Behaviour::explore`] checks the
//! others. A point with nothing unsynced did not fire.
//!
//! With `[explore] points` set to a trigger (`"fsync"`, `"fsync:*.ibd"`),
//! the points are inside the load instead: [`Behaviour::arm`] arms the
//! fault filesystem to capture up to `max-points` of the calls the trigger
//! matches while something is unsynced (for a file's fsync: while that
//! file has unsynced writes) — by default one in each equal slice of the
//! load, preferring calls with more files and bytes unsynced
//! (`spread = "load"`), or the first ones (`"first"`) — in the call's handler, when it
//! arrives and before it takes effect (see [`crashlab_faultfs::capture`]);
//! at the end of the load the container is frozen, the power cut and the
//! server killed, and the live cycle is judged as `host-kill`'s. Each
//! point is then explored and checked against the ack log cut at the
//! call's arrival. A cycle in which no matching call came with something
//! unsynced did not fire.
//!
//! On a volume of crashlab's own volume driver (`volume:crashlab`, or a
//! Compose volume with `driver: crashlab`) the end-of-load point is taken
//! through the driver ([`super::driver_cut::capture`]): the same wait, freeze
//! and capture, then the cut through the driver and the kill; the volume is
//! created recording its history (`history=true`) unless the strategy's
//! options say otherwise. Points inside the load need the run's own fault
//! filesystem.

use super::power::{AIM_DEADLINE, AIM_POLL, power_back};
use super::{Behaviour, Cx, Disk, Fault, FaultError, Recovered, fired, not_fired};
use crate::explore::{Oracle, check_point};
use crate::settings::{Points, Spread};
use crashlab_reports::{Exploration, Fired, PointReport};
use futures_util::future::BoxFuture;
use std::time::Instant;

/// Where the one crash point of a cycle is taken.
const END_OF_LOAD: &str = "end of load";

/// Freeze at the end of the load, capture the crash point, cut the power,
/// SIGKILL; recover as `host-kill`; then check every explored state.
pub struct CrashStates;

impl Behaviour for CrashStates {
    fn disk(&self) -> Disk {
        Disk::Needed { on_memory: false, on_clusters: false }
    }

    fn records_history(&self) -> bool {
        true
    }

    fn through_crashlabs_driver(&self) -> bool {
        true
    }

    fn arm(&self, cx: &mut Cx<'_>) -> Result<(), FaultError> {
        if let Points::At(trigger) = &cx.explore.points {
            if cx.deployment.faultfs_mut().is_none()
                && let Some(volume) = cx.deployment.storage().crashlab_volume()
            {
                return Err(FaultError::DriverCapture {
                    volume: volume.to_owned(),
                    detail: "crash points inside the load (`[explore] points`) need the run's own fault filesystem; \
                             through the driver only the end-of-load point is taken (leave `points` out)"
                        .into(),
                });
            }
            let fs = cx.deployment.faultfs_mut().ok_or(FaultError::NoFaultFs { fault: Fault::CrashStates })?;
            let window = match cx.explore.spread {
                Spread::Load => cx.load,
                Spread::First => None,
            };
            fs.capture_at(trigger.clone(), cx.explore.max_points, cx.explore.point_every, window)?;
        }
        Ok(())
    }

    fn inject<'a>(&'a self, cx: &'a mut Cx<'_>) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async move {
            let no_fs = || FaultError::NoFaultFs { fault: Fault::CrashStates };
            if cx.deployment.faultfs_mut().is_none()
                && let Some(volume) = cx.deployment.storage().crashlab_volume().map(str::to_owned)
                && matches!(cx.explore.points, Points::EndOfLoad)
            {
                return through_driver(cx, &volume).await;
            }
            if let Points::At(_) = cx.explore.points {
                // The points were taken during the load; what is left is
                // the live power cut, frozen first so that nothing lands
                // between the cut and the kill.
                cx.deployment.faultfs_mut().ok_or_else(no_fs)?.stop_capture()?;
                cx.deployment.pause().await?;
                cx.deployment.faultfs_mut().ok_or_else(no_fs)?.power_cut()?;
                cx.deployment.kill().await?;
                return Ok(());
            }
            let deadline = Instant::now() + AIM_DEADLINE;
            loop {
                let fs = cx.deployment.faultfs_mut().ok_or_else(no_fs)?;
                while fs.unsynced() == 0 && Instant::now() < deadline {
                    tokio::time::sleep(AIM_POLL).await;
                }
                cx.deployment.pause().await?;
                let fs = cx.deployment.faultfs_mut().ok_or_else(no_fs)?;
                let empty = fs.capture_crash_point()?.history.ops().is_empty();
                // What was unsynced when looked at may have been synced
                // before the freeze took hold: look again while time is left.
                if !empty || Instant::now() >= deadline {
                    break;
                }
                for point in fs.take_crash_points() {
                    if let Err(e) = std::fs::remove_dir_all(&point.base) {
                        tracing::warn!("could not remove the empty crash point {}: {e}", point.base.display());
                    }
                }
                cx.deployment.unpause().await?;
            }
            let fs = cx.deployment.faultfs_mut().ok_or_else(no_fs)?;
            fs.power_cut()?;
            cx.deployment.kill().await?;
            Ok(())
        })
    }

    fn fired<'a>(&'a self, cx: &'a mut Cx<'_>) -> BoxFuture<'a, Fired> {
        Box::pin(async move {
            let through_driver = cx.deployment.storage().crashlab_volume().is_some();
            let point = if through_driver {
                let cut = cx.deployment.storage_mut().take_driver_cut();
                let Some(point) = cx.deployment.storage().driver_points().last() else {
                    return not_fired(match cut {
                        Some(_) => {
                            "crashlab's volume driver handed over no crash point: the volume records no \
                                    unsynced history (created with `history=false`)"
                        }
                        None => "no crash point was captured",
                    });
                };
                point
            } else {
                let Some(fs) = cx.deployment.faultfs_mut() else {
                    return not_fired("the data is not on the fault filesystem");
                };
                if let Points::At(trigger) = &cx.explore.points {
                    return fired_inside(fs, trigger);
                }
                let Some(point) = fs.crash_points().last() else {
                    return not_fired("no crash point was captured");
                };
                point
            };
            let (ops, bytes) = (point.history.ops().len(), point.history.bytes());
            if !point.history.is_complete() {
                return not_fired(
                    "the unsynced history outgrew the fault filesystem's budget (max-history-bytes), so the crash \
                     point cannot be explored",
                );
            }
            if ops == 0 {
                return not_fired(format!(
                    "nothing was unsynced at the crash point: no write went unsynced within {} s after the load",
                    AIM_DEADLINE.as_secs()
                ));
            }
            let through = if through_driver { " through crashlab's volume driver" } else { "" };
            fired(format!(
                "captured a crash point at the end of the load{through} with {ops} unsynced operations ({bytes} \
                 bytes of writes), then cut the power"
            ))
        })
    }

    fn recover<'a>(&'a self, cx: &'a mut Cx<'_>) -> BoxFuture<'a, Result<Recovered, FaultError>> {
        Box::pin(power_back(cx))
    }

    fn explore<'a>(&'a self, cx: &'a mut Cx<'_>, oracle: &'a Oracle<'a>) -> BoxFuture<'a, Option<Exploration>> {
        Box::pin(async move {
            let (points, captures, states_dir) = match cx.deployment.faultfs_mut() {
                Some(fs) => (fs.take_crash_points(), fs.take_captures(), fs.states_dir()),
                None => {
                    let points = cx.deployment.storage_mut().take_driver_points();
                    if points.is_empty() {
                        return None;
                    }
                    let dir = cx.deployment.run().dir().join("driver-states").join(cx.deployment.name());
                    (points, Vec::new(), dir)
                }
            };
            let mut explored = Exploration::default();
            for point in points {
                let report = check_point(cx.deployment, cx.workload, point, END_OF_LOAD, &states_dir, oracle).await;
                explored.points.push(report);
            }
            for c in captures {
                let report = match c.error {
                    // The copy failed in the handler: the point is no
                    // evidence, which makes the cycle `error`.
                    Some(e) => {
                        let _ = std::fs::remove_dir_all(&c.point.base);
                        PointReport { at: c.label, error: Some(e), ..PointReport::default() }
                    }
                    None => check_point(cx.deployment, cx.workload, c.point, &c.label, &states_dir, oracle).await,
                };
                explored.points.push(report);
            }
            Some(explored)
        })
    }
}

/// The end-of-load crash point through crashlab's volume driver: waits (up
/// to [`AIM_DEADLINE`], the load going on) until something is unsynced on
/// `volume`, freezes the container, has the driver capture the point (and
/// thaws and tries again when what was unsynced was synced before the
/// freeze took hold), then cuts the power through the driver and kills the
/// server.
async fn through_driver(cx: &mut Cx<'_>, volume: &str) -> Result<(), FaultError> {
    use super::driver_cut;
    // A point an earlier cycle left unexplored (its fault did not fire) is
    // not this cycle's.
    for stale in cx.deployment.storage_mut().take_driver_points() {
        let _ = std::fs::remove_dir_all(&stale.base);
    }
    let deadline = Instant::now() + AIM_DEADLINE;
    let point = loop {
        while driver_cut::unsynced(volume).await? == 0 && Instant::now() < deadline {
            tokio::time::sleep(DRIVER_POLL).await;
        }
        cx.deployment.pause().await?;
        let point = driver_cut::capture(cx, volume).await?;
        let empty = point.as_ref().is_some_and(|p| p.history.ops().is_empty());
        if !empty || Instant::now() >= deadline {
            break point;
        }
        if let Some(p) = point
            && let Err(e) = std::fs::remove_dir_all(&p.base)
        {
            tracing::warn!("could not remove the empty crash point {}: {e}", p.base.display());
        }
        cx.deployment.unpause().await?;
    };
    let cut = driver_cut::cut(volume).await?;
    cx.deployment.kill().await?;
    let storage = cx.deployment.storage_mut();
    storage.set_driver_cut(cut);
    if let Some(point) = point {
        storage.push_driver_point(point);
    }
    Ok(())
}

/// How often the wait for something unsynced asks the driver.
const DRIVER_POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// Whether the points inside the load fired: at least one was captured
/// (the fault filesystem captures only where something is unsynced and
/// its history is complete).
fn fired_inside(fs: &mut crate::storage::faultmount::FaultMount, trigger: &crashlab_faultfs::Trigger) -> Fired {
    let counts = fs.capture_counts();
    let captures = fs.captures();
    if captures.is_empty() {
        return not_fired(format!(
            "no call matching `{trigger}` came with something unsynced during the load ({} matching calls came with \
             nothing unsynced)",
            counts.skipped_empty
        ));
    }
    let ops: usize = captures.iter().map(|c| c.point.history.ops().len()).sum();
    let spread: Vec<String> = captures
        .iter()
        .map(|c| {
            let h = &c.point.history;
            let ms = c.since.as_millis();
            let files = h.files();
            format!("{ms} ms ({files} file{}, {} B)", if files == 1 { "" } else { "s" }, h.bytes())
        })
        .collect();
    fired(format!(
        "captured {} crash points inside the load at calls matching `{trigger}` (of {} candidates; {ops} unsynced \
         operations in all), at {} into the load (files with unsynced operations, bytes of unsynced writes), then \
         cut the power at the end of the load",
        captures.len(),
        counts.candidates,
        spread.join(", ")
    ))
}
