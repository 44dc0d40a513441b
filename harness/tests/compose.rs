//! `crashlab run --compose`: a service of a Compose file is tested as the
//! file deploys it. The shipped file's MariaDB on a named volume must
//! survive a redeploy intact and the one on tmpfs lose everything, with the
//! verdicts of the equivalent TOML scenario; a service no driver can drive,
//! or a file missing a required variable, exits 2 naming it, before Docker
//! is asked anything.

mod common;

use crashlab::storage::Strategy;
use crashlab_reports::{Report, Verdict};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/compose/docker-compose.yml");

fn crashlab() -> Command {
    Command::new(env!("CARGO_BIN_EXE_crashlab"))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_service_no_driver_can_drive_exits_2_naming_the_service_and_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("docker-compose.yml");
    std::fs::write(&file, "services:\n  db:\n    image: mariadb:11\n  cache:\n    image: foo/bar:1\n").unwrap();
    // DOCKER_HOST points nowhere: the service is refused before the daemon
    // is needed.
    let run = |args: &[&str]| {
        crashlab()
            .arg("run")
            .arg("--compose")
            .arg(&file)
            .args(args)
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .env_remove("TAG")
            .env("CRASHLAB_STATE_DIR", dir.path().join("state"))
            .output()
            .unwrap()
    };
    let out = run(&["--service", "cache"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "docker-compose.yml:5:5: service `cache`: cannot tell which workload drives image `foo/bar:1`; \
             add `x-crashlab: { kind: ... }`"
        ),
        "{err}"
    );
    assert_eq!(err.lines().filter(|l| l.starts_with("crashlab:")).count(), 1, "one error line: {err}");
    assert!(err.contains("hint: see scenarios/compose/docker-compose.yml"), "{err}");

    let out = run(&["--service", "web"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no service `web` in the file; it has `db`, `cache`"), "{}", stderr(&out));
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("the file has 2 services (`db`, `cache`); name one with --service"));

    // A required variable that is missing: the file, the line, the
    // variable, and nothing created.
    std::fs::write(&file, "services:\n  db:\n    image: mariadb:${TAG:?set TAG}\n").unwrap();
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("docker-compose.yml:3:20: required variable `TAG` is missing a value: set TAG"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.path().join("state").exists(), "nothing created");
}

/// A copy of the shipped file with `x-crashlab` keys added to each
/// service: the test runs only the fault and strategies it needs.
fn shipped_with(dir: &Path, extra: &str) -> PathBuf {
    let text = std::fs::read_to_string(SHIPPED).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("x-crashlab:") {
            continue;
        }
        if line.trim() == "kind: mariadb" {
            continue;
        }
        out.push_str(line);
        out.push('\n');
        if line.starts_with("  db:") || line.starts_with("  db-tmpfs:") {
            out.push_str(&format!("    x-crashlab: {extra}\n"));
        }
    }
    let path = dir.join("docker-compose.yml");
    std::fs::write(&path, out).unwrap();
    path
}

