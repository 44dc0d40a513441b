//! Bring your own image: any server that speaks one of the protocols the
//! drivers know (MySQL, PostgreSQL, Redis) runs with the user's image, env,
//! command, data directory, port and readiness condition, and is loaded and
//! verified by the matching driver. No code needed.
//!
//! The drivers log in as they do with crashlab's own images — MySQL
//! protocol as `root` with password `crashlab`, PostgreSQL as `postgres`
//! with password `crashlab`, Redis without a password — and set the official
//! images' variables for that (`MARIADB_ROOT_PASSWORD`, `POSTGRES_PASSWORD`);
//! other images need `env` that does the same. Integrity checks that are
//! queries (`CHECK TABLE`, amcheck) run as usual; tools run inside the
//! container (`redis-check-aof`) do not, since a user's image need not have
//! them.

use crate::{ContainerSpec, LoadConfig, LoadOutcome, Observation, Workload, WorkloadError};
use futures_util::future::BoxFuture;
use std::net::SocketAddr;
use std::time::Duration;

/// What a scenario changes about a workload's container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerOverrides {
    /// `KEY=VALUE` pairs added after the workload's own, so they win.
    pub env: Vec<String>,
    /// Replaces the container's command; the scenario's server arguments
    /// follow it.
    pub command: Option<Vec<String>>,
    pub server_args: Vec<String>,
    pub data_dir: Option<String>,
    pub port: Option<u16>,
    /// A line the server prints when it is ready, awaited after every start
    /// before the protocol probe counts.
    pub ready_log: Option<String>,
    /// The user the server runs as, instead of the image's.
    pub user: Option<String>,
    /// Host paths bound read-only into the container besides the data.
    pub binds: Vec<crate::HostBind>,
    /// Replaces the image's entrypoint (an empty list clears it).
    pub entrypoint: Option<Vec<String>>,
}

impl ContainerOverrides {
    pub fn is_empty(&self) -> bool {
        self.env.is_empty()
            && self.command.is_none()
            && self.data_dir.is_none()
            && self.port.is_none()
            && self.ready_log.is_none()
            && self.user.is_none()
            && self.binds.is_empty()
            && self.entrypoint.is_none()
    }

    /// The workload's container with these changes applied.
    pub fn apply(&self, mut spec: ContainerSpec) -> ContainerSpec {
        spec.env.extend(self.env.iter().cloned());
        if let Some(command) = &self.command {
            spec.cmd = command.iter().chain(&self.server_args).cloned().collect();
        }
        if let Some(dir) = &self.data_dir {
            spec.data_dir = dir.clone();
        }
        if let Some(port) = self.port {
            spec.port = port;
        }
        if self.ready_log.is_some() {
            spec.ready_log = self.ready_log.clone();
        }
        if self.user.is_some() {
            spec.user = self.user.clone();
        }
        spec.binds.extend(self.binds.iter().cloned());
        if self.entrypoint.is_some() {
            spec.entrypoint = self.entrypoint.clone();
        }
        spec
    }
}

/// A protocol driver on a user's container.
pub struct Custom {
    pub inner: Box<dyn Workload>,
    pub overrides: ContainerOverrides,
}

impl Workload for Custom {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn container(&self) -> ContainerSpec {
        self.overrides.apply(self.inner.container())
    }

