//! The binary as a user meets it: exit codes, error lines, and cleanup when
//! a run is interrupted or killed.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn crashlab() -> Command {
    Command::new(env!("CARGO_BIN_EXE_crashlab"))
}

fn run_ok(cmd: &mut Command) -> Output {
    cmd.output().expect("crashlab runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_wrong_scenario_key_exits_2_naming_the_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let text = crashlab::scenario::SMOKE.replace("clients = 4", "clients = 4\nclinets = 8");
    std::fs::write(&path, text).unwrap();
    for sub in ["run", "validate"] {
        let out = run_ok(crashlab().arg(sub).arg(&path));
        assert_eq!(out.status.code(), Some(2), "{sub}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("bad.toml:11:1: unknown field `clinets`"), "{sub}: {err}");
        assert_eq!(err.lines().filter(|l| l.starts_with("crashlab:")).count(), 1, "one error line: {err}");
    }
}

#[test]
fn bad_values_exit_2_with_one_line_naming_the_key_or_token() {
    let dir = tempfile::tempdir().unwrap();
    let smoke = crashlab::scenario::SMOKE;
    let cases = [
        ("load = \"2s\"", "load = 2", "bad.toml:11:8: invalid type: integer `2`, expected a string, for key `load`"),
        ("kind = \"mariadb\"", "kind = \"maria\\ndb\"", "bad.toml:8:8: unknown variant `maria\\ndb`"),
        ("[matrix]", "[matrix", "bad.toml:13:8: unclosed table"),
        ("cycles = 2", "cycles = 2\n[faults]\nio-error = \"eio:fsync:0\"", "`0` is not a positive operation count"),
        (
            "cycles = 2",
            "cycles = 2\n[backup]\nstore = \"ftp://host/dir\"",
            "bad.toml:18:9: store `ftp://host/dir` is neither file:///DIR (a host directory) nor s3://",
        ),
        ("cycles = 2", "cycles = 2\n[backup]\nstore = \"file://srv\"", "needs an absolute path after file://"),
        ("load = \"2s\"", "load = \"2s\"\ndata-dir = \"/var/../x\"", "data-dir must not contain `..`"),
    ];
    for (from, to, expected) in cases {
        assert!(smoke.contains(from), "{from}");
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, smoke.replacen(from, to, 1)).unwrap();
        let out = run_ok(crashlab().arg("validate").arg(&path));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{to}: {err}");
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("crashlab:")).collect();
        assert_eq!(lines.len(), 1, "one error line: {err}");
        assert!(lines[0].contains(expected), "{to}: got {err:?}, wanted {expected:?}");
    }
}

