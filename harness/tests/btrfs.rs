//! The harness's btrfs pool against real btrfs: loop devices, mounts and
//! subvolumes on this machine's kernel. These need root and btrfs-progs;
//! they fail, never skip, when btrfs cannot be used, unless
//! `CRASHLAB_SKIP_BTRFS=1` says to skip on purpose.

use crashlab::storage::btrfs::{BtrfsError, BtrfsPool, detach_btrfs_under};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Small enough for mixed mode and for many pools at once.
const SMALL: u64 = 256 << 20;

fn skip_btrfs() -> bool {
    if std::env::var("CRASHLAB_SKIP_BTRFS").as_deref() == Ok("1") {
        eprintln!("CRASHLAB_SKIP_BTRFS=1: skipping a btrfs test on purpose");
        return true;
    }
    false
}

/// A pool at `<tmp>/btrfs/<name>`, or a panic saying why btrfs cannot be
/// used here.
fn pool(tmp: &Path, name: &str, size: u64) -> BtrfsPool {
    BtrfsPool::create(&tmp.join("btrfs").join(name), size, None).unwrap_or_else(|e| match e {
        BtrfsError::MissingTool { program, package } => panic!("this test needs {program}: apt-get install {package}"),
        e => panic!("cannot make a btrfs pool: {e} (set CRASHLAB_SKIP_BTRFS=1 to skip btrfs tests on purpose)"),
    })
}

fn mounted_at(path: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let path = path.to_str().unwrap();
    mounts.lines().any(|l| l.split(' ').nth(1) == Some(path))
}

/// Lines of `losetup -a` that name `image`.
fn loops_of(image: &Path) -> Vec<String> {
    let out = std::process::Command::new("losetup").arg("-a").output().unwrap();
    assert!(out.status.success(), "losetup -a: {}", String::from_utf8_lossy(&out.stderr));
    let image = image.to_str().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.contains(image)).map(str::to_owned).collect()
}

