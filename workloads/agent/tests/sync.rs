//! The `sync` and `restore` subcommands as the harness runs them: the
//! built binary as a subprocess, a real directory that other threads write
//! while it is backed up, a `file://` store, and SIGTERM to stop it. They
//! chown files to other users, so they run as root, as the agent does in
//! its container.

use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt, chown, symlink};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const BIN: &str = env!("CARGO_BIN_EXE_crashlab-agent");
const KEY: &str = "app";
const WAIT: Duration = Duration::from_secs(60);

fn store_url(store: &Path) -> String {
    format!("file://{}", store.display())
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis().try_into().unwrap()
}

/// A running `crashlab-agent sync`, killed if a test fails before it
/// stopped it.
struct Sidecar {
    child: Child,
    lines: Receiver<String>,
    events: Vec<Value>,
}

impl Sidecar {
    fn start(dir: &Path, store: &Path, interval: &str) -> Self {
        let mut child = Command::new(BIN)
            .args(["sync", "--key", KEY, "--interval", interval, "--store", &store_url(store), "--dir"])
            .arg(dir)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines, events: Vec::new() }
    }

    /// The next event line, parsed; panics after [`WAIT`].
    fn next_event(&mut self) -> Value {
        let line = self.lines.recv_timeout(WAIT).expect("an event line from sync");
        let event: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?} is not JSON: {e}"));
        self.events.push(event.clone());
        event
    }

    /// Events up to and including the first that `done` accepts.
    fn until(&mut self, mut done: impl FnMut(&Value) -> bool) -> Value {
        loop {
            let event = self.next_event();
            if done(&event) {
                return event;
            }
        }
    }

    /// SIGTERM, then the exit status, how long the exit took, and the
    /// events printed until then.
    fn stop(mut self) -> (ExitStatus, Duration, Vec<Value>) {
        let sent = Instant::now();
        let kill = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(kill.success());
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(sent.elapsed() < WAIT, "sync did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(10));
        };
        let took = sent.elapsed();
        loop {
            match self.lines.recv_timeout(Duration::from_secs(5)) {
                Ok(line) => self.events.push(serde_json::from_str(&line).unwrap()),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!("stdout still open after exit"),
            }
        }
        (status, took, std::mem::take(&mut self.events))
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn restore(dir: &Path, store: &Path, key: &str) -> Output {
    Command::new(BIN).args(["restore", "--key", key, "--store", &store_url(store), "--dir"]).arg(dir).output().unwrap()
}

/// Checks a `backup` event's fields and returns its `bytes`.
fn backup_bytes(event: &Value) -> u64 {
    assert_eq!(event["event"], "backup", "{event}");
    let started = event["started_unix_ms"].as_u64().unwrap();
    let finished = event["finished_unix_ms"].as_u64().unwrap();
    assert!(started <= finished, "{event}");
    assert!(event["files"].as_u64().is_some(), "{event}");
    event["bytes"].as_u64().filter(|&b| b > 0).unwrap_or_else(|| panic!("{event}"))
}

/// The store directory's file names: the one object, and any staging file
/// left beside it.
fn store_files(store: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(store).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names
}

/// Everything `restore` promises to bring back about a tree: kind, mode,
/// owner, a file's contents and mtime, a link's target.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(root: &Path, path: &Path, out: &mut BTreeMap<PathBuf, String>) {
        let meta = fs::symlink_metadata(path).unwrap();
        let owner = format!("mode {:o} uid {} gid {}", meta.mode() & 0o7777, meta.uid(), meta.gid());
        let rel = path.strip_prefix(root).unwrap().to_owned();
        if meta.is_dir() {
            out.insert(rel, format!("dir {owner}"));
            for entry in fs::read_dir(path).unwrap() {
                walk(root, &entry.unwrap().path(), out);
            }
        } else if meta.file_type().is_symlink() {
            out.insert(rel, format!("link {} uid {}", fs::read_link(path).unwrap().display(), meta.uid()));
        } else {
            let digest = crc32fast::hash(&fs::read(path).unwrap());
            out.insert(rel, format!("file {owner} len {} crc {digest:08x} mtime {}", meta.len(), meta.mtime()));
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Bytes that do not compress, from a fixed seed.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed.to_le_bytes()[3]
        })
        .collect()
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn own(path: &Path, uid: u32, gid: u32) {
    chown(path, Some(uid), Some(gid)).expect("chown (these tests run as root, as the agent does)");
}

