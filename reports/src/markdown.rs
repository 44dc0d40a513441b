//! `report.md`: the verdict matrix and the per-cell metrics as Markdown
//! tables, readable in a terminal, a pull request or a wiki.

use crate::bench::{BenchReport, ETCD_P99_LIMIT_MS, IoResult, Profile};
use crate::names::distinct;
use crate::{BackupSummary, CellReport, Report, Unsupported, Verdict};
use std::fmt::Write;

/// Renders the whole report.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let env = &report.environment;
    let verdict = if report.passed() { "PASS" } else { "FAIL" };
    let _ = writeln!(out, "# crashlab report: {} ({verdict})\n", report.scenario);
    let _ = writeln!(
        out,
        "Run `{}`, seed {}, {} cells, {:.1} s. Docker {} (API {}), kernel {}, storage driver {}, host filesystem {}, {} CPUs, crashlab {}.\n",
        report.run_id,
        report.seed,
        report.cells.len(),
        report.duration_s,
        env.docker_version,
        env.docker_api_version,
        env.kernel,
        env.storage_driver,
        env.host_filesystem,
        env.cpus,
        env.crashlab_version,
    );
    if let Some(execution) = &report.execution
        && report.merged.is_none()
    {
        let _ = writeln!(out, "{}\n", execution_line(execution, report.cells.len()));
    }
    if let Some(selection) = report.execution.as_ref().and_then(|e| e.filter.as_ref()) {
        let _ = writeln!(out, "{}\n", selection_line(selection));
    }
    if let Some(merged) = &report.merged {
        out.push_str(&merged_section(merged));
    }
    out.push_str(&crate::summary::markdown(report));
    let workloads =
        report.cells.iter().map(|c| c.workload.as_str()).chain(report.unsupported.iter().map(|u| u.workload.as_str()));
    for workload in distinct(workloads) {
        let cells: Vec<&CellReport> = report.cells.iter().filter(|c| c.workload == workload).collect();
        let unsupported: Vec<&Unsupported> = report.unsupported.iter().filter(|u| u.workload == workload).collect();
        let _ = writeln!(out, "## {workload}: verdicts\n");
        out.push_str(&matrix_with(&cells, &unsupported));
        out.push_str(&unsupported_reasons(&unsupported));
        out.push('\n');
    }
    if !report.cells.is_empty() || (report.bench.is_none() && report.explore.is_none()) {
        out.push_str("## Metrics\n\n");
        out.push_str(&metrics(&report.cells));
    }
    out.push_str(&crate::hosts::markdown(report));
    out.push_str(&crate::replication::markdown(report));
    out.push_str(&backups_section(&report.cells));
    out.push_str(&volume_drivers_section(&report.cells));
    if let Some(bench) = &report.bench {
        out.push_str(&bench_section(bench));
    }
    out.push_str(&crash_states_section(&report.cells));
    if let Some(explore) = &report.explore {
        out.push_str(&crate::schedules::markdown(explore));
    }
    let failing: Vec<&CellReport> =
        report.cells.iter().filter(|c| c.cycle_details.iter().any(|d| !d.detail.is_empty())).collect();
    if !failing.is_empty() {
        out.push_str("\n## Details\n\n");
        for cell in failing {
            for (i, cycle) in cell.cycle_details.iter().enumerate() {
                if !cycle.detail.is_empty() {
                    let _ = writeln!(
                        out,
                        "- {}/{}/{} cycle {}: **{}**: {}",
                        cell.workload,
                        cell.strategy,
                        cell.fault,
                        i + 1,
                        cycle.verdict,
                        cycle.detail
                    );
                }
            }
        }
    }
    out
}

/// How the run executed its cells, in a sentence.
pub fn execution_line(e: &crate::Execution, cells: usize) -> String {
    let limits = match (e.cpus, e.memory_bytes) {
        (None, None) => "no CPU or memory limit per container".to_owned(),
        (cpus, memory) => format!(
            "each workload container limited to {}",
            [
                cpus.map(|c| format!("{c} CPU{}", if c == 1.0 { "" } else { "s" })),
                memory.map(|m| format!("{} MiB of memory", m >> 20))
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" and ")
        ),
    };
    let shard = match &e.partition {
        Some(p) => format!("; shard `{p}`: {cells} of the plan's {} cells", e.plan.len()),
        None => String::new(),
    };
    let jobs = if e.jobs <= 1 { "one cell at a time".to_owned() } else { format!("{} cells at a time", e.jobs) };
    let stopped = match &e.interrupted {
        Some(signal) => format!("; stopped by {signal} after {cells} of the plan's {} cells", e.plan.len()),
        None => String::new(),
    };
    format!("{jobs}, {limits}{shard}{stopped}.")
}

