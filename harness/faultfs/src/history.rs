//! The unsynced history: the ordered operations that are not durable yet,
//! with the barriers (fsync-family calls) that happened between them.
//!
//! faultfs records it as it serves requests and trims it as operations
//! become durable, so at any moment it describes exactly the difference
//! between the backing directory (the durable base) and what the
//! application sees. The [`explore`](mod@crate::explore) module turns it into the set of
//! crash states the persistence model allows. This module knows nothing
//! about FUSE: tests and tools can build histories by hand.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Names a regular file independently of its names: faultfs's inode number,
/// which is also the name of its backing object under the hidden staging
/// directory (`.crashlab-faultfs/<id>`) of the backing directory.
pub type FileId = u64;

/// One non-durable operation. Paths are relative to the mount's root and
/// were valid in the namespace the application saw when it made the call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `data` written at `offset` of a file.
    Write {
        /// The file written.
        file: FileId,
        /// Byte offset.
        offset: u64,
        /// The bytes written, shared with snapshots of the history.
        data: Arc<[u8]>,
    },
    /// The file's size set to `size` (`ftruncate`, or `fallocate` growing it).
    Truncate {
        /// The file.
        file: FileId,
        /// New size.
        size: u64,
    },
    /// A new regular file named `path`.
    Create {
        /// Its name.
        path: PathBuf,
        /// The new file.
        file: FileId,
    },
    /// A new hard link `path` to an existing file.
    Link {
        /// The new name.
        path: PathBuf,
        /// The file linked.
        file: FileId,
    },
    /// A new directory.
    Mkdir {
        /// Its name.
        path: PathBuf,
        /// Permission bits.
        perm: u32,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
    },
    /// A new symbolic link.
    Symlink {
        /// Its name.
        path: PathBuf,
        /// What it points to.
        target: PathBuf,
    },
    /// A name of a file (or symlink) removed.
    Unlink {
        /// The name.
        path: PathBuf,
    },
    /// An empty directory removed.
    Rmdir {
        /// The name.
        path: PathBuf,
    },
    /// `from` renamed to `to`, replacing what `to` named.
    Rename {
        /// Old name.
        from: PathBuf,
        /// New name.
        to: PathBuf,
    },
}

impl Op {
    /// The file a data operation (write, truncate) changes; `None` for
    /// namespace operations.
    pub fn data_file(&self) -> Option<FileId> {
        match self {
            Op::Write { file, .. } | Op::Truncate { file, .. } => Some(*file),
            _ => None,
        }
    }

    /// Whether this changes directory entries rather than file data.
    pub fn is_namespace(&self) -> bool {
        self.data_file().is_none()
    }
}

/// An fsync-family call that returned successfully between two pending
/// operations. Every operation it made durable has left the history; what
/// remains on either side of it is separated by it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Barrier {
    /// `fsync` of a file.
    Fsync(FileId),
    /// `fdatasync` of a file.
    Fdatasync(FileId),
    /// A write or truncate through an `O_SYNC`/`O_DSYNC` descriptor.
    OSync(FileId),
    /// `fsync` of a directory (path relative to the root; empty for the root).
    DirFsync(PathBuf),
}

/// An entry of a [`History`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A pending operation.
    Op(Op),
    /// A barrier between pending operations.
    Barrier(Barrier),
}

/// The ordered non-durable operations of a faultfs mount, relative to its
/// backing directory. See the crate docs for the persistence model.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    events: Vec<Event>,
    /// Recording stopped because the history outgrew its byte budget.
    overflowed: bool,
    /// Bytes of write data held.
    bytes: u64,
    /// Pending data operations per file, so persisting a clean file is O(1).
    per_file: HashMap<FileId, usize>,
    /// Granularity at which writes tear; 0 means the default of 512.
    sector_size: u64,
}

