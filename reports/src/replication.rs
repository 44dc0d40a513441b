//! "Replication": what the replicas did during the load, cell by cell —
//! the lag sampled while the load ran, the lag just before the fault and,
//! for synchronous replication, the primary's own counters and whether it
//! fell back to asynchronous. One table, built here once and rendered by
//! both `report.md` and `report.html`, so both show the same rows.
//!
//! Everything is read from the cycles' `replication` records. A figure
//! that was not measured is `–`, never 0: a cell whose sampler got no
//! answer has no maximum lag, a cycle whose fault read no lag has none at
//! the fault, and PostgreSQL's primary counts no commits acknowledged with
//! or without the standby (its record carries `on` only). Shared storage
//! (`glusterfs-replica`) replicates below the database, with no lag to
//! sample: its cells are named under the table with what they measured.

use crate::{CellReport, Family, ReplicationCycle, Report, SyncCycle};
use std::fmt::Write;

/// The lag unit of shared storage's records: nothing is sampled.
const NO_LAG: &str = "none";

/// The cells whose cycles carry replication records, in run order.
pub fn cells(report: &Report) -> Vec<&CellReport> {
    report.cells.iter().filter(|c| records(c).next().is_some()).collect()
}

/// The section for `report.md`, empty when no cell replicated.
pub fn markdown(report: &Report) -> String {
    let cells = cells(report);
    if cells.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n## Replication\n\n");
    let (lagged, shared) = split(&cells);
    if !lagged.is_empty() {
        out.push_str(&table(&lagged));
        out.push('\n');
    }
    out.push_str(&notes(&lagged, &shared));
    out
}

/// The cells with a replica the harness samples, and those on shared
/// storage, which has none.
pub fn split<'a>(cells: &[&'a CellReport]) -> (Vec<&'a CellReport>, Vec<&'a CellReport>) {
    cells.iter().partition(|c| !is_shared(c))
}

/// One row per cell with a replica: its lag over the cycles and its
/// synchronous replication state.
pub fn table(cells: &[&CellReport]) -> String {
    let name_of = crate::names::strategy_names(cells);
    let mut out = String::from(
        "| strategy | fault | mode | lag unit | lag samples | max lag unreceived / unapplied | lag at the fault \
         unreceived / unapplied (worst cycle) | commits acked by a replica | commits answered without one | fell back |\n\
         |---|---|---|---|---:|---:|---:|---:|---:|---|\n",
    );
    for c in cells {
        let name = name_of(c);
        let records: Vec<&ReplicationCycle> = records(c).collect();
        let first = records.first().copied().cloned().unwrap_or_default();
        let samples: u64 = records.iter().map(|r| u64::from(r.lag_samples)).sum();
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {samples} | {} | {} | {} | {} | {} |",
            c.fault,
            or_dash(&first.mode),
            or_dash(&first.lag_unit),
            max_lag(&records),
            at_fault(&records),
            counter(&records, |s| s.acknowledged),
            counter(&records, |s| s.unacknowledged),
            fell_back(c),
        );
    }
    out
}

/// What the figures mean, and the cells left out of the table, below it.
pub fn notes(lagged: &[&CellReport], shared: &[&CellReport]) -> String {
    let mut out = String::new();
    if !lagged.is_empty() {
        out.push_str(
            "- Lags count what the primary had committed and the replica had not yet received (lost with the \
             primary's host) or not yet applied: transactions for MariaDB, WAL bytes for PostgreSQL. The harness \
             samples them during the load: each sample reads both servers' positions, then the sampler waits \
             200 ms, so samples are 200 ms plus the reads' time apart; the lag at the fault is read just before \
             it (before the heal for `partition`). `–`: not measured (no sample answered, or the fault read \
             none).\n",
        );
    }
    if lagged.iter().any(|c| records(c).any(|r| r.sync.is_some())) {
        out.push_str(
            "- Synchronous replication as the primary counted it at the fault: MariaDB's semi-sync counters \
             (`Rpl_semi_sync_master_yes_tx`, `_no_tx`) are the server's since it started, one figure per cycle (one for all when they agree); \
             a commit answered without a replica, or semi-sync off at the fault, is a fallback, flagged **✗**.\n",
        );
    }
    if lagged.iter().any(|c| records(c).any(|r| r.sync.as_ref().is_some_and(|s| s.acknowledged.is_none()))) {
        out.push_str(
            "- PostgreSQL's primary keeps no such counters (`–`) and never falls back: its commits wait for the \
             standby; `no` says the standby was still named in `synchronous_standby_names` at the fault.\n",
        );
    }
    if !shared.is_empty() {
        let listed: Vec<String> = shared.iter().map(|c| format!("{} ({})", shared_name(c), acked_after(c))).collect();
        let _ = writeln!(
            out,
            "- Not in the table: shared storage, replicated below the database, has no replica lag to sample: {}.",
            listed.join("; ")
        );
    }
    out
}

