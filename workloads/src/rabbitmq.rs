//! RabbitMQ: every transfer is one message published with publisher
//! confirms to a durable queue, and counts as acknowledged once the broker
//! confirmed it (`basic.ack` on the confirm channel); verified by
//! consuming the whole queue.
//!
//! The message is the ledger row (`"id src dst amount"`, the transfer's id
//! also in `message-id`), and the balances are recomputed from the
//! messages read back, as for NATS. The number of accounts, which a queue
//! cannot carry, is the one persistent message of a second queue,
//! `crashlab.accounts`, of the first one's type. Each client publishes on its own connection and
//! waits for each confirm before the next publish, so the queue must hold
//! each client's transfers in the order they were sent: an out-of-order
//! pair fails the engine check (`corrupt`), as does a queue that still
//! says messages are ready (`queue.declare`, passive) once its consumer
//! stopped being delivered any.
//!
//! The verifier consumes the queue without acknowledging anything and then
//! closes its channel, which puts every message back: a second look (a
//! crash state's, a replay's) finds the queue as the first did.
//!
//! # At least once
//!
//! Confirms promise at-least-once delivery: a publisher that re-sends what
//! it has no confirm for may leave two copies, and a consumer that fails
//! before its `basic.ack` is delivered the message again. Neither can
//! happen here: the driver never re-sends (a publish without a confirm
//! ends its client and is in doubt, present or absent both correct), and
//! the verifier is the only consumer and acknowledges nothing. A
//! duplicate read back is therefore the broker's own, and the checker's
//! duplicate rule makes it `inconsistent`; a message never published is a
//! phantom, `inconsistent` too.
//!
//! # Options
//!
//! Two options of the driver ride in the scenario's `server-args`, since
//! they are properties the broker keeps with the queue and the message:
//! `--queue-type classic|quorum` (the queue's `x-queue-type`, classic by
//! default) and `--delivery-mode persistent|transient` (each message's
//! delivery mode, persistent by default). crashlab's entrypoint skips
//! them; it writes every `KEY=VALUE` argument into `rabbitmq.conf`, where
//! it replaces crashlab's own setting of that key, and passes `--erl ARGS`
//! to the Erlang VM (`--erl "-ra wal_sync_method none"` sets an
//! application's environment that `rabbitmq.conf` has no key for).
//!
//! # Cluster
//!
//! On `cluster-3` every node is `rabbit@hN` on host `hN`, with one Erlang
//! cookie, and finds the others through the classic configuration's peer
//! discovery (`RabbitCluster`); a quorum queue declared once all three
//! answer has the three nodes as members. RabbitMQ cannot say over AMQP
//! whether the cluster has formed, so the harness waits for every node's
//! answer only.
//!
//! The image built from [`RECIPE`] is Debian trixie's `rabbitmq-server`
//! (4.0), whose node is `rabbit@localhost` with its data in `/data`, so
//! that a new container (another host name) finds the data of the last.
//! The engine's own check runs `rabbitmq-diagnostics` in the container
//! ([`Workload::engine_check_command`]). The driver is `lapin`.

