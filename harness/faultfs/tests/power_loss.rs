//! Crash tests against a real mount: write, cut the power, remount, check
//! what survived.

mod common;

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::FileExt;

use common::{Fixture, fuse_available};
use crashlab_faultfs::FaultConfig;

fn config() -> FaultConfig {
    FaultConfig::builder().seed(7).build().unwrap()
}

fn sync_dir(path: &std::path::Path) {
    File::open(path).unwrap().sync_all().unwrap();
}

/// A file that exists durably (created, fsynced, directory fsynced).
fn durable_file(fx: &Fixture, name: &str, data: &[u8]) {
    let mut f = File::create(fx.path(name)).unwrap();
    f.write_all(data).unwrap();
    f.sync_all().unwrap();
    sync_dir(&fx.mnt);
}

fn read(fx: &Fixture, name: &str) -> std::io::Result<Vec<u8>> {
    fs::read(fx.path(name))
}

#[test]
fn unsynced_writes_are_lost_at_power_cut() {
    if !fuse_available() {
        return;
    }
    let mut fx = Fixture::new(config());
    durable_file(&fx, "f", b"durable");
    let f = OpenOptions::new().write(true).open(fx.path("f")).unwrap();
    f.write_all_at(b"DUR", 0).unwrap();
    f.write_all_at(b"-and-more", 7).unwrap();
    assert_eq!(read(&fx, "f").unwrap(), b"DURable-and-more", "reads see unsynced data");
    assert_eq!(fs::read(fx.backing.join("f")).unwrap(), b"durable", "backing untouched");
    let stats = fx.fs().stats();
    assert_eq!((stats.dirty_files, stats.dirty_bytes), (1, 12));
    drop(f);
    fx.crash_and_remount();
    assert_eq!(read(&fx, "f").unwrap(), b"durable");
}

#[test]
fn fsynced_writes_survive_power_cut() {
    if !fuse_available() {
        return;
    }
    let mut fx = Fixture::new(config());
    durable_file(&fx, "f", b"one");
    let mut f = OpenOptions::new().append(true).open(fx.path("f")).unwrap();
    f.write_all(b"-two").unwrap();
    f.sync_data().unwrap();
    f.write_all(b"-three").unwrap();
    drop(f);
    fx.crash_and_remount();
    assert_eq!(read(&fx, "f").unwrap(), b"one-two");
}

#[test]
fn o_sync_writes_are_durable_without_fsync() {
    if !fuse_available() {
        return;
    }
    let mut fx = Fixture::new(config());
    durable_file(&fx, "f", b"");
    let mut f = OpenOptions::new().write(true).custom_flags(libc_o_sync()).open(fx.path("f")).unwrap();
    f.write_all(b"synced").unwrap();
    drop(f);
    fx.crash_and_remount();
    assert_eq!(read(&fx, "f").unwrap(), b"synced");
}

fn libc_o_sync() -> i32 {
    // O_SYNC on Linux; spelled out to keep libc out of the test's deps.
    0o4010000
}

use std::os::unix::fs::OpenOptionsExt;

#[test]
fn fsynced_file_in_unsynced_directory_is_gone() {
    if !fuse_available() {
        return;
    }
    let mut fx = Fixture::new(config());
    let mut f = File::create(fx.path("new")).unwrap();
    f.write_all(b"data").unwrap();
    f.sync_all().unwrap();
    drop(f);
    assert_eq!(fx.fs().stats().pending_namespace_ops, 1);
    fx.crash_and_remount();
    assert_eq!(read(&fx, "new").unwrap_err().kind(), ErrorKind::NotFound);
}

#[test]
fn fsynced_file_in_synced_directory_survives() {
    if !fuse_available() {
        return;
    }
    let mut fx = Fixture::new(config());
    fs::create_dir(fx.path("d")).unwrap();
    let mut f = File::create(fx.path("d/new")).unwrap();
    f.write_all(b"data").unwrap();
    f.sync_all().unwrap();
    drop(f);
    // Syncing d commits the journal up to the file's creation, including
    // the earlier mkdir of d itself.
    sync_dir(&fx.path("d"));
    fx.crash_and_remount();
    assert_eq!(read(&fx, "d/new").unwrap(), b"data");
}

