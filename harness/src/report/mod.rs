//! Reporters: the live terminal view and the report files.
//!
//! The terminal view shows a bar per running cell (cycles done, current
//! phase; with `--jobs N` up to N at once), then the verdict matrix as an
//! aligned table, coloured by whether each cell met its expectation. Files
//! are written from the finished [`Report`]: `report.json` (the model),
//! `report.md`, `report.html` and `junit.xml`.

pub mod environment;
pub mod json_events;

use crate::events::{Event, Reporter};
use crashlab_reports::{CellReport, Report, Unsupported, markdown};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};

/// When to colour output (`--color`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless `NO_COLOR` is set.
    #[default]
    Auto,
    Always,
    Never,
}

/// The process's choice, set once by the command line ([`set_color`]).
static COLOR: AtomicU8 = AtomicU8::new(ColorChoice::Auto as u8);

/// Sets when this process colours its output, for every later
/// [`use_color`].
pub fn set_color(choice: ColorChoice) {
    COLOR.store(choice as u8, Ordering::Relaxed);
}

/// Whether to colour output: as `--color` says; by default only on a
/// terminal, and never when `NO_COLOR` is set (<https://no-color.org>),
/// which an explicit `--color always` overrides.
pub fn use_color(stream_is_terminal: bool) -> bool {
    match COLOR.load(Ordering::Relaxed) {
        x if x == ColorChoice::Always as u8 => true,
        x if x == ColorChoice::Never as u8 => false,
        _ => stream_is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
    }
}

fn paint(text: &str, ok: bool, color: bool) -> String {
    match (color, ok) {
        (false, _) => text.to_owned(),
        (true, true) => format!("\x1b[32m{text}\x1b[0m"),
        (true, false) => format!("\x1b[1;31m{text}\x1b[0m"),
    }
}

/// Live progress on the terminal (stderr): an overall bar with the time
/// left, and a bar per cell, as many running at once as `--jobs` allows.
pub struct Terminal {
    multi: MultiProgress,
    overall: ProgressBar,
    /// The bars of started cells, by plan index.
    bars: HashMap<usize, ProgressBar>,
    cycles: u32,
    /// Runnable cells (`n/a` ones are never started), and how many started.
    total_cells: usize,
    started: usize,
    color: bool,
}

impl Terminal {
    pub fn new(quiet: bool, cycles: u32, total_cells: usize) -> Terminal {
        let target = if quiet { ProgressDrawTarget::hidden() } else { ProgressDrawTarget::stderr() };
        let multi = MultiProgress::with_draw_target(target);
        let overall = multi.add(ProgressBar::new(u64::from(cycles) * total_cells as u64));
        overall.set_style(
            ProgressStyle::with_template("{prefix:>38} [{bar:12}] {pos}/{len} cycles, {elapsed} elapsed, ~{eta} left")
                .expect("static template")
                .progress_chars("=> "),
        );
        overall.set_prefix("all cells");
        let color = use_color(std::io::IsTerminal::is_terminal(&std::io::stderr()));
        Terminal { multi, overall, bars: HashMap::new(), cycles, total_cells, started: 0, color }
    }
}

impl Reporter for Terminal {
    fn on_event(&mut self, event: &Event<'_>) {
        match event {
            Event::CellStarted { cell } => {
                let bar = self.multi.add(ProgressBar::new(u64::from(self.cycles)));
                bar.set_style(
                    ProgressStyle::with_template("{prefix:>38} [{bar:12}] {pos}/{len} {elapsed:>4} {wide_msg}")
                        .expect("static template")
                        .progress_chars("=> "),
                );
                // Counted among runnable cells: the plan's index also
                // counts the `n/a` ones, which never start.
                self.started += 1;
                bar.set_prefix(format!(
                    "[{}/{}] {} × {}",
                    self.started,
                    self.total_cells,
                    cell.strategy,
                    cell.fault_name()
                ));
                bar.enable_steady_tick(std::time::Duration::from_millis(250));
                self.bars.insert(cell.index, bar);
            }
            Event::Phase { cell, cycle, phase } => {
                if let Some(bar) = self.bars.get(&cell.index) {
                    bar.set_message(format!("cycle {}: {}", cycle + 1, phase.as_str()));
                }
            }
            Event::CycleFinished { cell, report, .. } => {
                self.overall.inc(1);
                if let Some(bar) = self.bars.get(&cell.index) {
                    bar.inc(1);
                    bar.set_message(format!(
                        "{} ({} acked, {} lost)",
                        report.verdict, report.acked_writes, report.lost_acked_writes
                    ));
                }
            }
            Event::CellFinished { cell, report } => {
                if let Some(bar) = self.bars.remove(&cell.index) {
                    let mark = paint(if report.passed { "ok" } else { "MISS" }, report.passed, self.color);
                    bar.finish_with_message(format!(
                        "{mark}: {} (expected {}), {:.0} tps, {} acked, {} lost, recovery {:.0} ms",
                        report.verdict,
                        report.expected,
                        report.throughput_tps,
                        report.acked_writes,
                        report.lost_acked_writes,
                        report.recovery_ms.p50
                    ));
                }
            }
        }
    }
}