fn assert_released(dir: &Path) {
    assert!(!mounted_at(&dir.join("mnt")), "{} is still mounted", dir.join("mnt").display());
    assert_eq!(loops_of(&dir.join("image")), Vec::<String>::new(), "a loop device still holds the image");
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn a_pool_is_a_loop_mounted_sparse_image_that_teardown_removes() {
    if skip_btrfs() {
        return;
    }
    let tmp = tmp();
    let pool = pool(tmp.path(), "cell", SMALL);
    let dir = pool.dir().to_owned();
    assert_eq!(pool.mountpoint(), dir.join("mnt"));
    assert!(mounted_at(pool.mountpoint()), "the pool is mounted");
    let image = std::fs::metadata(dir.join("image")).unwrap();
    assert_eq!(image.len(), SMALL);
    assert!(image.blocks() * 512 < SMALL / 4, "the image is sparse: {} blocks", image.blocks());
    let device = pool.loop_device().expect("attached").to_owned();
    assert_eq!(loops_of(&dir.join("image")).len(), 1);
    assert!(loops_of(&dir.join("image"))[0].starts_with(device.to_str().unwrap()));

    let live = pool.create_subvolume("live").unwrap();
    std::fs::write(live.join("data"), b"hello").unwrap();
    pool.teardown().unwrap();

    assert_released(&dir);
    assert!(!dir.exists(), "teardown removes the pool's directory");
}

#[test]
fn a_read_only_snapshot_is_point_in_time_and_refuses_writes() {
    if skip_btrfs() {
        return;
    }
    let tmp = tmp();
    let pool = pool(tmp.path(), "cell", SMALL);
    let live = pool.create_subvolume("live").unwrap();
    std::fs::write(live.join("table"), b"v1").unwrap();
    let mut log = std::fs::File::create(live.join("log")).unwrap();
    log.write_all(b"acked 1\n").unwrap();

    // Nothing was synced: the snapshot must still hold what was written.
    let snap = pool.snapshot("live", "snap-1", true).unwrap();
    assert_eq!(snap.path, pool.mountpoint().join("snap-1"));
    assert!(snap.took > Duration::ZERO);

    std::fs::write(live.join("table"), b"v2").unwrap();
    log.write_all(b"acked 2\n").unwrap();
    std::fs::write(live.join("new"), b"later").unwrap();

    assert_eq!(std::fs::read(snap.path.join("table")).unwrap(), b"v1");
    assert_eq!(std::fs::read(snap.path.join("log")).unwrap(), b"acked 1\n");
    assert!(!snap.path.join("new").exists());
    assert_eq!(std::fs::read(live.join("table")).unwrap(), b"v2");

    let rofs = |e: std::io::Error| assert_eq!(e.raw_os_error(), Some(30), "EROFS, got {e}");
    rofs(std::fs::write(snap.path.join("table"), b"v3").unwrap_err());
    rofs(std::fs::write(snap.path.join("other"), b"x").unwrap_err());
    rofs(std::fs::remove_file(snap.path.join("log")).unwrap_err());
    rofs(std::fs::OpenOptions::new().append(true).open(snap.path.join("log")).unwrap_err());
    assert_eq!(std::fs::read(snap.path.join("table")).unwrap(), b"v1");
    drop(log);
    pool.teardown().unwrap();
}

#[test]
fn host_loss_restores_a_writable_snapshot_of_the_last_read_only_one() {
    if skip_btrfs() {
        return;
    }
    let tmp = tmp();
    let pool = pool(tmp.path(), "cell", SMALL);
    let live = pool.create_subvolume("live").unwrap();
    // What a database container leaves: files of another uid, a directory
    // nobody may enter.
    let data = live.join("mysql");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("ibdata1"), vec![7u8; 1 << 20]).unwrap();
    std::os::unix::fs::chown(data.join("ibdata1"), Some(999), Some(999)).unwrap();
    std::os::unix::fs::chown(&data, Some(999), Some(999)).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o000)).unwrap();
    pool.snapshot("live", "snap-1", true).unwrap();
    std::fs::write(live.join("after-snap-1"), b"lost with the host").unwrap();

    pool.delete_subvolume("live").unwrap();
    assert!(!live.exists(), "the live subvolume is gone");

    let restored = pool.snapshot("snap-1", "restore-1", false).unwrap();
    let data = restored.path.join("mysql");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o750)).unwrap();
    let kept = std::fs::metadata(data.join("ibdata1")).unwrap();
    assert_eq!((kept.len(), kept.uid()), (1 << 20, 999));
    assert!(!restored.path.join("after-snap-1").exists());
    std::fs::write(data.join("ibdata1"), b"writable").unwrap();
    std::fs::write(restored.path.join("new"), b"x").unwrap();
    assert_eq!(std::fs::metadata(pool.mountpoint().join("snap-1/mysql/ibdata1")).unwrap().len(), 1 << 20);

    // Read-only snapshots and subvolumes full of foreign files delete too.
    pool.delete_subvolume("snap-1").unwrap();
    pool.delete_subvolume("restore-1").unwrap();
    let left: Vec<PathBuf> = std::fs::read_dir(pool.mountpoint()).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(left, Vec::<PathBuf>::new());
    pool.teardown().unwrap();
}

#[test]
fn bad_requests_fail_with_what_was_run_and_why() {
    if skip_btrfs() {
        return;
    }
    let tmp = tmp();
    let pool = pool(tmp.path(), "cell", SMALL);
    pool.create_subvolume("live").unwrap();
    pool.snapshot("live", "snap-1", true).unwrap();

    let exists = pool.snapshot("live", "snap-1", true).unwrap_err();
    assert!(matches!(exists, BtrfsError::Exists { .. }), "{exists:?}");
    assert!(!pool.mountpoint().join("snap-1/snap-1").exists(), "no snapshot nested in the old one");

    let missing = pool.snapshot("nothing", "snap-2", true).unwrap_err();
    let BtrfsError::Command { command, status, stderr } = &missing else { panic!("{missing:?}") };
    assert_eq!(command, &format!("btrfs subvolume snapshot -r {0}/nothing {0}/snap-2", pool.mountpoint().display()));
    assert!(!status.success());
    assert!(stderr.contains("No such file or directory"), "{stderr}");
    assert!(missing.to_string().starts_with("run `btrfs subvolume snapshot -r "), "{missing}");

    let twice = pool.create_subvolume("live").unwrap_err();
    assert!(matches!(twice, BtrfsError::Command { .. }), "{twice:?}");
    assert!(matches!(pool.delete_subvolume("../mnt").unwrap_err(), BtrfsError::BadName { .. }));
    assert!(pool.delete_subvolume("nothing").is_err());

    let existing = pool.dir().to_owned();
    let again = BtrfsPool::create(&existing, SMALL, None).unwrap_err();
    assert!(matches!(again, BtrfsError::Io { .. }), "{again:?}");
    assert!(mounted_at(pool.mountpoint()), "a failed create leaves another pool's directory alone");
    pool.teardown().unwrap();

    let too_small = tmp.path().join("btrfs/tiny");
    let error = BtrfsPool::create(&too_small, 1 << 20, None).unwrap_err();
    assert!(error.to_string().starts_with("run `mkfs.btrfs "), "{error}");
    assert!(!too_small.exists(), "a failed create removes what it made");
}

