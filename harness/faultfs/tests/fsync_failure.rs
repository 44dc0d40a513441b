//! Linux's fsync-failure semantics on a real mount: the first `fsync` fails
//! with an injected `EIO`, a retried one succeeds, the power is cut, and
//! what survives depends on [`FsyncFailure`].

mod common;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;

use common::{Fixture, fuse_available};
use crashlab_faultfs::{FaultConfig, FsyncFailure};

/// Writes `new` over a durable `old`, fails the first fsync, retries it,
/// and returns (what a read saw after the failure, what survived the cut).
fn fail_then_retry(mode: FsyncFailure) -> (Vec<u8>, Vec<u8>) {
    let config = FaultConfig::builder().seed(3).fsync_failure(mode).build().unwrap();
    let mut fx = Fixture::new(config);
    let mut f = File::create(fx.path("f")).unwrap();
    f.write_all(b"old-old-old").unwrap();
    f.sync_all().unwrap();
    drop(f);
    File::open(&fx.mnt).unwrap().sync_all().unwrap();
    fx.fs().add_rule("eio:fsync:1".parse().unwrap());
    let f = OpenOptions::new().write(true).open(fx.path("f")).unwrap();
    f.write_all_at(b"NEW", 4).unwrap();
    let err = f.sync_all().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(5), "the first fsync fails with EIO");
    let seen = fs::read(fx.path("f")).unwrap();
    f.sync_all().expect("a retried fsync succeeds");
    drop(f);
    fx.crash_and_remount();
    (seen, fs::read(fx.path("f")).unwrap())
}

#[test]
fn keep_dirty_retried_fsync_persists_the_data() {
    if !fuse_available() {
        return;
    }
    let (seen, survived) = fail_then_retry(FsyncFailure::KeepDirty);
    assert_eq!(seen, b"old-NEW-old");
    assert_eq!(survived, b"old-NEW-old");
}

#[test]
fn ext4_failed_pages_are_readable_but_never_durable() {
    if !fuse_available() {
        return;
    }
    let (seen, survived) = fail_then_retry(FsyncFailure::Ext4);
    assert_eq!(seen, b"old-NEW-old", "the failed pages stay readable");
    assert_eq!(survived, b"old-old-old", "the retried fsync did not write them");
}

#[test]
fn btrfs_failed_fsync_reverts_to_durable_contents() {
    if !fuse_available() {
        return;
    }
    let (seen, survived) = fail_then_retry(FsyncFailure::Btrfs);
    assert_eq!(seen, b"old-old-old", "the file reverted at the failure");
    assert_eq!(survived, b"old-old-old");
}

#[test]
fn ext4_failed_pages_are_not_persisted_by_a_clean_unmount() {
    if !fuse_available() {
        return;
    }
    let config = FaultConfig::builder().fsync_failure(FsyncFailure::Ext4).build().unwrap();
    let mut fx = Fixture::new(config.clone());
    let mut f = File::create(fx.path("f")).unwrap();
    f.write_all(b"aaaa").unwrap();
    f.sync_all().unwrap();
    File::open(&fx.mnt).unwrap().sync_all().unwrap();
    fx.fs().add_rule("eio:fsync:1".parse().unwrap());
    f.write_all_at(b"bb", 0).unwrap();
    assert!(f.sync_all().is_err());
    // A later write to another part of the file is dirty again and is
    // persisted by the checkpoint; the failed bytes are not.
    f.write_all_at(b"c", 3).unwrap();
    drop(f);
    fx.fs().checkpoint().unwrap();
    fx.fs.take().unwrap().unmount().unwrap();
    assert_eq!(fs::read(fx.backing.join("f")).unwrap(), b"aaac");
}
