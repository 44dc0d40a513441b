//! Fault schedules on the real daemon with real MariaDB: a `[[schedule]]`
//! of several faults in one cycle runs as a cell, and `crashlab explore`
//! finds a known-unsafe setting's loss and shrinks it to its one essential
//! fault.

mod common;

use crashlab_reports::Verdict;
use std::process::Command;

const DURABLE: &str = r#""--innodb-flush-log-at-trx-commit=1""#;
const LAZY_FSYNC: &str = r#""--innodb-flush-log-at-trx-commit=2""#;

/// Two loads, a process kill and a power cut meet one dataset before it is
/// verified: durable MariaDB keeps every commit of both loads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_mariadb_keeps_both_loads_through_a_kill_then_a_power_cut_in_one_cycle() {
    if common::skip_docker() {
        return;
    }
    // `partition` is n/a on a bind mount, so the schedule is the only cell.
    let schedule = "[[schedule]]\nname = \"kill-then-cut\"\nstrategy = \"bind-mount\"\nsteps = [\"load 1s\", \
                    \"process-kill on primary\", \"recover\", \"load 1s clients=2\", \"host-kill on primary\", \
                    \"recover\", \"verify\"]\n";
    let text = common::mariadb_scenario(DURABLE, r#""bind-mount""#, r#""partition""#, 1, schedule);
    let (outcome, _state) = common::run(&text).await;
    let report = &outcome.report;
    assert_eq!(report.cells.len(), 1, "{:#?}", report.cells);
    let cell = &report.cells[0];
    assert_eq!((cell.strategy.as_str(), cell.fault.as_str()), ("bind-mount", "schedule-kill-then-cut"));
    let cycle = &cell.cycle_details[0];
    assert_eq!(cell.verdict, Verdict::Intact, "{cycle:?}");
    let fired = cycle.fired.as_ref().expect("the faults' record");
    assert!(fired.fired, "{fired:?}");
    assert!(fired.what.contains("process-kill: SIGKILL landed"), "{fired:?}");
    assert!(fired.what.contains("host-kill: the cut landed on an unsynced"), "{fired:?}");
    // Aimed within its window at the write with the most at stake.
    assert!(fired.what.contains("ms after the fault's instant"), "{fired:?}");
    assert!(cycle.load_s >= 2.0, "both loads ran: {cycle:?}");
    assert!(cycle.acked_writes > 100, "too little load to judge: {cycle:?}");
    let fs = cycle.faultfs.as_ref().expect("the data was on the fault filesystem");
    assert_eq!(fs.seeds.len(), 2, "the cycle's mount and the one after the power cut: {fs:?}");
}

/// A scenario of MariaDB with `innodb_flush_log_at_trx_commit=2` on a bind
/// mount, under `host-kill` and `process-kill`, in `dir`.
fn lazy_flush_scenario(dir: &std::path::Path) -> std::path::PathBuf {
    let scenario = dir.join("lazy.toml");
    let text = common::mariadb_scenario(LAZY_FSYNC, r#""bind-mount""#, r#""host-kill", "process-kill""#, 1, "")
        .replace("load = \"1500ms\"", "load = \"1s\"")
        .replace("clients = 4", "clients = 2");
    std::fs::write(&scenario, text).unwrap();
    scenario
}

fn explore(scenario: &std::path::Path, state: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_crashlab"))
        .arg("explore")
        .args(args)
        .arg("--out")
        .arg(state.join("reports"))
        .arg(scenario)
        .env("CRASHLAB_STATE_DIR", state)
        .output()
        .unwrap()
}

/// `innodb_flush_log_at_trx_commit=2` loses the last second of commits to
/// a power cut and nothing to a process kill: explore finds a failing
/// schedule (seed 139 draws a process kill, then a power cut after a second
/// load), shrinks it to the single host kill, prints it with its replay
/// rate and stores it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explore_shrinks_lazy_flush_losses_to_one_host_kill() {
    if common::skip_docker() {
        return;
    }
    let _guard = common::exclusive().await;
    common::settle_disk().await;
    let docker = common::docker().await;
    let state = tempfile::tempdir().unwrap();
    let scenario = lazy_flush_scenario(state.path());
    // A candidate is taken when one of its two replays fails: a power cut
    // right after the log's once-a-second flush loses nothing, rarely.
    let args = ["--seed", "139", "--max-faults", "2", "--budget", "30s", "--shrink-budget", "10s"];
    let out = explore(&scenario, state.path(), &[&args[..], &["--replays", "2", "--accept", "0.5"]].concat());
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "a failing schedule exits 1\n{stdout}\n{stderr}");
    assert!(
        stderr.contains("#0 load 800ms, process-kill on primary, recover, load 700ms, host-kill on primary"),
        "{stderr}"
    );
    // One load and the single host kill; how short the load gets depends
    // on which candidates' replays lost writes (700 ms, 300 ms seen).
    let minimal = stdout.lines().nth(1).unwrap_or_default().trim();
    let load = minimal.strip_suffix(", host-kill on primary, recover, verify").and_then(|l| l.strip_prefix("load "));
    let load_ms = load.and_then(|l| l.strip_suffix("ms")).and_then(|ms| ms.parse::<u32>().ok());
    assert!(load_ms.is_some_and(|ms| ms <= 700), "shrunk to one load and one host kill: {minimal}\n{stdout}\n{stderr}");
    assert!(stdout.contains("replay rate: failed "), "{stdout}");
    assert!(stdout.contains("[[schedule]]\nname = \"seed139-0\"\nstrategy = \"bind-mount\"\n"), "{stdout}");
    let stored = std::fs::read_to_string(state.path().join("lazy.regressions.toml")).unwrap();
    let steps = format!("steps = [\"load {}\", \"host-kill on primary\", \"recover\", \"verify\"]", load.unwrap());
    assert!(stored.contains(&steps), "{stored}");
    let run = stderr.split_whitespace().nth(1).unwrap_or_default().trim_end_matches(':');
    common::assert_nothing_left(&docker, run).await;
}

