//! A btrfs filesystem the harness owns, for the `btrfs-snapshot` backup
//! strategy: a sparse image file attached to a loop device and mounted,
//! whose subvolumes hold a cell's data and its point-in-time snapshots.
//!
//! Layout, under the directory the caller gives (the run's state directory,
//! e.g. `<run dir>/btrfs/<name>`): `image` is the sparse file, `mnt` the
//! mountpoint, and every subvolume is a direct child of `mnt`. A cell keeps
//! its data in a subvolume `live`, exposed to Docker as a bind volume; every
//! interval it takes a read-only snapshot `snap-N` of `live`; on host loss it
//! deletes `live` and a writable snapshot `restore-K` of the latest `snap-N`
//! becomes the new volume's device.
//!
//! Where a snapshot's cost and stall come from: `btrfs subvolume snapshot`
//! first flushes the source subvolume's delayed allocation (everything
//! written into it that is still only in the page cache) and waits for that
//! IO, then commits the btrfs transaction that holds the new snapshot; the
//! commit ends with a cache flush, which the loop device turns into an
//! `fsync` of the image file on the host. So a snapshot costs about the time
//! to write out what the workload dirtied since the last writeback, plus one
//! commit, and during the commit anything that must join a transaction (a
//! workload's `fsync`, a file creation) waits for it. [`Snapshot::took`] is
//! the wall time of the whole `btrfs` call, its process start included
//! (a few milliseconds). The size of the dataset does not matter (the
//! snapshot shares every block with its source); how much of it is not yet
//! on disk does.
//!
//! Measured on the 2-core development machine with the image on the host's
//! ext4 (`snapshot_timing_with_a_gib_of_fresh_data` in `tests/btrfs.rs`, run
//! by hand; two runs of each, the disk shared with other builds, so noisy):
//!
//! | before the snapshot | snapshot | 4 KiB append + `fdatasync` meanwhile |
//! |---|---|---|
//! | nothing written | 5–8 ms p50 | |
//! | 1 GiB written and fsynced | 10–28 ms | p99 11–20 ms, max 35 ms |
//! | 1 GiB written, not synced | 4.5–7.3 s | p99 0.7–0.9 s, max 0.9–1.7 s |
//! | the same, `syncfs` first (4–7.4 s) | 7–27 ms | p99 0.7–1.3 s (the stall moves into the `syncfs`) |
//! | a steady `fdatasync` writer, snapshot every 1 s | p50 23–36 ms, max 0.25–0.29 s | p50 3.4 ms, p99 35–39 ms, max 0.3–0.4 s |
//! | the same writer, no snapshots | | p50 3.3 ms, p99 59–61 ms, max 0.6–0.9 s |
//!
//! So a snapshot stays well under a second, and the writer's p99 under
//! 50 ms, when the data was already fsynced, as a durable database's is;
//! a GiB of unsynced page cache costs its write-out at the disk's speed,
//! inside the snapshot and as a stall of every concurrent `fsync`. The pool
//! itself is slower to `fdatasync` than the host's filesystem (p50 3.3 ms
//! against 0.7 ms, p99 59 ms against 16 ms, same runs): every flush goes
//! through btrfs's log tree and the loop device to an `fsync` of the image.
//!
//! Every mount and loop device a pool uses lives under its directory (a
//! loop device names the image as its backing file in sysfs), which is what
//! lets [`detach_btrfs_under`] find and release what a killed run left
//! behind before [`crate::cleanup::cleanup_run`] removes the run directory.
//!
//! The work is done by btrfs-progs (`mkfs.btrfs`, `btrfs`) and util-linux
//! (`losetup`, `mount`, `umount`) run as commands; a failed command's error
//! carries its command line, exit status and standard error.

