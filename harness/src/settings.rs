//! The settings a scenario carries for each part of the engine: the
//! workload, the faults' knobs, the backups and the crash-state
//! exploration, as typed, range-checked values, and the parsers of their
//! units (durations, sizes). The scenario file ([`crate::scenario`]) is
//! made of these sections; the layers below the scenario (backups,
//! exploration, faults) take them without depending on the scenario.

use crate::text::one_line;
use crashlab_faultfs::{FaultRule, TornMode};
use crashlab_reports::Verdict;
use crashlab_workloads::Kind;
use serde::{Deserialize, Deserializer};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `[explore]`: the bounds of the `crash-states` fault's exploration (see
/// [`crate::explore`]). Every key is optional; the sample's seed derives
/// from the scenario's.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ExploreSection {
    /// Most distinct crash states checked per crash point; beyond it the
    /// prefix states take at most half (evenly spaced) and the rest is a
    /// seeded sample of the reorderings and torn writes. Default 16.
    #[serde(default = "default_max_states", deserialize_with = "max_states")]
    pub max_states: u32,
    /// Most operations of one epoch a reordered state drops (Chipmunk's
    /// `k`). Default 2.
    #[serde(default = "default_k", deserialize_with = "explore_k")]
    pub k: u32,
    /// Most split points per torn write; 0 explores no torn writes.
    /// Default 3.
    #[serde(default = "default_torn_splits", deserialize_with = "torn_splits")]
    pub torn_splits: u32,
    /// States checked at once, each in its own container. Default 1.
    #[serde(default = "default_parallel", deserialize_with = "explore_parallel")]
    pub parallel: u32,
    /// Where crash points are taken: `"end-of-load"` (the default: one
    /// point, once the load time is up) or a trigger of the fault
    /// filesystem (`"fsync"`, `"fsync:*.ibd"`, `"rename"`, see
    /// [`crashlab_faultfs::capture`]): points inside the load, at matching
    /// calls, when they arrive and before they take effect.
    #[serde(default, deserialize_with = "points")]
    pub points: Points,
    /// Most crash points per cycle with a trigger. Default 4.
    #[serde(default = "default_max_points", deserialize_with = "max_points")]
    pub max_points: u32,
    /// With a trigger: how the points are chosen among the candidate calls
    /// (see [`crashlab_faultfs::capture`]). `"load"` (the default): spread
    /// over the whole load, one per equal slice of it, preferring calls
    /// with more files and bytes unsynced. `"first"`: the first candidates,
    /// every `point-every`th.
    #[serde(default)]
    pub spread: Spread,
    /// With `spread = "first"`: capture every `point-every`th candidate
    /// call, after an offset seeded by the cycle. Default 1 (the first
    /// `max-points`).
    #[serde(default = "default_point_every", deserialize_with = "point_every")]
    pub point_every: u32,
}

/// How crash points inside the load are chosen among the candidate calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Spread {
    /// One point per equal slice of the load, preferring calls with more
    /// at stake.
    #[default]
    Load,
    /// The first candidates (every `point-every`th).
    First,
}

/// Where the `crash-states` fault takes its crash points.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Points {
    /// One point once the load time is up, as soon as something is unsynced.
    #[default]
    EndOfLoad,
    /// Points inside the load, at calls the trigger matches.
    At(crashlab_faultfs::Trigger),
}

impl std::fmt::Display for Points {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Points::EndOfLoad => f.write_str("end-of-load"),
            Points::At(t) => write!(f, "{t}"),
        }
    }
}

pub(crate) fn points<'de, D: Deserializer<'de>>(d: D) -> Result<Points, D::Error> {
    let s = String::deserialize(d)?;
    if s == "end-of-load" {
        return Ok(Points::EndOfLoad);
    }
    s.parse::<crashlab_faultfs::Trigger>().map(Points::At).map_err(|e| {
        serde::de::Error::custom(format!(
            "points takes `end-of-load` or a trigger like `fsync` or `fsync:*.ibd`: {}",
            e.to_string().trim_start_matches("parse fault rule: ")
        ))
    })
}

pub(crate) fn default_max_points() -> u32 {
    4
}

pub(crate) fn default_point_every() -> u32 {
    1
}

