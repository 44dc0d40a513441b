//! A run's journal: what it created, written down before each creation, and
//! the lock that says the run is alive.
//!
//! The journal is `<run dir>/journal`, one JSON object a line, appended and
//! synced before the object it names is created, so that no interrupt or
//! `kill -9` can leave an object the journal does not list (at worst it
//! lists one that was never made, which cleanup skips). Docker objects
//! (containers, volumes, networks, committed images) are journaled by [`crate::docker::Docker`] once a run's journal is attached
//! to it; fault-filesystem mounts and btrfs pools by their constructors;
//! bench host-path directories, the one thing a run creates outside its
//! run directory, by the bench with the root the user gave.
//!
//! The process that owns the run holds an exclusive `flock` on the journal
//! for its whole life. The kernel drops the lock when the process dies,
//! however it dies, and the lock does not care which PID namespace the
//! process lives in, so `crashlab clean` tells a live run from a dead one
//! by trying to take it. A run directory is made, and its journal created
//! and locked, under a shared lock on `<state dir>/runs/.lock`; `clean`
//! scans under the exclusive lock, so it never mistakes a run being born
//! for a dead one.
//!
//! Nothing read back from a journal or a label is trusted: run ids must
//! have crashlab's shape ([`is_run_id`]), and every path must resolve, with
//! symlinks followed, below the directory it belongs to ([`confine`]).

use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write as _;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

/// The journal's file name in a run directory.
pub const FILE: &str = "journal";
/// The lock file in `<state dir>/runs` that orders run creation and `clean`.
pub const RUNS_LOCK: &str = ".lock";

/// One thing a run creates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Entry {
    Container(String),
    Volume(String),
    Network(String),
    /// An image a run commits (or loads back), by its `repo:tag`.
    Image(String),
    /// A fault-filesystem mountpoint, under the run directory.
    Mount(PathBuf),
    /// A btrfs pool's image file, under the run directory; whichever loop
    /// device holds it, and whatever it is mounted on, is released.
    LoopImage(PathBuf),
    /// A directory made directly below `root`, a host path the user named
    /// (a bench `path:` backend): the one kind of entry outside the run
    /// directory.
    HostDir {
        root: PathBuf,
        dir: PathBuf,
    },
}

impl std::fmt::Display for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Entry::Container(name) => write!(f, "container {name}"),
            Entry::Volume(name) => write!(f, "volume {name}"),
            Entry::Network(name) => write!(f, "network {name}"),
            Entry::Image(tag) => write!(f, "image {tag}"),
            Entry::Mount(path) => write!(f, "mount {}", path.display()),
            Entry::LoopImage(path) => write!(f, "btrfs image {}", path.display()),
            Entry::HostDir { dir, .. } => write!(f, "host directory {}", dir.display()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("record {entry} in the run's journal {}", path.display())]
pub struct JournalError {
    entry: String,
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

/// A live run's journal, locked for as long as it is held.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: Mutex<File>,
}

impl Journal {
    /// Creates `dir/journal` (it must not exist) and locks it.
    pub fn create(dir: &Path) -> std::io::Result<Journal> {
        let path = dir.join(FILE);
        let file = OpenOptions::new().append(true).create_new(true).open(&path)?;
        file.try_lock().map_err(|e| match e {
            TryLockError::Error(e) => e,
            TryLockError::WouldBlock => std::io::Error::other("a fresh journal is locked by another process"),
        })?;
        Ok(Journal { path, file: Mutex::new(file) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `entry` and syncs it, before the caller creates the object.
    pub fn record(&self, entry: &Entry) -> Result<(), JournalError> {
        let err = |source| JournalError { entry: entry.to_string(), path: self.path.clone(), source };
        let mut line = serde_json::to_string(entry).map_err(|e| err(e.into()))?;
        line.push('\n');
        // A poisoned lock only means another recorder panicked; the file
        // itself is fine.
        let mut file = self.file.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        file.write_all(line.as_bytes()).and_then(|()| file.sync_data()).map_err(err)
    }
}

/// Reads a journal. A line that does not parse (the last one, torn by a
/// kill mid-write, or a hand edit) is skipped with a warning: whatever it
/// named was not created yet, or is found by its label or path anyway.
pub fn read(path: &Path) -> std::io::Result<Vec<Entry>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e),
    };
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|line| match serde_json::from_str(line) {
            Ok(entry) => Some(entry),
            Err(e) => {
                tracing::warn!("{}: skipping unreadable line {line:?}: {e}", path.display());
                None
            }
        })
        .collect())
}

