//! Mounting, unmounting and the control handle the harness keeps.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fuser::{BackgroundSession, MountOption, SessionACL};

use crate::capture::{Capture, CaptureCounts, CapturePlan};
use crate::config::FaultConfig;
use crate::fs::{self, Shared, State, Stats};
use crate::history::History;
use crate::rules::FaultRule;
use crate::sys;

/// Why a mount or unmount failed.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// The backing directory is missing or unusable.
    #[error("open backing directory {}", path.display())]
    Backing {
        /// The backing directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The kernel refused the mount (is `/dev/fuse` there, are we root?).
    #[error("mount faultfs at {}", path.display())]
    Mount {
        /// The mountpoint.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Unmounting failed, typically because the mount is busy.
    #[error("unmount faultfs at {}", path.display())]
    Unmount {
        /// The mountpoint.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// Why a control operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Writing cached data or names to the backing directory failed.
    #[error("checkpoint faultfs")]
    Checkpoint(#[source] io::Error),
    /// Copying the durable base for a crash point failed.
    #[error("copy faultfs backing directory to {}", path.display())]
    CrashPoint {
        /// The destination.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// Entry point: mounts faultfs.
#[derive(Debug)]
pub struct FaultFs;

impl FaultFs {
    /// Mounts faultfs at `mountpoint` over `backing` and serves it from a
    /// background thread until the returned [`MountedFs`] is unmounted or
    /// dropped. Requires root (or `CAP_SYS_ADMIN`) and `/dev/fuse`.
    ///
    /// # Errors
    /// [`MountError::Backing`] if the backing directory cannot be prepared,
    /// [`MountError::Mount`] if the kernel refuses the mount.
    pub fn mount(backing: &Path, mountpoint: &Path, config: FaultConfig) -> Result<MountedFs, MountError> {
        let backing_err = |source| MountError::Backing { path: backing.to_owned(), source };
        let backing_abs = backing.canonicalize().map_err(backing_err)?;
        let threads = config.threads();
        let state = State::new(&backing_abs, config).map_err(backing_err)?;
        let shared = Arc::new(Shared::new(state));
        let mut options = fuser::Config::default();
        options.mount_options = vec![
            MountOption::FSName("crashlab-faultfs".into()),
            MountOption::Subtype("crashlab-faultfs".into()),
            MountOption::DefaultPermissions,
            MountOption::RW,
            MountOption::Dev,
            MountOption::Suid,
        ];
        options.acl = SessionACL::All;
        // Requests are served by several threads, each reading its own
        // clone of the /dev/fuse descriptor: requests on different files
        // do not wait for each other (see the crate docs, "Concurrency").
        options.n_threads = Some(threads);
        options.clone_fd = true;
        let fs = fs::FaultFs { shared: Arc::clone(&shared) };
        let session = fuser::spawn_mount(fs, mountpoint, &options)
            .map_err(|source| MountError::Mount { path: mountpoint.to_owned(), source })?;
        *shared.notifier.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(session.notifier());
        Ok(MountedFs { session: Some(session), handle: FaultHandle { shared }, mountpoint: mountpoint.to_owned() })
    }
}

/// A mounted faultfs. Unmounts on drop; call [`MountedFs::unmount`] to see
/// errors. Dereferences to its [`FaultHandle`].
#[derive(Debug)]
pub struct MountedFs {
    session: Option<BackgroundSession>,
    handle: FaultHandle,
    mountpoint: PathBuf,
}

impl MountedFs {
    /// A cloneable handle for controlling this mount from other threads.
    pub fn handle(&self) -> FaultHandle {
        self.handle.clone()
    }

    /// Where the filesystem is mounted.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Unmounts and waits for the serving thread. Unless the power was cut,
    /// everything cached is made durable first, as a clean kernel unmount
    /// would.
    ///
    /// # Errors
    /// [`MountError::Unmount`] if the mount is busy or the thread failed; the
    /// mount is then detached lazily so that nothing stays attached.
    pub fn unmount(mut self) -> Result<(), MountError> {
        self.unmount_inner()
    }

    fn unmount_inner(&mut self) -> Result<(), MountError> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        // The kernel sends a closed file's RELEASE asynchronously, and the
        // mount stays busy until faultfs has answered it: a close just
        // before the unmount would make it fail for a moment. So retry a
        // plain unmount briefly; once it succeeds the session's thread sees
        // the end of the mount and only needs joining.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match sys::umount_plain(&self.mountpoint) {
                Ok(()) => {
                    return session
                        .join()
                        .map_err(|source| MountError::Unmount { path: self.mountpoint.clone(), source });
                }
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(_) => break,
            }
        }
        session.umount_and_join().map_err(|source| {
            // A busy mount would otherwise outlive us with nobody serving it.
            let _ = sys::umount_detach(&self.mountpoint);
            MountError::Unmount { path: self.mountpoint.clone(), source }
        })
    }
}

impl std::ops::Deref for MountedFs {
    type Target = FaultHandle;

    fn deref(&self) -> &FaultHandle {
        &self.handle
    }
}

impl Drop for MountedFs {
    fn drop(&mut self) {
        if let Err(e) = self.unmount_inner() {
            tracing::warn!(error = %e, "faultfs unmount on drop failed");
        }
    }
}

/// Controls a mounted faultfs: power cuts, checkpoints, statistics, rules.
#[derive(Clone, Debug)]
pub struct FaultHandle {
    shared: Arc<Shared>,
}

impl FaultHandle {
    /// Simulates power loss: discards every non-durable write and namespace
    /// change (tearing writes selected by `torn` rules), then fails all
    /// further I/O with `EIO` until remount. Idempotent.
    pub fn power_cut(&self) {
        self.shared.power_cut();
    }

    /// Arms an aimed power cut: right after the next `write` of at least
    /// `min_bytes` that is not made durable at once (no `O_SYNC`), while
    /// that write is cached and unsynced and before its caller is answered
    /// (it gets `EIO`), the power fails as by [`Self::power_cut`] — torn
    /// rules apply, so that write can be torn. Lets a harness cut exactly
    /// when there is something to tear, rather than hope. Poll
    /// [`Stats::powered_off`](crate::Stats::powered_off) for the cut; a
    /// later [`Self::power_cut`] is then a no-op. Ignored after a cut.
    pub fn cut_at_next_write(&self, min_bytes: u64) {
        self.shared.lock().arm_cut_at_write(min_bytes, None);
    }

    /// Arms an aimed power cut at the write with the most at stake within
    /// `window`, as a spread capture plan chooses a stratum's point (the
    /// crate's `capture` docs): at stake is the number of files with
    /// unsynced data times their unsynced bytes, counting the write; the
    /// writes until a look instant `seed` draws in the first fifth to half
    /// of the window are watched, and then the first one whose score
    /// reaches the best seen times the share of the window still left
    /// takes the cut. A write of the database's data files beside its log
    /// outscores a log write alone. After the window the next write of at
    /// least `min_bytes` takes it, as with [`Self::cut_at_next_write`].
    /// Requests are served one at a time while the cut is armed.
    pub fn cut_at_best_write(&self, min_bytes: u64, window: Duration, seed: u64) {
        self.shared.lock().arm_cut_at_write(min_bytes, Some((window, seed)));
    }

    /// Makes everything durable, as if every directory and file had been
    /// `fsync`ed.
    ///
    /// # Errors
    /// [`ControlError::Checkpoint`] if the backing directory rejects a write,
    /// or after a power cut.
    pub fn checkpoint(&self) -> Result<(), ControlError> {
        self.shared.exclusive().checkpoint().map_err(ControlError::Checkpoint)
    }

    /// The unsynced history: every operation not durable yet, in order,
    /// with the barriers between them (see the crate docs, "Crash states").
    /// After a power cut it is the history at the cut, and the backing
    /// directory, until unmount, is the durable base it applies to: copy
    /// both (e.g. `cp -a --reflink`, keeping hard links) before unmounting,
    /// since the backing objects under `.crashlab-faultfs` go at unmount.
    pub fn history(&self) -> History {
        self.shared.lock().history()
    }

    /// A crash point now: with every request held off, copies the backing
    /// directory (the durable base, with its backing objects, keeping hard
    /// links; `copy_file_range`, so a reflink on btrfs and XFS) into `into`,
    /// which must not exist, and returns the history that applies to it.
    /// [`crate::explore()`] and [`crate::materialise()`] take the two.
    /// After a power cut it captures the state at the cut.
    ///
    /// # Errors
    /// [`ControlError::CrashPoint`] if the copy fails.
    pub fn crash_point(&self, into: &Path) -> Result<History, ControlError> {
        self.shared
            .exclusive()
            .crash_point(into)
            .map_err(|source| ControlError::CrashPoint { path: into.to_owned(), source })
    }

    /// Arms crash points inside the load (see [`crate::capture`]): from now
    /// on, each call the plan's trigger matches while something is unsynced
    /// is a candidate, and the selected ones are captured in the request's
    /// handler, when the call arrives and before it takes effect, exactly
    /// as [`Self::crash_point`] captures (the durable base copied into
    /// `<plan.into>/<n>`, every request held off meanwhile). Replaces an
    /// armed plan, keeping what it captured; take the points with
    /// [`Self::take_captures`].
    pub fn capture_at(&self, plan: CapturePlan) {
        self.shared.lock().capture_at(plan);
    }

    /// Disarms the plan; returns how many candidates it saw and captured.
    pub fn stop_capture(&self) -> CaptureCounts {
        self.shared.lock().stop_capture()
    }

    /// The armed plan's counters so far (zero when none is armed).
    pub fn capture_counts(&self) -> CaptureCounts {
        self.shared.lock().capture_counts()
    }

    /// The crash points captured by the plan since the last call, in order.
    pub fn take_captures(&self) -> Vec<Capture> {
        self.shared.lock().take_captures()
    }

    /// Current counters and dirty-data gauges.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Installs a rule; its counters start now.
    pub fn add_rule(&self, rule: FaultRule) {
        self.shared.lock().add_rule(rule);
    }

    /// Removes every rule.
    pub fn clear_rules(&self) {
        self.shared.lock().clear_rules();
    }

    /// The installed rules.
    pub fn rules(&self) -> Vec<FaultRule> {
        self.shared.lock().rules()
    }
}

/// Lazily unmounts whatever is mounted at `path` (`umount2(MNT_DETACH)`),
/// for cleaning up after a killed process that left a FUSE mount behind
/// (its accesses then fail with `ENOTCONN`). Returns whether something was
/// mounted there.
///
/// # Errors
/// [`MountError::Unmount`] for failures other than "not mounted" and "no
/// such path", e.g. missing privileges.
pub fn unmount_stale(path: &Path) -> Result<bool, MountError> {
    match sys::umount_detach(path) {
        Ok(()) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOENT)) => Ok(false),
        Err(source) => Err(MountError::Unmount { path: path.to_owned(), source }),
    }
}
