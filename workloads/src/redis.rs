//! Redis: bank transfers as `MULTI`/`EXEC` transactions over RESP, with
//! durability from the append-only file (AOF), verified by reading the
//! balances and the ledger back, and by `redis-check-aof` on the AOF, which
//! the harness runs inside the container after recovery
//! ([`Workload::engine_check_command`]).
//!
//! The dataset is two hashes: `crashlab:accounts` (account id → balance) and
//! `crashlab:ledger` (transfer id → `"src dst amount"`). A transfer queues
//! two `HINCRBY`s and one `HSET` after `MULTI`, waits for them to be queued,
//! and only then sends `EXEC`, so a transfer that failed before `EXEC` went
//! out cannot have been applied.
//!
//! # Durability, as measured by the test suite
//!
//! Redis writes the AOF to the kernel before it replies to a client, under
//! every `appendfsync` policy; the policy only decides when it fsyncs. A
//! process kill keeps the kernel's page cache, so `always`, `everysec` and
//! `no` all come back `intact` from Docker-only faults; only a power cut
//! tells them apart. With `appendonly no` Redis keeps only RDB snapshots: a
//! kill loses every write since the last one (`lost-writes`; the driver
//! takes one at setup), while a graceful stop saves a snapshot first and
//! loses nothing.
//!
//! The driver speaks RESP itself: the handful of commands it needs do not
//! justify a client library, and owning the socket makes exactly clear
//! when `EXEC` has been sent.
//!
//! The image built from [`RECIPE`] is Debian's `redis-server`; the
//! container always starts with `--appendonly yes`, and the scenario's
//! `server-args` come after it, so `--appendfsync always|everysec|no` or
//! `--appendonly no` override it. A registry image such as `redis:7` works
//! too.

use crate::driver::{Attempt, Attempter, ClientContext, InDoubt, run_clients};
use crate::{
    ContainerSpec, INITIAL_BALANCE, ImageRecipe, Kind, LoadConfig, LoadOutcome, LogSeverity, Observation, RecipeFile,
    Transfer, Workload, WorkloadError,
};
use futures_util::future::BoxFuture;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufStream};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// Image crashlab builds for this workload.
pub const IMAGE: &str = "crashlab/redis:latest";

/// Where Redis keeps its files in the container, as in the official image.
pub const DATA_DIR: &str = "/data";

/// `kind = "redis"`.
pub const KIND: Kind = Kind {
    name: "redis",
    build: |image, server_args| Box::new(Redis { image: image.unwrap_or_else(|| IMAGE.to_owned()), server_args }),
};

const ACCOUNTS: &str = "crashlab:accounts";
const LEDGER: &str = "crashlab:ledger";

const ENTRYPOINT: &str = r#"#!/bin/sh
# crashlab's Redis entrypoint: own the data directory (a fresh volume, bind
# mount or tmpfs arrives owned by root), then become redis-server as user
# redis so that signals reach the server directly.
set -e
mkdir -p /data
chown redis:redis /data
cd /data
exec setpriv --reuid=redis --regid=redis --init-groups \
  redis-server --bind 0.0.0.0 --protected-mode no --dir /data "$@"
"#;

