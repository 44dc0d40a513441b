//! Workloads: real programs that store data, the drivers that load them,
//! and the recipes that build their images without a registry.
//!
//! A driver talks to its server over TCP on a loopback port the harness
//! publishes. It runs bank transfers — move an amount between two of K
//! accounts and insert a ledger row with a unique id, in one transaction —
//! and records the outcome of every transaction it sent in an [`AckLog`],
//! which lives in the harness process, outside the system under test. After
//! a fault the driver reads back what the server kept as an
//! [`Observation`]; the harness's checker compares the two.
//!
//! This crate knows nothing of Docker: a workload describes the container it
//! needs ([`ContainerSpec`]) and the image it comes from ([`ImageRecipe`]),
//! and the harness provides both. [`KINDS`] lists the workloads a scenario
//! can name; each says what else the harness needs to know of it through
//! [`Workload`]'s defaulted methods (the images it recognises, its
//! credentials, its client, whether it replicates), so that the harness
//! never matches on a workload's name.

#![forbid(unsafe_code)]

pub mod ack;
pub mod agent;
pub mod app;
pub mod cluster;
pub mod custom;
mod driver;
pub mod etcd;
pub mod fio;
pub mod fsync_log;
pub mod glusterfs;
pub mod mariabackup;
pub mod mariadb;
mod message;
pub mod nats;
pub mod postgres;
pub mod rabbitmq;
mod recipe;
pub mod redis;
pub mod replication;
pub mod restic;
pub mod sqlite;
pub mod zookeeper;

pub use ack::{AckLog, Outcome, Span, Transfer};
pub use recipe::{ImageRecipe, RecipeFile};

use futures_util::future::BoxFuture;
use hdrhistogram::Histogram;
use std::net::SocketAddr;
use std::time::Duration;

/// Every image crashlab knows how to build, by name.
pub const RECIPES: [&ImageRecipe; 12] = [
    &mariadb::RECIPE,
    &postgres::RECIPE,
    &redis::RECIPE,
    &fio::RECIPE,
    &agent::RECIPE,
    &restic::RECIPE,
    &mariabackup::RECIPE,
    &glusterfs::RECIPE,
    &nats::RECIPE,
    &etcd::RECIPE,
    &rabbitmq::RECIPE,
    &zookeeper::RECIPE,
];

/// Every workload a scenario can name, in the order messages list them.
/// Adding a workload is its module and its [`Kind`] here; what it can do,
/// it says itself (see [`Workload`]'s defaulted methods).
pub const KINDS: &[&Kind] = &[
    &mariadb::KIND,
    &postgres::KIND,
    &redis::KIND,
    &sqlite::KIND,
    &fsync_log::KIND,
    &nats::KIND,
    &etcd::KIND,
    &rabbitmq::KIND,
    &zookeeper::KIND,
    &app::KIND,
];

/// A workload a scenario can name in `[workload] kind`: its name and how
/// to build it. Everything else about it (the images it recognises, its
/// credentials, its client, whether it replicates) the workload says.
#[derive(Clone, Copy)]
pub struct Kind {
    /// The scenario's name for it (`mariadb`), which reports use too.
    pub name: &'static str,
    /// The workload on `image` (crashlab's own when `None`) with the
    /// scenario's `server-args`.
    pub build: fn(Option<String>, Vec<String>) -> Box<dyn Workload>,
}

impl Kind {
    /// The workload on crashlab's own image, as no scenario changes it:
    /// the one to ask what the kind can do.
    pub fn workload(&self) -> Box<dyn Workload> {
        (self.build)(None, Vec::new())
    }
}

impl std::fmt::Debug for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// The last part of an image's name, lower case, without registry,
/// repository path, tag or digest: `mariadb` of
/// `docker.io/library/mariadb:11`.
pub fn image_base_name(image: &str) -> String {
    let name = image.split('@').next().unwrap_or(image);
    let last = name.rsplit('/').next().unwrap_or(name);
    last.split(':').next().unwrap_or(last).to_ascii_lowercase()
}

