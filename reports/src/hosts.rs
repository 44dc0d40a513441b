//! "Across hosts": every strategy of a run that lost the primary's host
//! (`host-loss`, `partition-failover`) on one table, grouped by how it
//! protects the data ([`Family`]): the single host, whose loss is the
//! data's; backups restored on another host; replicas promoted; shared
//! storage mounted by another host. For each: the verdicts, the
//! acknowledged commits lost (the recovery point, in commits and seconds),
//! the recovery time with its parts where they were measured, and the
//! price paid during the load — throughput and commit p99 as a ratio of
//! the single-host named volume's under the same fault in the same run.
//!
//! Everything is read from the cells: the family from
//! [`CellReport::family`] (set from the strategy's definition), the
//! recovery point from the cycles' `replication.rpo_s` or `backup.rpo_s`,
//! the recovery time from the failover's times (fault to the first
//! acknowledged write on the new primary) or else the cycle's
//! `recovery_ms` (fault to the first successful query).

use crate::{CellReport, CycleReport, Family, Report, Spread, Verdict};
use std::fmt::Write;

/// The faults that take the primary's host away.
pub const HOST_LOSS_FAULTS: [&str; 2] = ["host-loss", "partition-failover"];

/// The strategy the others' throughput and latency are compared with: the
/// plain single-host volume, the cheapest place a database is usually
/// given.
pub const BASELINE: &str = "named-volume";

/// The cells the section shows: those whose fault lost the host, grouped
/// by family (single host first, cells of reports without families
/// last), in run order within a family.
pub fn cells(report: &Report) -> Vec<&CellReport> {
    let mut cells: Vec<&CellReport> =
        report.cells.iter().filter(|c| HOST_LOSS_FAULTS.contains(&c.fault.as_str())).collect();
    cells.sort_by_key(|c| c.family.map_or(usize::MAX, |f| f as usize));
    cells
}

/// The section for `report.md`, empty when no cell lost its host.
pub fn markdown(report: &Report) -> String {
    let cells = cells(report);
    if cells.is_empty() {
        return String::new();
    }
    let mut out = String::from("## Across hosts\n\n");
    out.push_str(INTRO);
    out.push_str("\n\n");
    out.push_str(&table(&report.cells, &cells));
    out.push('\n');
    out.push_str(&notes(&report.cells, &cells));
    out
}

/// What the section is, above the table.
pub const INTRO: &str = "The primary's host lost with its storage, strategy by strategy: **single-host** keeps \
     the data on that host only; **backup** restores its latest copy on another host; **replicated** promotes a \
     replica on another host; **shared** starts the database on another host on the same storage. RPO is what \
     was acknowledged and is gone; RTO runs from the fault to the first acknowledged write on a promoted replica, \
     or else to the first successful query; the price is the load's throughput and commit p99 beside \
     `named-volume`'s under the same fault in this run.";

/// One row per cell that lost its host; `all` is every cell of the run,
/// where the baseline is looked up.
pub fn table(all: &[CellReport], cells: &[&CellReport]) -> String {
    let name_of = crate::names::strategy_names(cells);
    let mut out = String::from(
        "| strategy | family | fault | verdicts | lost of acked | RPO commits (worst cycle) | RPO s (worst cycle) \
         | RTO ms p50 (max) | RTO parts ms p50 | tps | tps × named-volume | commit p99 ms | p99 × named-volume |\n\
         |---|---|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|\n",
    );
    for c in cells {
        let name = name_of(c);
        let baseline = baseline(all, c);
        let ratio = |of: fn(&CellReport) -> f64| match baseline {
            Some(b) if of(b) > 0.0 => format!("{:.2}", of(c) / of(b)),
            _ => "–".to_owned(),
        };
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} of {} | {} | {} | {} | {} | {:.1} | {} | {:.1} | {} |",
            c.family.map_or("–", Family::as_str),
            c.fault,
            verdicts(c),
            c.lost_acked_writes,
            c.acked_writes,
            rpo_commits(c),
            rpo_seconds(c),
            rto(c),
            rto_parts(c),
            c.throughput_tps,
            ratio(|x| x.throughput_tps),
            c.latency_ms.p99,
            ratio(|x| x.latency_ms.p99),
        );
    }
    out
}

