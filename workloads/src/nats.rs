//! NATS JetStream: every transfer is one message published to a stream
//! with file storage and acknowledged by the server's `PubAck`; verified
//! by consuming the whole stream from its first message.
//!
//! A broker keeps messages, not balances, so the message is the ledger row
//! (`"src dst amount"`, with the transfer's id in the `Nats-Msg-Id`
//! header and in the payload's first field) and the balances are
//! recomputed from the messages read back, as the fsync-log probe does.
//! The checker's rules then say what JetStream promises: every
//! acknowledged message present (else `lost-writes`), exactly once (a
//! duplicate is `inconsistent`), and no message that was never published
//! or differs from what was (`inconsistent`). Each client publishes on its
//! own subject (`crashlab.c<client>`) and waits for each `PubAck` before
//! the next publish, so on each subject the stream must hold the
//! client's transfers in the order they were sent; an out-of-order pair
//! fails the engine check (`corrupt`), as does a stream whose own state
//! (message count, first and last sequence) disagrees with what a
//! consumer delivered from it.
//!
//! # Durability
//!
//! JetStream writes a message to its block file before it sends the
//! `PubAck`, and fsyncs on a timer: `sync_interval`, two minutes by
//! default in the packaged 2.10, or on every write with `sync_interval:
//! always`. That is a setting of the configuration file, not a flag of
//! `nats-server`, so crashlab's entrypoint takes `--sync-interval VALUE`
//! among the server arguments and writes it into the configuration it
//! generates; every other argument goes to `nats-server` after `-c`, and
//! so overrides the configuration (a user's own `-c FILE` replaces it).
//!
//! # Cluster
//!
//! On a cluster strategy (`cluster-3`) every member runs with routes to
//! the others (`NatsCluster`) and the stream has as many replicas as the
//! load's `replicas` (a `PubAck` then means a quorum of them has the
//! message, in memory unless every write is synced). A cluster that is
//! still forming or electing its leaders is asked again, up to
//! `FORMING_TIMEOUT`, when the stream is deleted, created and read
//! back. Before that the harness waits until the cluster has formed
//! ([`Clustering::formed`]): the JetStream meta leader counts every member
//! a current peer, which crashlab's configuration lets it ask as the
//! system account's user (`crashlab-sys`); clients without credentials
//! land in the account `CRASHLAB`, which has JetStream.
//!
//! The image built from [`RECIPE`] is Debian trixie's `nats-server`
//! (2.10): bookworm's 2.9 has no `sync_interval` and so no way to sync
//! each write. The driver is `async-nats`.

use crate::cluster::{Clustering, Formed};
use crate::driver::{Attempt, Attempter, ClientContext, InDoubt, run_clients};
use crate::message::{balances, parse_payload, payload};
use crate::query_err;
use crate::{
    ContainerSpec, ImageRecipe, Kind, LoadConfig, LoadOutcome, LogSeverity, Observation, RecipeFile, Transfer,
    Workload, WorkloadError,
};
use async_nats::jetstream::{self, consumer, stream};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Image crashlab builds for this workload.
pub const IMAGE: &str = "crashlab/nats:latest";

/// Where JetStream keeps its store in the container.
pub const DATA_DIR: &str = "/data";

/// The client port.
pub const PORT: u16 = 4222;

/// `kind = "nats"`.
pub const KIND: Kind = Kind {
    name: "nats",
    build: |image, server_args| Box::new(Nats { image: image.unwrap_or_else(|| IMAGE.to_owned()), server_args }),
};

/// The system account's user (its password is the same) in crashlab's
/// configuration, which may ask the servers about the JetStream meta
/// group.
const SYSTEM_USER: &str = "crashlab-sys";

/// The port cluster members route to one another on.
pub const CLUSTER_PORT: u16 = 6222;
/// The cluster's name.
const CLUSTER_NAME: &str = "crashlab";
/// How long a cluster gets to form (its members joining the meta group)
/// before a replicated stream can be created, and, after a restart, to
/// elect the stream's leader before it can be read.
const FORMING_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a forming cluster is asked again.
const FORMING_POLL: Duration = Duration::from_millis(250);
/// How long a clustered server's "no such stream" is asked again before
/// it is believed: a meta leader just elected may answer before it has
/// applied its log.
const NOT_FOUND_SETTLE: Duration = Duration::from_secs(10);

