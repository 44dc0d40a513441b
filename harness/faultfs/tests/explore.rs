//! The explorer against a brute-force enumeration of the persistence model
//! (crate docs, "Crash states"), written independently and naively here: on
//! small random histories, with bounds large enough to be exhaustive, the set
//! of file trees the explorer materialises must equal the set obtained by
//! trying every subset of the operations, keeping those the model allows,
//! plus every torn prefix write.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use crashlab_faultfs::{Barrier, Base, ExploreConfig, History, Op, StateId, explore, materialise};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const SECTOR: u64 = 4;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Content {
    File(Vec<u8>),
    Dir,
}

type Tree = BTreeMap<String, Content>;

#[derive(Clone, Debug)]
struct Raw {
    kind: u8,
    a: u8,
    off: u64,
    len: usize,
    byte: u8,
}

fn raw() -> impl Strategy<Value = Raw> {
    (0..8u8, any::<u8>(), 0..24u64, 1..12usize, any::<u8>()).prop_map(|(kind, a, off, len, byte)| Raw {
        kind,
        a,
        off,
        len,
        byte,
    })
}

/// A generated case: base file contents by id, and the history built from
/// a valid sequence of calls, with each operation's epoch as the generator
/// counted it.
struct Case {
    base: BTreeMap<u64, Vec<u8>>,
    history: History,
    ops: Vec<Op>,
    epochs: Vec<usize>,
}

fn build(raws: &[Raw], a_len: usize, b_len: usize) -> Case {
    let base = BTreeMap::from([
        (1, (0..a_len).map(|i| b'A' + (i % 26) as u8).collect()),
        (2, (0..b_len).map(|i| b'a' + (i % 26) as u8).collect()),
        (3, b"3".to_vec()),
        (4, b"44".to_vec()),
    ]);
    // The visible namespace, to generate only calls that would succeed.
    let mut names: BTreeMap<String, Option<u64>> =
        BTreeMap::from([("a".into(), Some(1)), ("b".into(), Some(2)), ("d".into(), None)]);
    let mut created = BTreeSet::new();
    let mut history = History::with_sector_size(SECTOR);
    let (mut ops, mut epochs) = (Vec::new(), Vec::new());
    let (mut epoch, mut op_since_barrier, mut barriers) = (0, false, 0);
    for r in raws {
        if ops.len() == 8 {
            break;
        }
        let files: Vec<(String, u64)> = names.iter().filter_map(|(n, f)| f.map(|f| (n.clone(), f))).collect();
        let mut targets = vec!["a", "b", "c", "d/x", "d/y"];
        if names.get("e") == Some(&None) {
            targets.push("e/z");
        }
        let target = targets[r.a as usize % targets.len()].to_owned();
        let op = match r.kind {
            0..=2 => {
                let data: Vec<u8> = (0..r.len).map(|i| r.byte.wrapping_add(i as u8)).collect();
                Some(Op::Write { file: 1 + u64::from(r.a % 4), offset: r.off, data: data.into() })
            }
            3 => Some(Op::Truncate { file: 1 + u64::from(r.a % 4), size: r.off + r.len as u64 }),
            4 if !names.contains_key(&target) => {
                let new = (3..=4).find(|f| !created.contains(f));
                match (new, files.first()) {
                    (Some(f), _) => {
                        created.insert(f);
                        Some(Op::Create { path: target.clone().into(), file: f })
                    }
                    (None, Some((_, f))) => Some(Op::Link { path: target.clone().into(), file: *f }),
                    (None, None) => None,
                }
            }
            5 if !files.is_empty() && names.get(&target).is_none_or(Option::is_some) => {
                let (from, _) = &files[r.byte as usize % files.len()];
                (from != &target).then(|| Op::Rename { from: from.into(), to: target.clone().into() })
            }
            6 if !files.is_empty() => {
                let (path, _) = &files[r.byte as usize % files.len()];
                Some(Op::Unlink { path: path.into() })
            }
            7 if r.a % 3 == 0 && !names.contains_key("e") => {
                Some(Op::Mkdir { path: "e".into(), perm: 0o755, uid: 0, gid: 0 })
            }
            7 if barriers < 2 => {
                barriers += 1;
                history.push_barrier(Barrier::Fsync(9));
                if op_since_barrier {
                    epoch += 1;
                    op_since_barrier = false;
                }
                None
            }
            _ => None,
        };
        let Some(op) = op else { continue };
        apply_name(&mut names, &op);
        history.push_op(op.clone());
        ops.push(op);
        epochs.push(epoch);
        op_since_barrier = true;
    }
    Case { base, history, ops, epochs }
}

