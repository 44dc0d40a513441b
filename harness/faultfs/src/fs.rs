//! The FUSE filesystem: an in-memory namespace overlay and per-file write
//! caches over a backing directory, plus the control operations (power cut,
//! checkpoint, statistics) that the public handle forwards to.
//!
//! Inodes live in memory once discovered. The durable namespace is the
//! backing directory itself; the visible namespace is the in-memory tree,
//! which differs from it by the pending operations in `journal`. Each
//! regular file's durable bytes live in a *backing object*: a hard link to
//! the file under the hidden staging directory, so data can be made durable
//! (by `fsync`) before the file's name is (by `fsync` of its directory), and
//! the object stays reachable however the names change. Committing a
//! `Create` links the object into place. Directories are reached through an
//! open descriptor (`/proc/self/fd/N`) so that committed renames of their
//! ancestors never invalidate a path.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, FileTimes, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, KernelConfig, LockOwner,
    Notifier, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry,
    ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};

use crate::cache::FileCache;
use crate::capture::{Armed, Capture, CaptureCounts, CapturePlan, Strata};
use crate::config::{FaultConfig, FsyncFailure};
use crate::history::{Barrier, History, Op};
use crate::layout::STAGING;
use crate::rng::SplitMix64;
use crate::rules::{FaultRule, OpKind, RuleSet};
use crate::sys;

/// How long the kernel may cache attributes and names. Every change goes
/// through this filesystem, so caching is safe; short enough that a human
/// poking at a mount sees fresh sizes.
const TTL: Duration = Duration::from_secs(1);

type Ino = u64;

#[derive(Debug)]
enum Kind {
    File,
    Dir,
    Symlink(PathBuf),
    /// FIFOs, sockets and device nodes. They exist only in memory when
    /// created through the mount: after a power cut they are meaningless.
    Special(FileType, u32),
}

#[derive(Debug)]
struct Node {
    kind: Kind,
    /// Parent and name of the most recent link, for rule paths.
    parent: Ino,
    name: OsString,
    nlink: u32,
    perm: u16,
    uid: u32,
    gid: u32,
    atime: SystemTime,
    mtime: SystemTime,
    ctime: SystemTime,
    /// Directories: the visible entries, `None` until first read from the
    /// backing directory.
    entries: Option<BTreeMap<OsString, Ino>>,
    /// Directories: the backing directory, once it exists durably.
    dir_handle: Option<File>,
    /// Regular files: unsynced data and the backing object, behind their
    /// own lock so that requests on different files do not wait for each
    /// other.
    file: Option<FileRef>,
    open_count: u32,
}

/// The data side of a regular file: its write cache and its backing object.
#[derive(Debug)]
pub(crate) struct FileData {
    cache: FileCache,
    /// The backing object, opened at first use and closed when the last
    /// descriptor of the file is released.
    fd: Option<File>,
    /// Where the backing object lives (`.crashlab-faultfs/<ino>`).
    object: PathBuf,
}

type FileRef = Arc<Mutex<FileData>>;

impl FileData {
    fn new(cache: FileCache, object: PathBuf) -> FileRef {
        Arc::new(Mutex::new(FileData { cache, fd: None, object }))
    }

    /// The cache and the open backing object.
    fn parts(&mut self) -> Result<(&mut FileCache, &mut File), Errno> {
        let fd = match &mut self.fd {
            Some(fd) => fd,
            none => none.insert(OpenOptions::new().read(true).write(true).open(&self.object).map_err(|e| errno(&e))?),
        };
        Ok((&mut self.cache, fd))
    }

    /// Makes the cached data durable: what `fsync` does.
    fn flush(&mut self, reach_disk: bool) -> Result<(), Errno> {
        let (cache, fd) = self.parts()?;
        cache.flush(fd).map_err(|e| errno(&e))?;
        if reach_disk {
            fd.sync_all().map_err(|e| errno(&e))?;
        }
        Ok(())
    }
}

/// Locks a file's data; a panic in another handler must not wedge it.
fn lock_file(f: &FileRef) -> MutexGuard<'_, FileData> {
    f.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Node {
    fn new(kind: Kind, parent: Ino, name: &OsStr, perm: u16, uid: u32, gid: u32) -> Self {
        let now = SystemTime::now();
        let is_dir = matches!(kind, Kind::Dir);
        Node {
            kind,
            parent,
            name: name.to_owned(),
            nlink: if is_dir { 2 } else { 1 },
            perm,
            uid,
            gid,
            atime: now,
            mtime: now,
            ctime: now,
            entries: is_dir.then(BTreeMap::new),
            dir_handle: None,
            file: None,
            open_count: 0,
        }
    }

    fn file_type(&self) -> FileType {
        match self.kind {
            Kind::File => FileType::RegularFile,
            Kind::Dir => FileType::Directory,
            Kind::Symlink(_) => FileType::Symlink,
            Kind::Special(t, _) => t,
        }
    }
}

/// A pending directory-entry change, replayed on the backing directory when
/// a `fsyncdir` commits it.
#[derive(Debug)]
enum NsOp {
    Create { parent: Ino, name: OsString, ino: Ino },
    Link { parent: Ino, name: OsString, ino: Ino },
    Remove { parent: Ino, name: OsString, ino: Ino },
    Rename { parent: Ino, name: OsString, newparent: Ino, newname: OsString, ino: Ino },
}

impl NsOp {
    fn touches(&self, dir: Ino) -> bool {
        match self {
            NsOp::Create { parent, .. } | NsOp::Link { parent, .. } | NsOp::Remove { parent, .. } => *parent == dir,
            NsOp::Rename { parent, newparent, .. } => *parent == dir || *newparent == dir,
        }
    }
}

#[derive(Debug)]
struct Handle {
    /// Opened with `O_SYNC` or `O_DSYNC`: every write is made durable.
    sync: bool,
}

/// Counters and gauges of one mount; see [`crate::FaultHandle::stats`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bytes written but not yet durable, over all files.
    pub dirty_bytes: u64,
    /// Files with unsynced data or size changes.
    pub dirty_files: u64,
    /// Directory-entry operations not yet made durable.
    pub pending_namespace_ops: u64,
    /// Filesystem requests served (including failed ones).
    pub ops: u64,
    /// `write` requests.
    pub writes: u64,
    /// Bytes accepted by `write`.
    pub bytes_written: u64,
    /// `fsync`/`fdatasync` of files, plus writes through `O_SYNC`/`O_DSYNC`.
    pub fsyncs: u64,
    /// `fsync` of directories.
    pub fsyncdirs: u64,
    /// Bytes written back early because a file hit the dirty bound.
    pub writeback_bytes: u64,
    /// Operations failed by `eio` and `enospc` rules.
    pub injected_errors: u64,
    /// Writes torn at a power cut.
    pub torn_writes: u64,
    /// Whether the power was cut (by [`crate::FaultHandle::power_cut`] or
    /// an aimed cut).
    pub powered_off: bool,
    /// Unsynced bytes, files with unsynced data and directory-entry
    /// operations that the power cut discarded (or tore); zero before it.
    pub cut_dirty_bytes: u64,
    /// See `cut_dirty_bytes`.
    pub cut_dirty_files: u64,
    /// See `cut_dirty_bytes`.
    pub cut_namespace_ops: u64,
    /// Whether the cut was an aimed one
    /// ([`crate::FaultHandle::cut_at_next_write`]), and the size of the
    /// write it landed on.
    pub aimed_cut_write_bytes: Option<u64>,
    /// How long after it was armed the aimed cut landed.
    pub aimed_cut_after: Option<Duration>,
}

/// An armed aimed cut.
#[derive(Debug)]
struct CutAim {
    min_bytes: u64,
    armed_at: Instant,
    /// `None`: the first write of `min_bytes` or more takes the cut. Else
    /// the write with the most at stake within the window does, by the
    /// secretary rule of a one-stratum capture plan (see
    /// [`crate::capture`]); after the window, the next write.
    best_of: Option<Strata>,
}

/// Everything behind the lock.
#[derive(Debug)]
pub(crate) struct State {
    staging: PathBuf,
    nodes: BTreeMap<Ino, Node>,
    /// Backing inode number to ours, so hard links are one inode.
    by_backing_ino: HashMap<u64, Ino>,
    next_ino: Ino,
    journal: VecDeque<NsOp>,
    handles: HashMap<u64, Handle>,
    dir_snapshots: HashMap<u64, Vec<(Ino, FileType, OsString)>>,
    next_fh: u64,
    rules: RuleSet,
    rng: SplitMix64,
    config: FaultConfig,
    backing: PathBuf,
    dead: bool,
    stats: Stats,
    /// An armed aimed cut: the power fails right after a write of at least
    /// its `min_bytes` that is not made durable at once.
    cut_at_write: Option<CutAim>,
    /// The operations not durable yet, for crash-state exploration. Its
    /// own lock, taken after the state's and after a file's, so that data
    /// requests record without the state's lock; each operation is recorded
    /// under its file's lock, in the order it took effect.
    history: Arc<Mutex<History>>,
    /// Set while an aimed cut or a capture plan is armed: requests are
    /// then served one at a time, as both need every other request held off.
    exclusive: Arc<AtomicBool>,
    /// An armed plan of crash points inside the load.
    capture: Option<Armed>,
    /// Crash points captured and not yet taken.
    captures: Vec<Capture>,
}