#[test]
fn rename_without_directory_fsync_is_lost() {
    if !fuse_available() {
        return;
    }
    let mut fx = Fixture::new(config());
    durable_file(&fx, "old", b"A");
    durable_file(&fx, "target", b"B");
    fs::rename(fx.path("old"), fx.path("target")).unwrap();
    assert_eq!(read(&fx, "target").unwrap(), b"A");
    assert!(!fx.path("old").exists());
    fx.crash_and_remount();
    assert_eq!(read(&fx, "old").unwrap(), b"A");
    assert_eq!(read(&fx, "target").unwrap(), b"B");
}

#[test]
fn rename_over_existing_with_directory_fsync_is_kept() {
    if !fuse_available() {
        return;
    }
    let mut fx = Fixture::new(config());
    durable_file(&fx, "target", b"old contents");
    let mut f = File::create(fx.path("tmp")).unwrap();
    f.write_all(b"new contents").unwrap();
    f.sync_all().unwrap();
    drop(f);
    fs::rename(fx.path("tmp"), fx.path("target")).unwrap();
    sync_dir(&fx.mnt);
    fx.crash_and_remount();
    assert_eq!(read(&fx, "target").unwrap(), b"new contents");
    assert!(!fx.path("tmp").exists());
    let names: Vec<_> = fs::read_dir(&fx.mnt).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["target"], "staging directory stays hidden");
}

#[test]
fn unlink_without_directory_fsync_is_undone() {
    if !fuse_available() {
        return;
    }
    let mut fx = Fixture::new(config());
    durable_file(&fx, "f", b"keep me");
    fs::remove_file(fx.path("f")).unwrap();
    assert!(!fx.path("f").exists());
    fx.crash_and_remount();
    assert_eq!(read(&fx, "f").unwrap(), b"keep me");
}

#[test]
fn truncate_without_fsync_is_lost() {
    if !fuse_available() {
        return;
    }
    let mut fx = Fixture::new(config());
    durable_file(&fx, "f", b"0123456789");
    OpenOptions::new().write(true).open(fx.path("f")).unwrap().set_len(2).unwrap();
    assert_eq!(read(&fx, "f").unwrap(), b"01");
    fx.crash_and_remount();
    assert_eq!(read(&fx, "f").unwrap(), b"0123456789");
}

#[test]
fn torn_write_persists_a_sector_prefix() {
    if !fuse_available() {
        return;
    }
    let config = FaultConfig::builder().seed(3).rule("torn:prefix".parse().unwrap()).build().unwrap();
    let mut fx = Fixture::new(config);
    durable_file(&fx, "wal", b"");
    let f = OpenOptions::new().write(true).open(fx.path("wal")).unwrap();
    f.write_all_at(&[0xAB; 65536], 0).unwrap();
    drop(f);
    fx.crash_and_remount();
    let got = read(&fx, "wal").unwrap();
    assert!(!got.is_empty() && got.len() < 65536, "len {}", got.len());
    assert_eq!(got.len() % 512, 0);
    // The kernel may pass one write on as several page-aligned requests
    // (it did once here, under memory pressure): then only the last one is
    // the file's last write, torn, and the earlier ones are dropped whole.
    let first = got.iter().position(|&b| b == 0xAB).expect("a prefix of the write survives");
    assert_eq!(first % 4096, 0, "requests start on pages");
    assert!(got[..first].iter().all(|&b| b == 0) && got[first..].iter().all(|&b| b == 0xAB));
}

#[test]
fn aimed_cut_lands_on_the_first_large_unsynced_write_and_tears_it() {
    if !fuse_available() {
        return;
    }
    let config = FaultConfig::builder().seed(3).rule("torn:prefix".parse().unwrap()).build().unwrap();
    let mut fx = Fixture::new(config);
    durable_file(&fx, "wal", b"");
    fx.fs().handle().cut_at_next_write(1024);
    let f = OpenOptions::new().write(true).open(fx.path("wal")).unwrap();
    // Too small to aim at: written, not cut.
    f.write_all_at(&[0x11; 512], 0).unwrap();
    assert!(!fx.fs().stats().powered_off);
    // Page-aligned, so the kernel passes it on as one request.
    let err = f.write_all_at(&[0xAB; 8192], 4096).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(5), "EIO: the write the cut lands on is not acknowledged");
    let stats = fx.fs().stats();
    assert!(stats.powered_off);
    assert_eq!(stats.aimed_cut_write_bytes, Some(8192));
    assert_eq!((stats.cut_dirty_files, stats.cut_dirty_bytes), (1, 512 + 8192));
    assert_eq!(stats.torn_writes, 1);
    drop(f);
    fx.crash_and_remount();
    let got = read(&fx, "wal").unwrap();
    // The 512-byte write was not the last one, so it is dropped; of the
    // torn write a non-empty, incomplete sector prefix survives.
    assert!(got.len() > 4096 && got.len() < 4096 + 8192, "len {}", got.len());
    assert!(got[..4096].iter().all(|&b| b == 0), "the first write was not durable");
    assert!(got[4096..].iter().all(|&b| b == 0xAB));
}

