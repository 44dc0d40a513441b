//! Is crashlab's PostgreSQL driver the bottleneck? On one PostgreSQL
//! container (named volume, durable settings, 4 clients) this runs
//! crashlab's driver and pgbench with the same transaction
//! (`benches/pgbench/transfer.sql`, prepared statements) in alternation,
//! three rounds each, and prints the median transactions per second of
//! both and their ratio (target: ≥ 1.0).
//!
//! Run: `cargo bench -p crashlab-benches --bench postgres_load_generator`
//! (needs Docker, root and pgbench: `apt-get install postgresql-client`).

use crashlab_benches::{CLIENTS, SECONDS, compare_with, docker_with, only_listing};
use crashlab_workloads::postgres::{IMAGE, Postgres};
use std::net::SocketAddr;
use std::process::Command;

fn pgbench_tps(addr: SocketAddr) -> f64 {
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

fn main() {
    if only_listing() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let docker = docker_with(IMAGE).await;
        let state = tempfile::tempdir().expect("tempdir");
        let workload = Postgres {
            image: IMAGE.into(),
            server_args: ["-c", "synchronous_commit=on", "-c", "fsync=on"].map(String::from).to_vec(),
        };
        compare_with(&docker, state.path(), &workload, "pgbench", |addr| async move { pgbench_tps(addr) }).await;
    });
}