fn fd_path(f: &File) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd()))
}

fn ctime_of(meta: &fs::Metadata) -> SystemTime {
    let secs = u64::try_from(meta.ctime()).unwrap_or(0);
    let nanos = u32::try_from(meta.ctime_nsec()).unwrap_or(0);
    UNIX_EPOCH + Duration::new(secs, nanos)
}

/// Appends the operation `op()` builds to the history, unless recording has
/// stopped (then `op` is not even built: a write's copy of its data is the
/// cost); stops it when the history outgrows `max_bytes`.
fn record(history: &mut History, max_bytes: u64, op: impl FnOnce() -> Op) {
    if !history.is_complete() {
        return;
    }
    history.push_op(op());
    if history.bytes() > max_bytes {
        tracing::warn!(
            limit = max_bytes,
            "faultfs history outgrew its budget; crash-state exploration is off until the next checkpoint"
        );
        history.reset(true);
    }
}

fn lock_history(h: &Mutex<History>) -> MutexGuard<'_, History> {
    h.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn errno(err: &io::Error) -> Errno {
    err.raw_os_error().map_or(Errno::EIO, Errno::from_i32)
}

fn time_of(t: TimeOrNow) -> SystemTime {
    match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
    }
}

impl State {
    /// Prepares the staging directory and the root inode.
    pub(crate) fn new(backing: &Path, config: FaultConfig) -> io::Result<Self> {
        let staging = backing.join(STAGING);
        // Objects left by an earlier mount are orphans, as after fsck: any
        // data they hold that matters is also linked from a durable name.
        match fs::remove_dir_all(&staging) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        fs::create_dir(&staging)?;
        fs::set_permissions(&staging, fs::Permissions::from_mode(0o700))?;
        let root_handle = File::open(backing)?;
        let meta = root_handle.metadata()?;
        let mut root = Node::new(Kind::Dir, 1, OsStr::new(""), (meta.mode() & 0o7777) as u16, meta.uid(), meta.gid());
        root.entries = None;
        root.dir_handle = Some(root_handle);
        root.atime = meta.accessed()?;
        root.mtime = meta.modified()?;
        root.ctime = ctime_of(&meta);
        let rules = RuleSet::new(config.rules().iter().cloned());
        let mut history = History::with_sector_size(config.sector_size());
        history.reset(config.max_history_bytes() == 0);
        let history = Arc::new(Mutex::new(history));
        Ok(State {
            staging,
            nodes: BTreeMap::from([(1, root)]),
            by_backing_ino: HashMap::new(),
            next_ino: 2,
            journal: VecDeque::new(),
            handles: HashMap::new(),
            dir_snapshots: HashMap::new(),
            next_fh: 1,
            rules,
            rng: SplitMix64::new(config.seed()),
            config,
            backing: backing.to_owned(),
            dead: false,
            stats: Stats::default(),
            cut_at_write: None,
            history,
            exclusive: Arc::new(AtomicBool::new(false)),
            capture: None,
            captures: Vec::new(),
        })
    }

    fn node(&self, ino: Ino) -> Result<&Node, Errno> {
        self.nodes.get(&ino).ok_or(Errno::ENOENT)
    }

    fn node_mut(&mut self, ino: Ino) -> Result<&mut Node, Errno> {
        self.nodes.get_mut(&ino).ok_or(Errno::ENOENT)
    }

    fn object_path(&self, ino: Ino) -> PathBuf {
        self.staging.join(ino.to_string())
    }

    fn path_of(&self, mut ino: Ino) -> String {
        let mut parts = Vec::new();
        while ino != 1 {
            let Some(node) = self.nodes.get(&ino) else {
                break;
            };
            parts.push(node.name.to_string_lossy().into_owned());
            ino = node.parent;
        }
        parts.reverse();
        format!("/{}", parts.join("/"))
    }

    fn child_path(&self, parent: Ino, name: &OsStr) -> String {
        let p = self.path_of(parent);
        let sep = if p.ends_with('/') { "" } else { "/" };
        format!("{p}{sep}{}", name.to_string_lossy())
    }

