//! The knobs of one faultfs mount, in one range-checked struct.

use std::fmt;
use std::str::FromStr;

use crate::rules::FaultRule;

/// What a failed `fsync` (an `EIO` injected by an `eio:fsync` rule) does to
/// the file's unsynced data; see the crate docs ("Failed fsync"). Text
/// forms: `keep-dirty`, `ext4`, `btrfs`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum FsyncFailure {
    /// The data stays dirty: a retried `fsync`, a checkpoint or a clean
    /// unmount still persists it. Kinder than any Linux file system.
    #[default]
    KeepDirty,
    /// ext4 and XFS: the failed pages are marked clean. They stay readable,
    /// are never written, and are lost at a power cut or unmount; a retried
    /// `fsync` succeeds without persisting them.
    Ext4,
    /// btrfs: the file reverts to its durable contents and size.
    Btrfs,
}

impl fmt::Display for FsyncFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FsyncFailure::KeepDirty => "keep-dirty",
            FsyncFailure::Ext4 => "ext4",
            FsyncFailure::Btrfs => "btrfs",
        })
    }
}

impl FromStr for FsyncFailure {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "keep-dirty" => Ok(FsyncFailure::KeepDirty),
            "ext4" | "xfs" => Ok(FsyncFailure::Ext4),
            "btrfs" => Ok(FsyncFailure::Btrfs),
            _ => Err(ConfigError::FsyncFailure(s.to_owned())),
        }
    }
}

/// Configuration of a faultfs mount. Build it with [`FaultConfig::builder`];
/// every value is range-checked there, so a `FaultConfig` is always valid.
///
/// ```
/// use crashlab_faultfs::FaultConfig;
/// let config = FaultConfig::builder()
///     .seed(42)
///     .max_dirty_bytes_per_file(8 << 20)
///     .rule("torn:prefix".parse()?)
///     .build()?;
/// assert_eq!(config.seed(), 42);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultConfig {
    seed: u64,
    max_dirty_bytes_per_file: u64,
    fsync_reaches_disk: bool,
    sector_size: u64,
    fsync_failure: FsyncFailure,
    max_history_bytes: u64,
    threads: usize,
    rules: Vec<FaultRule>,
}

impl Default for FaultConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            max_dirty_bytes_per_file: FaultConfig::DEFAULT_MAX_DIRTY,
            fsync_reaches_disk: false,
            sector_size: 512,
            fsync_failure: FsyncFailure::KeepDirty,
            max_history_bytes: FaultConfig::DEFAULT_MAX_HISTORY,
            threads: FaultConfig::DEFAULT_THREADS,
            rules: Vec::new(),
        }
    }
}

impl FaultConfig {
    /// Default dirty-data bound per file: 64 MiB.
    pub const DEFAULT_MAX_DIRTY: u64 = 64 << 20;
    /// Smallest accepted dirty bound: one page.
    pub const MIN_MAX_DIRTY: u64 = 4 << 10;
    /// Largest accepted dirty bound: 16 GiB, far above any test's memory.
    pub const MAX_MAX_DIRTY: u64 = 16 << 30;
    /// Default budget of the unsynced history: 256 MiB of write data.
    pub const DEFAULT_MAX_HISTORY: u64 = 256 << 20;
    /// Default number of threads serving FUSE requests: 1. On the 2-core
    /// machine faultfs was measured on (docs/benchmarks.md, "faultfs"), one
    /// thread beat two in the same rotated rounds on a lone client (4 KiB
    /// write+fsync, 1.24x; 1 MiB sequential writes, 1.28x) and on 4
    /// clients at once (1.18x): the kernel hands each request to the
    /// thread that has waited longest, so with more threads every request
    /// wakes a cold one, and two cores leave nothing for a second thread
    /// to run on. Raise it on hosts with cores to spare.
    pub const DEFAULT_THREADS: usize = 1;
    /// Most threads accepted.
    pub const MAX_THREADS: usize = 64;

    /// A builder starting from the defaults: seed 0, 64 MiB dirty bound per
    /// file, `fsync_reaches_disk = false`, 512-byte sectors, no rules.
    pub fn builder() -> FaultConfigBuilder {
        FaultConfigBuilder { config: FaultConfig::default() }
    }

    /// Seed of every random choice (today: which sectors of a torn write
    /// survive). Record it in reports; the same seed and the same operation
    /// sequence give the same result.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// When a file holds more unsynced bytes than this, its oldest cached
    /// data is written to the backing file (and so survives a power cut), as
    /// kernel writeback does under memory pressure.
    pub fn max_dirty_bytes_per_file(&self) -> u64 {
        self.max_dirty_bytes_per_file
    }

    /// Whether `fsync`/`fsyncdir` also call `fsync` on the backing file or
    /// directory. When false (the default) they only move data into the
    /// backing file with ordinary writes: power cuts are simulated, so the
    /// host disk need not be durable, and fsync becomes cheap. Set it when
    /// the host itself may really lose power during a run.
    pub fn fsync_reaches_disk(&self) -> bool {
        self.fsync_reaches_disk
    }

    /// Threads serving FUSE requests, each on its own clone of the
    /// `/dev/fuse` descriptor (see the crate docs, "Concurrency").
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Granularity, in bytes, at which writes are torn.
    pub fn sector_size(&self) -> u64 {
        self.sector_size
    }

    /// What a failed `fsync` does to the file's unsynced data.
    pub fn fsync_failure(&self) -> FsyncFailure {
        self.fsync_failure
    }