use crate::cluster::Clustering;
use crate::driver::{Attempt, Attempter, ClientContext, InDoubt, run_clients};
use crate::message::{balances, parse_payload, payload};
use crate::{
    ContainerSpec, ImageRecipe, Kind, LoadConfig, LoadOutcome, LogSeverity, Observation, RecipeFile, Transfer,
    Workload, WorkloadError,
};
use crate::{query_err, timed as timed_within};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use lapin::options::{
    BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::watch;

/// Image crashlab builds for this workload.
pub const IMAGE: &str = "crashlab/rabbitmq:latest";

/// Where the node keeps its data (`RABBITMQ_MNESIA_BASE`) in the container.
pub const DATA_DIR: &str = "/data";

/// The AMQP port.
pub const PORT: u16 = 5672;

/// `kind = "rabbitmq"`.
pub const KIND: Kind = Kind {
    name: "rabbitmq",
    build: |image, server_args| {
        Box::new(Rabbitmq {
            image: image.unwrap_or_else(|| IMAGE.to_owned()),
            options: Options::from_args(&server_args),
            server_args,
        })
    },
};

/// The queue the load publishes to.
const QUEUE: &str = "crashlab";
/// The queue holding one message, the number of accounts.
const ACCOUNTS_QUEUE: &str = "crashlab.accounts";

/// How long a publish waits for its confirm, and any other call for its
/// answer: a server killed mid-call never answers.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long reading the queue back waits for the next message before it
/// asks the queue whether any is left.
const QUIET: Duration = Duration::from_secs(1);
/// How long reading the queue back may go on while the queue still says
/// messages are ready.
const READ_DEADLINE: Duration = Duration::from_secs(30);
/// Messages the verifier's consumer may hold unacknowledged: AMQP's largest
/// prefetch. Without one, a quorum queue delivers 2,000 and waits.
const PREFETCH: u16 = u16::MAX;

const ENTRYPOINT: &str = r#"#!/bin/sh
# crashlab's RabbitMQ entrypoint: one node, rabbit@localhost, its data in
# /data, AMQP on 5672 for the guest user from any address. A KEY=VALUE
# argument is a rabbitmq.conf line and replaces crashlab's setting of KEY
# (the first of a KEY wins: the scenario's come before crashlab's cluster's);
# `--erl ARGS` goes to the Erlang VM; `--nodename=NAME` names the node (a
# cluster's members: rabbit@h1 ...) and `--cookie=VALUE` is the Erlang
# cookie the nodes and the CLI tools share; `--queue-type` and
# `--delivery-mode` are the driver's and are skipped here.
set -e
mkdir -p /data /etc/rabbitmq
user=/etc/rabbitmq/crashlab-user.conf
: >"$user"
erl=""
while [ $# -gt 0 ]; do
  a="$1"; shift
  case "$a" in
    --queue-type|--delivery-mode) shift ;;
    --queue-type=*|--delivery-mode=*) ;;
    --nodename=*) export RABBITMQ_NODENAME="${a#--nodename=}" ;;
    --cookie=*) umask 077; printf '%s' "${a#--cookie=}" >"$HOME/.erlang.cookie"; umask 022 ;;
    --erl) erl="$erl $1"; shift ;;
    --erl=*) erl="$erl ${a#--erl=}" ;;
    *=*) grep -q "^${a%%=*} = " "$user" || echo "${a%%=*} = ${a#*=}" >>"$user" ;;
    *) echo "crashlab-entrypoint: $a is neither KEY=VALUE (a rabbitmq.conf line) nor --erl ARGS" >&2; exit 2 ;;
  esac
done
default() {
  grep -q "^[[:space:]]*$1[[:space:]]*=" "$user" || echo "$1 = $2"
}
{
  cat "$user"
  default listeners.tcp.default 5672
  default loopback_users none
} >/etc/rabbitmq/rabbitmq.conf
# The CLI tools run in the container (the engine's check) name the node by it.
echo "$RABBITMQ_NODENAME" >/etc/rabbitmq/crashlab-nodename
export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="${RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS:-}$erl"
exec /usr/lib/rabbitmq/bin/rabbitmq-server
"#;

