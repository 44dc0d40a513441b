//! Disk faults, acting during the load through the fault filesystem's
//! rules: `disk-full` (`ENOSPC` once a byte budget is spent) and
//! `io-error` (the scenario's `eio` rule). They fire when the rule failed at
//! least one operation; the report then quotes what the server made of it,
//! in its own words (the workload picks its error lines from its log).
//! Recovery frees the space (clears the rules) and restarts the container.

use super::{Behaviour, Cx, Disk, Fault, FaultError, Recovered, STOP_TIMEOUT_S, fired, not_fired};
use crashlab_faultfs::FaultRule;
use crashlab_reports::Fired;
use futures_util::future::BoxFuture;

/// Writes fail with `ENOSPC` once `[faults] disk-full-after` bytes were
/// written after the setup.
pub struct DiskFull;

/// The scenario's `[faults] io-error` rule fails matching operations with
/// `EIO`.
pub struct IoError;

impl Behaviour for DiskFull {
    fn disk(&self) -> Disk {
        Disk::Needed { on_memory: false, on_clusters: false }
    }

    fn strikes_the_loads_writes(&self) -> bool {
        true
    }

    fn arm(&self, cx: &mut Cx<'_>) -> Result<(), FaultError> {
        install(cx, Fault::DiskFull, FaultRule::NoSpace { after_bytes: cx.knobs.disk_full_after })
    }

    fn inject<'a>(&'a self, _cx: &'a mut Cx<'_>) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async { Ok(()) })
    }

    fn fired<'a>(&'a self, cx: &'a mut Cx<'_>) -> BoxFuture<'a, Fired> {
        Box::pin(async move {
            let budget = cx.knobs.disk_full_after;
            reaction(cx, "ENOSPC", |written| {
                format!(
                    "the load wrote {written} bytes, less than the disk-full budget of {budget}: the disk never filled"
                )
            })
            .await
        })
    }

    fn detail(&self, fired: &Fired) -> Option<String> {
        Some(fired.what.clone())
    }

    fn recover<'a>(&'a self, cx: &'a mut Cx<'_>) -> BoxFuture<'a, Result<Recovered, FaultError>> {
        Box::pin(free_and_restart(cx))
    }
}

impl Behaviour for IoError {
    fn disk(&self) -> Disk {
        Disk::Needed { on_memory: false, on_clusters: false }
    }

    fn strikes_the_loads_writes(&self) -> bool {
        true
    }

    fn arm(&self, cx: &mut Cx<'_>) -> Result<(), FaultError> {
        install(cx, Fault::IoError, cx.knobs.io_error.clone())
    }

    fn inject<'a>(&'a self, _cx: &'a mut Cx<'_>) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async { Ok(()) })
    }

    fn fired<'a>(&'a self, cx: &'a mut Cx<'_>) -> BoxFuture<'a, Fired> {
        Box::pin(async move {
            let rule = cx.knobs.io_error.to_string();
            reaction(cx, "EIO", |_| format!("the rule {rule} never matched an operation of the load")).await
        })
    }

    fn detail(&self, fired: &Fired) -> Option<String> {
        Some(fired.what.clone())
    }

    fn recover<'a>(&'a self, cx: &'a mut Cx<'_>) -> BoxFuture<'a, Result<Recovered, FaultError>> {
        Box::pin(cut_and_reboot(cx))
    }
}

/// After a failed `fsync` what the server believed durable is what counts,
/// and only a power cut shows it: a restart would let the page cache (the
/// data the failed `fsync` left behind, ext4-style, readable but never to
/// be written) hide what a crash loses. So: the rule cleared, the server
/// frozen if it still runs, the power cut, SIGKILL, remount, start.
async fn cut_and_reboot(cx: &mut Cx<'_>) -> Result<Recovered, FaultError> {
    let no_fs = || FaultError::NoFaultFs { fault: Fault::IoError };
    cx.deployment.faultfs_mut().ok_or_else(no_fs)?.clear_rules()?;
    if cx.deployment.is_running().await? {
        cx.deployment.pause().await?;
    }
    cx.deployment.faultfs_mut().ok_or_else(no_fs)?.power_cut()?;
    cx.deployment.kill_if_running().await?;
    super::power::power_back(cx).await
}

fn install(cx: &mut Cx<'_>, fault: Fault, rule: FaultRule) -> Result<(), FaultError> {
    let fs = cx.deployment.faultfs_mut().ok_or(FaultError::NoFaultFs { fault })?;
    fs.add_rule(rule)?;
    Ok(())
}

/// Whether the rule failed anything and, if it did, what the server made
/// of it: whether it went down, and its newest error lines. `quiet` says
/// why not, given the bytes the load wrote.
async fn reaction(cx: &mut Cx<'_>, errno: &str, quiet: impl FnOnce(u64) -> String) -> Fired {
    let Some(fs) = cx.deployment.faultfs_mut() else {
        return not_fired("the data is not on the fault filesystem");
    };
    let record = fs.record();
    let (failed, written) = (record.injected_errors, record.bytes_written);
    if failed == 0 {
        return not_fired(quiet(written));
    }
    let running = cx.deployment.is_running().await.unwrap_or(false);
    // The log spans every start of the container: the newest errors are
    // this cycle's; without any, its last line.
    let said = match cx.deployment.server_errors(cx.workload, 2, 400).await {
        Some(errors) => errors,
        None => crate::text::folded(cx.deployment.logs_tail(1).await.trim_end(), 400),
    };
    fired(format!(
        "{errno} on {failed} operation(s) during the load; the server {} at the end of the load; its last output: {said}",
        if running { "was still running" } else { "had exited" },
    ))
}

async fn free_and_restart(cx: &mut Cx<'_>) -> Result<Recovered, FaultError> {
    if let Some(fs) = cx.deployment.faultfs_mut() {
        fs.clear_rules()?;
    }
    cx.deployment.stop(STOP_TIMEOUT_S).await?;
    cx.deployment.start().await?;
    Ok(Recovered::default())
}
