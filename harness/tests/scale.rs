//! Scale-out against the real daemon: cells side by side on one host
//! (`--jobs`, with per-cell limits), and a scenario split into shards
//! (`--partition`) and joined again (`crashlab merge`).

mod common;

use crashlab::app::{self, RunSettings};
use crashlab::scenario::Scenario;
use crashlab_reports::{Report, Verdict};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};

/// Four MariaDB cells of a second's load each: two that keep their data,
/// two that lose it.
fn four_cells(extra: &str) -> String {
    format!(
        r#"
name = "four"
seed = 7
[workload]
kind = "mariadb"
server-args = ["--innodb-flush-log-at-trx-commit=1"]
clients = 4
load = "1s"
[matrix]
strategies = ["named-volume", "tmpfs"]
faults = ["process-kill", "recreate"]
cycles = 1
{extra}
[[expect]]
strategy = "tmpfs"
fault = "*"
verdict = "data-gone"
"#
    )
}

fn verdicts(report: &Report) -> Vec<(String, Verdict, bool)> {
    report.cells.iter().map(|c| (c.id(), c.verdict, c.passed)).collect()
}

fn expected_verdicts() -> Vec<(String, Verdict, bool)> {
    [
        ("named-volume/process-kill", Verdict::Intact),
        ("named-volume/recreate", Verdict::Intact),
        ("tmpfs/process-kill", Verdict::DataGone),
        ("tmpfs/recreate", Verdict::DataGone),
    ]
    .into_iter()
    .map(|(id, v)| (format!("mariadb/{id}"), v, true))
    .collect()
}