pub(crate) fn max_points<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    in_range(d, "max-points", 1, 64)
}

pub(crate) fn point_every<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    in_range(d, "point-every", 1, 1_000_000)
}

impl Default for ExploreSection {
    fn default() -> Self {
        ExploreSection {
            max_states: default_max_states(),
            k: default_k(),
            torn_splits: default_torn_splits(),
            parallel: default_parallel(),
            points: Points::EndOfLoad,
            max_points: default_max_points(),
            spread: Spread::Load,
            point_every: default_point_every(),
        }
    }
}

pub(crate) fn default_max_states() -> u32 {
    16
}

pub(crate) fn default_k() -> u32 {
    2
}

pub(crate) fn default_torn_splits() -> u32 {
    3
}

pub(crate) fn default_parallel() -> u32 {
    1
}

pub(crate) fn explore_parallel<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    in_range(d, "parallel", 1, 16)
}

pub(crate) fn max_states<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    in_range(d, "max-states", 1, 4096)
}

pub(crate) fn explore_k<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    in_range(d, "k", 0, 8)
}

pub(crate) fn torn_splits<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    in_range(d, "torn-splits", 0, 64)
}

/// `[backup]`: how the backup strategies (see [`crate::backup`]) take
/// their backups. Every key is optional.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BackupSection {
    /// Time between two backups during the load (`"2s"`); the first is
    /// taken one interval after the load starts.
    #[serde(default = "default_backup_interval", deserialize_with = "backup_interval")]
    pub interval: Duration,
    /// Completed backups the fault waits for: when the load time is up
    /// with fewer, backups go on (and the load with them) until there are
    /// this many, for at most [`BackupSection::min_backups_wait`]. A host
    /// lost before any backup completed measures nothing of the backup.
    /// `sync-agent`'s sidecar keeps its own time; the fault waits for its
    /// log to show as many.
    #[serde(default = "default_min_backups", deserialize_with = "min_backups")]
    pub min_backups: u32,
    /// Incompressible bytes written into the data directory beside the
    /// engine's files before the first cycle (`"1GiB"`), so that every
    /// backup has a dataset of at least that size to copy; default none.
    #[serde(default, deserialize_with = "ballast")]
    pub ballast: u64,
    /// `backup-quiesced`: `"engine"` asks the engine to hold still (MariaDB:
    /// `FLUSH TABLES WITH READ LOCK` for the copy) and pauses the container
    /// for engines that have no such command; `"pause"` always pauses.
    #[serde(default)]
    pub quiesce: QuiesceMode,
    /// `sync-agent`: the object store the sidecar uploads to, as an
    /// `object_store` URL (`s3://bucket/prefix`, `file:///srv/backups`); by
    /// default a directory under the run's state directory. Credentials
    /// come from the environment the sidecar is given (`sync-env`).
    #[serde(default, deserialize_with = "store")]
    pub store: Option<Store>,
    /// `KEY=VALUE` variables for the backup sidecars: the sync agent's
    /// and restic's (`AWS_REGION=...`, `RESTIC_PASSWORD=...`).
    #[serde(default, deserialize_with = "env_vars")]
    pub sync_env: Vec<String>,
    /// `backup-restic`: the repository, as restic names one: an absolute
    /// host directory (created if missing, bind-mounted into the restic
    /// containers) or any restic backend (`sftp:…`, `rest:…`, `s3:…`);
    /// by default a directory under the run's state directory.
    #[serde(default, deserialize_with = "repository")]
    pub repository: Option<Repository>,
    /// Where a restore after a host loss brings the data back to:
    /// `"latest"` (the default: all the backups hold), or a point in time,
    /// `"mid-load"` or a duration into the load (`"3s"`) — a point-in-time
    /// restore drill, judged against the ack log cut at that instant. Only
    /// methods with a log to replay to a point take it (the scenario
    /// refuses it for the others).
    #[serde(default, deserialize_with = "restore_to")]
    pub restore_to: RestoreTo,
}

/// `[backup] restore-to`: the point a restore brings the data back to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RestoreTo {
    /// Everything the backups hold: the latest backup, and the log
    /// archived after it where the method keeps one.
    #[default]
    Latest,
    /// Half the load's length into it.
    MidLoad,
    /// This long after the load began.
    After(Duration),
}