/// Debian's Redis with crashlab's entrypoint.
pub const RECIPE: ImageRecipe = ImageRecipe {
    name: "redis",
    tag: IMAGE,
    suite: "bookworm",
    packages: &["redis-server"],
    files: &[RecipeFile { path: "usr/local/bin/crashlab-entrypoint", contents: ENTRYPOINT, mode: 0o755 }],
    prune: &["var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/locale"],
    changes: &[r#"ENTRYPOINT ["/usr/local/bin/crashlab-entrypoint"]"#, "EXPOSE 6379/tcp", "ENV LANG=C.UTF-8"],
};

/// The Redis workload.
#[derive(Debug, Clone)]
pub struct Redis {
    pub image: String,
    /// Extra `redis-server` flags, such as `--appendfsync always`; they
    /// follow `--appendonly yes` and override it.
    pub server_args: Vec<String>,
}

impl Redis {
    /// The server's flags: AOF on, then the scenario's.
    fn args(&self) -> Vec<String> {
        let mut args = vec!["--appendonly".to_owned(), "yes".to_owned()];
        args.extend(self.server_args.iter().cloned());
        args
    }

    /// The value of the last `--name value` in the flags, as Redis reads
    /// them (a later flag overrides an earlier one).
    fn flag(&self, name: &str) -> Option<String> {
        let args = self.args();
        let flag = format!("--{name}");
        args.windows(2).rev().find(|w| w[0].eq_ignore_ascii_case(&flag)).map(|w| w[1].clone())
    }

    fn aof_enabled(&self) -> bool {
        self.flag("appendonly").is_some_and(|v| v.eq_ignore_ascii_case("yes"))
    }
}

impl Workload for Redis {
    fn name(&self) -> &str {
        KIND.name
    }

    /// Images that speak Redis's protocol: Redis's and Valkey's.
    fn image_names(&self) -> &'static [&'static str] {
        &["redis", "valkey"]
    }

    /// The driver logs in without credentials; `redis-cli` likewise.
    fn client_command(&self) -> Option<String> {
        Some("redis-cli".into())
    }

    fn log_severity(&self, line: &str) -> Option<LogSeverity> {
        log_severity(line)
    }

    fn container(&self) -> ContainerSpec {
        ContainerSpec {
            image: self.image.clone(),
            cmd: self.args(),
            env: vec![],
            data_dir: DATA_DIR.into(),
            port: 6379,
            // SIGTERM: Redis saves (if configured to) and exits.
            stop_signal: None,
            ready_log: None,
            user: None,
            binds: vec![],
            entrypoint: None,
        }
    }

    fn engine_check_command(&self) -> Option<Vec<String>> {
        // Without an AOF there is nothing for redis-check-aof to read; the
        // RDB snapshot, if any, was already loaded (and so parsed) by the
        // server at start.
        if !self.aof_enabled() {
            return None;
        }
        let dir = self.flag("appenddirname").unwrap_or_else(|| "appendonlydir".into());
        let file = self.flag("appendfilename").unwrap_or_else(|| "appendonly.aof".into());
        Some(vec!["redis-check-aof".into(), format!("{DATA_DIR}/{dir}/{file}.manifest")])
    }

    fn probe(&self, addr: SocketAddr) -> BoxFuture<'_, Result<(), WorkloadError>> {
        Box::pin(async move {
            let mut conn = Conn::connect(addr).await?;
            // While it loads its AOF, Redis answers -LOADING: not ready.
            match conn.command(&["PING"]).await.map_err(query_err("run PING"))? {
                Reply::Simple(s) if s == "PONG" => Ok(()),
                other => Err(unexpected("run PING", other)),
            }
        })
    }

    fn setup(&self, addr: SocketAddr, load: LoadConfig) -> BoxFuture<'_, Result<(), WorkloadError>> {
        Box::pin(async move {
            let mut conn = Conn::connect(addr).await?;
            conn.checked(&["DEL", ACCOUNTS, LEDGER], "drop the dataset").await?;
            let balance = INITIAL_BALANCE.to_string();
            let ids: Vec<String> = (0..load.accounts).map(|id| id.to_string()).collect();
            let mut cmd = vec!["HSET", ACCOUNTS];
            for id in &ids {
                cmd.extend([id.as_str(), balance.as_str()]);
            }
            conn.checked(&cmd, "create the accounts").await?;
            // The dataset as set up is the baseline, durable whatever the
            // persistence settings (with the AOF off, a snapshot is all
            // Redis reloads): only what the load writes is at stake.
            conn.checked(&["SAVE"], "save the dataset").await?;
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
        Box::pin(run_clients(load, stop, grace, move |ctx| run_client(addr, ctx)))
    }

    /// Redis answers queries only once it has loaded its files (`LOADING`
    /// before): nothing of its recovery goes on after it answers.
    fn recovering(&self, _addr: SocketAddr) -> BoxFuture<'_, Result<Option<bool>, WorkloadError>> {
        Box::pin(async { Ok(Some(false)) })
    }

    fn observe(&self, addr: SocketAddr) -> BoxFuture<'_, Result<Observation, WorkloadError>> {
        Box::pin(async move {
            let mut conn = Conn::connect(addr).await?;
            let balances = match conn.command(&["HGETALL", ACCOUNTS]).await.map_err(query_err("read the accounts"))? {
                Reply::Array(Some(items)) => items,
                other => return Err(unexpected("read the accounts", other)),
            };
            if balances.is_empty() {
                return Ok(Observation::Gone { detail: format!("hash {ACCOUNTS} is missing") });
            }
            let ledger = match conn.command(&["HGETALL", LEDGER]).await.map_err(query_err("read the ledger"))? {
                Reply::Array(Some(items)) => items,
                other => return Err(unexpected("read the ledger", other)),
            };
            let balances = match pairs(balances, |id, v| Some((id.parse().ok()?, v.parse().ok()?))) {
                Ok(b) => b,
                Err(bad) => return Ok(Observation::Unreadable { detail: format!("account entry {bad}") }),
            };
            let ledger = match pairs(ledger, parse_ledger_row) {
                Ok(l) => l,
                Err(bad) => return Ok(Observation::Unreadable { detail: format!("ledger entry {bad}") }),
            };
            let engine_check = match conn.command(&["INFO", "persistence"]).await {
                Ok(Reply::Bulk(Some(info))) => persistence_verdict(&String::from_utf8_lossy(&info)),
                Ok(other) => Err(format!("INFO persistence answered {other:?}")),
                Err(e) => Err(format!("INFO persistence failed: {e}")),
            };
            Ok(Observation::Present { ledger, balances, engine_check, engine_notes: vec![] })
        })
    }
}

