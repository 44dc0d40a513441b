//! Scenarios: what to run, read from TOML, and the plan of cells they
//! expand to.
//!
//! Keys are kebab-case. An unknown key or a bad value is an error that names
//! the file, the line and the key; nothing is guessed. See
//! `scenarios/smoke.toml` for a complete example, `docs/scenarios.md` for
//! every key and `docs/design.md` for the contract.

use crate::faults::Fault;
use crate::storage::Strategy;
use crashlab_faultfs::{FaultRule, TornMode};
use crashlab_reports::{Unsupported, Verdict};
use crashlab_workloads::Kind;
use serde::{Deserialize, Deserializer};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The smoke scenario, built in so that `crashlab run` works from any
/// directory.
pub const SMOKE: &str = include_str!("../../scenarios/smoke.toml");

/// A scenario that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("read scenario {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `location` is `file:line:column`; `message` names the key.
    #[error("{location}: {message}")]
    Invalid { location: String, message: String },
}

/// A parsed, validated scenario.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Scenario {
    pub name: String,
    /// Same seed, same plan: every random choice derives from it.
    #[serde(default = "default_seed")]
    pub seed: u64,
    pub workload: WorkloadSection,
    pub matrix: Matrix,
    #[serde(default)]
    pub faults: FaultsSection,
    #[serde(default)]
    pub backup: BackupSection,
    #[serde(default)]
    pub explore: ExploreSection,
    #[serde(default)]
    pub expect: Vec<Expectation>,
}

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
    /// With a trigger: capture every `point-every`th candidate call, after
    /// an offset seeded by the cycle, so that points spread over a load
    /// with many candidates. Default 1 (the first `max-points`).
    #[serde(default = "default_point_every", deserialize_with = "point_every")]
    pub point_every: u32,
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

fn points<'de, D: Deserializer<'de>>(d: D) -> Result<Points, D::Error> {
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

fn default_max_points() -> u32 {
    4
}

fn default_point_every() -> u32 {
    1
}

fn max_points<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    in_range(d, "max-points", 1, 64)
}

fn point_every<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
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
            point_every: default_point_every(),
        }
    }
}

fn default_max_states() -> u32 {
    16
}

fn default_k() -> u32 {
    2
}

fn default_torn_splits() -> u32 {
    3
}

fn default_parallel() -> u32 {
    1
}

fn explore_parallel<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    in_range(d, "parallel", 1, 16)
}

fn max_states<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    in_range(d, "max-states", 1, 4096)
}

fn explore_k<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    in_range(d, "k", 0, 8)
}

fn torn_splits<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
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

fn repository<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Repository>, D::Error> {
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

fn store<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Store>, D::Error> {
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

fn default_backup_interval() -> Duration {
    Duration::from_secs(2)
}

fn default_min_backups() -> u32 {
    1
}

fn min_backups<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    in_range(d, "min-backups", 0, 100)
}

fn backup_interval<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    let interval = parse_duration(&s).map_err(serde::de::Error::custom)?;
    if interval < Duration::from_millis(200) {
        return Err(serde::de::Error::custom(format!("interval must be at least 200ms, got `{s}`")));
    }
    Ok(interval)
}

fn ballast<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
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

fn default_partition() -> Duration {
    Duration::from_secs(1)
}

fn partition_length<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
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
        }
    }
}

fn user<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
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

fn binds<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<crashlab_workloads::HostBind>, D::Error> {
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

fn env_vars<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let vars = Vec::<String>::deserialize(d)?;
    for var in &vars {
        match var.split_once('=') {
            Some((key, _)) if !key.is_empty() && !key.contains(char::is_whitespace) => {}
            _ => return Err(serde::de::Error::custom(format!("`{var}` is not of the form KEY=VALUE"))),
        }
    }
    Ok(vars)
}

fn command<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    let command = Vec::<String>::deserialize(d)?;
    if command.is_empty() {
        return Err(serde::de::Error::custom("the command is empty; leave `command` out to keep the image's"));
    }
    Ok(Some(command))
}

fn data_dir<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
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

fn port<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    in_range(d, "port", 1, 65535).map(|p| Some(p as u16))
}

fn ready_log<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
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

/// `[matrix]`: strategies × faults, each cell run `cycles` times.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Matrix {
    #[serde(deserialize_with = "non_empty_unique")]
    pub strategies: Vec<Strategy>,
    #[serde(deserialize_with = "non_empty_unique")]
    pub faults: Vec<Fault>,
    #[serde(default = "default_cycles", deserialize_with = "cycles")]
    pub cycles: u32,
    /// CPUs each cell's workload container may use (Docker's `--cpus`),
    /// so that cells run side by side (`--jobs`) do not distort each
    /// other's throughput; unlimited when absent.
    #[serde(default, deserialize_with = "cpus")]
    pub cpus: Option<f64>,
    /// Memory each cell's workload container may use (`--memory`), e.g.
    /// `"1GiB"`; unlimited when absent.
    #[serde(default, deserialize_with = "memory")]
    pub memory: Option<u64>,
}