/// The `--filter` of a run in bold, so that its report never reads as one
/// of the whole matrix.
pub fn selection_line(s: &crate::Selection) -> String {
    format!(
        "**Cells selected by `--filter '{}'`: {} of {}**; the scenario's other cells were not run.",
        s.expression.replace('`', "'"),
        s.selected,
        s.total
    )
}

/// The shards a merged report was made of, and what is missing.
fn merged_section(m: &crate::merge::Merged) -> String {
    let mut out =
        String::from("## Shards\n\n| shard | run | cells | s | how | environment |\n|---|---|---|---|---|---|\n");
    for s in &m.shards {
        let env = &s.environment;
        let _ = writeln!(
            out,
            "| {} | `{}` | {} | {:.1} | {} | Docker {}, kernel {}, {}, {}, {} CPUs |",
            s.partition.as_deref().unwrap_or("whole plan"),
            s.run_id,
            s.cells.len(),
            s.duration_s,
            execution_line(&crate::Execution { partition: None, ..s.execution.clone() }, 0).trim_end_matches('.'),
            env.docker_version,
            env.kernel,
            env.storage_driver,
            env.host_filesystem,
            env.cpus
        );
    }
    out.push('\n');
    let list = |what: &str, items: &[String]| {
        if items.is_empty() { String::new() } else { format!("- **{what}**: {}\n", items.join(", ")) }
    };
    out.push_str(&list("missing shards", &m.missing_shards));
    out.push_str(&list("missing cells", &m.missing_cells));
    out.push_str(&list("cells reported by more than one shard", &m.duplicate_cells));
    if !m.complete() {
        out.push('\n');
    }
    out
}

/// The crash states each cycle explored (`crash-states`): per crash point,
/// states checked and failed, and the first failing state described.
/// Empty when no cycle explored any.
pub fn crash_states_section(cells: &[CellReport]) -> String {
    let mut rows = String::new();
    let mut failures = String::new();
    for cell in cells {
        for (i, cycle) in cell.cycle_details.iter().enumerate() {
            let Some(explore) = &cycle.explore else { continue };
            for point in &explore.points {
                let worst = match &point.error {
                    Some(e) => format!("error: {e}"),
                    None => Verdict::worst(point.states.iter().map(|s| s.verdict))
                        .map_or_else(|| "none checked".to_owned(), |v| v.to_string()),
                };
                let per_state = if point.states.is_empty() { 0.0 } else { point.ms / point.states.len() as f64 };
                let _ = writeln!(
                    rows,
                    "| {}/{}/{} | {} | {} ({:.0} ms) | {} ({} file{}, {} B) | {}{} | {} | {} | {} | {:.0} |",
                    cell.workload,
                    cell.strategy,
                    cell.fault,
                    i + 1,
                    point.at,
                    point.at_ms,
                    point.ops,
                    point.files,
                    if point.files == 1 { "" } else { "s" },
                    point.bytes,
                    point.distinct,
                    if point.sampled { " (sampled)" } else { "" },
                    point.states.len(),
                    point.failed(),
                    worst,
                    per_state
                );
                if let Some(f) = &point.first_failure {
                    let _ = writeln!(
                        failures,
                        "- {}/{}/{} cycle {}, {}: state `{}` is **{}**: {}; {}",
                        cell.workload,
                        cell.strategy,
                        cell.fault,
                        i + 1,
                        point.at,
                        f.id,
                        f.verdict,
                        f.detail,
                        f.dropped
                    );
                    if let Some(replay) = &f.replay {
                        let _ = writeln!(failures, "  - replay: `{replay}`");
                    }
                }
            }
        }
    }
    if rows.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "\n## Crash states\n\n| cell | cycle | crash point (into the load) | unsynced ops (files, bytes) | distinct states | checked | failed | worst | ms per state |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    out.push_str(&rows);
    if !failures.is_empty() {
        out.push_str("\nFirst failing state of each point:\n\n");
        out.push_str(&failures);
    }
    out
}

/// The strategy × fault matrix of one workload's cells. A cell that missed
/// its expectation shows what was expected.
pub fn matrix(cells: &[&CellReport]) -> String {
    matrix_with(cells, &[])
}

