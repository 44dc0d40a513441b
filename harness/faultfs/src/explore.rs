//! Crash-state exploration: the states the persistence model allows for a
//! [`History`] over a durable base, deduplicated by content, each with a
//! stable id, and their materialisation as directory trees.
//!
//! The model itself is stated in the crate docs ("Crash states"); this
//! module is its executable form. It is FUSE-free: it reads the base
//! directory a mount leaves behind (or a copy of it) and writes plain
//! directories.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use crate::cache::FileCache;
use crate::history::{FileId, History, Op};
use crate::layout::STAGING;
use crate::rng::SplitMix64;

/// Granularity of content hashing: unchanged chunks of a large file reuse
/// the base's chunk digests, so a state costs what its writes touch.
const CHUNK: u64 = 4096;

/// Names one crash state by what it keeps of the history's operations
/// (numbered from 0 in [`History::ops`] order). Its text form is stable and
/// parses back with [`FromStr`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StateId {
    /// `p<m>`: the first `m` operations persisted, the rest lost.
    Prefix(usize),
    /// `e<k>-drop{i,j,..}`: every operation of epochs before `k` and of
    /// epoch `k` persisted except operations `i, j, ..` and those the model
    /// orders after them in epoch `k`; later epochs lost.
    Drop {
        /// The epoch reordered.
        epoch: usize,
        /// The operations dropped, ascending; no one is ordered before another.
        ops: Vec<usize>,
    },
    /// `t<i>@<s>/<n>`: the first `i` operations persisted, and of write `i`,
    /// split at sector boundaries into `n` pieces, the first `s` (`0 < s < n`).
    Torn {
        /// The write torn.
        op: usize,
        /// Sectors kept.
        kept: u64,
        /// Sectors of the write.
        sectors: u64,
    },
}

impl fmt::Display for StateId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateId::Prefix(m) => write!(f, "p{m}"),
            StateId::Drop { epoch, ops } => {
                let list: Vec<String> = ops.iter().map(ToString::to_string).collect();
                write!(f, "e{epoch}-drop{{{}}}", list.join(","))
            }
            StateId::Torn { op, kept, sectors } => write!(f, "t{op}@{kept}/{sectors}"),
        }
    }
}

impl FromStr for StateId {
    type Err = ExploreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ExploreError::BadStateId(s.to_owned());
        let num = |t: &str| t.parse::<usize>().map_err(|_| bad());
        if let Some(rest) = s.strip_prefix('p') {
            return Ok(StateId::Prefix(num(rest)?));
        }
        if let Some(rest) = s.strip_prefix('t') {
            let (op, frac) = rest.split_once('@').ok_or_else(bad)?;
            let (kept, sectors) = frac.split_once('/').ok_or_else(bad)?;
            return Ok(StateId::Torn { op: num(op)?, kept: num(kept)? as u64, sectors: num(sectors)? as u64 });
        }
        if let Some(rest) = s.strip_prefix('e') {
            let (epoch, list) = rest.split_once("-drop{").ok_or_else(bad)?;
            let list = list.strip_suffix('}').ok_or_else(bad)?;
            let ops = list.split(',').map(num).collect::<Result<Vec<_>, _>>()?;
            return Ok(StateId::Drop { epoch: num(epoch)?, ops });
        }
        Err(bad())
    }
}

/// Why exploring or materialising failed.
#[derive(Debug, thiserror::Error)]
pub enum ExploreError {
    /// Reading the base or writing a state failed.
    #[error("{what} {}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// On which path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The history stopped being recorded (see [`History::is_complete`]).
    #[error("explore crash states: the history is incomplete (it outgrew max-history-bytes)")]
    Incomplete,
    /// A state id that does not parse.
    #[error("parse crash state id {0:?}")]
    BadStateId(String),
    /// A state id that names no legal state of this history.
    #[error("resolve crash state {0}: it is not a state of this history")]
    NoSuchState(StateId),
}

fn io_err<'p>(what: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> ExploreError + 'p {
    move |source| ExploreError::Io { what, path: path.to_owned(), source }
}

/// Bounds of an exploration. Every family is exhaustive when its bound is
/// large enough; see the crate docs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExploreConfig {
    /// Most distinct states returned; beyond it, prefix states take at most
    /// half of it (evenly spaced, from `p0`) and the reorderings and torn
    /// writes the rest, a seeded sample. Default 256.
    pub max_states: usize,
    /// `k`: most operations a `Drop` state names (Chipmunk's bound on
    /// reordering). Default 2.
    pub max_drop: usize,
    /// Most split points per torn write, evenly spaced over its sectors.
    /// Default 3; 0 disables torn states.
    pub max_torn_splits: u64,
    /// Most candidate states hashed; beyond it, candidates are a seeded
    /// sample. Default 4096.
    pub max_candidates: usize,
    /// Seed of every sample.
    pub seed: u64,
}