/// Applies a namespace operation to a name → file map (`None` for a
/// directory); other operations leave it alone.
fn apply_name(names: &mut BTreeMap<String, Option<u64>>, op: &Op) {
    match op {
        Op::Create { path, file } | Op::Link { path, file } => {
            names.insert(path.to_string_lossy().into(), Some(*file));
        }
        Op::Rename { from, to } => {
            let f = names.remove(&*from.to_string_lossy()).flatten();
            names.insert(to.to_string_lossy().into(), f);
        }
        Op::Unlink { path } => {
            names.remove(&*path.to_string_lossy());
        }
        Op::Mkdir { path, .. } => {
            names.insert(path.to_string_lossy().into(), None);
        }
        _ => {}
    }
}

/// The tree a kept set leaves, computed naively from the base contents.
fn brute_tree(case: &Case, keep: &[bool], torn: Option<(usize, usize)>) -> Tree {
    let mut files = case.base.clone();
    let mut names: BTreeMap<String, Option<u64>> =
        BTreeMap::from([("a".into(), Some(1)), ("b".into(), Some(2)), ("d".into(), None)]);
    let steps = (0..case.ops.len()).filter(|&i| keep[i]).map(|i| (i, None)).chain(torn.map(|(i, n)| (i, Some(n))));
    for (i, limit) in steps {
        match &case.ops[i] {
            Op::Write { file, offset, data } => {
                let data = &data[..limit.unwrap_or(data.len())];
                let f = files.get_mut(file).unwrap();
                let end = *offset as usize + data.len();
                if f.len() < end {
                    f.resize(end, 0);
                }
                f[*offset as usize..end].copy_from_slice(data);
            }
            Op::Truncate { file, size } => files.get_mut(file).unwrap().resize(*size as usize, 0),
            op @ (Op::Create { .. } | Op::Link { .. } | Op::Rename { .. } | Op::Unlink { .. } | Op::Mkdir { .. }) => {
                apply_name(&mut names, op)
            }
            other => panic!("not generated: {other:?}"),
        }
    }
    names.into_iter().map(|(n, f)| (n, f.map_or(Content::Dir, |f| Content::File(files[&f].clone())))).collect()
}