#[test]
fn a_cut_aimed_at_the_best_write_passes_over_log_writes_for_a_batch_of_data_pages() {
    if !fuse_available() {
        return;
    }
    let mut fx = Fixture::new(config());
    for name in ["wal", "d1", "d2"] {
        durable_file(&fx, name, b"");
    }
    let open = |name| OpenOptions::new().write(true).open(fx.path(name)).unwrap();
    let (wal, d1, d2) = (open("wal"), open("d1"), open("d2"));
    let mut at = 0;
    let mut log = || {
        wal.write_all_at(&[0x11; 512], at).and_then(|()| wal.sync_data())?;
        at += 512;
        Ok::<_, std::io::Error>(())
    };
    // A 2 s window; its look instant falls 0.4-1.0 s in.
    let started = std::time::Instant::now();
    fx.fs().handle().cut_at_best_write(1, std::time::Duration::from_secs(2), 11);
    // In the look phase: log writes (1 file x 512 bytes at stake), and one
    // batch of pages to two data files (2 x 8 KiB), made durable.
    log().unwrap();
    d1.write_all_at(&[0xD1; 4096], 0).unwrap();
    d2.write_all_at(&[0xD2; 4096], 0).unwrap();
    d1.sync_data().unwrap();
    d2.sync_data().unwrap();
    while started.elapsed() < std::time::Duration::from_millis(1100) {
        log().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // After it, log writes stay under the falling bar until the window's
    // last moments; the next batch reaches it.
    for _ in 0..10 {
        log().unwrap();
    }
    assert!(!fx.fs().stats().powered_off, "a log write took the cut");
    d1.write_all_at(&[0xD1; 4096], 4096).unwrap();
    let err = d2.write_all_at(&[0xD2; 4096], 4096).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(5), "EIO: the batch's second write takes the cut");
    let stats = fx.fs().stats();
    assert_eq!((stats.cut_dirty_files, stats.cut_dirty_bytes), (2, 8192));
    assert!(stats.aimed_cut_after.is_some_and(|t| t >= std::time::Duration::from_millis(1100)), "{stats:?}");
    drop((wal, d1, d2));
    fx.crash_and_remount();
    assert_eq!(read(&fx, "d1").unwrap(), [0xD1; 4096], "the second batch was lost");
}

#[test]
fn aimed_cut_ignores_synchronous_writes() {
    if !fuse_available() {
        return;
    }
    let mut fx = Fixture::new(config());
    durable_file(&fx, "f", b"");
    fx.fs().handle().cut_at_next_write(1);
    let mut f = OpenOptions::new().write(true).custom_flags(libc_o_sync()).open(fx.path("f")).unwrap();
    f.write_all(b"synced at once").unwrap();
    assert!(!fx.fs().stats().powered_off, "an O_SYNC write has nothing to lose");
    drop(f);
    fx.crash_and_remount();
    assert_eq!(read(&fx, "f").unwrap(), b"synced at once");
}

#[test]
fn without_torn_rule_last_write_is_lost_whole() {
    if !fuse_available() {
        return;
    }
    let mut fx = Fixture::new(config());
    durable_file(&fx, "wal", b"");
    fs::write(fx.path("wal"), [0xAB; 65536]).unwrap();
    fx.crash_and_remount();
    assert_eq!(read(&fx, "wal").unwrap(), b"");
}

#[test]
fn eio_rule_fires_on_the_nth_write_only() {
    if !fuse_available() {
        return;
    }
    let fx = Fixture::new(config());
    durable_file(&fx, "f", b"");
    fx.fs().add_rule("eio:write:3:/f".parse().unwrap());
    let f = OpenOptions::new().write(true).open(fx.path("f")).unwrap();
    let results: Vec<bool> = (0..5).map(|i| f.write_all_at(b"x", i).is_ok()).collect();
    assert_eq!(results, [true, true, false, true, true]);
    assert_eq!(fx.fs().stats().injected_errors, 1);
}

