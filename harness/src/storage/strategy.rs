//! The strategies, each one value: what it mounts at the data directory,
//! whether the fault filesystem can sit under it, and how it backs up.
//! [`TABLE`] is the one place a strategy is described; everything else
//! (provisioning, mounts, which faults can run, the backup loop, the
//! report's words) reads it.

use crate::storage::driver::{self, DriverVolume};
use crashlab_reports::Family;
pub use crashlab_workloads::replication::Mode as Replication;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A strategy's identity, as scenarios and reports name it. Its behaviour
/// is its [`StrategyDef`]: a built-in one's row in [`TABLE`], or for a
/// volume of any driver [`VOLUME_DEF`] with the driver and options it
/// carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Strategy {
    ContainerLayer,
    AnonymousVolume,
    NamedVolume,
    BindMount,
    Tmpfs,
    BackupHot,
    BackupQuiesced,
    BackupStopped,
    BtrfsSnapshot,
    SyncAgent,
    BackupRestic,
    BackupMariabackup,
    BackupPgbackrest,
    WalStream,
    WalStreamSync,
    BinlogStream,
    CommitImage,
    ReplicaAsync,
    ReplicaSemisync,
    StreamingAsync,
    StreamingSync,
    GlusterfsReplica,
    Cluster3,
    /// A volume of any Docker volume driver with its options
    /// (`volume:DRIVER[,KEY=VALUE...]`, see [`crate::storage::driver`]).
    Volume(&'static DriverVolume),
}

/// What is mounted at the workload's data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataOn {
    /// Nothing: the data lives in the container's copy-on-write writable
    /// layer, which belongs to Docker's storage driver.
    WritableLayer,
    /// A volume Docker creates with each container, in its own directory.
    AnonymousVolume,
    /// A labelled local named volume the harness creates and reattaches.
    NamedVolume,
    /// A host directory under the run's state directory.
    HostDir,
    /// Memory, mounted at every container start.
    Tmpfs,
    /// A named volume bound to a subvolume of a loop-mounted btrfs pool the
    /// harness owns.
    BtrfsSubvolume,
    /// A named volume on the primary's host, replicated to a replica on
    /// another host with its own named volume ([`crate::deploy::hosts`]).
    Replicated(Replication),
    /// A replicated GlusterFS volume on three storage hosts, mounted on the
    /// harness's host with the FUSE client and bound into the container
    /// ([`crate::storage::gluster`]): shared storage, which a container on
    /// another host can start on.
    Gluster,
    /// A volume of a Docker volume driver, created with the strategy's
    /// options (on a loop device crashlab makes, for `device=loop`).
    DriverVolume,
    /// The engine's own cluster of this many members, each on its own
    /// host with its own named volume, on the fault filesystem when a
    /// fault needs it ([`crate::deploy::hosts::peers`]).
    Cluster(u8),
}

impl DataOn {
    /// How the data outlives its host when nothing else copies it: the
    /// report's [`Family`] of a strategy without backups. A new kind of
    /// place declares its family here (a volume several hosts mount is
    /// [`Family::Shared`]); the match has no catch-all so that the
    /// compiler asks.
    pub fn family(self) -> Family {
        match self {
            DataOn::WritableLayer
            | DataOn::AnonymousVolume
            | DataOn::NamedVolume
            | DataOn::HostDir
            | DataOn::Tmpfs
            | DataOn::BtrfsSubvolume
            // Whatever the driver's scope (the report gives it), crashlab
            // mounts the volume on one host.
            | DataOn::DriverVolume => Family::SingleHost,
            DataOn::Replicated(_) | DataOn::Cluster(_) => Family::Replicated,
            DataOn::Gluster => Family::Shared,
        }
    }

    /// How the data is replicated to another host, when it is.
    pub fn replication(self) -> Option<Replication> {
        match self {
            DataOn::Replicated(mode) => Some(mode),
            _ => None,
        }
    }

    /// The members of the engine's own cluster, when the data lives on one.
    pub fn members(self) -> Option<u8> {
        match self {
            DataOn::Cluster(n) => Some(n),
            _ => None,
        }
    }
}