#[test]
fn a_backup_restores_contents_modes_and_owners() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, store) = (tmp.path().join("data"), tmp.path().join("store"));
    fs::create_dir_all(data.join("mysql")).unwrap();
    fs::create_dir_all(data.join("ro/deep")).unwrap();
    fs::create_dir(&store).unwrap();
    // A MariaDB-like tree: files of uid 999 (mysql) with private modes,
    // one bigger than an upload part, a link, an empty file, a setgid
    // directory and a read-only one that must still be filled.
    fs::write(data.join("ibdata1"), noise(9 << 20, 1)).unwrap();
    fs::write(data.join("mysql/user.frm"), b"users").unwrap();
    fs::write(data.join("empty"), b"").unwrap();
    fs::write(data.join("ro/deep/file"), b"deep").unwrap();
    symlink("ibdata1", data.join("link")).unwrap();
    for (path, mode, uid) in [
        ("", 0o750, 999),
        ("ibdata1", 0o660, 999),
        ("mysql", 0o2750, 999),
        ("mysql/user.frm", 0o600, 999),
        ("empty", 0o644, 0),
        ("ro/deep/file", 0o400, 1234),
        ("ro/deep", 0o500, 1234),
        ("ro", 0o555, 0),
    ] {
        let path = data.join(path);
        own(&path, uid, uid + 1);
        chmod(&path, mode);
    }
    let before = snapshot(&data);

    let spawned_ms = unix_ms();
    let mut sync = Sidecar::start(&data, &store, "700ms");
    assert_eq!(sync.next_event(), serde_json::json!({"event": "ready"}));
    let first = sync.next_event();
    let bytes = backup_bytes(&first);
    assert_eq!(first["seq"], 1);
    assert_eq!(first["files"], 4);
    assert!(first["started_unix_ms"].as_u64().unwrap() >= spawned_ms + 700, "the first backup waits one interval");
    assert!(bytes > 9 << 20, "noise does not compress: {first}");
    let second = sync.next_event();
    assert_eq!(second["seq"], 2);
    let (status, _, _) = sync.stop();
    assert!(status.success(), "{status}");
    assert_eq!(store_files(&store), ["app.tar.gz"]);

    let out_dir = tmp.path().join("fresh/volume");
    let out = restore(&out_dir, &store, KEY);
    assert!(out.status.success(), "{out:?}");
    let line = String::from_utf8(out.stdout).unwrap();
    let restored: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(restored["event"], "restored");
    assert_eq!(restored["files"], 4);
    assert_eq!(restored["bytes"].as_u64(), Some(fs::metadata(store.join("app.tar.gz")).unwrap().len()));
    assert!(restored["duration_ms"].as_u64().is_some());
    assert_eq!(snapshot(&out_dir), before);
}

