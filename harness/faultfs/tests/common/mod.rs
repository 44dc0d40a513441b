//! Mount fixtures shared by the integration tests: a backing directory and
//! a mountpoint in a temporary directory, and remounting after a power cut.

use std::path::{Path, PathBuf};

use crashlab_faultfs::{FaultConfig, FaultFs, MountedFs};

/// A backing directory, a mountpoint and (usually) a live mount.
pub struct Fixture {
    _dir: tempfile::TempDir,
    pub backing: PathBuf,
    pub mnt: PathBuf,
    pub fs: Option<MountedFs>,
    config: FaultConfig,
}

/// Whether FUSE tests can run; panics with a clear message when they
/// cannot, unless `CRASHLAB_SKIP_FUSE=1` asks to skip.
pub fn fuse_available() -> bool {
    if Path::new("/dev/fuse").exists() {
        return true;
    }
    if std::env::var("CRASHLAB_SKIP_FUSE").as_deref() == Ok("1") {
        eprintln!("skipping: /dev/fuse is absent and CRASHLAB_SKIP_FUSE=1");
        return false;
    }
    panic!("/dev/fuse is absent: faultfs tests need root and FUSE (set CRASHLAB_SKIP_FUSE=1 to skip)");
}

impl Fixture {
    pub fn new(config: FaultConfig) -> Self {
        let dir = tempfile::tempdir().expect("create temp dir");
        let backing = dir.path().join("backing");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&backing).unwrap();
        std::fs::create_dir(&mnt).unwrap();
        let fs = FaultFs::mount(&backing, &mnt, config.clone()).expect("mount faultfs");
        Fixture { _dir: dir, backing, mnt, fs: Some(fs), config }
    }

    pub fn fs(&self) -> &MountedFs {
        self.fs.as_ref().expect("mounted")
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    /// Power cut, unmount, mount again over the same backing directory.
    pub fn crash_and_remount(&mut self) {
        let fs = self.fs.take().expect("mounted");
        fs.power_cut();
        fs.unmount().expect("unmount after power cut");
        self.fs = Some(FaultFs::mount(&self.backing, &self.mnt, self.config.clone()).expect("remount"));
    }
}
