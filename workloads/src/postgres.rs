//! PostgreSQL: bank transfers over the PostgreSQL protocol (tokio-postgres),
//! verified by reading the ledger and balances back and by the engine's own
//! checks.
//!
//! # What the integrity check covers
//!
//! The cluster is created with data checksums (`initdb --data-checksums`),
//! so every page read from disk has its checksum verified; a mismatch fails
//! the read (`invalid page in block ...`) and is counted in
//! `pg_stat_database.checksum_failures`. After recovery [`Postgres::observe`]
//! reads both tables in full, then runs `amcheck`:
//! `bt_index_parent_check(index, heapallindexed => true, rootdescend => true)`
//! on every index of the two tables (B-tree structure, parent/child links,
//! and every heap tuple found in its index) and `verify_heapam` on both
//! tables (heap page and tuple structure). Those reads touch every page of
//! every relation of the dataset, so each page that was not already in
//! shared buffers is checksum-verified on the way in; the check then fails
//! if any database recorded a checksum failure since the server started —
//! unless every failure was on a page of a free space map, as the server's
//! log says ("invalid page in block 2 of relation base/5/1249_fsm; zeroing
//! out page"): the FSM is not WAL-logged, so no full-page image protects
//! it, and PostgreSQL zeroes such a page and rebuilds it by design; a torn
//! one is a legal crash state of a protected cluster, and the cycle's
//! detail says it was seen (`Workload::repaired_by_design`).
//! The check asks the server first (`SHOW data_checksums`): a cluster made
//! without checksums (a data directory initialised elsewhere, an image
//! whose entrypoint ignores `POSTGRES_INITDB_ARGS`) verifies nothing on
//! read and its counters stay at zero, so the checksum part is then
//! reported as not checked, in the cycle's detail
//! (the observation's `engine_notes`), rather than as passed.
//! Pages that crash recovery itself rebuilt from WAL (full-page images,
//! whose records carry CRCs) are in shared buffers by then and are not
//! re-read from disk: their on-disk copies are overwritten from WAL at the
//! next checkpoint anyway. `pg_checksums` could verify every file, but only
//! on a cleanly shut down cluster, which a crashed one is not, so it is not
//! used.
//!
//! # Durability, as measured by the test suite
//!
//! With `synchronous_commit=on` (the default) a commit is acknowledged
//! only once its WAL is flushed, so every Docker-only fault leaves it where
//! the data survives. With `synchronous_commit=off` the commit is
//! acknowledged from memory and the WAL writer flushes it within about
//! 200 ms: a process kill loses the WAL still in shared memory, so the last
//! acknowledged commits are gone (`lost-writes`). `fsync=off` alone does
//! not show under a process kill: the WAL was written to the kernel, whose
//! page cache survives; it takes a power cut.
//!
//! The image built from [`RECIPE`] is Debian's PostgreSQL 15 with an
//! entrypoint that creates a cluster with data checksums on an empty data
//! directory and trusts connections from the host (a local test
//! container). A registry image such as `postgres:15` works too: the
//! environment sets the same password and asks its entrypoint for data
//! checksums.

pub mod replication;

use crate::driver::{Attempt, Attempter, ClientContext, InDoubt, run_clients};
use crate::{
    ContainerSpec, Credentials, INITIAL_BALANCE, ImageRecipe, Kind, LoadConfig, LoadOutcome, LogSeverity, Observation,
    RecipeFile, Transfer, Workload, WorkloadError,
};
use futures_util::future::BoxFuture;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::watch;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, NoTls, Statement};

/// Image crashlab builds for this workload.
pub const IMAGE: &str = "crashlab/postgres:latest";

const USER: &str = "postgres";
const PASSWORD: &str = "crashlab";

/// `kind = "postgres"`.
pub const KIND: Kind = Kind {
    name: "postgres",
    build: |image, server_args| Box::new(Postgres { image: image.unwrap_or_else(|| IMAGE.to_owned()), server_args }),
};
/// The host name of a replicated deployment's standby, and its
/// `application_name` towards the primary (see `crate::postgres_replication`).
pub(crate) const REPLICA_NAME: &str = "h2";
/// Where the cluster lives in the container, as in the official image.
pub const DATA_DIR: &str = "/var/lib/postgresql/data";