/// An error and its sources, `: `-separated: what a failed attempt
/// records, whose error types often say little at the top.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        out.push_str(": ");
        out.push_str(&s.to_string());
        next = s.source();
    }
    out
}

/// A `what` for [`WorkloadError::Query`], as `map_err` takes it.
pub(crate) fn query_err<E: Into<Box<dyn std::error::Error + Send + Sync>>>(
    what: &'static str,
) -> impl FnOnce(E) -> WorkloadError {
    move |e| WorkloadError::Query { what, source: e.into() }
}

/// `call` given `limit` to answer (a server killed mid-call never does),
/// its error named by `what`.
pub(crate) async fn timed<T, E: Into<Box<dyn std::error::Error + Send + Sync>>>(
    call: impl std::future::Future<Output = Result<T, E>>,
    limit: Duration,
    what: &'static str,
) -> Result<T, WorkloadError> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => result.map_err(query_err(what)),
        Err(_) => Err(query_err(what)(format!("no answer within {limit:?}"))),
    }
}

/// How a driver logs in, and which of a server's environment variables
/// decide that; see [`Workload::credentials`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `user/password`, as messages show it (`root/crashlab`).
    pub login: String,
    /// The variables of the official images that set the credentials: a
    /// Compose file's own values for them would lock the driver out, so
    /// they give way to the driver's.
    pub vars: &'static [&'static str],
    /// `KEY=VALUE` pairs the workload's image needs, besides its
    /// container's own variables, to let the driver in on a Compose
    /// service (MySQL's images read `MYSQL_*`, not the `MARIADB_*` the
    /// container sets).
    pub env: Vec<String>,
}

/// How a workload's container is to be created; the harness adds the
/// strategy's mounts, labels and the published port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSpec {
    pub image: String,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    /// Where the engine keeps its data inside the container; the strategy
    /// decides what is mounted there.
    pub data_dir: String,
    /// The TCP port the server listens on inside the container.
    pub port: u16,
    /// The signal of a graceful stop, when the server wants another than
    /// the image's (Docker's default is SIGTERM).
    pub stop_signal: Option<String>,
    /// A line the server prints once ready; when set, readiness after each
    /// start also waits for a new occurrence of it.
    pub ready_log: Option<String>,
    /// The user the server runs as (Docker's `--user`, `name|uid[:group|gid]`);
    /// the image's when absent.
    pub user: Option<String>,
    /// Host files or directories the container sees besides its data (a
    /// configuration file a Compose file binds in), always read-only.
    pub binds: Vec<HostBind>,
    /// Replaces the image's entrypoint (a Compose file's `entrypoint`; an
    /// empty list clears it); the image's when `None`.
    pub entrypoint: Option<Vec<String>>,
}

impl ContainerSpec {
    /// A server on `image` started with `cmd`, its data in `data_dir`,
    /// listening on `port`, with the image's own environment, user, stop
    /// signal and readiness by its port alone.
    pub fn plain(image: &str, cmd: &[String], data_dir: &str, port: u16) -> ContainerSpec {
        ContainerSpec {
            image: image.to_owned(),
            cmd: cmd.to_vec(),
            env: vec![],
            data_dir: data_dir.to_owned(),
            port,
            stop_signal: None,
            ready_log: None,
            user: None,
            binds: vec![],
            entrypoint: None,
        }
    }
}

/// A host path bind-mounted read-only into the workload's container, so
/// that a run can see the user's files and never change them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostBind {
    /// An absolute path on the host.
    pub source: String,
    /// An absolute path in the container.
    pub target: String,
}

/// Parameters of the load phase that every transfer workload shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadConfig {
    /// Concurrent driver connections.
    pub clients: u32,
    /// Number of accounts money moves between.
    pub accounts: u32,
    /// Seed for the choice of accounts and amounts.
    pub seed: u64,
    /// A client whose connection fails connects again and goes on until
    /// told to stop, rather than ending: for loads that must outlive a
    /// server stopped on purpose (`backup-stopped` stops it for each copy).
    pub reconnect: bool,
    /// Each client's ledger sequence starts after this, so that several
    /// loads on one dataset (a fault schedule's) never reuse an id; 0 for
    /// the first.
    pub ids_from: u64,
    /// How many members of the engine's own cluster keep a copy of the
    /// dataset (a JetStream stream's replicas), for a workload that
    /// replicates natively on a cluster strategy; 1 everywhere else.
    pub replicas: u32,
}

