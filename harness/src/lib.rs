//! crashlab: a crash- and application-consistency test harness for
//! containerised data.
//!
//! It runs a real workload in Docker on a persistence strategy, injects a
//! fault, recovers, and checks what survived against the harness's own
//! record of acknowledged writes:
//!
//! - [`scenario`] reads what to run and expands it into cells;
//! - [`strategy`] decides where the data directory lives, [`deployment`]
//!   runs the workload's container on it, [`fault`] damages and recovers it;
//! - [`runner`] drives load → fault → recover → verify and emits events;
//! - [`checker`] turns the ack log and what the server kept into a verdict;
//! - [`output`] renders events and reports; [`app`] ties it together for
//!   the binary.
//!
//! The durability model: a write is *acknowledged* when the server answered
//! its `COMMIT`. A strategy survives a fault when every acknowledged write is
//! present after recovery. Writes whose commit was in flight when the fault
//! hit are *in doubt* and may go either way. A process kill keeps the
//! host's page cache, so it says nothing about power loss: for that the
//! data sits on [`faultmount`]'s fault filesystem, which keeps every write
//! not yet fsynced in memory and drops it at a simulated power cut
//! (`host-kill`, `torn-write`), and can fail writes with `ENOSPC` or `EIO`
//! (`disk-full`, `io-error`). See [`fault`] for what each fault does and
//! what MariaDB makes of it.

#![forbid(unsafe_code)]

pub mod agent;
pub mod app;
pub mod backup;
pub mod bench;
pub mod btrfs;
pub mod checker;
pub mod deployment;
pub mod docker;
pub mod environment;
pub mod fault;
pub mod faultmount;
pub mod images;
pub mod output;
pub mod run;
pub mod runner;
pub mod scenario;
pub mod strategy;