const ENTRYPOINT: &str = r#"#!/bin/sh
# crashlab's PostgreSQL entrypoint: create a cluster with data checksums on
# an empty data directory (a fresh volume, bind mount or tmpfs arrives empty
# and owned by root), then become the postmaster as user postgres so that
# signals reach the server directly.
set -e
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
export PGDATA=/var/lib/postgresql/data
mkdir -p "$PGDATA" /run/postgresql
chown postgres:postgres "$PGDATA" /run/postgresql
chmod 700 "$PGDATA"
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  as_postgres "$bin/initdb" --data-checksums --no-locale --encoding=UTF8 --username=postgres \
    --auth=trust -D "$PGDATA" >/tmp/initdb.log 2>&1 || { cat /tmp/initdb.log >&2; exit 1; }
  # A local test container: trust every host connection.
  printf 'host all all 0.0.0.0/0 trust\nhost all all ::/0 trust\n' >>"$PGDATA/pg_hba.conf"
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups \
  "$bin/postgres" -D "$PGDATA" -c listen_addresses='*' "$@"
"#;

/// pgBackRest's configuration in crashlab's image, for `backup-pgbackrest`:
/// the repository at the tool's default path (where the harness binds the
/// cell's repository), the cluster as stanza `crashlab`, backups that start
/// at once (a checkpoint asked for, not waited for), backups kept until the
/// harness removes the repository, and lz4 rather than gzip for every file
/// and WAL segment (gzip could not keep up with a segment a second on two
/// cores: the archive fell minutes behind).
const PGBACKREST_CONF: &str = "[global]
repo1-path=/var/lib/pgbackrest
repo1-retention-full=9999
compress-type=lz4
start-fast=y
log-level-console=info
log-level-file=off

[crashlab]
pg1-path=/var/lib/postgresql/data
";

/// Debian's PostgreSQL (which ships `amcheck` in the server package) and
/// pgBackRest (which the server calls to archive its WAL under
/// `backup-pgbackrest`) with crashlab's entrypoint. The stop signal (SIGINT) is set on the container:
/// the daemon's image import does not take `STOPSIGNAL`.
pub const RECIPE: ImageRecipe = ImageRecipe {
    name: "postgres",
    tag: IMAGE,
    suite: "bookworm",
    packages: &["postgresql", "pgbackrest"],
    files: &[
        RecipeFile { path: "usr/local/bin/crashlab-entrypoint", contents: ENTRYPOINT, mode: 0o755 },
        RecipeFile { path: "etc/pgbackrest/pgbackrest.conf", contents: PGBACKREST_CONF, mode: 0o644 },
    ],
    // The package's postinst creates a default cluster under
    // /var/lib/postgresql/15/main that crashlab never uses.
    prune: &[
        "var/cache/apt/archives",
        "var/lib/apt/lists",
        "usr/share/doc",
        "usr/share/man",
        "usr/share/locale",
        "var/lib/postgresql",
        "etc/postgresql",
    ],
    changes: &[r#"ENTRYPOINT ["/usr/local/bin/crashlab-entrypoint"]"#, "EXPOSE 5432/tcp", "ENV LANG=C.UTF-8"],
};

const UPDATE: &str = "UPDATE crashlab.accounts SET balance = balance + $1 WHERE id = $2";
const INSERT: &str = "INSERT INTO crashlab.ledger (id, src, dst, amount) VALUES ($1, $2, $3, $4)";

/// A statement parameter.
type Param = dyn ToSql + Sync;

/// SQLSTATEs after which the server rolled the transaction back and the
/// client may go on.
const RETRYABLE: [SqlState; 2] = [SqlState::T_R_DEADLOCK_DETECTED, SqlState::T_R_SERIALIZATION_FAILURE];

/// The PostgreSQL workload.
#[derive(Debug, Clone)]
pub struct Postgres {
    pub image: String,
    /// Extra server flags, such as `-c synchronous_commit=on`.
    pub server_args: Vec<String>,
}

impl Postgres {
    pub(crate) fn config(addr: SocketAddr) -> Config {
        let mut config = Config::new();
        config
            .host(addr.ip().to_string())
            .port(addr.port())
            .user(USER)
            .password(PASSWORD)
            .dbname("postgres")
            .application_name("crashlab")
            .connect_timeout(Duration::from_secs(5));
        config
    }
}

/// Connects and drives the connection on its own task, which ends when the
/// client is dropped or the server goes away.
pub(crate) async fn connect(config: &Config, addr: SocketAddr) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("postgres connection to {addr} ended: {e}");
        }
    });
    Ok(client)
}