/// [`matrix`], with the pairs that were not run shown as `n/a`; see
/// [`unsupported_reasons`] for the why.
pub fn matrix_with(cells: &[&CellReport], unsupported: &[&Unsupported]) -> String {
    let strategies =
        distinct(cells.iter().map(|c| c.strategy.as_str()).chain(unsupported.iter().map(|u| u.strategy.as_str())));
    let faults = distinct(cells.iter().map(|c| c.fault.as_str()).chain(unsupported.iter().map(|u| u.fault.as_str())));
    let mut out = String::new();
    let _ = writeln!(out, "| strategy | {} |", faults.join(" | "));
    let _ = writeln!(out, "|---|{}", "---|".repeat(faults.len()));
    for strategy in &strategies {
        let row: Vec<String> = faults
            .iter()
            .map(|fault| {
                cells
                    .iter()
                    .find(|c| c.strategy == *strategy && c.fault == *fault)
                    .map(|c| verdict_cell(c))
                    .or_else(|| {
                        unsupported.iter().any(|u| u.strategy == *strategy && u.fault == *fault).then(|| "n/a".into())
                    })
                    .unwrap_or_default()
            })
            .collect();
        let _ = writeln!(out, "| {strategy} | {} |", row.join(" | "));
    }
    out
}

/// Why each `n/a` of a matrix was not run, one line per reason with the
/// pairs it covers; empty when everything ran.
pub fn unsupported_reasons(unsupported: &[&Unsupported]) -> String {
    let mut out = String::new();
    for reason in distinct(unsupported.iter().map(|u| u.reason.as_str())) {
        let pairs: Vec<String> = unsupported
            .iter()
            .filter(|u| u.reason == reason)
            .map(|u| format!("{} × {}", u.strategy, u.fault))
            .collect();
        let _ = writeln!(out, "- n/a ({}): {reason}", pairs.join(", "));
    }
    if !out.is_empty() {
        out.insert(0, '\n');
    }
    out
}

fn verdict_cell(cell: &CellReport) -> String {
    if cell.passed {
        cell.verdict.to_string()
    } else {
        format!("**{}** ✗ (expected {})", cell.verdict, cell.expected)
    }
}

/// One row a cell: throughput, latency, recovery and write counts.
pub fn metrics(cells: &[CellReport]) -> String {
    let mut out = String::from(
        "| workload | strategy | fault | verdict | acked | lost | in doubt | violations | tps | p50 ms | p99 ms | max ms | recovery p50 ms | recovery max ms |\n\
         |---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for c in cells {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.1} | {:.0} | {:.0} |",
            c.workload,
            c.strategy,
            c.fault,
            c.verdict,
            c.acked_writes,
            c.lost_acked_writes,
            c.in_doubt_writes,
            c.invariant_violations,
            c.throughput_tps,
            c.latency_ms.p50,
            c.latency_ms.p99,
            c.latency_ms.max,
            c.recovery_ms.p50,
            c.recovery_ms.max,
        );
    }
    out
}

/// The backup strategies side by side: what a host loss cost (RPO), how
/// long the way back took (RTO), what the backups cost and the stall they
/// caused, and which methods restored consistently. Empty when no cell
/// took backups.
pub fn backups_section(cells: &[CellReport]) -> String {
    let cells: Vec<&CellReport> = cells.iter().filter(|c| c.backup.is_some()).collect();
    if cells.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n## Backups\n\n");
    out.push_str(&backups_table(&cells));
    out.push_str(
        "\nRPO: acknowledged commits lost to the host loss (worst cycle) and seconds from the last surviving \
         acknowledged commit to the fault. Restore: new storage with the backup on it, and in brackets the parts \
         the method timed (fetch: the backup copied there; prepare: the tool made it consistent; replay: the log \
         applied before the server starts; replay in recovery: the server replaying the archive as it starts, \
         timed by its own log, after the restore and within the RTO). RTO: from the fault to the first successful \
         query on the restored data (restore included). Stall: commits per second while a backup ran against outside backups, and commit \
         latency of transactions that overlapped a backup (p99 of the worst cycle) against the others.\n",
    );
    let _ = writeln!(out, "\n{}", consistency_sentence(&cells));
    out
}

/// The volume drivers of the `volume:` strategies: driver, options and
/// the scope each declared. Empty when no cell used one.
pub fn volume_drivers_section(cells: &[CellReport]) -> String {
    let mut rows: Vec<String> = Vec::new();
    for cell in cells {
        let Some(v) = &cell.volume_driver else { continue };
        let options = if v.options.is_empty() { "none".to_owned() } else { format!("`{}`", v.options.join(",")) };
        let device = v.loop_device.as_deref().map_or_else(|| "no".to_owned(), |d| format!("yes ({d} bytes)"));
        let row = format!("| {} | {} | {options} | {} | {device} |\n", cell.strategy, v.driver, v.scope);
        if !rows.contains(&row) {
            rows.push(row);
        }
    }
    if rows.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "\n## Volume drivers\n\n| strategy | driver | options | scope | loop device made by crashlab |\n|---|---|---|---|---|\n",
    );
    rows.iter().for_each(|r| out.push_str(r));
    out
}

