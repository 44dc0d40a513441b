//! MariaDB: bank transfers over the MySQL protocol (mysql_async), verified
//! by reading the ledger and balances back and by `CHECK TABLE ... EXTENDED`.
//!
//! The image built from [`RECIPE`] is Debian's `mariadb-server` with an
//! entrypoint that initialises an empty data directory (a fresh bind mount
//! or tmpfs arrives empty) and a `root@'%'` account with password
//! `crashlab`. A registry image such as `mariadb:11` works too: the
//! environment sets the same root password for its entrypoint.

pub mod replication;

use crate::driver::{Attempt, Attempter, ClientContext, InDoubt, run_clients};
use crate::{
    ContainerSpec, Credentials, INITIAL_BALANCE, ImageRecipe, Kind, LoadConfig, LoadOutcome, LogPosition, LogSeverity,
    Observation, RecipeFile, Transfer, Workload, WorkloadError,
};
use futures_util::future::BoxFuture;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::watch;

/// Image crashlab builds for this workload.
pub const IMAGE: &str = "crashlab/mariadb:latest";

pub(crate) const PASSWORD: &str = "crashlab";

/// `kind = "mariadb"`.
pub const KIND: Kind = Kind {
    name: "mariadb",
    build: |image, server_args| Box::new(MariaDb { image: image.unwrap_or_else(|| IMAGE.to_owned()), server_args }),
};

const ENTRYPOINT: &str = r#"#!/bin/sh
# crashlab's MariaDB entrypoint: initialise an empty data directory, then
# become mariadbd so that signals reach the server directly.
set -e
datadir=/var/lib/mysql
mkdir -p /run/mysqld "$datadir"
chown mysql:mysql /run/mysqld "$datadir"
if [ ! -d "$datadir/mysql" ]; then
  mariadb-install-db --user=mysql --datadir="$datadir" --skip-test-db \
    --auth-root-authentication-method=normal >/tmp/install-db.log 2>&1 \
    || { cat /tmp/install-db.log >&2; exit 1; }
fi
exec mariadbd --user=mysql --datadir="$datadir" --init-file=/etc/crashlab/init.sql "$@"
"#;

const INIT_SQL: &str = "CREATE USER IF NOT EXISTS 'root'@'%' IDENTIFIED BY 'crashlab';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION;
";

const SERVER_CNF: &str = "[mysqld]
bind-address = 0.0.0.0
skip-name-resolve
";

/// Debian's MariaDB with crashlab's entrypoint.
pub const RECIPE: ImageRecipe = ImageRecipe {
    name: "mariadb",
    tag: IMAGE,
    suite: "bookworm",
    packages: &["mariadb-server"],
    files: &[
        RecipeFile { path: "usr/local/bin/crashlab-entrypoint", contents: ENTRYPOINT, mode: 0o755 },
        RecipeFile { path: "etc/crashlab/init.sql", contents: INIT_SQL, mode: 0o644 },
        RecipeFile { path: "etc/mysql/mariadb.conf.d/90-crashlab.cnf", contents: SERVER_CNF, mode: 0o644 },
    ],
    prune: &["var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/locale"],
    changes: &[r#"ENTRYPOINT ["/usr/local/bin/crashlab-entrypoint"]"#, "EXPOSE 3306/tcp", "ENV LANG=C.UTF-8"],
};

/// MariaDB error codes after which the transaction was rolled back and the
/// client may go on: deadlock, lock wait timeout.
const RETRYABLE: [u16; 2] = [1213, 1205];

/// The MariaDB workload.
#[derive(Debug, Clone)]
pub struct MariaDb {
    pub image: String,
    /// Extra `mariadbd` flags, such as `--innodb-flush-log-at-trx-commit=1`.
    pub server_args: Vec<String>,
}

impl MariaDb {
    pub(crate) fn opts(addr: SocketAddr, db: Option<&str>) -> OptsBuilder {
        OptsBuilder::default()
            .ip_or_hostname(addr.ip().to_string())
            .tcp_port(addr.port())
            .user(Some("root"))
            .pass(Some(PASSWORD))
            .db_name(db)
            .prefer_socket(false)
    }

    pub(crate) async fn connect(addr: SocketAddr, db: Option<&str>) -> Result<Conn, WorkloadError> {
        Conn::new(Self::opts(addr, db)).await.map_err(|e| WorkloadError::Connect { addr, source: e.into() })
    }
}

/// A connection holding `FLUSH TABLES WITH READ LOCK`: commits wait, and
/// InnoDB has nothing new to write but its background flushing, so a copy
/// of the files taken meanwhile recovers to one point in time.
struct ReadLocked(Conn);

impl crate::Quiesced for ReadLocked {
    fn how(&self) -> &'static str {
        "FLUSH TABLES WITH READ LOCK"
    }

    fn release(self: Box<Self>) -> BoxFuture<'static, Result<(), WorkloadError>> {
        let mut conn = self.0;
        Box::pin(async move {
            conn.query_drop("UNLOCK TABLES").await.map_err(query_err("release the read lock"))?;
            let _ = conn.disconnect().await;
            Ok(())
        })
    }
}