impl RestoreTo {
    /// How far into a load of `length` the restore aims; `None` for the
    /// latest.
    pub fn into_load(self, length: Duration) -> Option<Duration> {
        match self {
            RestoreTo::Latest => None,
            RestoreTo::MidLoad => Some(length / 2),
            RestoreTo::After(d) => Some(d),
        }
    }
}

impl std::fmt::Display for RestoreTo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RestoreTo::Latest => f.write_str("latest"),
            RestoreTo::MidLoad => f.write_str("mid-load"),
            RestoreTo::After(d) => write!(f, "{d:?}"),
        }
    }
}

impl std::str::FromStr for RestoreTo {
    type Err = String;

    fn from_str(s: &str) -> Result<RestoreTo, String> {
        match s.trim() {
            "latest" => Ok(RestoreTo::Latest),
            "mid-load" => Ok(RestoreTo::MidLoad),
            d if d.starts_with(|c: char| c.is_ascii_digit()) => parse_duration(d).map(RestoreTo::After),
            _ => Err(format!(
                "restore-to must be `latest`, `mid-load` or a duration into the load (`3s`), got `{}`",
                one_line(s)
            )),
        }
    }
}

pub(crate) fn restore_to<'de, D: Deserializer<'de>>(d: D) -> Result<RestoreTo, D::Error> {
    String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
}

/// Where `backup-restic` keeps its repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repository {
    /// A host directory, bind-mounted into the restic containers.
    Dir(PathBuf),
    /// A restic backend, given to restic as written.
    Backend(String),
}

impl std::fmt::Display for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Repository::Dir(dir) => write!(f, "{}", dir.display()),
            Repository::Backend(url) => f.write_str(url),
        }
    }
}

/// restic's backends other than a local directory, by their prefix.
const RESTIC_BACKENDS: [&str; 9] = ["sftp:", "rest:", "s3:", "b2:", "azure:", "gs:", "swift:", "rclone:", "local:"];

impl std::str::FromStr for Repository {
    type Err = String;

    fn from_str(repo: &str) -> Result<Repository, String> {
        if repo.starts_with('/') {
            return host_dir("repository", repo).map(Repository::Dir);
        }
        if repo.starts_with("local:") {
            return Err(format!(
                "repository `{}`: write a local repository as its absolute path, without `local:`",
                one_line(repo)
            ));
        }
        if RESTIC_BACKENDS.iter().any(|b| repo.starts_with(b) && repo.len() > b.len())
            && !repo.contains(char::is_whitespace)
        {
            return Ok(Repository::Backend(repo.to_owned()));
        }
        Err(format!(
            "repository `{}` is neither an absolute host directory nor a restic backend ({}…)",
            one_line(repo),
            RESTIC_BACKENDS[..8].join("…, ")
        ))
    }
}

pub(crate) fn repository<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Repository>, D::Error> {
    String::deserialize(d)?.parse().map(Some).map_err(serde::de::Error::custom)
}

impl BackupSection {
    /// How long past the load time the fault waits for
    /// [`BackupSection::min_backups`]: ten intervals, at least a minute.
    pub fn min_backups_wait(&self) -> Duration {
        (self.interval * 10).max(Duration::from_secs(60))
    }
}

impl Default for BackupSection {
    fn default() -> Self {
        BackupSection {
            interval: default_backup_interval(),
            min_backups: default_min_backups(),
            ballast: 0,
            quiesce: QuiesceMode::Engine,
            store: None,
            sync_env: vec![],
            repository: None,
            restore_to: RestoreTo::Latest,
        }
    }
}

/// Where the `sync-agent` sidecar keeps its backups: a `store` URL,
/// checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Store {
    /// `file:///DIR`: a directory on the host, created when missing and
    /// bind-mounted into the sync and restore sidecars.
    Dir(PathBuf),
    /// `s3://BUCKET[/PREFIX]`, passed to the sidecar as written; it needs
    /// an agent built with the `s3` feature, which only the sidecar can
    /// tell (it exits saying so).
    S3(String),
}