use crate::run::journal::{Entry, Journal};
use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Below this size a pool is made in mixed mode (data and metadata share
/// block groups), as `mkfs.btrfs` recommends for small filesystems; a
/// filesystem in the default mode also needs at least about 110 MiB.
pub const MIXED_MODE_BELOW: u64 = 1 << 30;

/// How long an unmount retries while the filesystem is busy, e.g. while a
/// container that used it is still being torn down.
const UNMOUNT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a detached loop device may take to let go of its image: the
/// kernel defers the detach while anything (udev's probe, say) holds it open.
const LOOP_RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

const RETRY_INTERVAL: Duration = Duration::from_millis(100);

/// The commands a pool runs and the Debian package that has each.
const TOOLS: [(&str, &str); 5] = [
    ("mkfs.btrfs", "btrfs-progs"),
    ("btrfs", "btrfs-progs"),
    ("losetup", "mount"),
    ("mount", "mount"),
    ("umount", "mount"),
];

#[derive(Debug, thiserror::Error)]
pub enum BtrfsError {
    #[error("find {program}: it is not installed (install {package}, e.g. `apt-get install {package}`)")]
    MissingTool { program: &'static str, package: &'static str },
    #[error("create a btrfs pool: loop devices and mounts need root (run crashlab as root)")]
    NotRoot,
    #[error("prepare {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("start `{command}`")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("run `{command}` ({status}): {stderr}")]
    Command { command: String, status: ExitStatus, stderr: String },
    #[error("use {name:?} as a subvolume name: it must be one non-empty path component other than `.` and `..`")]
    BadName { name: String },
    #[error("snapshot to {path}: it already exists")]
    Exists { path: PathBuf },
    #[error("unmount {path}: still busy after {waited:.1?}; detached it lazily")]
    Busy { path: PathBuf, waited: Duration },
    #[error("detach loop device {device}: it still holds {image} after {waited:.1?}")]
    LoopBusy { device: PathBuf, image: PathBuf, waited: Duration },
    #[error(transparent)]
    Journal(#[from] crate::run::journal::JournalError),
}

/// A snapshot just taken and how long taking it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The new subvolume.
    pub path: PathBuf,
    /// Wall time of the `btrfs subvolume snapshot` call: flushing the
    /// source's dirty data, committing the transaction, and starting the
    /// process.
    pub took: Duration,
}

/// A loop-mounted btrfs image under a directory the pool owns. Call
/// [`BtrfsPool::teardown`] to release it; dropping it unmounts as best it
/// can without waiting and leaves the directory to the run's cleanup.
#[derive(Debug)]
pub struct BtrfsPool {
    dir: PathBuf,
    image: PathBuf,
    mountpoint: PathBuf,
    loop_device: Option<PathBuf>,
    mounted: bool,
}

/// Whether this process can make pools: root, and every command present.
pub fn check_available() -> Result<(), BtrfsError> {
    if !crate::images::is_root() {
        return Err(BtrfsError::NotRoot);
    }
    match TOOLS.into_iter().find(|(program, _)| crate::images::which(program).is_none()) {
        Some((program, package)) => Err(BtrfsError::MissingTool { program, package }),
        None => Ok(()),
    }
}

impl BtrfsPool {
    /// Makes a sparse image of `size_bytes` at `dir/image`, formats it as
    /// btrfs (mixed mode below [`MIXED_MODE_BELOW`]), attaches it to a free
    /// loop device and mounts it at `dir/mnt`. `dir` belongs to the pool
    /// from then on: [`Self::teardown`] removes it. On failure whatever was
    /// set up is released again. A run's pool is recorded in its `journal`
    /// first, by its image.
    pub fn create(dir: &Path, size_bytes: u64, journal: Option<&Journal>) -> Result<BtrfsPool, BtrfsError> {
        check_available()?;
        if let Some(journal) = journal {
            journal.record(&Entry::LoopImage(dir.join("image")))?;
        }
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| BtrfsError::Io { path, source }
        };
        std::fs::create_dir_all(dir.join("mnt")).map_err(io(dir))?;
        // The kernel reports mountpoints and backing files by their
        // canonical paths; keep ours the same so that they compare equal.
        let dir = std::fs::canonicalize(dir).map_err(io(dir))?;
        let image = dir.join("image");
        // A fresh file, never someone's existing image: a failed create
        // removes the directory again.
        let file = std::fs::OpenOptions::new().write(true).create_new(true).open(&image).map_err(io(&image))?;
        let mut pool = BtrfsPool { mountpoint: dir.join("mnt"), dir, image, loop_device: None, mounted: false };
        let sized = file.set_len(size_bytes).map_err(io(&pool.image));
        drop(file);
        let made = sized.and_then(|()| pool.format_and_mount(size_bytes));
        match made {
            Ok(()) => Ok(pool),
            Err(e) => {
                if let Err(cleanup) = pool.teardown() {
                    tracing::warn!("could not release a half-made btrfs pool: {cleanup}");
                }
                Err(e)
            }
        }
    }

    fn format_and_mount(&mut self, size_bytes: u64) -> Result<(), BtrfsError> {
        let mut mkfs: Vec<&OsStr> = vec!["-q".as_ref(), "-L".as_ref(), "crashlab".as_ref()];
        if size_bytes < MIXED_MODE_BELOW {
            mkfs.push("--mixed".as_ref());
        }
        mkfs.push(self.image.as_os_str());
        run("mkfs.btrfs", &mkfs)?;
        let device = run("losetup", &["--find".as_ref(), "--show".as_ref(), self.image.as_os_str()])?;
        let device = PathBuf::from(device.trim());
        self.loop_device = Some(device.clone());
        run("mount", &["-t".as_ref(), "btrfs".as_ref(), device.as_os_str(), self.mountpoint.as_os_str()])?;
        self.mounted = true;
        Ok(())
    }

    /// Where the filesystem is mounted; subvolumes are its children.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// The pool's directory (canonical), holding `image` and `mnt`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The loop device the image is attached to, while it is.
    pub fn loop_device(&self) -> Option<&Path> {
        self.loop_device.as_deref()
    }

    /// The path of subvolume `name`, which must be a plain name: every
    /// subvolume is a direct child of the mountpoint.
    pub fn subvolume_path(&self, name: &str) -> Result<PathBuf, BtrfsError> {
        let plain = !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0']);
        if plain { Ok(self.mountpoint.join(name)) } else { Err(BtrfsError::BadName { name: name.to_owned() }) }
    }

    /// Creates an empty subvolume `name` and returns its path.
    pub fn create_subvolume(&self, name: &str) -> Result<PathBuf, BtrfsError> {
        let path = self.subvolume_path(name)?;
        run("btrfs", &["subvolume".as_ref(), "create".as_ref(), path.as_os_str()])?;
        Ok(path)
    }

    /// Snapshots subvolume `source` as `dest`, read-only or writable, and
    /// says how long it took. The snapshot holds exactly what `source` held
    /// when the call began, including data still in the page cache, which
    /// the call writes out first (see the module docs for what that costs).
    pub fn snapshot(&self, source: &str, dest: &str, read_only: bool) -> Result<Snapshot, BtrfsError> {
        let from = self.subvolume_path(source)?;
        let to = self.subvolume_path(dest)?;
        // Given an existing directory, `btrfs` would put the snapshot
        // inside it rather than fail.
        if to.symlink_metadata().is_ok() {
            return Err(BtrfsError::Exists { path: to });
        }
        let mut args: Vec<&OsStr> = vec!["subvolume".as_ref(), "snapshot".as_ref()];
        if read_only {
            args.push("-r".as_ref());
        }
        args.extend([from.as_os_str(), to.as_os_str()]);
        let start = Instant::now();
        run("btrfs", &args)?;
        let took = start.elapsed();
        tracing::debug!("btrfs snapshot {source} -> {dest} (read-only: {read_only}) took {took:?}");
        Ok(Snapshot { path: to, took })
    }

    /// Deletes subvolume `name` with everything in it, whoever owns its
    /// files and whether or not it is read-only. The space is freed in the
    /// background after the next commit.
    pub fn delete_subvolume(&self, name: &str) -> Result<(), BtrfsError> {
        let path = self.subvolume_path(name)?;
        run("btrfs", &["subvolume".as_ref(), "delete".as_ref(), path.as_os_str()])?;
        Ok(())
    }

    /// Unmounts (retrying for a few seconds while the filesystem is busy,
    /// then detaching it lazily), detaches the loop device, waits until it
    /// lets go of the image, and removes the pool's directory unless
    /// something is still mounted under it. The subvolumes go with the
    /// image. Returns the first thing that went wrong, after doing the rest.
    ///
    /// Remove the containers and Docker volumes that bind a subvolume first:
    /// Docker's own bind mount of it (`/var/lib/docker/volumes/<name>/_data`)
    /// keeps the filesystem alive after ours is gone, and with it the loop
    /// device, which then ends in [`BtrfsError::LoopBusy`] (the kernel frees
    /// it by itself once that mount goes).
    pub fn teardown(mut self) -> Result<(), BtrfsError> {
        let mut result = Ok(());
        if self.mounted {
            self.mounted = false;
            if let Err(e) = unmount(&self.mountpoint, UNMOUNT_TIMEOUT) {
                result = Err(e);
            }
        }
        if let Some(device) = self.loop_device.take() {
            let released = detach_loop(&device).and_then(|()| wait_released(&device, &self.image));
            result = result.and(released);
        }
        if crate::images::mounts_under(&self.dir).is_empty() {
            if let Err(e) = std::fs::remove_dir_all(&self.dir)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                result = result.and(Err(BtrfsError::Io { path: self.dir.clone(), source: e }));
            }
        } else {
            tracing::warn!("{} still has mounts; left for `crashlab clean`", self.dir.display());
        }
        result
    }
}

