//! The reader's question answered first: for each strategy, in plain
//! words, which faults it came through intact, under which it lost
//! acknowledged writes or everything, and, where it took backups, the
//! recovery point and time. Every word is derived from the report's cells;
//! `report.md`, `report.html` and the terminal summary open with it.

use crate::{CellReport, Report, Verdict};
use std::fmt::Write;

/// One strategy's line: who it is, and what happened to it.
#[derive(Debug, Clone, PartialEq)]
pub struct StrategyLine {
    /// `named-volume`, or `mariadb / named-volume` when the report has
    /// several workloads.
    pub name: String,
    /// `survived: …; lost acknowledged writes under: …` and what else
    /// applies, without a final full stop.
    pub text: String,
}

/// One line per (workload, strategy), in the order the cells ran.
pub fn lines(report: &Report) -> Vec<StrategyLine> {
    let workloads = crate::names::distinct(report.cells.iter().map(|c| c.workload.as_str()));
    let mut out = Vec::new();
    for workload in &workloads {
        let cells: Vec<&CellReport> = report.cells.iter().filter(|c| c.workload == *workload).collect();
        for strategy in crate::names::distinct(cells.iter().map(|c| c.strategy.as_str())) {
            let of: Vec<&CellReport> = cells.iter().copied().filter(|c| c.strategy == strategy).collect();
            let label = report.strategy_label(strategy);
            let name = if workloads.len() > 1 { format!("{workload} / {label}") } else { label };
            out.push(StrategyLine { name, text: describe(&of) });
        }
    }
    out
}

/// The clauses for one strategy's cells.
fn describe(cells: &[&CellReport]) -> String {
    let under = |pick: fn(Verdict) -> bool, lost: bool| -> Vec<String> {
        cells
            .iter()
            .filter(|c| pick(c.verdict))
            .map(|c| {
                let hit = c.verdicts.iter().filter(|v| **v == c.verdict).count();
                let mut notes = Vec::new();
                if lost && c.lost_acked_writes > 0 {
                    notes.push(format!("{} of {} acknowledged commits", c.lost_acked_writes, c.acked_writes));
                }
                if matches!(c.verdict, Verdict::Inconsistent | Verdict::Corrupt) {
                    notes.push(c.verdict.to_string());
                }
                if c.verdicts.len() > 1 && hit < c.verdicts.len() {
                    notes.push(format!("in {hit} of {} cycles", c.verdicts.len()));
                }
                if notes.is_empty() { c.fault.clone() } else { format!("{} ({})", c.fault, notes.join(", ")) }
            })
            .collect()
    };
    let list = |v: Vec<String>| if v.is_empty() { "none".to_owned() } else { v.join(", ") };
    // A cell judged with no acknowledged write was judged by the user's
    // own check (a service crashlab has no driver for): a pass is never
    // given for nothing at stake otherwise. Its words are the check's.
    let by_check = cells.iter().any(|c| c.acked_writes == 0 && c.verdict != Verdict::Error);
    let broken = under(|v| matches!(v, Verdict::Inconsistent | Verdict::Corrupt), true);
    let mut text = if by_check {
        format!(
            "your check passed under: {}; failed under: {} (no acknowledged writes were recorded: your check \
             alone judged)",
            list(under(|v| v == Verdict::Intact, false)),
            list(under(|v| matches!(v, Verdict::Inconsistent | Verdict::Corrupt), false)),
        )
    } else {
        format!(
            "survived: {}; lost acknowledged writes under: {}",
            list(under(|v| v == Verdict::Intact, false)),
            list(under(|v| v == Verdict::LostWrites, true)),
        )
    };
    let gone = under(|v| v == Verdict::DataGone, false);
    if !gone.is_empty() {
        let _ = write!(text, "; lost everything under: {}", gone.join(", "));
    }
    if !broken.is_empty() && !by_check {
        let _ = write!(text, "; came back broken under: {}", broken.join(", "));
    }
    let errors = under(|v| v == Verdict::Error, false);
    if !errors.is_empty() {
        let _ = write!(text, "; not judged (the harness failed) under: {}", errors.join(", "));
    }
    for c in cells {
        if let Some(figures) = recovery(c) {
            let _ = write!(text, "; {}: {figures}", c.fault);
        }
    }
    text
}