impl History {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty history whose writes tear at `bytes` (faultfs uses
    /// [`crate::FaultConfig::sector_size`]).
    pub fn with_sector_size(bytes: u64) -> Self {
        Self { sector_size: bytes, ..Self::default() }
    }

    /// Granularity, in bytes, at which writes are torn; 512 by default.
    pub fn sector_size(&self) -> u64 {
        if self.sector_size == 0 { 512 } else { self.sector_size }
    }

    /// Appends an operation.
    pub fn push_op(&mut self, op: Op) {
        if self.overflowed {
            return;
        }
        if let Op::Write { data, .. } = &op {
            self.bytes += data.len() as u64;
        }
        if let Some(f) = op.data_file() {
            *self.per_file.entry(f).or_default() += 1;
        }
        self.events.push(Event::Op(op));
    }

    /// Appends a barrier. A barrier with no operation before it separates
    /// nothing and is not kept; of consecutive barriers only the last is.
    pub fn push_barrier(&mut self, barrier: Barrier) {
        match self.events.last_mut() {
            None => {}
            Some(Event::Barrier(b)) => *b = barrier,
            Some(Event::Op(_)) => self.events.push(Event::Barrier(barrier)),
        }
    }

    /// Whether any operation is pending (barriers alone separate nothing).
    pub fn has_ops(&self) -> bool {
        self.events.iter().any(|e| matches!(e, Event::Op(_)))
    }

    /// Whether `file` has a pending write (not only size changes).
    pub fn has_writes_of(&self, file: FileId) -> bool {
        self.per_file.contains_key(&file)
            && self.events.iter().any(|e| matches!(e, Event::Op(Op::Write { file: f, .. }) if *f == file))
    }

    /// Entries in order.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// The pending operations in order; their index here is how state ids
    /// name them.
    pub fn ops(&self) -> Vec<&Op> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Op(op) => Some(op),
                Event::Barrier(_) => None,
            })
            .collect()
    }

    /// The epoch of each operation: the number of barriers that separate it
    /// from the first operation.
    pub fn epochs(&self) -> Vec<usize> {
        let mut out = Vec::new();
        let mut epoch = 0;
        let mut since_barrier = false;
        for e in &self.events {
            match e {
                Event::Op(_) => {
                    out.push(epoch);
                    since_barrier = true;
                }
                Event::Barrier(_) if since_barrier => {
                    epoch += 1;
                    since_barrier = false;
                }
                Event::Barrier(_) => {}
            }
        }
        out
    }

    /// False when faultfs stopped recording because the history outgrew
    /// [`crate::FaultConfig::max_history_bytes`]: it then no longer
    /// describes the unsynced state and cannot be explored.
    pub fn is_complete(&self) -> bool {
        !self.overflowed
    }

    /// Bytes of write data held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Files with a pending write or size change: how many files a crash
    /// here may leave half-updated (the log's alone, or data files too).
    pub fn files(&self) -> usize {
        self.per_file.len()
    }

    /// Forgets everything: all is durable, or the budget is exceeded.
    pub(crate) fn reset(&mut self, overflowed: bool) {
        self.events.clear();
        self.per_file.clear();
        self.bytes = 0;
        self.overflowed = overflowed;
    }

    /// Drops the file's data operations, which just became durable, and
    /// records the barrier that did it.
    pub(crate) fn persist_file(&mut self, file: FileId, barrier: Barrier) {
        if self.per_file.remove(&file).is_some() {
            let mut freed = 0;
            self.events.retain(|e| match e {
                Event::Op(op) if op.data_file() == Some(file) => {
                    if let Op::Write { data, .. } = op {
                        freed += data.len() as u64;
                    }
                    false
                }
                _ => true,
            });
            self.bytes -= freed;
            self.normalise();
        }
        self.push_barrier(barrier);
    }

    /// Drops the first `n` namespace operations, which a directory fsync
    /// just committed, and records the barrier.
    pub(crate) fn commit_namespace(&mut self, n: usize, barrier: Barrier) {
        if n > 0 {
            let mut left = n;
            self.events.retain(|e| match e {
                Event::Op(op) if op.is_namespace() && left > 0 => {
                    left -= 1;
                    false
                }
                _ => true,
            });
            self.normalise();
        }
        self.push_barrier(barrier);
    }

    /// Whether the history holds data operations of `file`.
    pub(crate) fn records_file(&self, file: FileId) -> bool {
        self.per_file.contains_key(&file)
    }

    /// After early writeback of `file`: its writes are cut down to the
    /// ranges still dirty (the rest is durable now), and its truncates, which
    /// writeback applied, are replaced by one final size change when the
    /// size is still not durable. `dirty` is in offset order, without
    /// overlaps, as the file cache's `dirty_ranges` gives it.
    pub(crate) fn trim_file(&mut self, file: FileId, dirty: &[(u64, u64)], pending_size: Option<u64>) {
        if !self.per_file.contains_key(&file) {
            return;
        }
        let mut out = Vec::with_capacity(self.events.len());
        let mut count = 0;
        let mut bytes = 0;
        let mut had_truncate = false;
        for e in self.events.drain(..) {
            match e {
                Event::Op(Op::Write { file: f, offset, data }) if f == file => {
                    let end = offset + data.len() as u64;
                    // `dirty` is in offset order and its ranges do not
                    // overlap: start at the first that ends past `offset`.
                    let first = dirty.partition_point(|&(_, hi)| hi <= offset);
                    if dirty.get(first).is_some_and(|&(lo, hi)| lo <= offset && end <= hi) {
                        // Still dirty as a whole: kept without a copy.
                        count += 1;
                        bytes += end - offset;
                        out.push(Event::Op(Op::Write { file, offset, data }));
                        continue;
                    }
                    for &(lo, hi) in dirty[first..].iter().take_while(|&&(lo, _)| lo < end) {
                        let (a, b) = (lo.max(offset), hi.min(end));
                        if a < b {
                            let piece = &data[(a - offset) as usize..(b - offset) as usize];
                            out.push(Event::Op(Op::Write { file, offset: a, data: piece.into() }));
                            count += 1;
                            bytes += b - a;
                        }
                    }
                }
                Event::Op(Op::Truncate { file: f, .. }) if f == file => had_truncate = true,
                Event::Op(op @ Op::Write { .. }) => {
                    if let Op::Write { data, .. } = &op {
                        bytes += data.len() as u64;
                    }
                    out.push(Event::Op(op));
                }
                other => out.push(other),
            }
        }
        self.events = out;
        self.bytes = bytes;
        if had_truncate && let Some(size) = pending_size {
            self.events.push(Event::Op(Op::Truncate { file, size }));
            count += 1;
        }
        if count == 0 {
            self.per_file.remove(&file);
        } else {
            self.per_file.insert(file, count);
        }
        self.normalise();
    }

    /// After a failed `fsync` of `file`: its writes will never persist, so
    /// they leave the history (its truncates too when `truncates`), and the
    /// size still pending, if any, becomes one final size change.
    pub(crate) fn forget_writes(&mut self, file: FileId, truncates: bool, pending_size: Option<u64>) {
        if self.per_file.contains_key(&file) {
            let mut freed = 0;
            let mut left = 0;
            self.events.retain(|e| match e {
                Event::Op(Op::Write { file: f, data, .. }) if *f == file => {
                    freed += data.len() as u64;
                    false
                }
                Event::Op(Op::Truncate { file: f, .. }) if *f == file => {
                    left += usize::from(!truncates);
                    !truncates
                }
                _ => true,
            });
            self.bytes -= freed;
            if left == 0 {
                self.per_file.remove(&file);
            } else {
                self.per_file.insert(file, left);
            }
            self.normalise();
        }
        if let Some(size) = pending_size {
            self.push_op(Op::Truncate { file, size });
        }
    }

    /// Removes barriers that separate nothing: leading ones and all but the
    /// last of a run.
    fn normalise(&mut self) {
        let mut out: Vec<Event> = Vec::with_capacity(self.events.len());
        for e in self.events.drain(..) {
            match (&e, out.last_mut()) {
                (Event::Barrier(_), None) => {}
                (Event::Barrier(b), Some(Event::Barrier(last))) => *last = b.clone(),
                _ => out.push(e),
            }
        }
        self.events = out;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(file: FileId, offset: u64, data: &[u8]) -> Op {
        Op::Write { file, offset, data: data.into() }
    }

    fn unlink(path: &str) -> Op {
        Op::Unlink { path: path.into() }
    }

    #[test]
    fn barriers_that_separate_nothing_are_not_kept() {
        let mut h = History::new();
        h.push_barrier(Barrier::Fsync(1));
        h.push_op(write(1, 0, b"a"));
        h.push_barrier(Barrier::Fsync(2));
        h.push_barrier(Barrier::DirFsync("".into()));
        h.push_op(write(2, 0, b"b"));
        assert_eq!(h.events().len(), 3, "{h:?}");
        assert_eq!(h.events()[1], Event::Barrier(Barrier::DirFsync("".into())));
        assert_eq!(h.epochs(), [0, 1]);
    }

    #[test]
    fn persisting_a_file_removes_its_data_ops_and_leaves_the_barrier() {
        let mut h = History::new();
        h.push_op(write(1, 0, b"aaaa"));
        h.push_op(unlink("x"));
        h.push_op(Op::Truncate { file: 1, size: 2 });
        h.push_op(write(2, 0, b"bb"));
        h.persist_file(1, Barrier::Fsync(1));
        assert_eq!(h.ops(), [&unlink("x"), &write(2, 0, b"bb")]);
        assert_eq!(h.bytes(), 2);
        assert!(matches!(h.events().last(), Some(Event::Barrier(Barrier::Fsync(1)))));
        h.commit_namespace(1, Barrier::DirFsync("".into()));
        assert_eq!(h.ops(), [&write(2, 0, b"bb")]);
        assert_eq!(h.epochs(), [0], "barriers before every op separate nothing");
    }

    #[test]
    fn writeback_trims_writes_to_what_is_still_dirty() {
        let mut h = History::new();
        h.push_op(write(1, 0, b"aaaaaaaa"));
        h.push_op(Op::Truncate { file: 1, size: 20 });
        h.push_op(write(1, 10, b"bbbb"));
        h.trim_file(1, &[(6, 12)], Some(20));
        assert_eq!(h.ops(), [&write(1, 6, b"aa"), &write(1, 10, b"bb"), &Op::Truncate { file: 1, size: 20 }]);
        assert_eq!(h.bytes(), 4);
    }

    #[test]
    fn writeback_trims_each_write_to_every_dirty_range_it_meets() {
        let mut h = History::new();
        h.push_op(write(1, 2, b"abcdefghij"));
        h.push_op(write(2, 0, b"x"));
        h.push_op(write(1, 20, b"kl"));
        h.push_op(write(1, 24, b"mn"));
        // Ranges before, inside, across the end of and after the first
        // write, one that only the second meets, and the last lies within.
        h.trim_file(1, &[(0, 1), (3, 5), (8, 14), (15, 16), (21, 30)], None);
        let kept =
            [write(1, 3, b"bc"), write(1, 8, b"ghij"), write(2, 0, b"x"), write(1, 21, b"l"), write(1, 24, b"mn")];
        assert_eq!(h.ops(), kept.iter().collect::<Vec<_>>());
        assert_eq!(h.bytes(), 10);
    }

    #[test]
    fn a_failed_fsync_forgets_the_writes() {
        let mut h = History::new();
        h.push_op(Op::Truncate { file: 1, size: 0 });
        h.push_op(write(1, 0, b"aaaa"));
        h.push_op(write(2, 0, b"b"));
        h.forget_writes(1, false, Some(4));
        assert_eq!(
            h.ops(),
            [&Op::Truncate { file: 1, size: 0 }, &write(2, 0, b"b"), &Op::Truncate { file: 1, size: 4 }]
        );
        h.forget_writes(1, true, None);
        assert_eq!(h.ops(), [&write(2, 0, b"b")]);
    }
}
