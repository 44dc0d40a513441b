//! etcd: bank transfers as v3 transactions — read both balances with
//! their revisions, then one `Txn` that compares both `mod_revision`s and,
//! if neither changed, puts both new balances and the ledger row — over
//! etcd's JSON gateway (`/v3/kv/...` on the client port), verified by
//! range reads of both prefixes at the latest revision.
//!
//! The keys are `crashlab/accounts/<id>` (the balance, in decimal) and
//! `crashlab/ledger/<id>` (`"src dst amount"`). A transaction whose
//! comparison failed (another client moved one of the balances first)
//! applied nothing and is logged as rolled back. etcd answers a `Txn` once
//! the raft entry carrying it is committed, which on one member means
//! written to its write-ahead log and, unless `--unsafe-no-fsync`, synced.
//!
//! The engine's own checks: after the range reads, the member's alarms
//! (`/v3/maintenance/alarm`; a `CORRUPT` or `NOSPACE` alarm fails the
//! check), and, in the container ([`Workload::engine_check_command`]),
//! `etcdutl snapshot status` on a copy of the member's bbolt database
//! (`member/snap/db`), which walks every bucket and key to hash them; the
//! copy, because bbolt holds the live file locked.
//!
//! The JSON gateway spares a gRPC stack (and the `protoc` its code
//! generation needs): the same `KV` and `Maintenance` services, with
//! bytes in base64 and 64-bit integers as strings.
//!
//! The image built from [`RECIPE`] is Debian trixie's `etcd-server` and
//! `etcd-client` (3.5): bookworm's 3.4 has no `--unsafe-no-fsync`. The
//! entrypoint starts a single member with its data in `/data`; the
//! scenario's `server-args` follow its flags and override them.

use crate::cluster::Clustering;
use crate::driver::{Attempt, Attempter, ClientContext, InDoubt, run_clients};
use crate::message::{ledger_row, parse_ledger_row};
use crate::{
    ContainerSpec, INITIAL_BALANCE, ImageRecipe, Kind, LoadConfig, LoadOutcome, LogSeverity, Observation, RecipeFile,
    Transfer, Workload, WorkloadError,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::watch;

/// Image crashlab builds for this workload.
pub const IMAGE: &str = "crashlab/etcd:latest";

/// Where the member keeps its data in the container.
pub const DATA_DIR: &str = "/data";

/// The client port (and the JSON gateway's).
pub const PORT: u16 = 2379;

/// `kind = "etcd"`.
pub const KIND: Kind = Kind {
    name: "etcd",
    build: |image, server_args| Box::new(Etcd { image: image.unwrap_or_else(|| IMAGE.to_owned()), server_args }),
};

const ACCOUNTS: &str = "crashlab/accounts/";
const LEDGER: &str = "crashlab/ledger/";
/// Keys a range read returns at most at once: the gateway's answers stay
/// well under gRPC's message size limit whatever the ledger's length.
const PAGE: u64 = 5000;
/// How long one request may take: a server killed mid-request never
/// answers.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

const ENTRYPOINT: &str = r#"#!/bin/sh
# crashlab's etcd entrypoint: one member, its data in /data (which etcd wants
# private: a fresh volume or bind mount arrives 0755), clients on every
# address. The arguments follow, and override these flags.
set -e
mkdir -p /data
chmod 700 /data
exec etcd --name crashlab --data-dir /data \
  --listen-client-urls http://0.0.0.0:2379 --advertise-client-urls http://127.0.0.1:2379 \
  --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
  --initial-cluster crashlab=http://127.0.0.1:2380 "$@"
"#;

/// Debian trixie's etcd server and tools with crashlab's entrypoint.
pub const RECIPE: ImageRecipe = ImageRecipe {
    name: "etcd",
    tag: IMAGE,
    suite: "trixie",
    packages: &["etcd-server", "etcd-client"],
    files: &[RecipeFile { path: "usr/local/bin/crashlab-entrypoint", contents: ENTRYPOINT, mode: 0o755 }],
    prune: &["var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/locale"],
    changes: &[r#"ENTRYPOINT ["/usr/local/bin/crashlab-entrypoint"]"#, "EXPOSE 2379/tcp", "ENV LANG=C.UTF-8"],
};

/// The etcd workload.
#[derive(Debug, Clone)]
pub struct Etcd {
    pub image: String,
    /// Extra `etcd` flags, such as `--unsafe-no-fsync`; they follow
    /// crashlab's and override them.
    pub server_args: Vec<String>,
}

impl Workload for Etcd {
    fn name(&self) -> &str {
        KIND.name
    }

    fn image_names(&self) -> &'static [&'static str] {
        &["etcd"]
    }

    fn client_command(&self) -> Option<String> {
        Some("etcdctl".into())
    }

    fn log_severity(&self, line: &str) -> Option<LogSeverity> {
        log_severity(line)
    }

    fn container(&self) -> ContainerSpec {
        ContainerSpec::plain(&self.image, &self.server_args, DATA_DIR, PORT)
    }

    fn engine_check_command(&self) -> Option<Vec<String>> {
        let script = format!(
            "cp {DATA_DIR}/member/snap/db /tmp/crashlab-check.db && etcdutl snapshot status /tmp/crashlab-check.db; \
             status=$?; rm -f /tmp/crashlab-check.db; exit $status"
        );
        Some(vec!["sh".into(), "-c".into(), script])
    }

    fn probe(&self, addr: SocketAddr) -> BoxFuture<'_, Result<(), WorkloadError>> {
        Box::pin(async move {
            let gw = Gateway::new(addr)?;
            // A range read needs the member to have a leader (itself) and
            // its store loaded: the status endpoint answers before that.
            gw.call("/v3/kv/range", &json!({ "key": b64("crashlab/probe") }), "read a key").await?;
            Ok(())
        })
    }

    fn setup(&self, addr: SocketAddr, load: LoadConfig) -> BoxFuture<'_, Result<(), WorkloadError>> {
        Box::pin(async move {
            let gw = Gateway::new(addr)?;
            let drop = json!({ "key": b64("crashlab/"), "range_end": b64(&prefix_end("crashlab/")) });
            gw.call("/v3/kv/deleterange", &drop, "drop the dataset").await?;
            let puts: Vec<Value> =
                (0..load.accounts).map(|id| put(&account_key(id), &INITIAL_BALANCE.to_string())).collect();
            let txn = json!({ "success": puts });
            gw.call("/v3/kv/txn", &txn, "create the accounts").await?;
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

    fn clustering(&self) -> Option<std::sync::Arc<dyn Clustering>> {
        Some(std::sync::Arc::new(EtcdCluster))
    }

    /// etcd replays its write-ahead log before it serves reads.
    fn recovering(&self, _addr: SocketAddr) -> BoxFuture<'_, Result<Option<bool>, WorkloadError>> {
        Box::pin(async { Ok(Some(false)) })
    }

    fn observe(&self, addr: SocketAddr) -> BoxFuture<'_, Result<Observation, WorkloadError>> {
        Box::pin(observe(addr))
    }
}