#[test]
fn a_live_directory_backs_up_without_failing() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, store) = (tmp.path().join("data"), tmp.path().join("store"));
    fs::create_dir_all(data.join("churn")).unwrap();
    fs::create_dir(&store).unwrap();
    let pattern: Vec<u8> = (0..1 << 20).map(|i: u32| b'a' + (i % 26) as u8).collect();
    let done = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    // One file only grows, one is cut and rewritten again and again, and
    // files appear and vanish in `churn`.
    let (grow, d) = (data.join("grows.log"), done.clone());
    writers.push(std::thread::spawn(move || {
        let mut f = fs::OpenOptions::new().create(true).append(true).open(grow).unwrap();
        for i in 0u64.. {
            if d.load(Ordering::Relaxed) {
                break;
            }
            f.write_all(format!("{i:012}\n").repeat(300).as_bytes()).unwrap();
            std::thread::sleep(Duration::from_micros(500));
        }
    }));
    let (shrink, d, p) = (data.join("rewritten"), done.clone(), pattern.clone());
    writers.push(std::thread::spawn(move || {
        while !d.load(Ordering::Relaxed) {
            let mut f = fs::OpenOptions::new().create(true).write(true).truncate(true).open(&shrink).unwrap();
            for chunk in p.chunks(64 << 10) {
                f.write_all(chunk).unwrap();
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }));
    let (churn, d) = (data.join("churn"), done.clone());
    writers.push(std::thread::spawn(move || {
        for i in 0u64.. {
            if d.load(Ordering::Relaxed) {
                break;
            }
            let path = churn.join(format!("f{}", i % 50));
            if i % 2 == 0 {
                fs::write(&path, b"here").unwrap();
            } else {
                let _ = fs::remove_file(&path);
            }
        }
    }));

    let mut sync = Sidecar::start(&data, &store, "50ms");
    assert_eq!(sync.next_event()["event"], "ready");
    for seq in 1..=8 {
        let event = sync.next_event();
        assert_eq!(event["seq"], seq);
        backup_bytes(&event);
    }
    let (status, _, events) = sync.stop();
    done.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.join().unwrap();
    }
    assert!(status.success(), "{status}");
    // After SIGTERM only an abandoned backup may fail.
    for event in &events[1..] {
        assert!(event["event"] == "backup" || event["error"] == "abandoned: the agent is stopping", "{event}");
    }

    let out_dir = tmp.path().join("out");
    let out = restore(&out_dir, &store, KEY);
    assert!(out.status.success(), "{out:?}");
    let grown = fs::read(data.join("grows.log")).unwrap();
    let copy = fs::read(out_dir.join("grows.log")).unwrap();
    assert!(!copy.is_empty() && grown.starts_with(&copy), "a growing file is archived as a prefix");
    let copy = fs::read(out_dir.join("rewritten")).unwrap();
    assert!(copy.len() <= pattern.len());
    assert!(
        copy.iter().zip(&pattern).all(|(&c, &p)| c == p || c == 0),
        "a rewritten file holds the bytes read, then zeros where it shrank"
    );
}

#[test]
fn each_backup_replaces_the_last() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, store) = (tmp.path().join("data"), tmp.path().join("store"));
    fs::create_dir_all(&data).unwrap();
    fs::create_dir(&store).unwrap();
    fs::write(data.join("version"), b"1").unwrap();

    let mut sync = Sidecar::start(&data, &store, "150ms");
    sync.until(|e| e["event"] == "backup");
    let changed_ms = unix_ms();
    fs::write(data.join("version"), b"2").unwrap();
    sync.until(|e| e["event"] == "backup" && e["started_unix_ms"].as_u64().unwrap() > changed_ms);
    let (status, _, events) = sync.stop();
    assert!(status.success(), "{status}");
    let seqs: Vec<u64> = events.iter().filter_map(|e| e["seq"].as_u64()).collect();
    assert!(seqs.len() >= 2 && seqs.iter().zip(1..).all(|(&s, n)| s == n), "{seqs:?}");
    assert_eq!(store_files(&store), ["app.tar.gz"], "one object per key");

    let out_dir = tmp.path().join("out");
    assert!(restore(&out_dir, &store, KEY).status.success());
    assert_eq!(fs::read(out_dir.join("version")).unwrap(), b"2");
}

#[test]
fn sigterm_abandons_a_backup_in_progress_and_keeps_the_last_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, store) = (tmp.path().join("data"), tmp.path().join("store"));
    fs::create_dir_all(&data).unwrap();
    fs::create_dir(&store).unwrap();
    fs::write(data.join("big"), noise(48 << 20, 7)).unwrap();

    // A 1 ms interval runs backups back to back, so the signal lands in
    // one: a quarter of the way into the second, while it still reads (a
    // backup stopped once its files are read goes on to finish its upload,
    // and the second, on a warm page cache, can take half the first's
    // time).
    let mut sync = Sidecar::start(&data, &store, "1ms");
    let first = sync.until(|e| e["event"] == "backup");
    let bytes = backup_bytes(&first);
    let took = first["finished_unix_ms"].as_u64().unwrap() - first["started_unix_ms"].as_u64().unwrap();
    std::thread::sleep(Duration::from_millis(took / 4));
    let (status, exit_took, events) = sync.stop();
    assert!(status.success(), "{status}");
    assert!(exit_took < Duration::from_secs(2), "sync took {exit_took:?} to exit");
    let last = events.last().unwrap();
    assert_eq!(last["event"], "backup-failed", "{events:?}");
    assert_eq!(last["error"], "abandoned: the agent is stopping");
    assert_eq!(store_files(&store), ["app.tar.gz"], "the abandoned upload's staging file is gone");
    assert_eq!(fs::metadata(store.join("app.tar.gz")).unwrap().len(), bytes);
    let out_dir = tmp.path().join("out");
    assert!(restore(&out_dir, &store, KEY).status.success());
    assert_eq!(fs::read(out_dir.join("big")).unwrap(), fs::read(data.join("big")).unwrap());
}