/// Balance every account starts a cycle with.
pub const INITIAL_BALANCE: i64 = 1_000_000;

/// What a load phase did.
#[derive(Debug)]
pub struct LoadOutcome {
    pub log: AckLog,
    /// Commit latency in microseconds, acknowledged transactions only.
    pub latency_us: Histogram<u64>,
    /// Errors that ended a client before it was told to stop, one line each
    /// (a fault in the middle of the load ends every client this way).
    pub client_errors: Vec<String>,
    /// When the load began: the zero of the log's [`Span`]s.
    pub epoch: std::time::Instant,
}

/// What the server kept, as read back after recovery.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    /// The dataset is not there at all: no schema, or no accounts.
    Gone { detail: String },
    /// The dataset is there; whether it is right is the checker's call.
    Present {
        ledger: Vec<Transfer>,
        /// (account id, balance), any order.
        balances: Vec<(u32, i64)>,
        /// The engine's own integrity check: `Err` carries what it said.
        engine_check: Result<(), String>,
        /// What the check could not cover this time and why, one sentence
        /// each (`data checksums: not checked (...)`). Notes do not fail
        /// the cycle; the checker quotes them in the verdict's detail.
        engine_notes: Vec<String>,
    },
    /// The server answers but cannot read its own data (a table it lists
    /// but cannot open, an I/O error reading pages).
    Unreadable { detail: String },
}

/// How bad a line of a server's output is, as its engine's log format says.
/// Ordered: `Warning < Error < Fatal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogSeverity {
    /// Worth knowing, not a failure (`[Warning]`, `WARNING:`).
    Warning,
    /// An operation failed; the server goes on (`[ERROR]`, `ERROR:`).
    Error,
    /// The server stops or crashes (`[FATAL]`, `PANIC:`, a signal).
    Fatal,
}

/// Errors a driver reports. Messages read well after "failed to".
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("connect to {addr}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{what}")]
    Query {
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("wait for load clients")]
    Join(#[source] tokio::task::JoinError),
}

/// A workload the harness can run. Futures are boxed so that the runner can
/// hold any workload behind `dyn`.
pub trait Workload: Send + Sync {
    /// Short name used in reports (`mariadb`).
    fn name(&self) -> &str;

    /// The container this workload runs in.
    fn container(&self) -> ContainerSpec;

    /// One cheap round trip: connect and run a trivial query. Readiness and
    /// recovery time are measured by polling this.
    fn probe(&self, addr: SocketAddr) -> BoxFuture<'_, Result<(), WorkloadError>>;

    /// Creates the dataset afresh: K accounts at [`INITIAL_BALANCE`] and an
    /// empty ledger, dropping whatever a previous cycle left.
    fn setup(&self, addr: SocketAddr, load: LoadConfig) -> BoxFuture<'_, Result<(), WorkloadError>>;

    /// Runs transfers on `load.clients` connections until `stop` turns true or
    /// a client's connection fails. Never returns an error for a failing
    /// server: failures end the client and are recorded in the log.
    fn load(
        &self,
        addr: SocketAddr,
        load: LoadConfig,
        stop: tokio::sync::watch::Receiver<bool>,
        grace: Duration,
    ) -> BoxFuture<'_, Result<LoadOutcome, WorkloadError>>;

    /// Reads back the dataset and runs the engine's integrity check.
    fn observe(&self, addr: SocketAddr) -> BoxFuture<'_, Result<Observation, WorkloadError>>;

    /// An integrity tool to run inside the container after [`Self::observe`]
    /// found the dataset present, for engines whose own check is an offline
    /// program rather than a query (`redis-check-aof`). The check fails
    /// when the command exits non-zero. `None`: nothing to run.
    fn engine_check_command(&self) -> Option<Vec<String>> {
        None
    }

