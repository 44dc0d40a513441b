//! `crash-states` on the real daemon: a crash point (at the end of the load,
//! or at a call the scenario names), and every crash state the fault filesystem's model allows there (within
//! the scenario's `[explore]` bounds) checked in a fresh container on its
//! own copy of the data. Durable settings must pass in every state (no
//! false alarms); settings whose durability hangs on the order in which the
//! filesystem persists must fail in some. Each test is named after the
//! property it checks.

mod common;

use crashlab_reports::{CellReport, PointReport, Verdict};

async fn crash_states_cell(kind: &str, args: &str, max_states: u32) -> CellReport {
    crash_states_cell_with(kind, args, &format!("[explore]\nmax-states = {max_states}\n")).await
}

async fn crash_states_cell_with(kind: &str, args: &str, explore: &str) -> CellReport {
    let text = common::scenario(kind, args, r#""bind-mount""#, r#""crash-states""#, 1, explore);
    let (outcome, _state) = common::run(&text).await;
    assert!(outcome.complete, "{:?}", outcome.report);
    outcome.report.cells.into_iter().next().expect("one cell")
}

fn the_point(cell: &CellReport) -> &PointReport {
    let cycle = &cell.cycle_details[0];
    assert!(cycle.fired.as_ref().is_some_and(|f| f.fired), "{cycle:?}");
    let explore = cycle.explore.as_ref().unwrap_or_else(|| panic!("the cycle explored nothing: {cycle:?}"));
    assert_eq!(explore.points.len(), 1, "{explore:?}");
    let point = &explore.points[0];
    assert!(point.error.is_none(), "{point:?}");
    assert!(point.ops > 0, "something was unsynced at the crash point: {point:?}");
    point
}

fn assert_every_state_intact(cell: &CellReport) {
    assert!(cell.acked_writes > 10, "too little load to judge: {cell:?}");
    let point = the_point(cell);
    assert!(point.states.len() > 1, "more than the live state was explored: {point:?}");
    assert!(point.distinct > 1, "{point:?}");
    assert_eq!(point.failed(), 0, "{:?}", point.first_failure);
    assert_eq!(cell.verdict, Verdict::Intact, "{:?}", cell.cycle_details);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_mariadb_is_intact_in_every_explored_crash_state() {
    if common::skip_docker() {
        return;
    }
    let cell = crash_states_cell("mariadb", r#""--innodb-flush-log-at-trx-commit=1""#, 8).await;
    assert_every_state_intact(&cell);
}

/// PostgreSQL with its durable defaults: WAL fsynced at every commit, full
/// page images after each checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_postgres_is_intact_in_every_explored_crash_state() {
    if common::skip_docker() {
        return;
    }
    let args = r#""-c", "synchronous_commit=on", "-c", "fsync=on", "-c", "full_page_writes=on""#;
    let cell = crash_states_cell("postgres", args, 4).await;
    assert_every_state_intact(&cell);
}

/// SQLite's WAL with `synchronous=FULL` fsyncs the WAL at every commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_wal_synchronous_full_is_intact_in_every_explored_crash_state() {
    if common::skip_docker() {
        return;
    }
    let cell = crash_states_cell("sqlite", r#""--journal-mode=wal", "--synchronous=full""#, 4).await;
    assert_every_state_intact(&cell);
}

/// Crash points inside the load fall across the whole load, one in each
/// equal slice of it (here two halves) (`spread = "load"`, the default), rather than at the
/// first matching calls, all in the load's first moments; the fired line
/// and the report say where each fell and what was unsynced there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_points_inside_the_load_spread_over_the_whole_load() {
    if common::skip_docker() {
        return;
    }
    let explore = "[explore]\npoints = \"fsync\"\nmax-points = 2\nmax-states = 1\n";
    let cell = crash_states_cell_with("sqlite", r#""--journal-mode=wal", "--synchronous=full""#, explore).await;
    let cycle = &cell.cycle_details[0];
    let fired = cycle.fired.as_ref().unwrap_or_else(|| panic!("{cycle:?}"));
    assert!(fired.fired && fired.what.contains(" ms (") && fired.what.contains(" B)"), "{fired:?}");
    let points = &cycle.explore.as_ref().unwrap_or_else(|| panic!("{cycle:?}")).points;
    assert_eq!(points.len(), 2, "one point per half of the 1.5 s load: {points:?}");
    for (j, p) in points.iter().enumerate() {
        // Each half's point comes after its look instant (a fifth to half
        // into the half; the plan is armed just before the load starts).
        let half = 750.0 * j as f64;
        assert!(p.at_ms > half + 100.0 && p.at_ms < half + 800.0, "point {j} at {} ms: {points:?}", p.at_ms);
        assert!(p.error.is_none() && p.files >= 1 && p.bytes > 0, "{p:?}");
    }
    assert_eq!(cell.verdict, Verdict::Intact, "{:?}", cell.cycle_details);
}

/// SQLite in rollback-journal mode with `synchronous=FULL`, one client, and
/// one crash point where the window of loss is certain: when the next
/// transfer creates its journal. A commit is the unlink of the journal and
/// `FULL` does not fsync the directory after it (the next transaction's
/// first journal sync does), so at that call the previous commit's unlink
/// is the one unsynced operation, and that commit was acknowledged before
/// the next transfer was sent. A point at the end of the load lands there
/// only by chance: it may fall between the next transaction's journal
/// syncs, where nothing acknowledged is at stake.
fn delete_journal_full_at_journal_creation(max_states: u32) -> String {
    let explore = format!("[explore]\npoints = \"create:*-journal\"\nmax-points = 1\nmax-states = {max_states}\n");
    let args = r#""--journal-mode=delete", "--synchronous=full""#;
    let text = common::scenario("sqlite", args, r#""bind-mount""#, r#""crash-states""#, 1, &explore);
    let one_client = text.replace("clients = 4", "clients = 1");
    assert_ne!(one_client, text, "the scenario names its clients");
    one_client
}

/// In rollback-journal mode a commit is the unlink of the journal; with
/// `synchronous=FULL` SQLite does not fsync the directory after it, so a
/// crash state that drops the unlink finds a hot journal and rolls the
/// acknowledged commit back. `synchronous=EXTRA` fsyncs the directory
/// before acknowledging: no state loses anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_delete_journal_loses_an_acked_commit_in_some_crash_state_unless_synchronous_extra() {
    if common::skip_docker() {
        return;
    }
    let (outcome, _state) = common::run(&delete_journal_full_at_journal_creation(4)).await;
    assert!(outcome.complete, "{:?}", outcome.report);
    let full = outcome.report.cells.into_iter().next().expect("one cell");
    let point = the_point(&full);
    let failure = point.first_failure.as_ref().unwrap_or_else(|| panic!("no state failed: {point:?}"));
    assert_eq!(failure.verdict, Verdict::LostWrites, "{failure:?}");
    assert!(failure.dropped.contains("unlink"), "the state dropped the journal's unlink: {failure:?}");
    assert_eq!(full.verdict, Verdict::LostWrites, "{:?}", full.cycle_details);
    assert!(!full.passed);

    let extra = crash_states_cell("sqlite", r#""--journal-mode=delete", "--synchronous=extra""#, 16).await;
    assert_every_state_intact(&extra);
}

/// The command a report prints for a failing crash state checks exactly
/// that state again, in a fresh container of its own run: the same
/// verdict, and nothing left behind afterwards; with `--keep` the
/// container stays up until `crashlab clean`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replay_command_of_a_failing_crash_state_reproduces_its_verdict() {
    if common::skip_docker() {
        return;
    }
    let (outcome, state) = common::run(&delete_journal_full_at_journal_creation(2)).await;
    let cell = &outcome.report.cells[0];
    let point = the_point(cell);
    let failure = point.first_failure.clone().unwrap_or_else(|| panic!("no state failed: {cell:?}"));
    let command = failure.replay.clone().unwrap_or_else(|| panic!("the failing point was not kept: {failure:?}"));
    let words: Vec<String> = command.split_whitespace().map(|w| w.trim_matches('\'').to_owned()).collect();
    assert_eq!(words[0], "crashlab", "{command}");

    let _guard = common::exclusive().await;
    let docker = common::docker_with(crashlab_workloads::agent::IMAGE).await;
    let crashlab = |extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_crashlab"))
            .args(&words[1..])
            .args(extra)
            .env("CRASHLAB_STATE_DIR", state.path())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let ours = format!("crashlab.state={}", state.path().canonicalize().unwrap().display());
    let runs = || -> Vec<String> {
        let entries = std::fs::read_dir(state.path().join("runs")).unwrap().flatten();
        entries.map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n != ".lock").collect()
    };

    let (code, stdout, stderr) = crashlab(&[]);
    assert_eq!(code, Some(1), "a failing state exits 1\n{stdout}\n{stderr}");
    let verdict = format!(
        "state `{}` of sqlite/bind-mount/crash-states cycle 1, crash point 1 ({}) of run {}: {}: ",
        failure.id, point.at, outcome.report.run_id, failure.verdict
    );
    assert!(stdout.starts_with(&verdict), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("the run found it {}: {} (reproduced)", failure.verdict, failure.detail)),
        "{stdout}"
    );
    assert!(docker.containers_labelled(&ours).await.unwrap().is_empty(), "the replay removed its container");
    assert!(runs().is_empty(), "the replay removed its run directory: {:?}", runs());

    let (code, stdout, stderr) = crashlab(&["--keep"]);
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("is left running") && stdout.contains("docker exec -it "), "{stdout}");
    let kept = docker.containers_labelled(&ours).await.unwrap();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(format!("{:?}", kept[0].state).to_lowercase().contains("running"), "{kept:?}");
    let clean = std::process::Command::new(env!("CARGO_BIN_EXE_crashlab"))
        .arg("clean")
        .env("CRASHLAB_STATE_DIR", state.path())
        .output()
        .unwrap();
    assert!(clean.status.success(), "{clean:?}");
    assert!(docker.containers_labelled(&ours).await.unwrap().is_empty(), "crashlab clean removed the kept container");
    assert!(runs().is_empty(), "{:?}", runs());
}
