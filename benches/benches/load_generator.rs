//! Is crashlab's load generator the bottleneck? On one MariaDB container
//! (named volume, durable settings, 4 clients) this runs crashlab's driver
//! and sysbench with the same transaction (`benches/sysbench/transfer.lua`)
//! in alternation, three rounds each, and prints the median transactions
//! per second of both and their ratio (target: ≥ 1.0).
//!
//! It then runs `process-kill` cycles and prints how much a cycle adds
//! beyond the load phase and the database's recovery (target: < 200 ms).
//!
//! Run: `cargo bench -p crashlab-benches --bench load_generator` (needs
//! Docker, root and Debian's `sysbench`).

use crashlab::app::{self, RunSettings};
use crashlab::deployment::Deployment;
use crashlab::run::{RunContext, cleanup_run};
use crashlab::scenario::Scenario;
use crashlab::strategy::{Storage, Strategy};
use crashlab_workloads::mariadb::{IMAGE, MariaDb};
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

async fn crashlab_tps(workload: &MariaDb, addr: SocketAddr, seed: u64) -> f64 {
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

async fn sysbench_tps(workload: &MariaDb, addr: SocketAddr) -> f64 {
    workload.setup(addr, LoadConfig { clients: CLIENTS, accounts: ACCOUNTS, seed: 0 }).await.expect("setup");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/sysbench/transfer.lua");
    let out = Command::new("sysbench")
        .args(["--db-driver=mysql", "--mysql-host=127.0.0.1", "--mysql-user=root", "--mysql-password=crashlab"])
        .args(["--mysql-db=crashlab", &format!("--mysql-port={}", addr.port())])
        .args([&format!("--threads={CLIENTS}"), &format!("--time={SECONDS}"), "--events=0", script, "run"])
        .output()
        .expect("sysbench is installed (apt-get install sysbench)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "sysbench failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    // "    transactions:                        37012  (3700.71 per sec.)"
    let line = text.lines().find(|l| l.trim_start().starts_with("transactions:")).expect("sysbench summary");
    line.split('(').nth(1).and_then(|s| s.split_whitespace().next()).and_then(|s| s.parse().ok()).expect("tps")
}

async fn throughput(docker: &crashlab::docker::Docker, state: &std::path::Path) {
    let run = RunContext::create(state).expect("run dir");
    let workload = MariaDb { image: IMAGE.into(), server_args: vec!["--innodb-flush-log-at-trx-commit=1".into()] };
    let name = run.object_name("bench");
    let storage = Storage::provision(docker, &run, Strategy::NamedVolume, &name).await.expect("volume");
    let mut deployment = Deployment::new(docker.clone(), run.clone(), workload.container(), storage, name);
    deployment.create().await.expect("create");
    deployment.start().await.expect("start");
    let addr = deployment.addr().expect("published port");
    let deadline = Instant::now() + Duration::from_secs(60);
    while workload.probe(addr).await.is_err() {
        assert!(Instant::now() < deadline, "MariaDB did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let c = crashlab_tps(&workload, addr, round as u64).await;
        let s = sysbench_tps(&workload, addr).await;
        println!("round {}: crashlab {c:.0} tps, sysbench {s:.0} tps", round + 1);
        ours.push(c);
        theirs.push(s);
    }
    let (c, s) = (median(ours), median(theirs));
    println!("median of {ROUNDS}: crashlab {c:.0} tps, sysbench {s:.0} tps, ratio {:.2} (target >= 1.0)", c / s);
    cleanup_run(docker, state, run.id()).await.expect("cleanup");
}

async fn kill_cycle_overhead(docker: &crashlab::docker::Docker, state: &std::path::Path) {
    let text = r#"
name = "kill-cycle-overhead"
[workload]
kind = "mariadb"
server-args = ["--innodb-flush-log-at-trx-commit=1"]
load = "2s"
[matrix]
strategies = ["named-volume"]
faults = ["process-kill"]
cycles = 5
"#;
    let scenario = Scenario::parse(text, "bench").expect("scenario");
    let settings = RunSettings { keep: false, quiet: true, state_dir: state.to_owned() };
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let outcome = app::execute(docker, &scenario, &settings, rx).await.expect("run");
    let cell = &outcome.report.cells[0];
    let (mut harness, mut with_kill) = (Vec::new(), Vec::new());
    for (i, c) in cell.cycle_details.iter().enumerate() {
        let p = &c.phases;
        let recovery = c.recovery_ms.unwrap_or(f64::NAN);
        // Everything in the cycle that is neither load nor the database
        // coming back: dataset setup, Docker's kill call, client drain,
        // verification and the harness's own bookkeeping.
        let beyond = c.cycle_ms - c.load_s * 1e3 - recovery;
        let own = beyond - p.inject_ms;
        println!(
            "cycle {}: {:.0} ms = load {:.0} + recovery {recovery:.0} + {beyond:.0} beyond them \
             (setup {:.0}, Docker kill call {:.0}, drain {:.0}, verify {:.0}, other {:.0}) ({})",
            i + 1,
            c.cycle_ms,
            c.load_s * 1e3,
            p.setup_ms,
            p.inject_ms,
            p.drain_ms,
            p.verify_ms,
            own - p.setup_ms - p.drain_ms - p.verify_ms,
            c.verdict
        );
        harness.push(own);
        with_kill.push(beyond);
    }
    println!(
        "median per process-kill cycle beyond load and recovery: {:.0} ms, of which crashlab's own {:.0} ms \
         and Docker's kill call the rest (target < 200 ms)",
        median(with_kill),
        median(harness)
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` would too, but
    // this needs Docker and minutes, so only run it when asked for.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let docker = app::connect().await.expect("Docker daemon");
        app::ensure_image(&docker, IMAGE, crashlab::images::DEFAULT_MIRROR, false).await.expect("image");
        let state = tempfile::tempdir().expect("tempdir");
        throughput(&docker, state.path()).await;
        kill_cycle_overhead(&docker, state.path()).await;
    });
}
