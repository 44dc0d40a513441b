//! SQLite: the bank transfers on an embedded database, run inside the
//! container by `crashlab-agent` (see [`crate::agent`]), which opens
//! `/data/crashlab.db` with the scenario's journal mode and `synchronous`
//! level and acknowledges a transfer once its `COMMIT` returned. The
//! integrity check is `PRAGMA integrity_check`, run by the agent on
//! observe, alongside the ledger and balance invariants.
//!
//! `server-args` are the agent's flags: `--journal-mode=wal|delete|…`
//! (default `wal`) and `--synchronous=full|normal|off|extra` (default
//! `full`). Durable: `synchronous=full` in either journal mode (in WAL
//! mode `normal` is documented to lose the last commits on power loss but
//! never to corrupt). Unsafe: `synchronous=off`, which hands writes to the
//! kernel without waiting for them: a process kill keeps the page cache
//! and loses nothing, a power cut (`host-kill`) loses acknowledged commits.

use crate::agent;
use crate::{ContainerSpec, LoadConfig, LoadOutcome, Observation, Workload, WorkloadError};
use futures_util::future::BoxFuture;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::watch;

/// The SQLite workload.
#[derive(Debug, Clone)]
pub struct Sqlite {
    pub image: String,
    /// The agent's SQLite flags, such as `--synchronous=off`.
    pub server_args: Vec<String>,
}

impl Workload for Sqlite {
    fn name(&self) -> &str {
        "sqlite"
    }

    fn container(&self) -> ContainerSpec {
        agent::container(&self.image, "sqlite", &self.server_args)
    }

    fn agent_dir(&self) -> Option<&str> {
        Some(agent::BIN_DIR)
    }

    fn probe(&self, addr: SocketAddr) -> BoxFuture<'_, Result<(), WorkloadError>> {
        Box::pin(agent::probe(addr))
    }

    fn setup(&self, addr: SocketAddr, load: LoadConfig) -> BoxFuture<'_, Result<(), WorkloadError>> {
        Box::pin(agent::setup(addr, load))
    }

    fn load(
        &self,
        addr: SocketAddr,
        load: LoadConfig,
        stop: watch::Receiver<bool>,
        grace: Duration,
    ) -> BoxFuture<'_, Result<LoadOutcome, WorkloadError>> {
        Box::pin(agent::load(addr, load, stop, grace, |t| t))
    }

    fn observe(&self, addr: SocketAddr) -> BoxFuture<'_, Result<Observation, WorkloadError>> {
        Box::pin(agent::observe(addr))
    }
}
