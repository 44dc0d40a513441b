//! Shared fixtures for the integration tests: a real Docker daemon, the
//! real workload images (built when missing), and a private state
//! directory per test.
//!
//! Docker tests run one at a time (a 2-core machine timing several database
//! servers at once measures only contention) and fail — never skip — when
//! the daemon is missing, unless `CRASHLAB_SKIP_DOCKER=1` says to skip on
//! purpose.

#![allow(dead_code)]

use crashlab::app::{self, Outcome, RunSettings};
use crashlab::docker::Docker;
use crashlab::images::DEFAULT_MIRROR;
use crashlab::scenario::Scenario;
use std::sync::OnceLock;
use tokio::sync::Mutex;

/// True when the caller asked to skip Docker tests; the test then returns
/// early and says so.
pub fn skip_docker() -> bool {
    if std::env::var("CRASHLAB_SKIP_DOCKER").as_deref() == Ok("1") {
        eprintln!("CRASHLAB_SKIP_DOCKER=1: skipping a Docker test on purpose");
        return true;
    }
    false
}

/// Held by every Docker test of a test binary while it runs.
pub async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: OnceLock<Mutex<()>> = OnceLock::new();
    LOCK.get_or_init(|| Mutex::new(())).lock().await
}

/// Writes back what earlier tests left in the page cache before a test
/// starts its servers, so that a test does not run under the writeback of
/// the one before it (the crash-state tests copy data directories by the
/// hundred MiB): for the same reason as [`exclusive`], a test measures its
/// own servers, not its neighbours'.
pub async fn settle_disk() {
    let status = tokio::process::Command::new("sync").status().await;
    assert!(status.as_ref().is_ok_and(|s| s.success()), "sync failed: {status:?}");
}

/// Connects to the daemon and makes sure the MariaDB image exists,
/// building it if needed. Panics with the reason otherwise.
pub async fn docker() -> Docker {
    docker_with(crashlab_workloads::mariadb::IMAGE).await
}

/// Connects to the daemon and makes sure `image` exists, building it if it
/// is one of crashlab's. Panics with the reason otherwise.
pub async fn docker_with(image: &str) -> Docker {
    let docker = app::connect().await.unwrap_or_else(|e| {
        panic!(
            "{e}\nhint: {}\n(set CRASHLAB_SKIP_DOCKER=1 to skip Docker tests on purpose)",
            e.hint().unwrap_or_default()
        )
    });
    app::ensure_image(&docker, image, DEFAULT_MIRROR, true)
        .await
        .unwrap_or_else(|e| panic!("the image {image} is needed: {e}"));
    docker
}

/// Panics with one line naming what this host lacks for `scenario`'s
/// cells and the command that supplies it (`this test needs mkfs.btrfs:
/// apt-get install btrfs-progs`): how a test whose host tool is missing
/// fails, rather than with an error's dump or a skip. `scripts/prepare`
/// installs them all.
pub fn require_host(scenario: &Scenario) {
    let (cells, _) = scenario.plan();
    let missing = crashlab::app::doctor::missing_for(&cells);
    if !missing.is_empty() {
        let missing: Vec<String> = missing.iter().map(ToString::to_string).collect();
        panic!("this test needs {}", missing.join("; "));
    }
}

/// The image a scenario runs: its own, or crashlab's for its kind.
fn image_of(scenario: &Scenario) -> String {
    crashlab::workload::workload_for(&scenario.workload).container().image
}

/// Runs a scenario against the real daemon, alone, in a fresh state
/// directory, and returns the outcome and the state directory.
pub async fn run(text: &str) -> (Outcome, tempfile::TempDir) {
    run_with(text, |_| {}).await
}

/// [`run`], with settings changed by `tune` (e.g. `jobs`, `partition`).
pub async fn run_with(text: &str, tune: impl FnOnce(&mut RunSettings)) -> (Outcome, tempfile::TempDir) {
    let scenario = Scenario::parse(text, "test scenario").expect("test scenarios are valid");
    require_host(&scenario);
    let _guard = exclusive().await;
    settle_disk().await;
    let docker = docker_with(&image_of(&scenario)).await;
    let state = tempfile::tempdir().expect("tempdir");
    let mut settings = RunSettings::new(state.path().to_owned());
    settings.quiet = true;
    tune(&mut settings);
    let (_cancel_tx, cancel_rx) = tokio::sync::watch::channel(false);
    let outcome = app::execute(&docker, &scenario, &settings, cancel_rx)
        .await
        .unwrap_or_else(|e| panic!("the run failed: {e}{}", e.hint().map_or(String::new(), |h| format!("; {h}"))));
    assert_nothing_left(&docker, &outcome.report.run_id).await;
    (outcome, state)
}

/// Asserts that no container, volume or image of `run_id` is left.
pub async fn assert_nothing_left(docker: &Docker, run_id: &str) {
    let label = format!("crashlab.run={run_id}");
    let containers = docker.containers_labelled(&label).await.unwrap();
    let volumes = docker.volumes_labelled(&label).await.unwrap();
    assert!(containers.is_empty(), "containers left behind: {containers:?}");
    assert!(volumes.is_empty(), "volumes left behind: {volumes:?}");
    let images = docker.images_labelled(&label).await.unwrap();
    assert!(images.is_empty(), "images left behind: {images:?}");
}

/// A MariaDB scenario over the given strategies and faults.
pub fn mariadb_scenario(server_args: &str, strategies: &str, faults: &str, cycles: u32, extra: &str) -> String {
    scenario("mariadb", server_args, strategies, faults, cycles, extra)
}

/// A scenario of workload `kind` over the given strategies and faults.
pub fn scenario(kind: &str, server_args: &str, strategies: &str, faults: &str, cycles: u32, extra: &str) -> String {
    format!(
        r#"
name = "test"
seed = 7
[workload]
kind = "{kind}"
server-args = [{server_args}]
clients = 4
load = "1500ms"
[matrix]
strategies = [{strategies}]
faults = [{faults}]
cycles = {cycles}
{extra}
"#
    )
}

/// The agent binary, built if needed: `cargo test` builds only the
/// packages under test, and the agent is a package of its own.
pub fn agent() -> std::path::PathBuf {
    if let Some(path) = std::env::var_os("CRASHLAB_AGENT") {
        return path.into();
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args(["build", "--quiet", "-p", "crashlab-agent"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo to build crashlab-agent");
    assert!(status.success(), "cargo build -p crashlab-agent failed");
    crashlab::deploy::agent::locate().expect("crashlab-agent next to the test binary's directory")
}
