//! Is crashlab's PostgreSQL driver the bottleneck? On one PostgreSQL
//! container (named volume, durable settings, 4 clients) this runs
//! crashlab's driver and pgbench with the same transaction
//! (`benches/pgbench/transfer.sql`, prepared statements) in alternation,
//! three rounds each, and prints the median transactions per second of
//! both and their ratio (target: ≥ 1.0).
//!
//! Run: `cargo bench -p crashlab-benches --bench postgres_load_generator`
//! (needs Docker, root and pgbench: `apt-get install postgresql-client`).

use crashlab::deployment::Deployment;
use crashlab::run::{RunContext, cleanup_run};
use crashlab::strategy::{Storage, Strategy};
use crashlab_workloads::postgres::{IMAGE, Postgres};
use crashlab_workloads::{LoadConfig, Workload};
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

const ROUNDS: usize = 3;
const SECONDS: u64 = 10;
const CLIENTS: u32 = 4;
const ACCOUNTS: u32 = 100;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn crashlab_tps(workload: &Postgres, addr: SocketAddr, seed: u64) -> f64 {
    let config = LoadConfig { clients: CLIENTS, accounts: ACCOUNTS, seed };
    workload.setup(addr, config).await.expect("setup");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let load = workload.load(addr, config, stop_rx, Duration::from_secs(5));
    let timer = async {
        tokio::time::sleep(Duration::from_secs(SECONDS)).await;
        let _ = stop_tx.send(true);
    };
    let (outcome, ()) = tokio::join!(load, timer);
    let outcome = outcome.expect("load");
    assert!(outcome.client_errors.is_empty(), "{:?}", outcome.client_errors);
    outcome.log.acked() as f64 / started.elapsed().as_secs_f64()
}

async fn pgbench_tps(workload: &Postgres, addr: SocketAddr) -> f64 {
    workload.setup(addr, LoadConfig { clients: CLIENTS, accounts: ACCOUNTS, seed: 0 }).await.expect("setup");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/pgbench/transfer.sql");
    let out = Command::new("pgbench")
        .env("PGPASSWORD", "crashlab")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-p", &addr.port().to_string()])
        .args(["-n", "-M", "prepared", "-D", "seq=0", "-c", &CLIENTS.to_string(), "-j", "2"])
        .args(["-T", &SECONDS.to_string(), "-f", script, "postgres"])
        .output()
        .expect("pgbench is installed (apt-get install postgresql-client)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "pgbench failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    // "tps = 1630.571466 (without initial connection time)"
    let line = text.lines().find(|l| l.starts_with("tps = ")).expect("pgbench summary");
    line.split_whitespace().nth(2).and_then(|s| s.parse().ok()).expect("tps")
}

async fn throughput(docker: &crashlab::docker::Docker, state: &std::path::Path) {
    let run = RunContext::create(state).expect("run dir");
    let workload = Postgres {
        image: IMAGE.into(),
        server_args: ["-c", "synchronous_commit=on", "-c", "fsync=on"].map(String::from).to_vec(),
    };
    let name = run.object_name("bench");
    let storage = Storage::provision(docker, &run, Strategy::NamedVolume, &name).await.expect("volume");
    let mut deployment = Deployment::new(docker.clone(), run.clone(), workload.container(), storage, name);
    deployment.create().await.expect("create");
    deployment.start().await.expect("start");
    let addr = deployment.addr().expect("published port");
    let deadline = Instant::now() + Duration::from_secs(60);
    while workload.probe(addr).await.is_err() {
        assert!(Instant::now() < deadline, "PostgreSQL did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let c = crashlab_tps(&workload, addr, round as u64).await;
        let p = pgbench_tps(&workload, addr).await;
        println!("round {}: crashlab {c:.0} tps, pgbench {p:.0} tps", round + 1);
        ours.push(c);
        theirs.push(p);
    }
    let (c, p) = (median(ours), median(theirs));
    println!("median of {ROUNDS}: crashlab {c:.0} tps, pgbench {p:.0} tps, ratio {:.2} (target >= 1.0)", c / p);
    cleanup_run(docker, state, run.id()).await.expect("cleanup");
}

fn main() {
    // `cargo test --benches` lists benches too; this one needs Docker and
    // a minute, so it only runs when asked for.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let docker = crashlab::app::connect().await.expect("Docker daemon");
        crashlab::app::ensure_image(&docker, IMAGE, crashlab::images::DEFAULT_MIRROR, false).await.expect("image");
        let state = tempfile::tempdir().expect("tempdir");
        throughput(&docker, state.path()).await;
    });
}