#[test]
fn teardown_waits_while_the_filesystem_is_busy() {
    if skip_btrfs() {
        return;
    }
    let tmp = tmp();
    let pool = pool(tmp.path(), "cell", SMALL);
    let dir = pool.dir().to_owned();
    let live = pool.create_subvolume("live").unwrap();
    let open = std::fs::File::create(live.join("held")).unwrap();
    let holder = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(700));
        drop(open);
    });
    let start = Instant::now();
    pool.teardown().unwrap();
    assert!(start.elapsed() >= Duration::from_millis(600), "teardown waited for the open file");
    holder.join().unwrap();
    assert_released(&dir);
    assert!(!dir.exists());
}

#[test]
fn dropping_a_pool_unmounts_it_and_frees_its_loop_device() {
    if skip_btrfs() {
        return;
    }
    let tmp = tmp();
    let pool = pool(tmp.path(), "cell", SMALL);
    let dir = pool.dir().to_owned();
    pool.create_subvolume("live").unwrap();
    drop(pool);
    // The kernel may hold the device a moment longer (udev's probe).
    let deadline = Instant::now() + Duration::from_secs(5);
    while !loops_of(&dir.join("image")).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_released(&dir);
    assert!(dir.join("image").exists(), "the directory is left for the run's cleanup");
}

#[test]
fn detach_btrfs_under_releases_a_leaked_pool_so_its_directory_can_go() {
    if skip_btrfs() {
        return;
    }
    let tmp = tmp();
    let run_dir = tmp.path().join("runs/1-abcd");
    let pool = pool(&run_dir, "cell", SMALL);
    let dir = pool.dir().to_owned();
    let live = pool.create_subvolume("live").unwrap();
    std::fs::write(live.join("data"), b"left behind").unwrap();
    pool.snapshot("live", "snap-1", true).unwrap();
    std::mem::forget(pool);
    assert!(mounted_at(&dir.join("mnt")));

    // A second leak: attached, never mounted (killed between the two).
    let orphan = run_dir.join("btrfs/orphan");
    std::fs::create_dir_all(&orphan).unwrap();
    std::fs::File::create(orphan.join("image")).unwrap().set_len(SMALL).unwrap();
    let attached = std::process::Command::new("losetup").arg("--find").arg(orphan.join("image")).status().unwrap();
    assert!(attached.success());
    let orphan = std::fs::canonicalize(&orphan).unwrap();
    assert_eq!(loops_of(&orphan.join("image")).len(), 1);

    assert_eq!(detach_btrfs_under(&run_dir), 2);
    assert_released(&dir);
    assert_released(&orphan);
    std::fs::remove_dir_all(&run_dir).unwrap();
    assert_eq!(detach_btrfs_under(&run_dir), 0, "nothing left to release");
}