/// Which backup method a strategy takes during the load. Storage only
/// names it; the backup module registers one implementation per kind
/// (its `method` function, a match the compiler checks), so storage
/// never depends on how a backup is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupKind {
    /// tar of the live data directory while the engine writes.
    Hot,
    /// tar while the engine is held still.
    Quiesced,
    /// tar while the container is stopped.
    Stopped,
    /// A read-only snapshot of the btrfs subvolume under the volume.
    BtrfsSnapshot,
    /// A sidecar archives and uploads the directory every interval.
    SyncAgent,
    /// A restic sidecar backs the volume up into a repository.
    Restic,
    /// The container committed to an image, saved as an archive.
    CommitImage,
    /// MariaDB's own hot physical backups, full then incremental, from a
    /// sidecar.
    Mariabackup,
    /// pgBackRest's backups and WAL archive, from the server's own
    /// container.
    Pgbackrest,
    /// pgBackRest's, with the WAL streamed besides by `pg_receivewal` to
    /// the backup host; `sync` when the server names the stream in
    /// `synchronous_standby_names`.
    WalStream { sync: bool },
    /// mariadb-backup's backups, with the binary log streamed besides by
    /// `mariadb-binlog --read-from-remote-server --raw --stop-never` to
    /// the backup host.
    BinlogStream,
}

impl BackupKind {
    /// The one workload a method's tool backs up, and why no other, when
    /// the tool is an engine's own; `None` when it copies any engine's
    /// files.
    pub fn only_for(self) -> Option<(&'static str, &'static str)> {
        match self {
            BackupKind::Mariabackup => {
                Some(("mariadb", "mariadb-backup is MariaDB's own backup tool; it backs up no other engine"))
            }
            BackupKind::Pgbackrest => {
                Some(("postgres", "pgBackRest is PostgreSQL's backup tool; it backs up no other engine"))
            }
            BackupKind::WalStream { .. } => {
                Some(("postgres", "pg_receivewal streams PostgreSQL's WAL; it streams no other engine's log"))
            }
            BackupKind::BinlogStream => Some((
                "mariadb",
                "mariadb-backup and mariadb-binlog are MariaDB's own tools; they back up and stream no other engine",
            )),
            BackupKind::Hot
            | BackupKind::Quiesced
            | BackupKind::Stopped
            | BackupKind::BtrfsSnapshot
            | BackupKind::SyncAgent
            | BackupKind::Restic
            | BackupKind::CommitImage => None,
        }
    }

    /// The one fault a method's cells run under, and why no other, when
    /// it has one; `None` when any fault the strategy's storage takes.
    pub fn only_under(self) -> Option<(&'static str, &'static str)> {
        match self {
            BackupKind::WalStream { sync: true } => Some((
                "host-loss",
                "the stream is named in synchronous_standby_names by ALTER SYSTEM, which stays in the cluster: after \
                 any other fault the server would hold the next cycle's commits for a stream that is gone (a \
                 host-loss restore drops the setting)",
            )),
            BackupKind::Hot
            | BackupKind::Quiesced
            | BackupKind::Stopped
            | BackupKind::BtrfsSnapshot
            | BackupKind::SyncAgent
            | BackupKind::Restic
            | BackupKind::CommitImage
            | BackupKind::Mariabackup
            | BackupKind::Pgbackrest
            | BackupKind::WalStream { sync: false }
            | BackupKind::BinlogStream => None,
        }
    }

    /// Whether the method restores to a point in time (`[backup]
    /// restore-to`): it keeps a log of every commit to replay up to one,
    /// beside its backups. A copy of files has no such log: it restores
    /// what it copied, no earlier and no later.
    pub fn restores_to_a_point(self) -> bool {
        match self {
            // The stream's restore is pgBackRest's, with more WAL.
            BackupKind::Pgbackrest | BackupKind::WalStream { .. } => true,
            // The streamed binary log replays up to a point.
            BackupKind::BinlogStream => true,
            BackupKind::Hot
            | BackupKind::Quiesced
            | BackupKind::Stopped
            | BackupKind::BtrfsSnapshot
            | BackupKind::SyncAgent
            | BackupKind::Restic
            | BackupKind::CommitImage
            | BackupKind::Mariabackup => false,
        }
    }