/// The table of [`backups_section`].
pub fn backups_table(cells: &[&CellReport]) -> String {
    let mut out = String::from(
        "| workload | strategy | fault | verdict | RPO commits | RPO s | restore ms | RTO ms p50 / max | backups | backup ms p50 / max | backup size | tps in / out backups | p99 ms in / out | max ms in / out | consistent restores | tool check |\n\
         |---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for c in cells {
        let Some(b) = &c.backup else { continue };
        let or_dash = |v: Option<String>| v.unwrap_or_else(|| "–".into());
        let failed = if b.failed_backups > 0 { format!(" (+{} failed)", b.failed_backups) } else { String::new() };
        let restored = b.restores > 0;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {}{failed} | {:.0} / {:.0} | {} | {:.0} / {:.0} | {:.1} / {:.1} | {:.1} / {:.1} | {} | {} |",
            c.workload,
            c.strategy,
            c.fault,
            c.verdict,
            or_dash(b.rpo_commits_max.map(|n| n.to_string())),
            or_dash(b.rpo_s_max.map(|s| format!("{s:.2}"))),
            or_dash(restored.then(|| restore_ms(b))),
            or_dash(restored.then(|| format!("{:.0} / {:.0}", b.rto_ms.p50, b.rto_ms.max))),
            b.backups,
            b.duration_ms.p50,
            b.duration_ms.max,
            backup_size(b),
            b.stall.window_tps,
            b.stall.outside_tps,
            b.stall.window_p99_ms,
            b.stall.outside_p99_ms,
            b.stall.window_max_ms,
            b.stall.outside_max_ms,
            or_dash(restored.then(|| format!("{} of {}", b.consistent_restores, b.restores))),
            tool_check(b),
        );
    }
    out
}

/// The restore's median, and its parts' medians when the method timed
/// them: `4012 (fetch 812, prepare 1190, replay 1911)`.
fn restore_ms(b: &BackupSummary) -> String {
    let total = format!("{:.0}", b.restore_ms.p50);
    if b.restore_steps.is_empty() {
        return total;
    }
    let parts: Vec<String> = b.restore_steps.iter().map(|s| format!("{} {:.0}", s.step, s.ms.p50)).collect();
    format!("{total} ({})", parts.join(", "))
}

/// A backup's size: a whole copy's median, a repository's growth per
/// backup (median / largest) and its final size, or `shared` for a
/// snapshot that copies nothing.
fn backup_size(b: &BackupSummary) -> String {
    let mib = |bytes: f64| figure(bytes / f64::from(1 << 20));
    match b.repo_bytes_max {
        Some(repo) => format!("+{} / +{} MiB a backup, repo {} MiB", mib(b.bytes.p50), mib(b.bytes.max), mib(repo)),
        None if b.bytes.max > 0.0 => format!("{} MiB", mib(b.bytes.p50)),
        None => "shared".into(),
    }
}

/// The backup tool's own checks: `–` without one, a flag when one failed.
fn tool_check(b: &BackupSummary) -> String {
    match (b.tool_checks, b.tool_checks - b.tool_checks_passed.min(b.tool_checks)) {
        (0, _) => "–".into(),
        (n, 0) => format!("{n} of {n} passed"),
        (n, failed) => format!("**✗ {failed} of {n} failed**"),
    }
}

/// Which backup methods were application-consistent in practice: every
/// restore started and passed the integrity check and the invariants.
pub fn consistency_sentence(cells: &[&CellReport]) -> String {
    let mut consistent = Vec::new();
    let mut not = Vec::new();
    let mut untested = Vec::new();
    for c in cells {
        let Some(b) = &c.backup else { continue };
        let name = format!("{}/{}", c.workload, c.strategy);
        if b.restores == 0 {
            untested.push(name);
        } else if b.consistent_restores == b.restores {
            consistent.push(format!("{name} ({} of {} restores)", b.consistent_restores, b.restores));
        } else {
            not.push(format!("{name} ({} of {} restores failed)", b.restores - b.consistent_restores, b.restores));
        }
    }
    let list = |v: &[String]| if v.is_empty() { "none".to_owned() } else { v.join(", ") };
    let mut out = format!(
        "Application-consistent in practice (every restore started and passed the integrity check): {}. \
         Not: {}.",
        list(&consistent),
        list(&not)
    );
    if !untested.is_empty() {
        let _ = write!(out, " Not restored in this run: {}.", untested.join(", "));
    }
    out
}