/// Debian trixie's RabbitMQ with crashlab's entrypoint.
pub const RECIPE: ImageRecipe = ImageRecipe {
    name: "rabbitmq",
    tag: IMAGE,
    suite: "trixie",
    packages: &["rabbitmq-server"],
    files: &[RecipeFile { path: "usr/local/bin/crashlab-entrypoint", contents: ENTRYPOINT, mode: 0o755 }],
    prune: &["var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/locale"],
    changes: &[
        r#"ENTRYPOINT ["/usr/local/bin/crashlab-entrypoint"]"#,
        "EXPOSE 5672/tcp",
        "ENV LANG=C.UTF-8",
        // The node's name, not the container's host name, which changes
        // with each container: the data directory is named after it.
        "ENV RABBITMQ_NODENAME=rabbit@localhost",
        "ENV RABBITMQ_MNESIA_BASE=/data",
        "ENV RABBITMQ_LOGS=-",
        // The CLI tools, run as root in the container (`docker exec`),
        // find the node's cookie where the node, also root, wrote it.
        "ENV HOME=/root",
        "ENV PATH=/usr/lib/rabbitmq/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ],
};

/// A RabbitMQ cluster: every node named after its host (`rabbit@h1`),
/// sharing one Erlang cookie, and finding the others through the classic
/// configuration's peer discovery, which lists every node. A node answers
/// AMQP only once it has joined.
struct RabbitCluster;

/// The Erlang cookie of crashlab's clusters.
const CLUSTER_COOKIE: &str = "crashlab-cluster-cookie";

impl Clustering for RabbitCluster {
    fn server_args(&self, me: usize, hosts: &[&str]) -> Vec<String> {
        let mut args = vec![
            format!("--nodename=rabbit@{}", hosts[me]),
            format!("--cookie={CLUSTER_COOKIE}"),
            "cluster_formation.peer_discovery_backend=classic_config".to_owned(),
        ];
        args.extend(
            (hosts.iter().enumerate())
                .map(|(i, h)| format!("cluster_formation.classic_config.nodes.{}=rabbit@{h}", i + 1)),
        );
        args
    }
}

/// The driver's options, from the scenario's `server-args`; see the
/// module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The queue's `x-queue-type`.
    pub queue_type: String,
    /// Each message's delivery mode: `persistent` (2) or `transient` (1).
    pub delivery_mode: String,
}

impl Options {
    /// The options among `args` (`--queue-type quorum`, `--delivery-mode=transient`);
    /// the last of each wins, as a later flag does.
    pub fn from_args(args: &[String]) -> Options {
        let mut options = Options { queue_type: "classic".into(), delivery_mode: "persistent".into() };
        let mut args = args.iter();
        while let Some(a) = args.next() {
            let (flag, inline) = match a.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_owned())),
                _ => (a.as_str(), None),
            };
            let slot = match flag {
                "--queue-type" => &mut options.queue_type,
                "--delivery-mode" => &mut options.delivery_mode,
                _ => continue,
            };
            if let Some(value) = inline.or_else(|| args.next().cloned()) {
                *slot = value;
            }
        }
        options
    }

    /// The AMQP delivery mode, or what is wrong with the option.
    fn delivery_mode(&self) -> Result<u8, String> {
        match self.delivery_mode.as_str() {
            "persistent" => Ok(2),
            "transient" => Ok(1),
            other => Err(format!("--delivery-mode {other}: persistent or transient")),
        }
    }

    /// The queue's arguments, or what is wrong with the option.
    fn queue_arguments(&self) -> Result<FieldTable, String> {
        match self.queue_type.as_str() {
            "classic" | "quorum" => {}
            other => return Err(format!("--queue-type {other}: classic or quorum")),
        }
        let mut args = FieldTable::default();
        args.insert("x-queue-type".into(), AMQPValue::LongString(self.queue_type.as_str().into()));
        Ok(args)
    }
}

/// The RabbitMQ workload.
#[derive(Debug, Clone)]
pub struct Rabbitmq {
    pub image: String,
    /// Arguments to crashlab's entrypoint: `rabbitmq.conf` lines, `--erl
    /// ARGS`, and the driver's options.
    pub server_args: Vec<String>,
    pub options: Options,
}

impl Workload for Rabbitmq {
    fn name(&self) -> &str {
        KIND.name
    }

