//! The fsync-log probe: plain appends to one file, run inside the
//! container by `crashlab-agent` (see [`crate::agent`]). Each transfer
//! becomes one checksummed, sequence-numbered record; the agent fsyncs
//! every N records (`server-args = ["--fsync-every=N"]`, default 1; 0
//! never) and acknowledges a record once an fsync covering it returned.
//!
//! It fits the checker's model as a ledger that moves no money: the driver
//! sends every transfer with an amount of 0, so each record is a ledger
//! row, balances never change, a missing acknowledged record is a lost
//! write and a record never sent is `inconsistent`. The agent's integrity
//! check reads the log back: a torn record at the tail is what a crash
//! leaves and is dropped; a damaged record or a hole followed by valid
//! records, or a gap in the sequence numbers, fails the check (`corrupt`).
//!
//! Durable: `--fsync-every=1` (or any N ≥ 1: acknowledgements wait for the
//! fsync). Unsafe: `--fsync-every=0`, acknowledged on `pwrite`: a process
//! kill keeps the page cache and loses nothing, a power cut loses records.

use crate::agent;
use crate::{ContainerSpec, LoadConfig, LoadOutcome, Observation, Transfer, Workload, WorkloadError};
use futures_util::future::BoxFuture;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::watch;

/// The fsync-log probe.
#[derive(Debug, Clone)]
pub struct FsyncLog {
    pub image: String,
    /// The agent's probe flags, such as `--fsync-every=0`.
    pub server_args: Vec<String>,
}

impl Workload for FsyncLog {
    fn name(&self) -> &str {
        "fsync-log"
    }

    fn container(&self) -> ContainerSpec {
        agent::container(&self.image, "fsync-log", &self.server_args)
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
        Box::pin(agent::load(addr, load, stop, grace, |t| Transfer { amount: 0, ..t }))
    }

    fn observe(&self, addr: SocketAddr) -> BoxFuture<'_, Result<Observation, WorkloadError>> {
        Box::pin(agent::observe(addr))
    }
}