#[test]
fn a_missing_scenario_file_exits_2() {
    let out = run_ok(crashlab().args(["run", "/nonexistent/scenario.toml"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("read scenario /nonexistent/scenario.toml"), "{}", stderr(&out));
}

#[test]
fn a_missing_daemon_exits_2_and_says_how_to_start_one() {
    let out = run_ok(crashlab().arg("run").env("DOCKER_HOST", "unix:///nonexistent/docker.sock"));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("cannot reach the Docker daemon at unix:///nonexistent/docker.sock"), "{err}");
    assert!(err.contains("hint: start the daemon (`sudo systemctl start docker`"), "{err}");
}

#[test]
fn the_smoke_scenario_validates() {
    let smoke = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/smoke.toml");
    let out = run_ok(crashlab().arg("validate").arg(smoke));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok, 15 cells × 2 cycles"));
}

/// Starts a long run in its own state directory and waits until it has a
/// container, so that there is something to clean up.
#[expect(clippy::zombie_processes, reason = "the child is returned, and every caller waits for it")]
fn start_long_run(state: &Path) -> (Child, String) {
    let scenario = state.join("long.toml");
    std::fs::write(&scenario, common::mariadb_scenario("", r#""bind-mount", "named-volume""#, r#""restart""#, 50, ""))
        .unwrap();
    let mut child = crashlab()
        .args(["run", "-q", "--out"])
        .arg(state.join("out"))
        .arg(&scenario)
        .env("CRASHLAB_STATE_DIR", state)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let data = state.join("runs");
        let run = std::fs::read_dir(&data)
            .ok()
            .and_then(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).find(|n| n != ".lock"));
        // The bind mount's host directory appears once the cell deploys.
        if let Some(run) = run
            && data.join(&run).join("data").exists()
        {
            std::thread::sleep(Duration::from_secs(3));
            return (child, run);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the run never deployed");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill").arg(format!("-{sig}")).arg(child.id().to_string()).status().unwrap();
    assert!(status.success());
}

async fn labelled(run: &str) -> (usize, usize) {
    let docker = common::docker().await;
    let label = format!("crashlab.run={run}");
    (docker.containers_labelled(&label).await.unwrap().len(), docker.volumes_labelled(&label).await.unwrap().len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_mid_run_leaves_no_container_volume_or_directory() {
    if common::skip_docker() {
        return;
    }
    let _guard = common::exclusive().await;
    let _docker = common::docker().await;
    let state = tempfile::tempdir().unwrap();
    let (mut child, run) = start_long_run(state.path());
    assert_ne!(labelled(&run).await, (0, 0), "the run created containers");
    signal(&child, "INT");
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert_eq!(status.code(), Some(130));
    assert_eq!(labelled(&run).await, (0, 0), "everything labelled {run} is removed");
    assert!(!state.path().join("runs").join(&run).exists(), "the run directory is removed");
    assert!(state.path().join("out/report.json").exists(), "the partial report is written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_removes_what_a_killed_run_left() {
    if common::skip_docker() {
        return;
    }
    let _guard = common::exclusive().await;
    let _docker = common::docker().await;
    let state = tempfile::tempdir().unwrap();
    let (mut child, run) = start_long_run(state.path());
    signal(&child, "KILL");
    child.wait().unwrap();
    assert_ne!(labelled(&run).await, (0, 0), "a killed run leaves its containers");
    let out = run_ok(crashlab().arg("clean").env("CRASHLAB_STATE_DIR", state.path()));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 run directories"));
    assert_eq!(labelled(&run).await, (0, 0));
    assert!(!state.path().join("runs").join(&run).exists());
}

/// What a run can leave behind, counted: Docker objects labelled with it,
/// and mounts, loop devices and run directories under its state directory.
#[derive(Debug, Default, PartialEq, Eq)]
struct Leftovers {
    containers: usize,
    volumes: usize,
    networks: usize,
    mounts: usize,
    loop_devices: usize,
    run_dirs: usize,
}

async fn leftovers(state: &Path, run: &str) -> Leftovers {
    let docker = common::docker().await;
    let label = format!("crashlab.run={run}");
    let state = std::fs::canonicalize(state).unwrap();
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let loops = std::fs::read_dir("/sys/block").unwrap().flatten().filter_map(|e| {
        let backing = std::fs::read_to_string(e.path().join("loop/backing_file")).ok()?;
        Some(PathBuf::from(backing.trim().trim_end_matches(" (deleted)")))
    });
    let runs = std::fs::read_dir(state.join("runs")).map(|d| d.flatten().collect::<Vec<_>>()).unwrap_or_default();
    Leftovers {
        containers: docker.containers_labelled(&label).await.unwrap().len(),
        volumes: docker.volumes_labelled(&label).await.unwrap().len(),
        networks: docker.networks_labelled(&label).await.unwrap().len(),
        mounts: mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|m| Path::new(&m.replace("\\040", " ")).starts_with(&state))
            .count(),
        loop_devices: loops.filter(|b| b.starts_with(&state)).count(),
        run_dirs: runs.iter().filter(|e| e.file_name() != ".lock").count(),
    }
}

/// Polls until `ready` says the run `state` holds is far enough along,
/// and returns its id and what it holds then.
async fn wait_for(state: &Path, child: &mut Child, ready: impl Fn(&Leftovers) -> bool) -> (String, Leftovers) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let run = std::fs::read_dir(state.join("runs"))
            .ok()
            .and_then(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).find(|n| n != ".lock"));
        if let Some(run) = run {
            let now = leftovers(state, &run).await;
            if ready(&now) {
                return (run, now);
            }
        }
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            let mut err = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut pipe, &mut err);
            }
            let _ = child.wait();
            panic!("the run never got there: {err}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn write_scenario(state: &Path, strategies: &str, faults: &str) -> PathBuf {
    let path = state.join("scenario.toml");
    let text = common::mariadb_scenario(r#""--innodb-flush-log-at-trx-commit=1""#, strategies, faults, 30, "")
        .replace(r#"load = "1500ms""#, r#"load = "1s""#);
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_from_timeout_leaves_no_container_volume_network_mount_loop_device_or_directory() {
    if common::skip_docker() {
        return;
    }
    let _guard = common::exclusive().await;
    let state = tempfile::tempdir().unwrap();
    let scenario = write_scenario(state.path(), r#""bind-mount", "named-volume""#, r#""host-kill""#);
    common::require_host(&crashlab::scenario::Scenario::load(&scenario).unwrap());
    // `timeout` sends SIGTERM after 20 s, as CI cancellation or systemd
    // would; --preserve-status passes crashlab's own exit code on.
    let mut child = Command::new("timeout")
        .args(["--preserve-status", "-s", "TERM", "20"])
        .arg(env!("CARGO_BIN_EXE_crashlab"))
        .args(["run", "-q", "--out"])
        .arg(state.path().join("out"))
        .arg(&scenario)
        .env("CRASHLAB_STATE_DIR", state.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (run, during) = wait_for(state.path(), &mut child, |l| l.containers > 0 && l.mounts > 0).await;
    let out = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    assert!(during.mounts > 0 && during.containers > 0, "the run had a container on the fault filesystem: {during:?}");
    assert_eq!(out.status.code(), Some(143), "SIGTERM exits 128 + 15: {}", stderr(&out));
    assert!(stderr(&out).contains("terminated (SIGTERM): finishing the current step"), "{}", stderr(&out));
    assert_eq!(leftovers(state.path(), &run).await, Leftovers::default(), "run {run} left something");
    let report = state.path().join("out/report.json");
    assert!(report.exists(), "the partial report is written: {}", stderr(&out));
    let report: crashlab_reports::Report = serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    let execution = report.execution.expect("the report says how the run went");
    assert_eq!(execution.interrupted.as_deref(), Some("SIGTERM"), "the report says the run was stopped");
    assert_eq!(execution.plan.len(), 2, "the plan is whole though {} cells finished", report.cells.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_after_kill_9_leaves_no_container_volume_network_mount_loop_device_or_directory() {
    if common::skip_docker() {
        return;
    }
    let _guard = common::exclusive().await;
    let state = tempfile::tempdir().unwrap();
    let scenario = write_scenario(state.path(), r#""btrfs-snapshot""#, r#""host-loss""#);
    common::require_host(&crashlab::scenario::Scenario::load(&scenario).unwrap());
    let mut child = crashlab()
        .args(["run", "-q", "--out"])
        .arg(state.path().join("out"))
        .arg(&scenario)
        .env("CRASHLAB_STATE_DIR", state.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let ready = |l: &Leftovers| l.containers > 0 && l.volumes > 0 && l.mounts > 0 && l.loop_devices > 0;
    let (run, during) = wait_for(state.path(), &mut child, ready).await;
    // Into the load, rather than in the middle of creating the container.
    tokio::time::sleep(Duration::from_secs(2)).await;
    signal(&child, "KILL");
    child.wait().unwrap();
    // The kill may land while host-loss has removed the container and not yet
    // started the next one; the pool (its mount and loop device) and the run
    // directory live for the whole cell, so those are what it must leave.
    let killed = leftovers(state.path(), &run).await;
    assert!(
        killed.mounts > 0 && killed.loop_devices > 0 && killed.run_dirs > 0,
        "a killed run leaves its pool: {during:?} {killed:?}"
    );
    let out = run_ok(crashlab().arg("clean").env("CRASHLAB_STATE_DIR", state.path()));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 btrfs pools"), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 run directories"), "{out:?}");
    assert_eq!(leftovers(state.path(), &run).await, Leftovers::default(), "run {run} left something");
}

/// A loop device crashlab made for a driver volume (`device=loop`) is
/// journaled before it exists, so that `clean` frees it after a kill -9
/// along with the container and the volume Docker mounted it for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_after_kill_9_frees_a_driver_volumes_loop_device() {
    if common::skip_docker() {
        return;
    }
    let _guard = common::exclusive().await;
    let state = tempfile::tempdir().unwrap();
    let scenario = write_scenario(state.path(), r#""volume:local,type=xfs,device=loop:300MiB""#, r#""restart""#);
    common::require_host(&crashlab::scenario::Scenario::load(&scenario).unwrap());
    let mut child = crashlab()
        .args(["run", "-q", "--out"])
        .arg(state.path().join("out"))
        .arg(&scenario)
        .env("CRASHLAB_STATE_DIR", state.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let ready = |l: &Leftovers| l.containers > 0 && l.volumes > 0 && l.loop_devices > 0;
    let (run, during) = wait_for(state.path(), &mut child, ready).await;
    signal(&child, "KILL");
    child.wait().unwrap();
    let killed = leftovers(state.path(), &run).await;
    assert!(
        killed.loop_devices > 0 && killed.run_dirs > 0,
        "a killed run leaves its loop device: {during:?} {killed:?}"
    );
    let out = run_ok(crashlab().arg("clean").env("CRASHLAB_STATE_DIR", state.path()));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 btrfs pools and loop devices"), "{out:?}");
    assert_eq!(leftovers(state.path(), &run).await, Leftovers::default(), "run {run} left something");
}

/// A hand-made label or a doctored journal must not make `clean` touch
/// anything outside the state directory, nor anything of a live run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_refuses_labels_and_journal_paths_that_lead_outside_the_state_directory() {
    use crashlab::run::journal::Entry;
    use crashlab::run::{RUN_LABEL, RunContext, STATE_LABEL};
    if common::skip_docker() {
        return;
    }
    let _guard = common::exclusive().await;
    let docker = common::docker().await;
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let canonical = std::fs::canonicalize(&state).unwrap().display().to_string();
    // Outside the state directory, and what the labels and journal aim at.
    let outside = tmp.path().join("outside");
    let bench_root = tmp.path().join("bench-root");
    std::fs::create_dir_all(outside.join("keep")).unwrap();
    std::fs::create_dir_all(&bench_root).unwrap();

    // A killed bench run: its journal names a host-path directory it made
    // (swept), and, doctored, paths outside and objects not its own
    // (refused). Dropping the context releases its lock, as a kill does.
    let dead = RunContext::create(&state).unwrap();
    let host_dir = std::fs::canonicalize(&bench_root).unwrap().join(dead.object_name("b0-host-io"));
    std::fs::create_dir(&host_dir).unwrap();
    std::fs::write(host_dir.join("data"), "x").unwrap();
    let doctored = [
        Entry::HostDir { root: std::fs::canonicalize(&bench_root).unwrap(), dir: host_dir.clone() },
        Entry::HostDir { root: "/".into(), dir: format!("/{}", dead.object_name("x")).into() },
        Entry::HostDir { root: tmp.path().into(), dir: outside.clone() },
        Entry::Mount(outside.join("keep")),
        Entry::Mount(dead.dir().join("../../../outside/keep")),
        Entry::LoopImage("/".into()),
        Entry::Volume("someone-elses-volume".into()),
    ];
    for entry in &doctored {
        dead.journal().record(entry).unwrap();
    }
    let dead_id = dead.id().to_owned();
    drop(dead);
    // A live run of the same state directory, which clean must leave alone.
    let live = RunContext::create(&state).unwrap();

    let mut made = vec![];
    for (i, bad) in ["..", "../../etc", "/"].into_iter().enumerate() {
        let labels = std::collections::HashMap::from([
            (RUN_LABEL.to_owned(), bad.to_owned()),
            (STATE_LABEL.to_owned(), canonical.clone()),
        ]);
        let name = format!("crashlab-test-handmade-{}-{i}", std::process::id());
        docker.create_volume(&name, labels.clone()).await.unwrap();
        let config = bollard::models::ContainerCreateBody {
            image: Some(crashlab_workloads::mariadb::IMAGE.to_owned()),
            labels: Some(labels),
            ..Default::default()
        };
        let container = docker.create_container(&name, config).await.unwrap();
        made.push((name, container));
    }
    let out = run_ok(crashlab().arg("clean").env("CRASHLAB_STATE_DIR", &state));
    for (name, container) in &made {
        assert!(docker.remove_container_if_present(container).await.unwrap(), "clean left {name} alone");
        assert!(docker.remove_volume_if_present(name).await.unwrap(), "clean left {name} alone");
    }
    let err = stderr(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{err}");
    for bad in ["\"..\"", "\"../../etc\"", "\"/\""] {
        for kind in ["volume", "container"] {
            let line = format!("refusing run id {bad} of {kind} crashlab-test-handmade-");
            assert!(err.contains(&line), "{bad}: {err}");
        }
    }
    assert!(err.contains("not a crashlab run id (<unix seconds>-<4 hex digits>); left alone"), "{err}");
    assert!(err.contains("refusing journaled host directory") && err.contains("its root is `/`"), "{err}");
    assert!(err.contains(&format!("refusing journaled mount {}", outside.join("keep").display())), "{err}");
    assert!(err.contains("the path has `..` components"), "{err}");
    assert!(err.contains("refusing journaled volume \"someone-elses-volume\""), "{err}");
    assert!(stdout.contains("1 host-path directories, 1 run directories"), "{stdout}");
    assert!(stdout.contains("left alone: 1 live runs"), "{stdout}");
    assert!(!host_dir.exists(), "the killed bench run's host-path directory is swept");
    assert!(outside.join("keep").is_dir() && bench_root.is_dir(), "nothing outside was touched");
    assert!(!state.join("runs").join(&dead_id).exists());
    assert!(live.dir().join("journal").exists(), "the live run is untouched");
    drop(live);
}
