//! IO profiles: the four storage measurements `crashlab bench` compares
//! across backends, run inside a container against its data directory.
//!
//! Each profile matches a fio job so that the two can be put side by side:
//!
//! | profile | fio | measures |
//! |---|---|---|
//! | `fsync-4k` | `--rw=randwrite --bs=4k --fsync=1 --ioengine=psync` | one 4 KiB `pwrite` at a random aligned offset followed by `fsync`, per op |
//! | `seq-write-1m` | `--rw=write --bs=1m --end_fsync=1` | `--size` written in 1 MiB blocks, then one `fsync`; MiB/s over the whole, fsync included |
//! | `rand-read-4k` | `--rw=randread --bs=4k` (buffered) | one 4 KiB `pread` at a random aligned offset, per op |
//! | `etcd-fdatasync` | `--rw=write --ioengine=sync --fdatasync=1 --bs=2300` (etcd's disk check) | `--size` written in 2,300-byte `write`s, each followed by `fdatasync`; the latency is the `fdatasync`'s alone |
//!
//! As fio does, the random profiles first lay the file out in full (and
//! fsync it), so writes overwrite allocated blocks and reads find data; as
//! fio's defaults do, they drop the file from the page cache before they
//! start (`invalidate=1`) and give the kernel fio's access hint
//! (`fadvise_hint=1`: random, so no readahead; sequential for the
//! sequential write). IO buffers start on a page boundary, as fio's do.
//! Latencies are timed in nanoseconds around the system calls only. The
//! file is removed at the end.

use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::{Rng, RngExt, SeedableRng};
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const BLOCK_4K: usize = 4096;
const BLOCK_1M: usize = 1 << 20;
/// The size of the writes in etcd's disk check: about what one entry of
/// its write-ahead log is, as its documentation's fio job writes them.
const ETCD_BLOCK: usize = 2300;

/// Which measurement to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    #[value(name = "fsync-4k")]
    Fsync4k,
    #[value(name = "seq-write-1m")]
    SeqWrite1m,
    #[value(name = "rand-read-4k")]
    RandRead4k,
    #[value(name = "etcd-fdatasync")]
    EtcdFdatasync,
}

impl Profile {
    pub fn name(self) -> &'static str {
        match self {
            Profile::Fsync4k => "fsync-4k",
            Profile::SeqWrite1m => "seq-write-1m",
            Profile::RandRead4k => "rand-read-4k",
            Profile::EtcdFdatasync => "etcd-fdatasync",
        }
    }

    /// The file size used when none is given: large enough to defeat a
    /// disk's own cache for the random profiles, small enough to lay out
    /// in a second or two; the sequential one writes more to reach a
    /// steady rate; etcd's check writes the 22 MiB its documentation's fio
    /// job does.
    pub fn default_size(self) -> u64 {
        match self {
            Profile::Fsync4k | Profile::RandRead4k => 64 << 20,
            Profile::SeqWrite1m => 256 << 20,
            Profile::EtcdFdatasync => 22 << 20,
        }
    }
}

/// How to run a profile.
#[derive(Debug, Clone)]
pub struct IoConfig {
    pub profile: Profile,
    pub dir: PathBuf,
    /// File size in bytes, a multiple of 4 KiB (the sequential profile
    /// rounds it up to whole 1 MiB blocks).
    pub size: u64,
    /// How long the random profiles run; the sequential one runs until
    /// `size` is written.
    pub duration: Duration,
    pub seed: u64,
}

/// Latency percentiles of one op, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

/// What a profile measured; printed as one JSON line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IoResult {
    pub profile: &'static str,
    pub ops: u64,
    pub bytes: u64,
    /// `fsync`s and `fdatasync`s the profile timed (the lay-out's are not
    /// counted).
    pub syncs: u64,
    pub seconds: f64,
    pub iops: f64,
    pub mib_per_s: f64,
    pub latency_us: Latency,
}

/// Errors of a profile run. Messages read well after "failed to".
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    #[error("use size {0}: it must be a positive multiple of 4096 bytes")]
    Size(u64),
    #[error("{what} {path}")]
    File {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A size such as `67108864`, `64M`, `64MiB` or `1g` (binary units).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(digits);
    let number: u64 = number.parse().map_err(|_| format!("{s:?} is not a size such as 65536, 64M or 1GiB"))?;
    let shift = match unit.to_ascii_lowercase().trim_end_matches("ib").trim_end_matches('b') {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        _ => return Err(format!("{s:?} has an unknown unit; use K, M or G")),
    };
    number.checked_mul(1 << shift).ok_or_else(|| format!("{s:?} is too large"))
}

