//! `wal-stream` and `wal-stream-sync`: `backup-pgbackrest`'s backups and
//! WAL archive, with the WAL also streamed, as the server writes it, to
//! the backup host by `pg_receivewal` (PostgreSQL's own client, from the
//! server's image) in a sidecar sharing the server's network namespace and
//! writing into a directory of the cell's backup directory, which stands
//! for the backup host's disk and survives the host loss.
//!
//! The archive holds each segment once it is complete (or switched by
//! `archive_timeout`); the stream holds what the server wrote up to the
//! moment the stream ended, the segment in progress included (kept as
//! `.partial`). After a host loss the latest backup is restored as for
//! `backup-pgbackrest`, and the streamed files are copied into the
//! restored cluster's `pg_wal`: recovery replays the archive, then what
//! only the stream has, then promotes.
//!
//! `wal-stream-sync` names the stream in `synchronous_standby_names`
//! (`pg_receivewal`, its application name) once it is streaming, by
//! `ALTER SYSTEM` before the load (named on the command line, the server
//! would wait for it through the workload's setup, before the sidecar
//! starts; the scenario's `server-args` still win, as the command line
//! does over `ALTER SYSTEM`), and `pg_receivewal --synchronous` flushes
//! and reports every write at once: a commit is acknowledged only once
//! the stream has it on disk. The sidecar is on the backup host: it is
//! not stopped at the fault but sees the server go, as a receiver on
//! another machine would, and is removed before the restore reads what it
//! wrote.

use super::pgbackrest::PgBackRest;
use super::{Artifact, BackupError, BackupMethod, ServerNeeds, Site, bind};
use crate::deploy::deployment::Deployment;
use crate::text::sh_quoted;
use bollard::models::{ContainerCreateBody, HostConfig};
use crashlab_reports::ToolCheck;
use crashlab_workloads::Workload;
use futures_util::future::BoxFuture;
use std::time::{Duration, Instant};

/// The cell's backup directory's subdirectory the stream writes into.
const STREAM_DIR: &str = "stream";
/// Where the sidecar sees it.
const STREAM: &str = "/stream";
/// `pg_receivewal`'s replication slot, so that the server keeps what the
/// stream has not received.
const SLOT: &str = "crashlab_stream";
/// `pg_receivewal`'s application name, as `synchronous_standby_names`
/// and `pg_stat_replication` name it.
const APPLICATION: &str = "pg_receivewal";
/// How long the stream may take to show as streaming (and synchronous).
const STREAMING_WITHIN: Duration = Duration::from_secs(30);

/// The stream and pgBackRest's backups of one cell.
pub struct WalStream {
    pg: PgBackRest,
    sync: bool,
    sidecar: Option<String>,
}

impl WalStream {
    pub fn new(site: Site, sync: bool) -> WalStream {
        let stream = site.path(STREAM_DIR);
        WalStream { pg: PgBackRest::with_stream(site, stream), sync, sidecar: None }
    }

    /// Starts `pg_receivewal` beside the running server into an empty
    /// stream directory, and waits for the server to show it streaming
    /// (and, for `wal-stream-sync`, as its synchronous standby).
    async fn start(&mut self, d: &Deployment) -> Result<(), BackupError> {
        self.stop().await?;
        let dir = self.pg.site.empty_dir(STREAM_DIR)?;
        let server = d.container_id().ok_or(BackupError::NoContainer)?.to_owned();
        let config = ContainerCreateBody {
            image: Some(d.spec().image.clone()),
            entrypoint: Some(vec!["sh".into(), "-c".into()]),
            cmd: Some(vec![receivewal_script(self.sync)]),
            labels: Some(self.pg.site.run.labels()),
            host_config: Some(HostConfig {
                mounts: Some(vec![bind(&dir, STREAM, false)]),
                network_mode: Some(format!("container:{server}")),
                ..Default::default()
            }),
            ..Default::default()
        };
        let seq = self.pg.site.next_seq();
        let name = format!("{}-walstream-{seq}", self.pg.site.name);
        let id = self.pg.site.docker.create_container(&name, config).await?;
        self.sidecar = Some(id.clone());
        self.pg.site.docker.start(&id).await?;
        self.wait_for(&server, "state = 'streaming'").await?;
        if self.sync {
            let name = format!("ALTER SYSTEM SET synchronous_standby_names = '{APPLICATION}'");
            self.sql(&server, &name).await?;
            self.sql(&server, "SELECT pg_reload_conf()").await?;
            self.wait_for(&server, "sync_state = 'sync'").await?;
        }
        Ok(())
    }