    /// The image of the sidecar the method runs beside the workload, when
    /// it runs one: it must be there (built if missing) before a cell
    /// starts.
    pub fn sidecar_image(self) -> Option<&'static str> {
        match self {
            // The sync agent's sidecar runs the agent's image.
            BackupKind::SyncAgent => Some(crashlab_workloads::agent::IMAGE),
            BackupKind::Restic => Some(crashlab_workloads::restic::IMAGE),
            BackupKind::Mariabackup => Some(crashlab_workloads::mariabackup::IMAGE),
            // mariadb-backup's sidecar; mariadb-binlog comes with the
            // server's image, which the stream's sidecar runs.
            BackupKind::BinlogStream => Some(crashlab_workloads::mariabackup::IMAGE),
            // pgBackRest runs in the server's container (PostgreSQL calls
            // it to archive each WAL segment): crashlab's PostgreSQL image
            // carries it.
            BackupKind::Pgbackrest => None,
            // pg_receivewal comes with the server's image, which its
            // sidecar runs.
            BackupKind::WalStream { .. } => None,
            BackupKind::Hot
            | BackupKind::Quiesced
            | BackupKind::Stopped
            | BackupKind::BtrfsSnapshot
            | BackupKind::CommitImage => None,
        }
    }
}

/// Whether the fault filesystem can sit under a strategy's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnderData {
    /// It can: power loss and disk faults run on it.
    FaultFs,
    /// There is no disk: a host kill empties memory (run without the fault
    /// filesystem); tearing, filling or failing a disk has no meaning.
    Memory(&'static str),
    /// It cannot, for the reason given (shown for `n/a` cells).
    Unreachable(&'static str),
}

/// Everything the harness knows of a strategy.
#[derive(Debug, Clone, Copy)]
pub struct StrategyDef {
    pub strategy: Strategy,
    /// The name in scenarios and reports.
    pub name: &'static str,
    pub data_on: DataOn,
    pub under: UnderData,
    /// How it takes backups during the load; `None` for a plain place.
    pub backup: Option<BackupKind>,
    /// What the data directory is, in the words of the docs.
    pub describes: &'static str,
}

const NO_FAULTFS_ON_BACKUPS: &str = "backup strategies keep their live data on a plain named volume, not on the \
     fault filesystem; run power loss and disk faults on `named-volume`, and `host-loss` to test the backups";

const NO_FAULTFS_ON_REPLICAS: &str = "replicated strategies keep each host's data on a plain named volume, not on \
     the fault filesystem; run power loss and disk faults on `named-volume`, and `host-loss` to fail over";

/// The strategies, in the order reports list them.
pub const TABLE: [StrategyDef; 23] = [
    StrategyDef {
        strategy: Strategy::ContainerLayer,
        name: "container-layer",
        data_on: DataOn::WritableLayer,
        under: UnderData::Unreachable(
            "the writable layer belongs to Docker's storage driver; crashlab cannot put its fault filesystem \
             under it, so power loss and disk faults cannot be simulated there",
        ),
        backup: None,
        describes: "the container's copy-on-write writable layer",
    },
    StrategyDef {
        strategy: Strategy::AnonymousVolume,
        name: "anonymous-volume",
        data_on: DataOn::AnonymousVolume,
        under: UnderData::Unreachable(
            "Docker creates an anonymous volume with the container, in its own directory; crashlab cannot put \
             its fault filesystem under it, so power loss and disk faults cannot be simulated there",
        ),
        backup: None,
        describes: "a volume created for this container only",
    },
    StrategyDef {
        strategy: Strategy::NamedVolume,
        name: "named-volume",
        data_on: DataOn::NamedVolume,
        under: UnderData::FaultFs,
        backup: None,
        describes: "a volume the harness creates and reattaches",
    },
    StrategyDef {
        strategy: Strategy::BindMount,
        name: "bind-mount",
        data_on: DataOn::HostDir,
        under: UnderData::FaultFs,
        backup: None,
        describes: "a host directory under the run's state directory",
    },
    StrategyDef {
        strategy: Strategy::Tmpfs,
        name: "tmpfs",
        data_on: DataOn::Tmpfs,
        under: UnderData::Memory(
            "tmpfs is memory: there is no disk to tear, fill or fail (a host kill, which empties memory, is \
             run as `host-kill`)",
        ),
        backup: None,
        describes: "memory, mounted per container start",
    },
    StrategyDef {
        strategy: Strategy::BackupHot,
        name: "backup-hot",
        data_on: DataOn::NamedVolume,
        under: UnderData::Unreachable(NO_FAULTFS_ON_BACKUPS),
        backup: Some(BackupKind::Hot),
        describes: "a named volume, copied with tar while the engine writes",
    },
    StrategyDef {
        strategy: Strategy::BackupQuiesced,
        name: "backup-quiesced",
        data_on: DataOn::NamedVolume,
        under: UnderData::Unreachable(NO_FAULTFS_ON_BACKUPS),
        backup: Some(BackupKind::Quiesced),
        describes: "a named volume, copied with tar while the engine is held still",
    },
    StrategyDef {
        strategy: Strategy::BackupStopped,
        name: "backup-stopped",
        data_on: DataOn::NamedVolume,
        under: UnderData::Unreachable(NO_FAULTFS_ON_BACKUPS),
        backup: Some(BackupKind::Stopped),
        describes: "a named volume, copied with tar while the container is stopped",
    },
    StrategyDef {
        strategy: Strategy::BtrfsSnapshot,
        name: "btrfs-snapshot",
        data_on: DataOn::BtrfsSubvolume,
        under: UnderData::Unreachable(NO_FAULTFS_ON_BACKUPS),
        backup: Some(BackupKind::BtrfsSnapshot),
        describes: "a named volume on a btrfs subvolume, with read-only snapshots",
    },
    StrategyDef {
        strategy: Strategy::SyncAgent,
        name: "sync-agent",
        data_on: DataOn::NamedVolume,
        under: UnderData::Unreachable(NO_FAULTFS_ON_BACKUPS),
        backup: Some(BackupKind::SyncAgent),
        describes: "a named volume that a sidecar archives and uploads to an object store",
    },
    StrategyDef {
        strategy: Strategy::BackupRestic,
        name: "backup-restic",
        data_on: DataOn::NamedVolume,
        under: UnderData::Unreachable(NO_FAULTFS_ON_BACKUPS),
        backup: Some(BackupKind::Restic),
        describes: "a named volume that a restic sidecar backs up, incrementally, into a repository",
    },
    StrategyDef {
        strategy: Strategy::BackupMariabackup,
        name: "backup-mariabackup",
        data_on: DataOn::NamedVolume,
        under: UnderData::Unreachable(NO_FAULTFS_ON_BACKUPS),
        backup: Some(BackupKind::Mariabackup),
        describes: "a named volume that a mariadb-backup sidecar backs up hot, full then incremental",
    },
    StrategyDef {
        strategy: Strategy::BackupPgbackrest,
        name: "backup-pgbackrest",
        data_on: DataOn::NamedVolume,
        under: UnderData::Unreachable(NO_FAULTFS_ON_BACKUPS),
        backup: Some(BackupKind::Pgbackrest),
        describes: "a named volume that pgBackRest backs up, full then incremental, with every WAL segment archived",
    },
    StrategyDef {
        strategy: Strategy::WalStream,
        name: "wal-stream",
        data_on: DataOn::NamedVolume,
        under: UnderData::Unreachable(NO_FAULTFS_ON_BACKUPS),
        backup: Some(BackupKind::WalStream { sync: false }),
        describes: "backup-pgbackrest, with the WAL also streamed by pg_receivewal to the backup host",
    },
    StrategyDef {
        strategy: Strategy::WalStreamSync,
        name: "wal-stream-sync",
        data_on: DataOn::NamedVolume,
        under: UnderData::Unreachable(NO_FAULTFS_ON_BACKUPS),
        backup: Some(BackupKind::WalStream { sync: true }),
        describes: "wal-stream, with the stream a synchronous standby: a commit is acknowledged once streamed",
    },
    StrategyDef {
        strategy: Strategy::BinlogStream,
        name: "binlog-stream",
        data_on: DataOn::NamedVolume,
        under: UnderData::Unreachable(NO_FAULTFS_ON_BACKUPS),
        backup: Some(BackupKind::BinlogStream),
        describes: "backup-mariabackup, with the binary log also streamed by mariadb-binlog to the backup host",
    },
    StrategyDef {
        strategy: Strategy::CommitImage,
        name: "commit-image",
        data_on: DataOn::WritableLayer,
        under: UnderData::Unreachable(
            "the writable layer belongs to Docker's storage driver; crashlab cannot put its fault filesystem \
             under it; run `host-loss` to test the committed images",
        ),
        backup: Some(BackupKind::CommitImage),
        describes: "the container's writable layer, committed to an image and saved as an archive",
    },
    StrategyDef {
        strategy: Strategy::ReplicaAsync,
        name: "replica-async",
        data_on: DataOn::Replicated(Replication::Async),
        under: UnderData::Unreachable(NO_FAULTFS_ON_REPLICAS),
        backup: None,
        describes: "a named volume on the primary's host, replicated asynchronously to a replica on another host",
    },
    StrategyDef {
        strategy: Strategy::ReplicaSemisync,
        name: "replica-semisync",
        data_on: DataOn::Replicated(Replication::Sync),
        under: UnderData::Unreachable(NO_FAULTFS_ON_REPLICAS),
        backup: None,
        describes: "a named volume on the primary's host; a commit is acknowledged once a replica on another host has it",
    },
    // PostgreSQL's names for the same two topologies: the workload's own
    // replication decides what runs.
    StrategyDef {
        strategy: Strategy::StreamingAsync,
        name: "streaming-async",
        data_on: DataOn::Replicated(Replication::Async),
        under: UnderData::Unreachable(NO_FAULTFS_ON_REPLICAS),
        backup: None,
        describes: "a named volume on the primary's host, streamed asynchronously to a standby on another host",
    },
    StrategyDef {
        strategy: Strategy::StreamingSync,
        name: "streaming-sync",
        data_on: DataOn::Replicated(Replication::Sync),
        under: UnderData::Unreachable(NO_FAULTFS_ON_REPLICAS),
        backup: None,
        describes: "a named volume on the primary's host; a commit waits for a synchronous standby on another host",
    },
    StrategyDef {
        strategy: Strategy::GlusterfsReplica,
        name: "glusterfs-replica",
        data_on: DataOn::Gluster,
        under: UnderData::Unreachable(
            "the data lives on three storage hosts' bricks behind GlusterFS's FUSE client, not on the fault \
             filesystem; run `host-loss` and `storage-node-loss` on it",
        ),
        backup: None,
        describes: "a replicated GlusterFS volume on three storage hosts, shared by the hosts that mount it",
    },
    StrategyDef {
        strategy: Strategy::Cluster3,
        name: "cluster-3",
        data_on: DataOn::Cluster(3),
        // Under every member's volume; only the faults that act on every
        // host at once run on it (see `Disk::Needed`'s `on_clusters`).
        under: UnderData::FaultFs,
        backup: None,
        describes: "the engine's own cluster of three members, each on its own host and named volume, replicating \
                    natively (a NATS cluster with a stream of three replicas)",
    },
];

impl StrategyDef {
    /// The images of what the strategy runs beside the workload (a backup
    /// sidecar, storage hosts), which must be there before a cell starts.
    pub fn sidecar_images(&self) -> Vec<&'static str> {
        let storage_hosts = match self.data_on {
            // Its storage hosts run the GlusterFS server's image.
            DataOn::Gluster => Some(crashlab_workloads::glusterfs::IMAGE),
            DataOn::WritableLayer
            | DataOn::AnonymousVolume
            | DataOn::NamedVolume
            | DataOn::HostDir
            | DataOn::Tmpfs
            | DataOn::BtrfsSubvolume
            | DataOn::Replicated(_)
            | DataOn::Cluster(_)
            | DataOn::DriverVolume => None,
        };
        self.backup.and_then(BackupKind::sidecar_image).into_iter().chain(storage_hosts).collect()
    }

    /// How the strategy protects the data against the loss of its host,
    /// for the report: taking backups makes it [`Family::Backup`],
    /// whatever the live data sits on; otherwise its place decides
    /// ([`DataOn::family`]).
    pub fn family(&self) -> Family {
        if self.backup.is_some() { Family::Backup } else { self.data_on.family() }
    }
}

