//! Faults: what happens to a running workload. Each fault is one
//! implementation of [`Behaviour`] (one file each: [`container`],
//! [`power`], [`disk`], [`host_loss`]) with hooks the runner calls in
//! order, with no per-fault branches of its own:
//!
//! 1. [`Behaviour::arm`], right after the workload's setup, for faults that
//!    act during the load (their fault-filesystem rules);
//! 2. [`Behaviour::inject`] at the end of the load, while clients are
//!    mid-transaction — the destructive part;
//! 3. [`Behaviour::fired`]: whether the fault did what it names and what,
//!    for the report. A cycle whose fault did not fire is `error`: it is
//!    no evidence of anything;
//! 4. [`Behaviour::recover`]: the way back, as an operator would.
//!
//! Recovery time runs from the end of `inject` to the first successful
//! query after `recover`.
//!
//! | fault | arm (after setup) | inject (end of load) | recover |
//! |---|---|---|---|
//! | `process-kill` | | SIGKILL to the container's main process | start the same container |
//! | `restart` | | graceful stop (SIGTERM, SIGKILL after 30 s) | start the same container |
//! | `recreate` | | remove the container, as a redeploy does | create a new one on the same storage and start it |
//! | `host-kill` | | on the fault filesystem, an aimed cut: faultfs cuts the power right after the next unsynced write (within [`power::AIM_DEADLINE`], the load going on), then SIGKILL; on tmpfs, freeze and SIGKILL | remount the fault filesystem over what its backing directory kept, start the container |
//! | `torn-write` | | aims the cut: a `torn:<mode>` rule and a cut armed to land right after the next write of two or more sectors that is not synced at once, within [`power::AIM_DEADLINE`]; SIGKILL | as `host-kill` |
//! | `disk-full` | `enospc:<disk-full-after>` | nothing more: the disk filled during the load | clear the rules (space freed), restart the container (graceful stop, start) |
//! | `io-error` | the scenario's `eio` rule; a failed `fsync` behaves as on ext4 (the unwritten data is marked clean, lost at a cut) | nothing more: the error hit during the load | clear the rules, freeze the server if it runs, cut the power, SIGKILL, remount, start: what the server believed durable is checked |
//! | `crash-states` | with `[explore] points` a trigger: arm the fault filesystem to capture crash points at matching calls, when they arrive | once something is unsynced: freeze the container, capture the crash point (a copy of the durable base and the unsynced history), cut the power, SIGKILL (with a trigger: freeze, cut, SIGKILL) | as `host-kill`; then every explored crash state of the point is checked on its own storage ([`crate::explore`]) |
//! | `host-loss` | | SIGKILL, remove the container, destroy its data (volume, host directory, live subvolume) | new storage, restored from the latest backup where the strategy takes backups ([`crate::backup`]); a new container on it |
//! | `partition` (`replica-*`, `cluster-3`) | start sampling the replica's lag | cut the replica off the primary's network for `[faults] partition` (1 s), or the last member of a cluster off the other two, the load going on; read the lag; heal | wait until the replica applied everything, or the member rejoined its cluster |
//! | `partition-failover` (`replica-*` only) | as `partition` | the same cut, then the primary's host lost | fail over as after `host-loss` |
//! | `storage-node-loss` (`glusterfs-replica` only) | | one storage host lost (SIGKILL, container removed, brick destroyed), the load going on for [`storage_node::LOAD_AFTER_LOSS`] | kill the server, start it on a fresh client mount of the volume |
//! | `host-loss` on `glusterfs-replica` | | the database killed and removed, the host's client mount gone (the volume stays), a monitor timing its detection | fail over: another host mounts the volume, a new container on it, the first acknowledged write timed ([`crate::deploy::hosts::shared`]) |
//! | `host-kill` on `cluster-3` | | a coordinated power loss: every member's fault filesystem armed, the first aimed cut to land cuts every other in the same instant, every server SIGKILLed | remount every member's fault filesystem, start every member |
//! | `process-kill` on `cluster-3` | | SIGKILL to every member's server, one after another | start every member |
//! | `host-loss` on `cluster-3` | | the first member's host lost (SIGKILL, removed, its volume destroyed), a monitor timing its detection | the next member serves once the survivors answer ([`crate::deploy::hosts::peers`]) |
//! | `host-loss` on `replica-*` | start sampling the replica's lag | read the lag and the semi-sync counters; the primary's host lost as above, a monitor timing its detection | fail over: promote the replica, time the first acknowledged write on it ([`crate::deploy::hosts`]) |
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
//! are `n/a`. On a volume of crashlab's own volume driver the fault
//! filesystem is the driver's: `host-kill`, `torn-write` and `crash-states`
//! run through it ([`driver_cut`], [`Behaviour::through_crashlabs_driver`]),
//! the disk faults are `n/a`.
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
//! - `torn-write`: the cut is aimed (the harness holds it until a file has
//!   an unsynced write of two or more sectors, and cuts right after it), and
//!   the last unsynced write of every file persists only in part. InnoDB's redo log blocks carry checksums and recovery stops at
//!   the first bad one, and a torn data page is restored from the
//!   doublewrite buffer, so durable settings stay `intact`.
//! - `disk-full`: once the byte budget is spent, writes fail with `ENOSPC`.
//!   A redo-log write that fails is fatal to InnoDB, so the server aborts;
//!   transactions in flight are in doubt and nothing acknowledged is lost:
//!   after space is freed and the server restarted it is `intact`. A budget
//!   the load never spends means the fault did not fire: the cycle is
//!   `error`, with the bytes the load wrote beside the budget.
//! - `io-error`: InnoDB treats a failed `fsync` as fatal and aborts rather
//!   than acknowledge a commit it could not make durable (unlike the
//!   PostgreSQL "fsyncgate" behaviour of retrying); the cycle is expected
//!   `intact` after the power cut that ends it.
//!   `faultfs.injected_errors` shows whether the rule fired.