    /// Runs `query` with `psql` in the server's container and returns its
    /// unaligned output.
    async fn sql(&self, server: &str, query: &str) -> Result<String, BackupError> {
        let script = format!(
            "exec \"$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)/psql\" -h 127.0.0.1 -U postgres -Atc {}",
            sh_quoted(query)
        );
        let cmd = ["sh".to_owned(), "-c".to_owned(), script];
        self.pg.site.exec_checked(server, &cmd, format!("psql -c {query}")).await
    }

    /// Waits until `pg_stat_replication` shows the stream with
    /// `condition`.
    async fn wait_for(&self, server: &str, condition: &str) -> Result<(), BackupError> {
        let query = format!(
            "SELECT count(*) FROM pg_stat_replication WHERE application_name = '{APPLICATION}' AND {condition}"
        );
        let deadline = Instant::now() + STREAMING_WITHIN;
        loop {
            if self.sql(server, &query).await?.trim() == "1" {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let logs = match &self.sidecar {
                    Some(id) => self.pg.site.docker.logs_all(id).await.unwrap_or_default(),
                    None => String::new(),
                };
                return Err(BackupError::Tool {
                    command: format!("pg_receivewal ({condition} within {STREAMING_WITHIN:?})"),
                    code: None,
                    output: crate::text::folded_tail(&logs, 400),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops and removes the sidecar: `pg_receivewal` flushes what it
    /// received as it ends.
    async fn stop(&mut self) -> Result<(), BackupError> {
        if let Some(id) = self.sidecar.take() {
            self.pg.site.docker.stop(&id, 5).await.ok();
            self.pg.site.docker.remove_container_if_present(&id).await?;
        }
        Ok(())
    }
}

/// The sidecar's shell: a replication slot, then `pg_receivewal` into
/// the stream directory over the server's loopback (initdb's `pg_hba.conf`
/// trusts replication from there), flushing every write when synchronous.
fn receivewal_script(sync: bool) -> String {
    let flags = if sync { " --synchronous" } else { "" };
    format!(
        "bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1) && \
         \"$bin/pg_receivewal\" -h 127.0.0.1 -U postgres --slot={SLOT} --create-slot --if-not-exists && \
         exec \"$bin/pg_receivewal\" -h 127.0.0.1 -U postgres --slot={SLOT} -D {STREAM} --no-loop{flags}"
    )
}

impl BackupMethod for WalStream {
    fn describe(&self) -> String {
        let how = if self.sync {
            "named in synchronous_standby_names (a commit is acknowledged once the stream has flushed it)"
        } else {
            "asynchronous"
        };
        format!(
            "{}; besides, pg_receivewal streams the WAL to the backup host, {how}; restore = the latest backup, the \
             archive, then what only the stream has",
            self.pg.describe()
        )
    }

    fn server_needs(&self) -> ServerNeeds {
        self.pg.server_needs()
    }

    fn begin_cycle<'a>(&'a mut self, d: &'a Deployment) -> BoxFuture<'a, Result<(), BackupError>> {
        Box::pin(async move {
            self.pg.begin_cycle(d).await?;
            self.start(d).await
        })
    }

    fn take<'a>(
        &'a mut self,
        d: &'a mut Deployment,
        workload: &'a dyn Workload,
    ) -> BoxFuture<'a, Result<Option<Artifact>, BackupError>> {
        self.pg.take(d, workload)
    }

    /// The stream has ended with the host (the receiver on the backup
    /// host sees the connection go and flushes what it had): the sidecar
    /// is removed before the restore reads the stream.
    fn restore<'a>(
        &'a mut self,
        d: &'a mut Deployment,
        latest: Option<&'a Artifact>,
    ) -> BoxFuture<'a, Result<(), BackupError>> {
        Box::pin(async move {
            self.stop().await?;
            self.pg.restore(d, latest).await
        })
    }

    fn restore_to<'a>(
        &'a mut self,
        d: &'a mut Deployment,
        backup: &'a Artifact,
        at: std::time::SystemTime,
        marked: Option<&'a crashlab_workloads::LogPosition>,
    ) -> BoxFuture<'a, Result<(), BackupError>> {
        Box::pin(async move {
            self.stop().await?;
            self.pg.restore_to(d, backup, at, marked).await
        })
    }

    fn restore_steps(&mut self) -> Vec<crashlab_reports::RestoreStep> {
        self.pg.restore_steps()
    }

    fn tool_check(&mut self) -> BoxFuture<'_, Option<ToolCheck>> {
        self.pg.tool_check()
    }

    fn teardown(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.stop().await.ok();
            self.pg.teardown().await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_is_synchronous_only_when_asked() {
        let sync = receivewal_script(true);
        assert!(sync.ends_with("-D /stream --no-loop --synchronous"), "{sync}");
        assert!(sync.contains("--slot=crashlab_stream --create-slot --if-not-exists &&"), "{sync}");
        assert!(receivewal_script(false).ends_with("--no-loop"));
    }
}