/// What every volume of a driver is; the driver and its options are the
/// strategy's own ([`Strategy::Volume`]).
pub static VOLUME_DEF: StrategyDef = StrategyDef {
    strategy: Strategy::Volume(&ANY_DRIVER),
    name: "volume",
    data_on: DataOn::DriverVolume,
    under: UnderData::Unreachable(
        "a volume driver keeps the data where it chooses; crashlab cannot put its fault filesystem under it, so \
         power loss and disk faults cannot be simulated there",
    ),
    backup: None,
    describes: "a volume of a Docker volume driver, created with the strategy's options",
};

/// The driver volume [`VOLUME_DEF`] stands for: any.
static ANY_DRIVER: DriverVolume = DriverVolume { name: String::new(), driver: String::new(), options: Vec::new() };

/// The names a scenario may give, for errors: the built-in ones and the
/// form of a driver volume.
const NAMES: [&str; TABLE.len() + 1] = {
    let mut names = ["volume:DRIVER[,KEY=VALUE...]"; TABLE.len() + 1];
    let mut i = 0;
    while i < TABLE.len() {
        names[i] = TABLE[i].name;
        i += 1;
    }
    names
};

impl Strategy {
    /// Every built-in strategy, in [`TABLE`] order.
    pub const ALL: [Strategy; TABLE.len()] = {
        let mut all = [Strategy::ContainerLayer; TABLE.len()];
        let mut i = 0;
        while i < TABLE.len() {
            all[i] = TABLE[i].strategy;
            i += 1;
        }
        all
    };

