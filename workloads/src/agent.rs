//! The harness's side of `crashlab-agent` (the `workloads/agent` crate):
//! the image it runs in, the container that runs it, and a driver for the
//! line protocol its engines speak (see the agent's `serve` module):
//! `PING`, `SETUP`, `TRANSFER`, `OBSERVE`.
//!
//! Embedded engines have no server of their own, so the agent is the
//! server: it is the container's main process, it applies each transfer
//! with the engine in the container, next to the data, and answers `OK`
//! only once the engine made it durable by its own rules. The driver sends
//! one transfer per request and marks it in doubt before it goes out,
//! since the commit happens inside that one exchange.
//!
//! The agent is built by cargo on the host and copied into the container
//! by the harness between create and start ([`Workload::agent_dir`]); the
//! image is a minimal Debian of the same release as the build host, so
//! the binary's C library matches.

use crate::driver::{Attempt, Attempter, ClientContext, InDoubt, run_clients};
use crate::{
    ContainerSpec, INITIAL_BALANCE, ImageRecipe, LoadConfig, LoadOutcome, LogSeverity, Observation, Transfer, Workload,
    WorkloadError,
};
use futures_util::future::BoxFuture;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufStream};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// Image the agent-hosted workloads run in.
pub const IMAGE: &str = "crashlab/agent:latest";

/// Where the harness puts the agent in the container.
pub const BIN_DIR: &str = "/usr/local/bin";

/// The agent's file name, on the host and in the container.
pub const BIN_NAME: &str = "crashlab-agent";

/// Where the engines keep their data in the container.
pub const DATA_DIR: &str = "/data";

/// The port the agent listens on in the container.
pub const PORT: u16 = 7878;

/// A minimal bookworm (the `sqlite3` shell is there to look at a kept
/// database by hand) whose entrypoint is the agent the harness uploads.
pub const RECIPE: ImageRecipe = ImageRecipe {
    name: "agent",
    tag: IMAGE,
    suite: "bookworm",
    packages: &["sqlite3"],
    files: &[],
    prune: &["var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/locale"],
    changes: &[r#"ENTRYPOINT ["/usr/local/bin/crashlab-agent"]"#, "EXPOSE 7878/tcp", "ENV LANG=C.UTF-8"],
};

/// The container that runs `crashlab-agent <engine> --port … --data-dir …`
/// followed by the scenario's `server-args`.
/// The engines the agent hosts; each module ([`crate::sqlite`],
/// [`crate::fsync_log`]) documents its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    FsyncLog,
}

impl Engine {
    /// The workload's name, which is also the agent's subcommand.
    pub const fn name(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::FsyncLog => "fsync-log",
        }
    }
}

/// A workload the agent hosts inside its container.
#[derive(Debug, Clone)]
pub struct Hosted {
    pub engine: Engine,
    pub image: String,
    /// The engine's agent flags, such as `--synchronous=off`.
    pub server_args: Vec<String>,
}

impl Workload for Hosted {
    fn name(&self) -> &str {
        self.engine.name()
    }

    fn container(&self) -> ContainerSpec {
        container(&self.image, self.engine.name(), &self.server_args)
    }

    fn agent_dir(&self) -> Option<&str> {
        Some(BIN_DIR)
    }

    fn log_severity(&self, line: &str) -> Option<LogSeverity> {
        log_severity(line)
    }

    fn probe(&self, addr: SocketAddr) -> BoxFuture<'_, Result<(), WorkloadError>> {
        Box::pin(probe(addr))
    }

    fn setup(&self, addr: SocketAddr, load: LoadConfig) -> BoxFuture<'_, Result<(), WorkloadError>> {
        Box::pin(setup(addr, load))
    }

    fn load(
        &self,
        addr: SocketAddr,
        config: LoadConfig,
        stop: watch::Receiver<bool>,
        grace: Duration,
    ) -> BoxFuture<'_, Result<LoadOutcome, WorkloadError>> {
        Box::pin(load(addr, config, stop, grace))
    }

    /// The agent serves once its engine is open: SQLite rolls a hot
    /// journal back, or reads its WAL, when the database is opened, and
    /// the fsync-log probe has nothing to recover.
    fn recovering(&self, _addr: SocketAddr) -> BoxFuture<'_, Result<Option<bool>, WorkloadError>> {
        Box::pin(async { Ok(Some(false)) })
    }

    fn observe(&self, addr: SocketAddr) -> BoxFuture<'_, Result<Observation, WorkloadError>> {
        Box::pin(observe(addr))
    }
}

