//! Crash states of a real mount: the history faultfs records, the crash
//! point it captures, and the states explored from them. The empty prefix
//! must be what a power cut leaves; the full one what the application saw.

mod common;

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

use common::{Fixture, fuse_available};
use crashlab_faultfs::{
    Barrier, Base, CapturePlan, Event, ExploreConfig, FaultConfig, Op, StateId, Trigger, explore, materialise,
};

fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in fs::read_dir(root).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            out.insert(e.file_name().to_string_lossy().into_owned(), fs::read(e.path()).unwrap());
        }
    }
    out
}

#[test]
fn a_replace_by_rename_without_fsync_can_persist_the_name_without_the_data() {
    if !fuse_available() {
        return;
    }
    let mut fx = Fixture::new(FaultConfig::builder().build().unwrap());
    for (name, data) in [("db", b"v1v1"), ("log", b"0000")] {
        let mut f = File::create(fx.path(name)).unwrap();
        f.write_all(data).unwrap();
        f.sync_all().unwrap();
    }
    File::open(&fx.mnt).unwrap().sync_all().unwrap();
    assert!(fx.fs().history().ops().is_empty(), "everything is durable");

    let mut tmp = File::create(fx.path("tmp")).unwrap();
    tmp.write_all(b"v2v2").unwrap();
    drop(tmp);
    fs::rename(fx.path("tmp"), fx.path("db")).unwrap();
    let log = OpenOptions::new().write(true).open(fx.path("log")).unwrap();
    log.write_all_at(b"AAAA", 4).unwrap();
    log.sync_data().unwrap();
    log.write_all_at(b"BBBB", 8).unwrap();
    drop(log);
    let seen = tree(&fx.mnt);

    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("base");
    let history = fx.fs().crash_point(&snapshot).unwrap();
    let kinds: Vec<String> = history
        .events()
        .iter()
        .map(|e| match e {
            Event::Op(Op::Create { path, .. }) => format!("create {}", path.display()),
            Event::Op(Op::Write { offset, data, .. }) => format!("write {offset}+{}", data.len()),
            Event::Op(Op::Rename { from, to }) => format!("rename {} {}", from.display(), to.display()),
            Event::Op(other) => format!("{other:?}"),
            Event::Barrier(Barrier::Fdatasync(_)) => "fdatasync".into(),
            Event::Barrier(b) => format!("{b:?}"),
        })
        .collect();
    assert_eq!(kinds, ["create tmp", "write 0+4", "rename tmp db", "fdatasync", "write 8+4"]);

    fx.crash_and_remount();
    let after_cut = tree(&fx.mnt);

    let base = Base::open(&snapshot).unwrap();
    let found = explore(&base, &history, &ExploreConfig::default()).unwrap();
    let mut states = BTreeMap::new();
    for (i, s) in found.states.iter().enumerate() {
        let out = dir.path().join(format!("s{i}"));
        materialise(&base, &history, &s.id, &out).unwrap();
        states.insert(s.id.to_string(), tree(&out));
    }
    assert_eq!(states["p0"], after_cut, "the empty prefix is the power cut");
    assert_eq!(states[&format!("p{}", history.ops().len())], seen, "the full prefix is what was seen");
    let renamed_without_data = states.values().any(|t| t.get("db").is_some_and(Vec::is_empty));
    assert!(renamed_without_data, "some state has the new name with no data: {states:?}");
    assert!(states.values().all(|t| t["log"].starts_with(b"0000AAAA")), "fdatasync'd data is in every state");
    let id: StateId = "e0-drop{1}".parse().unwrap();
    assert!(found.states.iter().any(|s| s.id == id), "{:?}", found.states);
}

#[test]
fn fsync_and_checkpoint_trim_the_history() {
    if !fuse_available() {
        return;
    }
    let fx = Fixture::new(FaultConfig::builder().build().unwrap());
    let mut a = File::create(fx.path("a")).unwrap();
    a.write_all(b"aaaa").unwrap();
    let mut b = File::create(fx.path("b")).unwrap();
    b.write_all(b"bb").unwrap();
    a.sync_all().unwrap();
    let h = fx.fs().history();
    let ops: Vec<&Op> = h.ops();
    assert_eq!(ops.len(), 3, "two creates and b's write remain: {ops:?}");
    assert!(matches!(h.events().last(), Some(Event::Barrier(Barrier::Fsync(_)))));
    File::open(&fx.mnt).unwrap().sync_all().unwrap();
    let h = fx.fs().history();
    assert!(matches!(h.ops()[..], [Op::Write { .. }]), "the creates were committed: {h:?}");
    fx.fs().checkpoint().unwrap();
    assert!(fx.fs().history().events().is_empty());
}