impl std::fmt::Display for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Store::Dir(dir) => write!(f, "file://{}", dir.display()),
            Store::S3(url) => f.write_str(url),
        }
    }
}

impl std::str::FromStr for Store {
    type Err = String;

    fn from_str(url: &str) -> Result<Store, String> {
        if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(format!(
                    "store `{}` needs an absolute path after file:// (three slashes, like `file:///srv/backups`)",
                    one_line(url)
                ));
            }
            if path.contains(['%', '?', '#']) {
                return Err(format!(
                    "store `{}`: write the directory plainly, without %-escapes, `?` or `#`",
                    one_line(url)
                ));
            }
            return host_dir("store", path).map(Store::Dir);
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let bucket = rest.split('/').next().unwrap_or_default();
            let bucket_ok = (3..=63).contains(&bucket.len())
                && bucket.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
            if !bucket_ok || rest.contains(char::is_whitespace) {
                return Err(format!(
                    "store `{}` needs a bucket name of 3-63 of [a-z0-9.-] after s3://, like `s3://backups/crashlab`",
                    one_line(url)
                ));
            }
            return Ok(Store::S3(url.to_owned()));
        }
        Err(format!("store `{}` is neither file:///DIR (a host directory) nor s3://BUCKET[/PREFIX]", one_line(url)))
    }
}

pub(crate) fn store<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Store>, D::Error> {
    String::deserialize(d)?.parse().map(Some).map_err(serde::de::Error::custom)
}

/// Checks a host directory that a key (`store`, `host-path`) names: an
/// absolute path without `..`, not the root, outside crashlab's state
/// directory (whose runs are removed), and a directory or creatable as
/// one (its nearest existing ancestor is a directory).
pub(crate) fn host_dir(key: &str, path: &str) -> Result<PathBuf, String> {
    use std::path::Component;
    let shown = one_line(path);
    let dir = Path::new(path);
    if !dir.is_absolute() {
        return Err(format!("{key} `{shown}` must be an absolute path"));
    }
    if dir.components().any(|c| c == Component::ParentDir) {
        return Err(format!("{key} `{shown}` must not contain `..`"));
    }
    if dir.parent().is_none() {
        return Err(format!("{key} `{shown}` is the root directory; give a directory for crashlab's files"));
    }
    if path.contains(|c: char| c.is_control()) {
        return Err(format!("{key} `{shown}` contains a control character"));
    }
    let state = crate::run::state_dir();
    let canonical = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_owned());
    if dir.starts_with(&state) || canonical(dir).starts_with(canonical(&state)) {
        return Err(format!(
            "{key} `{shown}` is inside crashlab's state directory {}, whose runs are removed; give a directory outside it",
            state.display()
        ));
    }
    let existing = dir.ancestors().find(|a| a.exists()).unwrap_or(Path::new("/"));
    if !existing.is_dir() {
        return Err(if existing == dir {
            format!("{key} `{shown}` is not a directory")
        } else {
            format!("{key} `{shown}` cannot be created: {} is not a directory", existing.display())
        });
    }
    Ok(dir.to_owned())
}

/// How `backup-quiesced` holds the workload still.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QuiesceMode {
    #[default]
    Engine,
    Pause,
}

pub(crate) fn default_backup_interval() -> Duration {
    Duration::from_secs(2)
}

pub(crate) fn default_min_backups() -> u32 {
    1
}

pub(crate) fn min_backups<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    in_range(d, "min-backups", 0, 100)
}

pub(crate) fn backup_interval<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    let interval = parse_duration(&s).map_err(serde::de::Error::custom)?;
    if interval < Duration::from_millis(200) {
        return Err(serde::de::Error::custom(format!("interval must be at least 200ms, got `{s}`")));
    }
    Ok(interval)
}

pub(crate) fn ballast<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let s = String::deserialize(d)?;
    let bytes = parse_size(&s).map_err(serde::de::Error::custom)?;
    if bytes > 64 << 30 {
        return Err(serde::de::Error::custom(format!("ballast must be at most 64GiB, got `{s}`")));
    }
    Ok(bytes)
}