pub(crate) fn container(image: &str, engine: &str, server_args: &[String]) -> ContainerSpec {
    let mut cmd = vec![engine.to_owned(), "--port".into(), PORT.to_string(), "--data-dir".into(), DATA_DIR.into()];
    cmd.extend(server_args.iter().cloned());
    ContainerSpec {
        image: image.to_owned(),
        cmd,
        env: vec![],
        data_dir: DATA_DIR.into(),
        port: PORT,
        // SIGTERM: the agent makes what it acknowledged durable and exits.
        stop_signal: None,
        ready_log: None,
        user: None,
        binds: vec![],
        entrypoint: None,
    }
}

pub(crate) async fn probe(addr: SocketAddr) -> Result<(), WorkloadError> {
    let mut conn = Conn::connect(addr).await?;
    conn.expect_ok("PING", "ping the agent").await
}

pub(crate) async fn setup(addr: SocketAddr, load: LoadConfig) -> Result<(), WorkloadError> {
    let mut conn = Conn::connect(addr).await?;
    conn.expect_ok(&format!("SETUP {} {INITIAL_BALANCE}", load.accounts), "create the dataset").await
}

/// Runs the load, one agent connection per client.
pub(crate) async fn load(
    addr: SocketAddr,
    load: LoadConfig,
    stop: watch::Receiver<bool>,
    grace: Duration,
) -> Result<LoadOutcome, WorkloadError> {
    run_clients(load, stop, grace, move |ctx| run_client(addr, ctx)).await
}

async fn run_client(addr: SocketAddr, ctx: ClientContext) -> Option<String> {
    match ctx.connect(Conn::connect(addr)).await {
        Ok(mut conn) => ctx.run(&mut conn).await,
        Err(e) => Some(e),
    }
}

impl Attempter for Conn {
    async fn attempt(&mut self, t: Transfer, in_doubt: InDoubt) -> Attempt {
        // The commit happens inside this one exchange.
        in_doubt.mark();
        let request = format!("TRANSFER {} {} {} {}", t.id, t.src, t.dst, t.amount);
        match self.request(&request).await {
            Ok(reply) if reply == "OK" => Attempt::Committed,
            Ok(reply) => {
                Attempt::Failed { rolled_back: reply.starts_with("ABORTED"), error: format!("agent said {reply}") }
            }
            Err(e) => Attempt::Failed { error: e.to_string(), rolled_back: false },
        }
    }
}

pub(crate) async fn observe(addr: SocketAddr) -> Result<Observation, WorkloadError> {
    let mut conn = Conn::connect(addr).await?;
    let err = |e: std::io::Error| WorkloadError::Query { what: "read the dataset back", source: e.into() };
    let bad = |line: &str| err(std::io::Error::other(format!("unexpected line {line:?} from the agent")));
    let head = conn.request("OBSERVE").await.map_err(err)?;
    if let Some(detail) = head.strip_prefix("GONE ") {
        return Ok(Observation::Gone { detail: detail.to_owned() });
    }
    if let Some(detail) = head.strip_prefix("UNREADABLE ") {
        return Ok(Observation::Unreadable { detail: detail.to_owned() });
    }
    let counts: Vec<usize> = match head.strip_prefix("PRESENT ") {
        Some(rest) => rest.split(' ').map(str::parse).collect::<Result<_, _>>().map_err(|_| bad(&head))?,
        None => return Err(bad(&head)),
    };
    let [rows, accounts] = counts[..] else { return Err(bad(&head)) };
    let mut ledger = Vec::with_capacity(rows);
    for _ in 0..rows {
        let line = conn.line().await.map_err(err)?;
        ledger.push(parse_row(&line).ok_or_else(|| bad(&line))?);
    }
    let mut balances = Vec::with_capacity(accounts);
    for _ in 0..accounts {
        let line = conn.line().await.map_err(err)?;
        let parsed = line.split_once(' ').and_then(|(id, b)| Some((id.parse().ok()?, b.parse().ok()?)));
        balances.push(parsed.ok_or_else(|| bad(&line))?);
    }
    let check = conn.line().await.map_err(err)?;
    let engine_check = match check.strip_prefix("CHECK ") {
        Some("OK") => Ok(()),
        Some(why) => Err(why.to_owned()),
        None => return Err(bad(&check)),
    };
    Ok(Observation::Present { ledger, balances, engine_check, engine_notes: vec![] })
}

fn parse_row(line: &str) -> Option<Transfer> {
    let mut parts = line.split(' ');
    let t = Transfer {
        id: parts.next()?.parse().ok()?,
        src: parts.next()?.parse().ok()?,
        dst: parts.next()?.parse().ok()?,
        amount: parts.next()?.parse().ok()?,
    };
    parts.next().is_none().then_some(t)
}