/// Runs a profile in `config.dir` and removes its file, whatever happened.
pub fn run(config: &IoConfig) -> Result<IoResult, IoError> {
    if config.size == 0 || !config.size.is_multiple_of(BLOCK_4K as u64) {
        return Err(IoError::Size(config.size));
    }
    let path = config.dir.join(format!("crashlab-io-{}.{}", config.profile.name(), std::process::id()));
    let result = match config.profile {
        Profile::Fsync4k => fsync_4k(&path, config),
        Profile::SeqWrite1m => seq_write_1m(&path, config),
        Profile::RandRead4k => rand_read_4k(&path, config),
        Profile::EtcdFdatasync => etcd_fdatasync(&path, config),
    };
    let removed = std::fs::remove_file(&path);
    let result = result?;
    removed.map_err(file_err("remove", &path))?;
    Ok(result)
}

fn fsync_4k(path: &Path, config: &IoConfig) -> Result<IoResult, IoError> {
    let file = lay_out(path, config.size, true)?;
    // fio drops the file from the page cache when it opens it; left cached
    // from the lay-out, each 4 KiB overwrite can write back a whole large
    // folio, and the profile would measure that instead.
    forget_and_go_random(&file);
    let buf = PageAligned::pattern(BLOCK_4K, config.seed);
    let (ops, elapsed, latency) = timed_random_ops(config, |offset| {
        file.write_all_at(buf.as_slice(), offset).map_err(file_err("write", path))?;
        file.sync_all().map_err(file_err("fsync", path))
    })?;
    Ok(IoResult { syncs: ops, ..result(config.profile, ops, ops * BLOCK_4K as u64, elapsed, &latency) })
}

fn seq_write_1m(path: &Path, config: &IoConfig) -> Result<IoResult, IoError> {
    let mut file = create(path)?;
    fadvise(&file, libc::POSIX_FADV_SEQUENTIAL);
    let buf = PageAligned::pattern(BLOCK_1M, config.seed);
    let blocks = config.size.div_ceil(BLOCK_1M as u64);
    let mut latency = histogram();
    let started = Instant::now();
    for _ in 0..blocks {
        let op = Instant::now();
        file.write_all(buf.as_slice()).map_err(file_err("write", path))?;
        record(&mut latency, op.elapsed());
    }
    // Like fio's end_fsync: the rate counts getting the data to disk, not
    // only into the page cache.
    file.sync_all().map_err(file_err("fsync", path))?;
    Ok(IoResult { syncs: 1, ..result(config.profile, blocks, blocks * BLOCK_1M as u64, started.elapsed(), &latency) })
}

/// etcd's disk check: whole 2,300-byte blocks of `size` appended with
/// `write`, each made durable with `fdatasync` before the next, as etcd
/// syncs its write-ahead log before it acknowledges. Only the
/// `fdatasync` is timed, as fio's `sync` latencies time it; the rate is
/// writes per second over the whole, syncs included.
fn etcd_fdatasync(path: &Path, config: &IoConfig) -> Result<IoResult, IoError> {
    let mut file = create(path)?;
    fadvise(&file, libc::POSIX_FADV_SEQUENTIAL);
    let buf = PageAligned::pattern(ETCD_BLOCK, config.seed);
    // fio issues only whole blocks of a size that is not a multiple.
    let writes = config.size / ETCD_BLOCK as u64;
    let mut latency = histogram();
    let started = Instant::now();
    for _ in 0..writes {
        file.write_all(buf.as_slice()).map_err(file_err("write", path))?;
        let sync = Instant::now();
        file.sync_data().map_err(file_err("fdatasync", path))?;
        record(&mut latency, sync.elapsed());
    }
    let elapsed = started.elapsed();
    Ok(IoResult { syncs: writes, ..result(config.profile, writes, writes * ETCD_BLOCK as u64, elapsed, &latency) })
}

fn rand_read_4k(path: &Path, config: &IoConfig) -> Result<IoResult, IoError> {
    let file = lay_out(path, config.size, false)?;
    forget_and_go_random(&file);
    let mut buf = PageAligned::zeroed(BLOCK_4K);
    let (ops, elapsed, latency) = timed_random_ops(config, |offset| {
        file.read_exact_at(buf.as_mut_slice(), offset).map_err(file_err("read", path))
    })?;
    Ok(result(config.profile, ops, ops * BLOCK_4K as u64, elapsed, &latency))
}