    fn image_names(&self) -> &'static [&'static str] {
        &["rabbitmq"]
    }

    fn client_command(&self) -> Option<String> {
        Some("rabbitmqctl".into())
    }

    fn log_severity(&self, line: &str) -> Option<LogSeverity> {
        log_severity(line)
    }

    fn container(&self) -> ContainerSpec {
        ContainerSpec::plain(&self.image, &self.server_args, DATA_DIR, PORT)
    }

    fn clustering(&self) -> Option<std::sync::Arc<dyn Clustering>> {
        Some(std::sync::Arc::new(RabbitCluster))
    }

    /// The node is up and none of its resource alarms (memory, disk) is
    /// raised: an alarm blocks publishers, which would read as a stall.
    fn engine_check_command(&self) -> Option<Vec<String>> {
        // The node's name as the entrypoint set it (a cluster's member is
        // not rabbit@localhost).
        let script = "n=$(cat /etc/rabbitmq/crashlab-nodename 2>/dev/null || echo \"$RABBITMQ_NODENAME\"); \
                      rabbitmq-diagnostics -q -n \"$n\" check_running && \
                      rabbitmq-diagnostics -q -n \"$n\" check_local_alarms";
        Some(vec!["sh".into(), "-c".into(), script.into()])
    }

    fn probe(&self, addr: SocketAddr) -> BoxFuture<'_, Result<(), WorkloadError>> {
        Box::pin(async move {
            let (connection, _channel) = connect(addr).await?;
            let _ = connection.close(200, "probe".into()).await;
            Ok(())
        })
    }

    fn setup(&self, addr: SocketAddr, load: LoadConfig) -> BoxFuture<'_, Result<(), WorkloadError>> {
        Box::pin(async move {
            let bad_option = |e: String| WorkloadError::Query { what: "read the driver's options", source: e.into() };
            let arguments = self.options.queue_arguments().map_err(bad_option)?;
            self.options.delivery_mode().map_err(bad_option)?;
            let (connection, channel) = connect(addr).await?;
            for queue in [QUEUE, ACCOUNTS_QUEUE] {
                timed(channel.queue_delete(queue.into(), QueueDeleteOptions::default()), "delete a queue").await?;
            }
            let durable = QueueDeclareOptions { durable: true, ..Default::default() };
            // Both of the queue's type: on a cluster, a quorum queue's
            // number of accounts survives the loss of its first node.
            timed(channel.queue_declare(QUEUE.into(), durable, arguments.clone()), "declare the queue").await?;
            timed(channel.queue_declare(ACCOUNTS_QUEUE.into(), durable, arguments), "declare a queue").await?;
            timed(channel.confirm_select(ConfirmSelectOptions::default()), "select confirms").await?;
            let accounts = load.accounts.to_string();
            let properties = BasicProperties::default().with_delivery_mode(2);
            let publish = channel.basic_publish(
                "".into(),
                ACCOUNTS_QUEUE.into(),
                BasicPublishOptions::default(),
                accounts.as_bytes(),
                properties,
            );
            let confirm = timed(publish, "publish the number of accounts").await?;
            match timed(confirm, "publish the number of accounts").await? {
                Confirmation::Ack(_) => {}
                other => return Err(query_err("publish the number of accounts")(format!("{other:?}"))),
            }
            let _ = connection.close(200, "setup".into()).await;
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
        let delivery_mode = self.options.delivery_mode().unwrap_or(2);
        Box::pin(run_clients(load, stop, grace, move |ctx| run_client(addr, delivery_mode, ctx)))
    }

    fn observe(&self, addr: SocketAddr) -> BoxFuture<'_, Result<Observation, WorkloadError>> {
        Box::pin(observe(addr))
    }
}

/// `call` with [`CALL_TIMEOUT`].
async fn timed<T, E: Into<Box<dyn std::error::Error + Send + Sync>>>(
    call: impl std::future::Future<Output = Result<T, E>>,
    what: &'static str,
) -> Result<T, WorkloadError> {
    timed_within(call, CALL_TIMEOUT, what).await
}

/// A connection as the guest user and one channel on it.
async fn connect(addr: SocketAddr) -> Result<(Connection, Channel), WorkloadError> {
    let uri = format!("amqp://guest:guest@{addr}/%2f?connection_timeout={}", CALL_TIMEOUT.as_millis());
    let connected = tokio::time::timeout(CALL_TIMEOUT, Connection::connect(&uri, ConnectionProperties::default()));
    let connection = match connected.await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return Err(WorkloadError::Connect { addr, source: e.into() }),
        Err(_) => return Err(WorkloadError::Connect { addr, source: "no answer".into() }),
    };
    let channel = timed(connection.create_channel(), "open a channel").await?;
    Ok((connection, channel))
}

async fn run_client(addr: SocketAddr, delivery_mode: u8, ctx: ClientContext) -> Option<String> {
    let connected = ctx
        .connect(async {
            let (connection, channel) = connect(addr).await?;
            timed(channel.confirm_select(ConfirmSelectOptions::default()), "select confirms").await?;
            Ok::<_, WorkloadError>((connection, channel))
        })
        .await;
    match connected {
        Ok((_connection, channel)) => ctx.run(&mut Publisher { channel, delivery_mode }).await,
        Err(e) => Some(e),
    }
}