/// What a reader needs to read the table right, below it.
pub fn notes(all: &[CellReport], cells: &[&CellReport]) -> String {
    let mut out = String::new();
    let host_loss = HOST_LOSS_FAULTS[0];
    if cells.iter().any(|c| baseline(all, c).is_none()) {
        let _ = writeln!(
            out,
            "- A ratio is `–` where the run has no `{BASELINE}` cell under the same fault or `{host_loss}`."
        );
    }
    if cells.iter().any(|c| baseline(all, c).is_some_and(|b| b.fault != c.fault)) {
        let _ = writeln!(
            out,
            "- Where `{BASELINE}` could not take the fault (n/a), the ratio is to its `{host_loss}` cell: the same \
             load, with no cut during it."
        );
    }
    if cells.iter().any(|c| c.verdict == Verdict::DataGone) {
        out.push_str("- `data-gone`: nothing came back to recover to, so neither RPO seconds nor RTO apply.\n");
    }
    if cells.iter().any(|c| c.cycle_details.iter().any(|d| failover(d).is_some())) {
        out.push_str(
            "- RTO parts of a failover: detection (the kill to the harness's monitor seeing the primary gone) + \
             promotion (the database's own work) + reconnection (a new client's first acknowledged write); \
             crashlab's own share is detection + reconnection.\n",
        );
    }
    if cells.iter().any(|c| c.backup.as_ref().is_some_and(|b| b.restores > 0)) {
        out.push_str("- RTO parts of a backup: restore (putting the latest backup on new storage); the rest of its RTO is the engine's start and recovery on it.\n");
    }
    out
}

/// The baseline cell for `c`: the same workload on [`BASELINE`] under the
/// same fault, or else under `host-loss` (a single host has no replica to
/// cut off, so `partition-failover` is n/a there; the load before the
/// fault is the same).
fn baseline<'a>(all: &'a [CellReport], c: &CellReport) -> Option<&'a CellReport> {
    let on = |fault: &str| all.iter().find(|b| b.strategy == BASELINE && b.workload == c.workload && b.fault == fault);
    on(&c.fault).or_else(|| on(HOST_LOSS_FAULTS[0]))
}

/// `intact ×3`, or each cycle's verdict in order when they differ.
fn verdicts(c: &CellReport) -> String {
    match c.verdicts.as_slice() {
        [] => c.verdict.to_string(),
        [first, rest @ ..] if rest.iter().all(|v| v == first) => {
            if rest.is_empty() {
                first.to_string()
            } else {
                format!("{first} ×{}", c.verdicts.len())
            }
        }
        all => all.iter().map(Verdict::to_string).collect::<Vec<_>>().join(", "),
    }
}

fn rpo_commits(c: &CellReport) -> String {
    c.cycle_details.iter().map(|d| d.lost_acked_writes).max().unwrap_or(c.lost_acked_writes).to_string()
}

/// The worst cycle's seconds of acknowledged writes lost: measured by the
/// failover or the restore; `0` when no cycle lost a commit and nothing
/// measured it; `all` when the data was gone.
fn rpo_seconds(c: &CellReport) -> String {
    if c.verdict == Verdict::DataGone {
        return "all".into();
    }
    match (measured_rpo_s(c), rpo_s(c)) {
        (Some(s), _) => format!("{s:.2}"),
        (None, Some(_)) => "0".into(),
        (None, None) => "–".into(),
    }
}