/// Whether a run directory's owner still lives.
#[derive(Debug)]
pub enum Owner {
    /// Its process holds the journal's lock.
    Alive,
    /// Nobody held the lock; the caller holds it now, so that no one else
    /// cleans the run at the same time.
    Dead(File),
    /// The directory has no journal: left by a crashlab older than the
    /// journal, or killed between making the directory and the journal
    /// (which `clean`'s lock on the runs directory rules out while it
    /// scans).
    NoJournal,
}

/// Tries to take the lock of the journal in `run_dir`.
pub fn owner(run_dir: &Path) -> std::io::Result<Owner> {
    let file = match File::open(run_dir.join(FILE)) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Owner::NoJournal),
        Err(e) => return Err(e),
    };
    match file.try_lock() {
        Ok(()) => Ok(Owner::Dead(file)),
        Err(TryLockError::WouldBlock) => Ok(Owner::Alive),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

/// Takes the lock on `<runs dir>/.lock`: shared while a run is being born,
/// exclusive while `clean` decides which runs are dead. Released on drop.
pub fn lock_runs(runs_dir: &Path, exclusive: bool) -> std::io::Result<File> {
    std::fs::create_dir_all(runs_dir)?;
    let file = OpenOptions::new().create(true).truncate(false).write(true).open(runs_dir.join(RUNS_LOCK))?;
    if exclusive {
        file.lock()?
    } else {
        file.lock_shared()?
    }
    Ok(file)
}

/// Whether `id` has the shape of the ids crashlab gives runs:
/// `<unix seconds>-<4 lowercase hex digits>`. Anything else read from a
/// label or a directory name is refused, so that no `..` or `/` can make a
/// path of it.
pub fn is_run_id(id: &str) -> bool {
    let Some((secs, tag)) = id.split_once('-') else { return false };
    (1..=20).contains(&secs.len())
        && secs.bytes().all(|b| b.is_ascii_digit())
        && tag.len() == 4
        && tag.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Why a path or id read back from a journal or a label was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("refusing run id {id:?} of {what}: not a crashlab run id (<unix seconds>-<4 hex digits>); left alone")]
    BadRunId { id: String, what: String },
    #[error("refusing {what} {}: it is not below {}; left alone", path.display(), root.display())]
    Outside { what: String, path: PathBuf, root: PathBuf },
    #[error("refusing {what} {name:?}: run {run} names its objects crashlab-{run}-...; left alone")]
    ForeignName { what: String, name: String, run: String },
    #[error("refusing {what} {}: {reason}; left alone", path.display())]
    Unusable { what: String, path: PathBuf, reason: String },
}