impl Drop for BtrfsPool {
    /// A pool still mounted here was abandoned (an error, Ctrl-C, a panic),
    /// possibly with a container still using it, so nothing here waits: one
    /// unmount attempt, else a lazy one, and the loop device is detached,
    /// which the kernel defers until the filesystem lets go of it. The
    /// directory is left for the run's cleanup.
    fn drop(&mut self) {
        if self.mounted {
            self.mounted = false;
            if let Err(e) = unmount(&self.mountpoint, Duration::ZERO) {
                tracing::warn!("dropping a btrfs pool: {e}");
            }
        }
        if let Some(device) = self.loop_device.take()
            && let Err(e) = detach_loop(&device)
        {
            tracing::warn!("dropping a btrfs pool: {e}");
        }
    }
}

/// Unmounts every btrfs filesystem mounted at or below `dir` (deepest
/// first, waiting a few seconds for a busy one, then lazily) and detaches
/// every loop device whose backing file lies below `dir`. Returns how many
/// pools it released: distinct loop devices (or mount sources) it unmounted
/// or detached. Run directories go through this before they are removed, so
/// that a killed run's pools neither keep their loop devices nor let a
/// recursive removal walk into a live filesystem.
pub fn detach_btrfs_under(dir: &Path) -> usize {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
    let mut released = BTreeSet::new();
    let table = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut mounts: Vec<MountEntry> =
        parse_mounts(&table).into_iter().filter(|m| m.fstype == "btrfs" && m.target.starts_with(&dir)).collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.target.components().count()));
    for mount in mounts {
        match unmount(&mount.target, UNMOUNT_TIMEOUT) {
            Ok(()) => {}
            Err(e @ BtrfsError::Busy { .. }) => tracing::warn!("{e}"),
            Err(e) => {
                tracing::warn!("could not unmount a leftover btrfs pool: {e}");
                continue;
            }
        }
        released.insert(mount.source);
    }
    for (device, image) in attached_loops().into_iter().filter(|(_, image)| image.starts_with(&dir)) {
        match detach_loop(&device).and_then(|()| wait_released(&device, &image)) {
            Ok(()) => {
                released.insert(device);
            }
            Err(e) => tracing::warn!("could not free a leftover loop device: {e}"),
        }
    }
    released.len()
}