    /// This strategy's description.
    pub fn def(self) -> &'static StrategyDef {
        match self {
            Strategy::Volume(_) => &VOLUME_DEF,
            builtin => TABLE.iter().find(|d| d.strategy == builtin).expect("TABLE lists every built-in strategy"),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Volume(volume) => &volume.name,
            builtin => builtin.def().name,
        }
    }

    /// The driver volume, when the strategy is one.
    pub fn driver_volume(self) -> Option<&'static DriverVolume> {
        match self {
            Strategy::Volume(volume) => Some(volume),
            _ => None,
        }
    }

    /// The strategy's part of Docker object and file names: its name, or
    /// for a driver volume `volume-DRIVER`.
    pub fn object_part(self) -> String {
        match self {
            Strategy::Volume(volume) => volume.object_part(),
            builtin => builtin.as_str().to_owned(),
        }
    }

    /// Whether the strategy takes backups during the load.
    pub fn is_backup(self) -> bool {
        self.def().backup.is_some()
    }

    /// Looks a strategy up by its name: a built-in one, `volume:DRIVER[,KEY=VALUE...]`,
    /// or a `[[strategy]]` table of the scenario being read
    /// ([`driver::with_tables`]).
    pub fn from_name(name: &str) -> Option<Strategy> {
        Strategy::parse(name).ok().flatten()
    }

    /// [`Strategy::from_name`], with the error of a bad `volume:` text;
    /// `Ok(None)` for a name that is nothing known.
    pub fn parse(name: &str) -> Result<Option<Strategy>, String> {
        if let Some(def) = TABLE.iter().find(|d| d.name == name) {
            return Ok(Some(def.strategy));
        }
        if name.starts_with(driver::PREFIX) {
            return DriverVolume::parse(name).map(|v| Some(Strategy::Volume(v.intern())));
        }
        Ok(driver::table(name).map(Strategy::Volume))
    }
}