/// The worst cycle's seconds of acknowledged writes lost, where there is
/// a figure: measured by the failover or the restore, or `0` when no cycle
/// lost a commit; `None` when the data was gone or nothing measured it.
pub fn rpo_s(c: &CellReport) -> Option<f64> {
    if c.verdict == Verdict::DataGone {
        return None;
    }
    measured_rpo_s(c).or((c.lost_acked_writes == 0 && c.verdict <= Verdict::Intact).then_some(0.0))
}

/// The worst cycle's recovery point as the failover or the restore
/// measured it.
fn measured_rpo_s(c: &CellReport) -> Option<f64> {
    c.cycle_details
        .iter()
        .filter_map(|d| {
            d.replication.as_ref().and_then(|r| r.rpo_s).or_else(|| d.backup.as_ref().and_then(|b| b.rpo_s))
        })
        .reduce(f64::max)
}

/// One cell's figures for the charts.
#[derive(Clone, Debug, PartialEq)]
pub struct ChartRow {
    /// The strategy, after the workload when the section shows several.
    pub strategy: String,
    pub fault: String,
    /// The worst cycle's recovery point, in ms.
    pub rpo_ms: Option<f64>,
    /// The median recovery time, in ms.
    pub rto_ms: Option<f64>,
}

/// The charts' data: one row per cell with a figure; a cell whose data
/// was gone has neither and is left out, as is a figure nothing measured
/// (`None`).
pub fn chart_rows(cells: &[&CellReport]) -> Vec<ChartRow> {
    let name_of = crate::names::strategy_names(cells);
    cells
        .iter()
        .filter(|c| c.verdict != Verdict::DataGone)
        .map(|c| ChartRow {
            strategy: name_of(c),
            fault: c.fault.clone(),
            rpo_ms: rpo_s(c).map(|s| s * 1e3),
            rto_ms: rto_ms(c).map(|s| s.p50),
        })
        .filter(|r| r.rpo_ms.is_some() || r.rto_ms.is_some())
        .collect()
}

/// The failover of a cycle that promoted a replica.
fn failover(d: &CycleReport) -> Option<&crate::FailoverTimes> {
    d.replication.as_ref().and_then(|r| r.failover.as_ref())
}

/// Each cycle's recovery time: the failover's when a replica was
/// promoted, else fault to first successful query.
fn rto(c: &CellReport) -> String {
    rto_ms(c).map_or("–".into(), |s| format!("{:.0} ({:.0})", s.p50, s.max))
}

/// Each cycle's recovery time over the cycles: `None` when the data was
/// gone or no cycle measured one.
pub fn rto_ms(c: &CellReport) -> Option<Spread> {
    if c.verdict == Verdict::DataGone {
        return None;
    }
    let times: Vec<f64> =
        c.cycle_details.iter().filter_map(|d| failover(d).map(|f| f.rto_ms).or(d.recovery_ms)).collect();
    (!times.is_empty()).then(|| Spread::of(times))
}