/// MariaDB's "Lock wait timeout exceeded".
const ER_LOCK_WAIT_TIMEOUT: u16 = 1205;
/// Tries at taking the global read lock, a second each.
const FTWRL_ATTEMPTS: u32 = 20;

pub(crate) fn query_err(what: &'static str) -> impl FnOnce(mysql_async::Error) -> WorkloadError {
    move |e| WorkloadError::Query { what, source: e.into() }
}

impl Workload for MariaDb {
    fn name(&self) -> &str {
        KIND.name
    }

    /// Images that speak MySQL's protocol: MariaDB's, MySQL's and
    /// Percona's (`percona-server` too).
    fn image_names(&self) -> &'static [&'static str] {
        &["mariadb", "mysql", "percona"]
    }

    fn credentials(&self) -> Option<Credentials> {
        let last = crate::image_base_name(&self.image);
        // The MySQL and Percona images read MYSQL_*, not the MARIADB_* the
        // container sets.
        let mysql = last.starts_with("mysql") || last.starts_with("percona");
        Some(Credentials {
            login: format!("root/{PASSWORD}"),
            vars: &[
                "MARIADB_ROOT_PASSWORD",
                "MARIADB_ROOT_PASSWORD_FILE",
                "MARIADB_ROOT_PASSWORD_HASH",
                "MARIADB_RANDOM_ROOT_PASSWORD",
                "MARIADB_ALLOW_EMPTY_ROOT_PASSWORD",
                "MARIADB_ROOT_HOST",
                "MYSQL_ROOT_PASSWORD",
                "MYSQL_ROOT_PASSWORD_FILE",
                "MYSQL_RANDOM_ROOT_PASSWORD",
                "MYSQL_ALLOW_EMPTY_PASSWORD",
                "MYSQL_ROOT_HOST",
            ],
            env: if mysql {
                vec![format!("MYSQL_ROOT_PASSWORD={PASSWORD}"), "MYSQL_ROOT_HOST=%".into()]
            } else {
                vec![]
            },
        })
    }

    fn client_command(&self) -> Option<String> {
        Some(format!("mariadb -uroot -p{PASSWORD}"))
    }

    fn log_severity(&self, line: &str) -> Option<LogSeverity> {
        log_severity(line)
    }

    fn replication(&self) -> Option<std::sync::Arc<dyn crate::replication::Replication>> {
        Some(std::sync::Arc::new(replication::MariaDbReplication))
    }

    fn container(&self) -> ContainerSpec {
        ContainerSpec {
            image: self.image.clone(),
            cmd: self.server_args.clone(),
            // Read by the official image's entrypoint; crashlab's image
            // creates the same account from its init file.
            env: vec![format!("MARIADB_ROOT_PASSWORD={PASSWORD}"), "MARIADB_ROOT_HOST=%".into()],
            data_dir: "/var/lib/mysql".into(),
            port: 3306,
            stop_signal: None,
            ready_log: None,
            user: None,
            binds: vec![],
            entrypoint: None,
        }
    }

    fn probe(&self, addr: SocketAddr) -> BoxFuture<'_, Result<(), WorkloadError>> {
        Box::pin(async move {
            let mut conn = Self::connect(addr, None).await?;
            conn.query_drop("SELECT 1").await.map_err(query_err("run SELECT 1"))?;
            let _ = conn.disconnect().await;
            Ok(())
        })
    }

    fn setup(&self, addr: SocketAddr, load: LoadConfig) -> BoxFuture<'_, Result<(), WorkloadError>> {
        Box::pin(async move {
            let mut conn = Self::connect(addr, None).await?;
            let ddl = [
                "CREATE DATABASE IF NOT EXISTS crashlab",
                "DROP TABLE IF EXISTS crashlab.ledger, crashlab.accounts",
                "CREATE TABLE crashlab.accounts (id INT UNSIGNED PRIMARY KEY, balance BIGINT NOT NULL) ENGINE=InnoDB",
                "CREATE TABLE crashlab.ledger (id BIGINT UNSIGNED PRIMARY KEY, src INT UNSIGNED NOT NULL, \
                 dst INT UNSIGNED NOT NULL, amount BIGINT NOT NULL) ENGINE=InnoDB",
            ];
            for stmt in ddl {
                conn.query_drop(stmt).await.map_err(query_err("create the schema"))?;
            }
            let values: Vec<String> = (0..load.accounts).map(|id| format!("({id},{INITIAL_BALANCE})")).collect();
            conn.query_drop(format!("INSERT INTO crashlab.accounts (id, balance) VALUES {}", values.join(",")))
                .await
                .map_err(query_err("insert the accounts"))?;
            let _ = conn.disconnect().await;
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
            let opts = Self::opts(addr, Some("crashlab"));
            run_clients(load, stop, grace, |ctx| run_client(opts.clone(), ctx)).await
        })
    }

    fn quiesce(&self, addr: SocketAddr) -> BoxFuture<'_, Result<Option<Box<dyn crate::Quiesced>>, WorkloadError>> {
        Box::pin(async move {
            let mut conn = Self::connect(addr, None).await?;
            // FLUSH TABLES WITH READ LOCK can deadlock with the load in a way
            // the server does not detect: it waits for a running UPDATE,
            // which waits for a row lock of a transaction, whose COMMIT waits
            // for the pending read lock. Only innodb_lock_wait_timeout (50 s)
            // broke it, once, in CI. So the lock request gives up after a
            // second, which lets that commit through, and is made again.
            conn.query_drop("SET SESSION lock_wait_timeout = 1").await.map_err(query_err("limit the lock wait"))?;
            let mut attempt = 1;
            loop {
                match conn.query_drop("FLUSH TABLES WITH READ LOCK").await {
                    Ok(()) => return Ok(Some(Box::new(ReadLocked(conn)) as Box<dyn crate::Quiesced>)),
                    Err(mysql_async::Error::Server(e))
                        if e.code == ER_LOCK_WAIT_TIMEOUT && attempt < FTWRL_ATTEMPTS =>
                    {
                        tracing::debug!("FLUSH TABLES WITH READ LOCK timed out (attempt {attempt}); again");
                        attempt += 1;
                    }
                    Err(e) => return Err(query_err("take the global read lock")(e)),
                }
            }
        })
    }

    fn log_position(
        &self,
        addr: SocketAddr,
        at: std::time::Instant,
    ) -> BoxFuture<'_, Result<Option<LogPosition>, WorkloadError>> {
        Box::pin(async move {
            let mut conn = Self::connect(addr, None).await?;
            tokio::time::sleep_until(at.into()).await;
            let asked = std::time::Instant::now();
            // `SHOW MASTER STATUS`: the file and the offset past the last
            // event the server wrote; a commit is acknowledged only after
            // its events are written there. Empty when the log is off.
            let row: Option<mysql_async::Row> =
                conn.query_first("SHOW MASTER STATUS").await.map_err(query_err("read the binary log's position"))?;
            let answered = std::time::Instant::now();
            let _ = conn.disconnect().await;
            Ok(row.and_then(|row| {
                let (file, offset): (String, u64) = (row.get(0)?, row.get(1)?);
                Some(LogPosition { file, offset, asked, answered })
            }))
        })
    }

    fn recovering(&self, addr: SocketAddr) -> BoxFuture<'_, Result<Option<bool>, WorkloadError>> {
        Box::pin(async move {
            let mut conn = Self::connect(addr, None).await?;
            // A transaction InnoDB recovered uncommitted belongs to no
            // connection (thread id 0) until its background rollback ends.
            let recovered: Option<i64> = conn
                .query_first("SELECT COUNT(*) FROM information_schema.innodb_trx WHERE trx_mysql_thread_id = 0")
                .await
                .map_err(query_err("count the recovered transactions"))?;
            let _ = conn.disconnect().await;
            Ok(Some(recovered.unwrap_or(0) > 0))
        })
    }

    fn observe(&self, addr: SocketAddr) -> BoxFuture<'_, Result<Observation, WorkloadError>> {
        Box::pin(async move {
            let mut conn = Self::connect(addr, None).await?;
            let tables: Option<i64> = conn
                .query_first(
                    "SELECT COUNT(*) FROM information_schema.tables \
                     WHERE table_schema = 'crashlab' AND table_name IN ('accounts', 'ledger')",
                )
                .await
                .map_err(query_err("list the dataset's tables"))?;
            let tables = tables.unwrap_or(0);
            if tables != 2 {
                return Ok(Observation::Gone { detail: format!("schema crashlab has {tables} of its 2 tables") });
            }
            // From here on the tables exist, so a failure to read them is
            // the engine's, not the dataset's absence.
            let balances: Vec<(u32, i64)> = match conn.query("SELECT id, balance FROM crashlab.accounts").await {
                Ok(rows) => rows,
                Err(e) => return Ok(Observation::Unreadable { detail: format!("reading accounts: {e}") }),
            };
            if balances.is_empty() {
                return Ok(Observation::Gone { detail: "table accounts is empty".into() });
            }
            let ledger = match conn
                .query_map("SELECT id, src, dst, amount FROM crashlab.ledger", |(id, src, dst, amount)| Transfer {
                    id,
                    src,
                    dst,
                    amount,
                })
                .await
            {
                Ok(rows) => rows,
                Err(e) => return Ok(Observation::Unreadable { detail: format!("reading ledger: {e}") }),
            };
            let engine_check = match conn
                .query::<(String, String, String, String), _>("CHECK TABLE crashlab.accounts, crashlab.ledger EXTENDED")
                .await
            {
                Ok(rows) => check_table_verdict(&rows),
                Err(e) => Err(format!("CHECK TABLE failed: {e}")),
            };
            let _ = conn.disconnect().await;
            Ok(Observation::Present { ledger, balances, engine_check, engine_notes: vec![] })
        })
    }
}

