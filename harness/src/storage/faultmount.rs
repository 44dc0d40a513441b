//! The fault filesystem under a cell's data: one `crashlab-faultfs` mount
//! over a backing directory, owned by the cell's [`Storage`](crate::storage::Storage),
//! served from the harness process, and the record of what it was told to do.
//!
//! Layout, under the run's state directory: `fs/<name>/backing` holds what
//! would survive a power cut, `fs/<name>/mnt` is the mountpoint the
//! container's bind mount or named volume points at. Keeping every mount
//! under the run directory is what lets [`crate::cleanup::cleanup_run`] and
//! `crashlab clean` find and detach mounts that a killed harness left
//! behind (from `/proc/self/mounts`) before they remove any directory.
//!
//! A mount's seed decides which sectors of a torn write survive. Each mount
//! of a cell gets its own seed, derived from the cell's seed and a mount
//! counter, so that a remount after a power cut does not replay the same
//! choices; every seed and every rule goes into the cycle's report.

use crate::run::journal::{Entry, Journal};
use crashlab_faultfs::{
    CaptureCounts, CapturePlan, FaultConfig, FaultFs, FaultHandle, FaultRule, FsyncFailure, History, MountError,
    MountedFs, Stats, Trigger,
};
use crashlab_reports::FaultFsCycle;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long an unmount may wait for the serving thread. The thread ends
/// once no mount of the filesystem is left anywhere, which can lag behind
/// the container's exit while Docker releases a named volume.
const UNMOUNT_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum FaultMountError {
    #[error("create fault filesystem directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Mount(#[from] MountError),
    #[error("build the fault filesystem's configuration")]
    Config(#[source] crashlab_faultfs::ConfigError),
    #[error("checkpoint the fault filesystem at {path}")]
    Checkpoint {
        path: PathBuf,
        #[source]
        source: crashlab_faultfs::ControlError,
    },
    #[error("unmount the fault filesystem at {path}: still busy after {UNMOUNT_TIMEOUT:?}")]
    UnmountTimeout { path: PathBuf },
    #[error("capture a crash point of the fault filesystem at {path}")]
    CrashPoint {
        path: PathBuf,
        #[source]
        source: crashlab_faultfs::ControlError,
    },
    #[error("use the fault filesystem at {path}: it is not mounted")]
    NotMounted { path: PathBuf },
    #[error(transparent)]
    Journal(#[from] crate::run::journal::JournalError),
}

/// A faultfs mount that can be cut, remounted and torn down.
#[derive(Debug)]
pub struct FaultMount {
    backing: PathBuf,
    mountpoint: PathBuf,
    base_seed: u64,
    mounts: u64,
    /// Seed of the current mount.
    seed: u64,
    fsync_reaches_disk: bool,
    /// Whether the mounts record the unsynced history.
    record_history: bool,
    /// What a failed fsync does to the data it did not write.
    fsync_failure: FsyncFailure,
    mounted: Option<MountedFs>,
    /// What this cycle did so far.
    record: FaultFsCycle,
    /// Counters of the current mount when `record` last took them in.
    baseline: Stats,
    /// Whether the current mount's power cut is in `record`.
    cut_recorded: bool,
    /// Crash points captured and not yet taken for checking.
    points: Vec<CrashPoint>,
    /// Crash points captured so far, for unique directory names.
    captured: u64,
    /// Crash points the fault filesystem captured inside the load, taken
    /// from it when the plan stopped.
    captures: Vec<Captured>,
    /// What the last plan saw.
    capture_counts: CaptureCounts,
}

/// A crash point captured inside the load, at a call the plan's trigger
/// matched ([`FaultMount::capture_at`]).
#[derive(Debug)]
pub struct Captured {
    pub point: CrashPoint,
    /// How far into the load the call came (from the plan's arming).
    pub since: std::time::Duration,
    /// The call, e.g. `fsync #12 of /test/bank.ibd`.
    pub label: String,
    /// Why the durable base could not be copied, if it could not.
    pub error: Option<String>,
}

/// A crash point: a copy of the durable base (the backing directory, with
/// its hidden backing objects) and the unsynced history that applies to it,
/// captured at `at`. [`crashlab_faultfs::explore()`] takes the two.
#[derive(Debug)]
pub struct CrashPoint {
    /// The copy of the backing directory; removed by whoever checks it.
    pub base: PathBuf,
    pub history: History,
    pub at: std::time::Instant,
}

/// A seed for the `n`th mount of a cell: splitmix64 of the pair, so
/// neighbouring cells and mounts get unrelated seeds.
fn mount_seed(base: u64, n: u64) -> u64 {
    let mut z = base ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl FaultMount {
    /// Creates `dir/backing` and `dir/mnt` and mounts faultfs there,
    /// recording the mountpoint in the run's `journal` first.
    pub fn create(
        dir: &Path,
        options: super::FaultFsOptions,
        journal: Option<&Journal>,
    ) -> Result<FaultMount, FaultMountError> {
        let backing = dir.join("backing");
        let mountpoint = dir.join("mnt");
        if let Some(journal) = journal {
            journal.record(&Entry::Mount(mountpoint.clone()))?;
        }
        for path in [&backing, &mountpoint] {
            std::fs::create_dir_all(path)
                .map_err(|source| FaultMountError::CreateDir { path: path.clone(), source })?;
        }
        let mut fs = FaultMount {
            backing,
            mountpoint,
            base_seed: options.seed,
            mounts: 0,
            seed: 0,
            fsync_reaches_disk: options.fsync_reaches_disk,
            record_history: options.record_history,
            fsync_failure: options.fsync_failure,
            mounted: None,
            record: FaultFsCycle::default(),
            baseline: Stats::default(),
            cut_recorded: false,
            points: vec![],
            captured: 0,
            captures: vec![],
            capture_counts: CaptureCounts::default(),
        };
        fs.mount()?;
        Ok(fs)
    }

    fn mount(&mut self) -> Result<(), FaultMountError> {
        let seed = mount_seed(self.base_seed, self.mounts);
        self.mounts += 1;
        let config = FaultConfig::builder()
            .seed(seed)
            .fsync_reaches_disk(self.fsync_reaches_disk)
            .fsync_failure(self.fsync_failure)
            // Only a fault that explores crash states reads the history:
            // without it, no write keeps a copy of its data.
            .max_history_bytes(if self.record_history { FaultConfig::DEFAULT_MAX_HISTORY } else { 0 })
            .build()
            .map_err(FaultMountError::Config)?;
        let mounted = FaultFs::mount(&self.backing, &self.mountpoint, config)?;
        self.baseline = Stats::default();
        self.cut_recorded = false;
        self.seed = seed;
        self.record.seeds.push(seed);
        self.mounted = Some(mounted);
        Ok(())
    }

    /// Where containers mount the data from.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    fn handle(&self) -> Result<FaultHandle, FaultMountError> {
        self.mounted
            .as_ref()
            .map(MountedFs::handle)
            .ok_or_else(|| FaultMountError::NotMounted { path: self.mountpoint.clone() })
    }

    /// Starts the record of a new cycle on the current mount.
    pub fn begin_cycle(&mut self) {
        self.record = FaultFsCycle { seeds: vec![self.seed], ..FaultFsCycle::default() };
        if let Ok(handle) = self.handle() {
            self.baseline = handle.stats();
        }
    }

    /// Ends the cycle's record and returns it.
    pub fn end_cycle(&mut self) -> FaultFsCycle {
        self.settle();
        std::mem::take(&mut self.record)
    }

    /// Takes the counters of the current mount into the record.
    fn settle(&mut self) {
        let Ok(handle) = self.handle() else { return };
        let now = handle.stats();
        self.record.injected_errors += now.injected_errors.saturating_sub(self.baseline.injected_errors);
        self.record.torn_writes += now.torn_writes.saturating_sub(self.baseline.torn_writes);
        self.record.fsyncs += now.fsyncs.saturating_sub(self.baseline.fsyncs);
        self.record.bytes_written += now.bytes_written.saturating_sub(self.baseline.bytes_written);
        self.baseline = now;
    }

    /// What this cycle did so far.
    pub fn record(&mut self) -> &FaultFsCycle {
        self.settle();
        &self.record
    }

    /// What was recorded so far, as last settled (a power cut settles).
    pub fn recorded(&self) -> &FaultFsCycle {
        &self.record
    }

    /// Operations the rules failed so far in this cycle.
    pub fn injected_errors(&mut self) -> u64 {
        self.settle();
        self.record.injected_errors
    }

    /// Makes everything written so far durable, so that a workload's setup
    /// is not what a power cut takes away.
    pub fn checkpoint(&self) -> Result<(), FaultMountError> {
        self.handle()?
            .checkpoint()
            .map_err(|source| FaultMountError::Checkpoint { path: self.mountpoint.clone(), source })
    }

    /// Installs a rule and records it.
    pub fn add_rule(&mut self, rule: FaultRule) -> Result<(), FaultMountError> {
        self.handle()?.add_rule(rule.clone());
        self.record.rules.push(rule.to_string());
        Ok(())
    }

    /// Removes every rule (the record keeps them).
    pub fn clear_rules(&mut self) -> Result<(), FaultMountError> {
        self.settle();
        self.handle()?.clear_rules();
        Ok(())
    }

    /// Cuts the power: everything not durable is gone (or torn, under a
    /// `torn` rule) and every further operation fails until [`Self::remount`].
    /// After an aimed cut ([`Self::cut_at_next_write`]) it only records it.
    pub fn power_cut(&mut self) -> Result<(), FaultMountError> {
        self.handle()?.power_cut();
        self.record_cut();
        Ok(())
    }

    /// Arms an aimed power cut at the next unsynced write of at least
    /// `min_bytes`; see [`FaultHandle::cut_at_next_write`].
    pub fn cut_at_next_write(&self, min_bytes: u64) -> Result<(), FaultMountError> {
        self.handle()?.cut_at_next_write(min_bytes);
        Ok(())
    }

    /// Arms an aimed power cut at the write with the most at stake (files
    /// with unsynced data times their unsynced bytes) within `window`, its
    /// look instant drawn by the mount's seed; see
    /// [`FaultHandle::cut_at_best_write`].
    pub fn cut_at_best_write(&self, min_bytes: u64, window: Duration) -> Result<(), FaultMountError> {
        self.handle()?.cut_at_best_write(min_bytes, window, self.seed);
        Ok(())
    }

    /// Captures a crash point now, with every filesystem request held off:
    /// copies the durable base into a new directory beside the backing
    /// directory (removed with the mount's directories at teardown, if the
    /// checker has not removed it first) and keeps it with the history for
    /// [`Self::take_crash_points`].
    pub fn capture_crash_point(&mut self) -> Result<&CrashPoint, FaultMountError> {
        let dir = self.backing.with_file_name(format!("crash-point-{}", self.captured));
        self.captured += 1;
        // The copy holds every request off from its start: the state is
        // the one at this instant or later, never earlier.
        let at = std::time::Instant::now();
        let history = self
            .handle()?
            .crash_point(&dir)
            .map_err(|source| FaultMountError::CrashPoint { path: self.mountpoint.clone(), source })?;
        self.points.push(CrashPoint { base: dir, history, at });
        Ok(self.points.last().expect("pushed above"))
    }

    /// Arms crash points inside the load: at most `max_points` of the calls
    /// `trigger` matches while something is unsynced, spread over `window`
    /// from now (one per equal slice of it, preferring calls with more at
    /// stake) or, without a window, every `every`th after an offset seeded
    /// by the mount's seed (see [`crashlab_faultfs::capture`]), each
    /// captured by the fault filesystem in the call's handler into a
    /// directory beside the backing directory. Points left from an earlier
    /// plan are removed.
    pub fn capture_at(
        &mut self,
        trigger: Trigger,
        max_points: u32,
        every: u32,
        window: Option<std::time::Duration>,
    ) -> Result<(), FaultMountError> {
        for old in std::mem::take(&mut self.captures) {
            remove_point(&old.point.base);
        }
        let into = self.backing.with_file_name(format!("points-{}", self.captured));
        self.captured += 1;
        let plan = CapturePlan { trigger, max_points, every, seed: self.seed, into, window };
        self.handle()?.capture_at(plan);
        self.capture_counts = CaptureCounts::default();
        Ok(())
    }

    /// Disarms the plan and keeps what it captured for
    /// [`Self::take_captures`].
    pub fn stop_capture(&mut self) -> Result<(), FaultMountError> {
        let handle = self.handle()?;
        self.capture_counts = handle.stop_capture();
        self.captures.extend(handle.take_captures().into_iter().map(|c| Captured {
            point: CrashPoint { base: c.base, history: c.history, at: c.at },
            since: c.since,
            label: c.label,
            error: c.error,
        }));
        Ok(())
    }

    /// What the last plan saw: candidates, captures, calls with nothing
    /// unsynced.
    pub fn capture_counts(&self) -> CaptureCounts {
        self.capture_counts
    }

    /// The points captured inside the load and not yet taken.
    pub fn captures(&self) -> &[Captured] {
        &self.captures
    }

    /// The points captured inside the load, for checking.
    pub fn take_captures(&mut self) -> Vec<Captured> {
        std::mem::take(&mut self.captures)
    }

    /// The crash points captured and not yet taken.
    pub fn crash_points(&self) -> &[CrashPoint] {
        &self.points
    }

    /// The crash points captured since the last call.
    pub fn take_crash_points(&mut self) -> Vec<CrashPoint> {
        std::mem::take(&mut self.points)
    }

    /// Where states of this mount's crash points are written out: beside
    /// the backing directory, so that they go with the mount at teardown.
    pub fn states_dir(&self) -> PathBuf {
        self.backing.with_file_name("states")
    }

    /// Currently unsynced bytes and directory operations (zero after a cut).
    pub fn unsynced(&self) -> u64 {
        self.handle().map_or(0, |h| {
            let s = h.stats();
            s.dirty_bytes + s.pending_namespace_ops
        })
    }

    /// Whether the power is cut (an aimed cut may have landed).
    pub fn powered_off(&self) -> bool {
        self.handle().is_ok_and(|h| h.stats().powered_off)
    }

    /// Takes a cut that happened into the cycle's record, once per mount.
    fn record_cut(&mut self) {
        let Ok(handle) = self.handle() else { return };
        let stats = handle.stats();
        if !stats.powered_off || self.cut_recorded {
            return;
        }
        self.cut_recorded = true;
        self.record.power_cut_dirty_bytes += stats.cut_dirty_bytes;
        self.record.power_cut_dirty_files += stats.cut_dirty_files;
        self.record.power_cut_namespace_ops += stats.cut_namespace_ops;
        if let Some(bytes) = stats.aimed_cut_write_bytes {
            self.record.aimed_cut_write_bytes = Some(bytes);
        }
        if let Some(after) = stats.aimed_cut_after {
            self.record.aimed_cut_after_ms = Some(after.as_secs_f64() * 1e3);
        }
        self.settle();
    }

    /// Unmounts and mounts again over the same backing directory, as a host
    /// that lost power boots on what its disk kept. Nothing may use the
    /// mount (the container must be dead).
    pub async fn remount(&mut self) -> Result<(), FaultMountError> {
        self.unmount().await?;
        self.mount()
    }

    /// Unmounts, making everything durable first unless the power was cut.
    /// Waits at most [`UNMOUNT_TIMEOUT`] for the serving thread; on timeout
    /// the mount is detached so that nothing stays attached.
    pub async fn unmount(&mut self) -> Result<(), FaultMountError> {
        self.settle();
        let Some(mounted) = self.mounted.take() else { return Ok(()) };
        let path = self.mountpoint.clone();
        // Unmounting joins the FUSE thread, which blocks: keep it off the
        // async workers.
        let task = tokio::task::spawn_blocking(move || mounted.unmount());
        match tokio::time::timeout(UNMOUNT_TIMEOUT, task).await {
            Ok(Ok(result)) => result.map_err(FaultMountError::Mount),
            Ok(Err(join)) => {
                tracing::warn!("faultfs unmount task failed: {join}");
                let _ = crashlab_faultfs::unmount_stale(&path);
                Ok(())
            }
            Err(_) => {
                let _ = crashlab_faultfs::unmount_stale(&path);
                Err(FaultMountError::UnmountTimeout { path })
            }
        }
    }

    /// Unmounts and removes the backing directory and mountpoint. The
    /// directory is only removed once nothing is mounted under it, so a
    /// removal never walks through a FUSE mount.
    pub async fn teardown(mut self) -> Result<(), FaultMountError> {
        let dir = self.backing.parent().map(Path::to_path_buf).unwrap_or_default();
        let dir = dir.as_path();
        let unmounted = self.unmount().await;
        detach_mounts_under(dir);
        if crate::images::mounts_under(dir).is_empty() {
            if let Err(e) = std::fs::remove_dir_all(dir)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!("could not remove {}: {e}", dir.display());
            }
        } else {
            tracing::warn!("{} still has mounts; left for `crashlab clean`", dir.display());
        }
        unmounted
    }
}

impl Drop for FaultMount {
    /// A mount still attached here means the cell was abandoned (Ctrl-C, a
    /// panic) with its container possibly alive. Joining the FUSE thread
    /// now could wait for that container forever, so the mount is detached
    /// and the join left to a background thread; the run's cleanup removes
    /// the container, which ends the thread.
    fn drop(&mut self) {
        if let Some(mounted) = self.mounted.take() {
            let _ = crashlab_faultfs::unmount_stale(&self.mountpoint);
            std::thread::spawn(move || drop(mounted));
        }
    }
}

fn remove_point(base: &Path) {
    if let Err(e) = std::fs::remove_dir_all(base)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!("could not remove the crash point {}: {e}", base.display());
    }
}

/// Lazily detaches every mount at or below `dir`, deepest first. Returns
/// how many were detached. Used on run directories before removing them:
/// a FUSE mount whose server died answers `ENOTCONN`, and one that lives
/// would let a recursive removal delete through it.
pub fn detach_mounts_under(dir: &Path) -> usize {
    let mut mounts = crate::images::mounts_under(dir);
    mounts.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    let mut detached = 0;
    for mount in mounts {
        match crashlab_faultfs::unmount_stale(&mount) {
            Ok(true) => detached += 1,
            Ok(false) => {}
            Err(e) => tracing::warn!("could not detach {}: {e}", mount.display()),
        }
    }
    detached
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_seeds_differ_per_mount_and_cell() {
        let seeds: Vec<u64> = (0..4).map(|n| mount_seed(42, n)).chain((0..4).map(|n| mount_seed(43, n))).collect();
        let mut unique = seeds.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), seeds.len());
        assert_eq!(mount_seed(42, 1), mount_seed(42, 1), "same inputs, same seed");
    }
}