/// What the daemon showed of a run's workload containers while it ran.
#[derive(Debug, Default)]
struct Seen {
    names: BTreeSet<String>,
    most_running_at_once: usize,
    /// (NanoCpus, Memory, MemorySwap) of every container inspected.
    limits: BTreeSet<(i64, i64, i64)>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_jobs_run_cells_side_by_side_each_in_its_own_limited_container() {
    if common::skip_docker() {
        return;
    }
    let text = four_cells("cpus = 1\nmemory = \"512MiB\"");
    let scenario = Scenario::parse(&text, "four").unwrap();
    let _guard = common::exclusive().await;
    let docker = common::docker().await;
    let state = tempfile::tempdir().unwrap();
    let mut settings = RunSettings::new(state.path().to_owned());
    settings.quiet = true;
    settings.jobs = 2;
    let (_cancel_tx, cancel_rx) = tokio::sync::watch::channel(false);
    let done = AtomicBool::new(false);
    let run = async {
        let outcome = app::execute(&docker, &scenario, &settings, cancel_rx).await;
        done.store(true, Ordering::SeqCst);
        outcome
    };
    let label = format!("crashlab.state={}", state.path().canonicalize().unwrap().display());
    let watch = async {
        let mut seen = Seen::default();
        while !done.load(Ordering::SeqCst) {
            let containers = docker.containers_labelled(&label).await.unwrap_or_default();
            let running: Vec<_> =
                containers.iter().filter(|c| c.state.as_ref().is_some_and(|s| s.to_string() == "running")).collect();
            seen.most_running_at_once = seen.most_running_at_once.max(running.len());
            for c in &containers {
                let name = c.names.iter().flatten().next().cloned().unwrap_or_default();
                if seen.names.insert(name)
                    && let Some(id) = &c.id
                    && let Ok(inspect) = docker.inspect(id).await
                    && let Some(h) = inspect.host_config
                {
                    seen.limits.insert((h.nano_cpus.unwrap_or(0), h.memory.unwrap_or(0), h.memory_swap.unwrap_or(0)));
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        }
        seen
    };
    let (outcome, seen) = tokio::join!(run, watch);
    let outcome = outcome.expect("run completes");
    common::assert_nothing_left(&docker, &outcome.report.run_id).await;

    assert!(outcome.complete);
    assert_eq!(verdicts(&outcome.report), expected_verdicts(), "plan order, expected verdicts");
    let execution = outcome.report.execution.as_ref().unwrap();
    assert_eq!((execution.jobs, execution.cpus, execution.memory_bytes), (2, Some(1.0), Some(512 << 20)));
    assert!(seen.most_running_at_once >= 2, "two cells ran at once: {seen:?}");
    // Names end in the deployment's generation: `recreate` makes a second
    // container for the same cell.
    let cells: BTreeSet<&str> = seen.names.iter().filter_map(|n| n.rsplit_once('-').map(|(cell, _)| cell)).collect();
    assert_eq!(cells.len(), 4, "each cell had its own containers: {seen:?}");
    let limit = 512i64 << 20;
    assert_eq!(seen.limits, BTreeSet::from([(1_000_000_000, limit, limit)]), "every container was limited");
}

fn crashlab() -> Command {
    Command::new(env!("CARGO_BIN_EXE_crashlab"))
}

fn output(cmd: &mut Command) -> Output {
    cmd.output().expect("crashlab runs")
}

fn load(path: &Path) -> Report {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shards_merge_into_the_whole_plan_and_a_missing_one_is_named() {
    if common::skip_docker() {
        return;
    }
    let _guard = common::exclusive().await;
    let _docker = common::docker().await;
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("four.toml");
    std::fs::write(&scenario, four_cells("")).unwrap();
    for k in [1, 2] {
        let out = output(
            crashlab()
                .args(["run", "-q", "--partition", &format!("slice:{k}/2"), "--out"])
                .arg(dir.path().join(format!("shard-{k}")))
                .arg(&scenario)
                .env("CRASHLAB_STATE_DIR", dir.path().join("state")),
        );
        assert_eq!(out.status.code(), Some(0), "shard {k}: {}", String::from_utf8_lossy(&out.stderr));
        let shard = load(&dir.path().join(format!("shard-{k}/report.json")));
        assert_eq!(shard.cells.len(), 2);
        assert_eq!(shard.execution.unwrap().partition.as_deref(), Some(format!("slice:{k}/2").as_str()));
    }

    let merged = output(
        crashlab()
            .arg("merge")
            .arg(dir.path().join("shard-2"))
            .arg(dir.path().join("shard-1/report.json"))
            .arg("--out")
            .arg(dir.path().join("merged")),
    );
    assert_eq!(merged.status.code(), Some(0), "{}", String::from_utf8_lossy(&merged.stderr));
    let report = load(&dir.path().join("merged/report.json"));
    assert_eq!(verdicts(&report), expected_verdicts(), "the whole plan, in plan order");
    assert_eq!(report.merged.as_ref().unwrap().shards.len(), 2);
    for file in ["report.md", "report.html", "junit.xml"] {
        assert!(dir.path().join("merged").join(file).exists(), "{file} is rendered");
    }

    let partial =
        output(crashlab().arg("merge").arg(dir.path().join("shard-1")).arg("--out").arg(dir.path().join("partial")));
    assert_eq!(partial.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&partial.stdout);
    assert!(stdout.contains("missing shards: slice:2/2"), "{stdout}");
    let junit = std::fs::read_to_string(dir.path().join("partial/junit.xml")).unwrap();
    assert!(junit.contains("no shard reported this cell (missing shards: slice:2/2)"), "{junit}");

    let reseeded = dir.path().join("reseeded.json");
    let mut other = load(&dir.path().join("shard-2/report.json"));
    other.seed = 8;
    std::fs::write(&reseeded, serde_json::to_string(&other).unwrap()).unwrap();
    let refused = output(
        crashlab()
            .arg("merge")
            .arg(dir.path().join("shard-1"))
            .arg(&reseeded)
            .arg("--out")
            .arg(dir.path().join("refused")),
    );
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("seed 8 is not 7"), "{stderr}");
}