/// Reads `INFO persistence`: a failed AOF write or fsync means Redis could
/// not keep what it was told to (it then refuses writes, but what it
/// already acknowledged under `everysec`/`no` may be gone).
fn persistence_verdict(info: &str) -> Result<(), String> {
    let field =
        |name: &str| info.lines().find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':'))).map(str::trim);
    match field("aof_last_write_status") {
        Some("ok") | None => Ok(()),
        Some(status) => Err(format!("aof_last_write_status:{status}")),
    }
}

fn parse_ledger_row(id: &str, value: &str) -> Option<Transfer> {
    let mut parts = value.split(' ');
    let t = Transfer {
        id: id.parse().ok()?,
        src: parts.next()?.parse().ok()?,
        dst: parts.next()?.parse().ok()?,
        amount: parts.next()?.parse().ok()?,
    };
    parts.next().is_none().then_some(t)
}

/// Pairs up a flat `HGETALL` reply; `Err` carries the first entry that does
/// not parse.
fn pairs<T>(items: Vec<Reply>, parse: impl Fn(&str, &str) -> Option<T>) -> Result<Vec<T>, String> {
    let text = |r: &Reply| match r {
        Reply::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    };
    items
        .chunks(2)
        .map(|kv| match kv {
            [k, v] => match (text(k), text(v)) {
                (Some(k), Some(v)) => parse(&k, &v).ok_or_else(|| format!("{k:?} = {v:?}")),
                _ => Err(format!("{kv:?}")),
            },
            _ => Err(format!("{kv:?} (odd number of items)")),
        })
        .collect()
}

fn query_err(what: &'static str) -> impl FnOnce(RespError) -> WorkloadError {
    move |e| WorkloadError::Query { what, source: e.into() }
}

fn unexpected(what: &'static str, reply: Reply) -> WorkloadError {
    WorkloadError::Query { what, source: RespError::Unexpected(format!("{reply:?}")).into() }
}

/// Runs transfers until told to stop. Returns the error that ended it early,
/// if one did.
async fn run_client(addr: SocketAddr, ctx: ClientContext) -> Option<String> {
    match ctx.connect(Conn::connect(addr)).await {
        Ok(mut conn) => ctx.run(&mut conn).await,
        Err(e) => Some(e),
    }
}

impl Attempter for Conn {
    async fn attempt(&mut self, t: Transfer, in_doubt: InDoubt) -> Attempt {
        match transfer(self, &t, &in_doubt).await {
            Ok(()) => Attempt::Committed,
            // EXEC refused (EXECABORT): nothing was applied.
            Err(e) => Attempt::Failed {
                rolled_back: matches!(&e, RespError::Server(m) if m.starts_with("EXECABORT")),
                error: e.to_string(),
            },
        }
    }
}

