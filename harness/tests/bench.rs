//! `crashlab bench` against the real daemon: a tiny bench on one backend,
//! every profile measured by the agent and by fio in the same container.

mod common;

use crashlab::bench::{self, BenchDefinition, BenchSettings};
use crashlab::run::RunContext;
use crashlab_reports::bench::Profile;
use std::path::PathBuf;

/// The agent binary, built if needed: `cargo test` builds only the
/// packages under test, and the agent is a package of its own.
fn agent() -> PathBuf {
    if let Some(path) = std::env::var_os("CRASHLAB_AGENT") {
        return PathBuf::from(path);
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args(["build", "--quiet", "-p", "crashlab-agent"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo to build crashlab-agent");
    assert!(status.success(), "cargo build -p crashlab-agent failed");
    crashlab::run::agent::locate().expect("crashlab-agent next to the test binary's directory")
}

#[tokio::test]
async fn bench_measures_every_profile_and_checks_it_against_fio() {
    if common::skip_docker() {
        return;
    }
    let agent = agent();
    let _guard = common::exclusive().await;
    let docker = common::docker_with(crashlab_workloads::fio::IMAGE).await;
    let definition = BenchDefinition::parse(
        r#"
name = "tiny"
[io]
seconds = "1s"
size = "8MiB"
read-size = "16MiB"
seq-size = "32MiB"
rounds = 1
[[strategy]]
name = "named-volume"
"#,
        "test bench",
    )
    .unwrap();
    let state = tempfile::tempdir().unwrap();
    let run = RunContext::create(state.path()).unwrap();
    let settings = BenchSettings { quiet: true, keep: false, agent };
    let (_cancel_tx, cancel_rx) = tokio::sync::watch::channel(false);
    let report = bench::execute(&docker, &run, &definition, &settings, cancel_rx).await.unwrap();
    common::assert_nothing_left(&docker, &report.run_id).await;
    assert!(!run.dir().exists(), "the run directory is removed");

    let b = report.bench.as_ref().expect("a bench section");
    assert!(b.errors.is_empty(), "{:?}", b.errors);
    assert_eq!(b.io.len(), 3);
    for (r, profile) in b.io.iter().zip(Profile::ALL) {
        assert_eq!((r.strategy.as_str(), r.profile), ("named-volume", profile));
        let fio = r.fio.expect("fio ran");
        for (tool, f) in [("crashlab", r.agent), ("fio", fio)] {
            assert!(f.iops > 0.0 && f.mib_per_s > 0.0 && f.p50_us > 0.0, "{profile} {tool}: {f:?}");
        }
        assert!(r.ratio.is_some_and(|x| x > 0.0) && r.agrees.is_some(), "{r:?}");
    }
    // The report renders with the comparison in both formats.
    let md = crashlab_reports::markdown::render(&report);
    assert!(md.contains("### crashlab agent vs fio") && md.contains("| named-volume | fsync-4k |"), "{md}");
    let html = crashlab_reports::html::render(&report);
    assert!(html.contains("<h2>Storage benchmark</h2>") && html.contains("<svg"), "html");
}