/// Runs `program` with `args` and returns its standard output, or an error
/// with the command line, exit status and standard error.
fn run(program: &'static str, args: &[&OsStr]) -> Result<String, BtrfsError> {
    let package = TOOLS.into_iter().find(|(p, _)| *p == program).map_or("", |(_, package)| package);
    run_tool(program, package, args)
}

/// [`run`] for any tool, `package` being the Debian package that has it
/// (named when it is missing): the loop devices of driver volumes format
/// theirs with `mkfs.xfs` and `mkfs.ext4` too.
pub(crate) fn run_tool(program: &'static str, package: &'static str, args: &[&OsStr]) -> Result<String, BtrfsError> {
    let command = command_line(program, args);
    let output = Command::new(program).args(args).stdin(Stdio::null()).output().map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound && !package.is_empty() {
            BtrfsError::MissingTool { program, package }
        } else {
            BtrfsError::Spawn { command: command.clone(), source }
        }
    })?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(BtrfsError::Command { command, status: output.status, stderr: crate::text::stderr_line(&output.stderr) })
    }
}

/// Detaches loop `device` and waits until it lets go of `image`.
pub(crate) fn release_loop(device: &Path, image: &Path) -> Result<(), BtrfsError> {
    detach_loop(device).and_then(|()| wait_released(device, image))
}

/// A command line as a shell would take it, for error messages.
fn command_line(program: &str, args: &[&OsStr]) -> String {
    let mut line = program.to_owned();
    for arg in args {
        let arg = arg.to_string_lossy();
        line.push(' ');
        if arg.is_empty() || arg.contains(|c: char| c.is_whitespace() || "'\"\\$`".contains(c)) {
            line.push('\'');
            line.push_str(&arg.replace('\'', r"'\''"));
            line.push('\'');
        } else {
            line.push_str(&arg);
        }
    }
    line
}