impl Serialize for Strategy {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Strategy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        match Strategy::parse(&name) {
            Ok(Some(strategy)) => Ok(strategy),
            Ok(None) => Err(serde::de::Error::unknown_variant(&name, &NAMES)),
            Err(e) => Err(serde::de::Error::custom(e)),
        }
    }
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_lists_every_variant_in_order_under_its_serde_name() {
        for (i, def) in TABLE.iter().enumerate() {
            assert_eq!(Strategy::ALL[i], def.strategy, "{}", def.name);
            assert_eq!(serde_json::to_string(&def.strategy).unwrap(), format!("\"{}\"", def.name));
            assert_eq!(Strategy::from_name(def.name), Some(def.strategy));
        }
    }

    #[test]
    fn backups_keep_live_data_on_a_volume_except_the_image_commit() {
        for def in TABLE.iter().filter(|d| d.backup.is_some()) {
            let on_volume = matches!(def.data_on, DataOn::NamedVolume | DataOn::BtrfsSubvolume);
            // Committing a container keeps its writable layer, nothing mounted.
            let on_layer = def.backup == Some(BackupKind::CommitImage) && def.data_on == DataOn::WritableLayer;
            assert!(on_volume || on_layer, "{}", def.name);
        }
    }

    #[test]
    fn each_strategy_has_the_family_its_definition_implies() {
        let family = |s: Strategy| s.def().family();
        for s in [Strategy::ContainerLayer, Strategy::NamedVolume, Strategy::BindMount, Strategy::Tmpfs] {
            assert_eq!(family(s), Family::SingleHost, "{s}");
        }
        // Backups decide over the place: commit-image's data is in the
        // writable layer, btrfs-snapshot's on a subvolume.
        for s in [Strategy::BackupHot, Strategy::BtrfsSnapshot, Strategy::BackupRestic, Strategy::CommitImage] {
            assert_eq!(family(s), Family::Backup, "{s}");
        }
        for def in &TABLE {
            let replicated = def.data_on.replication().is_some() || def.data_on.members().is_some();
            assert_eq!(def.family() == Family::Replicated, replicated, "{}", def.name);
        }
    }

    #[test]
    fn a_driver_volume_is_a_strategy_by_its_text() {
        let s = Strategy::from_name("volume:local,type=tmpfs,device=tmpfs").unwrap();
        assert_eq!(s.as_str(), "volume:local,type=tmpfs,device=tmpfs");
        assert_eq!(s.def().data_on, DataOn::DriverVolume);
        assert_eq!(s.object_part(), "volume-local");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"volume:local,type=tmpfs,device=tmpfs\"");
        assert_eq!(serde_json::from_str::<Strategy>("\"volume:local,type=tmpfs,device=tmpfs\"").unwrap(), s);
        let e = serde_json::from_str::<Strategy>("\"nfs\"").unwrap_err().to_string();
        assert!(e.contains("unknown variant `nfs`") && e.contains("`volume:DRIVER[,KEY=VALUE...]`"), "{e}");
        let e = serde_json::from_str::<Strategy>("\"volume:\"").unwrap_err().to_string();
        assert!(e.contains("names no volume driver"), "{e}");
        assert_eq!(Strategy::from_name("named-volume"), Some(Strategy::NamedVolume));
    }

    #[test]
    fn replicated_strategies_name_their_mode() {
        assert_eq!(Strategy::ReplicaAsync.def().data_on.replication(), Some(Replication::Async));
        assert_eq!(Strategy::ReplicaSemisync.def().data_on.replication(), Some(Replication::Sync));
        assert!(TABLE.iter().filter(|d| d.data_on.replication().is_some()).all(|d| d.backup.is_none()));
    }
}