impl Default for ExploreConfig {
    fn default() -> Self {
        Self { max_states: 256, max_drop: 2, max_torn_splits: 3, max_candidates: 4096, seed: 0 }
    }
}

/// One distinct crash state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrashState {
    /// The first id (in enumeration order) that produces this content.
    pub id: StateId,
    /// Digest of the resulting file tree (names, kinds, file contents,
    /// symlink targets); equal digests mean equal trees.
    pub digest: u128,
}

/// What [`explore`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exploration {
    /// Distinct states, prefix states first, then in id order.
    pub states: Vec<CrashState>,
    /// Candidate ids hashed.
    pub candidates: usize,
    /// Distinct contents among them.
    pub distinct: usize,
    /// Whether candidates or states were sampled rather than exhaustive.
    pub sampled: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum FileKey {
    /// A file faultfs knows, with its backing object.
    Id(FileId),
    /// A file only in the base, by backing inode number.
    Ino(u64),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Node {
    File(FileKey),
    Dir { perm: u32, uid: u32, gid: u32 },
    Symlink(PathBuf),
}

type Namespace = BTreeMap<PathBuf, Node>;

/// The durable base: a backing directory as a faultfs mount leaves it
/// (names plus the backing objects under `.crashlab-faultfs`), or a copy of
/// it that preserves hard links. Scanned once; file contents are read on
/// demand.
#[derive(Debug)]
pub struct Base {
    root: PathBuf,
    namespace: Namespace,
    /// Where each file's durable bytes are, and its length.
    sources: HashMap<FileKey, (PathBuf, u64)>,
}

impl Base {
    /// Scans `dir`.
    ///
    /// # Errors
    /// [`ExploreError::Io`] if the directory cannot be read.
    pub fn open(dir: &Path) -> Result<Base, ExploreError> {
        let mut by_ino = HashMap::new();
        let mut sources = HashMap::new();
        let staging = dir.join(STAGING);
        if staging.is_dir() {
            for entry in fs::read_dir(&staging).map_err(io_err("read staging directory", &staging))? {
                let entry = entry.map_err(io_err("read staging directory", &staging))?;
                let Some(id) = entry.file_name().to_str().and_then(|n| n.parse::<FileId>().ok()) else {
                    continue;
                };
                let path = entry.path();
                let meta = fs::symlink_metadata(&path).map_err(io_err("stat backing object", &path))?;
                if meta.is_file() {
                    by_ino.insert(meta.ino(), id);
                    sources.insert(FileKey::Id(id), (path, meta.len()));
                }
            }
        }
        let mut namespace = Namespace::new();
        let mut stack = vec![PathBuf::new()];
        while let Some(rel) = stack.pop() {
            let abs = dir.join(&rel);
            for entry in fs::read_dir(&abs).map_err(io_err("read base directory", &abs))? {
                let entry = entry.map_err(io_err("read base directory", &abs))?;
                let name = rel.join(entry.file_name());
                if name.as_os_str() == STAGING {
                    continue;
                }
                let path = entry.path();
                let meta = fs::symlink_metadata(&path).map_err(io_err("stat base entry", &path))?;
                let ft = meta.file_type();
                let node = if ft.is_dir() {
                    stack.push(name.clone());
                    Node::Dir { perm: meta.mode() & 0o7777, uid: meta.uid(), gid: meta.gid() }
                } else if ft.is_symlink() {
                    Node::Symlink(fs::read_link(&path).map_err(io_err("read symlink", &path))?)
                } else if ft.is_file() {
                    let key = by_ino.get(&meta.ino()).map_or(FileKey::Ino(meta.ino()), |&id| FileKey::Id(id));
                    sources.entry(key).or_insert((path, meta.len()));
                    Node::File(key)
                } else {
                    continue;
                };
                namespace.insert(name, node);
            }
        }
        Ok(Base { root: dir.to_owned(), namespace, sources })
    }

    /// The directory scanned.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// Which operations a state keeps, and its torn write `(op, bytes kept)`.
type Kept = (Vec<bool>, Option<(usize, u64)>);

/// The model's order on one history: which operation must persist before
/// which, and the epochs.
struct Model<'h> {
    ops: Vec<&'h Op>,
    epochs: Vec<usize>,
    /// For each operation on a file, the latest earlier truncate of that
    /// file in the same epoch.
    prev_trunc: Vec<Option<usize>>,
    sector: u64,
}

impl<'h> Model<'h> {
    fn new(history: &'h History) -> Self {
        let ops = history.ops();
        let epochs = history.epochs();
        let mut last: HashMap<FileId, usize> = HashMap::new();
        let mut prev_trunc = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            let p = op.data_file().and_then(|f| last.get(&f).copied()).filter(|&t| epochs[t] == epochs[i]);
            prev_trunc.push(p);
            if let Op::Truncate { file, .. } = op {
                last.insert(*file, i);
            }
        }
        Model { ops, epochs, prev_trunc, sector: history.sector_size() }
    }

    /// Whether the model orders `i` before `j` within an epoch: namespace
    /// operations in journal order; a file's operations on either side of
    /// one of its truncates.
    fn before(&self, i: usize, j: usize) -> bool {
        if i >= j || self.epochs[i] != self.epochs[j] {
            return false;
        }
        let (a, b) = (self.ops[i], self.ops[j]);
        if a.is_namespace() && b.is_namespace() {
            return true;
        }
        match (a.data_file(), b.data_file()) {
            (Some(f), Some(g)) if f == g => {
                matches!(a, Op::Truncate { .. })
                    || matches!(b, Op::Truncate { .. })
                    || self.prev_trunc[j].is_some_and(|t| t > i)
            }
            _ => false,
        }
    }

    /// Byte boundaries of a write's sectors: `n + 1` offsets for `n` sectors.
    fn sector_bounds(&self, offset: u64, len: u64) -> Vec<u64> {
        let end = offset + len;
        let mut out = vec![offset];
        let mut lo = offset;
        while lo < end {
            lo = ((lo / self.sector) + 1).saturating_mul(self.sector).min(end);
            out.push(lo);
        }
        out
    }

    /// Which operations a state keeps, and the torn write `(op, bytes kept)`.
    fn kept(&self, id: &StateId) -> Result<Kept, ExploreError> {
        let n = self.ops.len();
        let none = || ExploreError::NoSuchState(id.clone());
        match id {
            StateId::Prefix(m) if *m <= n => Ok(((0..n).map(|i| i < *m).collect(), None)),
            StateId::Drop { epoch, ops } => {
                let valid = !ops.is_empty()
                    && ops.windows(2).all(|w| w[0] < w[1])
                    && ops.iter().all(|&d| d < n && self.epochs[d] == *epoch)
                    && ops.iter().all(|&a| ops.iter().all(|&b| !self.before(a, b)));
                if !valid {
                    return Err(none());
                }
                let keep = (0..n)
                    .map(|i| {
                        self.epochs[i] < *epoch
                            || (self.epochs[i] == *epoch && ops.iter().all(|&d| d != i && !self.before(d, i)))
                    })
                    .collect();
                Ok((keep, None))
            }
            StateId::Torn { op, kept, sectors } => {
                let Some(Op::Write { offset, data, .. }) = self.ops.get(*op) else {
                    return Err(none());
                };
                let bounds = self.sector_bounds(*offset, data.len() as u64);
                if bounds.len() as u64 != sectors + 1 || *kept == 0 || kept >= sectors {
                    return Err(none());
                }
                let bytes = bounds[*kept as usize] - offset;
                Ok(((0..n).map(|i| i < *op).collect(), Some((*op, bytes))))
            }
            StateId::Prefix(_) => Err(none()),
        }
    }
}

