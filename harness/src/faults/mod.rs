//! Faults: what happens to a running workload. Each is split into the
//! destructive part ([`Fault::inject`]) and the way back
//! ([`Fault::recover`]); recovery time runs from the end of the first to
//! the first successful query after the second. Faults that act during the
//! load rather than at its end install their rules in [`Fault::arm`], right
//! after the workload's setup.
//!
//! | fault | arm (after setup) | inject (end of load) | recover |
//! |---|---|---|---|
//! | `process-kill` | | SIGKILL to the container's main process | start the same container |
//! | `restart` | | graceful stop (SIGTERM, SIGKILL after 30 s) | start the same container |
//! | `recreate` | | remove the container, as a redeploy does | create a new one on the same storage and start it |
//! | `host-kill` | | freeze the container, cut the power, SIGKILL it | remount the fault filesystem over what its backing directory kept, start the container |
//! | `torn-write` | | as `host-kill`, with a `torn:<mode>` rule installed just before the cut | as `host-kill` |
//! | `disk-full` | `enospc:<disk-full-after>` | nothing more: the disk filled during the load | clear the rules (space freed), restart the container (graceful stop, start) |
//! | `io-error` | the scenario's `eio` rule | nothing more: the error hit during the load | clear the rules, restart the container |
//! | `host-loss` | | SIGKILL, remove the container, destroy its data (volume, host directory, live subvolume) | new storage, restored from the latest backup where the strategy takes backups ([`crate::backup`]); a new container on it |
//!
//! `host-loss` stands for the host and its disks being gone: what a backup
//! strategy keeps away from the host (tar files and the object store under
//! the run directory, btrfs read-only snapshots standing for a volume
//! plugin's off-host snapshots) survives, nothing else does.
//!
//! # Where the power-loss faults can run
//!
//! `host-kill`, `torn-write`, `disk-full` and `io-error` need the data on
//! the fault filesystem (`crashlab-faultfs`), which the harness mounts over
//! a host directory. That is possible for `bind-mount` (the container binds
//! the mountpoint) and `named-volume` (a labelled local-driver volume that
//! binds the mountpoint). It is not for `container-layer` (the data lives in
//! the storage driver's layer) nor `anonymous-volume` (Docker creates the
//! volume with the container, in its own directory): those pairs are
//! reported `n/a` with the reason and never run. On `tmpfs` a host kill is
//! run honestly without the fault filesystem: power loss empties memory,
//! and Docker discards a tmpfs mount when the container stops, so freeze,
//! SIGKILL and start lose exactly what a power cut would (everything);
//! tearing writes, filling or failing a disk have no meaning in memory and
//! are `n/a`.
//!
//! # What MariaDB does (10.11, InnoDB), as measured by the test suite
//!
//! - `host-kill` with `innodb_flush_log_at_trx_commit=1`: every commit
//!   fsyncs the redo log before it is acknowledged, so a power cut loses
//!   only commits in flight; crash recovery replays the log: `intact`. With
//!   `=2` the log is written at commit but fsynced about once a second, so
//!   the last second of acknowledged commits is gone after a power cut
//!   (`lost-writes`), while a process kill, which keeps the host's page
//!   cache, loses nothing.
//! - `torn-write`: the last unsynced write of every file persists only in
//!   part. InnoDB's redo log blocks carry checksums and recovery stops at
//!   the first bad one, and a torn data page is restored from the
//!   doublewrite buffer, so durable settings stay `intact`.
//! - `disk-full`: once the byte budget is spent, writes fail with `ENOSPC`.
//!   A redo-log write that fails is fatal to InnoDB, so the server aborts;
//!   transactions in flight are in doubt and nothing acknowledged is lost:
//!   after space is freed and the server restarted it is `intact`. A budget
//!   the load never spends leaves the cell `intact` too, and the cycle's
//!   `faultfs.injected_errors` of 0 says the fault did not fire.
//! - `io-error`: InnoDB treats a failed `fsync` as fatal and aborts rather
//!   than acknowledge a commit it could not make durable (unlike the
//!   PostgreSQL "fsyncgate" behaviour of retrying); the cycle is `intact`
//!   after restart. `faultfs.injected_errors` shows whether the rule fired.