/// Calls `op` with uniformly drawn 4 KiB-aligned offsets of the file until
/// `config.duration` has passed: the ops done, the time they took, and the
/// latency of each. Two clock reads per op, the second also ending the
/// loop, so that the loop costs little beside an op of a microsecond.
fn timed_random_ops(
    config: &IoConfig,
    mut op: impl FnMut(u64) -> Result<(), IoError>,
) -> Result<(u64, Duration, Histogram<u64>), IoError> {
    let mut rng = SmallRng::seed_from_u64(config.seed);
    let blocks = config.size / BLOCK_4K as u64;
    let mut latency = histogram();
    let started = Instant::now();
    let mut now = started;
    let mut ops = 0;
    while now - started < config.duration {
        let offset = rng.random_range(0..blocks) * BLOCK_4K as u64;
        let issued = Instant::now();
        op(offset)?;
        now = Instant::now();
        record(&mut latency, now - issued);
        ops += 1;
    }
    Ok((ops, now - started, latency))
}

/// Asks the kernel to forget the file's cached pages, as fio does before a
/// job (its default `invalidate=1`; the pages are clean after
/// [`lay_out`]'s fsync, so all of them go), then gives the access hint fio
/// gives random jobs by default (`fadvise_hint=1`): `RANDOM`, which turns
/// readahead off, so a read that misses the cache reads 4 KiB.
fn forget_and_go_random(file: &File) {
    fadvise(file, libc::POSIX_FADV_DONTNEED);
    fadvise(file, libc::POSIX_FADV_RANDOM);
}

#[expect(unsafe_code, reason = "posix_fadvise has no safe wrapper in std")]
fn fadvise(file: &File, advice: libc::c_int) {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is open for the duration of the call, and
    // posix_fadvise only reads its arguments. A failure only means the
    // cache or readahead stays as it was, which the caller cannot do
    // better about.
    let _ = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, advice) };
}

fn create(path: &Path) -> Result<File, IoError> {
    OpenOptions::new().read(true).write(true).create(true).truncate(true).open(path).map_err(file_err("create", path))
}

/// Writes the whole file once, fsyncs and closes it, and opens it again for
/// the profile (read-only for reads), as fio lays out a file in one open
/// and runs the job in another: on a FUSE filesystem the second open is
/// where the kernel forgets the file's cached pages.
fn lay_out(path: &Path, size: u64, write: bool) -> Result<File, IoError> {
    let mut file = create(path)?;
    let buf = PageAligned::pattern(BLOCK_1M, 0);
    let mut left = size;
    while left > 0 {
        let n = left.min(BLOCK_1M as u64) as usize;
        file.write_all(&buf.as_slice()[..n]).map_err(file_err("lay out", path))?;
        left -= n as u64;
    }
    file.sync_all().map_err(file_err("fsync", path))?;
    drop(file);
    OpenOptions::new().read(true).write(write).open(path).map_err(file_err("open", path))
}

/// An IO buffer that starts on a page boundary, as fio's do: the copy to
/// or from the page cache then moves whole aligned pages.
struct PageAligned {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl PageAligned {
    const PAGE: usize = 4096;

    fn zeroed(len: usize) -> Self {
        let storage = vec![0; len + Self::PAGE];
        let start = storage.as_ptr().align_offset(Self::PAGE);
        PageAligned { storage, start, len }
    }

    /// Data that no filesystem can compress or deduplicate away.
    fn pattern(len: usize, seed: u64) -> Self {
        let mut buf = Self::zeroed(len);
        SmallRng::seed_from_u64(seed ^ 0x5eed).fill_bytes(buf.as_mut_slice());
        buf
    }

    fn as_slice(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len]
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.len]
    }
}

/// Latencies in nanoseconds, up to ten minutes.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000_000, 3).expect("static histogram bounds are valid")
}

fn record(h: &mut Histogram<u64>, elapsed: Duration) {
    let _ = h.record((elapsed.as_nanos() as u64).clamp(1, 600_000_000_000));
}

fn result(profile: Profile, ops: u64, bytes: u64, elapsed: Duration, latency: &Histogram<u64>) -> IoResult {
    let seconds = elapsed.as_secs_f64();
    let us = |ns: u64| ns as f64 / 1e3;
    let (p50, p99, max) = if latency.is_empty() {
        (0, 0, 0)
    } else {
        (latency.value_at_quantile(0.5), latency.value_at_quantile(0.99), latency.max())
    };
    IoResult {
        profile: profile.name(),
        ops,
        bytes,
        syncs: 0,
        seconds,
        iops: ops as f64 / seconds,
        mib_per_s: bytes as f64 / f64::from(1 << 20) / seconds,
        latency_us: Latency { p50: us(p50), p99: us(p99), max: us(max) },
    }
}