/// Applies a namespace operation by path. Operations on a missing name are
/// ignored: they concern FIFOs and other nodes that never become durable.
fn apply_namespace(ns: &mut Namespace, op: &Op) {
    match op {
        Op::Create { path, file } | Op::Link { path, file } => {
            ns.insert(path.clone(), Node::File(FileKey::Id(*file)));
        }
        Op::Mkdir { path, perm, uid, gid } => {
            ns.insert(path.clone(), Node::Dir { perm: *perm, uid: *uid, gid: *gid });
        }
        Op::Symlink { path, target } => {
            ns.insert(path.clone(), Node::Symlink(target.clone()));
        }
        Op::Unlink { path } | Op::Rmdir { path } => remove_tree(ns, path),
        Op::Rename { from, to } => {
            if from == to || !ns.contains_key(from) {
                return;
            }
            let moved: Vec<(PathBuf, Node)> = ns
                .range(from.clone()..)
                .take_while(|(k, _)| k.starts_with(from))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            remove_tree(ns, from);
            remove_tree(ns, to);
            for (k, v) in moved {
                let rest = k.strip_prefix(from).unwrap_or(Path::new(""));
                let dest = if rest.as_os_str().is_empty() { to.clone() } else { to.join(rest) };
                ns.insert(dest, v);
            }
        }
        Op::Write { .. } | Op::Truncate { .. } => {}
    }
}

fn remove_tree(ns: &mut Namespace, path: &Path) {
    let doomed: Vec<PathBuf> =
        ns.range(path.to_owned()..).take_while(|(k, _)| k.starts_with(path)).map(|(k, _)| k.clone()).collect();
    for k in doomed {
        ns.remove(&k);
    }
}

/// A 128-bit non-cryptographic digest, stable across versions: two
/// multiply-rotate lanes and a SplitMix finaliser.
#[derive(Clone)]
struct Digest(u64, u64);

impl Digest {
    fn new(tag: u64) -> Self {
        Digest(0x243F_6A88_85A3_08D3 ^ tag, 0x1319_8A2E_0370_7344 ^ tag.rotate_left(32))
    }

