//! What the binary writes for programs and shells: the JSON event stream
//! of `run` and `bench --message-format json`, `--filter`, `crashlab list`, shell
//! completions and the manual page.

mod common;

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn crashlab() -> Command {
    Command::new(env!("CARGO_BIN_EXE_crashlab"))
}

fn output(cmd: &mut Command) -> Output {
    cmd.output().expect("crashlab runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Every line of stdout, each of which must be a JSON object of schema 1.
fn json_lines(out: &Output) -> Vec<Value> {
    let stdout = text(&out.stdout);
    stdout
        .lines()
        .map(|line| {
            let value: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            assert_eq!(value["schema"], 1, "{line}");
            assert!(value["type"].is_string(), "{line}");
            value
        })
        .collect()
}

/// Two strategies by two faults, one short cycle each, of which the filter
/// keeps one cell.
const SCENARIO: &str = r#"
name = "cli-output"
seed = 11
[workload]
kind = "redis"
server-args = ["--appendonly", "yes", "--appendfsync", "always"]
clients = 2
load = "1s"
[matrix]
strategies = ["named-volume", "tmpfs"]
faults = ["process-kill", "restart"]
cycles = 1
[[expect]]
strategy = "tmpfs"
fault = "*"
verdict = "data-gone"
"#;

fn scenario_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("cli-output.toml");
    std::fs::write(&path, SCENARIO).unwrap();
    path
}

#[tokio::test]
async fn a_filtered_json_run_streams_only_its_cell_and_ends_with_the_exit_code() {
    if common::skip_docker() {
        return;
    }
    let _guard = common::exclusive().await;
    common::docker_with(crashlab_workloads::redis::IMAGE).await;
    let dir = tempfile::tempdir().unwrap();
    let path = scenario_file(dir.path());
    let out = output(
        crashlab()
            .args(["run", "--message-format", "json", "--filter", "strategy=named-volume and fault=restart", "--out"])
            .arg(dir.path().join("out"))
            .arg(&path)
            .env("CRASHLAB_STATE_DIR", dir.path().join("state")),
    );
    let lines = json_lines(&out);
    assert_eq!(out.status.code(), Some(0), "stderr: {}\nstdout: {}", text(&out.stderr), text(&out.stdout));
    // The summary is for people: on stderr, never mixed into the stream.
    assert!(text(&out.stderr).contains("1 of 1 cells met their expectation"), "{}", text(&out.stderr));

    let types: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
    assert_eq!(types.first(), Some(&"run-started"), "{types:?}");
    assert_eq!(types.last(), Some(&"run-finished"), "{types:?}");
    let count = |t: &str| types.iter().filter(|&&x| x == t).count();
    assert_eq!((count("cell-started"), count("cycle-finished"), count("cell-finished")), (1, 1, 1), "{types:?}");
    assert!(count("phase") >= 4, "{types:?}");
    let cell = "redis/named-volume/restart";
    assert!(lines[1..lines.len() - 1].iter().all(|l| l["cell"] == cell), "{lines:?}");

    let started = &lines[0];
    assert_eq!(started["cells"], serde_json::json!([cell]));
    assert_eq!(started["filter"], "strategy=named-volume and fault=restart");
    assert_eq!((&started["scenario"], &started["seed"]), (&Value::from("cli-output"), &Value::from(11)));
    let cycle = lines.iter().find(|l| l["type"] == "cycle-finished").unwrap();
    assert_eq!((&cycle["cycle"], &cycle["verdict"]), (&Value::from(1), &Value::from("intact")), "{cycle}");
    assert!(cycle["acked"].as_u64().is_some_and(|n| n > 0), "{cycle}");
    let finished = lines.last().unwrap();
    assert_eq!((&finished["cells"], &finished["passed"], &finished["exit_code"]), (&1.into(), &1.into(), &0.into()));
    assert_eq!(finished["run_id"], started["run_id"]);

    // The report it names holds the one cell, and the whole plan it ran.
    let report: crashlab_reports::Report =
        serde_json::from_str(&std::fs::read_to_string(finished["reports"]["json"].as_str().unwrap()).unwrap()).unwrap();
    let ran: Vec<String> = report.cells.iter().map(|c| format!("{}/{}/{}", c.workload, c.strategy, c.fault)).collect();
    assert_eq!(ran, [cell]);
    let execution = report.execution.unwrap();
    assert_eq!(execution.plan, [cell]);
    // The report says it is a part of the matrix, and how much.
    let selection = crashlab_reports::Selection {
        expression: "strategy=named-volume and fault=restart".into(),
        selected: 1,
        total: 4,
    };
    assert_eq!(execution.filter.as_ref(), Some(&selection));
    assert!(text(&out.stderr).contains(&selection.sentence()), "{}", text(&out.stderr));
    let md = std::fs::read_to_string(finished["reports"]["markdown"].as_str().unwrap()).unwrap();
    assert!(md.contains("**Cells selected by `--filter 'strategy=named-volume and fault=restart'`: 1 of 4**"), "{md}");
    let html = std::fs::read_to_string(finished["reports"]["html"].as_str().unwrap()).unwrap();
    assert!(html.contains("Cells selected by <code>--filter 'strategy=named-volume and fault=restart'</code>: 1 of 4"));
}

#[tokio::test]
async fn a_json_bench_streams_each_round_and_result_and_ends_with_the_exit_code() {
    if common::skip_docker() {
        return;
    }
    let agent = common::agent();
    let _guard = common::exclusive().await;
    common::docker_with(crashlab_workloads::fio::IMAGE).await;
    let dir = tempfile::tempdir().unwrap();
    let definition = dir.path().join("bench.toml");
    std::fs::write(
        &definition,
        "name = \"json-bench\"\n[io]\nprofiles = [\"fsync-4k\"]\nseconds = \"1s\"\nsize = \"8MiB\"\nrounds = 1\n\
         [[strategy]]\nname = \"named-volume\"\n",
    )
    .unwrap();
    let out = output(
        crashlab()
            .args(["bench", "--message-format", "json", "--out"])
            .arg(dir.path().join("out"))
            .arg(&definition)
            .env("CRASHLAB_STATE_DIR", dir.path().join("state"))
            .env("CRASHLAB_AGENT", &agent),
    );
    let lines = json_lines(&out);
    let stderr = text(&out.stderr);
    let types: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["bench-started", "bench-round", "bench-round", "bench-io", "bench-finished"], "{stderr}");

    let started = &lines[0];
    assert_eq!(
        (&started["bench"], &started["strategies"]),
        (&Value::from("json-bench"), &serde_json::json!(["named-volume"]))
    );
    assert_eq!((&started["profiles"], &started["fio"]), (&serde_json::json!(["fsync-4k"]), &Value::from(true)));
    // Round 1 runs the agent first, then fio.
    let tools: Vec<&Value> = lines[1..3].iter().map(|l| &l["tool"]).collect();
    assert_eq!(tools, [&Value::from("crashlab"), &Value::from("fio")]);
    for round in &lines[1..3] {
        assert_eq!(
            (&round["strategy"], &round["profile"], &round["round"]),
            (&"named-volume".into(), &"fsync-4k".into(), &1.into())
        );
        assert!(round["figures"]["iops"].as_f64().is_some_and(|x| x > 0.0), "{round}");
    }
    let io = &lines[3];
    assert_eq!((&io["strategy"], &io["profile"]), (&Value::from("named-volume"), &Value::from("fsync-4k")));
    assert_eq!(io["agent"]["iops"], lines[1]["figures"]["iops"], "one round: its figures are the median");
    assert!(io["agrees"].is_boolean(), "{io}");

    // The last line says how the process ends, and where the report is;
    // within the tolerance of fio or not, that is the exit code.
    let finished = &lines[4];
    assert_eq!(finished["run_id"], started["run_id"]);
    assert_eq!(finished["exit_code"].as_i64(), out.status.code().map(i64::from), "{stderr}");
    assert_eq!(finished["passed"], io["agrees"]);
    let report: crashlab_reports::Report =
        serde_json::from_str(&std::fs::read_to_string(finished["reports"]["json"].as_str().unwrap()).unwrap()).unwrap();
    let mut streamed = io.clone();
    let fields = streamed.as_object_mut().unwrap();
    fields.remove("schema");
    fields.remove("type");
    assert_eq!(serde_json::to_value(&report.bench.unwrap().io[0]).unwrap(), streamed, "the line is the report's entry");
    // The summary is for people, on stderr.
    assert!(stderr.contains("profiles within"), "{stderr}");
}