/// Unmounts `path`, retrying while it is busy for up to `timeout`, then
/// detaching it lazily (and saying so). A path with nothing mounted on it
/// counts as unmounted.
fn unmount(path: &Path, timeout: Duration) -> Result<(), BtrfsError> {
    let start = Instant::now();
    loop {
        match run("umount", &[path.as_os_str()]) {
            Ok(_) => return Ok(()),
            Err(BtrfsError::Command { stderr, .. }) if stderr.contains("not mounted") => return Ok(()),
            Err(BtrfsError::Command { stderr, .. }) if stderr.contains("busy") => {
                if start.elapsed() >= timeout {
                    run("umount", &["--lazy".as_ref(), path.as_os_str()])?;
                    return Err(BtrfsError::Busy { path: path.to_owned(), waited: start.elapsed() });
                }
                std::thread::sleep(RETRY_INTERVAL);
            }
            Err(e) => return Err(e),
        }
    }
}

/// Detaches a loop device. While anything still holds it (a lazily
/// unmounted filesystem, udev) the kernel only marks it to detach itself
/// when released. A device already detached counts as detached.
fn detach_loop(device: &Path) -> Result<(), BtrfsError> {
    match run("losetup", &["--detach".as_ref(), device.as_os_str()]) {
        Err(BtrfsError::Command { stderr, .. }) if stderr.contains("No such device") => Ok(()),
        other => other.map(drop),
    }
}

/// Waits until `device` no longer has `image` as its backing file.
fn wait_released(device: &Path, image: &Path) -> Result<(), BtrfsError> {
    let start = Instant::now();
    while backing_file(device).is_some_and(|f| f == image) {
        if start.elapsed() >= LOOP_RELEASE_TIMEOUT {
            return Err(BtrfsError::LoopBusy {
                device: device.to_owned(),
                image: image.to_owned(),
                waited: start.elapsed(),
            });
        }
        std::thread::sleep(RETRY_INTERVAL);
    }
    Ok(())
}

/// The file a loop device is attached to, from sysfs; `None` when the
/// device is free.
fn backing_file(device: &Path) -> Option<PathBuf> {
    let name = device.file_name()?;
    let sysfs = Path::new("/sys/block").join(name).join("loop/backing_file");
    std::fs::read_to_string(sysfs).ok().map(|s| parse_backing_file(&s))
}

/// Every attached loop device and its backing file.
fn attached_loops() -> Vec<(PathBuf, PathBuf)> {
    let Ok(entries) = std::fs::read_dir("/sys/block") else { return vec![] };
    entries
        .flatten()
        .map(|e| e.file_name())
        .filter(|name| name.to_string_lossy().starts_with("loop"))
        .filter_map(|name| {
            let device = Path::new("/dev").join(name);
            backing_file(&device).map(|image| (device, image))
        })
        .collect()
}

/// A backing file as sysfs shows it: one line, with " (deleted)" appended
/// once the file was unlinked.
fn parse_backing_file(text: &str) -> PathBuf {
    let line = text.strip_suffix('\n').unwrap_or(text);
    PathBuf::from(line.strip_suffix(" (deleted)").unwrap_or(line))
}

/// One line of `/proc/self/mounts`.
#[derive(Debug, PartialEq, Eq)]
struct MountEntry {
    source: PathBuf,
    target: PathBuf,
    fstype: String,
}

fn parse_mounts(table: &str) -> Vec<MountEntry> {
    table
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let source = unescape_mount_field(fields.next()?);
            let target = unescape_mount_field(fields.next()?);
            let fstype = unescape_mount_field(fields.next()?);
            Some(MountEntry { source: source.into(), target: target.into(), fstype })
        })
        .collect()
}