/// The stream the load publishes to.
const STREAM: &str = "CRASHLAB";
/// Its subjects; each client publishes on `crashlab.c<client>`.
const SUBJECTS: &str = "crashlab.>";

/// The stream's description, followed by the number of accounts: a broker
/// has no accounts table, and the checker expects every account's balance.
const ACCOUNTS_PREFIX: &str = "crashlab accounts=";

/// How long a publish waits for its `PubAck`, and a request for its
/// answer: a server killed mid-request never answers.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// How long reading the stream back waits for the next message.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

const ENTRYPOINT: &str = r#"#!/bin/sh
# crashlab's NATS entrypoint: JetStream on, its store in /data, listening on
# every address; clients without credentials in an account of their own, and
# a user of the system account. `--sync-interval VALUE` (`always`, or a duration such as
# `2m`) is a configuration-file setting, not a nats-server flag: it goes into
# the generated configuration's jetstream block. Every other argument goes to
# nats-server after the configuration, and so overrides it.
set -e
sync=""
n=$#
while [ "$n" -gt 0 ]; do
  a="$1"; shift; n=$((n - 1))
  case "$a" in
    --sync-interval=*) sync="${a#--sync-interval=}" ;;
    --sync-interval) sync="$1"; shift; n=$((n - 1)) ;;
    *) set -- "$@" "$a" ;;
  esac
done
mkdir -p /data
conf=/etc/crashlab-nats.conf
{
  echo 'listen: "0.0.0.0:4222"'
  echo 'jetstream {'
  echo '  store_dir: "/data"'
  if [ -n "$sync" ]; then echo "  sync_interval: $sync"; fi
  echo '}'
  # Clients without credentials land in CRASHLAB, which has JetStream; the
  # system account's user lets crashlab ask a cluster's meta leader
  # whether every member has joined.
  echo 'accounts {'
  echo '  CRASHLAB: { jetstream: enabled, users: [{ user: "crashlab", password: "crashlab" }] }'
  echo '  SYS: { users: [{ user: "crashlab-sys", password: "crashlab-sys" }] }'
  echo '}'
  echo 'system_account: SYS'
  echo 'no_auth_user: crashlab'
} >"$conf"
exec nats-server -c "$conf" "$@"
"#;

/// Debian trixie's NATS server with crashlab's entrypoint.
pub const RECIPE: ImageRecipe = ImageRecipe {
    name: "nats",
    tag: IMAGE,
    suite: "trixie",
    packages: &["nats-server"],
    files: &[RecipeFile { path: "usr/local/bin/crashlab-entrypoint", contents: ENTRYPOINT, mode: 0o755 }],
    prune: &["var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/locale"],
    changes: &[r#"ENTRYPOINT ["/usr/local/bin/crashlab-entrypoint"]"#, "EXPOSE 4222/tcp", "ENV LANG=C.UTF-8"],
};

/// The NATS JetStream workload.
#[derive(Debug, Clone)]
pub struct Nats {
    pub image: String,
    /// Arguments to crashlab's entrypoint: `--sync-interval VALUE`, and
    /// `nats-server` flags.
    pub server_args: Vec<String>,
}

impl Workload for Nats {
    fn name(&self) -> &str {
        KIND.name
    }

    fn image_names(&self) -> &'static [&'static str] {
        &["nats"]
    }

    /// `nats`, `nats-server` and their variants, but not NATS Streaming
    /// (`nats-streaming`), which has no JetStream to drive.
    fn recognises(&self, image: &str) -> bool {
        let last = crate::image_base_name(image);
        (last == "nats" || last.starts_with("nats-")) && !last.starts_with("nats-streaming")
    }

    fn log_severity(&self, line: &str) -> Option<LogSeverity> {
        log_severity(line)
    }

    fn container(&self) -> ContainerSpec {
        // SIGTERM: nats-server shuts down (lame duck is SIGUSR2).
        ContainerSpec::plain(&self.image, &self.server_args, DATA_DIR, PORT)
    }

    fn probe(&self, addr: SocketAddr) -> BoxFuture<'_, Result<(), WorkloadError>> {
        Box::pin(async move {
            let js = connect(addr).await?;
            // JetStream answers its account info only once it is enabled,
            // which is after the streams in its store were recovered.
            js.query_account().await.map_err(query_err("read the JetStream account"))?;
            Ok(())
        })
    }

    fn setup(&self, addr: SocketAddr, load: LoadConfig) -> BoxFuture<'_, Result<(), WorkloadError>> {
        Box::pin(setup(addr, load))
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

    /// The server answers clients only once JetStream recovered its store.
    fn recovering(&self, _addr: SocketAddr) -> BoxFuture<'_, Result<Option<bool>, WorkloadError>> {
        Box::pin(async { Ok(Some(false)) })
    }

    fn observe(&self, addr: SocketAddr) -> BoxFuture<'_, Result<Observation, WorkloadError>> {
        Box::pin(observe(addr))
    }

    fn clustering(&self) -> Option<Arc<dyn Clustering>> {
        Some(Arc::new(NatsCluster))
    }
}