/// The measured parts of the recovery time, medians over the cycles.
fn rto_parts(c: &CellReport) -> String {
    let failovers: Vec<&crate::FailoverTimes> = c.cycle_details.iter().filter_map(failover).collect();
    if !failovers.is_empty() {
        let p50 = |get: fn(&crate::FailoverTimes) -> f64| Spread::of(failovers.iter().map(|f| get(f))).p50;
        return format!(
            "detection {:.0} + promotion {:.0} + reconnection {:.0}",
            p50(|f| f.detection_ms),
            p50(|f| f.promotion_ms),
            p50(|f| f.reconnection_ms)
        );
    }
    match &c.backup {
        Some(b) if b.restores > 0 => format!("restore {:.0}", b.restore_ms.p50),
        _ => "–".into(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::markdown::tests::sample_report;
    use crate::{BackupCycle, BackupSummary, FailoverTimes, LatencySummary, ReplicationCycle};

    /// A run like `docs/replication.md`'s: the named volume, a backup and
    /// two replicas under `host-loss`, one replica also under
    /// `partition-failover`, and a shared strategy; two cycles each.
    pub(crate) fn host_loss_report() -> Report {
        let mut report = sample_report();
        let template = report.cells[0].clone();
        let cell = |strategy: &str, fault: &str, family: Family, verdicts: [Verdict; 2], lost: [u64; 2]| {
            let mut c = template.clone();
            c.strategy = strategy.into();
            c.fault = fault.into();
            c.family = Some(family);
            c.cycles = 2;
            c.verdicts = verdicts.to_vec();
            c.verdict = Verdict::worst(verdicts).unwrap();
            c.expected = c.verdict;
            c.passed = true;
            c.acked_writes = 4000;
            c.lost_acked_writes = lost.iter().sum();
            c.cycle_details = (0..2)
                .map(|i| {
                    let mut d = template.cycle_details[0].clone();
                    d.verdict = verdicts[i];
                    d.lost_acked_writes = lost[i];
                    d.recovery_ms = Some(400.0 + 100.0 * i as f64);
                    d
                })
                .collect();
            c
        };
        use Verdict::*;
        let mut named = cell("named-volume", "host-loss", Family::SingleHost, [DataGone, DataGone], [2000, 2000]);
        named.throughput_tps = 1500.0;
        named.latency_ms = LatencySummary { p50: 2.0, p95: 8.0, p99: 20.0, max: 40.0 };
        let mut backup = cell("backup-quiesced", "host-loss", Family::Backup, [LostWrites, LostWrites], [300, 250]);
        backup.backup = Some(BackupSummary {
            rpo_commits_max: Some(300),
            rpo_s_max: Some(1.5),
            restores: 2,
            consistent_restores: 2,
            restore_ms: Spread { p50: 250.0, max: 300.0 },
            ..BackupSummary::default()
        });
        for (d, s) in backup.cycle_details.iter_mut().zip([1.5, 1.25]) {
            d.backup = Some(BackupCycle { rpo_s: Some(s), restored: Some(1), ..BackupCycle::default() });
        }
        let replicated = |strategy: &str, fault: &str, verdicts, lost: [u64; 2], tps: f64, p99: f64| {
            let mut c = cell(strategy, fault, Family::Replicated, verdicts, lost);
            c.throughput_tps = tps;
            c.latency_ms.p99 = p99;
            for (i, d) in c.cycle_details.iter_mut().enumerate() {
                let f = FailoverTimes {
                    detection_ms: 30.0 + i as f64,
                    promotion_ms: 100.0 * (i + 1) as f64,
                    reconnection_ms: 20.0,
                    rto_ms: 150.0 + 101.0 * i as f64,
                };
                d.replication = Some(ReplicationCycle {
                    mode: "async".into(),
                    failover: Some(f),
                    rpo_s: Some(if lost[i] > 0 { [1.0625, 1.1875][i] } else { 0.0 }),
                    ..ReplicationCycle::default()
                });
            }
            c
        };
        let async_ = replicated("replica-async", "host-loss", [Intact, LostWrites], [0, 2], 960.0, 28.0);
        let semi = replicated("replica-semisync", "host-loss", [Intact, Intact], [0, 0], 1180.0, 17.5);
        let cut =
            replicated("replica-async", "partition-failover", [LostWrites, LostWrites], [1090, 1128], 1500.0, 36.0);
        let shared = cell("glusterfs-replica", "host-loss", Family::Shared, [Intact, Intact], [0, 0]);
        // Run order, which the section regroups by family.
        report.cells = vec![async_, named, shared, semi, backup, cut];
        report
    }

    /// The charts show what the table shows, in milliseconds: the worst
    /// cycle's recovery point and the median recovery time, per strategy
    /// and fault; the named volume, whose data was gone, has neither.
    #[test]
    fn the_charts_take_the_table_s_figures_and_leave_out_data_gone() {
        let report = host_loss_report();
        let cells = cells(&report);
        let rows = chart_rows(&cells);
        let get = |strategy: &str, fault: &str| {
            rows.iter()
                .find(|r| r.strategy == strategy && r.fault == fault)
                .unwrap_or_else(|| panic!("{strategy}/{fault}: {rows:?}"))
        };
        let host_loss = HOST_LOSS_FAULTS[0];
        assert!(rows.iter().all(|r| r.strategy != "named-volume"), "{rows:?}");
        assert_eq!(get("backup-quiesced", host_loss).rpo_ms, Some(1500.0));
        assert_eq!(get("replica-async", host_loss).rpo_ms, Some(1187.5));
        assert_eq!(get("replica-semisync", host_loss).rpo_ms, Some(0.0), "nothing lost, nothing measured above zero");
        assert_eq!(get("replica-async", "partition-failover").rto_ms, Some(Spread::of(vec![150.0, 251.0]).p50));
        let shared = get("glusterfs-replica", host_loss).rto_ms;
        assert_eq!(shared, Some(Spread::of(vec![400.0, 500.0]).p50), "no failover: recovery_ms");
    }

    #[test]
    fn the_section_groups_strategies_by_family_with_rpo_rto_and_price() {
        let report = host_loss_report();
        let md = markdown(&report);
        let rows: Vec<&str> = md.lines().filter(|l| l.starts_with("| ") && !l.starts_with("| strategy")).collect();
        let order: Vec<&str> = rows.iter().map(|r| r.split(" | ").nth(1).unwrap()).collect();
        assert_eq!(
            order,
            ["single-host", "backup", "replicated", "replicated", "replicated", "shared"],
            "families in order, run order within: {md}"
        );
        assert!(
            md.contains("| named-volume | single-host | host-loss | data-gone ×2 | 4000 of 4000 | 2000 | all | – | – | 1500.0 | 1.00 | 20.0 | 1.00 |"),
            "{md}"
        );
        assert!(md.contains("| backup-quiesced | backup | host-loss | lost-writes ×2 | 550 of 4000 | 300 | 1.50 | 400 (500) | restore 250 |"), "{md}");
        assert!(
            md.contains("| replica-async | replicated | host-loss | intact, lost-writes | 2 of 4000 | 2 | 1.19 | 150 (251) | detection 30 + promotion 100 + reconnection 20 | 960.0 | 0.64 | 28.0 | 1.40 |"),
            "{md}"
        );
        assert!(
            md.contains("| replica-async | replicated | partition-failover | lost-writes ×2 | 2218 of 4000 |"),
            "{md}"
        );
        assert!(
            md.contains("| 1500.0 | 1.00 | 36.0 | 1.80 |"),
            "named-volume's host-loss for partition-failover: {md}"
        );
        assert!(md.contains("the ratio is to its `host-loss` cell"), "{md}");
        assert!(
            md.contains("| glusterfs-replica | shared | host-loss | intact ×2 | 0 of 4000 | 0 | 0 | 400 (500) | – |"),
            "{md}"
        );
        let mut alone = report.clone();
        alone.cells.retain(|c| c.strategy != BASELINE);
        let without = markdown(&alone);
        assert!(without.contains("| 960.0 | – | 28.0 | – |"), "{without}");
        assert!(without.contains("no `named-volume` cell under the same fault or `host-loss`"), "{without}");
        insta::assert_snapshot!(md);
    }

    #[test]
    fn no_host_lost_no_section_and_old_reports_show_no_family() {
        assert_eq!(markdown(&sample_report()), "");
        let mut report = sample_report();
        report.cells[0].fault = "host-loss".into();
        let md = markdown(&report);
        assert!(md.contains("| named-volume | – | host-loss | intact |"), "{md}");
        let json = serde_json::to_string(&host_loss_report()).unwrap();
        assert!(json.contains("\"family\":\"single-host\"") && json.contains("\"family\":\"shared\""));
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back, host_loss_report());
    }
}