/// `[faults]`: the knobs of the faults that run on the fault filesystem
/// (see [`crate::faults`]). Every key is optional.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FaultsSection {
    /// `disk-full`: bytes the workload may still write after its setup
    /// before every write fails with `ENOSPC` (`"16MiB"`); default 256KiB.
    #[serde(default = "default_disk_full_after", deserialize_with = "disk_full_after")]
    pub disk_full_after: u64,
    /// `io-error`: the fault filesystem's `eio` rule installed for the load,
    /// e.g. `"eio:fsync:50"` (the 50th fsync fails) or `"eio:write:200+"`.
    #[serde(default = "default_io_error", deserialize_with = "io_error_rule")]
    pub io_error: FaultRule,
    /// `torn-write`: which part of each file's last unsynced write survives
    /// the power cut, `"prefix"` or `"sectors"`.
    #[serde(default = "default_torn", deserialize_with = "torn_mode")]
    pub torn: TornMode,
    /// Whether a durable write on the fault filesystem also reaches the
    /// host's disk (`fsync` of the backing file). Off by default: the power
    /// cut is simulated, so the host's disk need not be durable, and fsync
    /// stays cheap. Turn it on where the host itself may lose power.
    #[serde(default)]
    pub fsync_reaches_disk: bool,
    /// `partition`, `partition-failover`: how long the replica stays cut
    /// off its primary while the load goes on (`"1s"`), 100ms–60s.
    #[serde(default = "default_partition", deserialize_with = "partition_length")]
    pub partition: Duration,
}

impl Default for FaultsSection {
    fn default() -> Self {
        FaultsSection {
            disk_full_after: default_disk_full_after(),
            io_error: default_io_error(),
            torn: default_torn(),
            fsync_reaches_disk: false,
            partition: default_partition(),
        }
    }
}

pub(crate) fn default_partition() -> Duration {
    Duration::from_secs(1)
}

pub(crate) fn partition_length<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    let length = parse_duration(&s).map_err(serde::de::Error::custom)?;
    if length < Duration::from_millis(100) || length > Duration::from_secs(60) {
        return Err(serde::de::Error::custom(format!("partition must be between 100ms and 60s, got `{s}`")));
    }
    Ok(length)
}

/// `[workload]`: which driver, which image, how hard to load it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct WorkloadSection {
    pub kind: WorkloadKind,
    /// Any local or registry image; defaults to the image crashlab builds.
    pub image: Option<String>,
    #[serde(default)]
    pub server_args: Vec<String>,
    #[serde(default = "default_clients", deserialize_with = "clients")]
    pub clients: u32,
    #[serde(default = "default_accounts", deserialize_with = "accounts")]
    pub accounts: u32,
    /// Length of the load phase of each cycle; the fault hits at its end,
    /// while the clients are still writing.
    #[serde(default = "default_load", deserialize_with = "duration")]
    pub load: Duration,
    /// How long a server may take to answer after start or recovery before
    /// the cycle is judged `corrupt`.
    #[serde(default = "default_ready_timeout", deserialize_with = "duration")]
    pub ready_timeout: Duration,
    /// Bring your own image: `KEY=VALUE` variables added to the container's.
    #[serde(default, deserialize_with = "env_vars")]
    pub env: Vec<String>,
    /// Replaces the container's command; `server-args` follow it.
    #[serde(default, deserialize_with = "command")]
    pub command: Option<Vec<String>>,
    /// Where the image keeps its data (an absolute path in the container).
    #[serde(default, deserialize_with = "data_dir")]
    pub data_dir: Option<String>,
    /// The port the server listens on in the container.
    #[serde(default, deserialize_with = "port")]
    pub port: Option<u16>,
    /// A line the server prints once ready, awaited after every start.
    #[serde(default, deserialize_with = "ready_log")]
    pub ready_log: Option<String>,
    /// The user the server runs as (`name|uid[:group|gid]`), instead of the
    /// image's.
    #[serde(default, deserialize_with = "user")]
    pub user: Option<String>,
    /// Host files or directories bound read-only into the container
    /// besides the data, `HOST:CONTAINER` (a configuration file).
    #[serde(default, deserialize_with = "binds")]
    pub binds: Vec<crashlab_workloads::HostBind>,
    /// Replaces the image's entrypoint; `[]` clears it.
    #[serde(default, deserialize_with = "entrypoint")]
    pub entrypoint: Option<Vec<String>>,
    /// The user's own check (kind `app` only): a command run after
    /// recovery in a container on the recovered data, its exit code the
    /// verdict.
    #[serde(default, deserialize_with = "check")]
    pub check: Option<Vec<String>>,
    /// How long the check may run before it is stopped and the cycle is
    /// `error`.
    #[serde(default = "default_check_timeout", deserialize_with = "duration")]
    pub check_timeout: Duration,
}