/// `[[expect]]`: the verdict a cell may reach at worst. Later entries
/// override earlier ones; cells no entry matches expect `intact`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Expectation {
    #[serde(default)]
    pub strategy: Pattern<Strategy>,
    #[serde(default)]
    pub fault: Pattern<Fault>,
    #[serde(deserialize_with = "expected_verdict")]
    pub verdict: Verdict,
}

/// `"*"` or one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pattern<T> {
    #[default]
    Any,
    Is(T),
}

impl<T: PartialEq> Pattern<T> {
    pub fn matches(&self, value: &T) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Is(v) => v == value,
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Pattern<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s == "*" {
            return Ok(Pattern::Any);
        }
        T::deserialize(serde::de::value::StrDeserializer::<D::Error>::new(&s)).map(Pattern::Is)
    }
}

/// One (workload, strategy, fault) of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    pub index: usize,
    pub strategy: Strategy,
    pub fault: Fault,
    pub expected: Verdict,
}

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ScenarioError::Read { path: path.to_owned(), source })?;
        Scenario::parse(&text, &path.display().to_string())
    }

    /// Parses scenario text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Scenario, ScenarioError> {
        let scenario: Scenario = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map_or((1, 1), |s| line_column(text, s.start));
            ScenarioError::Invalid { location: format!("{origin}:{line}:{column}"), message: toml_message(text, &e) }
        })?;
        if let Some(Store::S3(url)) = &scenario.backup.store
            && scenario.matrix.strategies.contains(&Strategy::SyncAgent)
            && let Ok(agent) = crate::run::agent::locate()
            && let Ok(false) = crate::run::agent::has_s3(&agent)
        {
            let (line, column) = line_column(text, key_offset(text, "backup", "store").unwrap_or(0));
            return Err(ScenarioError::Invalid {
                location: format!("{origin}:{line}:{column}"),
                message: format!(
                    "store `{}` needs a crashlab-agent built with S3, and {} has file stores only \
                     (build it with `cargo build --release -p crashlab-agent --features s3`)",
                    one_line(url),
                    agent.display()
                ),
            });
        }
        Ok(scenario)
    }

    /// The cells to run, in run order, and the planned pairs that are not
    /// run because the strategy cannot take the fault (see
    /// [`Fault::unsupported_on`]). Cells keep their index in [`Self::cells`],
    /// so seeds and names do not depend on what is left out.
    pub fn plan(&self) -> (Vec<Cell>, Vec<Unsupported>) {
        let mut run = Vec::new();
        let mut unsupported = Vec::new();
        let replicates = self.workload.kind.def().workload().replication().is_some();
        for cell in self.cells() {
            let no_replica = (cell.strategy.def().data_on.replication().is_some() && !replicates)
                .then_some("crashlab drives replicas of MariaDB and PostgreSQL only; this workload has none");
            match no_replica.or_else(|| cell.fault.unsupported_on(cell.strategy)) {
                None => run.push(cell),
                Some(reason) => unsupported.push(Unsupported {
                    workload: self.workload.kind.as_str().to_owned(),
                    strategy: cell.strategy.to_string(),
                    fault: cell.fault.to_string(),
                    reason: reason.to_owned(),
                }),
            }
        }
        (run, unsupported)
    }

    /// Every planned cell in order, strategies outer, faults inner, each
    /// with its expectation, including those [`Self::plan`] leaves out.
    pub fn cells(&self) -> Vec<Cell> {
        let mut cells = Vec::new();
        for &strategy in &self.matrix.strategies {
            for &fault in &self.matrix.faults {
                cells.push(Cell { index: cells.len(), strategy, fault, expected: self.expected(strategy, fault) });
            }
        }
        cells
    }

    /// The verdict expected of a cell: the last matching `[[expect]]`, or
    /// `intact`.
    pub fn expected(&self, strategy: Strategy, fault: Fault) -> Verdict {
        self.expect
            .iter()
            .rev()
            .find(|e| e.strategy.matches(&strategy) && e.fault.matches(&fault))
            .map_or(Verdict::Intact, |e| e.verdict)
    }
}

/// Where `key = ...` is written in `[table]`, for errors found after
/// parsing.
fn key_offset(text: &str, table: &str, key: &str) -> Option<usize> {
    let mut offset = 0;
    let mut current = "";
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            current = trimmed.trim_matches(|c| c == '[' || c == ']').trim();
        } else if current == table
            && let Some(rest) = trimmed.strip_prefix(key)
            && rest.trim_start().starts_with('=')
        {
            return Some(offset + line.len() - line.trim_start().len());
        }
        offset += line.len();
    }
    None
}

/// The 1-based line and column (in bytes) of `offset` in `text`.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..floor_boundary(text, offset)];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