/// Reads `CHECK TABLE` output (Table, Op, Msg_type, Msg_text): every table
/// must end on `status OK`, and no row may be an error.
fn check_table_verdict(rows: &[(String, String, String, String)]) -> Result<(), String> {
    let problems: Vec<String> = rows
        .iter()
        .filter(|(_, _, kind, text)| kind.eq_ignore_ascii_case("error") || (kind == "status" && text != "OK"))
        .map(|(table, _, kind, text)| format!("{table}: {kind}: {text}"))
        .collect();
    let tables_ok = rows.iter().filter(|(_, _, kind, text)| kind == "status" && text == "OK").count();
    if problems.is_empty() && tables_ok == 2 {
        Ok(())
    } else if problems.is_empty() {
        Err(format!("CHECK TABLE reported {tables_ok} of 2 tables OK: {rows:?}"))
    } else {
        Err(problems.join("; "))
    }
}

/// Runs transfers until told to stop. Returns the error that ended it early,
/// if one did.
async fn run_client(opts: OptsBuilder, ctx: ClientContext) -> Option<String> {
    let mut conn = match ctx.connect(Conn::new(opts)).await {
        Ok(c) => MysqlClient(c),
        Err(e) => return Some(e),
    };
    let ended = ctx.run(&mut conn).await;
    if ended.is_none() {
        let _ = conn.0.disconnect().await;
    }
    ended
}