impl WorkloadSection {
    /// What the scenario changes about the workload's container.
    pub fn overrides(&self) -> crashlab_workloads::custom::ContainerOverrides {
        crashlab_workloads::custom::ContainerOverrides {
            env: self.env.clone(),
            command: self.command.clone(),
            server_args: self.server_args.clone(),
            data_dir: self.data_dir.clone(),
            port: self.port,
            ready_log: self.ready_log.clone(),
            user: self.user.clone(),
            binds: self.binds.clone(),
            entrypoint: self.entrypoint.clone(),
        }
    }
}

pub(crate) fn user<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let user = String::deserialize(d)?;
    let part_ok = |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    let ok = match user.split_once(':') {
        Some((name, group)) => part_ok(name) && part_ok(group),
        None => part_ok(&user),
    };
    if !ok {
        return Err(serde::de::Error::custom(format!(
            "user `{}` is not a user[:group] of names or ids",
            one_line(&user)
        )));
    }
    Ok(Some(user))
}

pub(crate) fn binds<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<crashlab_workloads::HostBind>, D::Error> {
    let mut out = Vec::new();
    for bind in Vec::<String>::deserialize(d)? {
        let parsed = bind.split_once(':').filter(|(host, target)| {
            [host, target].iter().all(|p| {
                p.starts_with('/')
                    && !p.trim_end_matches('/').is_empty()
                    && !p.split('/').any(|part| part == "..")
                    && !p.contains(|c: char| c.is_control() || c == ':')
            })
        });
        let Some((source, target)) = parsed else {
            return Err(serde::de::Error::custom(format!(
                "bind `{}` is not HOST:CONTAINER with both absolute paths below /, without `..`",
                one_line(&bind)
            )));
        };
        if !Path::new(source).exists() {
            return Err(serde::de::Error::custom(format!("bind `{}`: {source} does not exist", one_line(&bind))));
        }
        out.push(crashlab_workloads::HostBind { source: source.to_owned(), target: target.to_owned() });
    }
    Ok(out)
}

pub(crate) fn env_vars<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let vars = Vec::<String>::deserialize(d)?;
    for var in &vars {
        match var.split_once('=') {
            Some((key, _)) if !key.is_empty() && !key.contains(char::is_whitespace) => {}
            _ => return Err(serde::de::Error::custom(format!("`{var}` is not of the form KEY=VALUE"))),
        }
    }
    Ok(vars)
}

pub(crate) fn command<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    let command = Vec::<String>::deserialize(d)?;
    if command.is_empty() {
        return Err(serde::de::Error::custom("the command is empty; leave `command` out to keep the image's"));
    }
    Ok(Some(command))
}

pub(crate) fn entrypoint<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    Ok(Some(Vec::<String>::deserialize(d)?))
}

pub(crate) fn check<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    let check = Vec::<String>::deserialize(d)?;
    if check.is_empty() {
        return Err(serde::de::Error::custom("the check is empty: give the command to run, as a list of strings"));
    }
    Ok(Some(check))
}

pub(crate) fn data_dir<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let dir = String::deserialize(d)?;
    let fail = |why: &str| Err(serde::de::Error::custom(format!("data-dir {why}, got `{}`", one_line(&dir))));
    if !dir.starts_with('/') || dir.trim_end_matches('/').is_empty() {
        return fail("must be an absolute path below / in the container");
    }
    if dir.split('/').any(|part| part == "..") {
        return fail("must not contain `..`");
    }
    if dir.contains(|c: char| c.is_control()) {
        return fail("must not contain control characters");
    }
    Ok(Some(dir))
}

pub(crate) fn port<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    in_range(d, "port", 1, 65535).map(|p| Some(p as u16))
}