/// A crash point at an fsync is taken when the call arrives, before it
/// takes effect: the writes it was about to make durable are still in the
/// history, so the states include the file torn, old and new, while the
/// live filesystem goes on to make them durable. Calls that do not match
/// the trigger's path, or would persist no data, are no points.
#[test]
fn a_point_at_an_fsync_holds_the_writes_it_was_about_to_make_durable() {
    if !fuse_available() {
        return;
    }
    let fx = Fixture::new(FaultConfig::builder().build().unwrap());
    let db = File::create(fx.path("t.ibd")).unwrap();
    db.write_all_at(&[b'o'; 2048], 0).unwrap();
    db.sync_all().unwrap();
    let log = File::create(fx.path("log")).unwrap();
    log.sync_all().unwrap();
    File::open(&fx.mnt).unwrap().sync_all().unwrap();
    assert!(fx.fs().history().ops().is_empty(), "everything is durable");

    let dir = tempfile::tempdir().unwrap();
    let plan = CapturePlan {
        trigger: "fsync:*.ibd".parse::<Trigger>().unwrap(),
        max_points: 1,
        every: 1,
        seed: 0,
        into: dir.path().join("points"),
        window: None,
    };
    fx.fs().capture_at(plan);
    db.sync_all().unwrap(); // nothing unsynced: no candidate
    log.write_all_at(b"redo", 0).unwrap();
    log.sync_all().unwrap(); // not an .ibd: no candidate
    db.write_all_at(&[b'n'; 2048], 0).unwrap();
    let before = Instant::now();
    db.sync_data().unwrap(); // the point
    db.write_all_at(&[b'x'; 2048], 0).unwrap();
    db.sync_all().unwrap(); // past max-points
    db.set_len(4096).unwrap();
    db.sync_all().unwrap(); // persists only a size: no candidate
    let counts = fx.fs().stop_capture();
    assert_eq!((counts.candidates, counts.captured, counts.skipped_empty), (2, 1, 2), "{counts:?}");

    let points = fx.fs().take_captures();
    assert_eq!(points.len(), 1);
    let point = &points[0];
    assert!(point.error.is_none(), "{point:?}");
    assert_eq!(point.label, "fdatasync #0 of /t.ibd");
    assert_eq!(point.score, 2048, "one file with 2048 unsynced bytes");
    assert!(point.at >= before);
    assert!(
        matches!(point.history.ops()[..], [Op::Write { offset: 0, data, .. }] if data.len() == 2048 && data[0] == b'n'),
        "the write the fsync was about to make durable: {:?}",
        point.history
    );
    let base = Base::open(&point.base).unwrap();
    let found = explore(&base, &point.history, &ExploreConfig::default()).unwrap();
    let mut contents = Vec::new();
    for (i, s) in found.states.iter().enumerate() {
        let out = dir.path().join(format!("s{i}"));
        materialise(&base, &point.history, &s.id, &out).unwrap();
        contents.push((s.id.to_string(), fs::read(out.join("t.ibd")).unwrap()));
    }
    let old = vec![b'o'; 2048];
    let new = vec![b'n'; 2048];
    assert_eq!(contents[0], ("p0".to_owned(), old.clone()), "{contents:?}");
    assert_eq!(contents[1], ("p1".to_owned(), new.clone()));
    let torn: Vec<&Vec<u8>> = contents.iter().filter(|(id, _)| id.starts_with('t')).map(|(_, c)| c).collect();
    assert!(!torn.is_empty());
    for c in torn {
        let split = c.iter().position(|&b| b == b'o').unwrap();
        assert!(split % 512 == 0 && split > 0 && c[split..].iter().all(|&b| b == b'o'), "torn at a sector");
    }
    assert_eq!(fs::read(fx.path("t.ibd")).unwrap()[..2048], [b'x'; 2048], "the live file went on");
}

/// Materialisation speed for the report: a 64 MiB base file and ~100
/// unsynced 4 KiB writes. Run with `--ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check"]
fn materialise_speed_64mib_base_100_writes() {
    if !fuse_available() {
        return;
    }
    let fx = Fixture::new(FaultConfig::builder().build().unwrap());
    let f = File::create(fx.path("big")).unwrap();
    let chunk = vec![7u8; 1 << 20];
    for i in 0..64u64 {
        f.write_all_at(&chunk, i << 20).unwrap();
    }
    f.sync_all().unwrap();
    File::open(&fx.mnt).unwrap().sync_all().unwrap();
    for i in 0..100u64 {
        f.write_all_at(&[i as u8; 4096], (i * 7919 % 16384) * 4096).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("base");
    let t = Instant::now();
    let history = fx.fs().crash_point(&snapshot).unwrap();
    eprintln!("crash point (copy 64 MiB base): {:?}", t.elapsed());
    let base = Base::open(&snapshot).unwrap();
    let t = Instant::now();
    let found = explore(&base, &history, &ExploreConfig::default()).unwrap();
    eprintln!(
        "explore: {} candidates, {} distinct, {} kept, in {:?}",
        found.candidates,
        found.distinct,
        found.states.len(),
        t.elapsed()
    );
    let t = Instant::now();
    let n = 8;
    for (i, s) in found.states.iter().take(n).enumerate() {
        materialise(&base, &history, &s.id, &dir.path().join(format!("s{i}"))).unwrap();
    }
    let per = t.elapsed() / n as u32;
    eprintln!("materialise: {per:?} per state, {:.1} states/s", 1.0 / per.as_secs_f64());
}

/// Cost of recording on the write path: 32 MiB in 4 KiB writes through the
/// mount, with the history on and off. Run with `--ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check"]
fn write_path_cost_of_recording() {
    if !fuse_available() {
        return;
    }
    for history in [0, FaultConfig::DEFAULT_MAX_HISTORY] {
        let fx = Fixture::new(FaultConfig::builder().max_history_bytes(history).build().unwrap());
        let f = File::create(fx.path("f")).unwrap();
        let block = vec![1u8; 4096];
        let t = Instant::now();
        for i in 0..8192u64 {
            f.write_all_at(&block, i * 4096).unwrap();
        }
        let el = t.elapsed();
        eprintln!(
            "history budget {history}: {:?} for 32 MiB, {:.0} MiB/s, {} ops recorded",
            el,
            32.0 / el.as_secs_f64(),
            fx.fs().history().ops().len()
        );
    }
}