/// The storage benchmark: how it ran, the side-by-side table, the check
/// against fio and any backend that failed.
pub fn bench_section(bench: &BenchReport) -> String {
    let mut out = String::from("## Storage benchmark\n\n");
    let _ = writeln!(
        out,
        "Each IO profile ran {} times per backend with crashlab's agent and {} times with fio, alternating, \
         {:.1} s a run ({}), in the same container on the same mount; figures are medians. Each round runs both tools back to back; a profile is flagged when the \
         median over rounds of the agent's headline figure divided by fio's is more than {:.0} % from 1 \
         (the range of the rounds' ratios is beside it).\n",
        bench.rounds,
        if bench.io.iter().any(|r| r.fio.is_some()) { bench.rounds } else { 0 },
        bench.seconds,
        bench.files(),
        bench.tolerance_pct,
    );
    out.push_str("| backend | what |\n|---|---|\n");
    for s in &bench.strategies {
        let _ = writeln!(out, "| {} | {} |", s.name, s.kind);
    }
    out.push('\n');
    out.push_str(&bench_table(bench));
    out.push_str("\n### crashlab agent vs fio\n\n");
    out.push_str(&bench_comparison(bench));
    let etcd = etcd_check(bench);
    if !etcd.is_empty() {
        out.push_str("\n### etcd disk check\n\n");
        out.push_str(&etcd);
    }
    if !bench.errors.is_empty() {
        out.push_str("\n### Failures\n\n");
        for e in &bench.errors {
            let _ = writeln!(out, "- {} ({}): {}", e.strategy, e.stage, e.detail);
        }
    }
    out
}

/// One row per backend: each profile's headline figure (and fsync
/// latency) from the agent, and the workload's throughput and latency.
pub fn bench_table(bench: &BenchReport) -> String {
    let profiles = distinct_profiles(bench);
    let workloads = distinct(bench.workload.iter().map(|w| w.workload.as_str()));
    let mut head = String::from("| backend |");
    let mut rule = String::from("|---|");
    for p in &profiles {
        let _ = write!(head, " {p} {} |", p.headline().unit());
        rule.push_str("---:|");
        if *p == Profile::Fsync4k {
            head.push_str(" fsync p50 µs | fsync p99 µs |");
            rule.push_str("---:|---:|");
        }
        if *p == Profile::EtcdFdatasync {
            head.push_str(" fdatasync p99 ms |");
            rule.push_str("---:|");
        }
    }
    for w in &workloads {
        let _ = write!(head, " {w} tps | {w} p50 ms | {w} p99 ms |");
        rule.push_str("---:|---:|---:|");
    }
    let mut out = format!("{head}\n{rule}\n");
    for s in &bench.strategies {
        let mut row = format!("| {} |", s.name);
        for p in &profiles {
            let r = bench.io.iter().find(|r| r.strategy == s.name && r.profile == *p);
            match r {
                Some(r) => {
                    let _ = write!(row, " {} |", figure(r.headline()));
                    if *p == Profile::Fsync4k {
                        let _ = write!(row, " {} | {} |", figure(r.agent.p50_us), figure(r.agent.p99_us));
                    }
                    if *p == Profile::EtcdFdatasync {
                        let _ = write!(row, " {} |", ms(r.agent.p99_us / 1e3));
                    }
                }
                None => row.push_str(match p {
                    Profile::Fsync4k => " – | – | – |",
                    Profile::EtcdFdatasync => " – | – |",
                    _ => " – |",
                }),
            }
        }
        for w in &workloads {
            match bench.workload.iter().find(|x| x.strategy == s.name && x.workload == *w) {
                Some(x) => {
                    let _ =
                        write!(row, " {:.0} | {:.2} | {:.2} |", x.throughput_tps, x.latency_ms.p50, x.latency_ms.p99);
                }
                None => row.push_str(" – | – | – |"),
            }
        }
        let _ = writeln!(out, "{row}");
    }
    out
}

/// Every profile's agent and fio medians, their ratio and the verdict.
pub fn bench_comparison(bench: &BenchReport) -> String {
    let mut out = String::from(
        "| backend | profile | crashlab | fio | ratio | p50 µs crashlab / fio | p99 µs crashlab / fio | check |\n\
         |---|---|---:|---:|---:|---:|---:|---|\n",
    );
    for r in &bench.io {
        let unit = r.profile.headline().unit();
        let (fio, p50, p99) = match &r.fio {
            Some(f) => (
                format!("{} {unit}", figure(r.profile.headline().of(f))),
                format!("{} / {}", figure(r.agent.p50_us), figure(f.p50_us)),
                format!("{} / {}", figure(r.agent.p99_us), figure(f.p99_us)),
            ),
            None => ("–".into(), figure(r.agent.p50_us), figure(r.agent.p99_us)),
        };
        let check = match (r.agrees, r.ratio) {
            (Some(true), _) => "ok".to_owned(),
            (Some(false), Some(ratio)) => format!("**✗ {:+.0} %**", (ratio - 1.0) * 100.0),
            (Some(false), None) => "**✗ no fio figure**".to_owned(),
            (None, _) => "not checked".to_owned(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} {unit} | {fio} | {} | {p50} | {p99} | {check} |",
            r.strategy,
            r.profile,
            figure(r.headline()),
            ratio_cell(r),
        );
    }
    out
}