/// A NATS cluster: every member routes to every other on
/// [`CLUSTER_PORT`], under one cluster name, each with its own server name
/// (JetStream's Raft groups tell their peers apart by it).
struct NatsCluster;

impl Clustering for NatsCluster {
    fn server_args(&self, me: usize, hosts: &[&str]) -> Vec<String> {
        // Every other member: a route to itself a server only finds out
        // after connecting, again at every retry.
        let routes: Vec<String> = (hosts.iter().enumerate())
            .filter(|&(i, _)| i != me)
            .map(|(_, h)| format!("nats://{h}:{CLUSTER_PORT}"))
            .collect();
        // One argument per flag (`--name=h1`), so that a flag the
        // scenario's server-args set replaces crashlab's whole.
        vec![
            format!("--name={}", hosts[me]),
            format!("--cluster_name={CLUSTER_NAME}"),
            format!("--cluster=nats://0.0.0.0:{CLUSTER_PORT}"),
            // Peers and clients are told the member's name on the hosts'
            // network, never an address of the default bridge, so that
            // leaving that network cuts the member off.
            format!("--cluster_advertise={}:{CLUSTER_PORT}", hosts[me]),
            "--no_advertise=true".into(),
            format!("--routes={}", routes.join(",")),
        ]
    }

    /// The meta group's leader counts every member as a current peer. A
    /// member bootstraps the group with the peers it knows when JetStream
    /// starts, often only itself, and expects as many as it has routes
    /// (two), so that two members elect a leader and the third is added
    /// after; until then a stream of three replicas cannot be placed ("no
    /// suitable peers for placement").
    fn formed<'a>(&'a self, addr: SocketAddr, hosts: &'a [&'a str]) -> BoxFuture<'a, Result<Formed, WorkloadError>> {
        Box::pin(meta_formed(addr, hosts))
    }
}