#[test]
fn eio_rule_error_is_eio() {
    if !fuse_available() {
        return;
    }
    let fx = Fixture::new(config());
    durable_file(&fx, "f", b"abc");
    fx.fs().add_rule("eio:fsync:1".parse().unwrap());
    let f = File::open(fx.path("f")).unwrap();
    let err = f.sync_all().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(5), "EIO");
    f.sync_all().unwrap();
}

#[test]
fn enospc_after_budget() {
    if !fuse_available() {
        return;
    }
    let fx = Fixture::new(config());
    durable_file(&fx, "f", b"");
    fx.fs().add_rule("enospc:10k".parse().unwrap());
    let f = OpenOptions::new().write(true).open(fx.path("f")).unwrap();
    f.write_all_at(&[1; 8192], 0).unwrap();
    f.write_all_at(&[1; 2048], 8192).unwrap();
    let err = f.write_all_at(&[1; 1], 10240).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(28), "ENOSPC, got {err}");
    fx.fs().clear_rules();
    f.write_all_at(&[1; 1], 10240).unwrap();
}

#[test]
fn io_fails_after_power_cut_until_remount() {
    if !fuse_available() {
        return;
    }
    let mut fx = Fixture::new(config());
    durable_file(&fx, "f", b"data");
    let mut f = File::open(fx.path("f")).unwrap();
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).unwrap();
    fx.fs().power_cut();
    assert!(fx.fs().stats().powered_off);
    let mut buf = [0; 4];
    assert!(f.read_exact_at(&mut buf, 0).is_err(), "cached pages are dropped");
    assert!(fs::read(fx.path("f")).is_err());
    assert!(File::create(fx.path("g")).is_err());
    assert!(fx.fs().checkpoint().is_err());
    drop(f);
    let fs = fx.fs.take().unwrap();
    fs.unmount().unwrap();
    fx.fs = Some(crashlab_faultfs::FaultFs::mount(&fx.backing, &fx.mnt, config()).unwrap());
    assert_eq!(read(&fx, "f").unwrap(), b"data");
}

#[test]
fn checkpoint_makes_everything_durable() {
    if !fuse_available() {
        return;
    }
    let mut fx = Fixture::new(config());
    fs::create_dir_all(fx.path("a/b")).unwrap();
    fs::write(fx.path("a/b/f"), b"x").unwrap();
    std::os::unix::fs::symlink("b/f", fx.path("a/link")).unwrap();
    fs::hard_link(fx.path("a/b/f"), fx.path("a/hard")).unwrap();
    fx.fs().checkpoint().unwrap();
    let stats = fx.fs().stats();
    assert_eq!((stats.dirty_bytes, stats.pending_namespace_ops), (0, 0));
    fx.crash_and_remount();
    assert_eq!(read(&fx, "a/b/f").unwrap(), b"x");
    assert_eq!(read(&fx, "a/link").unwrap(), b"x");
    assert_eq!(fs::read_link(fx.path("a/link")).unwrap(), std::path::Path::new("b/f"));
    assert_eq!(read(&fx, "a/hard").unwrap(), b"x");
}

#[test]
fn clean_unmount_syncs_everything() {
    if !fuse_available() {
        return;
    }
    let mut fx = Fixture::new(config());
    fs::write(fx.path("f"), b"kept").unwrap();
    fx.fs.take().unwrap().unmount().unwrap();
    assert_eq!(fs::read(fx.backing.join("f")).unwrap(), b"kept");
    assert!(!fx.backing.join(".crashlab-faultfs").exists());
}

#[test]
fn dirty_bound_writes_back_oldest_data_which_then_survives() {
    if !fuse_available() {
        return;
    }
    let config = FaultConfig::builder().max_dirty_bytes_per_file(64 << 10).build().unwrap();
    let mut fx = Fixture::new(config);
    durable_file(&fx, "f", b"");
    let f = OpenOptions::new().write(true).open(fx.path("f")).unwrap();
    for i in 0..64u64 {
        f.write_all_at(&[i as u8 + 1; 4096], i * 4096).unwrap();
    }
    drop(f);
    let stats = fx.fs().stats();
    assert!(stats.dirty_bytes <= 64 << 10, "{stats:?}");
    assert!(stats.writeback_bytes > 0);
    fx.crash_and_remount();
    let got = read(&fx, "f").unwrap();
    assert!(got.len() >= 4096 && got.len() < 64 * 4096, "len {}", got.len());
    assert!(got[..4096].iter().all(|&b| b == 1), "the oldest block survived");
}