    /// Whether the engine is still finishing its own crash recovery, in the
    /// background, after it began to answer: InnoDB, for one, accepts
    /// connections while it rolls back the transactions it recovered
    /// uncommitted. `Ok(None)`: the workload cannot tell.
    fn recovering(&self, _addr: SocketAddr) -> BoxFuture<'_, Result<Option<bool>, WorkloadError>> {
        Box::pin(async { Ok(None) })
    }

    /// Brings the engine to a state in which copying its files gives a
    /// consistent backup, and holds it there until the returned guard is
    /// released (`backup-quiesced`). `None`: the engine has no such command
    /// and the harness pauses the container instead.
    fn quiesce(&self, _addr: SocketAddr) -> BoxFuture<'_, Result<Option<Box<dyn Quiesced>>, WorkloadError>> {
        Box::pin(async { Ok(None) })
    }

    /// The end of the server's own change log (MariaDB's binary log) read
    /// at `at`: connected beforehand, the question is asked once `at` has
    /// come, so the answer holds every commit acknowledged before it and
    /// none begun after [`LogPosition::answered`] — what a point-in-time
    /// restore that replays that log stops at. `Ok(None)`: the engine
    /// keeps no such log, or the workload cannot read it.
    fn log_position(
        &self,
        _addr: SocketAddr,
        _at: std::time::Instant,
    ) -> BoxFuture<'_, Result<Option<LogPosition>, WorkloadError>> {
        Box::pin(async { Ok(None) })
    }

    /// The severity of one line of the server's output, by the engine's own
    /// log format. `None` for lines below a warning, lines of no known
    /// format (a stack trace, a banner) and, by default, every line: a
    /// workload that does not know its server's format claims nothing.
    fn log_severity(&self, _line: &str) -> Option<LogSeverity> {
        None
    }

    /// Whether the engine check's `failure` is something the engine
    /// repairs by design, as its own log (`logs`, the server's newest
    /// output) shows: then a note saying so, and the check passes. `None`
    /// by default: a failure stands.
    fn repaired_by_design(&self, _failure: &str, _logs: &str) -> Option<String> {
        None
    }

    /// The newest `max` lines of `logs` that [`Self::log_severity`] rates
    /// an error or worse, oldest first: what the server said about a fault.
    fn server_errors(&self, logs: &str, max: usize) -> Vec<String> {
        let mut found: Vec<String> = logs
            .lines()
            .rev()
            .filter(|line| self.log_severity(line).is_some_and(|s| s >= LogSeverity::Error))
            .take(max)
            .map(str::to_owned)
            .collect();
        found.reverse();
        found
    }

    /// For workloads that `crashlab-agent` hosts: the directory of the
    /// container the harness must copy its agent binary into before the
    /// container starts (the agent is the container's main process).
    /// `None`: the image has everything it runs.
    fn agent_dir(&self) -> Option<&str> {
        None
    }

    /// How two servers of this workload replicate, for the replicated
    /// strategies; `None`: the workload has no replication, and those
    /// strategies cannot deploy it (the plan makes them n/a).
    fn replication(&self) -> Option<std::sync::Arc<dyn replication::Replication>> {
        None
    }

    /// How servers of this workload form the engine's own cluster, for
    /// the cluster strategies; `None`: it has none, and those strategies
    /// cannot deploy it (the plan makes them n/a).
    fn clustering(&self) -> Option<std::sync::Arc<dyn cluster::Clustering>> {
        None
    }

    /// The images this workload's driver speaks to besides crashlab's own,
    /// by the last part of their name ([`image_base_name`]): what a
    /// Compose service's image is recognised by. Empty by default: a
    /// Compose service names the workload in `x-crashlab: { kind: ... }`.
    fn image_names(&self) -> &'static [&'static str] {
        &[]
    }

    /// Whether `image` is one of [`Self::image_names`], or one of them
    /// followed by `-` and more (`percona-server`), whatever its registry,
    /// repository path and tag.
    fn recognises(&self, image: &str) -> bool {
        let last = image_base_name(image);
        self.image_names()
            .iter()
            .any(|n| last.strip_prefix(n).is_some_and(|rest| rest.is_empty() || rest.starts_with('-')))
    }

    /// The credentials the driver logs in with, for the images of
    /// [`Self::image_names`]. `None`: the driver logs in without any.
    fn credentials(&self) -> Option<Credentials> {
        None
    }

    /// The engine's own client as a command to run in the server's
    /// container (`psql -U postgres`), logged in as the driver is: how a
    /// person looks at a state kept for replay. `None`: the image has
    /// none.
    fn client_command(&self) -> Option<String> {
        None
    }

    /// Whether the driver sends writes of its own and records each
    /// acknowledgement in an [`AckLog`]: whether the ack-log oracle
    /// applies. `false` for [`app`], a service whose own program is the
    /// load and whose user's check is the oracle.
    fn records_acks(&self) -> bool {
        true
    }
}