/// etcd's verdict on each backend that ran its check: the fdatasync
/// latencies both tools measured and whether the agent's p99 is under
/// etcd's limit; empty when no backend ran it.
pub fn etcd_check(bench: &BenchReport) -> String {
    let rows: Vec<&IoResult> = bench.io.iter().filter(|r| r.profile == Profile::EtcdFdatasync).collect();
    if rows.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "etcd's guidance: the 99th percentile of fdatasync latency in this check under {ETCD_P99_LIMIT_MS:.0} ms \
         (2,300-byte writes, each followed by fdatasync, as etcd's documentation runs fio: \
         `--rw=write --ioengine=sync --fdatasync=1 --bs=2300`).\n\n\
         | backend | fdatasyncs crashlab / fio | writes/s | fdatasync p50 ms | p99 ms crashlab / fio | max ms | etcd (p99 < {ETCD_P99_LIMIT_MS:.0} ms) |\n\
         |---|---:|---:|---:|---:|---:|---|\n"
    );
    for r in rows {
        let fio = |get: fn(&crate::bench::IoFigures) -> String| r.fio.as_ref().map_or("–".to_owned(), get);
        let verdict = match r.etcd_check() {
            Some(c) if c.passes => "pass".to_owned(),
            Some(c) => format!("**fail ({} ms)**", ms(c.p99_ms)),
            None => "–".to_owned(),
        };
        let _ = writeln!(
            out,
            "| {} | {} / {} | {} | {} | {} / {} | {} | {verdict} |",
            r.strategy,
            r.agent.syncs,
            fio(|f| f.syncs.to_string()),
            figure(r.agent.iops),
            ms(r.agent.p50_us / 1e3),
            ms(r.agent.p99_us / 1e3),
            fio(|f| ms(f.p99_us / 1e3)),
            ms(r.agent.max_us / 1e3),
        );
    }
    out
}

/// The median per-round ratio, and the range of the rounds' ratios when
/// there were several.
fn ratio_cell(r: &IoResult) -> String {
    let Some(ratio) = r.ratio else { return "–".into() };
    let lo = r.round_ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = r.round_ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if r.round_ratios.len() > 1 { format!("{ratio:.2} ({lo:.2}–{hi:.2})") } else { format!("{ratio:.2}") }
}

fn distinct_profiles(bench: &BenchReport) -> Vec<Profile> {
    let mut seen = Vec::new();
    for r in &bench.io {
        if !seen.contains(&r.profile) {
            seen.push(r.profile);
        }
    }
    seen
}

/// A benchmark figure: whole numbers from 100 up, two significant decimals
/// below.
fn figure(x: f64) -> String {
    if x >= 100.0 { format!("{x:.0}") } else { format!("{x:.2}") }
}

