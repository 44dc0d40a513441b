//! ZooKeeper: bank transfers as `multi` transactions — read both balances
//! with their versions, then one `multi` that sets both (each checked
//! against the version read) and creates the ledger znode — with the zxid
//! of every acknowledged transaction recorded; verified by reading every
//! znode back.
//!
//! The znodes are `/crashlab` (`accounts=<N>`), `/crashlab/accounts/<id>`
//! (the balance, in decimal) and `/crashlab/ledger/<id>` (`"src dst
//! amount"`). A `multi` whose version check failed (another client moved
//! one of the balances first) applied nothing and is logged as rolled
//! back. A server answers a write once its transaction log entry is
//! written and, unless `forceSync=no`, fsynced.
//!
//! The zxid a `multi` was given (every operation of one `multi` shares it)
//! is recorded beside the ack log, and the ledger znode read back must
//! carry it as its `czxid`: a znode of an acknowledged transaction with
//! another zxid means the server's history is not the one it
//! acknowledged. That check, and two more of the data tree's own
//! bookkeeping — each client's ledger znodes created in the order the
//! client sent them (increasing `czxid`), and the ledger's `numChildren`
//! equal to the children listed — are the engine check. Debian's
//! `zookeeper.jar` has `TxnLogToolkit`, which dumps a transaction log and
//! says `CRC ERROR` of an entry whose checksum fails, but no script runs
//! it; it is not wired in here (how it reads a log whose preallocated tail
//! a power cut left short is not tried yet).
//!
//! The image built from [`RECIPE`] is Debian trixie's `zookeeper` (3.9),
//! one standalone server with its data in `/data`. The scenario's
//! `server-args` are `KEY=VALUE` lines of `zoo.cfg`, after crashlab's and
//! so replacing them (`forceSync=no`), or JVM flags (`-D...`, `-X...`).
//! The driver is `zookeeper-client`.

use crate::driver::{Attempt, Attempter, ClientContext, InDoubt, run_clients};
use crate::message::{ledger_row, parse_ledger_row};
use crate::{
    ContainerSpec, INITIAL_BALANCE, ImageRecipe, Kind, LoadConfig, LoadOutcome, LogSeverity, Observation, RecipeFile,
    Transfer, Workload, WorkloadError,
};
use crate::{query_err, timed as timed_within};
use futures_util::future::BoxFuture;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use zookeeper_client as zk;

/// Image crashlab builds for this workload.
pub const IMAGE: &str = "crashlab/zookeeper:latest";

/// Where the server keeps its snapshots and transaction log in the container.
pub const DATA_DIR: &str = "/data";

/// The client port.
pub const PORT: u16 = 2181;

/// `kind = "zookeeper"`.
pub const KIND: Kind = Kind {
    name: "zookeeper",
    build: |image, server_args| {
        Box::new(Zookeeper { image: image.unwrap_or_else(|| IMAGE.to_owned()), server_args, zxids: Zxids::default() })
    },
};

const ROOT: &str = "/crashlab";
const ACCOUNTS: &str = "/crashlab/accounts";
const LEDGER: &str = "/crashlab/ledger";
/// Operations in one `multi` when the dataset is dropped or read back: far
/// below the server's 1 MiB packet limit (`jute.maxbuffer`).
const BATCH: usize = 500;
/// How long one call may take: a server killed mid-call never answers.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// The session's timeout; the server expires a session it has not heard
/// from for this long.
const SESSION_TIMEOUT: Duration = Duration::from_secs(10);

const ENTRYPOINT: &str = r#"#!/bin/sh
# crashlab's ZooKeeper entrypoint: one standalone server, its data in /data,
# clients on 2181 from any address, the log on the console (log4j 1.2 through
# slf4j, with the package's example log4j.properties). A KEY=VALUE
# argument is a zoo.cfg line after crashlab's (the last of a key wins); an
# argument starting with -D or -X goes to the JVM.
set -e
mkdir -p /data
cfg=/etc/zookeeper/crashlab.cfg
jvm=""
{
  echo "dataDir=/data"
  echo "clientPort=2181"
  echo "tickTime=2000"
  echo "admin.enableServer=false"
  echo "4lw.commands.whitelist=srvr,ruok"
  for a in "$@"; do
    case "$a" in
      -D*|-X*) ;;
      *=*) echo "$a" ;;
      *) echo "crashlab-entrypoint: $a is neither KEY=VALUE (a zoo.cfg line) nor a JVM flag" >&2; exit 2 ;;
    esac
  done
} >"$cfg"
for a in "$@"; do
  case "$a" in -D*|-X*) jvm="$jvm $a" ;; esac
