//! The binary as a user meets it: exit codes, error lines, and cleanup when
//! a run is interrupted or killed.

mod common;

use std::path::Path;
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
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned());
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