struct MysqlClient(Conn);

impl Attempter for MysqlClient {
    async fn attempt(&mut self, t: Transfer, in_doubt: InDoubt) -> Attempt {
        match transfer(&mut self.0, &t, &in_doubt).await {
            Ok(()) => Attempt::Committed,
            Err(mysql_async::Error::Server(e)) if RETRYABLE.contains(&e.code) => {
                match self.0.query_drop("ROLLBACK").await {
                    Ok(()) => Attempt::RolledBack,
                    Err(_) => Attempt::Failed {
                        error: format!("rollback after error {}: connection lost", e.code),
                        rolled_back: false,
                    },
                }
            }
            Err(e) => Attempt::Failed { error: e.to_string(), rolled_back: false },
        }
    }
}

/// One transfer in one transaction. Accounts are updated in id order so
/// that concurrent transfers cannot deadlock.
async fn transfer(conn: &mut Conn, t: &Transfer, in_doubt: &InDoubt) -> Result<(), mysql_async::Error> {
    let (mut first, mut second) = ((t.src, -t.amount), (t.dst, t.amount));
    if first.0 > second.0 {
        std::mem::swap(&mut first, &mut second);
    }
    // Everything before COMMIT goes in one round trip (a multi-statement
    // query; the values are integers the driver made, so formatting them in
    // is safe). The server runs the statements in order and stops at the
    // first error, which then aborts the transaction as before. COMMIT goes
    // alone, after the log marks the transfer in doubt.
    conn.query_drop(format!(
        "BEGIN; UPDATE accounts SET balance = balance + {} WHERE id = {}; \
         UPDATE accounts SET balance = balance + {} WHERE id = {}; \
         INSERT INTO ledger (id, src, dst, amount) VALUES ({}, {}, {}, {})",
        first.1, first.0, second.1, second.0, t.id, t.src, t.dst, t.amount
    ))
    .await?;
    in_doubt.mark();
    conn.query_drop("COMMIT").await
}