#[test]
fn a_filter_that_selects_nothing_exits_2_with_an_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = scenario_file(dir.path());
    let out = output(crashlab().args(["run", "--message-format", "json", "--filter", "workload=postgres"]).arg(&path));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["type"], "error");
    assert_eq!(lines[0]["exit_code"], 2);
    assert!(lines[0]["message"].as_str().unwrap().contains("selects no cell of scenario cli-output"), "{lines:?}");
    for sub in ["validate", "list"] {
        let out = output(crashlab().args([sub, "--filter", "workload=postgres"]).arg(&path));
        assert_eq!(out.status.code(), Some(2), "{sub}: {}", text(&out.stderr));
        assert!(text(&out.stderr).contains("`crashlab list SCENARIO` shows the plan's cells"), "{sub}");
    }
    // A filter that does not parse is a usage error, before anything runs.
    let out = output(crashlab().args(["validate", "--filter", "fault=restart or"]).arg(&path));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("at column 17: expected KEY=VALUE"), "{}", text(&out.stderr));
}

#[test]
fn list_shows_the_filtered_plan_as_a_table_and_as_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = scenario_file(dir.path());
    let out = output(crashlab().args(["list", "--filter", "fault=restart"]).arg(&path));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(table.starts_with("scenario cli-output (seed 11): 2 cells × 1 cycles, filter `fault=restart`"), "{table}");
    let rows: Vec<Vec<&str>> = table.lines().skip(3).map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows, [["redis/named-volume/restart", "intact"], ["redis/tmpfs/restart", "data-gone"]], "{table}");

    let out = output(crashlab().args(["list", "--message-format", "json"]).arg(&path));
    let lines = json_lines(&out);
    let cells: Vec<&str> = lines.iter().map(|l| l["cell"].as_str().unwrap()).collect();
    assert_eq!(
        cells,
        [
            "redis/named-volume/process-kill",
            "redis/named-volume/restart",
            "redis/tmpfs/process-kill",
            "redis/tmpfs/restart"
        ]
    );
    assert!(lines.iter().all(|l| l["type"] == "planned" && l["cycles"] == 1));
}