/// An etcd cluster: every member names every member's peer URL on the
/// hosts' network in `--initial-cluster`, and advertises its own name
/// there; a write is answered once a majority of members has it in its
/// write-ahead log.
struct EtcdCluster;

impl Clustering for EtcdCluster {
    fn server_args(&self, me: usize, hosts: &[&str]) -> Vec<String> {
        let members: Vec<String> = hosts.iter().map(|h| format!("{h}=http://{h}:2380")).collect();
        // One argument per flag, after the entrypoint's, which they
        // override (the last setting of a flag wins).
        vec![
            format!("--name={}", hosts[me]),
            "--listen-peer-urls=http://0.0.0.0:2380".into(),
            format!("--initial-advertise-peer-urls=http://{}:2380", hosts[me]),
            format!("--advertise-client-urls=http://{}:2379", hosts[me]),
            format!("--initial-cluster={}", members.join(",")),
            "--initial-cluster-token=crashlab".into(),
            "--initial-cluster-state=new".into(),
        ]
    }
}

fn account_key(id: u32) -> String {
    format!("{ACCOUNTS}{id}")
}

fn b64(s: &str) -> String {
    B64.encode(s)
}

/// The end of the range of every key starting with `prefix`: the prefix
/// with its last byte incremented (ASCII prefixes here, none ending in 0xff).
fn prefix_end(prefix: &str) -> String {
    let mut bytes = prefix.as_bytes().to_vec();
    if let Some(last) = bytes.last_mut() {
        *last += 1;
    }
    String::from_utf8(bytes).expect("an ASCII prefix stays ASCII")
}

fn put(key: &str, value: &str) -> Value {
    json!({ "request_put": { "key": b64(key), "value": b64(value) } })
}

/// A failed exchange with the gateway.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("talk to etcd")]
    Http(#[from] reqwest::Error),
    #[error("etcd answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("make sense of etcd's answer: {0}")]
    Unexpected(String),
}

/// etcd's JSON gateway at one address.
#[derive(Clone)]
struct Gateway {
    http: reqwest::Client,
    base: String,
}

impl Gateway {
    fn new(addr: SocketAddr) -> Result<Gateway, WorkloadError> {
        // reqwest builds a TLS configuration even for plain HTTP, and
        // rustls wants a process-wide provider for it.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| WorkloadError::Connect { addr, source: e.into() })?;
        Ok(Gateway { http, base: format!("http://{addr}") })
    }