fn verdict(report: &Report, strategy: &str) -> Verdict {
    report.cells.iter().find(|c| c.strategy == strategy).unwrap_or_else(|| panic!("no {strategy} cell")).verdict
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_volume_survives_a_redeploy_and_tmpfs_does_not_as_in_the_equivalent_scenario() {
    if common::skip_docker() {
        return;
    }
    let guard = common::exclusive().await;
    common::docker().await;
    let dir = tempfile::tempdir().unwrap();
    let file = shipped_with(dir.path(), "{ faults: [recreate], cycles: 1, load: 2s, alternatives: [tmpfs] }");

    // The binary end to end: the named volume is the user's, the image the
    // file's `${MARIADB_IMAGE:-...}` default.
    let out_dir = dir.path().join("db");
    let out = crashlab()
        .args(["run", "--quiet", "--service", "db", "--compose"])
        .arg(&file)
        .arg("--out")
        .arg(&out_dir)
        .env("CRASHLAB_STATE_DIR", dir.path().join("state"))
        .env_remove("MARIADB_IMAGE")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", stderr(&out));
    let report: Report = serde_json::from_str(&std::fs::read_to_string(out_dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report.cells[0].strategy, "named-volume", "yours first");
    assert_eq!(verdict(&report, "named-volume"), Verdict::Intact);
    assert_eq!(verdict(&report, "tmpfs"), Verdict::DataGone);
    assert!(report.cells.iter().all(|c| c.acked_writes > 0), "{:?}", report.cells);
    assert_eq!(report.compose.as_ref().map(|c| c.strategy.as_str()), Some("named-volume"));
    assert!(stdout.contains("named-volume (your configuration) — survived: recreate"), "{stdout}");
    let md = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    assert!(md.contains("Service `db` of"), "{md}");
    let toml = std::fs::read_to_string(out_dir.join("scenario.toml")).unwrap();
    let scenario =
        crashlab::scenario::Scenario::parse(&toml, "scenario.toml").expect("the scenario beside the report runs");
    assert_eq!(scenario.workload.image.as_deref(), Some("crashlab/mariadb:latest"));

    // The tmpfs service: its own configuration loses the dataset.
    let plan = crashlab::compose::load(
        &shipped_with(dir.path(), "{ faults: [recreate], cycles: 1, alternatives: [] }"),
        Some("db-tmpfs"),
        None,
    )
    .unwrap();
    let t = plan.translate(&[]).unwrap();
    assert_eq!(t.yours, Strategy::Tmpfs);
    assert_eq!(t.scenario.matrix.strategies, [Strategy::Tmpfs]);
    drop(guard);
    let (tmpfs, _state) = common::run(&t.toml).await;
    assert_eq!(verdict(&tmpfs.report, "tmpfs"), Verdict::DataGone);
    assert!(tmpfs.report.passed());

    // The equivalent scenario written by hand: the same verdicts.
    let equivalent = crashlab::scenario::SMOKE
        .replace(
            "strategies = [\"container-layer\", \"anonymous-volume\", \"named-volume\", \"bind-mount\", \"tmpfs\"]",
            "strategies = [\"named-volume\", \"tmpfs\"]",
        )
        .replace("faults = [\"process-kill\", \"restart\", \"recreate\"]", "faults = [\"recreate\"]")
        .replace("cycles = 2", "cycles = 1");
    assert!(equivalent.contains("strategies = [\"named-volume\", \"tmpfs\"]"));
    let (toml_run, _state) = common::run(&equivalent).await;
    for strategy in ["named-volume", "tmpfs"] {
        assert_eq!(verdict(&toml_run.report, strategy), verdict(&report, strategy), "{strategy}");
    }
}

const OWN_APP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/compose/own-app/docker-compose.yml");

/// A service crashlab has no driver for, judged by the user's own check:
/// the shipped example's `app` appends numbers to a log, is killed and
/// restarted, and its check finds the log whole (`intact`, with the
/// check's output as evidence); `wrong-check`, the same service with a
/// check that exits 1, is `corrupt` with the check's words in the report.
/// Neither claims acknowledged writes: the detail says the ack-log oracle
/// did not apply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn your_own_check_is_the_verdict_of_a_service_with_no_driver() {
    if common::skip_docker() {
        return;
    }
    let _guard = common::exclusive().await;
    common::docker_with(crashlab_workloads::agent::IMAGE).await;
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("app", 0, Verdict::Intact, "your check passed: `sh -c test -s /data/log", " lines, the last "),
        ("wrong-check", 1, Verdict::Corrupt, "your check failed: `sh -c test -f /data/checkpoint", "exited 1 after"),
    ];
    for (service, code, expected, said, evidence) in cases {
        let out_dir = dir.path().join(service);
        let out = crashlab()
            .args(["run", "--quiet", "--service", service, "--compose", OWN_APP, "--out"])
            .arg(&out_dir)
            .env("CRASHLAB_STATE_DIR", dir.path().join("state"))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(code), "{service}: {stdout}\n{}", stderr(&out));
        let report: Report =
            serde_json::from_str(&std::fs::read_to_string(out_dir.join("report.json")).unwrap()).unwrap();
        let [cell] = &report.cells[..] else { panic!("{service}: one cell, yours: {:?}", report.cells) };
        assert_eq!((cell.strategy.as_str(), cell.fault.as_str()), ("named-volume", "process-kill"), "{service}");
        assert_eq!(cell.verdict, expected, "{service}: {:?}", cell.cycle_details);
        assert_eq!(cell.acked_writes, 0, "{service}: crashlab recorded none");
        let detail = &cell.cycle_details[0].detail;
        for part in [said, evidence, "the acknowledgement-log oracle did not apply"] {
            assert!(detail.contains(part), "{service}: `{part}` in {detail}");
        }
        let md = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
        assert!(md.contains("the acknowledgement-log oracle did not apply"), "{service}: {md}");
        if code == 1 {
            assert!(md.contains("no /data/checkpoint: the app never wrote one"), "{service}: {md}");
        }
    }
}