/// One client's publishes.
struct Publisher {
    channel: Channel,
    delivery_mode: u8,
}

impl Attempter for Publisher {
    async fn attempt(&mut self, t: Transfer, in_doubt: InDoubt) -> Attempt {
        let properties =
            BasicProperties::default().with_delivery_mode(self.delivery_mode).with_message_id(t.id.to_string().into());
        // A publish is its own commit: once it may have left, it is in doubt.
        in_doubt.mark();
        let body = payload(&t);
        let publish = self.channel.basic_publish(
            "".into(),
            QUEUE.into(),
            BasicPublishOptions::default(),
            body.as_bytes(),
            properties,
        );
        let confirm = match timed(publish, "publish").await {
            Ok(confirm) => confirm,
            Err(e) => return Attempt::Failed { error: crate::error_chain(&e), rolled_back: false },
        };
        match timed(confirm, "wait for the confirm").await {
            Ok(Confirmation::Ack(None)) => Attempt::Committed,
            Ok(other) => Attempt::Failed { error: format!("confirm: {other:?}"), rolled_back: false },
            Err(e) => Attempt::Failed { error: crate::error_chain(&e), rolled_back: false },
        }
    }
}

/// Whether the broker closed the channel because a queue does not exist.
fn not_found(e: &WorkloadError) -> bool {
    let WorkloadError::Query { source, .. } = e else { return false };
    let Some(e) = source.downcast_ref::<lapin::Error>() else { return false };
    matches!(e.kind(), lapin::ErrorKind::ProtocolError(amqp) if amqp.get_id() == 404)
}

/// One message as read back: its place in the queue and its transfer.
#[derive(Debug, Clone, PartialEq)]
struct Read {
    position: u64,
    transfer: Transfer,
}

/// Whether the broker said a queue's process is down: a queue it has not
/// recovered yet after a start answers 404 too, with these words; a
/// quorum queue of a cluster whose members all restarted answers a read
/// with `INTERNAL_ERROR ... noproc` until its members have elected a
/// leader.
fn queue_down(e: &WorkloadError) -> bool {
    let WorkloadError::Query { source, .. } = e else { return false };
    let Some(e) = source.downcast_ref::<lapin::Error>() else { return false };
    matches!(e.kind(), lapin::ErrorKind::ProtocolError(amqp)
        if ["is down or inaccessible", "noproc"].iter().any(|w| amqp.get_message().as_str().contains(w)))
}