    async fn post(&self, path: &str, body: &Value) -> Result<Value, GatewayError> {
        let response = self.http.post(format!("{}{path}", self.base)).body(body.to_string()).send().await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            return Err(GatewayError::Status { status: status.as_u16(), body: text });
        }
        serde_json::from_str(&text).map_err(|e| GatewayError::Unexpected(format!("{e}: {text}")))
    }

    async fn call(&self, path: &str, body: &Value, what: &'static str) -> Result<Value, WorkloadError> {
        self.post(path, body).await.map_err(|e| WorkloadError::Query { what, source: e.into() })
    }
}

/// A 64-bit integer of the gateway's JSON: a string, or absent for 0.
fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Null => Some(0),
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

fn text(v: &Value) -> Option<String> {
    let bytes = B64.decode(v.as_str().unwrap_or_default()).ok()?;
    String::from_utf8(bytes).ok()
}

/// One key as a range read returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Kv {
    key: String,
    value: String,
    mod_revision: i64,
}

fn kvs(answer: &Value) -> Result<Vec<Kv>, GatewayError> {
    let items = match &answer["kvs"] {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        other => return Err(GatewayError::Unexpected(format!("kvs {other}"))),
    };
    items
        .iter()
        .map(|kv| {
            Some(Kv { key: text(&kv["key"])?, value: text(&kv["value"])?, mod_revision: int(&kv["mod_revision"])? })
        })
        .collect::<Option<Vec<Kv>>>()
        .ok_or_else(|| GatewayError::Unexpected(format!("kvs {}", answer["kvs"])))
}

/// Every key under `prefix`, in key order, at one revision (the first
/// page's), read a page at a time.
async fn range_all(gw: &Gateway, prefix: &str) -> Result<Vec<Kv>, GatewayError> {
    let end = b64(&prefix_end(prefix));
    let mut from = prefix.to_owned();
    let mut revision = 0;
    let mut all = Vec::new();
    loop {
        let body =
            json!({ "key": b64(&from), "range_end": end, "limit": PAGE.to_string(), "revision": revision.to_string() });
        let answer = gw.post("/v3/kv/range", &body).await?;
        if revision == 0 {
            revision = int(&answer["header"]["revision"]).unwrap_or(0);
        }
        let page = kvs(&answer)?;
        let more = answer["more"].as_bool().unwrap_or(false);
        let Some(last) = page.last() else { break };
        from = format!("{}\0", last.key);
        all.extend(page);
        if !more {
            break;
        }
    }
    Ok(all)
}

async fn run_client(addr: SocketAddr, ctx: ClientContext) -> Option<String> {
    match ctx.connect(async { Gateway::new(addr) }).await {
        Ok(gw) => ctx.run(&mut Transactor { gw }).await,
        Err(e) => Some(e),
    }
}

struct Transactor {
    gw: Gateway,
}

impl Attempter for Transactor {
    async fn attempt(&mut self, t: Transfer, in_doubt: InDoubt) -> Attempt {
        match transfer(&self.gw, &t, &in_doubt).await {
            Ok(true) => Attempt::Committed,
            Ok(false) => Attempt::RolledBack,
            Err(e) => Attempt::Failed { error: crate::error_chain(&e), rolled_back: false },
        }
    }
}

/// One transfer: read both balances, then a transaction that applies the
/// transfer only if neither changed since. `Ok(false)`: one had, nothing
/// was applied.
async fn transfer(gw: &Gateway, t: &Transfer, in_doubt: &InDoubt) -> Result<bool, GatewayError> {
    let (src, dst) = (account_key(t.src), account_key(t.dst));
    let mut read = Vec::new();
    for key in [&src, &dst] {
        let kv = kvs(&gw.post("/v3/kv/range", &json!({ "key": b64(key) })).await?)?;
        let kv = kv.into_iter().next().ok_or_else(|| GatewayError::Unexpected(format!("no account {key}")))?;
        let balance: i64 = kv.value.parse().map_err(|_| GatewayError::Unexpected(format!("{key} = {}", kv.value)))?;
        read.push((kv.mod_revision, balance));
    }
    let compare: Vec<Value> = [&src, &dst]
        .iter()
        .zip(&read)
        .map(|(key, (rev, _))| {
            json!({ "target": "MOD", "result": "EQUAL", "key": b64(key), "mod_revision": rev.to_string() })
        })
        .collect();
    let success = [
        put(&src, &(read[0].1 - t.amount).to_string()),
        put(&dst, &(read[1].1 + t.amount).to_string()),
        put(&format!("{LEDGER}{}", t.id), &ledger_row(t)),
    ];
    in_doubt.mark();
    let answer = gw.post("/v3/kv/txn", &json!({ "compare": compare, "success": success })).await?;
    Ok(answer["succeeded"].as_bool().unwrap_or(false))
}