pub mod container;
pub mod crash_states;
pub mod disk;
pub mod driver_cut;
pub mod host_loss;
pub mod partition;
pub mod power;
pub mod storage_node;

use crate::backup::{Backups, Restored};
use crate::deploy::deployment::{Deployment, DeploymentError};
use crate::deploy::topology::Host;
use crate::settings::{ExploreSection, FaultsSection};
use crate::storage::faultmount::FaultMountError;
use crate::storage::plugin_client::CRASHLAB_DRIVER;
use crate::storage::{Strategy, StrategyDef, UnderData};
use crashlab_reports::Fired;
use crashlab_workloads::Workload;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

/// A fault's identity, as scenarios and reports name it. Its behaviour is
/// [`Fault::behaviour`].
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
    CrashStates,
    Partition,
    PartitionFailover,
    StorageNodeLoss,
}

/// Seconds a graceful stop waits before Docker kills the server.
pub const STOP_TIMEOUT_S: i32 = 30;

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
    #[error("restore the backup")]
    Backup(#[from] crate::backup::BackupError),
    #[error(transparent)]
    Hosts(#[from] crate::deploy::hosts::HostsError),
    #[error("cut the power of volume {volume} through crashlab's volume driver: {detail}")]
    Driver { volume: String, detail: String },
    #[error("capture a crash point of volume {volume} through crashlab's volume driver: {detail}")]
    DriverCapture { volume: String, detail: String },
}

/// What a fault's hooks work on.
pub struct Cx<'a> {
    pub deployment: &'a mut Deployment,
    pub knobs: &'a FaultsSection,
    /// Where and how `crash-states` takes its crash points.
    pub explore: &'a ExploreSection,
    pub workload: &'a dyn Workload,
    /// The cell's backups, for strategies that take them.
    pub backups: Option<&'a mut Backups>,
    /// When arming: the length of the load the fault is about to meet
    /// (none when it strikes with no load running).
    pub load: Option<std::time::Duration>,
}

