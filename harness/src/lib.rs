//! crashlab: a crash- and application-consistency test harness for
//! containerised data.
//!
//! It runs a real workload in Docker on a persistence strategy, injects a
//! fault, recovers, and checks what survived against the harness's own
//! record of acknowledged writes. The source is grouped by concept:
//!
//! - [`scenario`] reads what to run and expands it into cells, which
//!   [`scenario::filter`] narrows (`--filter`) and [`app::listing`] shows (`crashlab list`),
//!   and [`workload`] makes its `[workload]` into a driver;
//! - [`storage`] says where the data directory lives for each strategy
//!   (and puts the fault filesystem or a btrfs pool under it);
//! - [`faults`] damages a deployment and brings it back, one implementation
//!   per fault;
//! - [`backup`] takes and restores the backup strategies' copies;
//! - [`deploy`] puts a container on storage, waits for it, and with
//!   [`deploy::hosts`] spans a deployment over several hosts on a private
//!   network: a primary and a replica, and the failover when a host is lost;
//! - [`run`] is a run's identity and journal, and [`cleanup`] removes what
//!   it created;
//! - [`cycle`] runs the cells, each cycle as phases (ready, setup, load and
//!   fault, recover, verify) with hooks for what backups, replication and
//!   exploration add; it tells reporters through [`events`];
//! - [`checker`] turns the ack log and what the server kept into a verdict;
//! - [`replay`] keeps a failing crash point and checks one of its states
//!   again (`crashlab replay`);
//! - [`report`] renders events and reports; [`app`] ties it together for
//!   the binary; [`docker`] is the one door to the daemon; [`app::doctor`] says
//!   whether this host can run it all, and how to fix what it lacks.
//!
//! The modules sit in layers that import one way, written in
//! `docs/design.md` and checked by `harness/tests/architecture.rs`.
//!
//! The durability model: a write is *acknowledged* when the server answered
//! its `COMMIT`. A strategy survives a fault when every acknowledged write is
//! present after recovery. Writes whose commit was in flight when the fault
//! hit are *in doubt* and may go either way. A process kill keeps the
//! host's page cache, so it says nothing about power loss: for that the
//! data sits on [`storage::faultmount`]'s fault filesystem, which keeps every
//! write not yet fsynced in memory and drops it at a simulated power cut
//! (`host-kill`, `torn-write`), and can fail writes with `ENOSPC` or `EIO`
//! (`disk-full`, `io-error`). See [`faults`] for what each fault does and
//! what MariaDB makes of it. `docs/design.md` states the whole model.

#![forbid(unsafe_code)]

pub mod app;
pub mod backup;
pub mod bench;
pub mod checker;
pub mod cleanup;
pub mod compose;
pub mod cycle;
pub mod deploy;
pub mod docker;
pub mod events;
pub mod explore;
pub mod faults;
pub mod images;
pub mod plugin;
pub mod replay;
pub mod report;
pub mod run;
pub mod scenario;
pub mod settings;
pub mod storage;
pub mod text;
pub mod workload;