    fn word(&mut self, w: u64) {
        self.0 = (self.0 ^ w).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29);
        self.1 = (self.1 ^ w.rotate_left(23)).wrapping_mul(0xC2B2_AE3D_27D4_EB4F).rotate_left(31);
    }

    fn bytes(&mut self, data: &[u8]) {
        let mut words = data.chunks_exact(8);
        for w in &mut words {
            self.word(u64::from_le_bytes(w.try_into().unwrap_or([0; 8])));
        }
        let mut tail = [0u8; 8];
        tail[..words.remainder().len()].copy_from_slice(words.remainder());
        self.word(u64::from_le_bytes(tail));
        self.word(data.len() as u64);
    }

    fn finish(&self) -> u128 {
        let mix = |mut z: u64| {
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        (u128::from(mix(self.0 ^ self.1.rotate_left(7))) << 64) | u128::from(mix(self.1 ^ self.0.rotate_left(13)))
    }
}

/// A base file's chunk digests and the running sums of their terms.
#[derive(Debug)]
struct BaseChunks {
    hashes: Vec<u64>,
    /// `prefix[k]` is the sum of the terms of chunks `0..k`.
    prefix: Vec<(u64, u64)>,
}

/// A file's digest sums one term per chunk, so a state whose writes touch
/// few chunks of a large file costs only those chunks: the untouched ones
/// come from the base's precomputed sums.
fn term(c: u64, h: u64) -> (u64, u64) {
    let mix = |mut z: u64| {
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    (mix(h ^ c.wrapping_mul(0x9E37_79B9_7F4A_7C15)), mix(h.rotate_left(29) ^ c.wrapping_add(0x632B_E59B_D9B4_E019)))
}

fn add(a: (u64, u64), b: (u64, u64)) -> (u64, u64) {
    (a.0.wrapping_add(b.0), a.1.wrapping_add(b.1))
}

fn sub(a: (u64, u64), b: (u64, u64)) -> (u64, u64) {
    (a.0.wrapping_sub(b.0), a.1.wrapping_sub(b.1))
}

fn chunk_digest(data: &[u8]) -> u64 {
    let mut d = Digest::new(1);
    d.bytes(data);
    d.finish() as u64
}

/// The data operations applied to one file in one state, as a memo key.
type FileOps = (FileKey, Vec<usize>, Option<(usize, u64)>);

/// Computes states' contents, memoising what states share.
struct Hasher<'a> {
    base: &'a Base,
    model: &'a Model<'a>,
    /// Files some operation of the history writes or truncates.
    touched: HashSet<FileId>,
    namespaces: HashMap<usize, Arc<Namespace>>,
    chunks: HashMap<FileKey, Arc<BaseChunks>>,
    files: HashMap<FileOps, u128>,
}

impl<'a> Hasher<'a> {
    fn new(base: &'a Base, model: &'a Model<'a>) -> Self {
        let touched = model.ops.iter().filter_map(|op| op.data_file()).collect();
        Hasher { base, model, touched, namespaces: HashMap::new(), chunks: HashMap::new(), files: HashMap::new() }
    }

    /// The namespace after the first `m` namespace operations.
    fn namespace(&mut self, m: usize) -> Arc<Namespace> {
        if let Some(ns) = self.namespaces.get(&m) {
            return Arc::clone(ns);
        }
        let mut ns = self.base.namespace.clone();
        for op in self.model.ops.iter().filter(|op| op.is_namespace()).take(m) {
            apply_namespace(&mut ns, op);
        }
        let ns = Arc::new(ns);
        self.namespaces.insert(m, Arc::clone(&ns));
        ns
    }

    fn base_chunks(&mut self, key: FileKey) -> Result<Arc<BaseChunks>, ExploreError> {
        if let Some(c) = self.chunks.get(&key) {
            return Ok(Arc::clone(c));
        }
        let mut out = Vec::new();
        if let Some((path, len)) = self.base.sources.get(&key) {
            let f = File::open(path).map_err(io_err("read base file", path))?;
            let mut buf = vec![0; 1 << 20];
            let mut off = 0;
            while off < *len {
                let n = usize::try_from((*len - off).min(buf.len() as u64)).unwrap_or(buf.len());
                f.read_exact_at(&mut buf[..n], off).map_err(io_err("read base file", path))?;
                out.extend(buf[..n].chunks(CHUNK as usize).map(chunk_digest));
                off += n as u64;
            }
        }
        let mut prefix = Vec::with_capacity(out.len() + 1);
        let mut sum = (0u64, 0u64);
        prefix.push(sum);
        for (c, &h) in out.iter().enumerate() {
            sum = add(sum, term(c as u64, h));
            prefix.push(sum);
        }
        let out = Arc::new(BaseChunks { hashes: out, prefix });
        self.chunks.insert(key, Arc::clone(&out));
        Ok(out)
    }