use crate::run::deployment::{Deployment, DeploymentError};
use crate::scenario::FaultsSection;
use crate::storage::Strategy;
use crate::storage::faultmount::FaultMountError;
use crashlab_faultfs::FaultRule;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    ProcessKill,
    Restart,
    Recreate,
    HostKill,
    TornWrite,
    DiskFull,
    IoError,
    HostLoss,
}

/// Seconds a graceful stop waits before Docker kills the server.
const STOP_TIMEOUT_S: i32 = 30;

/// A fault that could not be armed, injected or recovered from.
#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    #[error(transparent)]
    Deployment(#[from] DeploymentError),
    #[error(transparent)]
    FaultFs(#[from] FaultMountError),
    #[error("{fault} needs the data on the fault filesystem, and this storage has none")]
    NoFaultFs { fault: Fault },
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
}

impl Fault {
    pub const ALL: [Fault; 8] = [
        Fault::ProcessKill,
        Fault::Restart,
        Fault::Recreate,
        Fault::HostKill,
        Fault::TornWrite,
        Fault::DiskFull,
        Fault::IoError,
        Fault::HostLoss,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Fault::ProcessKill => "process-kill",
            Fault::Restart => "restart",
            Fault::Recreate => "recreate",
            Fault::HostKill => "host-kill",
            Fault::TornWrite => "torn-write",
            Fault::DiskFull => "disk-full",
            Fault::IoError => "io-error",
            Fault::HostLoss => "host-loss",
        }
    }

    /// Whether this fault, on `strategy`, needs the data on the fault
    /// filesystem.
    pub fn needs_faultfs(self, strategy: Strategy) -> bool {
        let power_loss = matches!(self, Fault::HostKill | Fault::TornWrite | Fault::DiskFull | Fault::IoError);
        power_loss && matches!(strategy, Strategy::BindMount | Strategy::NamedVolume)
    }

    /// Why `strategy` cannot take this fault, when it cannot; such cells
    /// are reported `n/a` rather than run.
    pub fn unsupported_on(self, strategy: Strategy) -> Option<&'static str> {
        match (self, strategy) {
            (Fault::ProcessKill | Fault::Restart | Fault::Recreate | Fault::HostLoss, _) => None,
            (_, Strategy::BindMount | Strategy::NamedVolume) => None,
            (Fault::HostKill, Strategy::Tmpfs) => None,
            (_, Strategy::ContainerLayer) => Some(
                "the writable layer belongs to Docker's storage driver; crashlab cannot put its fault filesystem \
                 under it, so power loss and disk faults cannot be simulated there",
            ),
            (_, Strategy::AnonymousVolume) => Some(
                "Docker creates an anonymous volume with the container, in its own directory; crashlab cannot put \
                 its fault filesystem under it, so power loss and disk faults cannot be simulated there",
            ),
            (_, Strategy::Tmpfs) => Some(
                "tmpfs is memory: there is no disk to tear, fill or fail (a host kill, which empties memory, is \
                 run as `host-kill`)",
            ),
            (
                _,
                Strategy::BackupHot
                | Strategy::BackupQuiesced
                | Strategy::BackupStopped
                | Strategy::BtrfsSnapshot
                | Strategy::SyncAgent,
            ) => Some(
                "backup strategies keep their live data on a plain named volume, not on the fault filesystem; \
                 run power loss and disk faults on `named-volume`, and `host-loss` to test the backups",
            ),
        }
    }

    /// Installs the rules that must be active during the load. Called after
    /// the workload's setup has been made durable.
    pub fn arm(self, deployment: &mut Deployment, knobs: &FaultsSection) -> Result<(), FaultError> {
        let rule = match self {
            Fault::DiskFull => FaultRule::NoSpace { after_bytes: knobs.disk_full_after },
            Fault::IoError => knobs.io_error.clone(),
            _ => return Ok(()),
        };
        let fs = deployment.faultfs_mut().ok_or(FaultError::NoFaultFs { fault: self })?;
        fs.add_rule(rule)?;
        Ok(())
    }

    /// Does the damage. When this returns, the server is down (or, for the
    /// faults that act during the load, has met its fault).
    pub async fn inject(self, deployment: &mut Deployment, knobs: &FaultsSection) -> Result<(), FaultError> {
        match self {
            Fault::ProcessKill => deployment.kill().await?,
            Fault::Restart => deployment.stop(STOP_TIMEOUT_S).await?,
            Fault::Recreate => deployment.remove().await?,
            Fault::HostKill | Fault::TornWrite => {
                // Frozen first, so that no write lands between the cut and
                // the kill: the server's last view of its disk is what the
                // power cut leaves.
                deployment.pause().await?;
                if let Some(fs) = deployment.faultfs_mut() {
                    if self == Fault::TornWrite {
                        fs.add_rule(FaultRule::TornWrite { mode: knobs.torn, path: None })?;
                    }
                    fs.power_cut()?;
                } else if self == Fault::TornWrite {
                    return Err(FaultError::NoFaultFs { fault: self });
                }
                deployment.kill().await?;
            }
            Fault::DiskFull | Fault::IoError => {}
            Fault::HostLoss => {
                // The host is gone at once: no graceful anything.
                deployment.kill().await?;
                deployment.remove().await?;
                deployment.lose_storage().await?;
            }
        }
        Ok(())
    }

    /// Brings the service back as an operator would after this fault. For
    /// `host-loss` on a backup strategy the runner restores the backup
    /// instead (see [`crate::backup::Backups::restore`]); this gives the
    /// service new, empty storage.
    pub async fn recover(self, deployment: &mut Deployment) -> Result<(), FaultError> {
        match self {
            Fault::HostLoss => {
                deployment.reprovision(None).await?;
                deployment.create().await?;
                deployment.start().await?;
            }
            Fault::ProcessKill | Fault::Restart => deployment.start().await?,
            Fault::Recreate => {
                deployment.create().await?;
                deployment.start().await?;
            }
            Fault::HostKill | Fault::TornWrite => {
                if let Some(fs) = deployment.faultfs_mut() {
                    fs.remount().await?;
                }
                deployment.start().await?;
            }
            Fault::DiskFull | Fault::IoError => {
                if let Some(fs) = deployment.faultfs_mut() {
                    fs.clear_rules()?;
                }
                deployment.stop(STOP_TIMEOUT_S).await?;
                deployment.start().await?;
            }
        }
        Ok(())
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pair_is_either_run_or_has_a_reason() {
        for fault in Fault::ALL {
            for strategy in Strategy::ALL {
                let unsupported = fault.unsupported_on(strategy);
                if fault.needs_faultfs(strategy) {
                    assert!(unsupported.is_none(), "{strategy}/{fault}");
                }
                if let Some(reason) = unsupported {
                    assert!(reason.len() > 20, "{strategy}/{fault}: a reason a reader can use");
                }
            }
        }
        let docker_only = [Fault::ProcessKill, Fault::Restart, Fault::Recreate, Fault::HostLoss];
        assert!(Strategy::ALL.iter().all(|&s| docker_only.iter().all(|f| f.unsupported_on(s).is_none())));
        assert!(Fault::HostKill.unsupported_on(Strategy::Tmpfs).is_none());
        assert!(!Fault::HostKill.needs_faultfs(Strategy::Tmpfs));
        assert!(Fault::TornWrite.unsupported_on(Strategy::Tmpfs).is_some());
        assert!(Fault::DiskFull.unsupported_on(Strategy::ContainerLayer).is_some());
        assert!(Fault::IoError.unsupported_on(Strategy::AnonymousVolume).is_some());
    }

    #[test]
    fn names_are_kebab_case_and_round_trip() {
        for fault in Fault::ALL {
            let json = serde_json::to_string(&fault).unwrap();
            assert_eq!(json, format!("\"{fault}\""));
            assert_eq!(serde_json::from_str::<Fault>(&json).unwrap(), fault);
        }
    }
}