    fn attr(&self, ino: Ino) -> Result<FileAttr, Errno> {
        let n = self.node(ino)?;
        let (size, rdev) = match &n.kind {
            Kind::File => (n.file.as_ref().map_or(0, |f| lock_file(f).cache.size()), 0),
            Kind::Dir => (4096, 0),
            Kind::Symlink(t) => (t.as_os_str().len() as u64, 0),
            Kind::Special(_, rdev) => (0, *rdev),
        };
        let nlink = match &n.entries {
            Some(entries) if matches!(n.kind, Kind::Dir) => {
                let subdirs =
                    entries.values().filter(|c| self.nodes.get(c).is_some_and(|c| matches!(c.kind, Kind::Dir))).count();
                2 + u32::try_from(subdirs).unwrap_or(u32::MAX - 2)
            }
            _ => n.nlink,
        };
        Ok(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: n.atime,
            mtime: n.mtime,
            ctime: n.ctime,
            crtime: n.ctime,
            kind: n.file_type(),
            perm: n.perm,
            nlink,
            uid: n.uid,
            gid: n.gid,
            rdev,
            blksize: 4096,
            flags: 0,
        })
    }

    /// Creates the in-memory inode for a backing entry seen for the first time.
    fn discover(&mut self, parent: Ino, name: &OsStr, path: &Path) -> io::Result<Ino> {
        let meta = fs::symlink_metadata(path)?;
        let ft = meta.file_type();
        if ft.is_file()
            && let Some(&ino) = self.by_backing_ino.get(&meta.ino())
        {
            return Ok(ino);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        let kind = if ft.is_file() {
            fs::hard_link(path, self.object_path(ino))?;
            self.by_backing_ino.insert(meta.ino(), ino);
            Kind::File
        } else if ft.is_dir() {
            Kind::Dir
        } else if ft.is_symlink() {
            Kind::Symlink(fs::read_link(path)?)
        } else {
            let t = FileType::from_std(ft).unwrap_or(FileType::NamedPipe);
            Kind::Special(t, u32::try_from(meta.rdev()).unwrap_or(0))
        };
        let mut node = Node::new(kind, parent, name, (meta.mode() & 0o7777) as u16, meta.uid(), meta.gid());
        node.nlink = u32::try_from(meta.nlink()).unwrap_or(1);
        node.atime = meta.accessed()?;
        node.mtime = meta.modified()?;
        node.ctime = ctime_of(&meta);
        match node.kind {
            Kind::File => node.file = Some(FileData::new(FileCache::new(meta.len()), self.object_path(ino))),
            Kind::Dir => {
                node.entries = None;
                node.dir_handle = Some(File::open(path)?);
            }
            _ => {}
        }
        self.nodes.insert(ino, node);
        Ok(ino)
    }

    /// Reads a durable directory's entries into memory, once.
    fn load_dir(&mut self, ino: Ino) -> Result<(), Errno> {
        let node = self.node(ino)?;
        if !matches!(node.kind, Kind::Dir) {
            return Err(Errno::ENOTDIR);
        }
        if node.entries.is_some() {
            return Ok(());
        }
        let dir = fd_path(node.dir_handle.as_ref().ok_or(Errno::EIO)?);
        let mut entries = BTreeMap::new();
        let listing = fs::read_dir(&dir).map_err(|e| errno(&e))?;
        for entry in listing {
            let entry = entry.map_err(|e| errno(&e))?;
            let name = entry.file_name();
            if ino == 1 && name == STAGING {
                continue;
            }
            let child = self.discover(ino, &name, &entry.path()).map_err(|e| errno(&e))?;
            entries.insert(name, child);
        }
        self.node_mut(ino)?.entries = Some(entries);
        Ok(())
    }

    fn lookup_child(&mut self, parent: Ino, name: &OsStr) -> Result<Option<Ino>, Errno> {
        self.load_dir(parent)?;
        let entries = self.node(parent)?.entries.as_ref().ok_or(Errno::EIO)?;
        Ok(entries.get(name).copied())
    }

    fn entries_mut(&mut self, dir: Ino) -> Result<&mut BTreeMap<OsString, Ino>, Errno> {
        self.node_mut(dir)?.entries.as_mut().ok_or(Errno::EIO)
    }

    fn dir_path(&self, ino: Ino) -> io::Result<PathBuf> {
        self.nodes
            .get(&ino)
            .and_then(|n| n.dir_handle.as_ref())
            .map(fd_path)
            .ok_or_else(|| io::Error::other("directory is not durable yet"))
    }

    /// The data side of a regular file, to lock after (or without) the
    /// state's lock.
    fn file(&self, ino: Ino) -> Result<FileRef, Errno> {
        let node = self.nodes.get(&ino).ok_or(Errno::ENOENT)?;
        if !matches!(node.kind, Kind::File) {
            return Err(Errno::EISDIR);
        }
        node.file.clone().ok_or(Errno::EIO)
    }

    /// The history, locked (after the state's lock and any file's).
    fn hist(&self) -> MutexGuard<'_, History> {
        lock_history(&self.history)
    }

    /// Adds a new child to a loaded directory, with a pending `Create`.
    fn add_child(&mut self, parent: Ino, name: &OsStr, node: Node) -> Ino {
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(ino, node);
        if let Ok(entries) = self.entries_mut(parent) {
            entries.insert(name.to_owned(), ino);
        }
        self.push_journal(NsOp::Create { parent, name: name.to_owned(), ino });
        self.touch_dir(parent);
        ino
    }

    /// A visible path relative to the root, as the history records it.
    fn rel_path(&self, mut ino: Ino) -> PathBuf {
        let mut parts = Vec::new();
        while ino != 1 {
            let Some(node) = self.nodes.get(&ino) else {
                break;
            };
            parts.push(node.name.as_os_str());
            ino = node.parent;
        }
        parts.iter().rev().collect()
    }

    /// Appends to the journal, and to the history the same operation by path.
    fn push_journal(&mut self, op: NsOp) {
        let at = |st: &State, parent: Ino, name: &OsStr| st.rel_path(parent).join(name);
        let recorded = match &op {
            NsOp::Create { parent, name, ino } => {
                let path = at(self, *parent, name);
                match self.nodes.get(ino).map(|n| (&n.kind, n)) {
                    Some((Kind::File, _)) => Some(Op::Create { path, file: *ino }),
                    Some((Kind::Dir, n)) => Some(Op::Mkdir { path, perm: u32::from(n.perm), uid: n.uid, gid: n.gid }),
                    Some((Kind::Symlink(target), _)) => Some(Op::Symlink { path, target: target.clone() }),
                    _ => None,
                }
            }
            NsOp::Link { parent, name, ino } => {
                Some(Op::Link { path: at(self, *parent, name), file: *ino }).filter(|_| self.is_recorded(&op))
            }
            NsOp::Remove { parent, name, ino } => {
                let path = at(self, *parent, name);
                Some(match self.nodes.get(ino).map(|n| &n.kind) {
                    Some(Kind::Dir) => Op::Rmdir { path },
                    _ => Op::Unlink { path },
                })
            }
            NsOp::Rename { parent, name, newparent, newname, .. } => {
                Some(Op::Rename { from: at(self, *parent, name), to: at(self, *newparent, newname) })
            }
        };
        if let Some(h) = recorded {
            self.record(h);
        }
        self.journal.push_back(op);
    }

    /// Whether a journal entry has its counterpart in the history: FIFOs and
    /// other special nodes are never durable, so their creation is not.
    fn is_recorded(&self, op: &NsOp) -> bool {
        match op {
            NsOp::Create { ino, .. } => !matches!(self.nodes.get(ino).map(|n| &n.kind), Some(Kind::Special(..)) | None),
            NsOp::Link { ino, .. } => matches!(self.nodes.get(ino).map(|n| &n.kind), Some(Kind::File)),
            NsOp::Remove { .. } | NsOp::Rename { .. } => true,
        }
    }

    /// Appends to the history, unless the power is off or recording has
    /// stopped; stops it when the history outgrows its budget.
    fn record(&self, op: Op) {
        if !self.dead {
            record(&mut self.hist(), self.config.max_history_bytes(), || op);
        }
    }

    /// An `fsync` of `ino` failed by a rule: apply [`FsyncFailure`].
    fn fsync_failed(&mut self, ino: Ino) {
        let mode = self.config.fsync_failure();
        let Some(file) = self.nodes.get(&ino).and_then(|n| n.file.as_ref()) else {
            return;
        };
        let mut data = lock_file(file);
        match mode {
            FsyncFailure::KeepDirty => {}
            FsyncFailure::Ext4 => {
                data.cache.fail_clean();
                let size = data.cache.pending_size();
                self.hist().forget_writes(ino, false, size);
            }
            FsyncFailure::Btrfs => {
                data.cache.revert();
                self.hist().forget_writes(ino, true, None);
            }
        }
    }

    /// A snapshot of the unsynced history.
    pub(crate) fn history(&self) -> History {
        self.hist().clone()
    }

    /// Copies the backing directory (the durable base, with its backing
    /// objects) into `into`, keeping hard links, and returns the history.
    pub(crate) fn crash_point(&self, into: &Path) -> io::Result<History> {
        crate::layout::copy_tree(&self.backing, into)?;
        Ok(self.hist().clone())
    }

    /// Whether a call of kind `op` (`sync`: an `O_SYNC` write or truncate)
    /// may be a crash point of the armed plan, before its path is known.
    fn capture_wanted(&self, op: OpKind, sync: bool) -> bool {
        self.capture.as_ref().is_some_and(|a| a.plan.trigger.may_match(op, sync))
    }

    /// A call of kind `op` (`sync`: an `O_SYNC` write or truncate) on
    /// `path` arrived and has not taken effect: if it is a candidate of the
    /// armed plan and selected, copy the durable base and keep it with the
    /// history. Every other request waits, since requests take the gate
    /// exclusively while a plan is armed. A failed copy
    /// is kept as a point with an error rather than failing the call: the
    /// application must not see the harness's trouble.
    /// `file`: for an `fsync`/`fdatasync`, the file synced, which must have
    /// unsynced writes for the call to be a candidate (an fsync that
    /// persists only a size change, as after a file is extended, is not).
    fn consider_capture(&mut self, op: OpKind, sync: bool, call: &str, path: Option<&str>, file: Option<Ino>) {
        let (candidate, score) = {
            let history = self.hist();
            let pending = match file {
                Some(f) => history.has_writes_of(f),
                None => history.has_ops(),
            };
            (history.is_complete() && pending, crate::capture::score(&history))
        };
        let Some(armed) = self.capture.as_mut() else { return };
        // Candidates are counted past the last capture too, so that a
        // report can say how many points there were to choose from.
        if !armed.plan.trigger.matches(op, sync, path) {
            return;
        }
        if !candidate {
            armed.counts.skipped_empty += 1;
            return;
        }
        let since = armed.armed_at.elapsed();
        let Some(n) = armed.select(since, score) else { return };
        let dir = armed.plan.into.join(armed.counts.captured.to_string());
        armed.counts.captured += 1;
        let at = std::time::Instant::now();
        let label = match path {
            Some(p) => format!("{call} #{n} of {p}"),
            None => format!("{call} #{n}"),
        };
        let copied = fs::create_dir_all(&armed.plan.into).and_then(|()| crate::layout::copy_tree(&self.backing, &dir));
        let error = copied.err().map(|e| format!("copy the durable base to {}: {e}", dir.display()));
        let history = self.hist().clone();
        self.captures.push(Capture { base: dir, history, at, since, label, error, score });
    }

    /// Arms a plan; see [`crate::FaultHandle::capture_at`].
    pub(crate) fn capture_at(&mut self, plan: CapturePlan) {
        self.capture = Some(Armed::new(plan));
        self.update_exclusive();
    }

    /// Disarms the plan and returns what it saw.
    pub(crate) fn stop_capture(&mut self) -> CaptureCounts {
        let counts = self.capture.take().map(|a| a.counts).unwrap_or_default();
        self.update_exclusive();
        counts
    }

    /// Requests are served one at a time while an aimed cut or a capture
    /// plan is armed; see [`FaultFs::begin`].
    fn update_exclusive(&self) {
        self.exclusive.store(self.capture.is_some() || self.cut_at_write.is_some(), Ordering::SeqCst);
    }

    /// The armed plan's counters so far.
    pub(crate) fn capture_counts(&self) -> CaptureCounts {
        self.capture.as_ref().map(|a| a.counts).unwrap_or_default()
    }

    /// The points captured since the last call.
    pub(crate) fn take_captures(&mut self) -> Vec<Capture> {
        std::mem::take(&mut self.captures)
    }

    fn touch_dir(&mut self, dir: Ino) {
        if let Some(d) = self.nodes.get_mut(&dir) {
            let now = SystemTime::now();
            d.mtime = now;
            d.ctime = now;
        }
    }

    /// Owner and mode of a new inode, honouring a set-group-ID parent.
    fn new_owner(&self, req: &Request, parent: Ino, mode: u32, is_dir: bool) -> (u16, u32, u32) {
        let mut perm = (mode & 0o7777) as u16;
        let mut gid = req.gid();
        if let Some(p) = self.nodes.get(&parent)
            && p.perm & 0o2000 != 0
        {
            gid = p.gid;
            if is_dir {
                perm |= 0o2000;
            }
        }
        (perm, req.uid(), gid)
    }

    fn new_file(&mut self, req: &Request, parent: Ino, name: &OsStr, mode: u32) -> Result<Ino, Errno> {
        if self.lookup_child(parent, name)?.is_some() {
            return Err(Errno::EEXIST);
        }
        if parent == 1 && name == STAGING {
            return Err(Errno::EPERM);
        }
        let (perm, uid, gid) = self.new_owner(req, parent, mode, false);
        let ino = self.next_ino;
        let object = self.object_path(ino);
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&object)
            .map_err(|e| errno(&e))?;
        f.set_permissions(fs::Permissions::from_mode(u32::from(perm)))
            .and_then(|()| std::os::unix::fs::fchown(&f, Some(uid), Some(gid)))
            .map_err(|e| errno(&e))?;
        let mut node = Node::new(Kind::File, parent, name, perm, uid, gid);
        node.file = Some(Arc::new(Mutex::new(FileData { cache: FileCache::new(0), fd: Some(f), object })));
        Ok(self.add_child(parent, name, node))
    }

    fn open_handle(&mut self, ino: Ino, flags: i32) -> u64 {
        let fh = self.next_fh;
        self.next_fh += 1;
        self.handles.insert(fh, Handle { sync: flags & libc::O_DSYNC != 0 });
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.open_count += 1;
        }
        fh
    }

    /// Commits the first `n` journal entries to the backing directory.
    fn commit(&mut self, n: usize) -> io::Result<()> {
        let mut synced_dirs = Vec::new();
        for _ in 0..n {
            let Some(op) = self.journal.front() else {
                break;
            };
            self.apply(op)?;
            if let Some(op) = self.journal.pop_front() {
                match op {
                    NsOp::Create { parent, .. } | NsOp::Link { parent, .. } | NsOp::Remove { parent, .. } => {
                        synced_dirs.push(parent);
                    }
                    NsOp::Rename { parent, newparent, .. } => synced_dirs.extend([parent, newparent]),
                }
            }
        }
        if self.config.fsync_reaches_disk() {
            synced_dirs.sort_unstable();
            synced_dirs.dedup();
            for d in synced_dirs {
                if let Some(h) = self.nodes.get(&d).and_then(|n| n.dir_handle.as_ref()) {
                    h.sync_all()?;
                }
            }
        }
        Ok(())
    }

    fn apply(&self, op: &NsOp) -> io::Result<()> {
        let ignore_missing = |r: io::Result<()>, special: bool| match r {
            Err(e) if special && e.kind() == io::ErrorKind::NotFound => Ok(()),
            r => r,
        };
        match op {
            NsOp::Create { parent, name, ino } | NsOp::Link { parent, name, ino } => {
                let path = self.dir_path(*parent)?.join(name);
                let node = self.nodes.get(ino).ok_or_else(|| io::Error::other("lost inode"))?;
                match &node.kind {
                    Kind::File => fs::hard_link(self.object_path(*ino), &path),
                    Kind::Dir => {
                        fs::create_dir(&path)?;
                        fs::set_permissions(&path, fs::Permissions::from_mode(u32::from(node.perm)))?;
                        std::os::unix::fs::chown(&path, Some(node.uid), Some(node.gid))?;
                        // The handle is opened by `commit_through`; `apply`
                        // only reads state.
                        Ok(())
                    }
                    Kind::Symlink(target) => {
                        std::os::unix::fs::symlink(target, &path)?;
                        std::os::unix::fs::lchown(&path, Some(node.uid), Some(node.gid))
                    }
                    Kind::Special(..) => Ok(()),
                }
            }
            NsOp::Remove { parent, name, ino } => {
                let path = self.dir_path(*parent)?.join(name);
                match self.nodes.get(ino).map(|n| &n.kind) {
                    Some(Kind::Dir) => fs::remove_dir(&path),
                    Some(Kind::Special(..)) => ignore_missing(fs::remove_file(&path), true),
                    _ => fs::remove_file(&path),
                }
            }
            NsOp::Rename { parent, name, newparent, newname, ino } => {
                let from = self.dir_path(*parent)?.join(name);
                let to = self.dir_path(*newparent)?.join(newname);
                let special = matches!(self.nodes.get(ino).map(|n| &n.kind), Some(Kind::Special(..)));
                ignore_missing(fs::rename(&from, &to), special)
            }
        }
    }

    fn commit_through(&mut self, n: usize) -> io::Result<()> {
        // Directory creation needs the new directory's handle before any
        // entry inside it can be committed, so commit one op at a time.
        for _ in 0..n {
            let created_dir = match self.journal.front() {
                Some(NsOp::Create { parent, name, ino })
                    if matches!(self.nodes.get(ino).map(|n| &n.kind), Some(Kind::Dir)) =>
                {
                    Some((*parent, name.clone(), *ino))
                }
                _ => None,
            };
            self.commit(1)?;
            if let Some((parent, name, ino)) = created_dir {
                let handle = File::open(self.dir_path(parent)?.join(&name))?;
                if let Some(n) = self.nodes.get_mut(&ino) {
                    n.dir_handle = Some(handle);
                }
            }
        }
        Ok(())
    }

    /// Makes everything durable.
    pub(crate) fn checkpoint(&mut self) -> io::Result<()> {
        if self.dead {
            return Err(io::Error::other("filesystem is powered off"));
        }
        self.commit_through(self.journal.len())?;
        let reach_disk = self.config.fsync_reaches_disk();
        for file in self.nodes.values().filter_map(|n| n.file.as_ref()) {
            let mut data = lock_file(file);
            if data.cache.is_dirty() {
                data.flush(reach_disk).map_err(|e| io::Error::from_raw_os_error(e.code()))?;
            }
        }
        self.hist().reset(self.config.max_history_bytes() == 0);
        Ok(())
    }

    /// Simulates power loss; returns the inodes whose kernel caches should be
    /// dropped.
    pub(crate) fn power_cut(&mut self) -> Vec<Ino> {
        if self.dead {
            return Vec::new();
        }
        let before = self.stats();
        self.stats.cut_dirty_bytes = before.dirty_bytes;
        self.stats.cut_dirty_files = before.dirty_files;
        self.stats.cut_namespace_ops = before.pending_namespace_ops;
        self.cut_at_write = None;
        self.update_exclusive();
        self.dead = true;
        self.stats.powered_off = true;
        self.journal.clear();
        let sector = self.config.sector_size();
        let inos: Vec<Ino> = self.nodes.keys().copied().collect();
        for &ino in &inos {
            let Some(file) = self.nodes.get(&ino).and_then(|n| n.file.clone()) else {
                continue;
            };
            let mut data = lock_file(&file);
            if !data.cache.is_dirty() {
                continue;
            }
            let path = self.rules.needs_path().then(|| self.path_of(ino));
            if let Some(mode) = self.rules.torn(path.as_deref())
                && let Ok((cache, fd)) = data.parts()
            {
                let pieces = cache.torn_pieces(mode, sector, &mut self.rng);
                if !pieces.is_empty() {
                    for (off, piece) in pieces {
                        if let Err(e) = std::os::unix::fs::FileExt::write_all_at(&*fd, &piece, off) {
                            tracing::warn!(ino, error = %e, "could not persist torn write");
                        }
                    }
                    self.stats.torn_writes += 1;
                }
            }
            data.cache = FileCache::new(0);
        }
        inos
    }

    pub(crate) fn stats(&self) -> Stats {
        let mut s = self.stats.clone();
        for (_, bytes) in self.unsynced_files() {
            s.dirty_files += 1;
            s.dirty_bytes += bytes;
        }
        s.pending_namespace_ops = self.journal.len() as u64;
        s
    }

    /// Each file with unsynced data, and its unsynced bytes.
    fn unsynced_files(&self) -> impl Iterator<Item = (Ino, u64)> + '_ {
        self.nodes.iter().filter_map(|(&ino, n)| {
            let data = lock_file(n.file.as_ref()?);
            data.cache.is_dirty().then(|| (ino, data.cache.dirty_bytes()))
        })
    }

    /// Arms an aimed cut; see [`crate::FaultHandle::cut_at_next_write`]
    /// and, with a window, [`crate::FaultHandle::cut_at_best_write`].
    pub(crate) fn arm_cut_at_write(&mut self, min_bytes: u64, window: Option<(Duration, u64)>) {
        if !self.dead {
            let best_of = window.map(|(w, seed)| Strata::new(w, 1, &mut SplitMix64::new(seed)));
            self.cut_at_write = Some(CutAim { min_bytes: min_bytes.max(1), armed_at: Instant::now(), best_of });
            self.update_exclusive();
        }
    }

    /// Whether an armed aimed cut takes this write of `len` bytes to file
    /// `ino`: at stake would be the files with unsynced data, this one
    /// among them, times their unsynced bytes and this write's (the
    /// capture plan's score, from the caches, as the history may be off).
    fn cut_takes_write(&mut self, ino: Ino, len: u64) -> bool {
        let Some(aim) = self.cut_at_write.as_ref().filter(|a| len >= a.min_bytes) else {
            return false;
        };
        if aim.best_of.is_none() {
            return true;
        }
        let (mut files, mut bytes, mut this_dirty) = (0u64, len, false);
        for (i, dirty) in self.unsynced_files() {
            files += 1;
            bytes += dirty;
            this_dirty |= i == ino;
        }
        files += u64::from(!this_dirty);
        let aim = self.cut_at_write.as_mut().expect("armed above");
        let since = aim.armed_at.elapsed();
        aim.best_of.as_mut().is_some_and(|strata| strata.select(since, files.saturating_mul(bytes), 0))
    }

    pub(crate) fn add_rule(&mut self, rule: FaultRule) {
        self.rules.add(rule);
    }

    pub(crate) fn clear_rules(&mut self) {
        self.rules.clear();
    }

    pub(crate) fn rules(&self) -> Vec<FaultRule> {
        self.rules.rules()
    }

    /// Called at unmount: a clean shutdown syncs, like the kernel does.
    fn shutdown(&mut self) {
        if !self.dead
            && let Err(e) = self.checkpoint()
        {
            tracing::error!(error = %e, "faultfs could not sync at unmount");
        }
        for n in self.nodes.values_mut() {
            if let Some(file) = &n.file {
                lock_file(file).fd = None;
            }
            n.dir_handle = None;
        }
        if let Err(e) = fs::remove_dir_all(&self.staging) {
            tracing::warn!(error = %e, "could not remove faultfs staging directory");
        }
    }
}