/// Every state of the model by brute force: all subsets, filtered by the
/// epoch rule and the transitive closure of the direct orderings.
#[expect(clippy::needless_range_loop, reason = "the naive matrix form is the point")]
fn brute_force(case: &Case) -> BTreeSet<Tree> {
    let n = case.ops.len();
    let file = |op: &Op| match op {
        Op::Write { file, .. } | Op::Truncate { file, .. } => Some(*file),
        _ => None,
    };
    let is_trunc = |op: &Op| matches!(op, Op::Truncate { .. });
    let mut reach = vec![vec![false; n]; n];
    for i in 0..n {
        for j in i + 1..n {
            if case.epochs[i] != case.epochs[j] {
                continue;
            }
            let (a, b) = (&case.ops[i], &case.ops[j]);
            let both_ns = file(a).is_none() && file(b).is_none();
            let same_file_trunc = file(a).is_some() && file(a) == file(b) && (is_trunc(a) || is_trunc(b));
            reach[i][j] = both_ns || same_file_trunc;
        }
    }
    for k in 0..n {
        for i in 0..n {
            for j in 0..n {
                if reach[i][k] && reach[k][j] {
                    reach[i][j] = true;
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    for mask in 0u32..(1 << n) {
        let keep: Vec<bool> = (0..n).map(|i| mask & (1 << i) != 0).collect();
        let legal = (0..n)
            .filter(|&j| keep[j])
            .all(|j| (0..n).all(|i| keep[i] || !(case.epochs[i] < case.epochs[j] || reach[i][j])));
        if legal {
            out.insert(brute_tree(case, &keep, None));
        }
    }
    for (i, op) in case.ops.iter().enumerate() {
        if let Op::Write { offset, data, .. } = op {
            let end = offset + data.len() as u64;
            let mut cut = (offset / SECTOR + 1) * SECTOR;
            let keep: Vec<bool> = (0..n).map(|j| j < i).collect();
            while cut < end {
                out.insert(brute_tree(case, &keep, Some((i, (cut - offset) as usize))));
                cut += SECTOR;
            }
        }
    }
    out
}

fn write_base(dir: &Path, case: &Case) {
    let staging = dir.join(".crashlab-faultfs");
    fs::create_dir_all(&staging).unwrap();
    fs::create_dir(dir.join("d")).unwrap();
    for (id, data) in &case.base {
        fs::write(staging.join(id.to_string()), data).unwrap();
    }
    fs::hard_link(staging.join("1"), dir.join("a")).unwrap();
    fs::hard_link(staging.join("2"), dir.join("b")).unwrap();
}

fn read_tree(root: &Path) -> Tree {
    let mut out = Tree::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in fs::read_dir(root.join(&rel)).unwrap() {
            let e = e.unwrap();
            let name = rel.join(e.file_name());
            let key = name.to_string_lossy().into_owned();
            if e.file_type().unwrap().is_dir() {
                stack.push(name);
                out.insert(key, Content::Dir);
            } else {
                out.insert(key, Content::File(fs::read(e.path()).unwrap()));
            }
        }
    }
    out
}

fn exhaustive() -> ExploreConfig {
    ExploreConfig { max_states: 1 << 20, max_drop: 8, max_torn_splits: 1 << 10, max_candidates: 1 << 20, seed: 1 }
}

fn explorer_trees(case: &Case) -> (Vec<StateId>, Vec<Tree>) {
    let dir = tempfile::tempdir().unwrap();
    let base_dir = dir.path().join("base");
    write_base(&base_dir, case);
    let base = Base::open(&base_dir).unwrap();
    let found = explore(&base, &case.history, &exhaustive()).unwrap();
    assert!(!found.sampled);
    let mut trees = Vec::new();
    for (k, state) in found.states.iter().enumerate() {
        let out = dir.path().join(format!("s{k}"));
        materialise(&base, &case.history, &state.id, &out).unwrap();
        trees.push(read_tree(&out));
        // Ids are stable text.
        assert_eq!(state.id.to_string().parse::<StateId>().unwrap(), state.id);
    }
    (found.states.into_iter().map(|s| s.id).collect(), trees)
}

#[test]
fn explorer_equals_brute_force_on_small_histories() {
    let mut runner = TestRunner::new(Config { cases: 200, failure_persistence: None, ..Config::default() });
    let strategy = (prop::collection::vec(raw(), 1..12), 1..16usize, 17..32usize);
    runner
        .run(&strategy, |(raws, a_len, b_len)| {
            let case = build(&raws, a_len, b_len);
            let expected = brute_force(&case);
            let (ids, trees) = explorer_trees(&case);
            let got: BTreeSet<Tree> = trees.iter().cloned().collect();
            prop_assert_eq!(got.len(), trees.len(), "duplicate contents among {:?}", ids);
            prop_assert_eq!(&got, &expected, "ops {:?} epochs {:?} ids {:?}", case.ops, case.epochs, ids);
            Ok(())
        })
        .unwrap();
}

#[test]
fn state_ids_name_what_they_keep() {
    let mut h = History::with_sector_size(SECTOR);
    h.push_op(Op::Write { file: 1, offset: 0, data: b"xxxxxxxx".as_slice().into() });
    h.push_op(Op::Create { path: "c".into(), file: 3 });
    h.push_barrier(Barrier::Fsync(2));
    h.push_op(Op::Write { file: 1, offset: 8, data: b"yy".as_slice().into() });
    let case = Case { base: BTreeMap::new(), history: h, ops: Vec::new(), epochs: Vec::new() };
    let dir = tempfile::tempdir().unwrap();
    let base_dir = dir.path().join("base");
    let case = Case {
        base: BTreeMap::from([(1, b"0123".to_vec()), (2, Vec::new()), (3, b"3".to_vec()), (4, Vec::new())]),
        ..case
    };
    write_base(&base_dir, &case);
    let base = Base::open(&base_dir).unwrap();
    let found = explore(&base, &case.history, &ExploreConfig::default()).unwrap();
    let ids: Vec<String> = found.states.iter().map(|s| s.id.to_string()).collect();
    assert_eq!(ids, ["p0", "p1", "p2", "p3", "e0-drop{0}", "t0@1/2"]);
    let k = crashlab_faultfs::kept_ops(&case.history, &"e0-drop{0}".parse().unwrap()).unwrap();
    assert_eq!((k.kept, k.dropped, k.torn), (vec![1], vec![0, 2], None));
    let out = dir.path().join("drop");
    materialise(&base, &case.history, &"e0-drop{0}".parse().unwrap(), &out).unwrap();
    assert_eq!(fs::read(out.join("a")).unwrap(), b"0123", "the write was dropped");
    assert_eq!(fs::read(out.join("c")).unwrap(), b"3", "the create persisted without it");
    let err = materialise(&base, &case.history, &"e1-drop{0}".parse().unwrap(), &out).unwrap_err();
    assert!(err.to_string().contains("not a state of this history"), "{err}");
}

/// Beyond `max_states`, prefixes take at most half the budget, so that a
/// crash point with many operations still gets torn writes checked.
#[test]
fn a_long_history_still_gets_torn_states_within_a_small_budget() {
    let dir = tempfile::tempdir().unwrap();
    let base_dir = dir.path().join("base");
    fs::create_dir_all(base_dir.join(".crashlab-faultfs")).unwrap();
    fs::write(base_dir.join("f"), vec![0u8; 64 * 16]).unwrap();
    fs::hard_link(base_dir.join("f"), base_dir.join(".crashlab-faultfs/1")).unwrap();
    let mut history = History::with_sector_size(512);
    for i in 0..40u64 {
        history.push_op(Op::Write { file: 1, offset: i * 2048, data: vec![i as u8 + 1; 2048].into() });
    }
    let base = Base::open(&base_dir).unwrap();
    let config = ExploreConfig { max_states: 8, max_drop: 0, ..ExploreConfig::default() };
    let found = explore(&base, &history, &config).unwrap();
    assert!(found.sampled);
    let ids: Vec<String> = found.states.iter().map(|s| s.id.to_string()).collect();
    assert_eq!(ids.len(), 8, "{ids:?}");
    let prefixes = ids.iter().filter(|id| id.starts_with('p')).count();
    assert_eq!(prefixes, 4, "{ids:?}");
    assert_eq!((ids[0].as_str(), ids[3].as_str()), ("p0", "p40"), "evenly spaced from p0 to the whole history");
    assert!(ids.iter().filter(|id| id.starts_with('t')).count() == 4, "{ids:?}");
}

/// Beyond `max_states`, up to half of the non-prefix budget goes to torn
/// writes over durable bytes (pages rewritten in place, where a tear
/// leaves half an old page): a history of many appends and a few in-place
/// rewrites still gets those torn.
#[test]
fn torn_rewrites_in_place_are_checked_before_appends() {
    let dir = tempfile::tempdir().unwrap();
    let base_dir = dir.path().join("base");
    fs::create_dir_all(base_dir.join(".crashlab-faultfs")).unwrap();
    fs::write(base_dir.join("table"), vec![7u8; 4 * 2048]).unwrap();
    fs::hard_link(base_dir.join("table"), base_dir.join(".crashlab-faultfs/1")).unwrap();
    fs::write(base_dir.join("ledger"), Vec::<u8>::new()).unwrap();
    fs::hard_link(base_dir.join("ledger"), base_dir.join(".crashlab-faultfs/2")).unwrap();
    let mut history = History::with_sector_size(512);
    for i in 0..60u64 {
        history.push_op(Op::Write { file: 2, offset: i * 2048, data: vec![i as u8 + 1; 2048].into() });
        if i % 20 == 10 {
            history.push_op(Op::Write { file: 1, offset: (i / 20) * 2048, data: vec![0xAB; 2048].into() });
        }
    }
    let in_place: Vec<usize> = history
        .ops()
        .iter()
        .enumerate()
        .filter(|(_, op)| matches!(op, Op::Write { file: 1, .. }))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(in_place.len(), 3);
    let base = Base::open(&base_dir).unwrap();
    for seed in 0..8 {
        let config = ExploreConfig { max_states: 8, max_drop: 0, seed, ..ExploreConfig::default() };
        let found = explore(&base, &history, &config).unwrap();
        let torn_in_place =
            found.states.iter().filter(|s| matches!(s.id, StateId::Torn { op, .. } if in_place.contains(&op))).count();
        assert_eq!(torn_in_place, 2, "half of the 4 non-prefix states, seed {seed}: {:?}", found.states);
        let again = explore(&base, &history, &config).unwrap();
        assert_eq!(again.states, found.states, "the same seed picks the same states");
    }
}