async fn observe(addr: SocketAddr) -> Result<Observation, WorkloadError> {
    let gw = Gateway::new(addr)?;
    let read = |e: GatewayError| WorkloadError::Query { what: "read the dataset", source: e.into() };
    let accounts = range_all(&gw, ACCOUNTS).await.map_err(read)?;
    if accounts.is_empty() {
        return Ok(Observation::Gone { detail: format!("no key under {ACCOUNTS}") });
    }
    let ledger = range_all(&gw, LEDGER).await.map_err(read)?;
    let mut balances = Vec::new();
    for kv in &accounts {
        let parsed = kv.key.strip_prefix(ACCOUNTS).and_then(|id| Some((id.parse().ok()?, kv.value.parse().ok()?)));
        match parsed {
            Some(b) => balances.push(b),
            None => return Ok(Observation::Unreadable { detail: format!("account {} = {:?}", kv.key, kv.value) }),
        }
    }
    let mut rows = Vec::new();
    for kv in &ledger {
        match kv.key.strip_prefix(LEDGER).and_then(|id| parse_ledger_row(id, &kv.value)) {
            Some(t) => rows.push(t),
            None => return Ok(Observation::Unreadable { detail: format!("ledger {} = {:?}", kv.key, kv.value) }),
        }
    }
    let engine_check = match gw.post("/v3/maintenance/alarm", &json!({ "action": "GET" })).await {
        Ok(answer) => alarms(&answer),
        Err(e) => Err(format!("listing the alarms failed: {e}")),
    };
    Ok(Observation::Present { ledger: rows, balances, engine_check, engine_notes: vec![] })
}

/// The member's alarms: none raised is a pass.
fn alarms(answer: &Value) -> Result<(), String> {
    match &answer["alarms"] {
        Value::Null => Ok(()),
        Value::Array(a) if a.is_empty() => Ok(()),
        other => Err(format!("alarms raised: {other}")),
    }
}

/// etcd 3.5 logs JSON lines (`{"level":"warn","ts":...,"msg":...}`), with
/// zap's levels.
pub fn log_severity(line: &str) -> Option<LogSeverity> {
    let v: Value = serde_json::from_str(line.trim()).ok()?;
    match v["level"].as_str()? {
        "warn" => Some(LogSeverity::Warning),
        "error" => Some(LogSeverity::Error),
        "dpanic" | "panic" | "fatal" => Some(LogSeverity::Fatal),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cluster_member_names_every_member_and_advertises_its_own_name() {
        let args = EtcdCluster.server_args(2, &["h1", "h2", "h3"]);
        assert!(args.contains(&"--name=h3".to_owned()), "{args:?}");
        assert!(args.contains(&"--initial-advertise-peer-urls=http://h3:2380".to_owned()), "{args:?}");
        let all = "--initial-cluster=h1=http://h1:2380,h2=http://h2:2380,h3=http://h3:2380";
        assert!(args.contains(&all.to_owned()), "{args:?}");
    }

    #[test]
    fn prefixes_end_after_their_last_key() {
        assert_eq!(prefix_end("crashlab/"), "crashlab0");
        assert!(account_key(7).as_str() < prefix_end(ACCOUNTS).as_str());
    }

    #[test]
    fn gateway_answers_are_parsed() {
        let answer = json!({
            "header": { "revision": "12" },
            "kvs": [{ "key": b64("crashlab/accounts/3"), "value": b64("999"), "mod_revision": "11", "create_revision": "2" }],
            "count": "1"
        });
        let kv = kvs(&answer).unwrap();
        assert_eq!(kv, [Kv { key: "crashlab/accounts/3".into(), value: "999".into(), mod_revision: 11 }]);
        assert_eq!(kvs(&json!({ "header": {} })).unwrap(), []);
        assert!(kvs(&json!({ "kvs": [{ "key": "!!" }] })).is_err());
        assert_eq!(alarms(&json!({ "header": {} })), Ok(()));
        assert!(
            alarms(&json!({ "alarms": [{ "memberID": "1", "alarm": "CORRUPT" }] })).unwrap_err().contains("CORRUPT")
        );
    }

    #[test]
    fn server_log_lines_are_classified_by_their_level() {
        let line = |level: &str| format!(r#"{{"level":"{level}","ts":"2026-12-06T23:00:00Z","msg":"x"}}"#);
        assert_eq!(log_severity(&line("info")), None);
        assert_eq!(log_severity(&line("warn")), Some(LogSeverity::Warning));
        assert_eq!(log_severity(&line("error")), Some(LogSeverity::Error));
        assert_eq!(log_severity(&line("panic")), Some(LogSeverity::Fatal));
        assert_eq!(log_severity("not json"), None);
    }
}
