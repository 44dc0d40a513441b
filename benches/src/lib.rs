//! What the Docker benchmarks in `benches/` share: a ready server on a
//! strategy, crashlab's own throughput on it, and the side-by-side rounds
//! against a reference tool (sysbench, pgbench) run on the same container.

use crashlab::cleanup::cleanup_run;
use crashlab::deploy::deployment::Deployment;
use crashlab::docker::Docker;
use crashlab::run::RunContext;
use crashlab::storage::{Place, ProvisionOptions, Storage, Strategy};
use crashlab_workloads::{LoadConfig, Workload};
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

/// Rounds of each side; the medians are compared.
pub const ROUNDS: usize = 3;
/// Length of one throughput run.
pub const SECONDS: u64 = 10;
pub const CLIENTS: u32 = 4;
pub const ACCOUNTS: u32 = 100;

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// True when the bench binary was only asked to list itself (`cargo test
/// --benches` does that): these benches need Docker and minutes, so they
/// run only when asked for.
pub fn only_listing() -> bool {
    std::env::args().any(|a| a == "--list")
}

/// Connects to the daemon and makes sure `image` is there.
pub async fn docker_with(image: &str) -> Docker {
    let docker = crashlab::app::connect().await.expect("Docker daemon");
    crashlab::app::ensure_image(&docker, image, crashlab::images::DEFAULT_MIRROR, false).await.expect("image");
    docker
}

/// A fresh dataset, then crashlab's driver for [`SECONDS`]: acknowledged
/// commits per second.
pub async fn crashlab_tps(workload: &dyn Workload, addr: SocketAddr, seed: u64) -> f64 {
    let config = LoadConfig { clients: CLIENTS, accounts: ACCOUNTS, seed, reconnect: false, ids_from: 0, replicas: 1 };
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

/// Runs `workload` on a named volume and, [`ROUNDS`] times in alternation,
/// crashlab's driver and `reference` (which gets the server's address and
/// returns its transactions per second), then prints both medians and
/// their ratio.
pub async fn compare_with<F, Fut>(docker: &Docker, state: &Path, workload: &dyn Workload, tool: &str, reference: F)
where
    F: Fn(SocketAddr) -> Fut,
    Fut: Future<Output = f64>,
{
    let run = RunContext::create(state).expect("run dir");
    let name = run.object_name("bench");
    let place = Place::Strategy(Strategy::NamedVolume);
    let storage = Storage::provision(docker, &run, &place, &name, ProvisionOptions::default()).await.expect("volume");
    let mut deployment = Deployment::new(docker.clone(), run.clone(), workload.container(), storage, name);
    deployment.create().await.expect("create");
    deployment.start().await.expect("start");
    let addr = deployment.addr().expect("published port");
    let deadline = Instant::now() + Duration::from_secs(60);
    while workload.probe(addr).await.is_err() {
        assert!(Instant::now() < deadline, "{} did not start", workload.name());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let c = crashlab_tps(workload, addr, round as u64).await;
        workload
            .setup(
                addr,
                LoadConfig {
                    clients: CLIENTS,
                    accounts: ACCOUNTS,
                    seed: 0,
                    reconnect: false,
                    ids_from: 0,
                    replicas: 1,
                },
            )
            .await
            .expect("setup");
        let r = reference(addr).await;
        println!("round {}: crashlab {c:.0} tps, {tool} {r:.0} tps", round + 1);
        ours.push(c);
        theirs.push(r);
    }
    let (c, r) = (median(ours), median(theirs));
    println!("median of {ROUNDS}: crashlab {c:.0} tps, {tool} {r:.0} tps, ratio {:.2} (target >= 1.0)", c / r);
    cleanup_run(docker, state, run.id()).await.expect("cleanup");
}
