//! PostgreSQL streaming replication: a standby seeded with `pg_basebackup`
//! and following the primary's WAL, asynchronous or synchronous
//! (`synchronous_standby_names` naming the standby, with the scenario's
//! `synchronous_commit`, `on` by default: a commit waits until the standby
//! flushed its WAL; `remote_apply` waits until it applied it).
//!
//! PostgreSQL never falls back to asynchronous: with its standby gone, a
//! synchronous primary's commits wait for ever. So its [`SyncState`] has
//! no counters, and `on` means the setting is in force. Lag is in WAL bytes.

use crate::WorkloadError;
use crate::postgres::{Postgres, connect, query_err};
use crate::replication::{Lag, Mode, Replication, Role, Seed, SyncState};
use futures_util::future::BoxFuture;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(50);
/// Where the base backup is made in the primary's container.
const SEED_DIR: &str = "/tmp/crashlab-seed/data";

/// PostgreSQL's streaming replication.
#[derive(Debug, Clone, Copy, Default)]
pub struct PostgresReplication;

async fn client(addr: SocketAddr) -> Result<tokio_postgres::Client, WorkloadError> {
    connect(&Postgres::config(addr), addr).await.map_err(|e| WorkloadError::Connect { addr, source: e.into() })
}

async fn lsn(client: &tokio_postgres::Client, expr: &str, what: &'static str) -> Result<u64, WorkloadError> {
    let row = client
        .query_one(&format!("SELECT COALESCE(pg_wal_lsn_diff({expr}, '0/0'), 0)::bigint"), &[])
        .await
        .map_err(query_err(what))?;
    Ok(row.get::<_, i64>(0).max(0) as u64)
}

fn stalled(what: &'static str, detail: String) -> WorkloadError {
    WorkloadError::Query { what, source: detail.into() }
}