/// The final summary printed to stdout: the matrix per workload, the
/// plain-language line per strategy ([`crashlab_reports::summary`]) and a
/// count line coloured by outcome when `color` is set.
pub fn summary(report: &Report, color: bool) -> String {
    let mut out = String::new();
    let mut workloads: Vec<&str> = report.cells.iter().map(|c| c.workload.as_str()).collect();
    workloads.dedup();
    for workload in workloads {
        let cells: Vec<_> = report.cells.iter().filter(|c| c.workload == workload).collect();
        out.push_str(&format!("\n{workload}\n"));
        let unsupported: Vec<_> = report.unsupported.iter().filter(|u| u.workload == workload).collect();
        out.push_str(&matrix(&cells, &unsupported, color));
        out.push_str(&markdown::unsupported_reasons(&unsupported));
    }
    let lines = crashlab_reports::summary::lines(report);
    if !lines.is_empty() {
        out.push('\n');
    }
    for l in lines {
        out.push_str(&format!("{} — {}\n", l.name, l.text));
    }
    let missed = report.cells.iter().filter(|c| !c.passed).count();
    let line = format!(
        "{} of {} cells met their expectation{}",
        report.cells.len() - missed,
        report.cells.len(),
        if missed == 0 { String::new() } else { format!("; {missed} did not") }
    );
    out.push_str(&format!("\n{}\n", paint(&line, missed == 0, color)));
    if let Some(selection) = report.execution.as_ref().and_then(|e| e.filter.as_ref()) {
        out.push_str(&format!("{}\n", selection.sentence()));
    }
    if let Some(m) = &report.merged {
        for (what, items) in [
            ("missing shards", &m.missing_shards),
            ("missing cells", &m.missing_cells),
            ("cells reported by more than one shard", &m.duplicate_cells),
        ] {
            if !items.is_empty() {
                out.push_str(&paint(&format!("{what}: {}\n", items.join(", ")), false, color));
            }
        }
    }
    out
}

/// Distinct values in first-seen order: the scenario's, not the alphabet's.
fn distinct(items: Vec<&str>) -> Vec<&str> {
    let mut seen: Vec<&str> = Vec::new();
    for item in items {
        if !seen.contains(&item) {
            seen.push(item);
        }
    }
    seen
}

/// The verdict matrix of one workload as an aligned table: a row per
/// strategy, a column per fault; a cell that met its expectation in green,
/// one that did not in bold red with what was expected, `n/a` where the
/// strategy cannot take the fault, and nothing where the pair was not run.
pub fn matrix(cells: &[&CellReport], unsupported: &[&Unsupported], color: bool) -> String {
    use comfy_table::{Attribute, Cell, Color, Table, presets};
    let strategies = distinct(
        cells.iter().map(|c| c.strategy.as_str()).chain(unsupported.iter().map(|u| u.strategy.as_str())).collect(),
    );
    let faults =
        distinct(cells.iter().map(|c| c.fault.as_str()).chain(unsupported.iter().map(|u| u.fault.as_str())).collect());
    let mut table = Table::new();
    table.load_style(presets::UTF8_FULL_CONDENSED);
    if color {
        table.enforce_styling();
    } else {
        table.force_no_tty();
    }
    table.set_header(std::iter::once("strategy").chain(faults.iter().copied()));
    for strategy in &strategies {
        let mut row = vec![Cell::new(strategy)];
        for fault in &faults {
            let cell = match cells.iter().find(|c| c.strategy == *strategy && c.fault == *fault) {
                Some(c) if c.passed => Cell::new(c.verdict).fg(Color::Green),
                Some(c) => Cell::new(format!("{} ✗ (expected {})", c.verdict, c.expected))
                    .fg(Color::Red)
                    .add_attribute(Attribute::Bold),
                None if unsupported.iter().any(|u| u.strategy == *strategy && u.fault == *fault) => Cell::new("n/a"),
                None => Cell::new(""),
            };
            row.push(cell);
        }
        table.add_row(row);
    }
    table.to_string() + "\n"
}

/// Writes `report.json` and `report.md` into `dir`.
pub fn write_files(report: &Report, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for format in [Format::Json, Format::Md, Format::Html, Format::Junit] {
        std::fs::write(dir.join(format.file_name()), format.render(report))?;
    }
    Ok(())
}

/// The formats a stored report can be rendered to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The model itself, as `report.json` holds it.
    Json,
    Md,
    Html,
    Junit,
}

