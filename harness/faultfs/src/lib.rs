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
//!     [`FaultConfig::max_dirty_bytes_per_file`] after a write: any pending
//!     truncate (which is older) and its oldest dirty extents are written
//!     back until the file is back within the bound by the write's size
//!     (at least 256 KiB), so each write over the bound pays for about its
//!     own size. Like kernel writeback, this data then **survives** a power
//!     cut, though the application never asked for it. It is done after
//!     the write has been answered, as the kernel's writeback runs after
//!     `write` returned, but before any other request on the file, power
//!     cut, checkpoint or crash point;
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
//! # Failed fsync
//!
//! When an `eio:fsync` rule fails an `fsync` or `fdatasync`, what happens to
//! the file's unsynced data is [`FaultConfig::fsync_failure`]
//! ([`FsyncFailure`]), after Rebello et al., "Can applications recover from
//! fsync failures?" (USENIX ATC '20):
//!
//! * [`FsyncFailure::KeepDirty`] (the default, for compatibility): nothing
//!   changes; the data stays dirty, so a retried `fsync`, a checkpoint or a
//!   clean unmount persists it. No Linux file system is this kind.
//! * [`FsyncFailure::Ext4`] (ext4 and XFS): the dirty data is marked clean
//!   without being written. Reads still return it (the pages stay cached),
//!   but no later `fsync`, checkpoint or clean unmount writes it, and a power
//!   cut or an unmount loses it. A retried `fsync` succeeds. Size changes
//!   stay pending (the inode is still dirty), so a later `fsync` can extend
//!   the file over the lost bytes, which then read as what was durable there
//!   (zeros past the old end).
//! * [`FsyncFailure::Btrfs`]: the file reverts to its durable contents and
//!   size at once; the kernel's cached pages of it are dropped.
//!
//! Only injected errors follow this model; failed `fsync` of a directory
//! leaves its pending entries pending.
//!
//! # Unsynced history
//!
//! faultfs records every operation that is not durable yet, in order, as a
//! [`History`] ([`FaultHandle::history`], [`FaultHandle::crash_point`]),
//! relative to the backing directory (the *durable base*, including the
//! backing objects under `.crashlab-faultfs`, which hold the durable bytes
//! of files whose names are not durable yet):
//!
//! * [`Op::Write`] (file, offset, bytes) and [`Op::Truncate`] (`ftruncate`,
//!   `fallocate` growing the file), by file id (the backing object's name);
//! * [`Op::Create`], [`Op::Link`], [`Op::Mkdir`], [`Op::Symlink`],
//!   [`Op::Unlink`], [`Op::Rmdir`], [`Op::Rename`], by path relative to the
//!   root, as the application saw the namespace at the call;
//! * [`Barrier`]s: `fsync`, `fdatasync`, `O_SYNC` writes and truncates, and
//!   directory `fsync` that returned successfully.
//!
//! Operations leave the history when they become durable: a file's data
//! operations at its `fsync`/`fdatasync`/`O_SYNC` write (the barrier stays
//! where the call was), the namespace operations a directory `fsync`
//! commits, the parts of writes that early writeback persists, and
//! everything at a checkpoint. Writes whose `fsync` failed under
//! [`FsyncFailure::Ext4`] or [`FsyncFailure::Btrfs`] leave it too, since
//! they can never persist. Recording is an append under the history's lock
//! (taken with the file's lock held, so a file's operations are recorded in
//! the order they took effect) plus a copy of the written bytes, bounded by
//! [`FaultConfig::max_history_bytes`]; beyond it the history is marked
//! incomplete until the next checkpoint. After a power cut the history is
//! the one at the cut (torn rules write into the backing directory at the
//! cut: explore without them).
//!
//! # Crash states
//!
//! The live power cut produces one crash state: the durable base, i.e. the
//! empty prefix of the history. [`explore()`] enumerates the others the
//! following model allows, and [`materialise()`] writes one out as a
//! directory tree. Number the history's operations `0..n` in order; the
//! barriers split them into *epochs* `0, 1, ..` (a barrier with no
//! operation since the previous one starts no new epoch). Within an epoch,
//! operation `i` is *ordered before* `j > i` when
//!
//! 1. both are namespace operations: the namespace persists in journal
//!    order, as faultfs's own directory `fsync` does (its backing namespace
//!    is always a prefix of the namespace operations); or
//! 2. both change the same file and one of them, or a truncate of that file
//!    between them, is a truncate: truncates are ordered with the file's
//!    writes on either side.
//!
//! Nothing else is ordered within an epoch: writes to one file, to
//! different files, and data against names persist in any combination, so
//! a create or rename can persist without the data written before it
//! (ALICE's classic "rename without fsync" state).
//!
//! A crash state is a set `K` of kept operations such that, for every kept
//! operation, every operation of an earlier epoch and every operation
//! ordered before it is kept; in addition, torn states keep operations
//! `0..i` and, of write `i` split at sector boundaries
//! ([`History::sector_size`], from [`FaultConfig::sector_size`]; boundaries
//! at multiples of it in the file), a proper non-empty prefix of its
//! sectors. The model thus treats a barrier as ordering *every* earlier
//! pending operation before every later one, as an fsync that commits the
//! journal transaction holding them does; it does not produce a later
//! epoch's operation surviving an earlier epoch's loss. A state's content is
//! the durable base with the kept namespace operations applied by path
//! (operations on a missing name, e.g. of a FIFO, do nothing) and each
//! file's kept data operations applied in order.
//!
//! [`explore()`] enumerates three families, each exhaustive when its bound
//! in [`ExploreConfig`] is large enough, so that together they are the
//! model (a property test checks this against a brute-force enumeration):
//!
//! * `p<m>`, **prefixes** (in-order persistence): operations `0..m` kept,
//!   for every `m` in `0..=n`;
//! * `e<k>-drop{i,j,..}`, **reorderings**: every operation of epochs before
//!   `k` kept, and of epoch `k` all but `i, j, ..` and what is ordered after
//!   them, at most [`ExploreConfig::max_drop`] (Chipmunk's `k`) named, none
//!   ordered before another; later epochs dropped;
//! * `t<i>@<s>/<n>`, **torn writes**: `0..i` kept plus the first `s` of the
//!   `n` sectors of write `i`, for at most [`ExploreConfig::max_torn_splits`]
//!   evenly spaced `s`.
//!
//! States with identical trees (names, kinds, file bytes, symlink targets)
//! are one: each keeps the first id in that order, and a 128-bit content
//! digest, computed per 4 KiB chunk so that unchanged chunks of large
//! files cost nothing. Files no operation writes are compared by identity.
//! Beyond [`ExploreConfig::max_candidates`] candidates the reorderings and
//! torn states are a sample seeded by [`ExploreConfig::seed`] (prefixes
//! evenly spaced); beyond [`ExploreConfig::max_states`] distinct states the
//! prefixes take at most half the budget (evenly spaced, from `p0`) and
//! the rest is a seeded sample of the other states, up to half of it torn
//! writes over durable bytes (pages rewritten in place, where a tear leaves
//! half an old page; a quarter of the candidates' budget is kept for them
//! too), which a uniform draw would all but miss among appends and
//! reorderings. Which states exist is unchanged. Ids are stable for a given
//! history and parse back with [`StateId::from_str`](std::str::FromStr).
//!
//! # Crash points inside the load
//!
//! [`FaultHandle::crash_point`] captures a point when the harness asks;
//! [`FaultHandle::capture_at`] arms a [`CapturePlan`] under which faultfs
//! captures points itself, in the handler of each selected call a
//! [`Trigger`] matches (the fsync family, or any operation of the rules'
//! grammar, optionally by path), when the call arrives and before it takes
//! effect. The [`capture`] module states which calls are candidates and
//! how the seeded sample is drawn.
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
//! faultfs when the kernel writes them back). Every option considered, and
//! why it was taken or left:
//!
//! * **Writeback cache** (`FUSE_WRITEBACK_CACHE`): left, for the reasons
//!   above; it would also let the kernel merge, split and reorder writes,
//!   so the history would record the kernel's writeback rather than the
//!   application's calls, and `enospc`/`eio` rules on writes would fail
//!   a later `fsync` instead of the write.
//! * **Keeping the page cache across opens** (`FOPEN_KEEP_CACHE`): taken.
//!   Every change to a file's contents goes through the mount (so the
//!   kernel's cached pages are what faultfs would serve), and the two that
//!   do not — a power cut and a btrfs-style failed `fsync` — drop the
//!   kernel's pages explicitly. Without it each `open` dropped the file's
//!   cached pages.
//! * **Large writes** (`max_write`, `FUSE_MAX_PAGES`): taken, at fuser's
//!   default (the kernel's limit, 1 MiB unless raised by sysctl); a write
//!   is one history operation however large.
//! * **Direct I/O** (`FOPEN_DIRECT_IO`): left: it would turn off the page
//!   cache for reads and shared `mmap`, which SQLite's `-shm` needs.
//! * **Splice** (moving pages between `/dev/fuse` and the backing file
//!   without a copy): left. fuser 0.18 reads requests with `read(2)` into
//!   its buffer, and faultfs must copy a write's bytes into its cache
//!   anyway, since they are not durable until `fsync`.
//! * **Passthrough** (`FUSE_PASSTHROUGH`, reads and writes served by the
//!   kernel from the backing file): left, since writes would bypass the
//!   cache and be durable at once.
//! * **Early writeback after the reply**: taken. Profiled under fio (1 MiB
//!   sequential writes, `perf`), the serving thread spent three quarters
//!   of its time copying early-written-back data into the backing file's
//!   page cache; it now runs once the write is answered (see "Persistence
//!   model"), while the application copies its next write into the kernel.
//! * **Answering `fsync` before the backing write**: left. A power cut
//!   could not tell (it waits for the request), but a backing write that
//!   failed after the reply (the host's disk full) would break what
//!   `fsync` promised.
//! * **Fewer copies per write**: left. Under 4 KiB write+`fsync` faultfs's
//!   handlers and fuser's parsing were about 2 % of the serving thread's
//!   time and the backing write that `fsync` makes 15 %; the rest is
//!   receiving requests and replying on `/dev/fuse`, mostly the scheduler
//!   (two round trips per write+`fsync`, the least possible). Under 1 MiB
//!   writes, copying into the cache (and faulting in its fresh pages) was
//!   about a tenth; reusing written-back buffers could save part of that.
//! * **Partial writes to pages not in the cache**: not faultfs's choice.
//!   The kernel ends a write request at a partly written page that is not
//!   up to date, so a write straddling two such pages costs two requests;
//!   SQLite's WAL frames (24 + 4,096 bytes, appended) cost three.
//! * **FUSE over io_uring** (Linux 6.14): left, since fuser 0.18 does not
//!   speak it; it would cut the round-trip cost that bounds small writes.
//!
//! # Concurrency
//!
//! [`FaultConfig::threads`] threads serve requests (fuser's event loops
//! on cloned `/dev/fuse` descriptors); one by default, which measured
//! faster on a 2-core machine (see [`FaultConfig::DEFAULT_THREADS`]).
//! Each regular file's cache and backing object
//! sit behind their own lock, the namespace, rules and handles behind the
//! state's lock, the history behind its own; locks are taken in that order
//! (state, file, history). `read`, `write` and `fsync` hold the state's
//! lock only to apply rules and find the file, then work under the file's
//! lock, so requests on different files do not wait for each other, and
//! each write, truncate and `fsync` barrier enters the history under its
//! file's lock, in the order it took effect; operations of different files
//! concurrently in flight enter it in the order they took their locks,
//! which is an order the application could have seen. Early writeback
//! orders a file's extents by a global write sequence taken under the
//! file's lock.
//!
//! A gate shared by every request is taken exclusively by what must see
//! the filesystem at rest: [`FaultHandle::power_cut`],
//! [`FaultHandle::checkpoint`], [`FaultHandle::crash_point`] and, while an
//! aimed cut ([`FaultHandle::cut_at_next_write`]) or a capture plan
//! ([`FaultHandle::capture_at`]) is armed, every request, so that those are
//! served one at a time as before. The mount uses `allow_other` (a database user in a container must
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
pub mod capture;
mod config;
pub mod explore;
mod fs;
pub mod history;
mod layout;
mod mount;
mod rng;
pub mod rules;
mod sys;

pub use cache::TornMode;
pub use capture::{Capture, CaptureCounts, CapturePlan, Trigger};
pub use config::{ConfigError, FaultConfig, FaultConfigBuilder, FsyncFailure};
pub use explore::{
    Base, CrashState, Exploration, ExploreConfig, ExploreError, KeptOps, StateId, explore, kept_ops, materialise,
};
pub use fs::Stats;
pub use history::{Barrier, Event, FileId, History, Op};
pub use mount::{ControlError, FaultFs, FaultHandle, MountError, MountedFs, unmount_stale};
pub use rules::{FaultRule, OpKind, PathPattern, RuleError};