/// Undoes the kernel's octal escapes of space, tab, newline and backslash
/// (`\040`, `\011`, `\012`, `\134`) in a mount table field.
fn unescape_mount_field(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut rest = field;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let escape = rest.get(at + 1..at + 4).and_then(|digits| u8::from_str_radix(digits, 8).ok());
        match escape {
            Some(byte) => {
                out.push(char::from(byte));
                rest = &rest[at + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn command_errors_name_the_command_its_status_and_its_stderr() {
        let cases = [
            (
                "btrfs",
                vec!["subvolume", "delete", "/p/mnt/gone"],
                ExitStatus::from_raw(1 << 8),
                "ERROR: Could not statfs: No such file or directory\n",
                "run `btrfs subvolume delete /p/mnt/gone` (exit status: 1): \
                 ERROR: Could not statfs: No such file or directory",
            ),
            (
                "mkfs.btrfs",
                vec!["-q", "--mixed", "/runs/a b/image"],
                ExitStatus::from_raw(1 << 8),
                "ERROR: 'x' is too small to make a usable filesystem\nERROR: minimum size for each btrfs device is 114294784\n",
                "run `mkfs.btrfs -q --mixed '/runs/a b/image'` (exit status: 1): \
                 ERROR: 'x' is too small to make a usable filesystem; \
                 ERROR: minimum size for each btrfs device is 114294784",
            ),
            (
                "umount",
                vec!["/p/mnt"],
                ExitStatus::from_raw(9),
                "",
                "run `umount /p/mnt` (signal: 9 (SIGKILL)): no error output",
            ),
            (
                "losetup",
                vec!["--find", "--show", "it's"],
                ExitStatus::from_raw(32 << 8),
                "  \n  losetup: cannot find an unused loop device  \n\n",
                r"run `losetup --find --show 'it'\''s'` (exit status: 32): losetup: cannot find an unused loop device",
            ),
        ];
        for (program, args, status, stderr, expected) in cases {
            let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
            let error = BtrfsError::Command {
                command: command_line(program, &args),
                status,
                stderr: crate::text::stderr_line(stderr.as_bytes()),
            };
            assert_eq!(error.to_string(), expected);
        }
    }

    #[test]
    fn a_failing_command_reports_its_stderr() {
        let error = run("umount", &["/nonexistent/crashlab-btrfs-test".as_ref()]).unwrap_err();
        let BtrfsError::Command { command, stderr, .. } = &error else { panic!("{error:?}") };
        assert_eq!(command, "umount /nonexistent/crashlab-btrfs-test");
        assert!(stderr.contains("/nonexistent/crashlab-btrfs-test"), "{stderr}");
        assert!(!stderr.contains('\n'), "{stderr}");
    }

    #[test]
    fn missing_tools_name_their_package() {
        let error = BtrfsError::MissingTool { program: "mkfs.btrfs", package: "btrfs-progs" };
        assert_eq!(
            error.to_string(),
            "find mkfs.btrfs: it is not installed (install btrfs-progs, e.g. `apt-get install btrfs-progs`)"
        );
    }

    #[test]
    fn subvolume_names_are_one_plain_component() {
        let pool = BtrfsPool {
            dir: "/p".into(),
            image: "/p/image".into(),
            mountpoint: "/p/mnt".into(),
            loop_device: None,
            mounted: false,
        };
        assert_eq!(pool.subvolume_path("snap-3").unwrap(), Path::new("/p/mnt/snap-3"));
        for bad in ["", ".", "..", "a/b", "/live", "live/", "a\0b"] {
            let error = pool.subvolume_path(bad).unwrap_err();
            assert!(matches!(error, BtrfsError::BadName { .. }), "{bad:?}: {error:?}");
        }
    }

    #[test]
    fn mount_table_fields_are_unescaped() {
        let table = "/dev/loop3 /runs/a\\040b/btrfs/c/mnt btrfs rw,relatime 0 0\n\
                     tmpfs /tmp/x\\011y\\134z tmpfs rw 0 0\n\
                     weird /odd\\0 ext4 rw 0 0\n";
        let mounts = parse_mounts(table);
        assert_eq!(
            mounts,
            [
                MountEntry {
                    source: "/dev/loop3".into(),
                    target: "/runs/a b/btrfs/c/mnt".into(),
                    fstype: "btrfs".into()
                },
                MountEntry { source: "tmpfs".into(), target: "/tmp/x\ty\\z".into(), fstype: "tmpfs".into() },
                MountEntry { source: "weird".into(), target: "/odd\\0".into(), fstype: "ext4".into() },
            ]
        );
    }

    #[test]
    fn backing_files_lose_the_deleted_mark() {
        assert_eq!(parse_backing_file("/runs/r/btrfs/c/image\n"), Path::new("/runs/r/btrfs/c/image"));
        assert_eq!(parse_backing_file("/runs/r/btrfs/c/image (deleted)\n"), Path::new("/runs/r/btrfs/c/image"));
    }
}