impl Format {
    pub fn render(self, report: &Report) -> String {
        match self {
            Format::Json => crashlab_reports::to_json(report),
            Format::Md => markdown::render(report),
            Format::Html => crashlab_reports::html::render(report),
            Format::Junit => crashlab_reports::junit::render(report),
        }
    }

    pub fn file_name(self) -> &'static str {
        match self {
            Format::Json => "report.json",
            Format::Md => "report.md",
            Format::Html => "report.html",
            Format::Junit => "junit.xml",
        }
    }
}

/// The formats of `crashlab compare`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompareFormat {
    /// A diff for a pull-request comment.
    Md,
    /// [`crashlab_reports::compare::ComparisonJson`].
    Json,
}

impl CompareFormat {
    pub fn render(self, c: &crashlab_reports::compare::Comparison, base: &str, new: &str) -> String {
        match self {
            CompareFormat::Md => crashlab_reports::compare::render_markdown(c, base, new),
            CompareFormat::Json => crashlab_reports::compare::render_json(c, base, new),
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
    use crashlab_reports::Verdict;

    fn cell(strategy: &str, fault: &str, verdict: Verdict, expected: Verdict) -> CellReport {
        CellReport {
            workload: "mariadb".into(),
            strategy: strategy.into(),
            fault: fault.into(),
            cycles: 1,
            verdict,
            verdicts: vec![verdict],
            expected,
            passed: verdict.meets(expected),
            acked_writes: 100,
            lost_acked_writes: if verdict == Verdict::LostWrites { 3 } else { 0 },
            in_doubt_writes: 1,
            invariant_violations: 0,
            throughput_tps: 50.0,
            latency_ms: Default::default(),
            recovery_ms: Default::default(),
            cycle_details: vec![],
            fault_rules: vec![],
            backup: None,
            family: None,
            volume_driver: None,
        }
    }

    fn report() -> Report {
        Report {
            schema_version: crashlab_reports::SCHEMA_VERSION,
            scenario: "s".into(),
            seed: 1,
            run_id: "r".into(),
            started_at_unix: 0,
            duration_s: 1.0,
            environment: Default::default(),
            cells: vec![
                cell("bind-mount", "process-kill", Verdict::Intact, Verdict::Intact),
                cell("bind-mount", "host-kill", Verdict::LostWrites, Verdict::Intact),
                cell("container-layer", "process-kill", Verdict::Intact, Verdict::Intact),
            ],
            unsupported: vec![Unsupported {
                workload: "mariadb".into(),
                strategy: "container-layer".into(),
                fault: "host-kill".into(),
                reason: "no fault filesystem under the writable layer".into(),
            }],
            bench: None,
            execution: None,
            merged: None,
            compose: None,
            explore: None,
        }
    }

    #[test]
    fn the_terminal_summary_is_an_aligned_table_without_colour_when_off() {
        let text = summary(&report(), false);
        assert!(!text.contains('\x1b'), "no escape codes with colour off");
        insta::assert_snapshot!(text);
    }

    #[test]
    fn with_colour_a_met_expectation_is_green_and_a_miss_bold_red() {
        let text = summary(&report(), true);
        // comfy-table's (crossterm's) codes: 256-colour green and red.
        assert!(
            text.contains(
                "┆\x1b[38;5;10m intact       \x1b[39m┆\x1b[38;5;9m\x1b[1m lost-writes ✗ (expected intact) \x1b[0m│"
            ),
            "{text:?}"
        );
        assert!(text.contains("┆ n/a "), "n/a is not coloured: {text:?}");
        assert!(text.contains("\x1b[1;31m2 of 3 cells met their expectation; 1 did not\x1b[0m"), "{text:?}");
    }

    #[test]
    fn every_running_cell_has_its_own_bar() {
        let mut terminal = Terminal::new(true, 2, 3);
        let cell = |index, strategy| Cell {
            index,
            strategy,
            fault: Fault::Restart,
            expected: Verdict::Intact,
            schedule: None,
        };
        let (a, b) = (cell(0, Strategy::NamedVolume), cell(4, Strategy::Tmpfs));
        terminal.on_event(&Event::CellStarted { cell: &a });
        terminal.on_event(&Event::CellStarted { cell: &b });
        terminal.on_event(&Event::Phase { cell: &b, cycle: 1, phase: Phase::Load });
        terminal.on_event(&Event::Phase { cell: &a, cycle: 0, phase: Phase::Verify });
        assert_eq!(terminal.bars.len(), 2);
        assert_eq!(terminal.bars[&0].prefix(), "[1/3] named-volume × restart");
        assert_eq!(terminal.bars[&0].message(), "cycle 1: verify");
        assert_eq!(terminal.bars[&4].prefix(), "[2/3] tmpfs × restart");
        assert_eq!(terminal.bars[&4].message(), "cycle 2: load");
    }
}