/// What recovery did beyond bringing the service back.
#[derive(Debug, Default)]
pub struct Recovered {
    /// The backup restored after a host loss, when the strategy had one.
    pub restored: Option<Restored>,
    /// A replicated strategy's lag, synchronous state and failover times.
    pub replication: Option<crashlab_reports::ReplicationCycle>,
}

/// One fault's behaviour: the hooks the runner calls, in this order —
/// [`arm`](Self::arm), [`inject`](Self::inject), [`fired`](Self::fired),
/// [`recover`](Self::recover).
pub trait Behaviour: Sync {
    /// Whether the damage needs a disk under the data (power loss, disk
    /// faults); the default, a fault of containers or hosts, needs none.
    fn disk(&self) -> Disk {
        Disk::NotNeeded
    }

    /// Whether the fault reads the unsynced history at its crash points
    /// (exploration); the fault filesystem records it only then.
    fn records_history(&self) -> bool {
        false
    }

    /// Whether the fault also runs on volumes of crashlab's own volume
    /// driver, through the driver (a power cut there is the driver's).
    fn through_crashlabs_driver(&self) -> bool {
        false
    }

    /// Whether the fault, on `strategy`, needs the data on the fault
    /// filesystem: a disk fault, where the filesystem can sit.
    fn needs_faultfs(&self, strategy: &StrategyDef) -> bool {
        self.disk() != Disk::NotNeeded
            && strategy.under == UnderData::FaultFs
            && self.unsupported_on(strategy).is_none()
    }

    /// Why `strategy` cannot take this fault, when it cannot; such cells are
    /// reported `n/a` rather than run. A disk fault runs where the fault
    /// filesystem can sit (and on memory when it says so).
    fn unsupported_on(&self, strategy: &StrategyDef) -> Option<&'static str> {
        match self.disk() {
            Disk::NotNeeded => None,
            Disk::Needed { on_memory, on_clusters } => needs_a_disk(strategy, on_memory, on_clusters),
        }
    }

    /// Whether the fault strikes during the load and the service is meant
    /// to go on accepting writes after it (a storage host lost under a
    /// replicated volume). A cycle whose load then had nothing acknowledged
    /// after the loss tested nothing of it, and is `error`.
    fn load_goes_on(&self) -> bool {
        false
    }

    /// Whether the fault can only strike writes the load has in flight (a
    /// torn write, a full disk, a failed write or fsync), so that a
    /// schedule puts a load right before it: after a recovery, with no
    /// load, it would not fire and the schedule would test nothing.
    fn strikes_the_loads_writes(&self) -> bool {
        false
    }

    /// The host of the topology the fault acts on, as a schedule names it
    /// (`host-kill on primary`): the server's own host by default.
    fn host(&self) -> Host {
        Host::Primary
    }

    /// Whether the service still answers once the damage is done, so that
    /// a schedule may land another fault before recovering from this one
    /// (a partition, a storage host lost under a replicated volume). By
    /// default only a fault whose load goes on.
    fn leaves_service_up(&self) -> bool {
        self.load_goes_on()
    }

    /// For a fault that lasts (a partition), sets how long in `knobs`, as
    /// a schedule's `for 3s` asks, and says so; `false` for a fault that
    /// has no length.
    fn set_length(&self, _knobs: &mut FaultsSection, _length: std::time::Duration) -> bool {
        false
    }

    /// Whether the fault loses a host for good, so that a replicated
    /// deployment fails over to its replica and has none left for a later
    /// fault of a schedule to cut off or fail over to.
    fn loses_host(&self) -> bool {
        false
    }

    /// A simpler fault that may still show what this one shows, tried when
    /// a failing schedule is shrunk (a host kill for a host loss, a process
    /// kill for a host kill); `None` when there is none.
    fn simpler(&self) -> Option<Fault> {
        None
    }

    /// Installs what must be active during the load. Called after the
    /// workload's setup has been made durable.
    fn arm(&self, _cx: &mut Cx<'_>) -> Result<(), FaultError> {
        Ok(())
    }

    /// Does the damage. When this returns, the server is down (or, for the
    /// faults that act during the load, has met its fault).
    fn inject<'a>(&'a self, cx: &'a mut Cx<'_>) -> BoxFuture<'a, Result<(), FaultError>>;

    /// Whether the fault did what it names, and what it did (or why not),
    /// after `inject` and the end of the load.
    fn fired<'a>(&'a self, cx: &'a mut Cx<'_>) -> BoxFuture<'a, Fired>;

    /// What to add to the cycle's detail beside the checker's findings,
    /// given what fired (e.g. what the server said of a disk fault).
    fn detail(&self, _fired: &Fired) -> Option<String> {
        None
    }

    /// Brings the service back as an operator would after this fault.
    fn recover<'a>(&'a self, cx: &'a mut Cx<'_>) -> BoxFuture<'a, Result<Recovered, FaultError>>;

    /// After the live recovery has been verified: checks the crash states
    /// the fault captured, each on fresh storage in a fresh container,
    /// against `oracle` (see [`crate::explore`]). `None` for faults that
    /// capture none, which is all but `crash-states`: they pay nothing.
    fn explore<'a>(
        &'a self,
        _cx: &'a mut Cx<'_>,
        _oracle: &'a crate::explore::Oracle<'a>,
    ) -> BoxFuture<'a, Option<crashlab_reports::Exploration>> {
        Box::pin(async { None })
    }
}