    fn probe(&self, addr: SocketAddr) -> BoxFuture<'_, Result<(), WorkloadError>> {
        self.inner.probe(addr)
    }

    fn setup(&self, addr: SocketAddr, load: LoadConfig) -> BoxFuture<'_, Result<(), WorkloadError>> {
        self.inner.setup(addr, load)
    }

    fn load(
        &self,
        addr: SocketAddr,
        load: LoadConfig,
        stop: tokio::sync::watch::Receiver<bool>,
        grace: Duration,
    ) -> BoxFuture<'_, Result<LoadOutcome, WorkloadError>> {
        self.inner.load(addr, load, stop, grace)
    }

    fn recovering(&self, addr: SocketAddr) -> BoxFuture<'_, Result<Option<bool>, WorkloadError>> {
        self.inner.recovering(addr)
    }

    fn observe(&self, addr: SocketAddr) -> BoxFuture<'_, Result<Observation, WorkloadError>> {
        self.inner.observe(addr)
    }

    fn quiesce(&self, addr: SocketAddr) -> BoxFuture<'_, Result<Option<Box<dyn crate::Quiesced>>, WorkloadError>> {
        self.inner.quiesce(addr)
    }

    fn agent_dir(&self) -> Option<&str> {
        self.inner.agent_dir()
    }

    fn image_names(&self) -> &'static [&'static str] {
        self.inner.image_names()
    }

    fn credentials(&self) -> Option<crate::Credentials> {
        self.inner.credentials()
    }

    fn client_command(&self) -> Option<String> {
        self.inner.client_command()
    }

    fn records_acks(&self) -> bool {
        self.inner.records_acks()
    }

    /// The driver's engine's format: a user's image runs the same server.
    fn log_severity(&self, line: &str) -> Option<crate::LogSeverity> {
        self.inner.log_severity(line)
    }

    /// None: a user's image need not carry the engine's command-line tools,
    /// nor keep its files where the driver's tool would look. The
    /// protocol-level checks (ledger, balances, and the engine's own check
    /// where it is a query) still run.
    fn engine_check_command(&self) -> Option<Vec<String>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mariadb::MariaDb;

    #[test]
    fn overrides_replace_what_they_name_and_keep_the_rest() {
        let inner = MariaDb { image: "mariadb:11".into(), server_args: vec!["--x=1".into()] };
        let overrides = ContainerOverrides {
            env: vec!["MARIADB_ROOT_PASSWORD=other".into()],
            command: Some(vec!["mariadbd".into(), "--user=mysql".into()]),
            server_args: vec!["--x=1".into()],
            data_dir: Some("/data".into()),
            port: Some(3307),
            ready_log: Some("ready for connections".into()),
            user: Some("999:999".into()),
            binds: vec![crate::HostBind { source: "/etc/my.cnf".into(), target: "/etc/mysql/my.cnf".into() }],
            entrypoint: Some(vec!["/usr/bin/tini".into(), "--".into()]),
        };
        let w = Custom { inner: Box::new(inner.clone()), overrides: overrides.clone() };
        let spec = w.container();
        assert_eq!(spec.cmd, ["mariadbd", "--user=mysql", "--x=1"]);
        assert_eq!(spec.data_dir, "/data");
        assert_eq!(spec.port, 3307);
        assert_eq!(spec.ready_log.as_deref(), Some("ready for connections"));
        assert_eq!(spec.user.as_deref(), Some("999:999"));
        assert_eq!(spec.binds, overrides.binds);
        assert_eq!(spec.entrypoint, overrides.entrypoint);
        // The user's variable comes last, so it wins over the driver's.
        assert_eq!(spec.env.last().map(String::as_str), Some("MARIADB_ROOT_PASSWORD=other"));
        assert_eq!(spec.image, "mariadb:11");
        let none = ContainerOverrides::default();
        assert!(none.is_empty());
        assert_eq!(none.apply(inner.container()), inner.container());
    }

    #[test]
    fn the_wrapped_driver_classifies_the_server_log() {
        let inner = MariaDb { image: "mariadb:11".into(), server_args: vec![] };
        let w = Custom { inner: Box::new(inner), overrides: ContainerOverrides::default() };
        let line = "2026-12-01 13:42:40 22 [ERROR] [FATAL] InnoDB: Error (Out of disk space) in rollback.";
        assert_eq!(w.log_severity(line), Some(crate::LogSeverity::Fatal));
        assert_eq!(w.server_errors(line, 2), [line]);
    }
}