fn file_err(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> IoError {
    let path = path.to_owned();
    move |source| IoError::File { what, path, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(profile: Profile, dir: &Path) -> IoConfig {
        IoConfig { profile, dir: dir.into(), size: 1 << 20, duration: Duration::from_millis(200), seed: 1 }
    }

    #[test]
    fn every_profile_measures_and_removes_its_file() {
        let dir = tempfile::tempdir().unwrap();
        for profile in [Profile::Fsync4k, Profile::SeqWrite1m, Profile::RandRead4k, Profile::EtcdFdatasync] {
            let r = run(&config(profile, dir.path())).unwrap();
            assert_eq!(r.profile, profile.name());
            assert!(r.ops > 0, "{r:?}");
            assert!(r.seconds > 0.0 && r.iops > 0.0 && r.mib_per_s > 0.0, "{r:?}");
            assert!(r.latency_us.p50 <= r.latency_us.p99 && r.latency_us.p99 <= r.latency_us.max, "{r:?}");
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "{profile:?} left its file");
        }
    }

    #[test]
    fn random_profiles_run_for_their_duration_and_count_4k_ops() {
        let dir = tempfile::tempdir().unwrap();
        let r = run(&config(Profile::Fsync4k, dir.path())).unwrap();
        assert!(r.seconds >= 0.2, "{r:?}");
        assert_eq!(r.bytes, r.ops * 4096);
    }

    #[test]
    fn sequential_write_writes_the_whole_size_in_1m_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(Profile::SeqWrite1m, dir.path());
        c.size = 3 << 20;
        let r = run(&c).unwrap();
        assert_eq!((r.ops, r.bytes), (3, 3 << 20));
    }

    #[test]
    fn the_etcd_check_syncs_each_whole_2300_byte_write() {
        let dir = tempfile::tempdir().unwrap();
        let r = run(&config(Profile::EtcdFdatasync, dir.path())).unwrap();
        // 1 MiB holds 455 whole blocks of 2,300 bytes.
        assert_eq!((r.ops, r.syncs, r.bytes), (455, 455, 455 * 2300), "{r:?}");
        assert!(r.latency_us.p99 > 0.0, "{r:?}");
    }

    #[test]
    fn result_serialises_to_the_documented_json_line() {
        let r = IoResult {
            profile: "fsync-4k",
            ops: 10,
            bytes: 40960,
            syncs: 10,
            seconds: 2.0,
            iops: 5.0,
            mib_per_s: 0.02,
            latency_us: Latency { p50: 1.0, p99: 2.0, max: 3.0 },
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"profile":"fsync-4k","ops":10,"bytes":40960,"syncs":10,"seconds":2.0,"iops":5.0,"mib_per_s":0.02,"latency_us":{"p50":1.0,"p99":2.0,"max":3.0}}"#
        );
    }

    #[test]
    fn bad_sizes_and_missing_directories_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(Profile::Fsync4k, dir.path());
        c.size = 1000;
        assert!(matches!(run(&c), Err(IoError::Size(1000))));
        let c = config(Profile::Fsync4k, &dir.path().join("missing"));
        assert!(matches!(run(&c), Err(IoError::File { what: "create", .. })));
    }

    #[test]
    fn io_buffers_start_on_a_page_and_hold_their_length() {
        for len in [BLOCK_4K, BLOCK_1M] {
            let mut buf = PageAligned::zeroed(len);
            assert_eq!(buf.as_mut_slice().as_ptr() as usize % 4096, 0);
            assert_eq!(buf.as_slice().len(), len);
        }
        let a = PageAligned::pattern(BLOCK_4K, 7);
        assert_eq!(a.as_slice(), PageAligned::pattern(BLOCK_4K, 7).as_slice(), "the pattern is the seed's");
        assert!(a.as_slice().iter().filter(|&&b| b == 0).count() < 64, "random bytes, not zeroes");
    }

    #[test]
    fn latencies_keep_sub_microsecond_resolution() {
        let mut h = histogram();
        for ns in [700, 1_300, 1_300, 2_100] {
            record(&mut h, Duration::from_nanos(ns));
        }
        let r = result(Profile::RandRead4k, 4, 4 * 4096, Duration::from_secs(1), &h);
        assert!((r.latency_us.p50 - 1.3).abs() < 0.01, "{r:?}");
        assert!((r.latency_us.max - 2.1).abs() < 0.01, "{r:?}");
    }

    #[test]
    fn sizes_parse_with_binary_units() {
        for (text, bytes) in [("4096", 4096), ("64M", 64 << 20), ("64MiB", 64 << 20), ("1g", 1 << 30), ("8k", 8192)] {
            assert_eq!(parse_size(text), Ok(bytes), "{text}");
        }
        assert!(parse_size("12x").is_err());
        assert!(parse_size("M").is_err());
    }
}