/// [`NatsCluster::formed`]: asks the meta leader for its view of the meta
/// group (`$SYS.REQ.SERVER.PING.JSZ`, as the system account's user). A
/// server that does not take that login, or takes it into another
/// account than the system's (a configuration of the user's), cannot
/// tell.
async fn meta_formed(addr: SocketAddr, hosts: &[&str]) -> Result<Formed, WorkloadError> {
    use async_nats::{ConnectErrorKind, RequestErrorKind};
    let connected = async_nats::ConnectOptions::with_user_and_password(SYSTEM_USER.into(), SYSTEM_USER.into())
        .connection_timeout(ACK_TIMEOUT)
        .request_timeout(Some(ACK_TIMEOUT))
        .max_reconnects(1)
        .connect(addr.to_string())
        .await;
    let client = match connected {
        Ok(client) => client,
        Err(e) if e.kind() == ConnectErrorKind::AuthorizationViolation => return Ok(Formed::CannotTell),
        Err(e) => return Err(WorkloadError::Connect { addr, source: e.into() }),
    };
    let jsz = client.request("$SYS.REQ.SERVER.PING.JSZ", r#"{"leader_only":true}"#.into()).await;
    let answer = match jsz {
        Ok(answer) => answer,
        Err(e) if matches!(e.kind(), RequestErrorKind::NoResponders | RequestErrorKind::TimedOut) => {
            // No meta leader answers; but is anyone there to ask?
            return match client.request("$SYS.REQ.SERVER.PING", "".into()).await {
                Ok(_) => Ok(Formed::No("the JetStream meta group has no leader".into())),
                Err(_) => Ok(Formed::CannotTell),
            };
        }
        Err(e) => return Err(query_err("ask for the JetStream meta group")(e)),
    };
    let meta: serde_json::Value =
        serde_json::from_slice(&answer.payload).map_err(query_err("read the JetStream meta group"))?;
    Ok(judge_meta(&meta["data"]["meta_cluster"], hosts))
}

/// Whether a meta leader's `meta_cluster` (of `/jsz`) counts the
/// members on `hosts` (the servers are named after their hosts), every
/// other one current and online.
fn judge_meta(meta: &serde_json::Value, hosts: &[&str]) -> Formed {
    let Some(leader) = meta["leader"].as_str().filter(|l| !l.is_empty()) else {
        return Formed::No("the JetStream meta group has no leader".into());
    };
    let size = meta["cluster_size"].as_u64().unwrap_or(0);
    let replicas = meta["replicas"].as_array().map(Vec::as_slice).unwrap_or_default();
    let counted = |host: &str| {
        host == leader || replicas.iter().any(|r| r["name"] == host && r["current"] == true && r["offline"] != true)
    };
    let missing: Vec<String> = hosts.iter().filter(|h| !counted(h)).map(|h| (*h).to_owned()).collect();
    if size == hosts.len() as u64 && missing.is_empty() {
        return Formed::Yes;
    }
    Formed::No(format!(
        "the meta leader {leader} counts a cluster of {size}; not a current peer of it: {}",
        if missing.is_empty() { "none".to_owned() } else { missing.join(", ") }
    ))
}

/// Deletes what a previous cycle left and creates the stream with
/// `load.replicas` replicas. A cluster whose members are still joining
/// its meta group cannot place a replicated stream yet ("insufficient
/// resources", or no answer): the creation is asked again until
/// [`FORMING_TIMEOUT`].
async fn setup(addr: SocketAddr, load: LoadConfig) -> Result<(), WorkloadError> {
    let js = connect(addr).await?;
    let deadline = Instant::now() + FORMING_TIMEOUT;
    loop {
        match js.delete_stream(STREAM).await {
            Ok(_) => break,
            Err(e) if not_found(&e) => break,
            // A cluster that restarted may still be electing its leaders;
            // a delete that timed out and did land is "not found" next.
            Err(e) if unavailable(&e) && Instant::now() < deadline => tokio::time::sleep(FORMING_POLL).await,
            Err(e) => return Err(query_err("delete the stream")(e)),
        }
    }
    let config = stream::Config {
        name: STREAM.into(),
        subjects: vec![SUBJECTS.into()],
        storage: stream::StorageType::File,
        num_replicas: load.replicas.max(1) as usize,
        description: Some(format!("{ACCOUNTS_PREFIX}{}", load.accounts)),
        ..Default::default()
    };
    let deadline = Instant::now() + FORMING_TIMEOUT;
    loop {
        match js.create_stream(config.clone()).await {
            Ok(_) => return Ok(()),
            Err(e) if still_forming(&e) && Instant::now() < deadline => tokio::time::sleep(FORMING_POLL).await,
            Err(e) => return Err(query_err("create the stream")(e)),
        }
    }
}

/// Whether a request about the stream went unanswered, or the cluster
/// said it cannot answer yet (no leader).
fn unavailable(e: &jetstream::context::GetStreamError) -> bool {
    use jetstream::context::GetStreamErrorKind as K;
    match e.kind() {
        K::Request => true,
        K::JetStream(j) => [jetstream::ErrorCode::CLUSTER_NOT_AVAILABLE, jetstream::ErrorCode::CLUSTER_NOT_LEADER]
            .contains(&j.error_code()),
        _ => false,
    }
}

/// Whether a stream's creation failed because the cluster has not formed
/// yet.
fn still_forming(e: &jetstream::context::CreateStreamError) -> bool {
    use jetstream::context::CreateStreamErrorKind as K;
    match e.kind() {
        K::TimedOut | K::JetStreamUnavailable => true,
        K::JetStream(j) => [
            jetstream::ErrorCode::INSUFFICIENT_RESOURCES,
            jetstream::ErrorCode::CLUSTER_NOT_AVAILABLE,
            jetstream::ErrorCode::CLUSTER_NO_PEERS,
            jetstream::ErrorCode::CLUSTER_INCOMPLETE,
        ]
        .contains(&j.error_code()),
        _ => false,
    }
}

/// A client and its JetStream context. The client reconnects at most once
/// on its own: a load's client must end when its server goes away, as the
/// other drivers' do, rather than buffer publishes for a server that
/// comes back.
async fn connect(addr: SocketAddr) -> Result<jetstream::Context, WorkloadError> {
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(ACK_TIMEOUT)
        .request_timeout(Some(ACK_TIMEOUT))
        .max_reconnects(1)
        .connect(addr.to_string())
        .await
        .map_err(|e| WorkloadError::Connect { addr, source: e.into() })?;
    let mut js = jetstream::new(client);
    js.set_timeout(ACK_TIMEOUT);
    Ok(js)
}

/// Whether the server said the stream does not exist.
fn not_found(e: &jetstream::context::GetStreamError) -> bool {
    use jetstream::context::GetStreamErrorKind;
    matches!(e.kind(), GetStreamErrorKind::JetStream(j) if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND)
}

async fn run_client(addr: SocketAddr, ctx: ClientContext) -> Option<String> {
    let subject = format!("crashlab.c{}", ctx.client);
    match ctx.connect(connect(addr)).await {
        Ok(js) => ctx.run(&mut Publisher { js, subject }).await,
        Err(e) => Some(e),
    }
}

/// One client's publishes.
struct Publisher {
    js: jetstream::Context,
    subject: String,
}

impl Attempter for Publisher {
    async fn attempt(&mut self, t: Transfer, in_doubt: InDoubt) -> Attempt {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", t.id.to_string().as_str());
        // A publish is its own commit: once it may have left, it is in doubt.
        in_doubt.mark();
        let ack = match self.js.publish_with_headers(self.subject.clone(), headers, payload(&t).into()).await {
            Ok(ack) => ack,
            Err(e) => return Attempt::Failed { error: format!("publish: {e}"), rolled_back: false },
        };
        match ack.await {
            Ok(ack) if ack.stream == STREAM && !ack.duplicate => Attempt::Committed,
            Ok(ack) => Attempt::Failed { error: format!("unexpected PubAck {ack:?}"), rolled_back: false },
            Err(e) => Attempt::Failed { error: format!("PubAck: {e}"), rolled_back: false },
        }
    }
}

/// One message as read back: its stream sequence, subject and transfer.
#[derive(Debug, Clone, PartialEq)]
struct Read {
    seq: u64,
    subject: String,
    transfer: Transfer,
}

async fn observe(addr: SocketAddr) -> Result<Observation, WorkloadError> {
    let js = connect(addr).await?;
    let Some(mut stream) = find_stream(&js).await? else {
        return Ok(Observation::Gone { detail: format!("stream {STREAM} is missing") });
    };
    let info = stream.info().await.map_err(query_err("read the stream's state"))?;
    let (state, description) = (info.state.clone(), info.config.description.clone().unwrap_or_default());
    let Some(accounts) = description.strip_prefix(ACCOUNTS_PREFIX).and_then(|n| n.parse::<u32>().ok()) else {
        return Ok(Observation::Unreadable { detail: format!("stream description {description:?}") });
    };
    let mut read = Vec::new();
    if state.messages > 0 {
        let config =
            consumer::pull::OrderedConfig { deliver_policy: consumer::DeliverPolicy::All, ..Default::default() };
        // A cluster that just lost a member may be moving the stream's
        // leadership: a consumer's creation is asked again until
        // [`FORMING_TIMEOUT`] there.
        let clustered = js.client().server_info().cluster.is_some();
        let started = Instant::now();
        let consumer = loop {
            match stream.create_consumer(config.clone()).await {
                Ok(c) => break c,
                Err(_) if clustered && started.elapsed() < FORMING_TIMEOUT => tokio::time::sleep(FORMING_POLL).await,
                Err(e) => return Err(query_err("create a consumer")(e)),
            }
        };
        let mut messages = consumer.messages().await.map_err(query_err("consume the stream"))?;
        while read.last().is_none_or(|r: &Read| r.seq < state.last_sequence) {
            let next = tokio::time::timeout(READ_TIMEOUT, messages.next()).await;
            let message = match next {
                Ok(Some(Ok(m))) => m,
                Ok(Some(Err(e))) => return Err(query_err("consume the stream")(e)),
                Ok(None) | Err(_) => break,
            };
            let seq =
                message.info().map_err(|e| WorkloadError::Query { what: "read a message's sequence", source: e })?;
            let seq = seq.stream_sequence;
            let Some(transfer) = parse_payload(&message.payload) else {
                let detail = format!("message {seq}: payload {:?}", String::from_utf8_lossy(&message.payload));
                return Ok(Observation::Unreadable { detail });
            };
            read.push(Read { seq, subject: message.subject.to_string(), transfer });
        }
    }
    Ok(judge(&read, accounts, (state.messages, state.first_sequence, state.last_sequence)))
}

/// The stream, or `None` when the server says there is none. A cluster
/// that restarted answers only once the stream's leader is elected, and
/// may say "no such stream" before its meta leader has applied its log:
/// a clustered server is asked again until [`FORMING_TIMEOUT`], and its
/// "no such stream" believed once it held for [`NOT_FOUND_SETTLE`].
async fn find_stream(js: &jetstream::Context) -> Result<Option<jetstream::stream::Stream>, WorkloadError> {
    let clustered = js.client().server_info().cluster.is_some();
    let started = Instant::now();
    let mut missing_since = None;
    loop {
        let error = match js.get_stream(STREAM).await {
            Ok(s) => return Ok(Some(s)),
            Err(e) if not_found(&e) => {
                let since = *missing_since.get_or_insert_with(Instant::now);
                if !clustered || since.elapsed() >= NOT_FOUND_SETTLE {
                    return Ok(None);
                }
                e
            }
            Err(e) => {
                missing_since = None;
                e
            }
        };
        if !clustered || started.elapsed() >= FORMING_TIMEOUT {
            return Err(query_err("read the stream's state")(error));
        }
        tokio::time::sleep(FORMING_POLL).await;
    }
}

/// The observation of what a consumer delivered, given the number of
/// accounts and the stream's own `(messages, first sequence, last
/// sequence)`. Balances are recomputed from the messages, every account
/// starting at [`INITIAL_BALANCE`].
fn judge(read: &[Read], accounts: u32, (messages, first, last): (u64, u64, u64)) -> Observation {
    let ledger: Vec<Transfer> = read.iter().map(|r| r.transfer).collect();
    let balances = balances(&ledger, accounts);
    let mut problems = Vec::new();
    let delivered = (read.len() as u64, read.first().map_or(0, |r| r.seq), read.last().map_or(0, |r| r.seq));
    if messages > 0 && delivered != (messages, first, last) {
        problems.push(format!(
            "the stream's state says {messages} messages, sequences {first}..={last}; a consumer delivered {}, {}..={}",
            delivered.0, delivered.1, delivered.2
        ));
    }
    let mut newest: HashMap<&str, &Read> = HashMap::new();
    for r in read {
        if let Some(prev) = newest.insert(r.subject.as_str(), r)
            && prev.transfer.id >= r.transfer.id
        {
            problems.push(format!(
                "on {}, transfer {} (sequence {}) after transfer {} (sequence {}), out of publish order",
                r.subject, r.transfer.id, r.seq, prev.transfer.id, prev.seq
            ));
        }
    }
    let engine_check = if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) };
    Observation::Present { ledger, balances, engine_check, engine_notes: vec![] }
}

