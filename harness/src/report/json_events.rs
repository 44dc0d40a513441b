//! The machine-readable stream of `--message-format json`: one JSON object
//! a line on stdout, for CI and other programs, beside (never instead of)
//! the report files.
//!
//! Every line carries `"schema": 1` and a `"type"`. `crashlab run` writes
//! `run-started`, then per cell `cell-started`, `phase` (each step of each
//! cycle), `cycle-finished` and `cell-finished`, and last `run-finished`
//! with the counts, the exit code and where the reports went; cells run
//! side by side interleave, and each line names its cell
//! (`workload/strategy/fault`). Cycles count from 1, as `crashlab replay
//! --cycle` does. `crashlab list` writes `planned` and `not-applicable`
//! lines. `crashlab bench` writes `bench-started`, a `bench-round` per
//! timed run of one tool, `bench-io` per profile and backend (the medians
//! and the check against fio), `bench-workload` per backend, `bench-failed`
//! for a backend step that failed, and last `bench-finished`. A failure
//! before a run or bench starts is one `error` line with the exit
//! code. The fields are documented in docs/ci.md; a change that removes or
//! renames one raises [`SCHEMA`], while added fields and types do not.

use crate::events::{Event, Reporter};
use crashlab_reports::bench::{BenchFailure, IoFigures, IoResult, Profile, WorkloadResult};
use crashlab_reports::{PhaseTimes, Verdict};
use serde::Serialize;
use std::io::Write;

/// The version of the line format, in every line as `schema`.
pub const SCHEMA: u32 = 1;

/// How a command writes to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum MessageFormat {
    /// Text for people: progress on stderr, the summary on stdout.
    #[default]
    Human,
    /// One JSON object a line on stdout; text for people goes to stderr.
    Json,
}