/// Counters that data requests update without the state's lock.
#[derive(Debug, Default)]
struct Counters {
    writes: AtomicU64,
    bytes_written: AtomicU64,
    fsyncs: AtomicU64,
    writeback_bytes: AtomicU64,
}

/// State shared between the FUSE threads and the control handle.
///
/// Locks, always taken in this order: `gate` (shared by every request,
/// exclusive for power cuts, checkpoints, crash points, and for every
/// request while an aimed cut or a capture plan is armed), `state` (the
/// namespace, rules, handles; held briefly by data requests), a file's
/// [`FileData`], then the history.
pub(crate) struct Shared {
    gate: RwLock<()>,
    state: Mutex<State>,
    history: Arc<Mutex<History>>,
    exclusive: Arc<AtomicBool>,
    /// Orders writes for writeback (oldest data first).
    write_seq: AtomicU64,
    counters: Counters,
    pub(crate) notifier: Mutex<Option<Notifier>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("state", &self.state).finish_non_exhaustive()
    }
}

/// Whether the holder shares the filesystem with other requests or has it
/// alone.
enum Gate<'a> {
    Shared(#[allow(dead_code)] RwLockReadGuard<'a, ()>),
    Exclusive(#[allow(dead_code)] RwLockWriteGuard<'a, ()>),
}

/// The state, locked, and the gate it was reached through. Dereferences to
/// the [`State`]; [`Locked::unlock`] lets go of the state but keeps the
/// gate, so that a data request finishes under its file's lock alone while
/// no power cut or checkpoint can start.
pub(crate) struct Locked<'a> {
    // Dropped in this order: the state's lock, then the gate.
    st: MutexGuard<'a, State>,
    gate: Gate<'a>,
}