/// Whether a fault's damage needs a disk under the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disk {
    NotNeeded,
    /// The fault filesystem where it can sit, `n/a` elsewhere; `on_memory`:
    /// the fault also runs, without it, on memory (a host kill on tmpfs);
    /// `on_clusters`: it acts on every member of a cluster strategy's
    /// fault filesystems at once (a coordinated power cut), and runs there.
    Needed {
        on_memory: bool,
        on_clusters: bool,
    },
}

/// For the faults whose damage needs a disk under the data (power loss and
/// disk faults): the fault filesystem where it can sit, `n/a` elsewhere.
/// `in_memory`: the fault also runs, without it, on memory.
fn needs_a_disk(strategy: &StrategyDef, in_memory: bool, on_clusters: bool) -> Option<&'static str> {
    if strategy.data_on.members().is_some() && !on_clusters {
        return Some(
            "on a cluster strategy the fault filesystem sits under every member, and only `host-kill` (a \
             coordinated power cut of every member at once) acts on all of them; this fault on one member's disk is \
             not written yet",
        );
    }
    match strategy.under {
        UnderData::FaultFs => None,
        UnderData::Memory(_) if in_memory => None,
        UnderData::Memory(why) | UnderData::Unreachable(why) => Some(why),
    }
}

impl Fault {
    pub const ALL: [Fault; 12] = [
        Fault::ProcessKill,
        Fault::Restart,
        Fault::Recreate,
        Fault::HostKill,
        Fault::TornWrite,
        Fault::DiskFull,
        Fault::IoError,
        Fault::HostLoss,
        Fault::CrashStates,
        Fault::Partition,
        Fault::PartitionFailover,
        Fault::StorageNodeLoss,
    ];