done
# shellcheck disable=SC2086
exec java -Dzookeeper.log.dir=/tmp -Dzookeeper.root.logger=INFO,CONSOLE -Dzookeeper.jmx.log4j.disable=true \
  -cp /etc/zookeeper/conf_example:/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar $jvm \
  org.apache.zookeeper.server.quorum.QuorumPeerMain "$cfg"
"#;

/// Debian trixie's ZooKeeper with crashlab's entrypoint.
pub const RECIPE: ImageRecipe = ImageRecipe {
    name: "zookeeper",
    tag: IMAGE,
    suite: "trixie",
    packages: &["zookeeper"],
    files: &[RecipeFile { path: "usr/local/bin/crashlab-entrypoint", contents: ENTRYPOINT, mode: 0o755 }],
    prune: &["var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/locale"],
    changes: &[r#"ENTRYPOINT ["/usr/local/bin/crashlab-entrypoint"]"#, "EXPOSE 2181/tcp", "ENV LANG=C.UTF-8"],
};

/// The zxid each acknowledged transfer was given, by ledger id: what the
/// ledger znodes read back are held to. Shared by the load's clients and
/// the verifier; a new dataset (setup) clears it.
#[derive(Debug, Clone, Default)]
pub struct Zxids(Arc<Mutex<HashMap<u64, i64>>>);

impl Zxids {
    fn record(&self, id: u64, zxid: i64) {
        self.0.lock().expect("zxid lock").insert(id, zxid);
    }

    fn clear(&self) {
        self.0.lock().expect("zxid lock").clear();
    }

    fn snapshot(&self) -> HashMap<u64, i64> {
        self.0.lock().expect("zxid lock").clone()
    }
}

/// The ZooKeeper workload.
#[derive(Debug, Clone)]
pub struct Zookeeper {
    pub image: String,
    /// `zoo.cfg` lines (`forceSync=no`) and JVM flags.
    pub server_args: Vec<String>,
    pub zxids: Zxids,
}

impl Workload for Zookeeper {
    fn name(&self) -> &str {
        KIND.name
    }

    fn image_names(&self) -> &'static [&'static str] {
        &["zookeeper"]
    }

    fn log_severity(&self, line: &str) -> Option<LogSeverity> {
        log_severity(line)
    }

    fn container(&self) -> ContainerSpec {
        ContainerSpec::plain(&self.image, &self.server_args, DATA_DIR, PORT)
    }

    fn probe(&self, addr: SocketAddr) -> BoxFuture<'_, Result<(), WorkloadError>> {
        Box::pin(async move {
            let client = connect(addr).await?;
            timed(client.check_stat("/"), "read the root znode").await?;
            Ok(())
        })
    }

    fn setup(&self, addr: SocketAddr, load: LoadConfig) -> BoxFuture<'_, Result<(), WorkloadError>> {
        Box::pin(async move {
            self.zxids.clear();
            let client = connect(addr).await?;
            for parent in [LEDGER, ACCOUNTS] {
                delete_children(&client, parent).await?;
            }
            let mut drop = client.new_multi_writer();
            for path in [LEDGER, ACCOUNTS, ROOT] {
                if timed(client.check_stat(path), "look for the dataset").await?.is_some() {
                    drop.add_delete(path, None).map_err(query_err("drop the dataset"))?;
                }
            }
            drop.commit().await.map_err(query_err("drop the dataset"))?;
            let mut create = client.new_multi_writer();
            let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
            let add = |m: &mut zk::MultiWriter, path: &str, data: &str| {
                m.add_create(path, data.as_bytes(), &options).map_err(query_err("create the dataset"))
            };
            add(&mut create, ROOT, &format!("accounts={}", load.accounts))?;
            add(&mut create, ACCOUNTS, "")?;
            add(&mut create, LEDGER, "")?;
            for id in 0..load.accounts {
                add(&mut create, &account_path(id), &INITIAL_BALANCE.to_string())?;
            }
            create.commit().await.map_err(query_err("create the dataset"))?;
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
        let zxids = self.zxids.clone();
        Box::pin(run_clients(load, stop, grace, move |ctx| run_client(addr, zxids.clone(), ctx)))
    }

    /// ZooKeeper loads its snapshot and replays its log before it serves.
    fn recovering(&self, _addr: SocketAddr) -> BoxFuture<'_, Result<Option<bool>, WorkloadError>> {
        Box::pin(async { Ok(Some(false)) })
    }

    fn observe(&self, addr: SocketAddr) -> BoxFuture<'_, Result<Observation, WorkloadError>> {
        Box::pin(observe(addr, self.zxids.snapshot()))
    }
}