pub(crate) fn query_err(what: &'static str) -> impl FnOnce(tokio_postgres::Error) -> WorkloadError {
    move |e| WorkloadError::Query { what, source: e.into() }
}

impl Workload for Postgres {
    fn name(&self) -> &str {
        KIND.name
    }

    fn image_names(&self) -> &'static [&'static str] {
        &["postgres", "postgresql"]
    }

    fn credentials(&self) -> Option<Credentials> {
        Some(Credentials {
            login: format!("{USER}/{PASSWORD}"),
            vars: &["POSTGRES_PASSWORD", "POSTGRES_PASSWORD_FILE", "POSTGRES_USER", "POSTGRES_USER_FILE"],
            env: vec![],
        })
    }

    fn client_command(&self) -> Option<String> {
        Some(format!("psql -U {USER}"))
    }

    fn repaired_by_design(&self, failure: &str, logs: &str) -> Option<String> {
        fsm_repairs(failure, logs)
    }

    fn log_severity(&self, line: &str) -> Option<LogSeverity> {
        log_severity(line)
    }

    fn replication(&self) -> Option<std::sync::Arc<dyn crate::replication::Replication>> {
        Some(std::sync::Arc::new(replication::PostgresReplication))
    }

    fn container(&self) -> ContainerSpec {
        ContainerSpec {
            image: self.image.clone(),
            cmd: self.server_args.clone(),
            // Read by the official image's entrypoint; crashlab's image
            // trusts host connections and always enables checksums.
            env: vec![format!("POSTGRES_PASSWORD={PASSWORD}"), "POSTGRES_INITDB_ARGS=--data-checksums".into()],
            data_dir: DATA_DIR.into(),
            port: 5432,
            // PostgreSQL's fast shutdown. SIGTERM is its smart shutdown,
            // which waits for every client to disconnect, so a graceful stop
            // under load would end in SIGKILL after Docker's timeout.
            stop_signal: Some("SIGINT".into()),
            ready_log: None,
            user: None,
            binds: vec![],
            entrypoint: None,
        }
    }

    fn probe(&self, addr: SocketAddr) -> BoxFuture<'_, Result<(), WorkloadError>> {
        Box::pin(async move {
            let client = connect(&Self::config(addr), addr)
                .await
                .map_err(|e| WorkloadError::Connect { addr, source: e.into() })?;
            client.simple_query("SELECT 1").await.map_err(query_err("run SELECT 1"))?;
            Ok(())
        })
    }

    fn setup(&self, addr: SocketAddr, load: LoadConfig) -> BoxFuture<'_, Result<(), WorkloadError>> {
        Box::pin(async move {
            let client = connect(&Self::config(addr), addr)
                .await
                .map_err(|e| WorkloadError::Connect { addr, source: e.into() })?;
            // The dataset as set up is the baseline, durable whatever the
            // server's settings: only what the load writes is at stake.
            let ddl = format!(
                "SET synchronous_commit = on;
                 DROP SCHEMA IF EXISTS crashlab CASCADE;
                 CREATE SCHEMA crashlab;
                 CREATE TABLE crashlab.accounts (id integer PRIMARY KEY, balance bigint NOT NULL);
                 CREATE TABLE crashlab.ledger (id bigint PRIMARY KEY, src integer NOT NULL, \
                     dst integer NOT NULL, amount bigint NOT NULL);
                 INSERT INTO crashlab.accounts (id, balance) \
                     SELECT g, {INITIAL_BALANCE} FROM generate_series(0, {}) AS g;",
                i64::from(load.accounts) - 1
            );
            client.batch_execute(&ddl).await.map_err(query_err("create the dataset"))?;
            Ok(())
        })
    }

    fn load(
        &self,
        addr: SocketAddr,
        load: LoadConfig,
        stop: watch::Receiver<bool>,
        grace: Duration,
    ) -> BoxFuture<'_, Result<LoadOutcome, WorkloadError>> {
        Box::pin(async move {
            let config = Self::config(addr);
            run_clients(load, stop, grace, |ctx| run_client(config.clone(), addr, ctx)).await
        })
    }

    /// PostgreSQL answers only once its crash recovery is over (before, a
    /// connection is refused with "the database system is starting up"):
    /// it has no background rollback; uncommitted work is simply invisible.
    fn recovering(&self, _addr: SocketAddr) -> BoxFuture<'_, Result<Option<bool>, WorkloadError>> {
        Box::pin(async { Ok(Some(false)) })
    }

    fn observe(&self, addr: SocketAddr) -> BoxFuture<'_, Result<Observation, WorkloadError>> {
        Box::pin(async move {
            let client = connect(&Self::config(addr), addr)
                .await
                .map_err(|e| WorkloadError::Connect { addr, source: e.into() })?;
            let tables: i64 = client
                .query_one(
                    "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = 'crashlab' AND c.relname IN ('accounts', 'ledger') AND c.relkind = 'r'",
                    &[],
                )
                .await
                .map_err(query_err("list the dataset's tables"))?
                .get(0);
            if tables != 2 {
                return Ok(Observation::Gone { detail: format!("schema crashlab has {tables} of its 2 tables") });
            }
            // From here on the tables exist, so a failure to read them is
            // the engine's (a checksum failure, a missing file), not the
            // dataset's absence.
            let balances: Vec<(u32, i64)> = match client.query("SELECT id, balance FROM crashlab.accounts", &[]).await {
                Ok(rows) => rows.iter().map(|r| (r.get::<_, i32>(0) as u32, r.get(1))).collect(),
                Err(e) => return Ok(Observation::Unreadable { detail: format!("reading accounts: {}", db_error(&e)) }),
            };
            if balances.is_empty() {
                return Ok(Observation::Gone { detail: "table accounts is empty".into() });
            }
            let ledger = match client.query("SELECT id, src, dst, amount FROM crashlab.ledger", &[]).await {
                Ok(rows) => rows
                    .iter()
                    .map(|r| Transfer {
                        id: r.get::<_, i64>(0) as u64,
                        src: r.get::<_, i32>(1) as u32,
                        dst: r.get::<_, i32>(2) as u32,
                        amount: r.get(3),
                    })
                    .collect(),
                Err(e) => return Ok(Observation::Unreadable { detail: format!("reading ledger: {}", db_error(&e)) }),
            };
            let mut engine_notes = Vec::new();
            let engine_check = engine_check(&client, &mut engine_notes).await;
            Ok(Observation::Present { ledger, balances, engine_check, engine_notes })
        })
    }
}