    fn file(&mut self, fops: FileOps) -> Result<u128, ExploreError> {
        if let Some(&d) = self.files.get(&fops) {
            return Ok(d);
        }
        let (key, ops, tear) = &fops;
        let digest = match key {
            // Content that no state changes only needs to be told apart.
            FileKey::Id(id) if !self.touched.contains(id) => u128::from(*id) << 1,
            FileKey::Ino(ino) => (u128::from(*ino) << 1) | 1,
            FileKey::Id(_) => {
                let (path, base_len) = self.base.sources.get(key).cloned().unwrap_or_default();
                let chunks = self.base_chunks(*key)?;
                let mut cache = FileCache::new(base_len);
                for &i in ops {
                    apply_data(&mut cache, self.model.ops[i], None);
                }
                if let Some((i, bytes)) = tear {
                    apply_data(&mut cache, self.model.ops[*i], Some(*bytes));
                }
                let mut backing: Box<dyn crate::cache::Backing> = if base_len > 0 {
                    Box::new(File::open(&path).map_err(io_err("read base file", &path))?)
                } else {
                    Box::new(Vec::new())
                };
                let size = cache.size();
                // Whole chunks below this come from the base unless a kept
                // write touches them; their terms are summed in advance.
                let full =
                    usize::try_from(cache.base_visible_len() / CHUNK).unwrap_or(usize::MAX).min(chunks.hashes.len());
                let mut sum = chunks.prefix[full];
                let mut read_term = |c: u64| -> Result<(u64, u64), ExploreError> {
                    let lo = c * CHUNK;
                    let bytes = cache.read(&mut *backing, lo, CHUNK).map_err(io_err("read base file", &path))?;
                    Ok(term(c, chunk_digest(&bytes)))
                };
                let mut touched = BTreeSet::new();
                for (lo, hi) in cache.dirty_ranges() {
                    touched.extend((lo / CHUNK..hi.div_ceil(CHUNK)).filter(|&c| c < full as u64));
                }
                for c in touched {
                    sum = sub(sum, term(c, chunks.hashes[c as usize]));
                    sum = add(sum, read_term(c)?);
                }
                for c in full as u64..size.div_ceil(CHUNK) {
                    sum = add(sum, read_term(c)?);
                }
                let mut d = Digest::new(2);
                d.word(size);
                d.word(sum.0);
                d.word(sum.1);
                d.finish()
            }
        };
        self.files.insert(fops, digest);
        Ok(digest)
    }

    /// Digest of the tree a state leaves.
    fn state(&mut self, keep: &[bool], tear: Option<(usize, u64)>) -> Result<u128, ExploreError> {
        let m = self.model.ops.iter().zip(keep).filter(|(op, k)| **k && op.is_namespace()).count();
        let ns = self.namespace(m);
        let mut per_file: BTreeMap<FileId, Vec<usize>> = BTreeMap::new();
        for (i, op) in self.model.ops.iter().enumerate() {
            if keep[i]
                && let Some(f) = op.data_file()
            {
                per_file.entry(f).or_default().push(i);
            }
        }
        let mut d = Digest::new(3);
        for (path, node) in ns.iter() {
            d.bytes(path.as_os_str().as_encoded_bytes());
            match node {
                Node::File(key) => {
                    let ops = match key {
                        FileKey::Id(id) => per_file.get(id).cloned().unwrap_or_default(),
                        FileKey::Ino(_) => Vec::new(),
                    };
                    let t = tear
                        .filter(|(i, _)| matches!(key, FileKey::Id(id) if self.model.ops[*i].data_file() == Some(*id)));
                    let h = self.file((*key, ops, t))?;
                    d.word(1);
                    d.word(h as u64);
                    d.word((h >> 64) as u64);
                }
                Node::Dir { .. } => d.word(2),
                Node::Symlink(t) => {
                    d.word(3);
                    d.bytes(t.as_os_str().as_encoded_bytes());
                }
            }
        }
        Ok(d.finish())
    }
}

/// Applies a write (only its first `limit` bytes when torn) or a truncate.
fn apply_data(cache: &mut FileCache, op: &Op, limit: Option<u64>) {
    match op {
        Op::Write { offset, data, .. } => {
            let n = limit.map_or(data.len(), |l| usize::try_from(l).unwrap_or(data.len()).min(data.len()));
            cache.write(*offset, &data[..n], 0);
        }
        Op::Truncate { size, .. } => cache.truncate(*size),
        _ => {}
    }
}

fn binomial(n: usize, k: usize) -> usize {
    let mut r: usize = 1;
    for i in 0..k {
        r = r.saturating_mul(n - i) / (i + 1);
    }
    r
}

/// Calls `f` with every `k`-combination of `items`, in lexicographic order.
fn combinations(items: &[usize], k: usize, f: &mut impl FnMut(&[usize])) {
    fn go(items: &[usize], k: usize, start: usize, cur: &mut Vec<usize>, f: &mut impl FnMut(&[usize])) {
        if cur.len() == k {
            f(cur);
            return;
        }
        for i in start..items.len() {
            if items.len() - i < k - cur.len() {
                break;
            }
            cur.push(items[i]);
            go(items, k, i + 1, cur, f);
            cur.pop();
        }
    }
    go(items, k, 0, &mut Vec::with_capacity(k), f);
}