/// One transfer in one `MULTI`/`EXEC`. The queued commands go out together;
/// `EXEC` goes out alone, once every command was queued and the log says
/// the transfer is in doubt.
async fn transfer(conn: &mut Conn, t: &Transfer, in_doubt: &InDoubt) -> Result<(), RespError> {
    let (src, dst) = (t.src.to_string(), t.dst.to_string());
    let (minus, plus) = ((-t.amount).to_string(), t.amount.to_string());
    let (id, row) = (t.id.to_string(), format!("{} {} {}", t.src, t.dst, t.amount));
    conn.send(&["MULTI"]);
    conn.send(&["HINCRBY", ACCOUNTS, &src, &minus]);
    conn.send(&["HINCRBY", ACCOUNTS, &dst, &plus]);
    conn.send(&["HSET", LEDGER, &id, &row]);
    conn.flush().await?;
    let mut queued = Ok(());
    for _ in 0..4 {
        // Read every reply, even after an error, to keep the stream in step.
        if let Err(e) = conn.read().await?.ok() {
            queued = queued.and(Err(e));
        }
    }
    if let Err(e) = queued {
        conn.send(&["DISCARD"]);
        conn.flush().await?;
        conn.read().await?;
        return Err(e);
    }
    in_doubt.mark();
    conn.send(&["EXEC"]);
    conn.flush().await?;
    match conn.read().await? {
        Reply::Array(Some(results)) => results.into_iter().try_for_each(|r| r.ok().map(drop)),
        other => other.ok().map(drop),
    }
}

/// A failed exchange with Redis.
#[derive(Debug, thiserror::Error)]
pub enum RespError {
    #[error("talk to redis")]
    Io(#[from] std::io::Error),
    #[error("redis said: {0}")]
    Server(String),
    #[error("read a reply: {0}")]
    Protocol(String),
    #[error("make sense of the reply {0}")]
    Unexpected(String),
}

/// A RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reply {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The reply, or the server's error as an error.
    fn ok(self) -> Result<Reply, RespError> {
        match self {
            Reply::Error(e) => Err(RespError::Server(e)),
            other => Ok(other),
        }
    }
}

/// A RESP connection: commands are buffered by [`Conn::send`] and go out on
/// [`Conn::flush`], so several can share one write (pipelining).
struct Conn {
    stream: BufStream<TcpStream>,
    out: Vec<u8>,
}

impl Conn {
    async fn connect(addr: SocketAddr) -> Result<Conn, WorkloadError> {
        let stream = TcpStream::connect(addr).await.map_err(|e| WorkloadError::Connect { addr, source: e.into() })?;
        let _ = stream.set_nodelay(true);
        Ok(Conn { stream: BufStream::new(stream), out: Vec::new() })
    }

    fn send(&mut self, args: &[&str]) {
        encode(&mut self.out, args);
    }

    async fn flush(&mut self) -> Result<(), RespError> {
        self.stream.write_all(&self.out).await?;
        self.stream.flush().await?;
        self.out.clear();
        Ok(())
    }

    async fn command(&mut self, args: &[&str]) -> Result<Reply, RespError> {
        self.send(args);
        self.flush().await?;
        self.read().await
    }

    /// Runs one command; an error reply is an error.
    async fn checked(&mut self, args: &[&str], what: &'static str) -> Result<Reply, WorkloadError> {
        self.command(args).await.and_then(Reply::ok).map_err(query_err(what))
    }

    async fn read(&mut self) -> Result<Reply, RespError> {
        let line = self.line().await?;
        let (kind, rest) = line.split_at(1);
        let number = || rest.parse::<i64>().map_err(|_| RespError::Protocol(format!("bad length in {line:?}")));
        Ok(match kind {
            "+" => Reply::Simple(rest.to_owned()),
            "-" => Reply::Error(rest.to_owned()),
            ":" => Reply::Integer(number()?),
            "$" => match number()? {
                n if n < 0 => Reply::Bulk(None),
                n => {
                    let mut data = vec![0; n as usize + 2];
                    self.stream.read_exact(&mut data).await?;
                    data.truncate(n as usize);
                    Reply::Bulk(Some(data))
                }
            },
            "*" => match number()? {
                n if n < 0 => Reply::Array(None),
                n => {
                    let mut items = Vec::with_capacity(n as usize);
                    for _ in 0..n {
                        items.push(Box::pin(self.read()).await?);
                    }
                    Reply::Array(Some(items))
                }
            },
            _ => return Err(RespError::Protocol(format!("unknown reply type in {line:?}"))),
        })
    }