/// How [`engine_check`] words a checksum failure count, alone.
const CHECKSUM_FAILURES: &str = " data page checksum failure(s) (pg_stat_database.checksum_failures)";

/// Checksum failures that PostgreSQL repairs by design: every one on a
/// page of a free space map (`<relation>_fsm`), which is not WAL-logged,
/// so no full-page image protects it, and which PostgreSQL zeroes on a
/// failed read and rebuilds ("invalid page in block 2 of relation
/// base/5/1249_fsm; zeroing out page"). The data is not affected; the
/// counter still counts them. Any other problem, or a failure on another
/// fork, stands.
fn fsm_repairs(failure: &str, logs: &str) -> Option<String> {
    let failures: usize = failure.strip_suffix(CHECKSUM_FAILURES)?.parse().ok()?;
    let invalid: Vec<&str> =
        logs.lines().filter_map(|l| l.split_once("invalid page in block ").map(|(_, rest)| rest)).collect();
    let fsm: Vec<&str> = invalid.iter().copied().filter(|r| r.contains("_fsm; zeroing out page")).collect();
    if fsm.len() < failures || fsm.len() != invalid.len() {
        return None;
    }
    Some(format!(
        "{failures} checksum failure(s) on free space map pages, which are not WAL-logged and which PostgreSQL \
         zeroes and rebuilds by design (invalid page in block {}): not counted as corruption",
        fsm[0].trim()
    ))
}

