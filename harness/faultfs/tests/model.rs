//! Model check: random operation sequences run against a mounted faultfs
//! and against a small in-memory model of the persistence rules documented
//! in the crate docs; after every power cut the surviving files must match.
//! Before each cut, the recorded history is checked too: over a copy of the
//! backing directory, its full prefix must materialise to what the
//! application sees and its empty prefix to what the cut leaves.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use common::{Fixture, fuse_available};
use crashlab_faultfs::{Base, FaultConfig, StateId, materialise};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const DIRS: [&str; 2] = ["", "d"];
const NAMES: [&str; 3] = ["a", "b", "c"];

type At = (usize, usize);

#[derive(Clone, Debug)]
enum Op {
    Create(At),
    Write(At, u64, usize, u8),
    Truncate(At, u64),
    Fsync(At),
    Rename(At, At),
    Unlink(At),
    FsyncDir(usize),
    PowerCut,
}

fn at() -> impl Strategy<Value = At> {
    (0..DIRS.len(), 0..NAMES.len())
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => at().prop_map(Op::Create),
        4 => (at(), 0..6000u64, 1..3000usize, any::<u8>()).prop_map(|(a, o, l, b)| Op::Write(a, o, l, b)),
        1 => (at(), 0..6000u64).prop_map(|(a, l)| Op::Truncate(a, l)),
        2 => at().prop_map(Op::Fsync),
        2 => (at(), at()).prop_map(|(a, b)| Op::Rename(a, b)),
        1 => at().prop_map(Op::Unlink),
        2 => (0..DIRS.len()).prop_map(Op::FsyncDir),
        1 => Just(Op::PowerCut),
    ]
}

#[derive(Debug)]
enum Entry {
    Create(At, u64),
    Remove(At),
    Rename(At, At),
}

impl Entry {
    fn touches(&self, dir: usize) -> bool {
        match self {
            Entry::Create(a, _) | Entry::Remove(a) => a.0 == dir,
            Entry::Rename(a, b) => a.0 == dir || b.0 == dir,
        }
    }
}

/// The persistence rules, on a flat two-directory namespace.
#[derive(Debug, Default)]
struct Model {
    next: u64,
    visible: BTreeMap<At, u64>,
    durable: BTreeMap<At, u64>,
    journal: Vec<Entry>,
    /// Inode to (visible bytes, durable bytes).
    data: HashMap<u64, (Vec<u8>, Vec<u8>)>,
}

impl Model {
    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Create(a) => {
                if !self.visible.contains_key(&a) {
                    self.next += 1;
                    self.visible.insert(a, self.next);
                    self.data.insert(self.next, (Vec::new(), Vec::new()));
                    self.journal.push(Entry::Create(a, self.next));
                }
            }
            Op::Write(a, off, len, byte) => {
                if let Some(ino) = self.visible.get(&a) {
                    let v = &mut self.data.get_mut(ino).unwrap().0;
                    let end = off as usize + len;
                    if v.len() < end {
                        v.resize(end, 0);
                    }
                    v[off as usize..end].fill(byte);
                }
            }
            Op::Truncate(a, len) => {
                if let Some(ino) = self.visible.get(&a) {
                    self.data.get_mut(ino).unwrap().0.resize(len as usize, 0);
                }
            }
            Op::Fsync(a) => {
                if let Some(ino) = self.visible.get(&a) {
                    let d = self.data.get_mut(ino).unwrap();
                    d.1 = d.0.clone();
                }
            }
            Op::Rename(from, to) => {
                if from != to
                    && let Some(ino) = self.visible.remove(&from)
                {
                    self.visible.insert(to, ino);
                    self.journal.push(Entry::Rename(from, to));
                }
            }
            Op::Unlink(a) => {
                if self.visible.remove(&a).is_some() {
                    self.journal.push(Entry::Remove(a));
                }
            }
            Op::FsyncDir(dir) => {
                if let Some(last) = self.journal.iter().rposition(|e| e.touches(dir)) {
                    for e in self.journal.drain(..=last) {
                        match e {
                            Entry::Create(a, ino) => {
                                self.durable.insert(a, ino);
                            }
                            Entry::Remove(a) => {
                                self.durable.remove(&a);
                            }
                            Entry::Rename(from, to) => {
                                let ino = self.durable.remove(&from).expect("journal replays");
                                self.durable.insert(to, ino);
                            }
                        }
                    }
                }
            }
            Op::PowerCut => {
                self.journal.clear();
                self.visible = self.durable.clone();
                for d in self.data.values_mut() {
                    d.0 = d.1.clone();
                }
            }
        }
    }

    fn contents(&self, a: At) -> Option<Vec<u8>> {
        self.visible.get(&a).map(|ino| self.data[ino].0.clone())
    }
}