/// RPO and RTO of a cell that restored a backup, and a failed check by
/// the backup tool of its own store, in words.
fn recovery(c: &CellReport) -> Option<String> {
    let b = c.backup.as_ref()?;
    let mut parts = Vec::new();
    if let (Some(commits), Some(s)) = (b.rpo_commits_max, b.rpo_s_max) {
        // After a point-in-time restore the recovery point runs to the
        // target, not to the fault.
        let to_a_point = c.cycle_details.iter().any(|d| d.backup.as_ref().is_some_and(|b| b.restored_to_s.is_some()));
        let before = if to_a_point { " before the restore target" } else { "" };
        parts.push(format!("RPO {commits} commits / {s:.2} s{before} (worst cycle)"));
    }
    if b.restores > 0 {
        parts.push(format!("RTO {:.1} s (median)", b.rto_ms.p50 / 1e3));
    }
    let failed = b.tool_checks.saturating_sub(b.tool_checks_passed);
    if failed > 0 {
        parts.push(format!("the backup tool's own check failed in {failed} of {} cycles", b.tool_checks));
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// For a run of a Compose service: which service, where its file keeps
/// the data, and that the other strategies are the alternatives.
pub fn compose_sentence(report: &Report) -> Option<String> {
    let c = report.compose.as_ref()?;
    Some(format!(
        "Service `{}` of `{}` keeps its data on {} (your configuration); the other strategies are the \
         alternatives, under the same faults",
        c.service, c.file, c.strategy
    ))
}

/// The summary as a Markdown list, with a heading.
pub fn markdown(report: &Report) -> String {
    let lines = lines(report);
    if lines.is_empty() {
        return String::new();
    }
    let mut out = String::from("## Summary\n\n");
    if let Some(sentence) = compose_sentence(report) {
        let _ = writeln!(out, "{sentence}.\n");
        for note in report.compose.iter().flat_map(|c| &c.notes) {
            let _ = writeln!(out, "- note: {note}.");
        }
        if report.compose.as_ref().is_some_and(|c| !c.notes.is_empty()) {
            out.push('\n');
        }
    }
    for l in &lines {
        let _ = writeln!(out, "- **{}** — {}.", l.name, l.text);
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::markdown::tests::sample_report;
    use crate::{BackupSummary, Spread};

    #[test]
    fn each_strategy_says_what_it_survived_and_what_it_lost() {
        let lines = lines(&sample_report());
        let text: Vec<String> = lines.iter().map(|l| format!("{} — {}", l.name, l.text)).collect();
        assert_eq!(
            text,
            [
                "named-volume — survived: process-kill; lost acknowledged writes under: restart (7 of 1000 \
                 acknowledged commits)",
                "tmpfs — survived: none; lost acknowledged writes under: none; lost everything under: process-kill",
            ]
        );
    }

    #[test]
    fn a_restored_backup_gives_its_recovery_point_and_time() {
        let mut report = sample_report();
        let cell = &mut report.cells[1];
        cell.fault = "host-loss".into();
        cell.verdicts = vec![Verdict::LostWrites, Verdict::Intact];
        cell.backup = Some(BackupSummary {
            rpo_commits_max: Some(7),
            rpo_s_max: Some(1.234),
            restores: 2,
            rto_ms: Spread { p50: 1600.0, max: 1700.0 },
            ..BackupSummary::default()
        });
        report.cells.push(report.cells[0].clone());
        report.cells[3].workload = "redis".into();
        let lines = lines(&report);
        assert_eq!(lines[0].name, "mariadb / named-volume", "several workloads name theirs");
        assert!(
            lines[0].text.ends_with(
                "lost acknowledged writes under: host-loss (7 of 1000 acknowledged commits, in 1 of 2 cycles); \
                 host-loss: RPO 7 commits / 1.23 s (worst cycle), RTO 1.6 s (median)"
            ),
            "{}",
            lines[0].text
        );
        assert_eq!(lines[2].name, "redis / named-volume");
        report.cells[1].backup.as_mut().unwrap().tool_checks = 2;
        let text = &super::lines(&report)[0].text;
        assert!(text.ends_with(", the backup tool's own check failed in 2 of 2 cycles"), "{text}");
        let restored_to = crate::BackupCycle { restored_to_s: Some(2.5), ..crate::BackupCycle::default() };
        report.cells[1].cycle_details =
            vec![crate::CycleReport { backup: Some(restored_to), ..report.cells[1].cycle_details[0].clone() }];
        let text = &super::lines(&report)[0].text;
        assert!(text.contains("RPO 7 commits / 1.23 s before the restore target (worst cycle)"), "{text}");
    }

    #[test]
    fn a_compose_service_s_own_strategy_is_marked_and_named_first() {
        let mut report = sample_report();
        report.compose = Some(crate::ComposeOrigin {
            file: "docker-compose.yml".into(),
            service: "db".into(),
            strategy: "named-volume".into(),
            notes: vec!["not carried over: `healthcheck`".into()],
        });
        let lines = lines(&report);
        assert_eq!(lines[0].name, "named-volume (your configuration)");
        assert_eq!(lines[1].name, "tmpfs");
        let md = markdown(&report);
        assert!(
            md.starts_with(
                "## Summary\n\nService `db` of `docker-compose.yml` keeps its data on named-volume (your \
                 configuration); the other strategies are the alternatives, under the same faults.\n\n\
                 - note: not carried over: `healthcheck`.\n\n- **named-volume (your configuration)** — survived:"
            ),
            "{md}"
        );
    }

    #[test]
    fn broken_and_unjudged_cells_are_named() {
        let mut report = sample_report();
        report.cells[0].verdict = Verdict::Corrupt;
        report.cells[0].verdicts = vec![Verdict::Corrupt];
        report.cells[1].verdict = Verdict::Error;
        let text = &lines(&report)[0].text;
        assert!(text.contains("came back broken under: process-kill (corrupt)"), "{text}");
        assert!(text.contains("not judged (the harness failed) under: restart"), "{text}");
        assert!(text.starts_with("survived: none; lost acknowledged writes under: none"), "{text}");
    }

    /// Cells judged with no acknowledged write were judged by the user's
    /// own check, and say so rather than "survived".
    #[test]
    fn cells_a_user_s_check_judged_say_so() {
        let mut report = sample_report();
        report.cells.truncate(2);
        for c in &mut report.cells {
            c.acked_writes = 0;
            c.lost_acked_writes = 0;
        }
        report.cells[1].verdict = Verdict::Corrupt;
        report.cells[1].verdicts = vec![Verdict::Corrupt];
        let text = &lines(&report)[0].text;
        assert_eq!(
            text,
            "your check passed under: process-kill; failed under: restart (corrupt) (no acknowledged writes were \
             recorded: your check alone judged)"
        );
    }
}