/// What the check says when the cluster has no page checksums to verify.
const CHECKSUMS_OFF: &str = "data checksums: not checked (cluster made without --data-checksums)";

/// amcheck on every index and heap of the dataset, then, when the cluster
/// has data checksums, their failure counters; see the module docs for what
/// that covers. `notes` gets what could not be checked.
async fn engine_check(client: &Client, notes: &mut Vec<String>) -> Result<(), String> {
    let fail = |what: &str, e: tokio_postgres::Error| format!("{what}: {}", db_error(&e));
    client
        .batch_execute("CREATE EXTENSION IF NOT EXISTS amcheck")
        .await
        .map_err(|e| fail("amcheck is not available", e))?;
    let indexes: i64 = client
        .query_one(
            "SELECT count(bt_index_parent_check(i.indexrelid, true, true)::text) FROM pg_index i \
             WHERE i.indrelid IN ('crashlab.accounts'::regclass, 'crashlab.ledger'::regclass)",
            &[],
        )
        .await
        .map_err(|e| fail("bt_index_parent_check", e))?
        .get(0);
    if indexes != 2 {
        return Err(format!("amcheck found {indexes} of the dataset's 2 indexes"));
    }
    let mut problems = Vec::new();
    for table in ["crashlab.accounts", "crashlab.ledger"] {
        let rows = client
            .query(
                "SELECT coalesce(blkno, -1), coalesce(offnum, -1), msg FROM verify_heapam($1::text::regclass)",
                &[&table],
            )
            .await
            .map_err(|e| fail("verify_heapam", e))?;
        for r in rows.iter().take(3) {
            let (block, offset, msg): (i64, i32, String) = (r.get(0), r.get(1), r.get(2));
            problems.push(format!("{table} block {block} offset {offset}: {msg}"));
        }
        if rows.len() > 3 {
            problems.push(format!("{table}: {} more heap problems", rows.len() - 3));
        }
    }
    // With checksums off a torn or zeroed page reads back without
    // complaint and the failure counter stays at zero whatever the disk
    // did: zero then means "not looked at", not "no failures".
    let enabled = client
        .simple_query("SHOW data_checksums")
        .await
        .map_err(|e| fail("SHOW data_checksums", e))?
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(|v| v == "on"),
            _ => None,
        })
        .ok_or("SHOW data_checksums returned no row")?;
    if enabled {
        let failures: i64 = client
            .query_one("SELECT coalesce(sum(checksum_failures), 0)::bigint FROM pg_stat_database", &[])
            .await
            .map_err(|e| fail("read the checksum failure counters", e))?
            .get(0);
        if failures > 0 {
            problems.push(format!("{failures}{CHECKSUM_FAILURES}"));
        }
    } else {
        notes.push(CHECKSUMS_OFF.to_owned());
    }
    if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) }
}

/// The server's own message when there is one: tokio-postgres's display of
/// a database error is just "db error".
fn db_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

/// Runs transfers until told to stop. Returns the error that ended it early,
/// if one did.
async fn run_client(config: Config, addr: SocketAddr, ctx: ClientContext) -> Option<String> {
    let id = ctx.client;
    let connecting = async { connect(&config, addr).await.map_err(|e| db_error(&e)) };
    let client = match ctx.connect(connecting).await {
        Ok(c) => c,
        Err(e) => return Some(e),
    };
    let statements = match tokio::try_join!(client.prepare(UPDATE), client.prepare(INSERT)) {
        Ok(s) => s,
        Err(e) => return Some(format!("client {id}: prepare: {}", db_error(&e))),
    };
    ctx.run(&mut PgClient { client, statements }).await
}

