//! Reporters: the live terminal view and the report files.
//!
//! The terminal view shows a bar per cell (cycles done, current phase), then
//! the verdict matrix. Files are written from the finished [`Report`]:
//! `report.json` (the model) and `report.md`.

use crate::runner::{Event, Reporter};
use crashlab_reports::{Report, markdown};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::path::Path;

/// Live progress on the terminal (stderr), one bar per cell.
pub struct Terminal {
    multi: MultiProgress,
    current: Option<ProgressBar>,
    cycles: u32,
    total_cells: usize,
}

impl Terminal {
    pub fn new(quiet: bool, cycles: u32, total_cells: usize) -> Terminal {
        let target = if quiet { ProgressDrawTarget::hidden() } else { ProgressDrawTarget::stderr() };
        Terminal { multi: MultiProgress::with_draw_target(target), current: None, cycles, total_cells }
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
                bar.set_prefix(format!("[{}/{}] {} × {}", cell.index + 1, self.total_cells, cell.strategy, cell.fault));
                bar.enable_steady_tick(std::time::Duration::from_millis(250));
                self.current = Some(bar);
            }
            Event::Phase { cycle, phase, .. } => {
                if let Some(bar) = &self.current {
                    bar.set_message(format!("cycle {}: {}", cycle + 1, phase.as_str()));
                }
            }
            Event::CycleFinished { report, .. } => {
                if let Some(bar) = &self.current {
                    bar.inc(1);
                    bar.set_message(format!(
                        "{} ({} acked, {} lost)",
                        report.verdict, report.acked_writes, report.lost_acked_writes
                    ));
                }
            }
            Event::CellFinished { report, .. } => {
                if let Some(bar) = self.current.take() {
                    let mark = if report.passed { "ok" } else { "MISS" };
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

/// The final summary printed to stdout: the matrix per workload.
pub fn summary(report: &Report) -> String {
    let mut out = String::new();
    let mut workloads: Vec<&str> = report.cells.iter().map(|c| c.workload.as_str()).collect();
    workloads.dedup();
    for workload in workloads {
        let cells: Vec<_> = report.cells.iter().filter(|c| c.workload == workload).collect();
        out.push_str(&format!("\n{workload}\n"));
        out.push_str(&markdown::matrix(&cells));
    }
    let missed = report.cells.iter().filter(|c| !c.passed).count();
    out.push_str(&format!(
        "\n{} of {} cells met their expectation{}\n",
        report.cells.len() - missed,
        report.cells.len(),
        if missed == 0 { String::new() } else { format!("; {missed} did not") }
    ));
    out
}

/// Writes `report.json` and `report.md` into `dir`.
pub fn write_files(report: &Report, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_string_pretty(report).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("report.json"), json + "\n")?;
    std::fs::write(dir.join("report.md"), markdown::render(report))?;
    Ok(())
}