/// MariaDB's format: `2026-12-01 13:42:40 22 [ERROR] InnoDB: ...`, the
/// first bracketed tag being the level (`[Note]`, `[Warning]`, `[ERROR]`).
/// An `[ERROR] [FATAL]` and the `[ERROR] mariadbd got signal` that opens a
/// crash report are fatal.
pub fn log_severity(line: &str) -> Option<LogSeverity> {
    let (_, rest) = line.split_once('[')?;
    let (level, message) = rest.split_once(']')?;
    match level {
        "Warning" => Some(LogSeverity::Warning),
        "ERROR" if message.starts_with(" [FATAL]") || message.contains(" got signal ") => Some(LogSeverity::Fatal),
        "ERROR" => Some(LogSeverity::Error),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(table: &str, kind: &str, text: &str) -> (String, String, String, String) {
        (table.into(), "check".into(), kind.into(), text.into())
    }

    #[test]
    fn check_table_needs_both_tables_ok() {
        let ok = [row("crashlab.accounts", "status", "OK"), row("crashlab.ledger", "status", "OK")];
        assert_eq!(check_table_verdict(&ok), Ok(()));
        let one = [row("crashlab.accounts", "status", "OK")];
        assert!(check_table_verdict(&one).unwrap_err().contains("1 of 2"));
        let bad = [
            row("crashlab.accounts", "status", "OK"),
            row("crashlab.ledger", "error", "Index PRIMARY is corrupted"),
            row("crashlab.ledger", "status", "Operation failed"),
        ];
        let err = check_table_verdict(&bad).unwrap_err();
        assert!(err.contains("Index PRIMARY is corrupted"), "{err}");
    }

    #[test]
    fn registry_images_get_the_same_password() {
        let w = MariaDb { image: "mariadb:11".into(), server_args: vec!["--x=1".into()] };
        let spec = w.container();
        assert!(spec.env.contains(&"MARIADB_ROOT_PASSWORD=crashlab".to_string()));
        assert_eq!(spec.cmd, ["--x=1"]);
        assert_eq!(spec.data_dir, "/var/lib/mysql");
    }

    /// Lines from crashlab/mariadb (10.11.18), on a 160 MiB tmpfs that an
    /// `INSERT ... SELECT` filled.
    #[test]
    fn server_log_lines_are_classified_by_their_tag() {
        use LogSeverity::*;
        for (line, severity) in [
            ("2026-12-01 13:42:16 0 [Note] mariadbd: ready for connections.", None),
            (
                "2026-12-01 13:42:16 0 [Warning] Could not increase number of max_open_files to more than 20000 (request: 32184)",
                Some(Warning),
            ),
            (
                "2026-12-01 13:42:27 4 [Warning] Access denied for user 'root'@'localhost' (using password: YES)",
                Some(Warning),
            ),
            (
                "2026-12-01 13:42:39 22 [ERROR] InnoDB: preallocating 37748736 bytes for file ./t/big.ibd failed with error 28",
                Some(Error),
            ),
            ("2026-12-01 13:42:40 22 [ERROR] [FATAL] InnoDB: Error (Out of disk space) in rollback.", Some(Fatal)),
            ("261201 13:42:40 [ERROR] mariadbd got signal 6 ;", Some(Fatal)),
            ("Version: '10.11.18-MariaDB-0+deb12u1'  socket: '/run/mysqld/mysqld.sock'  port: 3306  Debian 12", None),
            ("mariadbd(_Z10do_commandP3THDb+0x13f)[0x55e3f354ec3f]", None),
            ("Status: NOT_KILLED", None),
        ] {
            assert_eq!(log_severity(line), severity, "{line}");
        }
    }
}
