//! MariaDB replication: GTID-based, classic asynchronous or semi-sync with
//! `rpl_semi_sync_master_wait_point=AFTER_SYNC` (a commit is acknowledged
//! to the client only after a replica wrote it to its relay log), both
//! built into the server since 10.3.
//!
//! Semi-sync falls back to asynchronous, silently, when no replica
//! answers within `rpl_semi_sync_master_timeout`; it is set here to
//! [`SEMI_SYNC_TIMEOUT_MS`], longer than any test's load, and
//! [`Replication::sync_state`] reads `Rpl_semi_sync_master_status` and
//! `Rpl_semi_sync_master_no_tx` so that a fallback is reported, not
//! assumed away. Only the primary waits for a replica: a promoted replica
//! has none left, and would otherwise block every commit for the timeout.

use crate::WorkloadError;
use crate::mariadb::{MariaDb, query_err};
use crate::replication::{Lag, Mode, Replication, Role, SyncState};
use futures_util::future::BoxFuture;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long a semi-sync primary waits for a replica's acknowledgement
/// before it falls back to asynchronous: 10 minutes.
pub const SEMI_SYNC_TIMEOUT_MS: u64 = 600_000;
/// Seconds without a word from the primary after which a replica
/// reconnects (MariaDB's default is 60).
const SLAVE_NET_TIMEOUT_S: u32 = 2;
/// How long the replica gets to start streaming, and a promotion to apply
/// what the replica received.
const REPLICATION_DEADLINE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(20);

/// MariaDB's replication, over the MySQL protocol.
#[derive(Debug, Clone, Copy, Default)]
pub struct MariaDbReplication;

/// A column of a `SHOW ... STATUS` row as text; empty when NULL or absent.
fn col(row: &Row, name: &str) -> String {
    row.get_opt::<String, _>(name).and_then(Result::ok).unwrap_or_default()
}

fn num(row: &Row, name: &str) -> u64 {
    col(row, name).parse().unwrap_or(0)
}

/// The highest sequence number in a GTID position such as
/// `0-1-1234,1-2-7`: the transactions of the pair's one writing domain.
pub fn gtid_seq(pos: &str) -> u64 {
    pos.split(',').filter_map(|g| g.trim().rsplit('-').next()?.parse::<u64>().ok()).max().unwrap_or(0)
}

async fn slave_status(conn: &mut Conn) -> Result<Option<Row>, WorkloadError> {
    conn.query_first("SHOW SLAVE STATUS").await.map_err(query_err("read SHOW SLAVE STATUS"))
}

async fn global_status(conn: &mut Conn, like: &str) -> Result<Vec<(String, String)>, WorkloadError> {
    conn.query(format!("SHOW GLOBAL STATUS LIKE '{like}'")).await.map_err(query_err("read the server's status"))
}

fn stalled(what: &'static str, detail: String) -> WorkloadError {
    WorkloadError::Query { what, source: detail.into() }
}

impl Replication for MariaDbReplication {
    fn server_args(&self, role: Role, mode: Mode, server_id: u32) -> Vec<String> {
        let mut args = vec![
            format!("--server-id={server_id}"),
            "--log-bin=mariadb-bin".into(),
            "--relay-log=relay-bin".into(),
            "--log-slave-updates=ON".into(),
            "--binlog-format=ROW".into(),
            "--skip-slave-start".into(),
            // A replica cut off its primary notices within this many
            // seconds (heartbeats every half of it) and reconnects, every
            // MASTER_CONNECT_RETRY second, once the network heals.
            format!("--slave-net-timeout={SLAVE_NET_TIMEOUT_S}"),
        ];
        match (role, mode) {
            (_, Mode::Async) => {}
            // Enabled only once a replica follows (see `start_replica`):
            // with none, the init file's own commit would wait out the
            // timeout and the server would not come up.
            (Role::Primary, Mode::Sync) => args.extend([
                "--rpl-semi-sync-master-wait-point=AFTER_SYNC".into(),
                format!("--rpl-semi-sync-master-timeout={SEMI_SYNC_TIMEOUT_MS}"),
            ]),
            (Role::Replica, Mode::Sync) => args.push("--rpl-semi-sync-slave-enabled=ON".into()),
        }
        args
    }