#[test]
fn restore_without_a_backup_exits_3() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("out");
    let out = restore(&out_dir, tmp.path(), "never-backed-up");
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let event: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(event["event"], "no-backup");
    assert_eq!(event["key"], "never-backed-up");
    assert!(!out_dir.exists());
}

#[test]
fn sync_without_its_store_or_directory_exits_1_before_ready() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["sync", "--key", KEY, "--interval", "1s", "--store", "file:///nonexistent/store", "--dir"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        stderr,
        "crashlab-agent: failed to use store \"file:///nonexistent/store\": /nonexistent/store is not a directory\n"
    );

    let missing = tmp.path().join("missing");
    let out = Command::new(BIN)
        .args(["sync", "--key", KEY, "--interval", "1s", "--store", &store_url(tmp.path()), "--dir"])
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stdout.is_empty());
    let expected = format!("crashlab-agent: failed to back up {}: it is not a directory\n", missing.display());
    assert_eq!(String::from_utf8(out.stderr).unwrap(), expected);
}

/// An entry's name, and its target if it is a symbolic link.
type Entry<'a> = (&'a str, Option<&'a Path>);

/// An archive with entries `tar::Builder` refuses to write, as a hostile or
/// broken store could serve.
fn hostile_archive(store: &Path, entries: &[Entry<'_>]) {
    let file = fs::File::create(store.join("app.tar.gz")).unwrap();
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(file, flate2::Compression::fast()));
    for &(name, link) in entries {
        let mut header = tar::Header::new_gnu();
        let slot = &mut header.as_gnu_mut().unwrap().name;
        slot[..name.len()].copy_from_slice(name.as_bytes());
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(1);
        if let Some(target) = link {
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_link_name(target).unwrap();
            header.set_size(0);
        } else {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(4);
        }
        header.set_cksum();
        builder.append(&header, &b"evil"[..usize::try_from(header.size().unwrap()).unwrap()]).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap();
}

#[test]
fn restore_rejects_entries_that_escape_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, outside) = (tmp.path().join("store"), tmp.path().join("outside"));
    fs::create_dir(&store).unwrap();
    fs::create_dir(&outside).unwrap();
    let through_link = "trying to unpack outside of destination path";
    let cases: [(&[Entry<'_>], &str); 4] = [
        (&[("../outside/evil", None)], "entry ../outside/evil would land outside the directory"),
        (&[("/tmp/evil-absolute", None)], "entry /tmp/evil-absolute would land outside the directory"),
        (&[("link", Some(&outside)), ("link/evil", None)], through_link),
        (&[("link", Some(&outside)), ("link/sub/evil", None)], through_link),
    ];
    for (entries, why) in cases {
        hostile_archive(&store, entries);
        let out_dir = tmp.path().join("out");
        let _ = fs::remove_dir_all(&out_dir);
        let out = restore(&out_dir, &store, KEY);
        assert_eq!(out.status.code(), Some(1), "{entries:?}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.starts_with("crashlab-agent: failed to unpack the archive into "), "{stderr}");
        assert!(stderr.contains(why), "{stderr}");
        assert!(fs::read_dir(&outside).unwrap().next().is_none(), "{entries:?} wrote outside");
        assert!(!Path::new("/tmp/evil-absolute").exists());
    }
}