impl Replication for PostgresReplication {
    fn lag_unit(&self) -> &'static str {
        "WAL bytes"
    }

    fn server_args(&self, role: Role, mode: Mode, _server_id: u32) -> Vec<String> {
        // A standby cut off its primary notices within 2 s and retries
        // every second once the network heals.
        let mut args: Vec<String> = [
            "wal_level=replica",
            "max_wal_senders=10",
            "hot_standby=on",
            "wal_sender_timeout=2s",
            "wal_receiver_timeout=2s",
            "wal_retrieve_retry_interval=1s",
        ]
        .iter()
        .flat_map(|s| ["-c".to_owned(), (*s).to_owned()])
        .collect();
        if (role, mode) == (Role::Primary, Mode::Sync) {
            // The standby's `application_name`, set by the seed.
            args.extend(["-c".into(), format!("synchronous_standby_names={}", crate::postgres::REPLICA_NAME)]);
        }
        args
    }

    fn seed(&self, primary_host: &str, primary_port: u16, replica_host: &str) -> Option<Seed> {
        let script = format!(
            r#"set -e
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
export PGDATA=/var/lib/postgresql/data
as_postgres() {{ setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }}
if ! grep -q '^host replication all 0.0.0.0/0 trust' "$PGDATA/pg_hba.conf"; then
  echo 'host replication all 0.0.0.0/0 trust' >>"$PGDATA/pg_hba.conf"
  as_postgres "$bin/pg_ctl" reload -D "$PGDATA" >/dev/null
fi
rm -rf /tmp/crashlab-seed && mkdir -p /tmp/crashlab-seed && chown postgres:postgres /tmp/crashlab-seed
as_postgres "$bin/pg_basebackup" -h 127.0.0.1 -U postgres -D {SEED_DIR} -X stream -c fast
touch {SEED_DIR}/standby.signal
echo "primary_conninfo = 'host={primary_host} port={primary_port} user=postgres application_name={replica_host}'" \
  >>{SEED_DIR}/postgresql.auto.conf
"#
        );
        Some(Seed {
            command: vec!["sh".into(), "-c".into(), script],
            copy: SEED_DIR.into(),
            into: "/var/lib/postgresql".into(),
        })
    }

    fn start_replica(
        &self,
        primary: SocketAddr,
        _replica: SocketAddr,
        _primary_host: String,
        _primary_port: u16,
        mode: Mode,
    ) -> BoxFuture<'_, Result<(), WorkloadError>> {
        Box::pin(async move {
            // The seed made it a standby: wait until the primary sees it
            // stream (and, when synchronous, counts it as its sync standby).
            let client = client(primary).await?;
            let wanted = if mode == Mode::Sync { "sync" } else { "async" };
            let deadline = Instant::now() + DEADLINE;
            loop {
                let rows = client
                    .query("SELECT state, sync_state FROM pg_stat_replication", &[])
                    .await
                    .map_err(query_err("read pg_stat_replication"))?;
                let states: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
                if states.iter().any(|(state, sync)| state == "streaming" && sync == wanted) {
                    return Ok(());
                }
                if Instant::now() > deadline {
                    return Err(stalled("wait for the standby to stream", format!("{states:?}")));
                }
                tokio::time::sleep(POLL).await;
            }
        })
    }

    fn lag(&self, primary: SocketAddr, replica: SocketAddr) -> BoxFuture<'_, Result<Lag, WorkloadError>> {
        Box::pin(async move {
            let (p, r) = (client(primary).await?, client(replica).await?);
            let written = lsn(&p, "pg_current_wal_lsn()", "read the primary's WAL position").await?;
            let applied = lsn(&r, "pg_last_wal_replay_lsn()", "read the standby's replay position").await?;
            let received =
                lsn(&r, "pg_last_wal_receive_lsn()", "read the standby's receive position").await?.max(applied);
            Ok(Lag { unreceived: written.saturating_sub(received), unapplied: written.saturating_sub(applied) })
        })
    }

    fn sync_state(&self, primary: SocketAddr) -> BoxFuture<'_, Result<Option<SyncState>, WorkloadError>> {
        Box::pin(async move {
            let client = client(primary).await?;
            let row = client
                .query_one("SELECT current_setting('synchronous_standby_names')", &[])
                .await
                .map_err(query_err("read synchronous_standby_names"))?;
            let names: String = row.get(0);
            Ok((!names.is_empty()).then_some(SyncState { on: true, acknowledged: None, unacknowledged: None }))
        })
    }

    fn promote(&self, replica: SocketAddr) -> BoxFuture<'_, Result<(), WorkloadError>> {
        Box::pin(async move {
            let client = client(replica).await?;
            // pg_promote replays every WAL record received, then ends
            // recovery; with wait, it returns once the server takes writes.
            let row =
                client.query_one("SELECT pg_promote(true, 60)", &[]).await.map_err(query_err("promote the standby"))?;
            if !row.get::<_, bool>(0) {
                return Err(stalled("promote the standby", "pg_promote returned false within 60 s".into()));
            }
            Ok(())
        })
    }

    fn write_probe(&self, addr: SocketAddr) -> BoxFuture<'_, Result<(), WorkloadError>> {
        Box::pin(async move {
            let client = client(addr).await?;
            client
                .batch_execute(
                    "CREATE TABLE IF NOT EXISTS crashlab.failover_probe (id int PRIMARY KEY, n bigint NOT NULL); \
                     INSERT INTO crashlab.failover_probe VALUES (1, 1) \
                     ON CONFLICT (id) DO UPDATE SET n = crashlab.failover_probe.n + 1",
                )
                .await
                .map_err(query_err("write into crashlab.failover_probe"))?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_primary_names_a_synchronous_standby() {
        let r = PostgresReplication;
        let sync = r.server_args(Role::Primary, Mode::Sync, 1).join(" ");
        assert!(sync.contains("synchronous_standby_names=h2"), "{sync}");
        assert!(!r.server_args(Role::Replica, Mode::Sync, 2).join(" ").contains("synchronous_standby_names"));
        assert!(!r.server_args(Role::Primary, Mode::Async, 1).join(" ").contains("synchronous_standby_names"));
        let seed = r.seed("h1", 5432, "h2").unwrap();
        assert!(seed.command[2].contains("application_name=h2"));
    }
}
