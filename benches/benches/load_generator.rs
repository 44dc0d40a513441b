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
use crashlab::scenario::Scenario;
use crashlab_benches::{CLIENTS, SECONDS, compare_with, docker_with, median, only_listing};
use crashlab_workloads::mariadb::{IMAGE, MariaDb};
use std::net::SocketAddr;
use std::process::Command;

fn sysbench_tps(addr: SocketAddr) -> f64 {
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
    let settings = RunSettings { quiet: true, ..RunSettings::new(state.to_owned()) };
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
    if only_listing() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let docker = docker_with(IMAGE).await;
        let state = tempfile::tempdir().expect("tempdir");
        let workload = MariaDb { image: IMAGE.into(), server_args: vec!["--innodb-flush-log-at-trx-commit=1".into()] };
        compare_with(&docker, state.path(), &workload, "sysbench", |addr| async move { sysbench_tps(addr) }).await;
        kill_cycle_overhead(&docker, state.path()).await;
    });
}