struct PgClient {
    client: Client,
    statements: (Statement, Statement),
}

impl Attempter for PgClient {
    async fn attempt(&mut self, t: Transfer, in_doubt: InDoubt) -> Attempt {
        match transfer(&self.client, &self.statements, &t, &in_doubt).await {
            Ok(()) => Attempt::Committed,
            Err(e) if e.code().is_some_and(|c| RETRYABLE.contains(c)) => {
                match self.client.batch_execute("ROLLBACK").await {
                    Ok(()) => Attempt::RolledBack,
                    Err(_) => Attempt::Failed {
                        error: format!("rollback after {}: connection lost", db_error(&e)),
                        rolled_back: false,
                    },
                }
            }
            Err(e) => Attempt::Failed { error: db_error(&e), rolled_back: false },
        }
    }
}

/// One transfer in one transaction. Accounts are updated in id order so
/// that concurrent transfers cannot deadlock. The statements before the
/// commit are pipelined (sent together, answered in order); the commit goes
/// out alone, once the log says it is in doubt.
async fn transfer(
    client: &Client,
    (update, insert): &(Statement, Statement),
    t: &Transfer,
    in_doubt: &InDoubt,
) -> Result<(), tokio_postgres::Error> {
    let (mut first, mut second) = ((t.src as i32, -t.amount), (t.dst as i32, t.amount));
    if first.0 > second.0 {
        std::mem::swap(&mut first, &mut second);
    }
    let id = t.id as i64;
    let (src, dst) = (t.src as i32, t.dst as i32);
    let first: [&Param; 2] = [&first.1, &first.0];
    let second: [&Param; 2] = [&second.1, &second.0];
    let row: [&Param; 4] = [&id, &src, &dst, &t.amount];
    tokio::try_join!(
        client.batch_execute("BEGIN"),
        client.execute(update, &first),
        client.execute(update, &second),
        client.execute(insert, &row),
    )?;
    in_doubt.mark();
    client.batch_execute("COMMIT").await
}