/// A channel on which both queues answer, and the accounts queue can be
/// read, once the broker has recovered them (up to [`READ_DEADLINE`]); a
/// queue that is missing or still down then is the caller's to report.
async fn channel_on_recovered_queues(addr: SocketAddr) -> Result<(Connection, Channel), WorkloadError> {
    let started = std::time::Instant::now();
    loop {
        let (connection, channel) = connect(addr).await?;
        let passive = QueueDeclareOptions { passive: true, durable: true, ..Default::default() };
        let mut down = false;
        for queue in [ACCOUNTS_QUEUE, QUEUE] {
            match timed(channel.queue_declare(queue.into(), passive, FieldTable::default()), "read a queue").await {
                Err(e) if queue_down(&e) => down = true,
                _ => {}
            }
            if down {
                break;
            }
        }
        // A declaration answers from the queue's definition; a read needs
        // its process. The accounts queue's one message is put back when
        // this connection closes.
        if !down {
            let get = channel.basic_get(ACCOUNTS_QUEUE.into(), BasicGetOptions { no_ack: false });
            down = timed(get, "read a queue").await.is_err_and(|e| queue_down(&e));
        }
        if !down || started.elapsed() >= READ_DEADLINE {
            let _ = connection.close(200, "recovered".into()).await;
            return connect(addr).await;
        }
        let _ = connection.close(200, "not yet recovered".into()).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn observe(addr: SocketAddr) -> Result<Observation, WorkloadError> {
    let (connection, channel) = channel_on_recovered_queues(addr).await?;
    let passive = QueueDeclareOptions { passive: true, durable: true, ..Default::default() };
    let meta = timed(channel.basic_get(ACCOUNTS_QUEUE.into(), BasicGetOptions { no_ack: false }), "read a queue").await;
    let accounts = match meta {
        Ok(Some(m)) => std::str::from_utf8(&m.delivery.data).ok().and_then(|n| n.parse::<u32>().ok()),
        Ok(None) => return Ok(Observation::Gone { detail: format!("queue {ACCOUNTS_QUEUE} is empty") }),
        Err(e) if not_found(&e) => {
            return Ok(Observation::Gone { detail: format!("queue {ACCOUNTS_QUEUE}: {}", crate::error_chain(&e)) });
        }
        Err(e) => return Err(e),
    };
    let Some(accounts) = accounts else {
        return Ok(Observation::Unreadable { detail: format!("queue {ACCOUNTS_QUEUE}'s message is no number") });
    };
    let ready = || async {
        let declared = channel.queue_declare(QUEUE.into(), passive, FieldTable::default());
        timed(declared, "read the queue").await.map(|q| u64::from(q.message_count()))
    };
    match ready().await {
        Ok(_) => {}
        Err(e) if not_found(&e) => {
            return Ok(Observation::Gone { detail: format!("queue {QUEUE}: {}", crate::error_chain(&e)) });
        }
        Err(e) => return Err(e),
    }
    timed(channel.basic_qos(PREFETCH, BasicQosOptions::default()), "set the prefetch").await?;
    let options = BasicConsumeOptions { no_ack: false, ..Default::default() };
    let consume = channel.basic_consume(QUEUE.into(), "crashlab-verify".into(), options, FieldTable::default());
    let mut consumer = timed(consume, "consume the queue").await?;
    let (mut read, started) = (Vec::new(), std::time::Instant::now());
    // A queue still recovering (a quorum queue replaying its log) delivers
    // what it has recovered so far: consume until a quiet spell with none
    // left ready, or until the prefetch or the deadline stops it.
    let left = loop {
        let delivery = match tokio::time::timeout(QUIET, consumer.next()).await {
            Ok(Some(Ok(d))) => d,
            Ok(Some(Err(e))) => return Err(query_err("consume the queue")(e)),
            Ok(None) => break ready().await?,
            Err(_) => {
                let left = ready().await?;
                if left == 0 || read.len() >= usize::from(PREFETCH) || started.elapsed() >= READ_DEADLINE {
                    break left;
                }
                continue;
            }
        };
        let position = read.len() as u64 + 1;
        let Some(transfer) = parse_payload(&delivery.data) else {
            let detail = format!("message {position}: payload {:?}", String::from_utf8_lossy(&delivery.data));
            return Ok(Observation::Unreadable { detail });
        };
        read.push(Read { position, transfer });
    };
    // Nothing was acknowledged: closing puts every message back.
    let _ = connection.close(200, "verified".into()).await;
    Ok(judge(&read, accounts, left))
}

/// The observation of what a consumer was delivered, given the number of
/// accounts and the messages the queue still said were ready afterwards.
fn judge(read: &[Read], accounts: u32, left: u64) -> Observation {
    let ledger: Vec<Transfer> = read.iter().map(|r| r.transfer).collect();
    let mut problems = Vec::new();
    if left > 0 {
        problems
            .push(format!("the queue still says {left} messages ready after a consumer was delivered {}", read.len()));
    }
    let mut newest: HashMap<u64, &Read> = HashMap::new();
    for r in read {
        let client = r.transfer.id >> 40;
        if let Some(prev) = newest.insert(client, r)
            && prev.transfer.id >= r.transfer.id
        {
            problems.push(format!(
                "client {client}'s transfer {} (message {}) after its transfer {} (message {}), out of publish order",
                r.transfer.id, r.position, prev.transfer.id, prev.position
            ));
        }
    }
    let engine_check = if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) };
    Observation::Present {
        ledger: ledger.clone(),
        balances: balances(&ledger, accounts),
        engine_check,
        engine_notes: vec![],
    }
}

