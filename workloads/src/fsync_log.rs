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

use crate::agent::{Engine, Hosted};

/// The fsync-log probe with the scenario's image and agent flags.
pub fn workload(image: String, server_args: Vec<String>) -> Hosted {
    Hosted { engine: Engine::FsyncLog, image, server_args }
}