fn floor_boundary(text: &str, offset: usize) -> usize {
    let mut at = offset.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// The message of a TOML error as one line that names what it is about:
/// the key whose value is wrong when the message does not already say it
/// (`invalid type: integer `1`, expected a string, for key `name``), or
/// else the text the parser stopped at.
pub(crate) fn toml_message(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim_end();
    let mut out = message.to_owned();
    if let Some(span) = e.span() {
        let start = floor_boundary(text, span.start);
        match key_of_value_at(text, start) {
            Some(key) if !(message.contains(&format!("`{key}`")) || message.starts_with(&format!("{key} "))) => {
                out.push_str(&format!(", for key `{key}`"));
            }
            Some(_) => {}
            None if message.contains('`') => {}
            None => match text[start..].chars().next() {
                None => out.push_str(" at the end of the file"),
                Some(first) => {
                    let end = floor_boundary(text, span.end).max(start + first.len_utf8());
                    let token: String = text[start..end].chars().take(24).collect();
                    out.push_str(&format!(" at `{token}`"));
                }
            },
        }
    }
    one_line(&out)
}

/// The bare key that opens the line of `offset` (`clients` of `clients =
/// 0`), when `offset` lies in that key's value.
fn key_of_value_at(text: &str, offset: usize) -> Option<&str> {
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let before = &text[line_start..offset];
    let trimmed = before.trim_start();
    let key_len = trimmed.find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))?;
    let (key, rest) = trimmed.split_at(key_len);
    (!key.is_empty() && rest.trim_start().starts_with('=')).then_some(key)
}

/// `text` with control characters (a newline inside a TOML string, say)
/// escaped, so that an error quoting it stays one line.
pub fn one_line(text: &str) -> String {
    text.chars().fold(String::with_capacity(text.len()), |mut out, c| {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
        out
    })
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

fn disk_full_after<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    const MIN: u64 = 4 << 10;
    const MAX: u64 = 64 << 30;
    let s = String::deserialize(d)?;
    let bytes = parse_size(&s).map_err(serde::de::Error::custom)?;
    if !(MIN..=MAX).contains(&bytes) {
        return Err(serde::de::Error::custom(format!("disk-full-after must be between 4KiB and 64GiB, got `{s}`")));
    }
    Ok(bytes)
}

fn io_error_rule<'de, D: Deserializer<'de>>(d: D) -> Result<FaultRule, D::Error> {
    let s = String::deserialize(d)?;
    match s.parse::<FaultRule>() {
        Ok(rule @ FaultRule::IoError { .. }) => Ok(rule),
        Ok(other) => Err(serde::de::Error::custom(format!(
            "io-error takes an `eio:<op>:<n>` rule (like `eio:fsync:50`), got `{other}`"
        ))),
        Err(e) => Err(serde::de::Error::custom(e)),
    }
}

fn torn_mode<'de, D: Deserializer<'de>>(d: D) -> Result<TornMode, D::Error> {
    match String::deserialize(d)?.as_str() {
        "prefix" => Ok(TornMode::Prefix),
        "sectors" => Ok(TornMode::Sectors),
        other => Err(serde::de::Error::custom(format!("unknown torn mode `{other}`, expected `prefix` or `sectors`"))),
    }
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map_err(serde::de::Error::custom)
}

fn in_range<'de, D: Deserializer<'de>>(d: D, what: &str, min: u32, max: u32) -> Result<u32, D::Error> {
    let n = i64::deserialize(d)?;
    if n < i64::from(min) || n > i64::from(max) {
        return Err(serde::de::Error::custom(format!("{what} must be between {min} and {max}, got {n}")));
    }
    Ok(n as u32)
}

fn clients<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    in_range(d, "clients", 1, 256)
}

fn accounts<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    in_range(d, "accounts", 2, 1_000_000)
}

fn cycles<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    in_range(d, "cycles", 1, 10_000)
}

fn cpus<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let cpus = f64::deserialize(d)?;
    // Docker counts CPUs in billionths; below a hundredth a server barely runs.
    if !(0.01..=1024.0).contains(&cpus) {
        return Err(serde::de::Error::custom(format!("cpus must be between 0.01 and 1024, got {cpus}")));
    }
    Ok(Some(cpus))
}

fn memory<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    const MIN: u64 = 32 << 20;
    let s = String::deserialize(d)?;
    let bytes = parse_size(&s).map_err(serde::de::Error::custom)?;
    if bytes < MIN {
        return Err(serde::de::Error::custom(format!("memory must be at least 32MiB, got `{s}`")));
    }
    Ok(Some(bytes))
}

fn non_empty_unique<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
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

fn expected_verdict<'de, D: Deserializer<'de>>(d: D) -> Result<Verdict, D::Error> {
    let s = String::deserialize(d)?;
    match s.parse::<Verdict>() {
        Ok(Verdict::Error) => Err(serde::de::Error::custom(
            "`error` cannot be expected: a cell the harness could not complete never passes",
        )),
        Ok(v) => Ok(v),
        Err(e) => Err(serde::de::Error::custom(e)),
    }
}