/// nats-server's format: `[pid] 2026/12/06 23:00:00.000000 [INF] message`.
pub fn log_severity(line: &str) -> Option<LogSeverity> {
    match line.split(' ').nth(3)? {
        "[WRN]" => Some(LogSeverity::Warning),
        "[ERR]" => Some(LogSeverity::Error),
        "[FTL]" => Some(LogSeverity::Fatal),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::INITIAL_BALANCE;

    #[test]
    fn nats_streaming_is_not_recognised_as_jetstream() {
        let w = Nats { image: String::new(), server_args: vec![] };
        assert!(w.recognises("nats:2.10"));
        assert!(w.recognises("registry.example/nats-server:latest"));
        assert!(!w.recognises("nats-streaming:0.25"));
    }

    fn r(seq: u64, client: u32, id: u64) -> Read {
        Read {
            seq,
            subject: format!("crashlab.c{client}"),
            transfer: Transfer { id: crate::ack::ledger_id(client, id), src: 0, dst: 1, amount: 5 },
        }
    }

    #[test]
    fn a_stream_read_whole_and_in_order_passes_the_engine_check() {
        let read = [r(1, 0, 1), r(2, 1, 1), r(3, 0, 2)];
        let Observation::Present { ledger, balances, engine_check, .. } = judge(&read, 2, (3, 1, 3)) else { panic!() };
        assert_eq!(engine_check, Ok(()));
        assert_eq!(ledger.len(), 3);
        let mut balances = balances;
        balances.sort();
        assert_eq!(balances, [(0, INITIAL_BALANCE - 15), (1, INITIAL_BALANCE + 15)]);
    }

    #[test]
    fn order_per_subject_and_the_streams_own_state_are_checked() {
        let out_of_order = [r(1, 0, 2), r(2, 1, 1), r(3, 0, 1)];
        let Observation::Present { engine_check, .. } = judge(&out_of_order, 2, (3, 1, 3)) else { panic!() };
        assert!(engine_check.unwrap_err().contains("out of publish order"));
        let short = [r(1, 0, 1), r(2, 0, 2)];
        let Observation::Present { engine_check, .. } = judge(&short, 2, (3, 1, 3)) else { panic!() };
        assert!(engine_check.unwrap_err().contains("says 3 messages"));
        let Observation::Present { engine_check, .. } = judge(&[], 2, (0, 0, 0)) else { panic!() };
        assert_eq!(engine_check, Ok(()));
    }

    #[test]
    fn server_log_lines_are_classified_by_their_level_tag() {
        assert_eq!(log_severity("[1] 2026/12/06 23:00:00.000000 [INF] Starting nats-server"), None);
        assert_eq!(log_severity("[1] 2026/12/06 23:00:00.000000 [WRN] Filestore ..."), Some(LogSeverity::Warning));
        assert_eq!(log_severity("[1] 2026/12/06 23:00:00.000000 [ERR] JetStream ..."), Some(LogSeverity::Error));
        assert_eq!(log_severity("[1] 2026/12/06 23:00:00.000000 [FTL] Can't start"), Some(LogSeverity::Fatal));
        assert_eq!(log_severity("nats-server: bad flag"), None);
    }

    #[test]
    fn each_cluster_member_routes_to_every_other_member_under_its_own_name() {
        let args = NatsCluster.server_args(1, &["h1", "h2", "h3"]);
        assert!(args.contains(&"--name=h2".to_owned()), "{args:?}");
        assert!(args.contains(&"--cluster_advertise=h2:6222".to_owned()), "{args:?}");
        assert!(args.contains(&"--routes=nats://h1:6222,nats://h3:6222".to_owned()), "{args:?}");
        // One argument per flag: a flag of the scenario's replaces it whole.
        assert!(args.iter().all(|a| a.starts_with("--") && a.contains('=')), "{args:?}");
    }

    #[test]
    fn a_cluster_has_formed_once_its_meta_leader_counts_every_member_current() {
        let hosts = ["h1", "h2", "h3"];
        let meta = |size: u64, replicas: serde_json::Value| serde_json::json!({ "leader": "h1", "cluster_size": size, "replicas": replicas });
        let missing = |formed: Formed| match formed {
            Formed::No(why) => (why.clone(), why.rsplit(": ").next().unwrap_or_default().to_owned()),
            other => panic!("{other:?}"),
        };
        let current = serde_json::json!([{ "name": "h2", "current": true }, { "name": "h3", "current": true }]);
        assert_eq!(judge_meta(&meta(3, current.clone()), &hosts), Formed::Yes);
        // Two members elected a leader and the third is not in yet.
        let (why, out) = missing(judge_meta(&meta(2, serde_json::json!([{ "name": "h3", "current": true }])), &hosts));
        assert_eq!(out, "h2");
        assert!(why.contains("a cluster of 2; not a current peer of it: h2"), "{why}");
        let behind = serde_json::json!([{ "name": "h2", "current": true }, { "name": "h3", "current": false }]);
        assert_eq!(missing(judge_meta(&meta(3, behind), &hosts)).1, "h3");
        let offline =
            serde_json::json!([{ "name": "h2", "current": true, "offline": true }, { "name": "h3", "current": true }]);
        assert_eq!(missing(judge_meta(&meta(3, offline), &hosts)).1, "h2");
        let no_leader = serde_json::json!({ "cluster_size": 3, "replicas": current });
        assert_eq!(judge_meta(&no_leader, &hosts), Formed::No("the JetStream meta group has no leader".into()));
    }

    #[test]
    fn server_args_go_to_the_entrypoint_in_order() {
        let w = (KIND.build)(None, vec!["--sync-interval".into(), "always".into()]);
        assert_eq!(w.container().cmd, ["--sync-interval", "always"]);
        assert_eq!(w.container().image, IMAGE);
    }
}