#[test]
fn ownership_and_mode_pass_through() {
    if !fuse_available() {
        return;
    }
    let fx = Fixture::new(config());
    durable_file(&fx, "f", b"");
    std::os::unix::fs::chown(fx.path("f"), Some(999), Some(998)).unwrap();
    fs::set_permissions(fx.path("f"), std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(fx.path("f")).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (999, 998, 0o640));
    let b = fs::metadata(fx.backing.join("f")).unwrap();
    assert_eq!((b.uid(), b.gid(), b.mode() & 0o7777), (999, 998, 0o640));
}

#[test]
fn statfs_and_fallocate_work() {
    if !fuse_available() {
        return;
    }
    let fx = Fixture::new(config());
    let f = File::create(fx.path("f")).unwrap();
    // set_len through ftruncate, and a read past the old end sees zeros.
    f.set_len(8192).unwrap();
    assert_eq!(fs::read(fx.path("f")).unwrap(), vec![0; 8192]);
    let out = std::process::Command::new("fallocate").args(["-l", "16384"]).arg(fx.path("f")).status();
    if let Ok(status) = out {
        assert!(status.success());
        assert_eq!(fs::metadata(fx.path("f")).unwrap().len(), 16384);
    }
    let df = std::process::Command::new("df").arg(&fx.mnt).output().unwrap();
    assert!(df.status.success(), "{}", String::from_utf8_lossy(&df.stderr));
}

#[test]
fn stale_mount_cleaner_reports_unmounted_paths() {
    let dir = tempfile::tempdir().unwrap();
    assert!(!crashlab_faultfs::unmount_stale(dir.path()).unwrap());
    assert!(!crashlab_faultfs::unmount_stale(&dir.path().join("missing")).unwrap());
    if !fuse_available() {
        return;
    }
    let fx = Fixture::new(config());
    assert!(crashlab_faultfs::unmount_stale(&fx.mnt).unwrap());
    // The mount is gone; dropping the fixture must not hang or panic.
    drop(fx);
}

/// Several threads serving, several clients at once on different files:
/// each file keeps exactly what its own `fsync`s made durable, however the
/// requests interleaved, and the history holds exactly the unsynced writes.
#[test]
fn concurrent_clients_on_four_serving_threads_keep_exactly_what_each_synced() {
    if !fuse_available() {
        return;
    }
    let config = FaultConfig::builder().seed(7).threads(4).build().unwrap();
    let mut fx = Fixture::new(config);
    let names: Vec<String> = (0..4).map(|i| format!("f{i}")).collect();
    for name in &names {
        durable_file(&fx, name, b"");
    }
    std::thread::scope(|s| {
        for (i, name) in names.iter().enumerate() {
            let path = fx.path(name);
            s.spawn(move || {
                let f = OpenOptions::new().write(true).open(path).unwrap();
                let byte = b'a' + u8::try_from(i).unwrap();
                // 200 synced 512-byte records, then 10 unsynced ones.
                for r in 0..210u64 {
                    f.write_all_at(&[byte; 512], r * 512).unwrap();
                    if r < 200 {
                        f.sync_data().unwrap();
                    }
                }
            });
        }
    });
    for (i, name) in names.iter().enumerate() {
        let byte = b'a' + u8::try_from(i).unwrap();
        assert_eq!(read(&fx, name).unwrap(), vec![byte; 210 * 512], "{name} reads everything written");
    }
    let stats = fx.fs().stats();
    assert_eq!((stats.dirty_files, stats.dirty_bytes), (4, 4 * 10 * 512));
    assert_eq!(stats.fsyncs, 4 * 200 + 4, "every fsync counted, the 4 of durable_file too");
    fx.crash_and_remount();
    for (i, name) in names.iter().enumerate() {
        let byte = b'a' + u8::try_from(i).unwrap();
        assert_eq!(read(&fx, name).unwrap(), vec![byte; 200 * 512], "{name} keeps its synced records only");
    }
}