/// RabbitMQ 4's console format:
/// `2026-12-07 06:00:00.000000+00:00 [info] <0.254.0> message`.
pub fn log_severity(line: &str) -> Option<LogSeverity> {
    match line.split(' ').nth(2)? {
        "[warning]" => Some(LogSeverity::Warning),
        "[error]" => Some(LogSeverity::Error),
        "[critical]" | "[alert]" | "[emergency]" => Some(LogSeverity::Fatal),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(position: u64, client: u32, seq: u64) -> Read {
        Read { position, transfer: Transfer { id: crate::ack::ledger_id(client, seq), src: 0, dst: 1, amount: 5 } }
    }

    #[test]
    fn each_cluster_node_is_named_after_its_host_and_lists_every_node() {
        let args = RabbitCluster.server_args(1, &["h1", "h2", "h3"]);
        assert_eq!(args[0], "--nodename=rabbit@h2");
        assert!(args.contains(&"cluster_formation.classic_config.nodes.3=rabbit@h3".to_owned()), "{args:?}");
        // The driver's options are not among them.
        assert_eq!(Options::from_args(&args), Options::from_args(&[]));
    }

    #[test]
    fn options_come_from_the_server_args_and_the_last_wins() {
        let args = |a: &[&str]| Options::from_args(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let default = args(&["loopback_users=none"]);
        assert_eq!((default.queue_type.as_str(), default.delivery_mode.as_str()), ("classic", "persistent"));
        let o = args(&["--queue-type", "quorum", "--delivery-mode=transient", "--queue-type=classic"]);
        assert_eq!((o.queue_type.as_str(), o.delivery_mode.as_str()), ("classic", "transient"));
        assert_eq!(o.delivery_mode(), Ok(1));
        assert!(args(&["--queue-type", "stream"]).queue_arguments().unwrap_err().contains("classic or quorum"));
        assert!(args(&["--delivery-mode", "2"]).delivery_mode().is_err());
        assert_eq!(args(&["--queue-type"]).queue_type, "classic", "a flag without its value changes nothing");
    }

    #[test]
    fn a_queue_read_whole_and_in_order_passes_the_engine_check() {
        let read = [r(1, 0, 1), r(2, 1, 1), r(3, 0, 2)];
        let Observation::Present { ledger, engine_check, .. } = judge(&read, 2, 0) else { panic!() };
        assert_eq!(engine_check, Ok(()));
        assert_eq!(ledger.len(), 3);
        let Observation::Present { engine_check, .. } = judge(&[], 2, 0) else { panic!() };
        assert_eq!(engine_check, Ok(()));
    }

    #[test]
    fn publish_order_per_client_and_messages_left_ready_are_checked() {
        let out_of_order = [r(1, 0, 2), r(2, 1, 1), r(3, 0, 1)];
        let Observation::Present { engine_check, .. } = judge(&out_of_order, 2, 0) else { panic!() };
        assert!(engine_check.unwrap_err().contains("out of publish order"));
        let short = [r(1, 0, 1), r(2, 0, 2)];
        let Observation::Present { engine_check, .. } = judge(&short, 2, 1) else { panic!() };
        assert!(engine_check.unwrap_err().contains("still says 1 messages ready after a consumer was delivered 2"));
    }

    #[test]
    fn server_log_lines_are_classified_by_their_level() {
        let line = |level: &str| format!("2026-12-07 06:00:00.000000+00:00 [{level}] <0.254.0> x");
        assert_eq!(log_severity(&line("info")), None);
        assert_eq!(log_severity(&line("warning")), Some(LogSeverity::Warning));
        assert_eq!(log_severity(&line("error")), Some(LogSeverity::Error));
        assert_eq!(log_severity(&line("critical")), Some(LogSeverity::Fatal));
        assert_eq!(log_severity("BOOT FAILED"), None);
    }

    #[test]
    fn server_args_go_to_the_entrypoint_and_the_options_to_the_driver() {
        let w = Rabbitmq {
            image: IMAGE.into(),
            options: Options::from_args(&["--queue-type".into(), "quorum".into()]),
            server_args: vec!["--queue-type".into(), "quorum".into()],
        };
        assert_eq!(w.container().cmd, ["--queue-type", "quorum"]);
        assert_eq!(w.options.queue_arguments().unwrap().inner().len(), 1);
    }
}