fn path(fx: &Fixture, (d, n): At) -> PathBuf {
    fx.path(DIRS[d]).join(NAMES[n])
}

fn run_real(fx: &mut Fixture, op: &Op) {
    match *op {
        Op::Create(a) => {
            OpenOptions::new().write(true).create(true).truncate(false).open(path(fx, a)).unwrap();
        }
        Op::Write(a, off, len, byte) => {
            if let Ok(f) = OpenOptions::new().write(true).open(path(fx, a)) {
                f.write_all_at(&vec![byte; len], off).unwrap();
            }
        }
        Op::Truncate(a, len) => {
            if let Ok(f) = OpenOptions::new().write(true).open(path(fx, a)) {
                f.set_len(len).unwrap();
            }
        }
        Op::Fsync(a) => {
            if let Ok(f) = File::open(path(fx, a)) {
                f.sync_all().unwrap();
            }
        }
        Op::Rename(from, to) => {
            let _ = fs::rename(path(fx, from), path(fx, to));
        }
        Op::Unlink(a) => {
            let _ = fs::remove_file(path(fx, a));
        }
        Op::FsyncDir(d) => File::open(fx.mnt.join(DIRS[d])).unwrap().sync_all().unwrap(),
        Op::PowerCut => fx.crash_and_remount(),
    }
}

fn check_all(fx: &Fixture, model: &Model) -> Result<(), TestCaseError> {
    for (d, dir) in DIRS.iter().enumerate() {
        let mut names: Vec<String> = fs::read_dir(fx.mnt.join(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| !(d == 0 && n == "d"))
            .collect();
        names.sort();
        let want: Vec<String> = model.visible.keys().filter(|a| a.0 == d).map(|a| NAMES[a.1].to_owned()).collect();
        prop_assert_eq!(names, want, "names in /{}", dir);
    }
    for &a in model.visible.keys() {
        prop_assert_eq!(fs::read(path(fx, a)).ok(), model.contents(a), "contents of {:?}", a);
    }
    Ok(())
}

/// Every name under `root` with its contents (`None` for a directory).
fn tree(root: &std::path::Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in fs::read_dir(root.join(&rel)).unwrap() {
            let e = e.unwrap();
            let name = rel.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                stack.push(name.clone());
                out.insert(name, None);
            } else {
                out.insert(name, Some(fs::read(e.path()).unwrap()));
            }
        }
    }
    out
}

/// Takes a crash point and checks its full prefix against the mount;
/// returns the tree of its empty prefix, which the cut must leave.
fn check_history(fx: &Fixture) -> Result<BTreeMap<PathBuf, Option<Vec<u8>>>, TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let history = fx.fs().crash_point(&dir.path().join("base")).unwrap();
    let base = Base::open(&dir.path().join("base")).unwrap();
    let all = dir.path().join("all");
    materialise(&base, &history, &StateId::Prefix(history.ops().len()), &all).unwrap();
    prop_assert_eq!(tree(&all), tree(&fx.mnt), "full prefix of {:?}", history);
    let none = dir.path().join("none");
    materialise(&base, &history, &StateId::Prefix(0), &none).unwrap();
    Ok(tree(&none))
}

#[test]
fn faultfs_matches_the_persistence_model() {
    if !fuse_available() {
        return;
    }
    let mut runner = TestRunner::new(Config { cases: 32, failure_persistence: None, ..Config::default() });
    let ops = proptest::collection::vec(op(), 1..40);
    runner
        .run(&ops, |ops| {
            let mut fx = Fixture::new(FaultConfig::builder().seed(1).build().unwrap());
            fs::create_dir(fx.mnt.join("d")).unwrap();
            fx.fs().checkpoint().unwrap();
            let mut model = Model::default();
            for op in &ops {
                model.apply(op);
                let cut_leaves = matches!(op, Op::PowerCut).then(|| check_history(&fx)).transpose()?;
                run_real(&mut fx, op);
                match *op {
                    Op::PowerCut => {
                        check_all(&fx, &model)?;
                        prop_assert_eq!(Some(tree(&fx.mnt)), cut_leaves, "the empty prefix is the cut");
                    }
                    Op::Create(a) | Op::Write(a, ..) | Op::Truncate(a, _) | Op::Unlink(a) => {
                        prop_assert_eq!(fs::read(path(&fx, a)).ok(), model.contents(a), "after {:?}", op);
                    }
                    _ => {}
                }
            }
            check_all(&fx, &model)?;
            let cut_leaves = check_history(&fx)?;
            model.apply(&Op::PowerCut);
            fx.crash_and_remount();
            check_all(&fx, &model)?;
            prop_assert_eq!(tree(&fx.mnt), cut_leaves, "the empty prefix is the cut");
            Ok(())
        })
        .unwrap();
}