/// `count` evenly spaced values of `1..n` (all of them when they fit).
fn split_points(n: u64, count: u64) -> Vec<u64> {
    if n < 2 || count == 0 {
        return Vec::new();
    }
    if n - 1 <= count {
        return (1..n).collect();
    }
    let mut out: Vec<u64> = (1..=count).map(|j| (j * n).div_ceil(count + 1).clamp(1, n - 1)).collect();
    out.dedup();
    out
}

/// Enumerates the candidate ids, sampling when there are more than
/// `config.max_candidates`. Returns them and whether they were sampled.
fn candidates(model: &Model, config: &ExploreConfig, in_place: &[bool]) -> (Vec<StateId>, bool) {
    let n = model.ops.len();
    let mut rng = SplitMix64::new(config.seed);
    let epochs: BTreeMap<usize, Vec<usize>> =
        model.epochs.iter().enumerate().fold(BTreeMap::new(), |mut m, (i, &e)| {
            m.entry(e).or_insert_with(Vec::new).push(i);
            m
        });
    let torn: Vec<(usize, Vec<u64>, u64)> = model
        .ops
        .iter()
        .enumerate()
        .filter_map(|(i, op)| match op {
            Op::Write { offset, data, .. } => {
                let sectors = model.sector_bounds(*offset, data.len() as u64).len() as u64 - 1;
                let splits = split_points(sectors, config.max_torn_splits);
                (!splits.is_empty()).then_some((i, splits, sectors))
            }
            _ => None,
        })
        .collect();
    let drop_total: usize = epochs
        .values()
        .flat_map(|ops| (1..=config.max_drop.min(ops.len())).map(move |k| binomial(ops.len(), k)))
        .fold(0, usize::saturating_add);
    let torn_total: usize = torn.iter().map(|(_, s, _)| s.len()).sum();
    let total = (n + 1).saturating_add(drop_total).saturating_add(torn_total);
    let antichain = |d: &[usize]| d.iter().all(|&a| d.iter().all(|&b| !model.before(a, b)));
    let mut out = Vec::new();
    if total <= config.max_candidates {
        out.extend((0..=n).map(StateId::Prefix));
        for (&e, ops) in &epochs {
            for k in 1..=config.max_drop.min(ops.len()) {
                combinations(ops, k, &mut |d| {
                    if antichain(d) {
                        out.push(StateId::Drop { epoch: e, ops: d.to_vec() });
                    }
                });
            }
        }
        for (i, splits, sectors) in &torn {
            out.extend(splits.iter().map(|&s| StateId::Torn { op: *i, kept: s, sectors: *sectors }));
        }
        return (out, false);
    }
    // Sampled: a quarter of the budget for evenly spaced prefixes, the rest
    // drawn from the drop and torn families in proportion to their sizes.
    let budget = config.max_candidates.max(2);
    let prefixes = (budget / 4).max(2).min(n + 1);
    let mut seen = BTreeSet::new();
    for j in 0..prefixes {
        seen.insert(StateId::Prefix(if prefixes == 1 { 0 } else { j * n / (prefixes - 1) }));
    }
    // Torn writes over durable bytes (a page rewritten in place, where a
    // tear leaves half an old page) first, up to a quarter of the budget:
    // a uniform draw would all but miss a few of them among thousands of
    // appends and reorderings.
    let favoured = torn.iter().filter(|(i, _, _)| in_place[*i]);
    for (i, splits, sectors) in favoured {
        for &s in splits {
            if seen.len() < prefixes + budget / 4 {
                seen.insert(StateId::Torn { op: *i, kept: s, sectors: *sectors });
            }
        }
    }
    let others = drop_total.saturating_add(torn_total).max(1);
    let families: Vec<(usize, &Vec<usize>, usize)> =
        epochs.iter().flat_map(|(&e, ops)| (1..=config.max_drop.min(ops.len())).map(move |k| (e, ops, k))).collect();
    let mut attempts = 0;
    while seen.len() < budget && attempts < budget * 8 {
        attempts += 1;
        let pick = usize::try_from(rng.below(others as u64)).unwrap_or(0);
        if pick < drop_total {
            // A family weighted by its size, then a uniform combination.
            let mut at = pick;
            let Some(&(e, ops, k)) = families.iter().find(|(_, ops, k)| {
                let size = binomial(ops.len(), *k);
                if at < size {
                    true
                } else {
                    at -= size;
                    false
                }
            }) else {
                continue;
            };
            let mut chosen = BTreeSet::new();
            for j in ops.len() - k..ops.len() {
                let t = usize::try_from(rng.below(j as u64 + 1)).unwrap_or(0);
                if !chosen.insert(ops[t]) {
                    chosen.insert(ops[j]);
                }
            }
            let d: Vec<usize> = chosen.into_iter().collect();
            if antichain(&d) {
                seen.insert(StateId::Drop { epoch: e, ops: d });
            }
        } else if !torn.is_empty() {
            let (i, splits, sectors) = &torn[usize::try_from(rng.below(torn.len() as u64)).unwrap_or(0)];
            let s = splits[usize::try_from(rng.below(splits.len() as u64)).unwrap_or(0)];
            seen.insert(StateId::Torn { op: *i, kept: s, sectors: *sectors });
        }
    }
    out.extend(seen);
    (out, true)
}

