//! The fsync-log probe: plain appends to one file, run inside the
//! container by `crashlab-agent` (see [`crate::agent`]). Each transfer
//! becomes one checksummed, sequence-numbered record; the agent fsyncs
//! every N records (`server-args = ["--fsync-every=N"]`, default 1; 0
//! never) and acknowledges a record once an fsync covering it returned.
//!
//! Each record is a ledger row, and the agent recomputes every balance from
//! the header's initial balance and the surviving records' own accounts
//! and amounts: a missing acknowledged record is a lost write, a record
//! that differs from what was sent or was never sent is `inconsistent`,
//! and a header that claims other accounts or another initial balance than
//! the harness set up shows as balances that disagree (`inconsistent`).
//! The agent's integrity check reads the log back: a torn record at the
//! tail is what a crash leaves and is dropped; a damaged record or a hole
//! followed by valid records, a gap in the sequence numbers, or a record
//! naming an account the header does not have, fails the check
//! (`corrupt`).
//!
//! Durable: `--fsync-every=1` (or any N ≥ 1: acknowledgements wait for the
//! fsync). Unsafe: `--fsync-every=0`, acknowledged on `pwrite`: a process
//! kill keeps the page cache and loses nothing, a power cut loses records.

use crate::Kind;
use crate::agent::{self, Engine, Hosted};

/// `kind = "fsync-log"`.
pub const KIND: Kind = Kind {
    name: Engine::FsyncLog.name(),
    build: |image, server_args| Box::new(workload(image.unwrap_or_else(|| agent::IMAGE.to_owned()), server_args)),
};

/// The fsync-log probe with the scenario's image and agent flags.
pub fn workload(image: String, server_args: Vec<String>) -> Hosted {
    Hosted { engine: Engine::FsyncLog, image, server_args }
}