    /// One CRLF-terminated line, without the CRLF.
    async fn line(&mut self) -> Result<String, RespError> {
        let mut line = String::new();
        if self.stream.read_line(&mut line).await? == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
        match line.strip_suffix("\r\n") {
            Some(l) if !l.is_empty() => Ok(l.to_owned()),
            _ => Err(RespError::Protocol(format!("truncated line {line:?}"))),
        }
    }
}

fn encode(out: &mut Vec<u8>, args: &[&str]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// What in a `#` line says the server stops, and what says something
/// failed; compared in lower case. Redis logs both at its warning level, as
/// it does the start-up banner (`# Server initialized`), so the level alone
/// says no more than "warning".
const FATAL_MARKS: [&str; 8] = [
    "exiting",
    "fatal",
    "unrecoverable",
    "bad file format",
    "unexpected end of file",
    "crashed by signal",
    "bug report start",
    "guru meditation",
];
const ERROR_MARKS: [&str; 5] = ["error", "failed", "can't", "unable to", "short write"];

/// Redis's format: `1:M 01 Dec 2026 13:43:01.946 # Short write ...`, the
/// level being the character after the time (`.` debug, `-` verbose, `*`
/// notice, `#` warning); and the `*** FATAL CONFIG FILE ERROR` block that
/// `redis-server` prints without a prefix when its arguments are wrong.
pub fn log_severity(line: &str) -> Option<LogSeverity> {
    if line.starts_with("*** FATAL CONFIG FILE ERROR") {
        return Some(LogSeverity::Fatal);
    }
    let mut parts = line.splitn(7, ' ');
    let role = parts.next()?;
    let level = parts.nth(4)?;
    let message = parts.next()?.to_lowercase();
    if !role.contains(':') || level != "#" {
        return None;
    }
    Some(if FATAL_MARKS.iter().any(|m| message.contains(m)) {
        LogSeverity::Fatal
    } else if ERROR_MARKS.iter().any(|m| message.contains(m)) {
        LogSeverity::Error
    } else {
        LogSeverity::Warning
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_encoded_as_resp_arrays() {
        let mut out = Vec::new();
        encode(&mut out, &["HSET", "k", ""]);
        assert_eq!(out, b"*3\r\n$4\r\nHSET\r\n$1\r\nk\r\n$0\r\n\r\n");
    }

    #[tokio::test]
    async fn replies_are_parsed() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            s.write_all(b"+OK\r\n-ERR no\r\n:42\r\n$-1\r\n*2\r\n$3\r\nabc\r\n*1\r\n:1\r\n*-1\r\n").await.unwrap();
        });
        let mut conn = Conn::connect(addr).await.unwrap();
        assert_eq!(conn.read().await.unwrap(), Reply::Simple("OK".into()));
        assert!(matches!(conn.read().await.unwrap().ok(), Err(RespError::Server(m)) if m == "ERR no"));
        assert_eq!(conn.read().await.unwrap(), Reply::Integer(42));
        assert_eq!(conn.read().await.unwrap(), Reply::Bulk(None));
        let nested =
            Reply::Array(Some(vec![Reply::Bulk(Some(b"abc".to_vec())), Reply::Array(Some(vec![Reply::Integer(1)]))]));
        assert_eq!(conn.read().await.unwrap(), nested);
        assert_eq!(conn.read().await.unwrap(), Reply::Array(None));
        assert!(matches!(conn.read().await, Err(RespError::Io(_))));
        server.await.unwrap();
    }

    #[test]
    fn later_flags_override_earlier_ones() {
        let w =
            |args: &[&str]| Redis { image: IMAGE.into(), server_args: args.iter().map(|s| s.to_string()).collect() };
        let durable = w(&["--appendfsync", "always"]);
        assert_eq!(durable.container().cmd, ["--appendonly", "yes", "--appendfsync", "always"]);
        assert_eq!(
            durable.engine_check_command().unwrap(),
            ["redis-check-aof", "/data/appendonlydir/appendonly.aof.manifest"]
        );
        assert_eq!(w(&["--appendonly", "no"]).engine_check_command(), None);
        let renamed = w(&["--appenddirname", "aof", "--appendfilename", "x.aof"]);
        assert_eq!(renamed.engine_check_command().unwrap()[1], "/data/aof/x.aof.manifest");
    }

    #[test]
    fn ledger_rows_and_persistence_status_parse() {
        assert_eq!(parse_ledger_row("7", "1 2 30"), Some(Transfer { id: 7, src: 1, dst: 2, amount: 30 }));
        assert_eq!(parse_ledger_row("7", "1 2"), None);
        assert_eq!(parse_ledger_row("7", "1 2 3 4"), None);
        assert_eq!(persistence_verdict("aof_enabled:1\r\naof_last_write_status:ok\r\n"), Ok(()));
        assert!(persistence_verdict("aof_last_write_status:err\r\n").is_err());
    }

    /// Lines from crashlab/redis (7.0.15): start-up, an AOF with
    /// `appendfsync always` filling an 8 MiB tmpfs, an AOF with a truncated
    /// and with a garbled tail, and a bad argument.
    #[test]
    fn server_log_lines_are_classified_by_level_and_message() {
        use LogSeverity::*;
        for (line, severity) in [
            ("1:C 01 Dec 2026 13:42:53.824 # oO0OoO0OoO0Oo Redis is starting oO0OoO0OoO0Oo", Some(Warning)),
            ("1:M 01 Dec 2026 13:42:53.826 # Server initialized", Some(Warning)),
            (
                "1:M 01 Dec 2026 13:42:53.826 # WARNING Memory overcommit must be enabled! Without it, a background save or replication may fail under low memory condition. Being disabled, it can can also cause failures without low memory condition, see https://github.com/jemalloc/jemalloc/issues/1328. To fix this issue add 'vm.overcommit_memory = 1' to /etc/sysctl.conf and then reboot or run the command 'sysctl vm.overcommit_memory=1' for this to take effect.",
                Some(Warning),
            ),
            ("1:M 01 Dec 2026 13:42:53.832 * Ready to accept connections", None),
            (
                "1:M 01 Dec 2026 13:43:01.946 # Short write while writing to the AOF file: (nwritten=379742, expected=400033)",
                Some(Error),
            ),
            (
                "1:M 01 Dec 2026 13:43:01.946 # Can't recover from AOF write error when the AOF fsync policy is 'always'. Exiting...",
                Some(Fatal),
            ),
            (
                "20:M 01 Dec 2026 13:43:15.907 # !!! Warning: short read while loading the AOF file appendonly.aof.1.incr.aof!!!",
                Some(Warning),
            ),
            (
                "20:M 01 Dec 2026 13:43:15.907 # AOF appendonly.aof.1.incr.aof loaded anyway because aof-load-truncated is enabled",
                Some(Warning),
            ),
            (
                "22:M 01 Dec 2026 13:43:08.523 # Unexpected end of file reading the append only file appendonly.aof.1.incr.aof. You can: 1) Make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest>. 2) Alternatively you can set the 'aof-load-truncated' configuration option to yes and restart the server.",
                Some(Fatal),
            ),
            (
                "28:M 01 Dec 2026 13:43:08.538 # Bad file format reading the append only file appendonly.aof.1.incr.aof: make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest>",
                Some(Fatal),
            ),
            ("20:M 01 Dec 2026 13:43:17.929 # Redis is now ready to exit, bye bye...", Some(Warning)),
            ("*** FATAL CONFIG FILE ERROR (Redis 7.0.15) ***", Some(Fatal)),
            (">>> 'appendfsync \"sometimes\"'", None),
            ("ERR unknown command 'NOSUCHCMD', with args beginning with: ", None),
        ] {
            assert_eq!(log_severity(line), severity, "{line}");
        }
    }
}