impl<'a> Locked<'a> {
    fn unlock(self) -> Gate<'a> {
        let Locked { st, gate } = self;
        drop(st);
        gate
    }
}

impl std::ops::Deref for Locked<'_> {
    type Target = State;

    fn deref(&self) -> &State {
        &self.st
    }
}

impl std::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut State {
        &mut self.st
    }
}

impl Shared {
    pub(crate) fn new(state: State) -> Self {
        Shared {
            gate: RwLock::new(()),
            history: Arc::clone(&state.history),
            exclusive: Arc::clone(&state.exclusive),
            state: Mutex::new(state),
            write_seq: AtomicU64::new(0),
            counters: Counters::default(),
            notifier: Mutex::new(None),
        }
    }

    /// The state alone, for reading it or for changes no request races
    /// with (rules, plans, statistics).
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic in a handler must not wedge the mount: the state is still
        // consistent enough to fail requests with EIO.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The state with every request held off, for what must see the whole
    /// filesystem at rest: power cuts, checkpoints, crash points.
    pub(crate) fn exclusive(&self) -> Locked<'_> {
        let gate = Gate::Exclusive(self.gate.write().unwrap_or_else(std::sync::PoisonError::into_inner));
        Locked { st: self.lock(), gate }
    }

    /// The state for one request: shared with other requests, unless an
    /// aimed cut or a capture plan is armed, which need the request alone.
    fn request(&self) -> Locked<'_> {
        loop {
            if self.exclusive.load(Ordering::SeqCst) {
                return self.exclusive();
            }
            let gate = Gate::Shared(self.gate.read().unwrap_or_else(std::sync::PoisonError::into_inner));
            let st = self.lock();
            // Armed between the check and the lock: start again, alone.
            if !self.exclusive.load(Ordering::SeqCst) {
                return Locked { st, gate };
            }
        }
    }

    /// Power cut plus dropping the kernel's page cache, so reads of cached
    /// pages fail too instead of showing data that no longer exists.
    pub(crate) fn power_cut(&self) {
        let inos = self.exclusive().power_cut();
        self.invalidate(&inos);
    }

    /// Counters and gauges.
    pub(crate) fn stats(&self) -> Stats {
        let mut s = self.lock().stats();
        let c = &self.counters;
        s.writes += c.writes.load(Ordering::Relaxed);
        s.bytes_written += c.bytes_written.load(Ordering::Relaxed);
        s.fsyncs += c.fsyncs.load(Ordering::Relaxed);
        s.writeback_bytes += c.writeback_bytes.load(Ordering::Relaxed);
        s
    }

    /// Drops the kernel's cached pages and attributes of `inos`.
    pub(crate) fn invalidate(&self, inos: &[Ino]) {
        let notifier = self.notifier.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        if let Some(n) = notifier {
            for &ino in inos {
                // ENOENT just means the kernel had nothing cached.
                let _ = n.inval_inode(INodeNo(ino), 0, -1);
            }
        }
    }
}

/// The [`Filesystem`] given to fuser.
#[derive(Debug)]
pub(crate) struct FaultFs {
    pub(crate) shared: Arc<Shared>,
}