    /// The implementation of this fault.
    pub fn behaviour(self) -> &'static dyn Behaviour {
        match self {
            Fault::ProcessKill => &container::ProcessKill,
            Fault::Restart => &container::Restart,
            Fault::Recreate => &container::Recreate,
            Fault::HostKill => &power::HostKill,
            Fault::TornWrite => &power::TornWrite,
            Fault::DiskFull => &disk::DiskFull,
            Fault::IoError => &disk::IoError,
            Fault::HostLoss => &host_loss::HostLoss,
            Fault::CrashStates => &crash_states::CrashStates,
            Fault::Partition => &partition::Partition,
            Fault::PartitionFailover => &partition::PartitionFailover,
            Fault::StorageNodeLoss => &storage_node::StorageNodeLoss,
        }
    }

    /// The fault a scenario names `name`.
    pub fn named(name: &str) -> Option<Fault> {
        Fault::ALL.into_iter().find(|f| f.as_str() == name)
    }

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
            Fault::CrashStates => "crash-states",
            Fault::Partition => "partition",
            Fault::PartitionFailover => "partition-failover",
            Fault::StorageNodeLoss => "storage-node-loss",
        }
    }

    /// Whether this fault, on `strategy`, needs the data on the fault
    /// filesystem.
    pub fn needs_faultfs(self, strategy: Strategy) -> bool {
        self.behaviour().needs_faultfs(strategy.def())
    }

    /// Whether this fault reads the unsynced history (see
    /// [`Behaviour::records_history`]).
    pub fn records_history(self) -> bool {
        self.behaviour().records_history()
    }

    /// Why `strategy` cannot take this fault, when it cannot.
    pub fn unsupported_on(self, strategy: Strategy) -> Option<&'static str> {
        let crashlabs = strategy.driver_volume().is_some_and(|v| v.driver == CRASHLAB_DRIVER);
        if crashlabs && self.behaviour().through_crashlabs_driver() {
            return None;
        }
        self.behaviour().unsupported_on(strategy.def())
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A fired fault, described.
fn fired(what: impl Into<String>) -> Fired {
    Fired { fired: true, what: what.into() }
}

/// A fault that did not fire, and why.
fn not_fired(why: impl Into<String>) -> Fired {
    Fired { fired: false, what: why.into() }
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
        // A cluster takes the faults that strike every member at once,
        // host-loss and a partition of one member; a disk fault of one
        // member's filesystem is n/a, and so is a failover after a cut.
        for f in [Fault::ProcessKill, Fault::HostKill, Fault::HostLoss, Fault::Partition] {
            assert!(f.unsupported_on(Strategy::Cluster3).is_none(), "{f}");
        }
        assert!(Fault::HostKill.needs_faultfs(Strategy::Cluster3));
        for f in [Fault::TornWrite, Fault::DiskFull, Fault::IoError, Fault::CrashStates, Fault::PartitionFailover] {
            assert!(f.unsupported_on(Strategy::Cluster3).is_some(), "{f}");
            assert!(!f.needs_faultfs(Strategy::Cluster3), "{f}");
        }
        assert!(!Fault::HostKill.needs_faultfs(Strategy::Tmpfs));
        assert!(Fault::TornWrite.unsupported_on(Strategy::Tmpfs).is_some());
        assert!(Fault::DiskFull.unsupported_on(Strategy::ContainerLayer).is_some());
        assert!(Fault::IoError.unsupported_on(Strategy::AnonymousVolume).is_some());
        assert!(Fault::HostKill.unsupported_on(Strategy::BackupHot).is_some());
        for f in [Fault::Partition, Fault::PartitionFailover] {
            assert!(f.unsupported_on(Strategy::NamedVolume).is_some());
            assert!(f.unsupported_on(Strategy::ReplicaAsync).is_none());
            assert!(f.unsupported_on(Strategy::ReplicaSemisync).is_none());
        }
        assert!(Fault::StorageNodeLoss.unsupported_on(Strategy::GlusterfsReplica).is_none());
        assert!(Fault::StorageNodeLoss.unsupported_on(Strategy::NamedVolume).is_some());
        assert!(Fault::StorageNodeLoss.unsupported_on(Strategy::ReplicaSemisync).is_some());
        for s in [Strategy::BindMount, Strategy::NamedVolume] {
            for f in [Fault::HostKill, Fault::TornWrite, Fault::DiskFull, Fault::IoError] {
                assert!(f.needs_faultfs(s) && f.unsupported_on(s).is_none(), "{s}/{f}");
            }
        }
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