/// The cycles' replication records, in order.
fn records(c: &CellReport) -> impl Iterator<Item = &ReplicationCycle> {
    c.cycle_details.iter().filter_map(|d| d.replication.as_ref())
}

/// Shared storage: the strategy's family says so, or (in reports without
/// families) every record's lag unit is shared storage's.
fn is_shared(c: &CellReport) -> bool {
    match c.family {
        Some(family) => family == Family::Shared,
        None => records(c).all(|r| r.lag_unit == NO_LAG),
    }
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() { "–" } else { s }
}

/// The largest lags sampled over the cycles that took a sample.
fn max_lag(records: &[&ReplicationCycle]) -> String {
    let sampled: Vec<&&ReplicationCycle> = records.iter().filter(|r| r.lag_samples > 0).collect();
    if sampled.is_empty() {
        return "–".into();
    }
    let unreceived = sampled.iter().map(|r| r.lag_max_unreceived).max().unwrap_or_default();
    let unapplied = sampled.iter().map(|r| r.lag_max_unapplied).max().unwrap_or_default();
    format!("{unreceived} / {unapplied}")
}

/// The lag just before the fault of the cycle whose replica had received
/// least (then applied least).
fn at_fault(records: &[&ReplicationCycle]) -> String {
    let worst = records
        .iter()
        .filter(|r| r.at_fault_unreceived.is_some() || r.at_fault_unapplied.is_some())
        .max_by_key(|r| (r.at_fault_unreceived, r.at_fault_unapplied));
    let show = |n: Option<u64>| n.map_or("–".to_owned(), |n| n.to_string());
    match worst {
        Some(r) => format!("{} / {}", show(r.at_fault_unreceived), show(r.at_fault_unapplied)),
        None => "–".into(),
    }
}

/// One of the primary's synchronous replication counters, each cycle's
/// in order (once when all agree); `–` for asynchronous replication,
/// cycles that read none, and engines that count none (PostgreSQL).
fn counter(records: &[&ReplicationCycle], get: fn(&SyncCycle) -> Option<u64>) -> String {
    let counted: Vec<u64> = records.iter().filter_map(|r| r.sync.as_ref().and_then(get)).collect();
    match counted.as_slice() {
        [] => "–".into(),
        [first, rest @ ..] if rest.iter().all(|n| n == first) => first.to_string(),
        all => all.iter().map(u64::to_string).collect::<Vec<_>>().join("; "),
    }
}

/// Whether synchronous replication fell back in any cycle, flagged, with
/// the cycles; `no` when every cycle that read it found it held; `–` for
/// asynchronous replication and when no cycle read it.
fn fell_back(c: &CellReport) -> String {
    let cycles = |pick: fn(&SyncCycle) -> bool| -> Vec<String> {
        c.cycle_details
            .iter()
            .enumerate()
            .filter(|(_, d)| d.replication.as_ref().and_then(|r| r.sync.as_ref()).is_some_and(pick))
            .map(|(i, _)| (i + 1).to_string())
            .collect()
    };
    let fell = cycles(|s| s.fell_back);
    let off = cycles(|s| !s.on);
    let list = |v: &[String]| format!("cycle{} {}", if v.len() > 1 { "s" } else { "" }, v.join(", "));
    match (fell.is_empty(), off.is_empty()) {
        (false, true) => format!("**✗ yes ({})**", list(&fell)),
        (false, false) => format!("**✗ yes ({}; off at the fault in {})**", list(&fell), list(&off)),
        _ if records(c).any(|r| r.sync.is_some()) => "no".into(),
        _ => "–".into(),
    }
}

fn shared_name(c: &CellReport) -> String {
    format!("`{}` × `{}`", c.strategy, c.fault)
}

