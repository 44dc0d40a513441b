//! Replication between two servers of one workload, each on its own host:
//! what a replicated strategy asks of the workload. The harness places
//! the servers and owns the network between them; the workload knows its
//! engine's words for "follow that primary", "how far behind are you",
//! "did synchronous replication hold" and "you are the primary now".
//!
//! A lag is counted in transactions, not seconds: what the replica has
//! not yet *received* is what a lost primary takes with it, and what it
//! has received but not yet *applied* is what a promotion must wait for.

use crate::WorkloadError;
use futures_util::future::BoxFuture;
use std::net::SocketAddr;

/// When the primary acknowledges a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Once it is durable on the primary; the replica follows when it can.
    Async,
    /// Only once a replica has it too (MariaDB semi-sync with
    /// `AFTER_SYNC`, PostgreSQL `synchronous_standby_names`).
    Sync,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Async => "async",
            Mode::Sync => "sync",
        }
    }
}

/// A server's part in the pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Primary,
    Replica,
}

/// Transactions the replica is behind its primary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lag {
    /// Committed on the primary, not yet received by the replica: lost
    /// with the primary's host.
    pub unreceived: u64,
    /// Committed on the primary, not yet applied on the replica (includes
    /// the unreceived ones).
    pub unapplied: u64,
}

/// What synchronous replication did, as the primary counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncState {
    /// Synchronous replication is in force right now (it has not fallen
    /// back to asynchronous).
    pub on: bool,
    /// Commits a replica acknowledged before the client was answered;
    /// `None` where the engine keeps no such counter (PostgreSQL).
    pub acknowledged: Option<u64>,
    /// Commits answered without a replica's acknowledgement (after a
    /// timeout, or while it was off): each one could be lost. `None` where
    /// the engine keeps no such counter.
    pub unacknowledged: Option<u64>,
}

impl SyncState {
    /// Whether it fell back to asynchronous at any time.
    pub fn fell_back(&self) -> bool {
        !self.on || self.unacknowledged.is_some_and(|n| n > 0)
    }
}

/// How a replica's data directory is made from the primary's, when the
/// engine cannot start empty and fetch everything itself (PostgreSQL's
/// `pg_basebackup`): `command` runs in the primary's container, then the
/// directory `copy` there is extracted into directory `into` of the
/// replica's new container, before it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seed {
    pub command: Vec<String>,
    pub copy: String,
    pub into: String,
}

/// A workload's replication, driven over its own protocol.
pub trait Replication: Send + Sync {
    /// What a [`Lag`] counts (`transactions`, `WAL bytes`).
    fn lag_unit(&self) -> &'static str {
        "transactions"
    }

    /// How to seed the replica named `replica_host` from the primary at
    /// `primary_host:primary_port`; `None`: it starts empty and follows.
    fn seed(&self, _primary_host: &str, _primary_port: u16, _replica_host: &str) -> Option<Seed> {
        None
    }

    /// Server flags for a server in `role` (on top of the scenario's
    /// `server-args`); `server_id` is unique within the pair.
    fn server_args(&self, role: Role, mode: Mode, server_id: u32) -> Vec<String>;

    /// Makes the server at `replica` follow the primary reachable at
    /// `primary_host:primary_port` on the hosts' network, and returns once
    /// it streams (and, in `Sync` mode, once the primary at `primary`
    /// counts it as a synchronous replica).
    fn start_replica(
        &self,
        primary: SocketAddr,
        replica: SocketAddr,
        primary_host: String,
        primary_port: u16,
        mode: Mode,
    ) -> BoxFuture<'_, Result<(), WorkloadError>>;

    /// How far the replica is behind, now.
    fn lag(&self, primary: SocketAddr, replica: SocketAddr) -> BoxFuture<'_, Result<Lag, WorkloadError>>;

    /// The primary's synchronous replication state; `None` when it runs
    /// none.
    fn sync_state(&self, primary: SocketAddr) -> BoxFuture<'_, Result<Option<SyncState>, WorkloadError>>;

    /// Makes the replica the primary, as a failover does: lets it apply
    /// everything it received, stops replication and accepts writes.
    fn promote(&self, replica: SocketAddr) -> BoxFuture<'_, Result<(), WorkloadError>>;

    /// One acknowledged write outside the dataset, on a new connection:
    /// the first write a client gets through after a failover.
    fn write_probe(&self, addr: SocketAddr) -> BoxFuture<'_, Result<(), WorkloadError>>;
}