/// `count` of `items` chosen by a seeded partial Fisher-Yates shuffle (all
/// of them when there are fewer).
fn shuffle_take(mut items: Vec<usize>, count: usize, rng: &mut SplitMix64) -> Vec<usize> {
    let count = count.min(items.len());
    for j in 0..count {
        let t = j + usize::try_from(rng.below((items.len() - j) as u64)).unwrap_or(0);
        items.swap(j, t);
    }
    items.truncate(count);
    items
}

/// For each operation of the model: whether it is a write over bytes the
/// base holds durably (a page rewritten in place), rather than an append
/// or a write to a new file.
fn in_place(model: &Model, base: &Base) -> Vec<bool> {
    model
        .ops
        .iter()
        .map(|op| match op {
            Op::Write { file, offset, .. } => {
                base.sources.get(&FileKey::Id(*file)).is_some_and(|(_, len)| *offset < *len)
            }
            _ => false,
        })
        .collect()
}

/// Enumerates the distinct crash states of `history` over `base` that the
/// persistence model allows, within `config`'s bounds.
///
/// # Errors
/// [`ExploreError::Incomplete`] for a history that stopped being recorded,
/// [`ExploreError::Io`] if the base cannot be read.
pub fn explore(base: &Base, history: &History, config: &ExploreConfig) -> Result<Exploration, ExploreError> {
    if !history.is_complete() {
        return Err(ExploreError::Incomplete);
    }
    let model = Model::new(history);
    let in_place = in_place(&model, base);
    let (ids, mut sampled) = candidates(&model, config, &in_place);
    let mut hasher = Hasher::new(base, &model);
    let mut seen = HashSet::new();
    let mut distinct = Vec::new();
    for id in &ids {
        let (keep, tear) = model.kept(id)?;
        let digest = hasher.state(&keep, tear)?;
        if seen.insert(digest) {
            distinct.push(CrashState { id: id.clone(), digest });
        }
    }
    let count = distinct.len();
    if count > config.max_states {
        sampled = true;
        let (mut prefixes, rest): (Vec<_>, Vec<_>) =
            distinct.into_iter().partition(|s| matches!(s.id, StateId::Prefix(_)));
        // A crash point inside a load may have hundreds of operations: were
        // every prefix kept first, no torn write or reordering would ever
        // be checked, and those are where ordering and torn-page bugs are.
        let prefix_room = if rest.is_empty() { config.max_states } else { config.max_states.div_ceil(2) };
        if prefixes.len() > prefix_room {
            let n = prefixes.len();
            let keep = prefix_room;
            let picks: BTreeSet<usize> =
                (0..keep).map(|j| if keep == 1 { 0 } else { j * (n - 1) / (keep - 1) }).collect();
            prefixes = prefixes.into_iter().enumerate().filter(|(i, _)| picks.contains(i)).map(|(_, s)| s).collect();
        }
        let room = config.max_states - prefixes.len();
        // Seeded partial Fisher-Yates shuffles pick `room` of the rest:
        // up to half of them among the torn writes over durable bytes,
        // then the others among all that are left; then they go back into
        // id order.
        let mut rng = SplitMix64::new(config.seed ^ 0x5EED);
        let favoured = |s: &CrashState| matches!(s.id, StateId::Torn { op, .. } if in_place[op]);
        let first: Vec<usize> = (0..rest.len()).filter(|&i| favoured(&rest[i])).collect();
        let mut chosen = shuffle_take(first, room.div_ceil(2), &mut rng);
        let mut left: Vec<usize> = (0..rest.len()).filter(|i| !chosen.contains(i)).collect();
        left.sort_unstable();
        chosen.extend(shuffle_take(left, room - chosen.len(), &mut rng));
        chosen.sort_unstable();
        let picked: Vec<CrashState> = chosen.into_iter().map(|i| rest[i].clone()).collect();
        distinct = prefixes;
        distinct.extend(picked);
    }
    Ok(Exploration { states: distinct, candidates: ids.len(), distinct: count, sampled })
}

/// What a state keeps of a history, by operation index: for reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeptOps {
    /// Operations persisted whole, ascending.
    pub kept: Vec<usize>,
    /// Operations lost, ascending (a torn write counts as lost).
    pub dropped: Vec<usize>,
    /// The torn write and how many of its bytes persisted.
    pub torn: Option<(usize, u64)>,
}