/// What a shared-storage cell measured: the commits acknowledged after
/// the host was lost, per cycle.
fn acked_after(c: &CellReport) -> String {
    let counts: Vec<String> = records(c).filter_map(|r| r.acked_after_loss).map(|n| n.to_string()).collect();
    if counts.is_empty() {
        "no commit count after the loss".into()
    } else {
        format!("commits acknowledged after the loss: {}", counts.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::markdown::tests::sample_report;
    use crate::{CycleReport, Verdict};

    /// A replicated cell with one cycle per record.
    fn cell(strategy: &str, fault: &str, family: Family, records: Vec<ReplicationCycle>) -> CellReport {
        let mut c = sample_report().cells[0].clone();
        let template: CycleReport = c.cycle_details[0].clone();
        c.strategy = strategy.into();
        c.fault = fault.into();
        c.family = Some(family);
        c.cycles = records.len() as u32;
        c.verdicts = vec![Verdict::Intact; records.len()];
        c.cycle_details =
            records.into_iter().map(|r| CycleReport { replication: Some(r), ..template.clone() }).collect();
        c
    }

    fn mariadb(mode: &str, samples: u32, max: (u64, u64), at_fault: (u64, u64)) -> ReplicationCycle {
        ReplicationCycle {
            mode: mode.into(),
            lag_unit: "transactions".into(),
            lag_samples: samples,
            lag_max_unreceived: max.0,
            lag_max_unapplied: max.1,
            at_fault_unreceived: Some(at_fault.0),
            at_fault_unapplied: Some(at_fault.1),
            host_lost_after_ms: Some(0.0),
            rpo_s: Some(0.0),
            acked_after_loss: Some(0),
            ..ReplicationCycle::default()
        }
    }

    fn semisync(acknowledged: u64, unacknowledged: u64, on: bool) -> ReplicationCycle {
        let fell_back = !on || unacknowledged > 0;
        ReplicationCycle {
            sync: Some(SyncCycle {
                on,
                acknowledged: Some(acknowledged),
                unacknowledged: Some(unacknowledged),
                fell_back,
            }),
            ..mariadb("sync", 10, (2, 40), (1, 3))
        }
    }

    /// A run of every replicated kind: MariaDB async, semi-sync that held
    /// and semi-sync that fell back, PostgreSQL synchronous streaming (one
    /// cycle with no lag sample), and the shared GlusterFS volume.
    fn replicated_report() -> Report {
        let mut report = sample_report();
        let async_ = cell(
            "replica-async",
            "host-loss",
            Family::Replicated,
            vec![mariadb("async", 14, (300, 900), (0, 12)), mariadb("async", 15, (120, 700), (3, 40))],
        );
        let held = cell(
            "replica-semisync",
            "host-loss",
            Family::Replicated,
            vec![semisync(591, 0, true), semisync(597, 0, true)],
        );
        let fell = cell(
            "replica-semisync",
            "partition-failover",
            Family::Replicated,
            vec![semisync(591, 0, true), semisync(600, 12, false)],
        );
        let postgres = |samples: u32, at_fault: Option<u64>| ReplicationCycle {
            mode: "sync".into(),
            lag_unit: "WAL bytes".into(),
            lag_samples: samples,
            lag_max_unreceived: if samples > 0 { 1312 } else { 0 },
            lag_max_unapplied: if samples > 0 { 4096 } else { 0 },
            at_fault_unreceived: at_fault,
            at_fault_unapplied: at_fault,
            sync: Some(SyncCycle { on: true, ..SyncCycle::default() }),
            ..ReplicationCycle::default()
        };
        let mut streaming =
            cell("streaming-sync", "host-loss", Family::Replicated, vec![postgres(0, None), postgres(9, Some(0))]);
        streaming.workload = "postgres".into();
        let gluster = |acked| ReplicationCycle {
            mode: "sync".into(),
            lag_unit: NO_LAG.into(),
            host_lost_after_ms: Some(169.5),
            rpo_s: Some(0.0),
            acked_after_loss: Some(acked),
            ..ReplicationCycle::default()
        };
        let shared = cell("glusterfs-replica", "storage-node-loss", Family::Shared, vec![gluster(596), gluster(754)]);
        report.cells.extend([async_, held, fell, streaming, shared]);
        report
    }

    #[test]
    fn async_cells_show_lag_and_no_sync_figures() {
        let md = markdown(&replicated_report());
        assert!(md.starts_with("\n## Replication\n\n| strategy | fault | mode |"), "{md}");
        assert!(
            md.contains(
                "| mariadb / replica-async | host-loss | async | transactions | 29 | 300 / 900 | 3 / 40 | – | – | – |"
            ),
            "sampled maxima over the cycles, the worst cycle at the fault, no sync columns: {md}"
        );
        assert!(md.contains("transactions for MariaDB, WAL bytes for PostgreSQL"), "{md}");
        assert!(md.contains("then the sampler waits 200 ms"), "{md}");
    }

    #[test]
    fn a_semisync_fallback_is_flagged_and_one_that_held_is_not() {
        let report = replicated_report();
        let md = markdown(&report);
        assert!(
            md.contains("| mariadb / replica-semisync | host-loss | sync | transactions | 20 | 2 / 40 | 1 / 3 | 591; 597 | 0 | no |"),
            "{md}"
        );
        assert!(
            md.contains(
                "| mariadb / replica-semisync | partition-failover | sync | transactions | 20 | 2 / 40 | 1 / 3 | 591; 600 \
                 | 0; 12 | **✗ yes (cycle 2; off at the fault in cycle 2)** |"
            ),
            "{md}"
        );
        let html = crate::html::render(&report);
        assert!(html.contains("<h2>Replication</h2>"), "{html}");
        assert!(
            html.contains("<td class=\"inconsistent\">✗ yes (cycle 2; off at the fault in cycle 2)</td></tr>"),
            "the fallback stands out as in the other tables: {html}"
        );
        assert!(html.contains("<td>no</td></tr>"), "{html}");
        // Unacknowledged commits with semi-sync still on are a fallback too.
        let fell = cell(
            "replica-semisync",
            "host-loss",
            Family::Replicated,
            vec![semisync(10, 0, true), semisync(20, 3, true)],
        );
        assert!(table(&[&fell]).contains("| 10; 20 | 0; 3 | **✗ yes (cycle 2)** |"), "{}", table(&[&fell]));
        // A cycle that ended before replication was recorded keeps its number.
        let mut gap = fell.clone();
        gap.cycle_details[0].replication = None;
        gap.cycle_details.push(gap.cycle_details[1].clone());
        assert!(table(&[&gap]).contains("| 20 | 3 | **✗ yes (cycles 2, 3)** |"), "{}", table(&[&gap]));
    }

    #[test]
    fn what_was_not_measured_is_a_dash_and_shared_storage_is_named_under_the_table() {
        let md = markdown(&replicated_report());
        assert!(
            md.contains(
                "| postgres / streaming-sync | host-loss | sync | WAL bytes | 9 | 1312 / 4096 | 0 / 0 | – | – | no |"
            ),
            "PostgreSQL counts no semi-sync commits: {md}"
        );
        assert!(md.contains("PostgreSQL's primary keeps no such counters"), "{md}");
        assert!(!md.contains("| glusterfs-replica"), "no lag to show: {md}");
        assert!(
            md.contains(
                "shared storage, replicated below the database, has no replica lag to sample: `glusterfs-replica` × \
                 `storage-node-loss` (commits acknowledged after the loss: 596; 754)."
            ),
            "{md}"
        );
        let nothing = cell(
            "replica-async",
            "process-kill",
            Family::Replicated,
            vec![ReplicationCycle {
                mode: "async".into(),
                lag_unit: "transactions".into(),
                ..ReplicationCycle::default()
            }],
        );
        assert!(
            table(&[&nothing])
                .contains("| replica-async | process-kill | async | transactions | 0 | – | – | – | – | – |")
        );
        insta::assert_snapshot!(md);
    }

    #[test]
    fn only_shared_storage_has_no_table_and_no_replication_no_section() {
        let mut report = replicated_report();
        report.cells.retain(|c| c.family != Some(Family::Replicated));
        let md = markdown(&report);
        assert!(!md.contains("| strategy |") && md.contains("`glusterfs-replica` × `storage-node-loss`"), "{md}");
        let html = crate::html::render(&report);
        assert!(html.contains("<h2>Replication</h2>\n<ul class=\"details\">"), "{html}");
        assert_eq!(markdown(&sample_report()), "");
        assert!(!crate::markdown::render(&sample_report()).contains("## Replication"));
        assert!(!crate::html::render(&sample_report()).contains("<h2>Replication</h2>"));
    }
}