impl FaultFs {
    /// Locks the state for one request: fails it if the power is off,
    /// applies latency and error rules.
    fn begin(&self, op: OpKind, path: impl FnOnce(&State) -> Option<String>) -> Result<Locked<'_>, Errno> {
        self.begin_or(op, path, |_| {})
    }

    /// [`Self::begin`], calling `injected` on the state when a rule fails
    /// the operation.
    fn begin_or(
        &self,
        op: OpKind,
        path: impl FnOnce(&State) -> Option<String>,
        injected: impl FnOnce(&mut State),
    ) -> Result<Locked<'_>, Errno> {
        let mut st = self.shared.request();
        st.stats.ops += 1;
        if st.dead {
            return Err(Errno::EIO);
        }
        // A crash point's label names the call's path, so it is built for
        // every call that may be one.
        // fsync considers its point itself, knowing which file it syncs.
        let capture = op != OpKind::Fsync && st.capture_wanted(op, false);
        let path = if st.rules.needs_path() || capture { path(&st) } else { None };
        let verdict = st.rules.check(op, path.as_deref());
        if verdict.fail {
            st.stats.injected_errors += 1;
            injected(&mut st);
            return Err(Errno::EIO);
        }
        if !verdict.delay.is_zero() {
            // Other requests, and power cuts, go on meanwhile.
            drop(st);
            std::thread::sleep(verdict.delay);
            st = self.shared.request();
            if st.dead {
                return Err(Errno::EIO);
            }
        }
        if capture {
            st.consider_capture(op, false, &op.to_string(), path.as_deref(), None);
        }
        Ok(st)
    }

    fn begin_ino(&self, op: OpKind, ino: Ino) -> Result<Locked<'_>, Errno> {
        self.begin(op, |st| Some(st.path_of(ino)))
    }

    fn begin_child(&self, op: OpKind, parent: Ino, name: &OsStr) -> Result<Locked<'_>, Errno> {
        self.begin(op, |st| Some(st.child_path(parent, name)))
    }

    /// A write's effect on its file, under the file's lock (and not the
    /// state's): cached, made durable at once when `sync` (`O_SYNC`), and
    /// recorded in the history in the order it took effect. Returns the
    /// file's lock, still held, for [`Self::write_back_early`], which the
    /// caller runs once it has replied.
    fn write_data<'f>(
        &self,
        file: &'f FileRef,
        ino: Ino,
        offset: u64,
        bytes: &[u8],
        sync: bool,
        limits: &WriteLimits,
    ) -> Result<MutexGuard<'f, FileData>, Errno> {
        let counters = &self.shared.counters;
        let mut data = lock_file(file);
        let (cache, _) = data.parts()?;
        // Taken under the file's lock, so the file's writes get
        // increasing numbers in the order they took effect.
        let seq = self.shared.write_seq.fetch_add(1, Ordering::Relaxed) + 1;
        cache.write(offset, bytes, seq);
        counters.writes.fetch_add(1, Ordering::Relaxed);
        counters.bytes_written.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        if sync {
            counters.fsyncs.fetch_add(1, Ordering::Relaxed);
            data.flush(limits.reach_disk)?;
            lock_history(&self.shared.history).persist_file(ino, Barrier::OSync(ino));
        } else {
            record(&mut lock_history(&self.shared.history), limits.max_history, || Op::Write {
                file: ino,
                offset,
                data: bytes.into(),
            });
        }
        Ok(data)
    }

    /// Early writeback after a write of `len` bytes, still under the file's
    /// lock (and the request's gate, so no power cut, checkpoint or crash
    /// point comes between the write and this): past the dirty bound, the
    /// oldest extents are written to the backing object until the file is
    /// back within the bound by the write's size, at least
    /// [`WRITEBACK_STEP`]. Run after the write's reply, as kernel writeback
    /// runs after `write` returned: the application's next write is copied
    /// into the kernel while this one's writeback runs, and each write over
    /// the bound pays for about its own size. A failure leaves the extents
    /// it did not write dirty (a later `fsync` retries them) and is logged,
    /// since the write already succeeded.
    fn write_back_early(&self, mut data: MutexGuard<'_, FileData>, ino: Ino, len: u64, limits: &WriteLimits) {
        if data.cache.dirty_bytes() <= limits.max_dirty {
            return;
        }
        let step = len.max(WRITEBACK_STEP).min(limits.max_dirty / 2);
        let written = match data.parts() {
            Ok((cache, fd)) => cache.writeback(fd, limits.max_dirty - step),
            Err(e) => Err(io::Error::from_raw_os_error(e.code())),
        };
        match written {
            Ok(n) => _ = self.shared.counters.writeback_bytes.fetch_add(n, Ordering::Relaxed),
            Err(e) => tracing::warn!(error = %e, ino, "faultfs early writeback failed; the data stays dirty"),
        }
        // Trimmed whatever happened: extents written before a failure are
        // durable too.
        let mut history = lock_history(&self.shared.history);
        if history.records_file(ino) {
            history.trim_file(ino, &data.cache.dirty_ranges(), data.cache.pending_size());
        }
    }
}

/// Least early writeback per write over the dirty bound, so that a stream
/// of small writes pays for sorting the file's extents by age and trimming
/// the history once per this many bytes rather than on every write.
const WRITEBACK_STEP: u64 = 256 << 10;

/// The configuration a write needs once the state's lock is let go.
struct WriteLimits {
    max_dirty: u64,
    max_history: u64,
    reach_disk: bool,
}

macro_rules! tri {
    ($reply:ident, $e:expr) => {
        match $e {
            Ok(v) => v,
            Err(err) => return $reply.error(err),
        }
    };
}

fn io_tri<T>(r: io::Result<T>) -> Result<T, Errno> {
    r.map_err(|e| errno(&e))
}

impl Filesystem for FaultFs {
    fn init(&mut self, _req: &Request, _config: &mut KernelConfig) -> io::Result<()> {
        Ok(())
    }

    fn destroy(&mut self) {
        self.shared.lock().shutdown();
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let mut st = tri!(reply, self.begin_child(OpKind::Lookup, parent.0, name));
        let ino = tri!(reply, st.lookup_child(parent.0, name));
        let ino = tri!(reply, ino.ok_or(Errno::ENOENT));
        let attr = tri!(reply, st.attr(ino));
        reply.entry(&TTL, &attr, Generation(0));
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let st = tri!(reply, self.begin_ino(OpKind::Getattr, ino.0));
        let attr = tri!(reply, st.attr(ino.0));
        reply.attr(&TTL, &attr);
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let ino = ino.0;
        let mut st = tri!(reply, self.begin_ino(OpKind::Setattr, ino));
        let result = (|| -> Result<(), Errno> {
            let is_file = matches!(st.node(ino)?.kind, Kind::File);
            let is_dir = matches!(st.node(ino)?.kind, Kind::Dir);
            // Inode metadata is written through to the backing inode at once
            // (see the crate docs); only data and names are cached.
            let target: Option<PathBuf> = if is_file {
                Some(st.object_path(ino))
            } else if is_dir {
                st.node(ino)?.dir_handle.as_ref().map(fd_path)
            } else {
                None
            };
            let now = SystemTime::now();
            if let Some(mode) = mode {
                let perm = (mode & 0o7777) as u16;
                if let Some(t) = &target {
                    io_tri(fs::set_permissions(t, fs::Permissions::from_mode(u32::from(perm))))?;
                }
                st.node_mut(ino)?.perm = perm;
            }
            if uid.is_some() || gid.is_some() {
                if let Some(t) = &target {
                    io_tri(std::os::unix::fs::chown(t, uid, gid))?;
                }
                let n = st.node_mut(ino)?;
                n.uid = uid.unwrap_or(n.uid);
                n.gid = gid.unwrap_or(n.gid);
                // Like the kernel, drop set-user-ID on a chown of a file.
                if is_file {
                    n.perm &= !0o4000;
                }
            }
            if let Some(size) = size {
                if !is_file {
                    return Err(Errno::EISDIR);
                }
                let sync = fh.is_some_and(|fh| st.handles.get(&fh.0).is_some_and(|h| h.sync));
                if sync
                    && st.capture.as_ref().is_some_and(|a| a.plan.trigger.op.is_none())
                    && st.capture_wanted(OpKind::Setattr, true)
                {
                    let path = st.path_of(ino);
                    st.consider_capture(OpKind::Setattr, true, "O_SYNC truncate", Some(&path), None);
                }
                let file = st.file(ino)?;
                let mut data = lock_file(&file);
                data.parts()?;
                data.cache.truncate(size);
                // Recorded under the file's lock, so in the order the
                // file's writes and truncates took effect.
                if sync {
                    data.flush(st.config.fsync_reaches_disk())?;
                    st.hist().persist_file(ino, Barrier::OSync(ino));
                } else {
                    st.record(Op::Truncate { file: ino, size });
                }
                drop(data);
                st.node_mut(ino)?.mtime = now;
            }
            if atime.is_some() || mtime.is_some() {
                let n = st.node_mut(ino)?;
                let a = atime.map_or(n.atime, time_of);
                let m = mtime.map_or(n.mtime, time_of);
                n.atime = a;
                n.mtime = m;
                if let Some(t) = &target {
                    let f = io_tri(File::open(t))?;
                    io_tri(f.set_times(FileTimes::new().set_accessed(a).set_modified(m)))?;
                }
            }
            st.node_mut(ino)?.ctime = now;
            Ok(())
        })();
        tri!(reply, result);
        let attr = tri!(reply, st.attr(ino));
        reply.attr(&TTL, &attr);
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let st = tri!(reply, self.begin_ino(OpKind::Getattr, ino.0));
        match &tri!(reply, st.node(ino.0)).kind {
            Kind::Symlink(t) => reply.data(t.as_os_str().as_bytes()),
            _ => reply.error(Errno::EINVAL),
        }
    }