    /// Most bytes of write data the unsynced history
    /// ([`crate::FaultHandle::history`]) holds. Beyond it recording stops
    /// until everything is durable again and the history reports itself
    /// incomplete; 0 disables recording.
    pub fn max_history_bytes(&self) -> u64 {
        self.max_history_bytes
    }

    /// Rules installed at mount time.
    pub fn rules(&self) -> &[FaultRule] {
        &self.rules
    }
}

/// Builds a [`FaultConfig`]; see its getters for the meaning of each knob.
#[derive(Clone, Debug)]
#[must_use]
pub struct FaultConfigBuilder {
    config: FaultConfig,
}

impl FaultConfigBuilder {
    /// See [`FaultConfig::seed`].
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = seed;
        self
    }

    /// See [`FaultConfig::max_dirty_bytes_per_file`]; must lie within
    /// [`FaultConfig::MIN_MAX_DIRTY`]..=[`FaultConfig::MAX_MAX_DIRTY`].
    pub fn max_dirty_bytes_per_file(mut self, bytes: u64) -> Self {
        self.config.max_dirty_bytes_per_file = bytes;
        self
    }

    /// See [`FaultConfig::fsync_reaches_disk`].
    pub fn fsync_reaches_disk(mut self, on: bool) -> Self {
        self.config.fsync_reaches_disk = on;
        self
    }

    /// See [`FaultConfig::sector_size`]; a power of two from 512 to 64 KiB.
    pub fn sector_size(mut self, bytes: u64) -> Self {
        self.config.sector_size = bytes;
        self
    }

    /// See [`FaultConfig::fsync_failure`].
    pub fn fsync_failure(mut self, mode: FsyncFailure) -> Self {
        self.config.fsync_failure = mode;
        self
    }

    /// See [`FaultConfig::max_history_bytes`].
    pub fn max_history_bytes(mut self, bytes: u64) -> Self {
        self.config.max_history_bytes = bytes;
        self
    }

    /// See [`FaultConfig::threads`]; must lie within
    /// `1..=`[`FaultConfig::MAX_THREADS`].
    pub fn threads(mut self, n: usize) -> Self {
        self.config.threads = n;
        self
    }

    /// Adds a rule installed at mount time.
    pub fn rule(mut self, rule: FaultRule) -> Self {
        self.config.rules.push(rule);
        self
    }

    /// Checks the ranges and returns the configuration.
    ///
    /// # Errors
    /// [`ConfigError`] names the first knob out of range.
    pub fn build(self) -> Result<FaultConfig, ConfigError> {
        let c = self.config;
        if !(FaultConfig::MIN_MAX_DIRTY..=FaultConfig::MAX_MAX_DIRTY).contains(&c.max_dirty_bytes_per_file) {
            return Err(ConfigError::MaxDirty(c.max_dirty_bytes_per_file));
        }
        if !c.sector_size.is_power_of_two() || !(512..=65536).contains(&c.sector_size) {
            return Err(ConfigError::SectorSize(c.sector_size));
        }
        if !(1..=FaultConfig::MAX_THREADS).contains(&c.threads) {
            return Err(ConfigError::Threads(c.threads));
        }
        Ok(c)
    }
}

/// A [`FaultConfig`] knob out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// See [`FaultConfigBuilder::max_dirty_bytes_per_file`].
    #[error(
        "build faultfs config: max-dirty-bytes-per-file {0} is outside {min}..={max}",
        min = FaultConfig::MIN_MAX_DIRTY,
        max = FaultConfig::MAX_MAX_DIRTY
    )]
    MaxDirty(u64),
    /// See [`FaultConfigBuilder::sector_size`].
    #[error("build faultfs config: sector-size {0} is not a power of two from 512 to 65536")]
    SectorSize(u64),
    /// See [`FaultConfigBuilder::threads`].
    #[error("build faultfs config: threads {0} is outside 1..={max}", max = FaultConfig::MAX_THREADS)]
    Threads(usize),
    /// See [`FsyncFailure`].
    #[error("parse fsync-failure {0:?}: expected keep-dirty, ext4 or btrfs")]
    FsyncFailure(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(FaultConfig::builder().build(), Ok(FaultConfig::default()));
    }

    #[test]
    fn out_of_range_knobs_are_rejected() {
        assert_eq!(FaultConfig::builder().max_dirty_bytes_per_file(10).build(), Err(ConfigError::MaxDirty(10)));
        assert_eq!(FaultConfig::builder().sector_size(1000).build(), Err(ConfigError::SectorSize(1000)));
        assert_eq!(FaultConfig::builder().sector_size(256).build(), Err(ConfigError::SectorSize(256)));
        assert_eq!(FaultConfig::builder().threads(0).build(), Err(ConfigError::Threads(0)));
        assert_eq!(FaultConfig::builder().threads(65).build(), Err(ConfigError::Threads(65)));
    }

    #[test]
    fn fsync_failure_modes_round_trip() {
        for mode in [FsyncFailure::KeepDirty, FsyncFailure::Ext4, FsyncFailure::Btrfs] {
            assert_eq!(mode.to_string().parse::<FsyncFailure>(), Ok(mode));
        }
        assert_eq!("xfs".parse::<FsyncFailure>(), Ok(FsyncFailure::Ext4));
        assert_eq!("zfs".parse::<FsyncFailure>(), Err(ConfigError::FsyncFailure("zfs".into())));
    }
}