/// A stored schedule is replayed before any new one is drawn, and its
/// failures decide the exit code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explore_replays_a_stored_schedule_first() {
    if common::skip_docker() {
        return;
    }
    let _guard = common::exclusive().await;
    common::settle_disk().await;
    let _docker = common::docker().await;
    let state = tempfile::tempdir().unwrap();
    let scenario = lazy_flush_scenario(state.path());
    let stored = "[[schedule]]\nname = \"by-hand\"\nstrategy = \"bind-mount\"\nsteps = [\"load 1s\", \"host-kill\", \
                  \"recover\", \"verify\"]\n";
    std::fs::write(state.path().join("lazy.regressions.toml"), stored).unwrap();
    // The budget is spent before any new schedule is drawn.
    let out = explore(&scenario, state.path(), &["--budget", "1ms", "--replays", "1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("1 stored schedule(s) first"), "{stderr}");
    let line = stderr.lines().find(|l| l.starts_with("stored schedule by-hand on bind-mount: ")).unwrap_or_else(|| {
        panic!("no line for the stored schedule: {stderr}");
    });
    let failed = line.ends_with("failed 1 of 1 replays");
    assert!(failed || line.ends_with("failed 0 of 1 replays"), "{line}");
    assert!(!failed || line.contains(": lost-writes"), "{line}");
    assert_eq!(out.status.code(), Some(if failed { 1 } else { 0 }), "{stderr}");
    assert!(stderr.contains("explored 0 schedules"), "{stderr}");

    // The report's Explore section draws the stored schedule in time: the
    // load, the power cut, the recovery and the check, in order.
    let md = std::fs::read_to_string(state.path().join("reports/report.md")).unwrap();
    let section = &md[md.find("## Explore").unwrap_or_else(|| panic!("no Explore section: {md}"))..];
    assert!(section.contains("0 schedules tried, 0 faults injected"), "{section}");
    assert!(section.contains("| `load 1s, host-kill on primary, recover, verify` | failed "), "{section}");
    let steps: Vec<&str> =
        section.lines().filter_map(|l| l.strip_prefix("| ")).filter_map(|l| l.split(" | ").nth(2)).collect();
    let order = ["load 1s |", "host-kill on primary |", "recover |", "verify |"];
    assert!(order.iter().all(|o| steps.contains(o)), "every step in time: {steps:?}\n{section}");
    if failed {
        assert!(section.contains("acknowledged, then lost: "), "the lost commits' window: {section}");
    }
}

/// `--jobs 2` runs two drawn schedules at once, each on a deployment of
/// its own, and the explore says where a schedule's time went: durable
/// MariaDB under single process kills finds nothing, and every schedule
/// drawn is counted in the cost line and the report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explore_runs_schedules_two_at_once_and_reports_their_cost() {
    if common::skip_docker() {
        return;
    }
    let _guard = common::exclusive().await;
    common::settle_disk().await;
    let docker = common::docker().await;
    let state = tempfile::tempdir().unwrap();
    let scenario = state.path().join("cost.toml");
    let text = common::mariadb_scenario(DURABLE, r#""bind-mount""#, r#""process-kill""#, 1, "")
        .replace("load = \"1500ms\"", "load = \"200ms\"");
    std::fs::write(&scenario, text).unwrap();
    let out = explore(&scenario, state.path(), &["--budget", "4s", "--max-faults", "1", "--jobs", "2", "--no-store"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "durable MariaDB loses nothing to a process kill\n{stderr}");
    for n in ["#0 ", "#1 "] {
        let line = stderr.lines().find(|l| l.contains(n)).unwrap_or_else(|| panic!("no schedule {n}: {stderr}"));
        assert!(line.contains("process-kill on primary") && line.ends_with("→ intact"), "{line}");
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state.path().join("reports/report.json")).unwrap()).unwrap();
    let (tried, cost) = (&report["explore"]["schedules"], &report["explore"]["cost"]);
    assert!(tried.as_u64().is_some_and(|n| n >= 2 && n % 2 == 0), "whole batches of two: {report}");
    assert_eq!(&cost["schedules"], tried, "{report}");
    assert_eq!(cost["jobs"], 2, "{report}");
    let part = |k: &str| cost[k].as_f64().unwrap_or(-1.0);
    assert!(part("recovery_ms") > 0.0 && part("wall_ms") > part("recovery_ms"), "{report}");
    assert!(stderr.contains(&format!("({tried} schedules, 2 at once)")), "{stderr}");
    let run = stderr.split_whitespace().nth(1).unwrap_or_default().trim_end_matches(':');
    common::assert_nothing_left(&docker, run).await;
}
