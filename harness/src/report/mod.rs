//! Reporters: the live terminal view and the report files.
//!
//! The terminal view shows a bar per running cell (cycles done, current
//! phase; with `--jobs N` up to N at once), then the verdict matrix. Files are written from the finished [`Report`]:
//! `report.json` (the model), `report.md`, `report.html` and `junit.xml`.

pub mod environment;
pub mod timeline;

use crate::run::runner::{Event, Reporter};
use crashlab_reports::{Report, markdown};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::path::Path;

/// Whether to colour output: only on a terminal, and never when `NO_COLOR`
/// is set (<https://no-color.org>).
pub fn use_color(stream_is_terminal: bool) -> bool {
    stream_is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
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
                bar.set_prefix(format!("[{}/{}] {} × {}", self.started, self.total_cells, cell.strategy, cell.fault));
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
        out.push_str(&markdown::matrix_with(&cells, &unsupported));
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

/// Writes `report.json` and `report.md` into `dir`.
pub fn write_files(report: &Report, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_string_pretty(report).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("report.json"), json + "\n")?;
    for format in [Format::Md, Format::Html, Format::Junit] {
        std::fs::write(dir.join(format.file_name()), format.render(report))?;
    }
    Ok(())
}

/// The formats a stored report can be rendered to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Md,
    Html,
    Junit,
}

impl Format {
    pub fn render(self, report: &Report) -> String {
        match self {
            Format::Md => markdown::render(report),
            Format::Html => crashlab_reports::html::render(report),
            Format::Junit => crashlab_reports::junit::render(report),
        }
    }

    pub fn file_name(self) -> &'static str {
        match self {
            Format::Md => "report.md",
            Format::Html => "report.html",
            Format::Junit => "junit.xml",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::Fault;
    use crate::run::runner::Phase;
    use crate::scenario::Cell;
    use crate::storage::Strategy;
    use crashlab_reports::Verdict;

    #[test]
    fn every_running_cell_has_its_own_bar() {
        let mut terminal = Terminal::new(true, 2, 3);
        let cell = |index, strategy| Cell { index, strategy, fault: Fault::Restart, expected: Verdict::Intact };
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
