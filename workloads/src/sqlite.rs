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

use crate::Kind;
use crate::agent::{self, Engine, Hosted};

/// `kind = "sqlite"`.
pub const KIND: Kind = Kind {
    name: Engine::Sqlite.name(),
    build: |image, server_args| Box::new(workload(image.unwrap_or_else(|| agent::IMAGE.to_owned()), server_args)),
};

/// SQLite with the scenario's image and agent flags.
pub fn workload(image: String, server_args: Vec<String>) -> Hosted {
    Hosted { engine: Engine::Sqlite, image, server_args }
}