/// Resolves `path` for removal below `root` (which must be canonical):
/// `Ok(None)` when its parent no longer exists (nothing to remove),
/// `Ok(Some(p))` with its parent canonicalised (symlinks followed) when it
/// lies strictly below `root`. The last component is not resolved: it may
/// be a dead FUSE mount, which cannot be stat'ed, or a symlink, which
/// removal must not follow. `..` is refused outright.
pub fn confine(what: &str, path: &Path, root: &Path) -> Result<Option<PathBuf>, Refusal> {
    let refuse =
        |reason: &str| Refusal::Unusable { what: what.to_owned(), path: path.to_owned(), reason: reason.into() };
    if !path.is_absolute() {
        return Err(refuse("the path is not absolute"));
    }
    if path.components().any(|c| matches!(c, Component::ParentDir | Component::CurDir)) {
        return Err(refuse("the path has `..` components"));
    }
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(refuse("the path has no last component"));
    };
    let parent = match std::fs::canonicalize(parent) {
        Ok(parent) => parent,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(refuse(&format!("cannot resolve its parent: {e}"))),
    };
    let resolved = parent.join(name);
    if resolved.starts_with(root) && resolved != root {
        Ok(Some(resolved))
    } else {
        Err(Refusal::Outside { what: what.to_owned(), path: path.to_owned(), root: root.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_have_crashlabs_shape_only() {
        for good in ["1795274945-0429", "1-abcd", "12345678901234567890-ffff"] {
            assert!(is_run_id(good), "{good}");
        }
        for bad in [
            "",
            "..",
            "/",
            "../../etc",
            ".",
            "1795274945",
            "1795274945-",
            "-0429",
            "1795274945-042",
            "1795274945-04290",
            "1795274945-04G9",
            "1795274945-ABCD",
            "17952a4945-0429",
            "1795274945-04/9",
            "1795274945-0429/..",
            " 1795274945-0429",
            "123456789012345678901-0429",
        ] {
            assert!(!is_run_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn ids_made_by_run_contexts_pass() {
        let state = tempfile::tempdir().unwrap();
        let ctx = crate::run::RunContext::create(state.path()).unwrap();
        assert!(is_run_id(ctx.id()), "{}", ctx.id());
    }

    #[test]
    fn entries_round_trip_and_a_torn_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::create(dir.path()).unwrap();
        let entries = [
            Entry::Container("crashlab-1-abcd-c0".into()),
            Entry::Volume("crashlab-1-abcd-v\n\"odd\"".into()),
            Entry::Network("crashlab-1-abcd-n".into()),
            Entry::Image("crashlab-1-abcd-c0-commit:1".into()),
            Entry::Mount(dir.path().join("fs/a b/mnt")),
            Entry::LoopImage(dir.path().join("btrfs/p/image")),
            Entry::HostDir { root: "/srv/bench".into(), dir: "/srv/bench/crashlab-1-abcd-b0".into() },
        ];
        for entry in &entries {
            journal.record(entry).unwrap();
        }
        let text = std::fs::read_to_string(journal.path()).unwrap();
        assert_eq!(text.lines().count(), entries.len(), "one line each, newlines escaped:\n{text}");
        std::fs::write(journal.path(), format!("{text}{{\"container\":\"crashlab-1-ab")).unwrap();
        assert_eq!(read(journal.path()).unwrap(), entries);
        assert_eq!(read(&dir.path().join("absent")).unwrap(), vec![]);
    }

    #[test]
    fn a_held_journal_is_alive_and_a_dropped_one_dead() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(owner(dir.path()).unwrap(), Owner::NoJournal));
        let journal = Journal::create(dir.path()).unwrap();
        assert!(matches!(owner(dir.path()).unwrap(), Owner::Alive), "flock conflicts even within one process");
        drop(journal);
        let Owner::Dead(claim) = owner(dir.path()).unwrap() else { panic!("the lock is free") };
        assert!(matches!(owner(dir.path()).unwrap(), Owner::Alive), "a claimed dead run is not cleaned twice");
        drop(claim);
        assert!(Journal::create(dir.path()).is_err(), "a journal is never reopened for writing");
    }

    #[test]
    fn the_runs_lock_lets_creators_share_and_clean_wait() {
        let dir = tempfile::tempdir().unwrap();
        let a = lock_runs(dir.path(), false).unwrap();
        let b = lock_runs(dir.path(), false).unwrap();
        let probe = File::open(dir.path().join(RUNS_LOCK)).unwrap();
        assert!(matches!(probe.try_lock(), Err(TryLockError::WouldBlock)));
        drop((a, b));
        probe.try_lock().unwrap();
    }

    #[test]
    fn confine_keeps_paths_below_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(tmp.path()).unwrap().join("state");
        std::fs::create_dir_all(root.join("runs/1-abcd/fs/x")).unwrap();
        std::fs::create_dir_all(tmp.path().join("elsewhere")).unwrap();
        std::os::unix::fs::symlink(tmp.path().join("elsewhere"), root.join("runs/1-abcd/escape")).unwrap();
        let inside = root.join("runs/1-abcd/fs/x/mnt");
        assert_eq!(confine("mount", &inside, &root), Ok(Some(inside.clone())));
        assert_eq!(confine("mount", &root.join("runs/gone/x"), &root), Ok(None), "nothing left to remove");
        // (path, whether it is refused as outside rather than as malformed)
        let cases: [(PathBuf, bool); 7] = [
            (PathBuf::from("/"), false),
            (root.clone(), true),
            (root.join("runs/1-abcd/../../../etc"), false),
            (root.join("runs/1-abcd/.."), false),
            (PathBuf::from("relative/path"), false),
            (PathBuf::from("/etc/passwd"), true),
            (root.join("runs/1-abcd/escape/victim"), true),
        ];
        for (path, outside) in cases {
            let refusal = confine("mount", &path, &root).expect_err(&path.display().to_string());
            assert_eq!(matches!(refusal, Refusal::Outside { .. }), outside, "{path:?}: {refusal}");
            assert!(refusal.to_string().starts_with("refusing mount "), "{refusal}");
        }
    }
}