/// PostgreSQL's format: `2026-12-01 13:42:06.777 UTC [39] ERROR:  division
/// by zero`, the level being the word before the first colon followed by
/// two spaces; and its programs' `initdb: error: ...` (the entrypoint
/// prints initdb's output when it fails).
pub fn log_severity(line: &str) -> Option<LogSeverity> {
    let level = match line.split_once(":  ") {
        Some((head, _)) => head.rsplit(' ').next()?,
        None => line.split_once(": ").and_then(|(_, rest)| rest.split_once(": ")).map(|(level, _)| level)?,
    };
    match level {
        "WARNING" => Some(LogSeverity::Warning),
        "ERROR" | "error" => Some(LogSeverity::Error),
        "FATAL" | "PANIC" => Some(LogSeverity::Fatal),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_images_get_the_same_password_and_checksums() {
        let w = Postgres { image: "postgres:15".into(), server_args: vec!["-c".into(), "fsync=on".into()] };
        let spec = w.container();
        assert!(spec.env.contains(&"POSTGRES_PASSWORD=crashlab".to_string()));
        assert!(spec.env.contains(&"POSTGRES_INITDB_ARGS=--data-checksums".to_string()));
        assert_eq!(spec.cmd, ["-c", "fsync=on"]);
        assert_eq!(spec.data_dir, "/var/lib/postgresql/data");
    }

    /// Lines from crashlab/postgres (15.18): a division by zero, a missing
    /// database, a stray `ROLLBACK`, WAL filling a 64 MiB tmpfs, and initdb
    /// on a directory that is not empty.
    #[test]
    fn server_log_lines_are_classified_by_their_level() {
        use LogSeverity::*;
        for (line, severity) in [
            ("2026-12-01 13:42:03.809 UTC [1] LOG:  database system is ready to accept connections", None),
            ("2026-12-01 13:42:06.777 UTC [39] ERROR:  division by zero", Some(Error)),
            ("2026-12-01 13:42:06.777 UTC [39] STATEMENT:  SELECT 1/0", None),
            ("2026-12-01 13:42:07.048 UTC [46] FATAL:  database \"nosuchdb\" does not exist", Some(Fatal)),
            ("2026-12-01 13:42:07.578 UTC [53] WARNING:  there is no transaction in progress", Some(Warning)),
            (
                "2026-12-01 13:42:08.081 UTC [60] PANIC:  could not write to file \"pg_wal/xlogtemp.60\": No space left on device",
                Some(Fatal),
            ),
            ("2026-12-01 13:42:08.108 UTC [1] LOG:  server process (PID 60) was terminated by signal 6: Aborted", None),
            (
                "2026-12-01 13:42:08.108 UTC [1] DETAIL:  Failed process was running: CREATE TABLE big AS SELECT g, repeat('x', 1000) FROM generate_series(1, 200000) g",
                None,
            ),
            (
                "2026-12-01 13:42:08.192 UTC [61] FATAL:  could not write to file \"pg_wal/xlogtemp.61\": No space left on device",
                Some(Fatal),
            ),
            ("initdb: error: directory \"/tmp/d\" exists but is not empty", Some(Error)),
            (
                "initdb: hint: If you want to create a new database system, either remove or empty the directory \"/tmp/d\" or run initdb with an argument other than \"/tmp/d\".",
                None,
            ),
        ] {
            assert_eq!(log_severity(line), severity, "{line}");
        }
        let logs = "2026-12-01 13:42:06.777 UTC [39] ERROR:  division by zero
2026-12-01 13:42:07.578 UTC [53] WARNING:  there is no transaction in progress
2026-12-01 13:42:08.081 UTC [60] PANIC:  could not write to file \"pg_wal/xlogtemp.60\": No space left on device
2026-12-01 13:42:08.108 UTC [1] LOG:  terminating any other active server processes
2026-12-01 13:42:08.192 UTC [61] FATAL:  could not write to file \"pg_wal/xlogtemp.61\": No space left on device
2026-12-01 13:42:08.275 UTC [1] LOG:  database system is shut down";
        let w = Postgres { image: IMAGE.into(), server_args: vec![] };
        let newest: Vec<&str> = logs.lines().filter(|l| l.contains("xlogtemp")).collect();
        assert_eq!(w.server_errors(logs, 2), newest, "the newest two, oldest first");
        assert_eq!(w.server_errors(logs, 9).len(), 3);
        assert!(w.server_errors("", 2).is_empty());
    }

    #[test]
    fn checksum_failures_on_free_space_map_pages_are_repaired_by_design_and_others_stand() {
        let failure = format!("1{CHECKSUM_FAILURES}");
        let fsm = "2026-12-07 06:45:07.871 UTC [16] WARNING:  invalid page in block 2 of relation base/5/1249_fsm; \
                   zeroing out page\n";
        let note = fsm_repairs(&failure, fsm).expect("an FSM page PostgreSQL zeroed");
        assert!(note.contains("free space map") && note.contains("block 2 of relation base/5/1249_fsm"), "{note}");
        let heap = "WARNING:  invalid page in block 9 of relation base/5/2673; zeroing out page\n";
        assert_eq!(fsm_repairs(&failure, &format!("{fsm}{heap}")), None, "a failure on another fork stands");
        assert_eq!(fsm_repairs(&format!("2{CHECKSUM_FAILURES}"), fsm), None, "more failures than FSM repairs");
        assert_eq!(fsm_repairs(&failure, ""), None, "no log line explains it");
        let with_amcheck = format!("crashlab.ledger block 3 offset 1: bad tuple; {failure}");
        assert_eq!(fsm_repairs(&with_amcheck, fsm), None, "another problem stands");
    }
}