/// `call` with [`CALL_TIMEOUT`].
async fn timed<T, E: Into<Box<dyn std::error::Error + Send + Sync>>>(
    call: impl std::future::Future<Output = Result<T, E>>,
    what: &'static str,
) -> Result<T, WorkloadError> {
    timed_within(call, CALL_TIMEOUT, what).await
}

fn account_path(id: u32) -> String {
    format!("{ACCOUNTS}/{id}")
}

/// A session with the server at `addr`, failing rather than trying again
/// when the server does not answer.
async fn connect(addr: SocketAddr) -> Result<zk::Client, WorkloadError> {
    let cluster = addr.to_string();
    let connect = zk::Client::connector()
        .with_session_timeout(SESSION_TIMEOUT)
        .with_connection_timeout(CALL_TIMEOUT)
        .with_fail_eagerly()
        .connect(&cluster);
    match tokio::time::timeout(CALL_TIMEOUT, connect).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(WorkloadError::Connect { addr, source: e.into() }),
        Err(_) => Err(WorkloadError::Connect { addr, source: "no answer".into() }),
    }
}

/// Deletes every child of `parent` (none of which has children), a batch
/// per `multi`. A missing parent has none.
async fn delete_children(client: &zk::Client, parent: &str) -> Result<(), WorkloadError> {
    let children = match timed(client.list_children(parent), "list a znode's children").await {
        Ok(children) => children,
        Err(WorkloadError::Query { source, .. })
            if matches!(source.downcast_ref::<zk::Error>(), Some(zk::Error::NoNode)) =>
        {
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    for batch in children.chunks(BATCH) {
        let mut multi = client.new_multi_writer();
        for child in batch {
            multi.add_delete(&format!("{parent}/{child}"), None).map_err(query_err("drop the dataset"))?;
        }
        multi.commit().await.map_err(query_err("drop the dataset"))?;
    }
    Ok(())
}

async fn run_client(addr: SocketAddr, zxids: Zxids, ctx: ClientContext) -> Option<String> {
    match ctx.connect(connect(addr)).await {
        Ok(client) => ctx.run(&mut Transactor { client, zxids }).await,
        Err(e) => Some(e),
    }
}

struct Transactor {
    client: zk::Client,
    zxids: Zxids,
}

impl Attempter for Transactor {
    async fn attempt(&mut self, t: Transfer, in_doubt: InDoubt) -> Attempt {
        match transfer(&self.client, &t, &in_doubt).await {
            Ok(Some(zxid)) => {
                self.zxids.record(t.id, zxid);
                Attempt::Committed
            }
            Ok(None) => Attempt::RolledBack,
            Err(e) => Attempt::Failed { error: crate::error_chain(&e), rolled_back: false },
        }
    }
}

/// One transfer: read both balances, then a `multi` that applies the
/// transfer only if neither changed since. `Ok(Some(zxid))`: applied as
/// transaction `zxid`; `Ok(None)`: a balance had changed, nothing was
/// applied.
async fn transfer(client: &zk::Client, t: &Transfer, in_doubt: &InDoubt) -> Result<Option<i64>, WorkloadError> {
    let (src, dst) = (account_path(t.src), account_path(t.dst));
    let mut read = Vec::new();
    for path in [&src, &dst] {
        let (data, stat) = timed(client.get_data(path), "read a balance").await?;
        let balance = std::str::from_utf8(&data).ok().and_then(|b| b.parse::<i64>().ok());
        let balance = balance.ok_or_else(|| query_err("read a balance")(format!("{path} = {data:?}")))?;
        read.push((stat.version, balance));
    }
    let mut multi = client.new_multi_writer();
    let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    let ops = multi
        .add_set_data(&src, (read[0].1 - t.amount).to_string().as_bytes(), Some(read[0].0))
        .and_then(|()| multi.add_set_data(&dst, (read[1].1 + t.amount).to_string().as_bytes(), Some(read[1].0)))
        .and_then(|()| multi.add_create(&format!("{LEDGER}/{}", t.id), ledger_row(t).as_bytes(), &options));
    ops.map_err(query_err("build the transaction"))?;
    in_doubt.mark();
    match tokio::time::timeout(CALL_TIMEOUT, multi.commit()).await {
        Ok(Ok(results)) => match results.first() {
            Some(zk::MultiWriteResult::SetData { stat }) => Ok(Some(stat.mzxid)),
            other => Err(query_err("commit the transaction")(format!("unexpected first result {other:?}"))),
        },
        Ok(Err(zk::MultiWriteError::OperationFailed { source: zk::Error::BadVersion, .. })) => Ok(None),
        Ok(Err(e)) => Err(query_err("commit the transaction")(e)),
        Err(_) => Err(query_err("commit the transaction")(format!("no answer within {CALL_TIMEOUT:?}"))),
    }
}

/// One znode as read back: its name under its parent, data and `czxid`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Znode {
    name: String,
    data: String,
    czxid: i64,
}

/// The data and `czxid` of every child of `parent`, a batch per multi-read,
/// and the parent's own `numChildren`; `None` when the parent is missing.
async fn read_children(client: &zk::Client, parent: &str) -> Result<Option<(Vec<Znode>, i32)>, WorkloadError> {
    let (names, stat) = match timed(client.get_children(parent), "list a znode's children").await {
        Ok(found) => found,
        Err(WorkloadError::Query { source, .. })
            if matches!(source.downcast_ref::<zk::Error>(), Some(zk::Error::NoNode)) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let mut nodes = Vec::with_capacity(names.len());
    for batch in names.chunks(BATCH) {
        let mut reader = client.new_multi_reader();
        for name in batch {
            reader.add_get_data(&format!("{parent}/{name}")).map_err(query_err("read the dataset"))?;
        }
        let results = timed(reader.commit(), "read the dataset").await?;
        for (name, result) in batch.iter().zip(results) {
            match result {
                zk::MultiReadResult::Data { data, stat } => nodes.push(Znode {
                    name: name.clone(),
                    data: String::from_utf8_lossy(&data).into_owned(),
                    czxid: stat.czxid,
                }),
                other => return Err(query_err("read the dataset")(format!("{parent}/{name}: {other:?}"))),
            }
        }
    }
    Ok(Some((nodes, stat.num_children)))
}

async fn observe(addr: SocketAddr, zxids: HashMap<u64, i64>) -> Result<Observation, WorkloadError> {
    let client = connect(addr).await?;
    let root = match timed(client.get_data(ROOT), "read the dataset").await {
        Ok((data, _)) => String::from_utf8_lossy(&data).into_owned(),
        Err(WorkloadError::Query { source, .. })
            if matches!(source.downcast_ref::<zk::Error>(), Some(zk::Error::NoNode)) =>
        {
            return Ok(Observation::Gone { detail: format!("znode {ROOT} is missing") });
        }
        Err(e) => return Err(e),
    };
    if root.strip_prefix("accounts=").and_then(|n| n.parse::<u32>().ok()).is_none() {
        return Ok(Observation::Unreadable { detail: format!("{ROOT} = {root:?}") });
    }
    let Some((accounts, _)) = read_children(&client, ACCOUNTS).await? else {
        return Ok(Observation::Gone { detail: format!("znode {ACCOUNTS} is missing") });
    };
    let Some((ledger, num_children)) = read_children(&client, LEDGER).await? else {
        return Ok(Observation::Gone { detail: format!("znode {LEDGER} is missing") });
    };
    Ok(judge(&accounts, &ledger, num_children, &zxids))
}

/// The observation of the znodes read back, given the ledger's own
/// `numChildren` and the zxids the driver was given.
fn judge(accounts: &[Znode], ledger: &[Znode], num_children: i32, zxids: &HashMap<u64, i64>) -> Observation {
    let mut balances = Vec::new();
    for n in accounts {
        match (n.name.parse(), n.data.parse()) {
            (Ok(id), Ok(balance)) => balances.push((id, balance)),
            _ => return Observation::Unreadable { detail: format!("account {} = {:?}", n.name, n.data) },
        }
    }
    let mut rows = Vec::new();
    for n in ledger {
        match parse_ledger_row(&n.name, &n.data) {
            Some(t) => rows.push((t, n.czxid)),
            None => return Observation::Unreadable { detail: format!("ledger {} = {:?}", n.name, n.data) },
        }
    }
    let mut problems = Vec::new();
    if usize::try_from(num_children).ok() != Some(ledger.len()) {
        problems.push(format!("{LEDGER} says {num_children} children; {} were listed", ledger.len()));
    }
    let moved: Vec<String> = rows
        .iter()
        .filter_map(|(t, czxid)| zxids.get(&t.id).filter(|z| *z != czxid).map(|z| (t.id, z, czxid)))
        .take(3)
        .map(|(id, acked, czxid)| format!("ledger {id} acknowledged as zxid {acked:#x}, created as {czxid:#x}"))
        .collect();
    problems.extend(moved);
    // Ledger ids are client << 40 | sequence: in id order, each client's
    // znodes must have been created in the order it sent them.
    rows.sort_by_key(|(t, _)| t.id);
    for pair in rows.windows(2) {
        let ((a, za), (b, zb)) = (pair[0], pair[1]);
        if a.id >> 40 == b.id >> 40 && za >= zb {
            problems.push(format!("ledger {} (zxid {zb:#x}) created before ledger {} (zxid {za:#x})", b.id, a.id));
        }
    }
    let engine_check = if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) };
    Observation::Present {
        ledger: rows.into_iter().map(|(t, _)| t).collect(),
        balances,
        engine_check,
        engine_notes: vec![],
    }
}