/// One line of the stream, without its `schema`.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Line<'a> {
    RunStarted {
        run_id: &'a str,
        scenario: &'a str,
        seed: u64,
        workload: &'a str,
        /// The cells this run will run, in plan order.
        cells: Vec<String>,
        /// Runnable cells of the whole plan (more than `cells` when
        /// `--partition` runs one shard of it).
        plan_size: usize,
        not_applicable: usize,
        cycles: u32,
        jobs: usize,
        partition: Option<String>,
        filter: Option<String>,
    },
    CellStarted {
        cell: String,
        index: usize,
        strategy: &'a str,
        fault: &'a str,
        expected: Verdict,
    },
    Phase {
        cell: String,
        cycle: u32,
        phase: &'a str,
    },
    CycleFinished {
        cell: String,
        cycle: u32,
        verdict: Verdict,
        acked: u64,
        lost: u64,
        in_doubt: u64,
        invariant_violations: u64,
        load_s: f64,
        recovery_ms: Option<f64>,
        cycle_ms: f64,
        phases: &'a PhaseTimes,
        fired: Option<bool>,
        detail: &'a str,
    },
    CellFinished {
        cell: String,
        verdict: Verdict,
        expected: Verdict,
        passed: bool,
        cycles: usize,
        acked: u64,
        lost: u64,
        in_doubt: u64,
        throughput_tps: f64,
        recovery_p50_ms: f64,
    },
    RunFinished {
        run_id: &'a str,
        cells: usize,
        passed: usize,
        missed: usize,
        /// Every planned cell ran all its cycles.
        complete: bool,
        exit_code: i32,
        duration_s: f64,
        reports: ReportPaths,
    },
    Planned {
        cell: String,
        index: usize,
        workload: &'a str,
        strategy: &'a str,
        fault: &'a str,
        cycles: u32,
        expected: Verdict,
    },
    NotApplicable {
        cell: String,
        workload: &'a str,
        strategy: &'a str,
        fault: &'a str,
        reason: &'a str,
    },
    BenchStarted {
        run_id: &'a str,
        bench: &'a str,
        /// The backends, in the order they are measured.
        strategies: Vec<&'a str>,
        profiles: Vec<Profile>,
        rounds: u32,
        seconds: f64,
        fio: bool,
        /// The workload whose load runs on each backend after the
        /// profiles; absent with `--no-workload` or none defined.
        workload: Option<&'a str>,
    },
    /// One timed run of one tool: the bench's progress.
    BenchRound {
        strategy: &'a str,
        profile: Profile,
        /// From 1.
        round: u32,
        rounds: u32,
        /// `crashlab` (the agent) or `fio`.
        tool: &'a str,
        figures: &'a IoFigures,
    },
    /// A profile's result on one backend, as the report holds it.
    BenchIo(&'a IoResult),
    /// The workload's load on one backend, as the report holds it.
    BenchWorkload(&'a WorkloadResult),
    /// A backend step that failed; the bench goes on with the next.
    BenchFailed(&'a BenchFailure),
    BenchFinished {
        run_id: &'a str,
        /// Every backend was measured and every profile agreed with fio.
        passed: bool,
        exit_code: i32,
        duration_s: f64,
        reports: ReportPaths,
    },
    Error {
        message: String,
        hint: Option<String>,
        exit_code: i32,
    },
}

/// Where a run's report files went.
#[derive(Debug, Serialize)]
pub struct ReportPaths {
    pub dir: String,
    pub json: String,
    pub markdown: String,
    pub html: String,
    pub junit: String,
}

impl ReportPaths {
    pub fn in_dir(dir: &std::path::Path) -> ReportPaths {
        let file = |name: &str| dir.join(name).display().to_string();
        ReportPaths {
            dir: dir.display().to_string(),
            json: file("report.json"),
            markdown: file(super::Format::Md.file_name()),
            html: file(super::Format::Html.file_name()),
            junit: file(super::Format::Junit.file_name()),
        }
    }
}

/// A line with its schema version in front. Serialisation only, so the
/// flattening cannot blur a parse error.
#[derive(Serialize)]
struct Versioned<'a> {
    schema: u32,
    #[serde(flatten)]
    line: &'a Line<'a>,
}

/// Writes [`Line`]s to `out`, one a line, flushed each time so that a
/// reader sees an event when it happens.
pub struct JsonEvents<W: Write> {
    out: W,
    workload: String,
}

impl JsonEvents<std::io::Stdout> {
    /// The stream on stdout, for cells of `workload`.
    pub fn stdout(workload: &str) -> Self {
        JsonEvents::new(std::io::stdout(), workload)
    }
}

impl<W: Write> JsonEvents<W> {
    pub fn new(out: W, workload: &str) -> Self {
        JsonEvents { out, workload: workload.to_owned() }
    }

    /// Writes one line. A reader that went away must not abort a run
    /// before it has cleaned up, so write errors are dropped.
    pub fn emit(&mut self, line: &Line<'_>) {
        if let Ok(mut text) = serde_json::to_vec(&Versioned { schema: SCHEMA, line }) {
            text.push(b'\n');
            let _ = self.out.write_all(&text);
            let _ = self.out.flush();
        }
    }

    fn cell_id(&self, cell: &crate::scenario::Cell) -> String {
        crashlab_reports::partition::cell_id(&self.workload, cell.strategy.as_str(), &cell.fault_name())
    }

    /// The stream's writer, e.g. to read back a buffer.
    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write> Reporter for JsonEvents<W> {
    fn on_event(&mut self, event: &Event<'_>) {
        let line = match *event {
            Event::CellStarted { cell } => Line::CellStarted {
                cell: self.cell_id(cell),
                index: cell.index,
                strategy: cell.strategy.as_str(),
                fault: &cell.fault_name(),
                expected: cell.expected,
            },
            Event::Phase { cell, cycle, phase } => {
                Line::Phase { cell: self.cell_id(cell), cycle: cycle + 1, phase: phase.as_str() }
            }
            Event::CycleFinished { cell, cycle, report } => Line::CycleFinished {
                cell: self.cell_id(cell),
                cycle: cycle + 1,
                verdict: report.verdict,
                acked: report.acked_writes,
                lost: report.lost_acked_writes,
                in_doubt: report.in_doubt_writes,
                invariant_violations: report.invariant_violations,
                load_s: report.load_s,
                recovery_ms: report.recovery_ms,
                cycle_ms: report.cycle_ms,
                phases: &report.phases,
                fired: report.fired.as_ref().map(|f| f.fired),
                detail: &report.detail,
            },
            Event::CellFinished { cell, report } => Line::CellFinished {
                cell: self.cell_id(cell),
                verdict: report.verdict,
                expected: report.expected,
                passed: report.passed,
                cycles: report.verdicts.len(),
                acked: report.acked_writes,
                lost: report.lost_acked_writes,
                in_doubt: report.in_doubt_writes,
                throughput_tps: report.throughput_tps,
                recovery_p50_ms: report.recovery_ms.p50,
            },
        };
        self.emit(&line);
    }
}

/// A reporter that hands every event to two others: the terminal view and
/// the JSON stream, say.
pub struct Tee<'a>(pub &'a mut dyn Reporter, pub &'a mut dyn Reporter);

impl Reporter for Tee<'_> {
    fn on_event(&mut self, event: &Event<'_>) {
        self.0.on_event(event);
        self.1.on_event(event);
    }
}

/// An absent reporter hears nothing: `Tee(&mut terminal, &mut json)` with
/// the JSON stream only when asked for.
impl<R: Reporter> Reporter for Option<R> {
    fn on_event(&mut self, event: &Event<'_>) {
        if let Some(r) = self {
            r.on_event(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Phase;
    use crate::faults::Fault;
    use crate::scenario::Cell;
    use crate::storage::Strategy;
    use crashlab_reports::CycleReport;
    use serde_json::Value;

    fn lines(events: JsonEvents<Vec<u8>>) -> Vec<Value> {
        let text = String::from_utf8(events.into_inner()).unwrap();
        text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"))).collect()
    }

    #[test]
    fn each_event_is_one_versioned_line_naming_its_cell() {
        let mut events = JsonEvents::new(Vec::new(), "mariadb");
        let cell = Cell {
            index: 3,
            strategy: Strategy::BindMount,
            fault: Fault::HostKill,
            expected: Verdict::Intact,
            schedule: None,
        };
        let cycle = CycleReport {
            verdict: Verdict::LostWrites,
            acked_writes: 120,
            lost_acked_writes: 7,
            in_doubt_writes: 2,
            invariant_violations: 0,
            load_s: 2.0,
            recovery_ms: Some(850.5),
            cycle_ms: 4100.0,
            detail: "7 acknowledged transfers are missing".into(),
            faultfs: None,
            phases: PhaseTimes::default(),
            backup: None,
            fired: None,
            explore: None,
            replication: None,
            timeline: None,
            steps: Vec::new(),
            lost_acks_ms: None,
        };
        events.on_event(&Event::CellStarted { cell: &cell });
        events.on_event(&Event::Phase { cell: &cell, cycle: 0, phase: Phase::Load });
        events.on_event(&Event::CycleFinished { cell: &cell, cycle: 0, report: &cycle });
        let lines = lines(events);
        assert_eq!(lines.len(), 3);
        assert!(lines.iter().all(|l| l["schema"] == 1 && l["cell"] == "mariadb/bind-mount/host-kill"), "{lines:?}");
        let types: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["cell-started", "phase", "cycle-finished"]);
        assert_eq!(lines[0]["index"], 3);
        assert_eq!(lines[0]["expected"], "intact");
        assert_eq!((&lines[1]["cycle"], &lines[1]["phase"]), (&Value::from(1), &Value::from("load")));
        let finished = &lines[2];
        assert_eq!(finished["verdict"], "lost-writes");
        assert_eq!((&finished["acked"], &finished["lost"]), (&Value::from(120), &Value::from(7)));
        assert_eq!(finished["recovery_ms"], 850.5);
        assert_eq!(finished["phases"]["verify_ms"], 0.0);
    }

    #[test]
    fn a_tee_gives_both_reporters_every_event_and_an_absent_one_none() {
        let cell = Cell {
            index: 0,
            strategy: Strategy::Tmpfs,
            fault: Fault::Restart,
            expected: Verdict::DataGone,
            schedule: None,
        };
        let mut a = JsonEvents::new(Vec::new(), "redis");
        let mut b: Option<JsonEvents<Vec<u8>>> = Some(JsonEvents::new(Vec::new(), "redis"));
        let mut none: Option<JsonEvents<Vec<u8>>> = None;
        Tee(&mut a, &mut b).on_event(&Event::CellStarted { cell: &cell });
        Tee(&mut none, &mut b).on_event(&Event::Phase { cell: &cell, cycle: 1, phase: Phase::Verify });
        assert_eq!(lines(a).len(), 1);
        let b = lines(b.unwrap());
        assert_eq!(b.len(), 2);
        assert_eq!(b[1]["cycle"], 2);
    }

    #[test]
    fn run_finished_names_every_report_file() {
        let mut events = JsonEvents::new(Vec::new(), "mariadb");
        let reports = ReportPaths::in_dir(std::path::Path::new("out/r1"));
        events.emit(&Line::RunFinished {
            run_id: "r1",
            cells: 2,
            passed: 1,
            missed: 1,
            complete: true,
            exit_code: 1,
            duration_s: 12.5,
            reports,
        });
        let line = &lines(events)[0];
        assert_eq!(line["type"], "run-finished");
        assert_eq!(line["exit_code"], 1);
        assert_eq!(line["reports"]["junit"], "out/r1/junit.xml");
        assert_eq!(line["reports"]["json"], "out/r1/report.json");
    }
}