#[test]
fn bash_completion_loads_and_completes_subcommands_and_values() {
    let bin = env!("CARGO_BIN_EXE_crashlab");
    // `_crashlab` reads COMP_WORDS and COMP_CWORD and answers in COMPREPLY.
    let script = format!(
        r#"source <("{bin}" completions bash) || exit 1
complete -p crashlab
COMP_WORDS=(crashlab li); COMP_CWORD=1; _crashlab crashlab li crashlab; echo "sub: ${{COMPREPLY[*]}}"
COMP_WORDS=(crashlab run --message-format ''); COMP_CWORD=3; _crashlab crashlab '' --message-format
echo "format: ${{COMPREPLY[*]}}"
COMP_WORDS=(crashlab completions ''); COMP_CWORD=2; _crashlab crashlab '' completions; echo "shell: ${{COMPREPLY[*]}}""#
    );
    let out = output(Command::new("bash").arg("-c").arg(script));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}{}", stdout, text(&out.stderr));
    assert!(stdout.contains("complete -o bashdefault -o default -o nosort -F _crashlab crashlab"), "{stdout}");
    assert!(stdout.contains("\nsub: list\n"), "{stdout}");
    assert!(stdout.contains("\nformat: human json\n"), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("shell: ") && l.contains("zsh") && l.contains("fish")), "{stdout}");
    for shell in ["zsh", "fish"] {
        let out = output(crashlab().args(["completions", shell]));
        assert!(out.status.success() && text(&out.stdout).contains("crashlab"), "{shell}");
    }
}

#[test]
fn man_writes_a_page_per_subcommand() {
    let out = output(crashlab().arg("man"));
    assert!(out.status.success());
    assert!(text(&out.stdout).starts_with(".ie \\n(.g .ds Aq"), "roff: {}", text(&out.stdout));
    let dir = tempfile::tempdir().unwrap();
    let out = output(crashlab().arg("man").arg("--out").arg(dir.path()));
    assert!(out.status.success(), "{}", text(&out.stderr));
    for page in ["crashlab.1", "crashlab-run.1", "crashlab-list.1", "crashlab-images-build.1"] {
        let roff = std::fs::read_to_string(dir.path().join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(roff.contains(".SH NAME"), "{page}");
    }
    let run = std::fs::read_to_string(dir.path().join("crashlab-run.1")).unwrap();
    assert!(run.contains("message\\-format") && run.contains("filter"), "{run}");
}
