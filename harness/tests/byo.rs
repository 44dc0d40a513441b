//! Bring your own image: a scenario that sets the image's env, command,
//! data directory and readiness line runs with no code. The data directory
//! override must be where the strategy mounts: on tmpfs the dataset is gone
//! after a kill, which it would not be if the server wrote elsewhere.

mod common;

use crashlab_reports::Verdict;

fn byo_scenario(strategies: &str) -> String {
    format!(
        r#"
name = "byo"
seed = 3
[workload]
kind = "redis"
image = "crashlab/redis:latest"
env = ["CRASHLAB_BYO=1"]
command = ["--dir", "/tmp", "--appendonly", "yes", "--appendfsync", "always"]
data-dir = "/tmp"
port = 6379
ready-log = "Ready to accept connections"
load = "1s"
[matrix]
strategies = [{strategies}]
faults = ["process-kill"]
[[expect]]
strategy = "tmpfs"
verdict = "data-gone"
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_data_dir_command_and_ready_line_are_used() {
    if common::skip_docker() {
        return;
    }
    let (outcome, _state) = common::run(&byo_scenario(r#""named-volume", "tmpfs""#)).await;
    let cells = &outcome.report.cells;
    let verdict = |strategy: &str| cells.iter().find(|c| c.strategy == strategy).unwrap();
    let kept = verdict("named-volume");
    assert_eq!(kept.verdict, Verdict::Intact, "{kept:?}");
    assert!(kept.acked_writes > 0);
    let gone = verdict("tmpfs");
    assert_eq!(gone.verdict, Verdict::DataGone, "the tmpfs at data-dir held the data: {gone:?}");
    assert!(outcome.report.passed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ready_line_that_never_comes_holds_the_cycle_back() {
    if common::skip_docker() {
        return;
    }
    let text = byo_scenario(r#""named-volume""#)
        .replace("Ready to accept connections", "a line redis never prints")
        .replace("load = \"1s\"", "load = \"1s\"\nready-timeout = \"2s\"");
    let (outcome, _state) = common::run(&text).await;
    let cell = &outcome.report.cells[0];
    assert_eq!(cell.verdict, Verdict::Error, "{cell:?}");
    assert!(cell.cycle_details[0].detail.contains("did not answer in time"), "{cell:?}");
}