    fn mknod(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, rdev: u32, reply: ReplyEntry) {
        let parent = parent.0;
        let mut st = tri!(reply, self.begin_child(OpKind::Create, parent, name));
        let mode = mode & !umask;
        let ino = match mode & libc::S_IFMT {
            libc::S_IFREG => tri!(reply, st.new_file(req, parent, name, mode)),
            fmt => {
                let t = match fmt {
                    libc::S_IFIFO => FileType::NamedPipe,
                    libc::S_IFSOCK => FileType::Socket,
                    libc::S_IFCHR => FileType::CharDevice,
                    libc::S_IFBLK => FileType::BlockDevice,
                    _ => return reply.error(Errno::EINVAL),
                };
                if tri!(reply, st.lookup_child(parent, name)).is_some() {
                    return reply.error(Errno::EEXIST);
                }
                let (perm, uid, gid) = st.new_owner(req, parent, mode, false);
                let node = Node::new(Kind::Special(t, rdev), parent, name, perm, uid, gid);
                st.add_child(parent, name, node)
            }
        };
        let attr = tri!(reply, st.attr(ino));
        reply.entry(&TTL, &attr, Generation(0));
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        let parent = parent.0;
        let mut st = tri!(reply, self.begin_child(OpKind::Mkdir, parent, name));
        if tri!(reply, st.lookup_child(parent, name)).is_some() {
            return reply.error(Errno::EEXIST);
        }
        if parent == 1 && name == STAGING {
            return reply.error(Errno::EPERM);
        }
        let (perm, uid, gid) = st.new_owner(req, parent, mode & !umask, true);
        let node = Node::new(Kind::Dir, parent, name, perm, uid, gid);
        let ino = st.add_child(parent, name, node);
        let attr = tri!(reply, st.attr(ino));
        reply.entry(&TTL, &attr, Generation(0));
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let parent = parent.0;
        let mut st = tri!(reply, self.begin_child(OpKind::Unlink, parent, name));
        let ino = tri!(reply, tri!(reply, st.lookup_child(parent, name)).ok_or(Errno::ENOENT));
        if matches!(tri!(reply, st.node(ino)).kind, Kind::Dir) {
            return reply.error(Errno::EISDIR);
        }
        tri!(reply, st.entries_mut(parent)).remove(name);
        st.push_journal(NsOp::Remove { parent, name: name.to_owned(), ino });
        st.touch_dir(parent);
        let n = tri!(reply, st.node_mut(ino));
        n.nlink = n.nlink.saturating_sub(1);
        n.ctime = SystemTime::now();
        if n.nlink == 0 && n.open_count == 0 {
            // Nobody can reach the data any more; free the memory. The
            // object stays until remount because a pending Create may
            // still link it.
            if let Some(file) = &n.file {
                let mut data = lock_file(file);
                data.cache = FileCache::new(0);
                data.fd = None;
            }
        }
        reply.ok();
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let parent = parent.0;
        let mut st = tri!(reply, self.begin_child(OpKind::Rmdir, parent, name));
        let ino = tri!(reply, tri!(reply, st.lookup_child(parent, name)).ok_or(Errno::ENOENT));
        if !matches!(tri!(reply, st.node(ino)).kind, Kind::Dir) {
            return reply.error(Errno::ENOTDIR);
        }
        tri!(reply, st.load_dir(ino));
        if !tri!(reply, st.entries_mut(ino)).is_empty() {
            return reply.error(Errno::ENOTEMPTY);
        }
        tri!(reply, st.entries_mut(parent)).remove(name);
        st.push_journal(NsOp::Remove { parent, name: name.to_owned(), ino });
        st.touch_dir(parent);
        if let Ok(n) = st.node_mut(ino) {
            n.nlink = 0;
        }
        reply.ok();
    }

    fn symlink(&self, req: &Request, parent: INodeNo, link_name: &OsStr, target: &Path, reply: ReplyEntry) {
        let parent = parent.0;
        let mut st = tri!(reply, self.begin_child(OpKind::Symlink, parent, link_name));
        if tri!(reply, st.lookup_child(parent, link_name)).is_some() {
            return reply.error(Errno::EEXIST);
        }
        let (_, uid, gid) = st.new_owner(req, parent, 0o777, false);
        let node = Node::new(Kind::Symlink(target.to_owned()), parent, link_name, 0o777, uid, gid);
        let ino = st.add_child(parent, link_name, node);
        let attr = tri!(reply, st.attr(ino));
        reply.entry(&TTL, &attr, Generation(0));
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let (parent, newparent) = (parent.0, newparent.0);
        let mut st = tri!(reply, self.begin_child(OpKind::Rename, parent, name));
        if flags.intersects(RenameFlags::RENAME_EXCHANGE | RenameFlags::RENAME_WHITEOUT) {
            return reply.error(Errno::EINVAL);
        }
        if newparent == 1 && newname == STAGING {
            return reply.error(Errno::EPERM);
        }
        let ino = tri!(reply, tri!(reply, st.lookup_child(parent, name)).ok_or(Errno::ENOENT));
        let existing = tri!(reply, st.lookup_child(newparent, newname));
        let src_is_dir = matches!(tri!(reply, st.node(ino)).kind, Kind::Dir);
        if src_is_dir {
            // A directory cannot move below itself.
            let mut d = newparent;
            loop {
                if d == ino {
                    return reply.error(Errno::EINVAL);
                }
                if d == 1 {
                    break;
                }
                d = tri!(reply, st.node(d)).parent;
            }
        }
        if let Some(old) = existing {
            if old == ino {
                return reply.ok();
            }
            if flags.contains(RenameFlags::RENAME_NOREPLACE) {
                return reply.error(Errno::EEXIST);
            }
            let old_is_dir = matches!(tri!(reply, st.node(old)).kind, Kind::Dir);
            match (src_is_dir, old_is_dir) {
                (true, false) => return reply.error(Errno::ENOTDIR),
                (false, true) => return reply.error(Errno::EISDIR),
                (true, true) => {
                    tri!(reply, st.load_dir(old));
                    if !tri!(reply, st.entries_mut(old)).is_empty() {
                        return reply.error(Errno::ENOTEMPTY);
                    }
                }
                (false, false) => {}
            }
            let n = tri!(reply, st.node_mut(old));
            n.nlink = n.nlink.saturating_sub(1);
            if old_is_dir {
                n.nlink = 0;
            }
        }
        tri!(reply, st.entries_mut(parent)).remove(name);
        tri!(reply, st.entries_mut(newparent)).insert(newname.to_owned(), ino);
        let n = tri!(reply, st.node_mut(ino));
        n.parent = newparent;
        n.name = newname.to_owned();
        n.ctime = SystemTime::now();
        st.push_journal(NsOp::Rename { parent, name: name.to_owned(), newparent, newname: newname.to_owned(), ino });
        st.touch_dir(parent);
        st.touch_dir(newparent);
        reply.ok();
    }