/// ZooKeeper's console format (log4j `%d{ISO8601} - %-5p [...] - message`):
/// `2026-12-07 06:00:00,000 - WARN  [main:...] - message`.
pub fn log_severity(line: &str) -> Option<LogSeverity> {
    let (_, rest) = line.split_once(" - ")?;
    match rest.split_whitespace().next()? {
        "WARN" => Some(LogSeverity::Warning),
        "ERROR" => Some(LogSeverity::Error),
        "FATAL" => Some(LogSeverity::Fatal),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: impl ToString, data: &str, czxid: i64) -> Znode {
        Znode { name: name.to_string(), data: data.into(), czxid }
    }

    fn id(client: u32, seq: u64) -> u64 {
        crate::ack::ledger_id(client, seq)
    }

    #[test]
    fn znodes_read_back_in_order_and_with_their_acknowledged_zxids_pass() {
        let accounts = [node(0, "999990", 2), node(1, "1000010", 2)];
        let ledger = [node(id(0, 1), "0 1 5", 0x10), node(id(1, 1), "0 1 5", 0x11), node(id(0, 2), "0 1 0", 0x12)];
        let zxids = HashMap::from([(id(0, 1), 0x10), (id(1, 1), 0x11)]);
        let Observation::Present { ledger, balances, engine_check, .. } = judge(&accounts, &ledger, 3, &zxids) else {
            panic!()
        };
        assert_eq!(engine_check, Ok(()));
        assert_eq!(ledger.len(), 3);
        assert_eq!(balances, [(0, 999_990), (1, 1_000_010)]);
    }

    #[test]
    fn another_zxid_an_out_of_order_creation_and_a_wrong_child_count_fail_the_engine_check() {
        let ledger = [node(id(0, 1), "0 1 5", 0x10), node(id(0, 2), "0 1 5", 0x0f)];
        let zxids = HashMap::from([(id(0, 1), 0x10), (id(0, 2), 0x11)]);
        let Observation::Present { engine_check, .. } = judge(&[], &ledger, 2, &zxids) else { panic!() };
        let e = engine_check.unwrap_err();
        assert!(e.contains("acknowledged as zxid 0x11, created as 0xf"), "{e}");
        assert!(e.contains("created before"), "{e}");
        let Observation::Present { engine_check, .. } = judge(&[], &ledger[..1], 2, &HashMap::new()) else { panic!() };
        assert!(engine_check.unwrap_err().contains("says 2 children; 1 were listed"));
    }

    #[test]
    fn unparsable_znodes_are_unreadable() {
        assert!(matches!(judge(&[node("x", "1", 1)], &[], 0, &HashMap::new()), Observation::Unreadable { .. }));
        assert!(matches!(judge(&[], &[node(7, "1 2", 1)], 1, &HashMap::new()), Observation::Unreadable { .. }));
    }

    #[test]
    fn server_log_lines_are_classified_by_their_level() {
        let line = |level: &str| format!("2026-12-07 06:00:00,000 - {level:<5} [main:o.a.z.s.ZooKeeperServer@1] - x");
        assert_eq!(log_severity(&line("INFO")), None);
        assert_eq!(log_severity(&line("WARN")), Some(LogSeverity::Warning));
        assert_eq!(log_severity(&line("ERROR")), Some(LogSeverity::Error));
        assert_eq!(log_severity("Exception in thread main"), None);
    }

    #[test]
    fn server_args_go_to_the_entrypoint_in_order() {
        let w = (KIND.build)(None, vec!["forceSync=no".into()]);
        assert_eq!(w.container().cmd, ["forceSync=no"]);
        assert_eq!(w.container().image, IMAGE);
    }
}