fn default_seed() -> u64 {
    42
}
fn default_clients() -> u32 {
    4
}
fn default_accounts() -> u32 {
    100
}
fn default_load() -> Duration {
    Duration::from_secs(3)
}
fn default_ready_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_cycles() -> u32 {
    1
}
fn default_disk_full_after() -> u64 {
    // MariaDB's bank transfers wrote about 1.7 MiB a second on an idle
    // machine here, but under load (CI, parallel cells) 2 s of load wrote
    // only 551 KiB: a budget the load never spends is a fault that did not
    // fire, so the default is one a slow load still reaches.
    256 << 10
}
fn default_io_error() -> FaultRule {
    FaultRule::IoError { op: crashlab_faultfs::OpKind::Fsync, nth: 50, sticky: false, path: None }
}
fn default_torn() -> TornMode {
    TornMode::Prefix
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
name = "t"
[workload]
kind = "mariadb"
[matrix]
strategies = ["named-volume"]
faults = ["restart"]
"#;

    fn error_of(text: &str) -> String {
        Scenario::parse(text, "s.toml").unwrap_err().to_string()
    }

    #[test]
    fn smoke_parses_and_expands_to_fifteen_cells() {
        let s = Scenario::parse(SMOKE, "smoke.toml").unwrap();
        assert_eq!(s.name, "smoke");
        assert_eq!(s.cells().len(), 15);
        assert_eq!(s.matrix.cycles, 2);
        assert_eq!(s.expected(Strategy::Tmpfs, Fault::Restart), Verdict::DataGone);
        assert_eq!(s.expected(Strategy::NamedVolume, Fault::Recreate), Verdict::Intact);
        assert_eq!(s.expected(Strategy::ContainerLayer, Fault::Recreate), Verdict::DataGone);
        assert_eq!(s.expected(Strategy::ContainerLayer, Fault::ProcessKill), Verdict::Intact);
    }

    #[test]
    fn power_loss_runs_fourteen_cells_and_reports_eleven_as_unsupported() {
        let text = include_str!("../../scenarios/power-loss.toml");
        let s = Scenario::parse(text, "power-loss.toml").unwrap();
        let (run, unsupported) = s.plan();
        assert_eq!((run.len(), unsupported.len()), (14, 11));
        assert_eq!(s.faults.disk_full_after, 256 << 10);
        assert_eq!(s.expected(Strategy::Tmpfs, Fault::HostKill), Verdict::DataGone);
        assert_eq!(s.expected(Strategy::NamedVolume, Fault::TornWrite), Verdict::Intact);
        assert!(run.iter().any(|c| (c.strategy, c.fault) == (Strategy::Tmpfs, Fault::HostKill)));
    }

    #[test]
    fn defaults_fill_what_is_left_out() {
        let s = Scenario::parse(MINIMAL, "m.toml").unwrap();
        assert_eq!(s.seed, 42);
        assert_eq!(s.workload.clients, 4);
        assert_eq!(s.workload.load, Duration::from_secs(3));
        assert_eq!(s.matrix.cycles, 1);
        assert_eq!(s.cells()[0].expected, Verdict::Intact);
    }

    #[test]
    fn bad_input_names_the_key_and_line() {
        let cases: &[(&str, &str, &str)] = &[
            // (replace this, with this, expect the error to contain)
            ("kind = \"mariadb\"", "kind = \"mariadb\"\nclinets = 3", "s.toml:5:1: unknown field `clinets`"),
            ("kind = \"mariadb\"", "kind = \"oracle\"", "s.toml:4:8: unknown variant `oracle`"),
            ("[\"restart\"]", "[\"reboot\"]", "s.toml:7:11: unknown variant `reboot`"),
            ("[\"named-volume\"]", "[\"nfs\"]", "s.toml:6:15: unknown variant `nfs`"),
            ("[\"restart\"]", "[]", "s.toml:7:10: the list is empty"),
            ("[\"restart\"]", "[\"restart\", \"restart\"]", "Restart is listed twice"),
            (
                "kind = \"mariadb\"",
                "kind = \"mariadb\"\nload = \"3\"",
                "s.toml:5:8: invalid duration `3`: missing unit",
            ),
            ("kind = \"mariadb\"", "kind = \"mariadb\"\nload = \"3 parsecs\"", "unknown unit `parsecs`"),
            (
                "kind = \"mariadb\"",
                "kind = \"mariadb\"\nclients = 0",
                "s.toml:5:11: clients must be between 1 and 256, got 0",
            ),
            (
                "name = \"t\"",
                "name = \"t\"\nseed = \"x\"",
                "s.toml:3:8: invalid type: string \"x\", expected u64, for key `seed`",
            ),
            (
                "name = \"t\"",
                "name = \"t\"\nseed = 1 2",
                "s.toml:3:8: string values must be quoted, expected literal string, for key `seed`",
            ),
            ("[matrix]", "[matrix", "s.toml:5:8: unclosed table"),
            ("name = \"t\"", "name = \"t\"\nseed =", "s.toml:3:7: string values must be quoted"),
            ("[\"restart\"]", "[\"re\\nstart\"]", "s.toml:7:11: unknown variant `re\\nstart`"),
            ("name = \"t\"\n", "", "missing field `name`"),
        ];
        for (from, to, expected) in cases {
            assert!(MINIMAL.contains(from), "bad test case: {from}");
            let err = error_of(&MINIMAL.replacen(from, to, 1));
            assert!(err.contains(expected), "for {to:?}: got {err:?}, wanted {expected:?}");
        }
    }

    #[test]
    fn expectations_reject_unknown_verdicts_and_error() {
        let with = |v: &str| format!("{MINIMAL}\n[[expect]]\nstrategy = \"*\"\nfault = \"*\"\nverdict = \"{v}\"\n");
        assert!(error_of(&with("fine")).contains("s.toml:12:11: unknown verdict `fine`"));
        assert!(error_of(&with("error")).contains("cannot be expected"));
        let s = Scenario::parse(&with("lost-writes"), "s.toml").unwrap();
        assert_eq!(s.cells()[0].expected, Verdict::LostWrites);
    }

    #[test]
    fn bring_your_own_image_keys() {
        let with = |extra: &str| MINIMAL.replacen("kind = \"mariadb\"", &format!("kind = \"mariadb\"\n{extra}"), 1);
        let s = Scenario::parse(
            &with(
                "image = \"mariadb:11\"\nenv = [\"MARIADB_ROOT_PASSWORD=crashlab\"]\ncommand = [\"mariadbd\"]\n\
                 data-dir = \"/data\"\nport = 3307\nready-log = \"ready for connections\"",
            ),
            "s.toml",
        )
        .unwrap();
        let o = s.workload.overrides();
        assert_eq!(o.command.as_deref(), Some(&["mariadbd".to_owned()][..]));
        assert_eq!((o.data_dir.as_deref(), o.port), (Some("/data"), Some(3307)));
        assert!(!o.is_empty());
        assert!(Scenario::parse(MINIMAL, "s.toml").unwrap().workload.overrides().is_empty());
        let s = Scenario::parse(&with("user = \"mysql:999\"\nbinds = [\"/etc/hostname:/etc/mysql/x.cnf\"]"), "s.toml")
            .unwrap();
        let o = s.workload.overrides();
        assert_eq!(o.user.as_deref(), Some("mysql:999"));
        assert_eq!(o.binds[0].source, "/etc/hostname");
        assert_eq!(o.binds[0].target, "/etc/mysql/x.cnf");
        let cases = [
            ("env = [\"NOEQUALS\"]", "s.toml:5:7: `NOEQUALS` is not of the form KEY=VALUE"),
            ("command = []", "s.toml:5:11: the command is empty"),
            ("data-dir = \"data\"", "s.toml:5:12: data-dir must be an absolute path"),
            ("data-dir = \"/\"", "s.toml:5:12: data-dir must be an absolute path below /"),
            ("data-dir = \"/var/../etc\"", "s.toml:5:12: data-dir must not contain `..`, got `/var/../etc`"),
            ("data-dir = \"/a\\nb\"", "s.toml:5:12: data-dir must not contain control characters, got `/a\\nb`"),
            ("port = 70000", "s.toml:5:8: port must be between 1 and 65535, got 70000"),
            ("ready-log = \" \"", "s.toml:5:13: ready-log is empty"),
            ("user = \"a b\"", "s.toml:5:8: user `a b` is not a user[:group]"),
            ("user = \"a:\"", "s.toml:5:8: user `a:` is not a user[:group]"),
            ("binds = [\"x.cnf:/etc/x.cnf\"]", "s.toml:5:9: bind `x.cnf:/etc/x.cnf` is not HOST:CONTAINER"),
            ("binds = [\"/etc/hostname\"]", "s.toml:5:9: bind `/etc/hostname` is not HOST:CONTAINER"),
            (
                "binds = [\"/nonexistent-x:/etc/x\"]",
                "s.toml:5:9: bind `/nonexistent-x:/etc/x`: /nonexistent-x does not exist",
            ),
        ];
        for (extra, expected) in cases {
            let err = error_of(&with(extra));
            assert!(err.contains(expected), "for {extra:?}: got {err:?}, wanted {expected:?}");
        }
    }

    #[test]
    fn store_urls_are_a_host_directory_or_s3() {
        let dir = tempfile::tempdir().unwrap();
        let with = |url: &str| format!("{MINIMAL}[backup]\nstore = \"{url}\"\n");
        let store_of = |url: &str| Scenario::parse(&with(url), "s.toml").map(|s| s.backup.store.unwrap());
        let fresh = dir.path().join("new/store");
        let url = format!("file://{}", fresh.display());
        assert_eq!(store_of(&url).unwrap(), Store::Dir(fresh.clone()), "a missing directory is created at run time");
        assert_eq!(store_of(&url).unwrap().to_string(), url);
        assert_eq!(store_of("s3://backups/crashlab").unwrap(), Store::S3("s3://backups/crashlab".into()));
        assert_eq!(key_offset(&with("s3://b/p"), "backup", "store"), with("s3://b/p").find("store"));
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        let state = crate::run::state_dir();
        let bad = [
            (
                "file://srv/backups".to_owned(),
                "s.toml:9:9: store `file://srv/backups` needs an absolute path after file://",
            ),
            ("file:///".to_owned(), "store `/` is the root directory"),
            ("file:///srv/../etc".to_owned(), "store `/srv/../etc` must not contain `..`"),
            ("file:///srv/a%20b".to_owned(), "without %-escapes"),
            (format!("file://{}", file.display()), "is not a directory"),
            (format!("file://{}/x", file.display()), "cannot be created"),
            (format!("file://{}/runs", state.display()), "is inside crashlab's state directory"),
            ("s3://".to_owned(), "store `s3://` needs a bucket name"),
            ("s3://Bad_Bucket/x".to_owned(), "needs a bucket name"),
            ("/srv/backups".to_owned(), "store `/srv/backups` is neither file:///DIR (a host directory) nor s3://"),
            ("gs://bucket".to_owned(), "is neither file:///DIR"),
        ];
        for (url, expected) in bad {
            let err = store_of(&url).unwrap_err().to_string();
            assert!(err.contains(expected), "for {url:?}: got {err:?}, wanted {expected:?}");
        }
    }

    #[test]
    fn a_restic_repository_is_a_host_directory_or_a_restic_backend() {
        let dir = tempfile::tempdir().unwrap();
        let with = |repo: &str| format!("{MINIMAL}[backup]\nrepository = \"{repo}\"\n");
        let repo_of = |repo: &str| Scenario::parse(&with(repo), "s.toml").map(|s| s.backup.repository.unwrap());
        let fresh = dir.path().join("new/repo");
        let path = fresh.display().to_string();
        assert_eq!(repo_of(&path).unwrap(), Repository::Dir(fresh.clone()));
        for backend in ["sftp:backup@host:/srv/restic", "rest:http://127.0.0.1:8000/", "s3:s3.example/bucket"] {
            assert_eq!(repo_of(backend).unwrap(), Repository::Backend(backend.into()));
        }
        let bad = [
            ("relative/dir", "repository `relative/dir` is neither an absolute host directory nor a restic backend"),
            ("/", "repository `/` is the root directory"),
            ("local:/srv/r", "without `local:`"),
            ("sftp:", "is neither"),
            ("file:///srv/r", "is neither"),
        ];
        for (repo, expected) in bad {
            let err = repo_of(repo).unwrap_err().to_string();
            assert!(err.contains(expected), "for {repo:?}: got {err:?}, wanted {expected:?}");
        }
    }

    #[test]
    fn the_fault_waits_for_one_completed_backup_unless_told_otherwise() {
        let parse = |extra: &str| Scenario::parse(&format!("{MINIMAL}[backup]\n{extra}"), "s.toml");
        let default = parse("").unwrap().backup;
        assert_eq!(default.min_backups, 1);
        assert_eq!(default.min_backups_wait(), Duration::from_secs(60), "a 2 s interval waits at least a minute");
        let long = parse("interval = \"30s\"\nmin-backups = 0\n").unwrap().backup;
        assert_eq!((long.min_backups, long.min_backups_wait()), (0, Duration::from_secs(300)));
        let err = parse("min-backups = 101\n").unwrap_err().to_string();
        assert!(err.contains("min-backups must be between 0 and 100, got 101"), "{err}");
    }

    #[test]
    fn an_s3_store_needs_an_agent_built_with_s3() {
        let text = MINIMAL.replace("[\"named-volume\"]", "[\"sync-agent\"]")
            + "[backup]\ninterval = \"1s\"\nstore = \"s3://backups/crashlab\"\n";
        let Ok(agent) = crate::run::agent::locate() else {
            eprintln!("no crashlab-agent built: the check is skipped, as it is for a run without one");
            return;
        };
        match (crate::run::agent::has_s3(&agent).unwrap(), Scenario::parse(&text, "s.toml")) {
            (true, parsed) => assert!(parsed.is_ok(), "{parsed:?}"),
            (false, parsed) => {
                let err = parsed.unwrap_err().to_string();
                assert!(
                    err.starts_with("s.toml:10:1: store `s3://backups/crashlab` needs a crashlab-agent built with S3"),
                    "{err}"
                );
            }
        }
        let other = text.replace("[\"sync-agent\"]", "[\"backup-hot\"]");
        assert!(Scenario::parse(&other, "s.toml").is_ok(), "only the sync agent uses the store");
    }

    #[test]
    fn later_expectations_override_earlier_ones() {
        let text = format!(
            "{MINIMAL}\n[[expect]]\nverdict = \"data-gone\"\n[[expect]]\nstrategy = \"named-volume\"\nfault = \"restart\"\nverdict = \"lost-writes\"\n"
        );
        let s = Scenario::parse(&text, "s.toml").unwrap();
        assert_eq!(s.expected(Strategy::NamedVolume, Fault::Restart), Verdict::LostWrites);
        assert_eq!(s.expected(Strategy::Tmpfs, Fault::Restart), Verdict::DataGone);
    }

    #[test]
    fn fault_knobs_parse_with_defaults_and_range_checks() {
        let s = Scenario::parse(MINIMAL, "m.toml").unwrap();
        assert_eq!(s.faults, FaultsSection::default());
        assert_eq!(s.faults.disk_full_after, 256 << 10);
        assert_eq!(s.faults.io_error.to_string(), "eio:fsync:50");
        assert_eq!(s.faults.torn, TornMode::Prefix);

        let with = |body: &str| format!("{MINIMAL}[faults]\n{body}\n");
        type Holds = fn(&FaultsSection) -> bool;
        let ok: &[(&str, Holds)] = &[
            ("disk-full-after = \"1MiB\"", |f| f.disk_full_after == 1 << 20),
            ("disk-full-after = \"4096B\"", |f| f.disk_full_after == 4096),
            ("io-error = \"eio:write:200+\"", |f| f.io_error.to_string() == "eio:write:200+"),
            ("io-error = \"eio:fsync:3:ib_logfile\"", |f| f.io_error.to_string() == "eio:fsync:3:ib_logfile"),
            ("torn = \"sectors\"", |f| f.torn == TornMode::Sectors),
            ("fsync-reaches-disk = true", |f| f.fsync_reaches_disk),
            ("partition = \"2500ms\"", |f| f.partition == Duration::from_millis(2500)),
        ];
        for (body, holds) in ok {
            let s = Scenario::parse(&with(body), "s.toml").unwrap_or_else(|e| panic!("{body}: {e}"));
            assert!(holds(&s.faults), "{body}: {:?}", s.faults);
        }
        let bad: &[(&str, &str)] = &[
            ("disk-full-after = \"16MB\"", "s.toml:9:19: invalid size `16MB`: unknown unit `MB`"),
            ("disk-full-after = \"16\"", "missing unit"),
            ("disk-full-after = \"1KiB\"", "disk-full-after must be between 4KiB and 64GiB, got `1KiB`"),
            ("disk-full-after = \"65GiB\"", "between 4KiB and 64GiB"),
            ("disk-full-after = \"99999999999999GiB\"", "too large"),
            ("io-error = \"enospc:1m\"", "io-error takes an `eio:<op>:<n>` rule"),
            ("io-error = \"eio:fsync:0\"", "s.toml:9:12: parse fault rule: `0` is not a positive operation count"),
            ("io-error = \"eio:scribble:1\"", "unknown operation `scribble`"),
            ("torn = \"middle\"", "s.toml:9:8: unknown torn mode `middle`"),
            ("tron = \"prefix\"", "s.toml:9:1: unknown field `tron`"),
        ];
        for (body, expected) in bad {
            let err = error_of(&with(body));
            assert!(err.contains(expected), "for {body:?}: got {err:?}, wanted {expected:?}");
        }
    }

    #[test]
    fn the_torn_page_scenarios_take_points_inside_the_load() {
        for (name, text, trigger) in [
            ("torn-pages.toml", include_str!("../../scenarios/torn-pages.toml"), "fsync:*.ibd"),
            ("torn-pages-postgres.toml", include_str!("../../scenarios/torn-pages-postgres.toml"), "fsync"),
        ] {
            let s = Scenario::parse(text, name).unwrap();
            assert_eq!(s.explore.points.to_string(), trigger, "{name}");
            assert_eq!(s.expected(Strategy::BindMount, Fault::CrashStates), Verdict::Corrupt, "{name}");
        }
        let crash_states = Scenario::parse(include_str!("../../scenarios/crash-states.toml"), "c.toml").unwrap();
        assert_eq!(crash_states.explore.points, Points::EndOfLoad, "the default stays the end of the load");
    }

    #[test]
    fn explore_keys_parse_with_defaults_and_range_checks() {
        let s = Scenario::parse(MINIMAL, "m.toml").unwrap();
        assert_eq!(s.explore, ExploreSection::default());
        assert_eq!((&s.explore.points, s.explore.max_points, s.explore.point_every), (&Points::EndOfLoad, 4, 1));

        let with = |body: &str| format!("{MINIMAL}[explore]\n{body}\n");
        type Holds = fn(&ExploreSection) -> bool;
        let ok: &[(&str, Holds)] = &[
            ("points = \"end-of-load\"", |e| e.points == Points::EndOfLoad),
            ("points = \"fsync\"", |e| e.points.to_string() == "fsync"),
            ("points = \"fsync:*.ibd\"", |e| e.points.to_string() == "fsync:*.ibd"),
            ("points = \"rename:/pg_wal/\"", |e| e.points.to_string() == "rename:/pg_wal/"),
            ("max-points = 64", |e| e.max_points == 64),
            ("point-every = 10", |e| e.point_every == 10),
            ("max-states = 8\nk = 0\ntorn-splits = 0\nparallel = 2", |e| {
                (e.max_states, e.k, e.torn_splits, e.parallel) == (8, 0, 0, 2)
            }),
        ];
        for (body, holds) in ok {
            let s = Scenario::parse(&with(body), "s.toml").unwrap_or_else(|e| panic!("{body}: {e}"));
            assert!(holds(&s.explore), "{body}: {:?}", s.explore);
        }
        let bad: &[(&str, &str)] = &[
            (
                "points = \"fsink\"",
                "s.toml:9:10: points takes `end-of-load` or a trigger like `fsync` or `fsync:*.ibd`: unknown operation \
                 `fsink`",
            ),
            ("points = \"\"", "s.toml:9:10: points takes `end-of-load` or a trigger"),
            ("points = 3", "s.toml:9:10: invalid type: integer `3`, expected a string"),
            ("max-points = 0", "s.toml:9:14: max-points must be between 1 and 64, got 0"),
            ("max-points = 65", "max-points must be between 1 and 64, got 65"),
            ("point-every = 0", "s.toml:9:15: point-every must be between 1 and 1000000, got 0"),
            ("max-states = 0", "s.toml:9:14: max-states must be between 1 and 4096, got 0"),
            ("k = 9", "s.toml:9:5: k must be between 0 and 8, got 9"),
            ("torn-splits = 65", "torn-splits must be between 0 and 64, got 65"),
            ("parallel = 0", "parallel must be between 1 and 16, got 0"),
            ("max-point = 3", "s.toml:9:1: unknown field `max-point`"),
        ];
        for (body, expected) in bad {
            let err = error_of(&with(body));
            assert!(err.contains(expected), "for {body:?}: got {err:?}, wanted {expected:?}");
        }
    }

    #[test]
    fn strategies_that_cannot_take_a_fault_are_planned_as_unsupported() {
        let text = MINIMAL
            .replace("[\"named-volume\"]", "[\"container-layer\", \"bind-mount\", \"tmpfs\"]")
            .replace("[\"restart\"]", "[\"process-kill\", \"host-kill\", \"disk-full\"]");
        let s = Scenario::parse(&text, "s.toml").unwrap();
        let (run, unsupported) = s.plan();
        let ran: Vec<(Strategy, Fault, usize)> = run.iter().map(|c| (c.strategy, c.fault, c.index)).collect();
        assert_eq!(
            ran,
            [
                (Strategy::ContainerLayer, Fault::ProcessKill, 0),
                (Strategy::BindMount, Fault::ProcessKill, 3),
                (Strategy::BindMount, Fault::HostKill, 4),
                (Strategy::BindMount, Fault::DiskFull, 5),
                (Strategy::Tmpfs, Fault::ProcessKill, 6),
                (Strategy::Tmpfs, Fault::HostKill, 7),
            ]
        );
        let skipped: Vec<(&str, &str)> = unsupported.iter().map(|u| (u.strategy.as_str(), u.fault.as_str())).collect();
        assert_eq!(
            skipped,
            [("container-layer", "host-kill"), ("container-layer", "disk-full"), ("tmpfs", "disk-full")]
        );
        assert!(unsupported.iter().all(|u| !u.reason.is_empty() && u.workload == "mariadb"));
    }

    #[test]
    fn sizes() {
        let ok = [("16MiB", 16 << 20), ("4096B", 4096), (" 2GiB ", 2 << 30), ("512KiB", 512 << 10)];
        for (s, bytes) in ok {
            assert_eq!(parse_size(s), Ok(bytes), "{s}");
        }
        for bad in ["", "MiB", "16", "16MB", "1.5MiB", "-1MiB", "16 mib"] {
            assert!(parse_size(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn durations() {
        let ok = [("500ms", 0.5), ("3s", 3.0), ("1.5s", 1.5), ("2m", 120.0), (" 1h ", 3600.0)];
        for (s, secs) in ok {
            assert_eq!(parse_duration(s), Ok(Duration::from_secs_f64(secs)), "{s}");
        }
        for bad in ["", "s", "0s", "-1s", "3", "1d", "1e9s"] {
            assert!(parse_duration(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn line_and_column_count_from_one() {
        assert_eq!(line_column("ab\ncd", 0), (1, 1));
        assert_eq!(line_column("ab\ncd", 4), (2, 2));
    }

    #[test]
    fn per_cell_limits_parse_and_are_range_checked() {
        let with =
            |keys: &str| MINIMAL.replacen("faults = [\"restart\"]", &format!("faults = [\"restart\"]\n{keys}"), 1);
        let s = Scenario::parse(&with("cpus = 1.5\nmemory = \"1GiB\""), "s.toml").unwrap();
        assert_eq!((s.matrix.cpus, s.matrix.memory), (Some(1.5), Some(1 << 30)));
        let s = Scenario::parse(MINIMAL, "s.toml").unwrap();
        assert_eq!((s.matrix.cpus, s.matrix.memory), (None, None));
        assert!(error_of(&with("cpus = 0")).contains("s.toml:8:8: cpus must be between 0.01 and 1024, got 0"));
        assert!(error_of(&with("memory = \"1MiB\"")).contains("memory must be at least 32MiB"));
        assert!(error_of(&with("memory = \"1G\"")).contains("unknown unit `G`"));
    }
}