    fn link(&self, _req: &Request, ino: INodeNo, newparent: INodeNo, newname: &OsStr, reply: ReplyEntry) {
        let (ino, newparent) = (ino.0, newparent.0);
        let mut st = tri!(reply, self.begin_child(OpKind::Link, newparent, newname));
        if matches!(tri!(reply, st.node(ino)).kind, Kind::Dir) {
            return reply.error(Errno::EPERM);
        }
        if tri!(reply, st.lookup_child(newparent, newname)).is_some() {
            return reply.error(Errno::EEXIST);
        }
        tri!(reply, st.entries_mut(newparent)).insert(newname.to_owned(), ino);
        st.push_journal(NsOp::Link { parent: newparent, name: newname.to_owned(), ino });
        st.touch_dir(newparent);
        let n = tri!(reply, st.node_mut(ino));
        n.nlink += 1;
        n.ctime = SystemTime::now();
        let attr = tri!(reply, st.attr(ino));
        reply.entry(&TTL, &attr, Generation(0));
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let mut st = tri!(reply, self.begin_ino(OpKind::Open, ino.0));
        match tri!(reply, st.node(ino.0)).kind {
            Kind::File => {}
            Kind::Dir => return reply.error(Errno::EISDIR),
            _ => return reply.error(Errno::EINVAL),
        }
        // Opening the object now surfaces a missing or unreadable backing
        // file at open time rather than at the first read.
        tri!(reply, lock_file(&tri!(reply, st.file(ino.0))).parts().map(|_| ()));
        let fh = st.open_handle(ino.0, flags.0);
        // The kernel's cached pages are what faultfs would serve (see the
        // crate docs, "FUSE choices"), so an open need not drop them.
        reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE);
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let st = tri!(reply, self.begin_ino(OpKind::Read, ino.0));
        let file = tri!(reply, st.file(ino.0));
        // Reads of different files, and reads against other requests,
        // proceed in parallel: only this file's lock is held.
        let _gate = st.unlock();
        let mut data = lock_file(&file);
        let (cache, fd) = tri!(reply, data.parts());
        let bytes = tri!(reply, io_tri(cache.read(fd, offset, u64::from(size))));
        drop(data);
        reply.data(&bytes);
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let ino = ino.0;
        let mut st = tri!(reply, self.begin_ino(OpKind::Write, ino));
        if !st.rules.charge(data.len() as u64) {
            st.stats.injected_errors += 1;
            return reply.error(Errno::ENOSPC);
        }
        let sync = flags.0 & libc::O_DSYNC != 0 || st.handles.get(&fh.0).is_some_and(|h| h.sync);
        // An `O_SYNC` write is an fsync-family call; a trigger naming
        // `write` itself was considered when the request began.
        if sync
            && st.capture.as_ref().is_some_and(|a| a.plan.trigger.op.is_none())
            && st.capture_wanted(OpKind::Write, true)
        {
            let path = st.path_of(ino);
            st.consider_capture(OpKind::Write, true, "O_SYNC write", Some(&path), None);
        }
        let file = tri!(reply, st.file(ino));
        let now = SystemTime::now();
        if let Ok(n) = st.node_mut(ino) {
            n.mtime = now;
            n.ctime = now;
        }
        let limits = WriteLimits {
            max_dirty: st.config.max_dirty_bytes_per_file(),
            max_history: st.config.max_history_bytes(),
            reach_disk: st.config.fsync_reaches_disk(),
        };
        if !sync && st.cut_takes_write(ino, data.len() as u64) {
            // The aimed cut (armed, so this request has the filesystem to
            // itself): the power fails with this write cached and
            // unsynced, before the caller hears of it. The kernel's cache
            // of the mount is left to the remount: invalidating it from
            // here would wait on the pages this very request holds.
            let locked = tri!(reply, self.write_data(&file, ino, offset, data, false, &limits));
            self.write_back_early(locked, ino, data.len() as u64, &limits);
            let armed_at = st.cut_at_write.as_ref().map(|a| a.armed_at);
            st.power_cut();
            st.stats.aimed_cut_write_bytes = Some(data.len() as u64);
            st.stats.aimed_cut_after = armed_at.map(|t| t.elapsed());
            return reply.error(Errno::EIO);
        }
        // The data goes in under the file's lock alone: writes to other
        // files, and the namespace, go on meanwhile.
        let _gate = st.unlock();
        let locked = tri!(reply, self.write_data(&file, ino, offset, data, sync, &limits));
        reply.written(u32::try_from(data.len()).unwrap_or(u32::MAX));
        self.write_back_early(locked, ino, data.len() as u64, &limits);
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        // close() makes nothing durable on Linux, and must not here.
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        // Release must work after a power cut too, so no `begin`.
        let mut st = self.shared.lock();
        st.handles.remove(&fh.0);
        if let Some(n) = st.nodes.get_mut(&ino.0) {
            n.open_count = n.open_count.saturating_sub(1);
            if n.open_count == 0
                && let Some(file) = &n.file
            {
                let mut data = lock_file(file);
                data.fd = None;
                if n.nlink == 0 {
                    data.cache = FileCache::new(0);
                }
            }
        }
        reply.ok();
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, datasync: bool, reply: ReplyEmpty) {
        let ino = ino.0;
        let mut injected = false;
        let begun = self.begin_or(
            OpKind::Fsync,
            |st| Some(st.path_of(ino)),
            |st| {
                st.fsync_failed(ino);
                injected = true;
            },
        );
        let mut st = match begun {
            Ok(st) => st,
            Err(e) => {
                let revert = injected && self.shared.lock().config.fsync_failure() == FsyncFailure::Btrfs;
                reply.error(e);
                if revert {
                    // The reverted contents must not be served from the
                    // kernel's page cache; done after the reply, so no
                    // request of ours holds the pages.
                    self.shared.invalidate(&[ino]);
                }
                return;
            }
        };
        if st.capture_wanted(OpKind::Fsync, false) {
            let path = st.path_of(ino);
            let call = if datasync { "fdatasync" } else { "fsync" };
            st.consider_capture(OpKind::Fsync, false, call, Some(&path), Some(ino));
        }
        let file = tri!(reply, st.file(ino));
        let reach_disk = st.config.fsync_reaches_disk();
        let _gate = st.unlock();
        self.shared.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
        let mut data = lock_file(&file);
        tri!(reply, data.flush(reach_disk));
        // Under the file's lock: no write of it can come between the flush
        // and the barrier that records it.
        lock_history(&self.shared.history)
            .persist_file(ino, if datasync { Barrier::Fdatasync(ino) } else { Barrier::Fsync(ino) });
        drop(data);
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let ino = ino.0;
        let mut st = tri!(reply, self.begin_ino(OpKind::Readdir, ino));
        tri!(reply, st.load_dir(ino));
        let node = tri!(reply, st.node(ino));
        let mut snapshot = vec![
            (ino, FileType::Directory, OsString::from(".")),
            (node.parent, FileType::Directory, OsString::from("..")),
        ];
        for (name, &child) in node.entries.iter().flatten() {
            let t = st.nodes.get(&child).map_or(FileType::RegularFile, Node::file_type);
            snapshot.push((child, t, name.clone()));
        }
        let fh = st.next_fh;
        st.next_fh += 1;
        st.dir_snapshots.insert(fh, snapshot);
        reply.opened(FileHandle(fh), FopenFlags::empty());
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let st = tri!(reply, self.begin_ino(OpKind::Readdir, ino.0));
        let Some(snapshot) = st.dir_snapshots.get(&fh.0) else {
            return reply.error(Errno::EBADF);
        };
        let skip = usize::try_from(offset).unwrap_or(usize::MAX);
        for (i, (child, kind, name)) in snapshot.iter().enumerate().skip(skip) {
            if reply.add(INodeNo(*child), i as u64 + 1, *kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, _flags: OpenFlags, reply: ReplyEmpty) {
        self.shared.lock().dir_snapshots.remove(&fh.0);
        reply.ok();
    }

    fn fsyncdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        let ino = ino.0;
        let mut st = tri!(reply, self.begin_ino(OpKind::Fsyncdir, ino));
        st.stats.fsyncdirs += 1;
        // Commit in journal order up to the last entry that touches this
        // directory: the backing directory then always equals a prefix of
        // the operation history, which is a state the application has seen.
        let committed = st.journal.iter().rposition(|op| op.touches(ino)).map_or(0, |last| last + 1);
        let recorded = st.journal.iter().take(committed).filter(|op| st.is_recorded(op)).count();
        if committed > 0 {
            tri!(reply, io_tri(st.commit_through(committed)));
        }
        let path = st.rel_path(ino);
        st.hist().commit_namespace(recorded, Barrier::DirFsync(path));
        if st.config.fsync_reaches_disk()
            && let Some(h) = st.nodes.get(&ino).and_then(|n| n.dir_handle.as_ref())
        {
            tri!(reply, io_tri(h.sync_all()));
        }
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let st = tri!(reply, self.begin(OpKind::Getattr, |_| None));
        let s = tri!(reply, io_tri(sys::statvfs(&st.backing)));
        let (mut bfree, mut bavail) = (s.bfree, s.bavail);
        if let Some(left) = st.rules.space_left() {
            let blocks = left / u64::from(s.frsize.max(1));
            bfree = bfree.min(blocks);
            bavail = bavail.min(blocks);
        }
        reply.statfs(s.blocks, bfree, bavail, s.files, s.ffree, s.bsize, s.namelen, s.frsize);
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        // default_permissions makes the kernel check permissions itself.
        reply.ok();
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let parent = parent.0;
        let mut st = tri!(reply, self.begin_child(OpKind::Create, parent, name));
        let ino = tri!(reply, st.new_file(req, parent, name, mode & !umask));
        let fh = st.open_handle(ino, flags);
        let attr = tri!(reply, st.attr(ino));
        reply.created(&TTL, &attr, Generation(0), FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE);
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let ino = ino.0;
        let mut st = tri!(reply, self.begin_ino(OpKind::Fallocate, ino));
        match mode {
            0 => {
                let end = offset.saturating_add(length);
                let file = tri!(reply, st.file(ino));
                let mut data = lock_file(&file);
                tri!(reply, data.parts().map(|_| ()));
                let size = data.cache.size();
                if end > size {
                    if !st.rules.charge(end - size) {
                        st.stats.injected_errors += 1;
                        return reply.error(Errno::ENOSPC);
                    }
                    data.cache.truncate(end);
                    st.record(Op::Truncate { file: ino, size: end });
                }
                reply.ok();
            }
            // Reserving space without changing the size has no visible
            // effect in this model.
            libc::FALLOC_FL_KEEP_SIZE => reply.ok(),
            // posix_fallocate and the databases fall back to writing zeros.
            _ => reply.error(Errno::EOPNOTSUPP),
        }
    }

    fn getxattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, _size: u32, reply: ReplyXattr) {
        reply.error(Errno::ENOSYS);
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, _size: u32, reply: ReplyXattr) {
        reply.error(Errno::ENOSYS);
    }

    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::ENOSYS);
    }
}
