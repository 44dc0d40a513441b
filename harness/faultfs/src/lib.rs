//! `crashlab-faultfs`: a FUSE filesystem that simulates power loss over a
//! backing directory, in the manner of LazyFS (used by Jepsen).
//!
//! The harness mounts it on the host over a backing directory, bind-mounts
//! the mountpoint into a database container, runs a workload, and calls
//! [`FaultHandle::power_cut`]. Everything the application had not made
//! durable is then gone; the harness unmounts, mounts again over the same
//! backing directory and restarts the database on what survived.
//!
//! # Persistence model
//!
//! The backing directory always holds exactly what would survive a power
//! cut at this instant. The visible filesystem is the backing directory
//! plus two kinds of non-durable state kept in faultfs's memory:
//!
//! * **File data and size.** `write`, `truncate` (via `setattr`) and
//!   `fallocate` that grows a file are cached per file as dirty extents
//!   plus a pending size. Reads see the cache merged over the backing file.
//!   They reach the backing file when:
//!   - the file is `fsync`ed or `fdatasync`ed (through any descriptor);
//!   - a write goes through a descriptor opened with `O_SYNC` or `O_DSYNC`
//!     (the whole file is then flushed), or a truncate through one;
//!   - the file's dirty bytes exceed
//!     [`FaultConfig::max_dirty_bytes_per_file`]: its oldest dirty extents
//!     (and any pending truncate, which is older) are written back until half
//!     the bound remains. Like kernel writeback, this data then **survives**
//!     a power cut, though the application never asked for it. Writers never
//!     block on this beyond the time of the write-back itself;
//!   - [`FaultHandle::checkpoint`] is called, or the filesystem is unmounted
//!     cleanly (without a power cut), which syncs like a kernel unmount.
//!
//!   `close` does not make data durable.
//! * **Directory entries.** `create`, `mknod`, `mkdir`, `symlink`, `link`,
//!   `unlink`, `rmdir` and `rename` change only the in-memory namespace and
//!   append to a journal. `fsync` of a directory `D` replays onto the backing
//!   directory every journal entry up to and including the last one that
//!   touches `D` (as parent, or as source or target parent of a rename), in
//!   the order they happened. This is at least what POSIX requires of
//!   `fsync(D)`, and the backing namespace is always a prefix of the
//!   operation history, as on a journaling filesystem. Consequences: a new
//!   file that was `fsync`ed but whose directory was not is gone after a
//!   power cut; so is a rename whose directories were not `fsync`ed (the old
//!   name comes back). `fsync` of a file does **not** persist its name.
//!   A file's data, however, is durable "in its inode" once `fsync`ed, and
//!   appears with its name once the directory is synced.
//! * **Inode metadata** (mode, owner, timestamps set by `chmod`, `chown`,
//!   `utimensat`) is written through to the backing inode at once and is
//!   never lost; for a directory that does not exist durably yet it is
//!   applied when its entry is committed. FIFOs, sockets and device nodes
//!   created through the mount exist only in memory and never become durable.
//!
//! With [`FaultConfig::fsync_reaches_disk`] off (the default), making data
//! durable means a plain write into the backing file: the power cut is
//! simulated, so the host's own disk need not be durable, and `fsync` is
//! cheap. With it on, faultfs also calls `fsync` on the backing file or
//! directory, for runs where the host itself may lose power.
//!
//! # Power cut
//!
//! [`FaultHandle::power_cut`] discards all dirty data and every journal
//! entry, except that files selected by a `torn` rule keep part of their last
//! unsynced write (see [`TornMode`]; the choice of sectors comes from
//! [`FaultConfig::seed`]). From then on every operation fails with `EIO`
//! (closing files still works) until the filesystem is unmounted and mounted
//! again over the same backing directory; the kernel's page cache for the
//! mount is dropped so cached pages cannot be read either.
//!
//! # Fault rules
//!
//! [`FaultRule`]s inject `EIO` on the `n`th matching operation, `ENOSPC`
//! after a byte budget, latency per operation kind, and torn writes. They
//! have a compact text form parsed by [`FaultRule::from_str`](std::str::FromStr);
//! see the [`rules`] module for the grammar.
//!
//! # FUSE choices
//!
//! The kernel's writeback cache is **not** enabled: with it, `write` returns
//! before faultfs sees the data, `O_SYNC` writes arrive without their flag,
//! and dirty pages held by the kernel at a power cut would be neither lost
//! nor kept in a controlled way. Without it every `write` reaches faultfs
//! synchronously, so what the application was told matches the model.
//! Large writes (up to the kernel's limit, normally 1 MiB) are enabled,
//! reads use the page cache, shared writable `mmap` works (dirty pages reach
//! faultfs when the kernel writes them back), and one request is served at a
//! time. The mount uses `allow_other` (a database user in a container must
//! reach it) and `default_permissions` (the kernel checks modes and owners,
//! which are passed through). `flock` and POSIX locks are handled by the
//! kernel locally; extended attributes are not supported (`ENOTSUP`).
//! The backing directory holds a hidden `.crashlab-faultfs` directory while
//! mounted; it is emptied at every mount and removed at unmount.
//!
//! # Limits
//!
//! Inodes stay in memory until unmount (the kernel's `forget` is ignored),
//! and the backing object of an unlinked file keeps its disk space until
//! unmount, since a pending create may still link it. `rename` with
//! `RENAME_EXCHANGE` or `RENAME_WHITEOUT` fails with `EINVAL`. `fallocate`
//! supports mode 0 (which grows the size non-durably) and `KEEP_SIZE`;
//! other modes fail with `EOPNOTSUPP`, on which `posix_fallocate` falls back
//! to writing zeros.

#![deny(unsafe_code)]
#![warn(missing_docs)]

mod cache;
mod config;
pub mod explore;
mod fs;
pub mod history;
mod mount;
mod rng;
pub mod rules;
mod sys;

pub use cache::TornMode;
pub use config::{ConfigError, FaultConfig, FaultConfigBuilder, FsyncFailure};
pub use explore::{Base, CrashState, Exploration, ExploreConfig, ExploreError, StateId, explore, materialise};
pub use fs::Stats;
pub use history::{Barrier, Event, FileId, History, Op};
pub use mount::{ControlError, FaultFs, FaultHandle, MountError, MountedFs, unmount_stale};
pub use rules::{FaultRule, OpKind, PathPattern, RuleError};