/// Where the server's change log ended at an instant; see
/// [`Workload::log_position`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPosition {
    /// The log's file (`mysql-bin.000002`).
    pub file: String,
    /// The offset in it just past the last event written.
    pub offset: u64,
    /// When the question went out: every commit acknowledged before it is
    /// in the log up to here.
    pub asked: std::time::Instant,
    /// When the answer came: nothing begun after it can be.
    pub answered: std::time::Instant,
}

/// An engine held quiescent for a backup; see [`Workload::quiesce`].
pub trait Quiesced: Send {
    /// What holds the engine still, for the report (`FLUSH TABLES WITH READ LOCK`).
    fn how(&self) -> &'static str;

    /// Lets the engine go on writing.
    fn release(self: Box<Self>) -> BoxFuture<'static, Result<(), WorkloadError>>;
}

/// A fresh latency histogram: 1 µs to 10 minutes, 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("static histogram bounds are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_name_and_builds_on_an_image_crashlab_builds() {
        for (i, kind) in KINDS.iter().enumerate() {
            assert!(!KINDS[..i].iter().any(|k| k.name == kind.name), "{} listed twice", kind.name);
            assert!(kind.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'), "{kind:?}");
            let image = kind.workload().container().image;
            // `app` is the user's own service: its scenario names the image.
            let own = kind.workload().records_acks();
            assert!(!own || RECIPES.iter().any(|r| r.tag == image), "{kind:?} runs {image}, which no recipe builds");
            let mine = (kind.build)(Some("registry.example/x:1".into()), vec!["--flag".into()]).container();
            assert_eq!(mine.image, "registry.example/x:1", "{kind:?}");
            assert!(mine.cmd.contains(&"--flag".to_owned()), "{kind:?}: {:?}", mine.cmd);
        }
    }

    #[test]
    fn an_image_is_recognised_by_the_last_part_of_its_name() {
        let names = |image: &str| -> Vec<&str> {
            KINDS.iter().filter(|k| k.workload().recognises(image)).map(|k| k.name).collect()
        };
        let cases: &[(&str, &[&str])] = &[
            ("mariadb", &["mariadb"]),
            ("docker.io/library/mariadb:11.4", &["mariadb"]),
            ("bitnami/mysql:8.0", &["mariadb"]),
            ("percona/percona-server:8", &["mariadb"]),
            ("crashlab/postgres:latest", &["postgres"]),
            ("postgres@sha256:abcd", &["postgres"]),
            ("localhost:5000/redis:7", &["redis"]),
            ("nats:2.10", &["nats"]),
            ("quay.io/coreos/etcd:v3.5.16", &["etcd"]),
            ("bitnami/etcd", &["etcd"]),
            ("rabbitmq:4-management", &["rabbitmq"]),
            ("bitnami/rabbitmq", &["rabbitmq"]),
            ("zookeeper:3.9", &["zookeeper"]),
            ("bitnami/zookeeper:3.9", &["zookeeper"]),
            ("valkey/valkey:8", &["redis"]),
            ("foo/bar:1", &[]),
            ("mariadbish", &[]),
            ("postgis/postgis", &[]),
            ("crashlab/agent:latest", &[]),
        ];
        for (image, kinds) in cases {
            assert_eq!(names(image), *kinds, "{image}");
        }
        assert_eq!(image_base_name("Registry.example:5000/Team/MariaDB:11@sha256:ab"), "mariadb");
    }
}