/// Milliseconds of a sync: microseconds still show below 1 ms, where
/// memory-backed storage answers.
fn ms(x: f64) -> String {
    if x < 1.0 { format!("{x:.3}") } else { figure(x) }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::*;

    #[test]
    fn driver_volumes_are_listed_once_with_their_scope() {
        let mut a = cell("volume:local,type=tmpfs,device=tmpfs", "restart", Verdict::DataGone, Verdict::DataGone, 0);
        a.volume_driver = Some(crate::VolumeDriver {
            driver: "local".into(),
            options: vec!["type=tmpfs".into(), "device=tmpfs".into()],
            scope: "local".into(),
            loop_device: None,
        });
        let mut b = a.clone();
        b.fault = "recreate".into();
        let plain = cell("named-volume", "restart", Verdict::Intact, Verdict::Intact, 0);
        let md = volume_drivers_section(&[a, b, plain.clone()]);
        assert_eq!(md.matches("| volume:local,type=tmpfs,device=tmpfs | local |").count(), 1, "{md}");
        assert!(md.contains("| `type=tmpfs,device=tmpfs` | local | no |"), "{md}");
        assert_eq!(volume_drivers_section(&[plain]), "");
    }

    fn cell(strategy: &str, fault: &str, verdict: Verdict, expected: Verdict, lost: u64) -> CellReport {
        CellReport {
            workload: "mariadb".into(),
            strategy: strategy.into(),
            fault: fault.into(),
            cycles: 1,
            verdict,
            verdicts: vec![verdict],
            expected,
            passed: verdict.meets(expected),
            acked_writes: 1000,
            lost_acked_writes: lost,
            in_doubt_writes: 4,
            invariant_violations: 0,
            throughput_tps: 333.3,
            latency_ms: LatencySummary { p50: 1.0, p95: 2.0, p99: 3.0, max: 9.5 },
            recovery_ms: RecoverySummary { p50: 500.0, max: 600.0 },
            cycle_details: vec![CycleReport {
                verdict,
                acked_writes: 1000,
                lost_acked_writes: lost,
                in_doubt_writes: 4,
                invariant_violations: 0,
                load_s: 3.0,
                recovery_ms: Some(500.0),
                cycle_ms: 4200.0,
                detail: if lost > 0 { format!("{lost} of 1000 acknowledged commits missing") } else { String::new() },
                faultfs: None,
                phases: PhaseTimes {
                    ready_ms: 300.0,
                    setup_ms: 40.0,
                    inject_ms: 60.0,
                    drain_ms: 5.0,
                    verify_ms: 30.0,
                    ..PhaseTimes::default()
                },
                backup: None,
                fired: None,
                explore: None,
                replication: None,
                timeline: Some(crate::timeline::tests::sample()),
                steps: Vec::new(),
                lost_acks_ms: None,
            }],
            fault_rules: vec![],
            backup: None,
            family: None,
            volume_driver: None,
        }
    }

    pub(crate) fn sample_report() -> Report {
        Report {
            schema_version: SCHEMA_VERSION,
            scenario: "smoke".into(),
            seed: 42,
            run_id: "r1".into(),
            started_at_unix: 0,
            duration_s: 12.0,
            environment: Environment::default(),
            cells: vec![
                cell("named-volume", "process-kill", Verdict::Intact, Verdict::Intact, 0),
                cell("named-volume", "restart", Verdict::LostWrites, Verdict::Intact, 7),
                cell("tmpfs", "process-kill", Verdict::DataGone, Verdict::DataGone, 0),
            ],
            unsupported: vec![Unsupported {
                workload: "mariadb".into(),
                strategy: "tmpfs".into(),
                fault: "disk-full".into(),
                reason: "tmpfs is memory: there is no disk to fill".into(),
            }],
            bench: None,
            execution: None,
            merged: None,
            compose: None,
            explore: None,
        }
    }

    #[test]
    fn matrix_shows_strategies_as_rows_and_flags_misses() {
        let md = render(&sample_report());
        assert!(md.starts_with("# crashlab report: smoke (FAIL)"));
        assert!(md.contains("| strategy | process-kill | restart |"));
        assert!(md.contains("| named-volume | intact | **lost-writes** ✗ (expected intact) |"));
        assert!(md.contains("| strategy | process-kill | restart | disk-full |"), "{md}");
        assert!(md.contains("| tmpfs | data-gone |  | n/a |"), "{md}");
        assert!(md.contains("\n- n/a (tmpfs × disk-full): tmpfs is memory: there is no disk to fill\n"), "{md}");
        assert!(md.contains("cycle 1: **lost-writes**: 7 of 1000 acknowledged commits missing"));
    }

    #[test]
    fn the_header_says_how_cells_ran_and_a_merge_lists_its_shards() {
        let mut report = sample_report();
        let plan = report.cells.iter().map(CellReport::id).collect();
        report.execution = Some(crate::Execution {
            jobs: 2,
            cpus: Some(1.0),
            memory_bytes: Some(1 << 30),
            partition: Some("hash:1/2".into()),
            plan,
            interrupted: None,
            filter: None,
        });
        let md = render(&report);
        assert!(
            md.contains(
                "\n2 cells at a time, each workload container limited to 1 CPU and 1024 MiB of memory; shard `hash:1/2`: 3 of the plan's 3 cells.\n"
            ),
            "{md}"
        );
        let merged = crate::merge::merge(vec![("a".into(), report)]).unwrap();
        let md = render(&merged);
        assert!(md.contains("| hash:1/2 | `r1` | 3 | 12.0 | 2 cells at a time, each workload container limited to 1 CPU and 1024 MiB of memory |"), "{md}");
        assert!(md.contains("- **missing shards**: hash:2/2\n"), "{md}");
    }

    #[test]
    fn the_header_says_which_signal_stopped_the_run_and_how_far_it_got() {
        let mut report = sample_report();
        let plan = report.cells.iter().map(CellReport::id).collect();
        report.cells.truncate(1);
        report.execution =
            Some(crate::Execution { jobs: 1, plan, interrupted: Some("SIGTERM".into()), ..Default::default() });
        let md = render(&report);
        assert!(
            md.contains("one cell at a time, no CPU or memory limit per container; stopped by SIGTERM after 1 of the plan's 3 cells.\n"),
            "{md}"
        );
    }

    #[test]
    fn markdown_snapshot() {
        insta::assert_snapshot!(render(&sample_report()));
    }

    #[test]
    fn a_repository_shows_its_growth_and_a_failed_tool_check_is_flagged() {
        let mut restic = cell("backup-restic", "host-loss", Verdict::LostWrites, Verdict::LostWrites, 3);
        let mib = f64::from(1 << 20);
        restic.backup = Some(BackupSummary {
            backups: 3,
            bytes: Spread { p50: 0.5 * mib, max: 40.0 * mib },
            repo_bytes_max: Some(41.0 * mib),
            tool_checks: 2,
            tool_checks_passed: 1,
            ..BackupSummary::default()
        });
        let mut tar = cell("backup-hot", "host-loss", Verdict::LostWrites, Verdict::LostWrites, 3);
        tar.backup = Some(BackupSummary {
            backups: 3,
            bytes: Spread { p50: 45.0 * mib, max: 45.0 * mib },
            ..Default::default()
        });
        let table = backups_table(&[&restic, &tar]);
        assert!(table.contains("| +0.50 / +40.00 MiB a backup, repo 41.00 MiB |"), "{table}");
        assert!(table.contains("| **✗ 1 of 2 failed** |"), "{table}");
        assert!(table.contains("| 45.00 MiB |") && table.ends_with("| – |\n"), "{table}");
    }

    #[test]
    fn a_restore_shows_its_timed_parts() {
        let mut mb = cell("binlog-stream", "host-loss", Verdict::Intact, Verdict::Intact, 2);
        let steps = [
            [("fetch", 800.0), ("prepare", 1200.0), ("replay", 1900.0)].as_slice(),
            [("fetch", 900.0), ("prepare", 1000.0)].as_slice(),
        ]
        .map(|c| c.iter().map(|(s, ms)| crate::RestoreStep { step: (*s).into(), ms: *ms }).collect::<Vec<_>>());
        mb.backup = Some(BackupSummary {
            restores: 2,
            restore_ms: Spread { p50: 4012.0, max: 4100.0 },
            restore_steps: crate::StepSpread::of(steps.iter().map(Vec::as_slice)),
            ..Default::default()
        });
        let table = backups_table(&[&mb]);
        assert!(table.contains("| 4012 (fetch 800, prepare 1000, replay 1900) |"), "{table}");
    }

    #[test]
    fn crash_states_list_each_point_and_describe_its_first_failure() {
        let mut report = sample_report();
        assert_eq!(crash_states_section(&report.cells), "", "no cycle explored");
        let state = |id: &str, verdict| StateReport { id: id.into(), verdict, ms: 1500.0 };
        report.cells[0].fault = "crash-states".into();
        report.cells[0].cycle_details[0].explore = Some(Exploration {
            points: vec![PointReport {
                at: "end of load".into(),
                at_ms: 1500.0,
                ops: 12,
                bytes: 40960,
                files: 2,
                unsynced_files: vec!["test.db: 10 writes, 40960 B".into()],
                candidates: 30,
                distinct: 9,
                sampled: false,
                states: vec![state("p0", Verdict::Intact), state("e0-drop{3}", Verdict::LostWrites)],
                first_failure: Some(StateFailure {
                    id: "e0-drop{3}".into(),
                    verdict: Verdict::LostWrites,
                    detail: "1 of 40 acknowledged commits missing".into(),
                    dropped: "drops unlink test.db-journal".into(),
                    replay: Some("crashlab replay /s/replays/1-abcd --cycle 1 --point 1 --state 'e0-drop{3}'".into()),
                }),
                error: None,
                ms: 3000.0,
            }],
        });
        let md = render(&report);
        assert!(
            md.contains("| mariadb/named-volume/crash-states | 1 | end of load (1500 ms) | 12 (2 files, 40960 B) | 9 | 2 | 1 | lost-writes | 1500 |"),
            "{md}"
        );
        assert!(
            md.contains(
                "- mariadb/named-volume/crash-states cycle 1, end of load: state `e0-drop{3}` is **lost-writes**: 1 of \
                 40 acknowledged commits missing; drops unlink test.db-journal"
            ),
            "{md}"
        );
        assert!(
            md.contains("  - replay: `crashlab replay /s/replays/1-abcd --cycle 1 --point 1 --state 'e0-drop{3}'`\n"),
            "{md}"
        );
        let explore = report.cells[0].cycle_details[0].explore.as_ref().unwrap();
        assert_eq!((explore.states(), explore.failed(), explore.worst()), (2, 1, Some(Verdict::LostWrites)));
    }

    #[test]
    fn first_seen_order_is_kept() {
        assert_eq!(distinct(["b", "a", "b", "c"].into_iter()), ["b", "a", "c"]);
    }
}