pub(crate) fn ready_log<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let line = String::deserialize(d)?;
    if line.trim().is_empty() {
        return Err(serde::de::Error::custom("ready-log is empty"));
    }
    Ok(Some(line))
}

/// `[workload] kind`: one of the workloads crate's
/// [`crashlab_workloads::KINDS`], by name. What the workload is and can do
/// it says itself ([`Kind::workload`]); nothing matches on the kind.
#[derive(Clone, Copy)]
pub struct WorkloadKind(&'static Kind);

/// The kinds' names, in the order of [`crashlab_workloads::KINDS`], for
/// the error that names an unknown one.
const KIND_NAMES: [&str; crashlab_workloads::KINDS.len()] = {
    let mut names = [""; crashlab_workloads::KINDS.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = crashlab_workloads::KINDS[i].name;
        i += 1;
    }
    names
};

impl WorkloadKind {
    /// The kind a scenario names `name`.
    pub fn named(name: &str) -> Option<WorkloadKind> {
        crashlab_workloads::KINDS.iter().find(|k| k.name == name).map(|k| WorkloadKind(k))
    }

    /// Every kind, in the order messages list them.
    pub fn all() -> impl Iterator<Item = WorkloadKind> {
        crashlab_workloads::KINDS.iter().map(|k| WorkloadKind(k))
    }

    /// Every kind's name, as a message lists them: `a, b or c`.
    pub fn list() -> String {
        match KIND_NAMES.split_last() {
            Some((last, [])) => (*last).to_owned(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        }
    }

    pub fn as_str(self) -> &'static str {
        self.0.name
    }

    /// Its name and how to build it.
    pub fn def(self) -> &'static Kind {
        self.0
    }
}

impl PartialEq for WorkloadKind {
    fn eq(&self, other: &WorkloadKind) -> bool {
        self.0.name == other.0.name
    }
}

impl Eq for WorkloadKind {}

impl std::fmt::Debug for WorkloadKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.name)
    }
}

impl<'de> Deserialize<'de> for WorkloadKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        WorkloadKind::named(&name).ok_or_else(|| serde::de::Error::unknown_variant(&name, &KIND_NAMES))
    }
}

/// Parses durations such as `500ms`, `3s`, `1.5s`, `2m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration `{s}`: expected a number and a unit, like `3s` or `500ms`"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "s" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        "" => return Err(format!("invalid duration `{s}`: missing unit (ms, s, m or h)")),
        other => return Err(format!("invalid duration `{s}`: unknown unit `{other}` (ms, s, m or h)")),
    };
    if !(seconds.is_finite() && seconds > 0.0 && seconds <= 86_400.0) {
        return Err(format!("invalid duration `{s}`: must be above zero and at most a day"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Parses byte sizes such as `16MiB`, `512KiB`, `1GiB` or `4096B`. The
/// unit is required and binary, so `16MB` is refused rather than guessed.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: u64 =
        number.parse().map_err(|_| format!("invalid size `{s}`: expected a whole number and a unit, like `16MiB`"))?;
    let multiplier: u64 = match unit.trim() {
        "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "" => return Err(format!("invalid size `{s}`: missing unit (B, KiB, MiB or GiB)")),
        other => return Err(format!("invalid size `{s}`: unknown unit `{other}` (B, KiB, MiB or GiB)")),
    };
    value.checked_mul(multiplier).ok_or_else(|| format!("invalid size `{s}`: too large"))
}

pub(crate) fn disk_full_after<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    const MIN: u64 = 4 << 10;
    const MAX: u64 = 64 << 30;
    let s = String::deserialize(d)?;
    let bytes = parse_size(&s).map_err(serde::de::Error::custom)?;
    if !(MIN..=MAX).contains(&bytes) {
        return Err(serde::de::Error::custom(format!("disk-full-after must be between 4KiB and 64GiB, got `{s}`")));
    }
    Ok(bytes)
}

pub(crate) fn io_error_rule<'de, D: Deserializer<'de>>(d: D) -> Result<FaultRule, D::Error> {
    let s = String::deserialize(d)?;
    match s.parse::<FaultRule>() {
        Ok(rule @ FaultRule::IoError { .. }) => Ok(rule),
        Ok(other) => Err(serde::de::Error::custom(format!(
            "io-error takes an `eio:<op>:<n>` rule (like `eio:fsync:50`), got `{other}`"
        ))),
        Err(e) => Err(serde::de::Error::custom(e)),
    }
}

pub(crate) fn torn_mode<'de, D: Deserializer<'de>>(d: D) -> Result<TornMode, D::Error> {
    match String::deserialize(d)?.as_str() {
        "prefix" => Ok(TornMode::Prefix),
        "sectors" => Ok(TornMode::Sectors),
        other => Err(serde::de::Error::custom(format!("unknown torn mode `{other}`, expected `prefix` or `sectors`"))),
    }
}

pub(crate) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map_err(serde::de::Error::custom)
}