/// How long snapshots take and how long they stall a writer, with 1 GiB
/// written just before: fsynced, unsynced, and unsynced but flushed by a
/// `syncfs` before the snapshot. Run by hand (the kernel does the work, so
/// a debug build measures the same):
/// `cargo test -p crashlab --test btrfs -- --ignored --nocapture`.
/// `CRASHLAB_BTRFS_BENCH_DIR` puts the image elsewhere than the temp dir.
#[test]
#[ignore = "a measurement: writes 6 GiB, takes a minute or two"]
fn snapshot_timing_with_a_gib_of_fresh_data() {
    if skip_btrfs() {
        return;
    }
    let base = std::env::var_os("CRASHLAB_BTRFS_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let tmp = tempfile::tempdir_in(base).unwrap();
    // Every snapshot pins its GiB, so the pool must hold all of them.
    let pool = pool(tmp.path(), "bench", 12 << 30);
    let live = pool.create_subvolume("live").unwrap();
    println!("pool on {}", tmp.path().display());

    let quiet = time_snapshots(&pool, 5, |_| {});
    println!("empty subvolume, nothing written: snapshots {}", summary(&quiet));

    let modes = ["fsynced", "unsynced", "unsynced, syncfs first"];
    for (n, mode) in modes.iter().chain(&modes).enumerate() {
        let wrote = write_gib(&live.join(format!("gib-{n}")), *mode == "fsynced");
        let writer = FsyncWriter::start(&live.join("wal"));
        std::thread::sleep(Duration::from_millis(200));
        let mut flushed = String::new();
        if mode.contains("syncfs") {
            let start = Instant::now();
            let status = std::process::Command::new("sync").arg("-f").arg(&live).status().unwrap();
            assert!(status.success());
            flushed = format!(", syncfs {:.1?}", start.elapsed());
        }
        let snap = pool.snapshot("live", &format!("snap-{n}"), true).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let stalls = writer.stop();
        println!(
            "1 GiB written {mode} in {wrote:.2?}{flushed}: snapshot {:.1?}; \
             4 KiB append+fdatasync meanwhile: {stalls}",
            snap.took
        );
    }

    // A steady writer, on the host's filesystem for reference, then on the
    // pool alone, then with a snapshot every second as the strategy would
    // take them; the earlier rounds' data is flushed first, so that its
    // writeback does not land in these figures.
    let status = std::process::Command::new("sync").status().unwrap();
    assert!(status.success());
    let writer = FsyncWriter::start(&tmp.path().join("host-wal"));
    std::thread::sleep(Duration::from_secs(10));
    println!("4 KiB append+fdatasync loop for 10 s on the host's filesystem: {}", writer.stop());
    let writer = FsyncWriter::start(&live.join("wal"));
    std::thread::sleep(Duration::from_secs(10));
    println!("4 KiB append+fdatasync loop for 10 s, no snapshots: {}", writer.stop());
    let writer = FsyncWriter::start(&live.join("wal"));
    let steady = time_snapshots(&pool, 10, |_| std::thread::sleep(Duration::from_secs(1)));
    println!("the same with a snapshot every 1 s: {}; snapshots {}", writer.stop(), summary(&steady));
    pool.teardown().unwrap();
}

/// Writes 1 GiB of incompressible-looking data to `path`, then fsyncs it
/// if asked; returns how long that took.
fn write_gib(path: &Path, sync: bool) -> Duration {
    let mut file = std::fs::File::create(path).unwrap();
    let seed = path.as_os_str().len() as u32;
    let chunk: Vec<u8> = (0..1u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) ^ seed) as u8).collect();
    let start = Instant::now();
    for _ in 0..1024 {
        file.write_all(&chunk).unwrap();
    }
    if sync {
        file.sync_all().unwrap();
    }
    start.elapsed()
}

fn time_snapshots(pool: &BtrfsPool, count: usize, mut between: impl FnMut(usize)) -> Vec<Duration> {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    (0..count)
        .map(|i| {
            between(i);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            pool.snapshot("live", &format!("timed-{n}"), true).unwrap().took
        })
        .collect()
}

fn summary(times: &[Duration]) -> String {
    let mut sorted = times.to_vec();
    sorted.sort();
    let pick = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
    format!("n={} p50 {:.1?} p99 {:.1?} max {:.1?}", sorted.len(), pick(0.5), pick(0.99), pick(1.0))
}

/// A thread appending 4 KiB and calling `fdatasync` in a loop, as a
/// database's log writer does, recording each round's latency.
struct FsyncWriter {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Vec<Duration>>,
}

impl FsyncWriter {
    fn start(path: &Path) -> FsyncWriter {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let block = [0x5au8; 4096];
            let mut times = Vec::new();
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let start = Instant::now();
                file.write_all(&block).unwrap();
                file.sync_data().unwrap();
                times.push(start.elapsed());
            }
            times
        });
        FsyncWriter { stop, thread }
    }

    fn stop(self) -> String {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        summary(&self.thread.join().unwrap())
    }
}