/// One connection to the agent: a request line out, reply lines in.
struct Conn {
    stream: BufStream<TcpStream>,
}

impl Conn {
    async fn connect(addr: SocketAddr) -> Result<Conn, WorkloadError> {
        let stream = TcpStream::connect(addr).await.map_err(|e| WorkloadError::Connect { addr, source: e.into() })?;
        let _ = stream.set_nodelay(true);
        Ok(Conn { stream: BufStream::new(stream) })
    }

    async fn request(&mut self, line: &str) -> std::io::Result<String> {
        self.stream.write_all(line.as_bytes()).await?;
        self.stream.write_all(b"\n").await?;
        self.stream.flush().await?;
        self.line().await
    }

    async fn line(&mut self) -> std::io::Result<String> {
        let mut line = String::new();
        if self.stream.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(line.trim_end_matches('\n').to_owned())
    }

    async fn expect_ok(&mut self, line: &str, what: &'static str) -> Result<(), WorkloadError> {
        match self.request(line).await {
            Ok(reply) if reply == "OK" => Ok(()),
            Ok(reply) => Err(WorkloadError::Query { what, source: format!("agent said {reply}").into() }),
            Err(e) => Err(WorkloadError::Query { what, source: e.into() }),
        }
    }
}

/// What the agent prints: it reports a transfer's failure to the driver,
/// not to its output, and writes a line only when it is ready, when it
/// shuts down on a signal, and when it gives up (`crashlab-agent: failed to
/// ...`, then exits non-zero) or panics; the last two are fatal.
pub fn log_severity(line: &str) -> Option<LogSeverity> {
    let panicked = line.starts_with("thread '") && line.contains(" panicked at ");
    (panicked || line.starts_with("crashlab-agent: failed to ")).then_some(LogSeverity::Fatal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    async fn agent_replying(reply: &'static str) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0; 64];
            let _ = s.read(&mut buf).await.unwrap();
            s.write_all(reply.as_bytes()).await.unwrap();
        });
        addr
    }

    #[tokio::test]
    async fn observations_are_parsed() {
        let addr = agent_replying("PRESENT 2 1\n7 1 2 30\n8 2 1 0\n0 999\nCHECK OK\n").await;
        let Observation::Present { ledger, balances, engine_check, .. } = observe(addr).await.unwrap() else {
            panic!()
        };
        assert_eq!(
            ledger,
            [Transfer { id: 7, src: 1, dst: 2, amount: 30 }, Transfer { id: 8, src: 2, dst: 1, amount: 0 }]
        );
        assert_eq!((balances, engine_check), (vec![(0, 999)], Ok(())));

        let addr = agent_replying("PRESENT 0 1\n0 5\nCHECK crashlab.log: a gap\n").await;
        let Observation::Present { engine_check, .. } = observe(addr).await.unwrap() else { panic!() };
        assert_eq!(engine_check, Err("crashlab.log: a gap".into()));

        let addr = agent_replying("GONE crashlab.log is missing\n").await;
        assert_eq!(observe(addr).await.unwrap(), Observation::Gone { detail: "crashlab.log is missing".into() });

        let addr = agent_replying("PRESENT 1 0\nnonsense\n").await;
        assert!(observe(addr).await.is_err());
    }

    #[test]
    fn the_container_runs_the_engine_with_the_scenario_flags_last() {
        let spec = container(IMAGE, "sqlite", &["--synchronous=off".into()]);
        assert_eq!(spec.cmd, ["sqlite", "--port", "7878", "--data-dir", "/data", "--synchronous=off"]);
        assert_eq!((spec.port, spec.data_dir.as_str()), (PORT, DATA_DIR));
    }

    /// Lines the agent printed, run by hand: an unusable data directory, a
    /// start and a SIGTERM; and a panic as Rust prints it.
    #[test]
    fn agent_output_is_fatal_only_when_it_gives_up() {
        for (line, severity) in [
            (
                "crashlab-agent: failed to create /proc/nope: No such file or directory (os error 2)",
                Some(LogSeverity::Fatal),
            ),
            ("crashlab-agent: sqlite on /tmp/checks-agent-x ready on port 47811", None),
            ("crashlab-agent: signal 15, shutting down", None),
            (
                "thread 'fsync_log::tests::the_log_grows_past_its_first_layout' (6755) panicked at workloads/agent/src/fsync_log.rs:546:9:",
                Some(LogSeverity::Fatal),
            ),
        ] {
            assert_eq!(log_severity(line), severity, "{line}");
        }
    }
}