    fn start_replica(
        &self,
        primary: SocketAddr,
        replica: SocketAddr,
        primary_host: String,
        primary_port: u16,
        mode: Mode,
    ) -> BoxFuture<'_, Result<(), WorkloadError>> {
        Box::pin(async move {
            if mode == Mode::Sync {
                // Nothing writes until the runner's setup, after this
                // returns, so no commit waits for the replica meanwhile.
                let mut conn = MariaDb::connect(primary, None).await?;
                conn.query_drop("SET GLOBAL rpl_semi_sync_master_enabled = ON")
                    .await
                    .map_err(query_err("enable semi-sync on the primary"))?;
                let _ = conn.disconnect().await;
            }
            let mut conn = MariaDb::connect(replica, None).await?;
            conn.query_drop(format!(
                "CHANGE MASTER TO MASTER_HOST='{primary_host}', MASTER_PORT={primary_port}, MASTER_USER='root', \
                 MASTER_PASSWORD='{}', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1",
                crate::mariadb::PASSWORD
            ))
            .await
            .map_err(query_err("point the replica at its primary"))?;
            conn.query_drop("START SLAVE").await.map_err(query_err("start the replica"))?;
            let deadline = Instant::now() + REPLICATION_DEADLINE;
            loop {
                let row = slave_status(&mut conn).await?;
                let (io, sql) =
                    row.as_ref().map(|r| (col(r, "Slave_IO_Running"), col(r, "Slave_SQL_Running"))).unwrap_or_default();
                if io == "Yes" && sql == "Yes" {
                    break;
                }
                if Instant::now() > deadline {
                    let error = row.map(|r| format!("{} {}", col(&r, "Last_IO_Error"), col(&r, "Last_SQL_Error")));
                    return Err(stalled("start the replica", format!("IO {io}, SQL {sql}: {error:?}")));
                }
                tokio::time::sleep(POLL).await;
            }
            let _ = conn.disconnect().await;
            if mode == Mode::Sync {
                let mut conn = MariaDb::connect(primary, None).await?;
                loop {
                    let status = global_status(&mut conn, "Rpl_semi_sync_master_clients").await?;
                    if status.iter().any(|(_, v)| v.parse::<u64>().unwrap_or(0) >= 1) {
                        break;
                    }
                    if Instant::now() > deadline {
                        return Err(stalled("wait for a semi-sync replica", format!("primary status: {status:?}")));
                    }
                    tokio::time::sleep(POLL).await;
                }
                let _ = conn.disconnect().await;
            }
            Ok(())
        })
    }

    fn lag(&self, primary: SocketAddr, replica: SocketAddr) -> BoxFuture<'_, Result<Lag, WorkloadError>> {
        Box::pin(async move {
            let (mut p, mut r) = (MariaDb::connect(primary, None).await?, MariaDb::connect(replica, None).await?);
            let committed: Option<String> =
                p.query_first("SELECT @@gtid_binlog_pos").await.map_err(query_err("read the primary's position"))?;
            let applied: Option<String> =
                r.query_first("SELECT @@gtid_slave_pos").await.map_err(query_err("read the replica's position"))?;
            let received = slave_status(&mut r).await?.map(|row| col(&row, "Gtid_IO_Pos")).unwrap_or_default();
            let _ = p.disconnect().await;
            let _ = r.disconnect().await;
            let committed = gtid_seq(&committed.unwrap_or_default());
            // The IO position lags the applied one while the IO thread
            // has not yet received anything new since it (re)started.
            let applied = gtid_seq(&applied.unwrap_or_default());
            let received = gtid_seq(&received).max(applied);
            Ok(Lag { unreceived: committed.saturating_sub(received), unapplied: committed.saturating_sub(applied) })
        })
    }

    fn sync_state(&self, primary: SocketAddr) -> BoxFuture<'_, Result<Option<SyncState>, WorkloadError>> {
        Box::pin(async move {
            let mut conn = MariaDb::connect(primary, None).await?;
            let enabled: Option<String> = conn
                .query_first("SELECT @@rpl_semi_sync_master_enabled")
                .await
                .map_err(query_err("read rpl_semi_sync_master_enabled"))?;
            if !matches!(enabled.as_deref(), Some("1" | "ON")) {
                return Ok(None);
            }
            let status = global_status(&mut conn, "Rpl_semi_sync_master_%").await?;
            let _ = conn.disconnect().await;
            let get = |name: &str| status.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or("");
            Ok(Some(SyncState {
                on: get("Rpl_semi_sync_master_status") == "ON",
                acknowledged: get("Rpl_semi_sync_master_yes_tx").parse().ok(),
                unacknowledged: get("Rpl_semi_sync_master_no_tx").parse().ok(),
            }))
        })
    }

    fn promote(&self, replica: SocketAddr) -> BoxFuture<'_, Result<(), WorkloadError>> {
        Box::pin(async move {
            let mut conn = MariaDb::connect(replica, None).await?;
            // The primary is gone: nothing more will arrive. What the relay
            // log holds was received (and, under semi-sync, acknowledged)
            // and must be applied before the replica takes writes.
            conn.query_drop("STOP SLAVE IO_THREAD").await.map_err(query_err("stop the replica's IO thread"))?;
            let deadline = Instant::now() + REPLICATION_DEADLINE;
            loop {
                let Some(row) = slave_status(&mut conn).await? else { break };
                // The IO thread may have stopped inside a transaction: the
                // SQL thread then applies every whole one and waits, with
                // the read position still past the executed one.
                let state = col(&row, "Slave_SQL_Running_State");
                let caught_up = state.starts_with("Slave has read all relay log")
                    || (col(&row, "Master_Log_File") == col(&row, "Relay_Master_Log_File")
                        && num(&row, "Read_Master_Log_Pos") == num(&row, "Exec_Master_Log_Pos"));
                if caught_up {
                    break;
                }
                let running = col(&row, "Slave_SQL_Running");
                if running != "Yes" || Instant::now() > deadline {
                    let error = col(&row, "Last_SQL_Error");
                    let detail = format!("SQL thread running: {running:?}, state {state:?}, last error {error:?}");
                    return Err(stalled("apply the relay log before the promotion", detail));
                }
                tokio::time::sleep(POLL).await;
            }
            for stmt in ["STOP SLAVE", "RESET SLAVE ALL", "SET GLOBAL read_only = OFF"] {
                conn.query_drop(stmt).await.map_err(query_err("promote the replica"))?;
            }
            let _ = conn.disconnect().await;
            Ok(())
        })
    }

    fn write_probe(&self, addr: SocketAddr) -> BoxFuture<'_, Result<(), WorkloadError>> {
        Box::pin(async move {
            let mut conn = MariaDb::connect(addr, None).await?;
            conn.query_drop(
                "CREATE TABLE IF NOT EXISTS crashlab.failover_probe (id INT PRIMARY KEY, n BIGINT NOT NULL) \
                 ENGINE=InnoDB",
            )
            .await
            .map_err(query_err("write into crashlab.failover_probe"))?;
            conn.query_drop("INSERT INTO crashlab.failover_probe VALUES (1, 1) ON DUPLICATE KEY UPDATE n = n + 1")
                .await
                .map_err(query_err("write into crashlab.failover_probe"))?;
            let _ = conn.disconnect().await;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gtid_positions_give_their_highest_sequence_number() {
        for (pos, seq) in [("", 0), ("0-1-1234", 1234), ("0-1-12,1-2-7", 12), ("0-2-5, 0-1-9", 9), ("junk", 0)] {
            assert_eq!(gtid_seq(pos), seq, "{pos}");
        }
    }

    #[test]
    fn only_the_primary_waits_for_a_semi_sync_replica() {
        let r = MariaDbReplication;
        let primary = r.server_args(Role::Primary, Mode::Sync, 1);
        assert!(!primary.iter().any(|a| a.contains("master-enabled")), "enabled once a replica follows");
        assert!(primary.contains(&"--rpl-semi-sync-master-wait-point=AFTER_SYNC".to_string()));
        assert!(primary.iter().any(|a| a.starts_with("--rpl-semi-sync-master-timeout=")));
        let replica = r.server_args(Role::Replica, Mode::Sync, 2);
        assert!(replica.contains(&"--rpl-semi-sync-slave-enabled=ON".to_string()));
        assert!(!replica.iter().any(|a| a.contains("master-enabled")));
        assert!(!r.server_args(Role::Primary, Mode::Async, 1).iter().any(|a| a.contains("semi-sync")));
    }
}