/// Resolves `id` against `history`.
///
/// # Errors
/// [`ExploreError::NoSuchState`] for an id that names no state of it.
pub fn kept_ops(history: &History, id: &StateId) -> Result<KeptOps, ExploreError> {
    let (keep, torn) = Model::new(history).kept(id)?;
    let (kept, dropped) = (0..keep.len()).partition(|&i| keep[i]);
    Ok(KeptOps { kept, dropped, torn })
}

/// Writes the file tree of state `id` into `out` (created if missing; it
/// should be empty): the base's names, with the kept namespace operations
/// applied, and each file's durable bytes with its kept writes and truncates
/// applied in order. Files are copied with `copy_file_range` (a reflink on
/// btrfs and XFS), then only the kept writes are written; hard links stay
/// hard links. Permissions are kept, and owners too when running as root;
/// timestamps are not.
///
/// # Errors
/// [`ExploreError::NoSuchState`] for an id that names no state of this
/// history; [`ExploreError::Io`] if reading the base or writing `out` fails.
pub fn materialise(base: &Base, history: &History, id: &StateId, out: &Path) -> Result<(), ExploreError> {
    if !history.is_complete() {
        return Err(ExploreError::Incomplete);
    }
    let model = Model::new(history);
    let (keep, tear) = model.kept(id)?;
    let m = model.ops.iter().zip(&keep).filter(|(op, k)| **k && op.is_namespace()).count();
    let mut ns = base.namespace.clone();
    for op in model.ops.iter().filter(|op| op.is_namespace()).take(m) {
        apply_namespace(&mut ns, op);
    }
    fs::create_dir_all(out).map_err(io_err("create state directory", out))?;
    let mut written: HashMap<FileKey, PathBuf> = HashMap::new();
    for (rel, node) in &ns {
        let dest = out.join(rel);
        match node {
            Node::Dir { perm, uid, gid } => {
                fs::create_dir(&dest).map_err(io_err("create directory", &dest))?;
                fs::set_permissions(&dest, fs::Permissions::from_mode(*perm))
                    .map_err(io_err("set permissions", &dest))?;
                chown_if_allowed(&dest, *uid, *gid)?;
            }
            Node::Symlink(target) => {
                std::os::unix::fs::symlink(target, &dest).map_err(io_err("create symlink", &dest))?;
            }
            Node::File(key) => {
                if let Some(first) = written.get(key) {
                    fs::hard_link(first, &dest).map_err(io_err("link file", &dest))?;
                    continue;
                }
                match base.sources.get(key) {
                    Some((src, _)) => {
                        fs::copy(src, &dest).map_err(io_err("copy file", &dest))?;
                        let meta = fs::metadata(src).map_err(io_err("stat base file", src))?;
                        chown_if_allowed(&dest, meta.uid(), meta.gid())?;
                    }
                    None => {
                        File::create(&dest).map_err(io_err("create file", &dest))?;
                    }
                }
                if let FileKey::Id(fid) = key {
                    apply_file_ops(&model, &keep, tear, *fid, &dest)?;
                }
                written.insert(*key, dest);
            }
        }
    }
    Ok(())
}

/// Applies the kept writes and truncates of `file` to the copy at `dest`.
fn apply_file_ops(
    model: &Model,
    keep: &[bool],
    tear: Option<(usize, u64)>,
    file: FileId,
    dest: &Path,
) -> Result<(), ExploreError> {
    let mine = |i: usize| model.ops[i].data_file() == Some(file);
    let torn = tear.filter(|(i, _)| mine(*i));
    if !(0..keep.len()).any(|i| keep[i] && mine(i)) && torn.is_none() {
        return Ok(());
    }
    let f = OpenOptions::new().write(true).open(dest).map_err(io_err("open state file", dest))?;
    let steps =
        (0..keep.len()).filter(|&i| keep[i] && mine(i)).map(|i| (i, None)).chain(torn.map(|(i, b)| (i, Some(b))));
    for (i, limit) in steps {
        match model.ops[i] {
            Op::Write { offset, data, .. } => {
                let n = limit.map_or(data.len(), |l| usize::try_from(l).unwrap_or(data.len()).min(data.len()));
                f.write_all_at(&data[..n], *offset).map_err(io_err("write state file", dest))?;
            }
            Op::Truncate { size, .. } => f.set_len(*size).map_err(io_err("truncate state file", dest))?,
            _ => {}
        }
    }
    Ok(())
}

/// Gives `path` the owner it had in the base; without the privilege to do
/// so (not root) the tree simply belongs to the caller.
fn chown_if_allowed(path: &Path, uid: u32, gid: u32) -> Result<(), ExploreError> {
    match std::os::unix::fs::lchown(path, Some(uid), Some(gid)) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => Ok(()),
        r => r.map_err(io_err("chown", path)),
    }
}