pub(crate) fn in_range<'de, D: Deserializer<'de>>(d: D, what: &str, min: u32, max: u32) -> Result<u32, D::Error> {
    let n = i64::deserialize(d)?;
    if n < i64::from(min) || n > i64::from(max) {
        return Err(serde::de::Error::custom(format!("{what} must be between {min} and {max}, got {n}")));
    }
    Ok(n as u32)
}

pub(crate) fn clients<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    in_range(d, "clients", 1, 256)
}

pub(crate) fn accounts<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    in_range(d, "accounts", 2, 1_000_000)
}

pub(crate) fn cycles<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    in_range(d, "cycles", 1, 10_000)
}

pub(crate) fn cpus<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let cpus = f64::deserialize(d)?;
    // Docker counts CPUs in billionths; below a hundredth a server barely runs.
    if !(0.01..=1024.0).contains(&cpus) {
        return Err(serde::de::Error::custom(format!("cpus must be between 0.01 and 1024, got {cpus}")));
    }
    Ok(Some(cpus))
}

pub(crate) fn memory<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    const MIN: u64 = 32 << 20;
    let s = String::deserialize(d)?;
    let bytes = parse_size(&s).map_err(serde::de::Error::custom)?;
    if bytes < MIN {
        return Err(serde::de::Error::custom(format!("memory must be at least 32MiB, got `{s}`")));
    }
    Ok(Some(bytes))
}

pub(crate) fn non_empty_unique<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + PartialEq + std::fmt::Debug,
{
    let items = Vec::<T>::deserialize(d)?;
    if items.is_empty() {
        return Err(serde::de::Error::custom("the list is empty"));
    }
    for (i, item) in items.iter().enumerate() {
        if items[..i].contains(item) {
            return Err(serde::de::Error::custom(format!("{item:?} is listed twice")));
        }
    }
    Ok(items)
}

pub(crate) fn expected_verdict<'de, D: Deserializer<'de>>(d: D) -> Result<Verdict, D::Error> {
    let s = String::deserialize(d)?;
    match s.parse::<Verdict>() {
        Ok(Verdict::Error) => Err(serde::de::Error::custom(
            "`error` cannot be expected: a cell the harness could not complete never passes",
        )),
        Ok(v) => Ok(v),
        Err(e) => Err(serde::de::Error::custom(e)),
    }
}

pub(crate) fn default_seed() -> u64 {
    42
}
pub(crate) fn default_clients() -> u32 {
    4
}
pub(crate) fn default_accounts() -> u32 {
    100
}
pub(crate) fn default_load() -> Duration {
    Duration::from_secs(3)
}
pub(crate) fn default_ready_timeout() -> Duration {
    Duration::from_secs(60)
}
pub(crate) fn default_check_timeout() -> Duration {
    Duration::from_secs(60)
}
pub(crate) fn default_cycles() -> u32 {
    1
}
pub(crate) fn default_disk_full_after() -> u64 {
    // MariaDB's bank transfers wrote about 1.7 MiB a second on an idle
    // machine here, but under load (CI, parallel cells) 2 s of load wrote
    // only 551 KiB: a budget the load never spends is a fault that did not
    // fire, so the default is one a slow load still reaches.
    256 << 10
}
pub(crate) fn default_io_error() -> FaultRule {
    FaultRule::IoError { op: crashlab_faultfs::OpKind::Fsync, nth: 50, sticky: false, path: None }
}
pub(crate) fn default_torn() -> TornMode {
    TornMode::Prefix
}
