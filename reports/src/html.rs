//! `report.html`: one self-contained page — inline CSS and SVG charts drawn
//! with plotters, no scripts, nothing fetched — with the verdict matrix
//! coloured by verdict, throughput, latency percentiles and recovery time
//! per strategy, the metrics table, the storage benchmark's charts and
//! tables when the report has one, and the environment and seed. Every
//! number on the page is a field of `report.json`; the charts say which.

use crate::bench::{BenchReport, Headline, IoResult, Profile};
use crate::markup::{accessible, esc, short};
use crate::{CellReport, Report, markdown};
use plotters::prelude::*;
use std::fmt::Write;

/// The shards of a merged report, and what is missing or duplicated.
fn shards_section(m: &crate::merge::Merged) -> String {
    let mut out = String::from(
        "<h2>Shards</h2>\n<table><caption>The shards joined into this report</caption><tr><th>shard</th><th>run</th><th>cells</th><th>s</th><th>how</th><th>environment</th></tr>\n",
    );
    for s in &m.shards {
        let env = &s.environment;
        let how = markdown::execution_line(&crate::Execution { partition: None, ..s.execution.clone() }, 0);
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{:.1}</td><td>{}</td><td>Docker {}, kernel {}, {}, {}, {} CPUs</td></tr>",
            esc(s.partition.as_deref().unwrap_or("whole plan")),
            esc(&s.run_id),
            s.cells.len(),
            s.duration_s,
            esc(how.trim_end_matches('.')),
            esc(&env.docker_version),
            esc(&env.kernel),
            esc(&env.storage_driver),
            esc(&env.host_filesystem),
            env.cpus
        );
    }
    out.push_str("</table>\n");
    for (what, items) in [
        ("missing shards", &m.missing_shards),
        ("missing cells", &m.missing_cells),
        ("cells reported by more than one shard", &m.duplicate_cells),
    ] {
        if !items.is_empty() {
            let _ = writeln!(out, "<p class=\"miss\"><b>{what}</b>: {}</p>", esc(&items.join(", ")));
        }
    }
    out
}

/// Renders the whole page.
pub fn render(report: &Report) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let status = if report.passed() { "PASS" } else { "FAIL" };
    let env = &report.environment;
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>crashlab report: {name} ({status})</title><style>{STYLE}</style></head><body>\n\
         <h1>crashlab report: {name} <span class=\"status {status_class}\">{status}</span></h1>\n\
         <p class=\"env\">Run <code>{run}</code> · {what} · {duration:.1} s · \
         Docker {dv} (API {api}) · kernel {kernel} · storage driver {driver} · host filesystem {fs} · \
         {cpus} CPUs · crashlab {version}</p>\n",
        name = esc(&report.scenario),
        status_class = status.to_lowercase(),
        run = esc(&report.run_id),
        what = match &report.bench {
            // A bench run has no cells and draws nothing at random.
            Some(bench) if report.cells.is_empty() => {
                format!("{} backends × {} profile runs", bench.strategies.len(), bench.io.len())
            }
            _ => format!("seed <b>{}</b> · {} cells", report.seed, report.cells.len()),
        },
        duration = report.duration_s,
        dv = esc(&env.docker_version),
        api = esc(&env.docker_api_version),
        kernel = esc(&env.kernel),
        driver = esc(&env.storage_driver),
        fs = esc(&env.host_filesystem),
        cpus = env.cpus,
        version = esc(&env.crashlab_version),
    );
    if let Some(execution) = report.execution.as_ref().filter(|_| report.merged.is_none()) {
        let _ = writeln!(out, "<p class=\"env\">{}</p>", esc(&markdown::execution_line(execution, report.cells.len())));
    }
    if let Some(selection) = report.execution.as_ref().and_then(|e| e.filter.as_ref()) {
        let _ = writeln!(
            out,
            "<p class=\"selection\"><b>Cells selected by <code>--filter '{}'</code>: {} of {}</b>; the scenario's other cells were not run.</p>",
            esc(&selection.expression),
            selection.selected,
            selection.total
        );
    }
    if let Some(merged) = &report.merged {
        out.push_str(&shards_section(merged));
    }
    out.push_str(&summary(report));
    for workload in distinct(report.cells.iter().map(|c| c.workload.as_str())) {
        let cells: Vec<&CellReport> = report.cells.iter().filter(|c| c.workload == workload).collect();
        let _ = writeln!(out, "<h2>{}: verdicts</h2>", esc(workload));
        out.push_str(&matrix(&cells));
        out.push_str(&charts(&cells));
        out.push_str(&timelines(workload, &cells));
    }
    if !report.cells.is_empty() || (report.bench.is_none() && report.explore.is_none()) {
        out.push_str(LEGEND);
        out.push_str("<h2>Metrics</h2>\n");
        out.push_str(&metrics_table(&report.cells));
    }
    out.push_str(&hosts_section(report));
    out.push_str(&replication_section(report));
    out.push_str(&backups_section(&report.cells));
    out.push_str(&volume_drivers_section(&report.cells));
    out.push_str(&crash_states_section(&report.cells));
    out.push_str(&explore_section(report));
    if let Some(bench) = &report.bench {
        out.push_str(&bench_section(bench));
    }
    let details: Vec<String> = report
        .cells
        .iter()
        .flat_map(|c| {
            c.cycle_details.iter().enumerate().filter(|(_, d)| !d.detail.is_empty()).map(move |(i, d)| {
                format!(
                    "<li><b>{}/{}/{}</b> cycle {}: <span class=\"v {}\">{}</span> {}</li>",
                    esc(&c.workload),
                    esc(&c.strategy),
                    esc(&c.fault),
                    i + 1,
                    d.verdict,
                    d.verdict,
                    esc(&d.detail)
                )
            })
        })
        .collect();
    if !details.is_empty() {
        let _ = write!(out, "<h2>Details</h2>\n<ul class=\"details\">\n{}\n</ul>\n", details.join("\n"));
    }
    out.push_str("</body></html>\n");
    out
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}\
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #ddd}\
.env{color:#555;font-size:.9em}.status{padding:.1em .5em;border-radius:4px;color:#fff}.pass{background:#2e7d32}.fail{background:#c62828}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.35em .6em;text-align:left}th{background:#f4f4f4}\
table.metrics td.n{text-align:right;font-variant-numeric:tabular-nums}table.metrics{font-size:.85em}\
.matrix td{min-width:9em;font-weight:600}.matrix small{display:block;font-weight:400;font-size:.8em}\
.intact{background:#c8e6c9}.lost-writes{background:#ffe0b2}.data-gone{background:#cfd8dc}.inconsistent{background:#ffcdd2}\
.corrupt{background:#ef9a9a}.error{background:#e1bee7}.miss{outline:3px solid #c62828;outline-offset:-3px}\
.v{padding:0 .3em;border-radius:3px}.legend span{display:inline-block;padding:.2em .6em;margin-right:.4em;border-radius:3px}\
figure{margin:0 0 1em 0;max-width:530px}figcaption{color:#555;font-size:.85em}.charts{display:flex;flex-wrap:wrap;gap:1em}\
caption{caption-side:top;text-align:left;color:#555;font-size:.85em;padding:.2em 0}";

const LEGEND: &str = "<p class=\"legend\"><span class=\"intact\">intact</span><span class=\"lost-writes\">lost-writes</span>\
<span class=\"data-gone\">data-gone</span><span class=\"inconsistent\">inconsistent</span><span class=\"corrupt\">corrupt</span>\
<span class=\"error\">error</span> — a red frame marks a cell worse than its expectation.</p>\n";

fn matrix(cells: &[&CellReport]) -> String {
    let strategies = distinct(cells.iter().map(|c| c.strategy.as_str()));
    let faults = distinct(cells.iter().map(|c| c.fault.as_str()));
    let mut out = String::from(
        "<table class=\"matrix\"><caption>Verdict per strategy (rows) and fault (columns); an empty cell was not \
         run</caption><tr><th>strategy</th>",
    );
    for f in &faults {
        let _ = write!(out, "<th>{}</th>", esc(f));
    }
    out.push_str("</tr>\n");
    for s in &strategies {
        let _ = write!(out, "<tr><th>{}</th>", esc(s));
        for f in &faults {
            match cells.iter().find(|c| c.strategy == *s && c.fault == *f) {
                Some(c) => {
                    let miss = if c.passed { "" } else { " miss" };
                    let expected =
                        if c.passed { String::new() } else { format!("<small>expected {}</small>", c.expected) };
                    let _ = write!(
                        out,
                        "<td class=\"{}{miss}\">{}{expected}<small>{} acked · {} lost</small></td>",
                        c.verdict, c.verdict, c.acked_writes, c.lost_acked_writes
                    );
                }
                None => out.push_str("<td></td>"),
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    out
}

fn charts(cells: &[&CellReport]) -> String {
    let strategies = distinct(cells.iter().map(|c| c.strategy.as_str()));
    let faults = distinct(cells.iter().map(|c| c.fault.as_str()));
    // A pair that was not run has no figure, and so no bar: a bar of no
    // height would read as a measured zero.
    let value = |s: &str, f: &str, get: fn(&CellReport) -> f64| {
        cells.iter().find(|c| c.strategy == s && c.fault == f).map_or(f64::NAN, |c| get(c))
    };
    let by_fault = |get: fn(&CellReport) -> f64| -> Vec<(String, Vec<f64>)> {
        faults.iter().map(|f| (f.to_string(), strategies.iter().map(|s| value(s, f, get)).collect())).collect()
    };
    let groups: Vec<String> = strategies.iter().map(|s| s.to_string()).collect();
    let mut out = String::from("<div class=\"charts\">\n");
    out.push_str(&figure(
        "Throughput (acknowledged commits/s)",
        "cells[].throughput_tps, per strategy and fault",
        &groups,
        &by_fault(|c| c.throughput_tps),
    ));
    // Latency: the worst cell of each strategy, so that one slow fault is
    // not averaged away.
    let worst = |get: fn(&CellReport) -> f64| -> Vec<f64> {
        strategies
            .iter()
            .map(|s| cells.iter().filter(|c| c.strategy == *s).map(|c| get(c)).fold(0.0, f64::max))
            .collect()
    };
    let latency = vec![
        ("p50".to_owned(), worst(|c| c.latency_ms.p50)),
        ("p95".to_owned(), worst(|c| c.latency_ms.p95)),
        ("p99".to_owned(), worst(|c| c.latency_ms.p99)),
        ("max".to_owned(), worst(|c| c.latency_ms.max)),
    ];
    out.push_str(&figure(
        "Commit latency (ms)",
        "cells[].latency_ms, the highest over each strategy's faults",
        &groups,
        &latency,
    ));
    let fault_groups: Vec<String> = faults.iter().map(|f| f.to_string()).collect();
    let recovery: Vec<(String, Vec<f64>)> = strategies
        .iter()
        .map(|s| (s.to_string(), faults.iter().map(|f| value(s, f, recovery_p50)).collect()))
        .collect();
    out.push_str(&figure(
        "Recovery time, p50 (ms)",
        "cells[].recovery_ms.p50, per fault and strategy",
        &fault_groups,
        &recovery,
    ));
    out.push_str("</div>\n");
    out
}

/// Each cell's cycle in time ([`crate::timeline`]): the cycle that
/// decided its verdict; none for cells without a timeline (reports written
/// before it existed).
fn timelines(workload: &str, cells: &[&CellReport]) -> String {
    let mut figures = String::new();
    for cell in cells {
        let Some((i, timeline)) = crate::timeline::chosen(cell) else {
            continue;
        };
        let title = format!("{} × {}, cycle {} of {}", cell.strategy, cell.fault, i + 1, cell.cycle_details.len());
        let _ = writeln!(
            figures,
            "<figure>{}<figcaption>from <code>cycle_details[{i}].timeline</code>; first write: {}</figcaption></figure>",
            timeline.svg(&title),
            esc(if timeline.first_write.is_empty() { "none" } else { &timeline.first_write })
        );
    }
    if figures.is_empty() {
        return String::new();
    }
    format!(
        "<h3>{}: in time</h3>\n<p class=\"env\">Each cell's cycle with its verdict (the first, when several have \
         it): acknowledged commits per second and their p99 latency per 100 ms through the load, the fault, the \
         recovery until the first successful query, the harness reading the data back, and the first write after \
         recovery.</p>\n{}<div class=\"charts\">\n{figures}</div>\n",
        esc(workload),
        crate::timeline::LEGEND
    )
}

/// A cell's median recovery time; none when no cycle came back (the
/// summary's 0 would draw as an instant recovery).
fn recovery_p50(c: &CellReport) -> f64 {
    if c.cycle_details.iter().any(|d| d.recovery_ms.is_some()) { c.recovery_ms.p50 } else { f64::NAN }
}

fn figure(title: &str, source: &str, groups: &[String], series: &[(String, Vec<f64>)]) -> String {
    format!(
        "<figure>{}<figcaption>from <code>{}</code></figcaption></figure>\n",
        grouped_bars(title, groups, series),
        esc(source)
    )
}

const PALETTE: [RGBColor; 6] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0x17, 0xbe, 0xcf),
];

/// A grouped bar chart as an SVG string: one group per entry of `groups`,
/// one bar per series within it (none for a NaN: no figure). When the
/// positive values span more than a factor of 20 (tmpfs beside a disk),
/// the axis is logarithmic, so that the small bars stay readable; the
/// title says so.
pub fn grouped_bars(title: &str, groups: &[String], series: &[(String, Vec<f64>)]) -> String {
    let mut svg = String::new();
    let values = || series.iter().flat_map(|(_, v)| v.iter().copied());
    let top = values().fold(0.0, f64::max);
    let bottom = values().filter(|v| *v > 0.0).fold(f64::INFINITY, f64::min);
    let log = top > 0.0 && top / bottom > 20.0;
    // Headroom above the tallest bar keeps the legend off the bars.
    let (y_min, y_max) = match (log, top > 0.0) {
        (true, _) => (bottom.log10().floor(), top.log10() + 1.0),
        (false, true) => (0.0, top * 1.5),
        (false, false) => (0.0, 1.0),
    };
    let scaled = |v: f64| if log { v.max(10f64.powf(y_min)).log10() } else { v };
    let title = if log { format!("{title}, log scale") } else { title.to_owned() };
    {
        let root = SVGBackend::with_string(&mut svg, (520, 300)).into_drawing_area();
        let drawn = (|| -> Result<(), Box<dyn std::error::Error + '_>> {
            root.fill(&WHITE)?;
            let mut chart = ChartBuilder::on(&root)
                .caption(&title, ("sans-serif", 16))
                .margin(8)
                .x_label_area_size(40)
                .y_label_area_size(55)
                .build_cartesian_2d(0f64..groups.len().max(1) as f64, y_min..y_max)?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(groups.len().max(1) * 2 + 1)
                .x_label_formatter(&|x| {
                    let i = x.floor() as usize;
                    let centred = (x - x.floor() - 0.5).abs() < 1e-6;
                    if centred && i < groups.len() { groups[i].clone() } else { String::new() }
                })
                .y_labels(if log { ((y_max - y_min).ceil() as usize) + 1 } else { 10 })
                .y_label_formatter(&|y| match log {
                    false => format!("{y:.0}"),
                    // Decades only: 10, 100, 1000, ...
                    true if (y - y.round()).abs() < 1e-9 => format!("{:.0}", 10f64.powf(y.round())),
                    true => String::new(),
                })
                .label_style(("sans-serif", 11))
                .draw()?;
            let k = series.len().max(1) as f64;
            let width = 0.8 / k;
            for (si, (name, values)) in series.iter().enumerate() {
                let color = PALETTE[si % PALETTE.len()];
                chart
                    .draw_series(values.iter().enumerate().filter(|(_, v)| !v.is_nan()).map(|(gi, &v)| {
                        let x0 = gi as f64 + 0.1 + si as f64 * width;
                        Rectangle::new([(x0, y_min), (x0 + width * 0.92, scaled(v))], color.filled())
                    }))?
                    .label(name.as_str())
                    .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.3))
                .label_font(("sans-serif", 11))
                .position(SeriesLabelPosition::UpperRight)
                .draw()?;
            root.present()?;
            Ok(())
        })();
        if let Err(e) = drawn {
            return format!("<p>chart unavailable: {}</p>", esc(&e.to_string()));
        }
    }
    accessible(&svg, &title, &bars_description(groups, series))
}

/// What a bar chart shows, in words, for a reader who cannot see it: each
/// group's figures by series, `no figure` where a bar is left out.
fn bars_description(groups: &[String], series: &[(String, Vec<f64>)]) -> String {
    if groups.is_empty() {
        return "No figures.".to_owned();
    }
    let group = |gi: usize, g: &String| {
        let values: Vec<String> = series
            .iter()
            .map(|(name, v)| match v.get(gi) {
                Some(x) if !x.is_nan() => format!("{name} {}", short(*x)),
                _ => format!("{name} no figure"),
            })
            .collect();
        format!("{g}: {}", values.join(", "))
    };
    let parts: Vec<String> = groups.iter().enumerate().map(|(gi, g)| group(gi, g)).collect();
    format!("Bar chart. {}.", parts.join("; "))
}

fn metrics_table(cells: &[CellReport]) -> String {
    let mut out = String::from(
        "<table class=\"metrics\"><caption>Per cell: writes, throughput, commit latency and recovery \
         time</caption><tr><th>workload</th><th>strategy</th><th>fault</th><th>verdict</th><th>expected</th>\
         <th>acked</th><th>lost</th><th>in doubt</th><th>violations</th><th>tps</th><th>p50 ms</th><th>p95 ms</th>\
         <th>p99 ms</th><th>max ms</th><th>recovery p50 ms</th><th>recovery max ms</th></tr>\n",
    );
    for c in cells {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{:.0}</td>\
             <td class=\"n\">{:.2}</td><td class=\"n\">{:.2}</td><td class=\"n\">{:.2}</td><td class=\"n\">{:.1}</td>\
             <td class=\"n\">{:.0}</td><td class=\"n\">{:.0}</td></tr>",
            esc(&c.workload),
            esc(&c.strategy),
            esc(&c.fault),
            c.verdict,
            c.verdict,
            c.expected,
            c.acked_writes,
            c.lost_acked_writes,
            c.in_doubt_writes,
            c.invariant_violations,
            c.throughput_tps,
            c.latency_ms.p50,
            c.latency_ms.p95,
            c.latency_ms.p99,
            c.latency_ms.max,
            c.recovery_ms.p50,
            c.recovery_ms.max,
        );
    }
    out.push_str("</table>\n");
    out
}

/// The storage benchmark: a chart per IO profile (crashlab's agent beside
/// fio on each backend) and of the workload's throughput, then the tables.
fn bench_section(bench: &BenchReport) -> String {
    let mut out = String::from("<h2>Storage benchmark</h2>\n");
    let _ = writeln!(
        out,
        "<p class=\"env\">{} rounds per tool, agent and fio back to back, {:.1} s a run, {}; same container and \
         mount; medians. Flagged when the median of the rounds' agent/fio ratios is more than {:.0} % from 1.</p>",
        bench.rounds,
        bench.seconds,
        bench.files(),
        bench.tolerance_pct
    );
    let groups: Vec<String> = bench.strategies.iter().map(|s| s.name.clone()).collect();
    out.push_str("<div class=\"charts\">\n");
    for profile in Profile::ALL {
        let rows: Vec<&IoResult> = bench.io.iter().filter(|r| r.profile == profile).collect();
        if rows.is_empty() {
            continue;
        }
        let headline = profile.headline();
        let get = |s: &str, fio: bool| -> f64 {
            rows.iter()
                .find(|r| r.strategy == s)
                .and_then(|r| if fio { r.fio.as_ref() } else { Some(&r.agent) })
                .map_or(0.0, |f| headline.of(f))
        };
        let mut series = vec![("crashlab".to_owned(), groups.iter().map(|s| get(s, false)).collect::<Vec<_>>())];
        if rows.iter().any(|r| r.fio.is_some()) {
            series.push(("fio".to_owned(), groups.iter().map(|s| get(s, true)).collect()));
        }
        let field = if headline == Headline::Iops { "iops" } else { "mib_per_s" };
        out.push_str(&figure(
            &format!("{profile} ({})", headline.unit()),
            &format!("bench.io[profile={profile}].agent.{field} and .fio.{field}"),
            &groups,
            &series,
        ));
    }
    for workload in distinct(bench.workload.iter().map(|w| w.workload.as_str())) {
        let tps = groups
            .iter()
            .map(|s| {
                bench
                    .workload
                    .iter()
                    .find(|w| w.strategy == *s && w.workload == workload)
                    .map_or(0.0, |w| w.throughput_tps)
            })
            .collect();
        out.push_str(&figure(
            &format!("{workload} throughput (commits/s)"),
            "bench.workload[].throughput_tps",
            &groups,
            &[(workload.to_owned(), tps)],
        ));
    }
    out.push_str("</div>\n");
    out.push_str(&md_table(&markdown::bench_table(bench), "Each backend: IO profiles and the workload"));
    out.push_str("<h3>crashlab agent vs fio</h3>\n");
    out.push_str(&md_table(&markdown::bench_comparison(bench), "crashlab's agent against fio, profile by profile"));
    let etcd = markdown::etcd_check(bench);
    if let Some((sentence, table)) = etcd.split_once("\n\n") {
        let _ = writeln!(out, "<h3>etcd disk check</h3>\n<p>{}</p>", inline(sentence));
        out.push_str(&md_table(table, "fdatasync latency against etcd's guidance"));
    }
    if !bench.errors.is_empty() {
        out.push_str("<h3>Failures</h3>\n<ul class=\"details\">\n");
        for e in &bench.errors {
            let _ = writeln!(out, "<li><b>{}</b> ({}): {}</li>", esc(&e.strategy), esc(&e.stage), esc(&e.detail));
        }
        out.push_str("</ul>\n");
    }
    out
}

/// The plain-language summary per strategy ([`crate::summary`]).
fn summary(report: &Report) -> String {
    let lines = crate::summary::lines(report);
    if lines.is_empty() {
        return String::new();
    }
    let mut out = String::from("<h2>Summary</h2>\n");
    if let Some(sentence) = crate::summary::compose_sentence(report) {
        let _ = writeln!(out, "<p>{}.</p>", esc(&sentence));
    }
    out.push_str("<ul class=\"summary\">\n");
    for l in &lines {
        let _ = writeln!(out, "<li><b>{}</b> — {}.</li>", esc(&l.name), esc(&l.text));
    }
    out.push_str("</ul>\n");
    out
}

/// RPO, RTO, backup cost and stall per backup strategy: a chart of the
/// recovery point and time, and the same table as `report.md`.
fn backups_section(cells: &[CellReport]) -> String {
    let cells: Vec<&CellReport> = cells.iter().filter(|c| c.backup.is_some()).collect();
    if cells.is_empty() {
        return String::new();
    }
    let mut out = String::from("<h2>Backups</h2>\n<div class=\"charts\">\n");
    let groups: Vec<String> = cells.iter().map(|c| format!("{} {}", c.strategy, c.fault)).collect();
    let backup = |c: &&CellReport| c.backup.clone().unwrap_or_default();
    let series = vec![
        ("RPO s (max)".to_owned(), cells.iter().map(|c| backup(c).rpo_s_max.unwrap_or(0.0)).collect()),
        ("RTO s (p50)".to_owned(), cells.iter().map(|c| backup(c).rto_ms.p50 / 1e3).collect()),
        ("backup s (p50)".to_owned(), cells.iter().map(|c| backup(c).duration_ms.p50 / 1e3).collect()),
    ];
    out.push_str(&figure(
        "Recovery point, recovery time and backup duration (s)",
        "cells[].backup.rpo_s_max, .rto_ms.p50, .duration_ms.p50",
        &groups,
        &series,
    ));
    let stall = vec![
        ("p99 ms during backups".to_owned(), cells.iter().map(|c| backup(c).stall.window_p99_ms).collect()),
        ("p99 ms outside".to_owned(), cells.iter().map(|c| backup(c).stall.outside_p99_ms).collect()),
    ];
    out.push_str(&figure(
        "Stall: commit latency p99 (ms)",
        "cells[].backup.stall.window_p99_ms, .outside_p99_ms",
        &groups,
        &stall,
    ));
    out.push_str("</div>\n");
    out.push_str(&md_table(
        &markdown::backups_table(&cells),
        "Per backup strategy: recovery point and time, cost, stall",
    ));
    let _ = writeln!(out, "<p>{}</p>", esc(&markdown::consistency_sentence(&cells)));
    out
}

/// The volume drivers of the `volume:` strategies: the same table as
/// `report.md`.
fn volume_drivers_section(cells: &[CellReport]) -> String {
    let md = markdown::volume_drivers_section(cells);
    if md.is_empty() {
        return String::new();
    }
    let caption = "Per driver volume: its driver, options and the scope the driver declared";
    format!("<h2>Volume drivers</h2>\n{}", md_table(&md, caption))
}

/// The crash states explored: the same table as `report.md`, and under it
/// each point's first failing state, what it dropped, and the command that
/// replays it when the run kept it.
fn crash_states_section(cells: &[CellReport]) -> String {
    let md = markdown::crash_states_section(cells);
    if md.is_empty() {
        return String::new();
    }
    let mut out = String::from("<h2>Crash states</h2>\n");
    out.push_str(&md_table(&md, "Crash states explored per cell"));
    let mut failures = String::new();
    for cell in cells {
        for (i, cycle) in cell.cycle_details.iter().enumerate() {
            let points = cycle.explore.iter().flat_map(|e| &e.points);
            for (point, f) in points.filter_map(|p| p.first_failure.as_ref().map(|f| (p, f))) {
                let _ = write!(
                    failures,
                    "<li><b>{}/{}/{}</b> cycle {}, {}: state <code>{}</code> is <span class=\"v {}\">{}</span>: {}; {}",
                    esc(&cell.workload),
                    esc(&cell.strategy),
                    esc(&cell.fault),
                    i + 1,
                    esc(&point.at),
                    esc(&f.id),
                    f.verdict,
                    f.verdict,
                    esc(&f.detail),
                    esc(&f.dropped)
                );
                if let Some(replay) = &f.replay {
                    let _ = write!(failures, "<br>replay: <code>{}</code>", esc(replay));
                }
                failures.push_str("</li>\n");
            }
        }
    }
    if !failures.is_empty() {
        let _ = write!(out, "<p>First failing state of each point:</p>\n<ul class=\"details\">\n{failures}</ul>\n");
    }
    out
}

/// What `crashlab explore` did: the same summary, tables and timelines as
/// `report.md` ([`crate::schedules::markdown`]).
fn explore_section(report: &Report) -> String {
    let Some(explore) = &report.explore else {
        return String::new();
    };
    let md = crate::schedules::markdown(explore);
    let mut out = String::new();
    for block in md.split("\n\n").map(str::trim).filter(|b| !b.is_empty()) {
        if let Some(title) = block.strip_prefix("## ") {
            let _ = writeln!(out, "<h2>{}</h2>", esc(title));
        } else if let Some(title) = block.strip_prefix("### ") {
            let _ = writeln!(out, "<h3>{}</h3>", inline(title));
        } else if block.starts_with('|') {
            let caption = if block.starts_with("| verdict") { "Schedules by verdict and shape" } else { "Timeline" };
            // A schedule is code, as in report.md.
            out.push_str(&md_table(block, caption).replace("<td>`", "<td><code>").replace("`</td>", "</code></td>"));
        } else {
            let _ = writeln!(out, "<p>{}</p>", inline(block));
        }
    }
    out
}

/// The strategies under the loss of the primary's host, side by side
/// ([`crate::hosts`]): the same table and notes as `report.md`.
fn hosts_section(report: &Report) -> String {
    let cells = crate::hosts::cells(report);
    if cells.is_empty() {
        return String::new();
    }
    let mut out = String::from("<h2>Across hosts</h2>\n");
    let _ = writeln!(out, "<p>{}</p>", inline(crate::hosts::INTRO));
    out.push_str(&md_table(
        &crate::hosts::table(&report.cells, &cells),
        "Strategies under the loss of a host, by family",
    ));
    out.push_str(&hosts_charts(&cells));
    out.push_str(&notes_list(&crate::hosts::notes(&report.cells, &cells)));
    out
}

/// The section's recovery point and recovery time, grouped by strategy
/// with a bar per fault; cells whose data was gone have neither and are
/// left out (the table says `all`), as is a figure nothing measured:
/// those have no bar, unlike a measured zero, which has one of no height.
fn hosts_charts(cells: &[&CellReport]) -> String {
    let rows = crate::hosts::chart_rows(cells);
    let strategies = distinct(rows.iter().map(|r| r.strategy.as_str()));
    let faults = distinct(rows.iter().map(|r| r.fault.as_str()));
    let groups: Vec<String> = strategies.iter().map(|s| s.to_string()).collect();
    let chart = |title: &str, source: &str, pick: fn(&crate::hosts::ChartRow) -> Option<f64>| {
        let series: Vec<(String, Vec<f64>)> = faults
            .iter()
            .map(|f| {
                let value = |s: &str| rows.iter().find(|r| r.strategy == s && r.fault == *f).and_then(pick);
                (f.to_string(), strategies.iter().map(|s| value(s).unwrap_or(f64::NAN)).collect())
            })
            .collect();
        if series.iter().all(|(_, v)| v.iter().all(|x| x.is_nan())) {
            return String::new();
        }
        figure(title, source, &groups, &series)
    };
    let rpo = chart(
        "Recovery point: writes lost (ms, worst cycle)",
        "cycle_details[].replication.rpo_s or .backup.rpo_s; data-gone cells left out",
        |r| r.rpo_ms,
    );
    let rto = chart(
        "Recovery time, p50 (ms)",
        "cycle_details[].replication.failover.rto_ms, else .recovery_ms; data-gone cells left out",
        |r| r.rto_ms,
    );
    if rpo.is_empty() && rto.is_empty() {
        return String::new();
    }
    format!("<div class=\"charts\">\n{rpo}{rto}</div>\n")
}

/// The replicas' lag and synchronous replication state
/// ([`crate::replication`]): the same table and notes as `report.md`.
fn replication_section(report: &Report) -> String {
    let cells = crate::replication::cells(report);
    if cells.is_empty() {
        return String::new();
    }
    let (lagged, shared) = crate::replication::split(&cells);
    let mut out = String::from("<h2>Replication</h2>\n");
    if !lagged.is_empty() {
        out.push_str(&md_table(&crate::replication::table(&lagged), "Replica lag and synchronous replication"));
    }
    out.push_str(&notes_list(&crate::replication::notes(&lagged, &shared)));
    out
}

/// A Markdown list of notes (`- …` lines) as an HTML list; empty for none.
fn notes_list(notes: &str) -> String {
    if notes.is_empty() {
        return String::new();
    }
    let mut out = String::from("<ul class=\"details\">\n");
    for note in notes.lines() {
        let _ = writeln!(out, "<li>{}</li>", inline(note.trim_start_matches("- ")));
    }
    out.push_str("</ul>\n");
    out
}

/// Markdown's `**bold**` and `` `code` `` as HTML, the rest escaped.
fn inline(md: &str) -> String {
    let mut out = String::new();
    let (mut bold, mut code) = (false, false);
    let mut rest = md;
    while let Some(i) = rest.find(['*', '`']) {
        out.push_str(&esc(&rest[..i]));
        if rest[i..].starts_with("**") {
            out.push_str(if bold { "</b>" } else { "<b>" });
            bold = !bold;
            rest = &rest[i + 2..];
        } else if rest[i..].starts_with('`') {
            out.push_str(if code { "</code>" } else { "<code>" });
            code = !code;
            rest = &rest[i + 1..];
        } else {
            out.push('*');
            rest = &rest[i + 1..];
        }
    }
    out.push_str(&esc(rest));
    out
}

/// A Markdown table from [`markdown`] as an HTML table under `caption`, so
/// both files show the same rows: numeric cells right-aligned, `**✗ …**`
/// flagged.
fn md_table(md: &str, caption: &str) -> String {
    let mut out = format!("<table class=\"metrics\"><caption>{}</caption>\n", esc(caption));
    for (i, line) in md.lines().filter(|l| l.starts_with('|')).enumerate() {
        if i == 1 {
            continue;
        }
        let cells: Vec<&str> = line.trim().trim_matches('|').split(" | ").map(str::trim).collect();
        out.push_str("<tr>");
        for cell in cells {
            if i == 0 {
                let _ = write!(out, "<th>{}</th>", esc(cell));
            } else if let Some(flag) = cell.strip_prefix("**").and_then(|c| c.strip_suffix("**")) {
                let _ = write!(out, "<td class=\"inconsistent\">{}</td>", esc(flag));
            } else if cell.starts_with(|c: char| c.is_ascii_digit()) {
                let _ = write!(out, "<td class=\"n\">{}</td>", esc(cell));
            } else {
                let _ = write!(out, "<td>{}</td>", esc(cell));
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    out
}

fn distinct<'a>(items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    crate::names::distinct(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Verdict;
    use crate::markdown::tests::sample_report;

    /// The verdict CSS classes and the model must not drift apart.
    fn verdict_classes() -> Vec<&'static str> {
        Verdict::ALL.iter().map(|v| v.as_str()).collect()
    }

    #[test]
    fn html_snapshot() {
        insta::assert_snapshot!(render(&sample_report()));
    }

    #[test]
    fn the_page_is_self_contained() {
        let html = render(&sample_report());
        assert!(html.starts_with("<!doctype html>"));
        assert!(!html.contains("<script"), "no scripts");
        assert!(!html.contains("http://") && !html.contains("https://") || html.contains("xmlns"), "nothing fetched");
        for link in ["src=\"http", "href=\"http", "@import", "url("] {
            assert!(!html.contains(link), "external reference {link}");
        }
        assert_eq!(html.matches("<svg").count(), 6, "three charts and a timeline per cell");
    }

    #[test]
    fn every_verdict_has_a_colour_and_misses_are_framed() {
        for class in verdict_classes() {
            assert!(STYLE.contains(&format!(".{class}{{")), "no colour for {class}");
        }
        let html = render(&sample_report());
        assert!(html.contains("<td class=\"lost-writes miss\">lost-writes<small>expected intact</small>"));
        assert!(html.contains("<td class=\"intact\">intact"));
    }

    #[test]
    fn charts_go_logarithmic_only_when_values_span_over_twentyfold() {
        let groups = vec!["tmpfs".to_owned(), "disk".to_owned()];
        let wide = grouped_bars("IOPS", &groups, &[("crashlab".into(), vec![500_000.0, 4_000.0])]);
        assert!(wide.contains("IOPS, log scale") && wide.contains("\n100000\n"), "decade labels: {wide}");
        let narrow = grouped_bars("IOPS", &groups, &[("crashlab".into(), vec![5_000.0, 4_000.0])]);
        assert!(narrow.contains("IOPS") && !narrow.contains("log scale"));
    }

    #[test]
    fn a_merged_page_lists_its_shards_and_what_is_missing() {
        let mut shard = sample_report();
        let plan = shard.cells.iter().map(CellReport::id).collect();
        shard.execution =
            Some(crate::Execution { jobs: 2, partition: Some("slice:1/2".into()), plan, ..Default::default() });
        let page = render(&crate::merge::merge(vec![("s1".into(), shard)]).unwrap());
        assert!(page.contains("<h2>Shards</h2>"), "{page}");
        assert!(page.contains("<td>slice:1/2</td><td><code>r1</code></td><td>3</td>"), "{page}");
        assert!(page.contains("<b>missing shards</b>: slice:2/2"), "{page}");
    }

    #[test]
    fn a_failing_crash_state_shows_under_the_table_with_its_replay_command() {
        use crate::{Exploration, PointReport, StateFailure, StateReport};
        let mut report = sample_report();
        assert!(!render(&report).contains("Crash states"), "no cycle explored");
        report.cells[0].fault = "crash-states".into();
        report.cells[0].cycle_details[0].explore = Some(Exploration {
            points: vec![PointReport {
                at: "end of load".into(),
                ops: 3,
                distinct: 4,
                states: vec![StateReport { id: "p0".into(), verdict: Verdict::LostWrites, ms: 1500.0 }],
                first_failure: Some(StateFailure {
                    id: "p0".into(),
                    verdict: Verdict::LostWrites,
                    detail: "1 of 40 acknowledged commits missing".into(),
                    dropped: "drops 3: #2 unlink db-journal".into(),
                    replay: Some(
                        "crashlab replay /s/replays/1-abcd --cell a/b/c --cycle 1 --point 1 --state 'p0'".into(),
                    ),
                }),
                ..PointReport::default()
            }],
        });
        let html = render(&report);
        assert!(html.contains("<h2>Crash states</h2>"), "{html}");
        assert!(
            html.contains("<td>end of load (0 ms)</td><td class=\"n\">3 (0 files, 0 B)</td><td class=\"n\">4</td>"),
            "{html}"
        );
        assert!(
            html.contains(
                "state <code>p0</code> is <span class=\"v lost-writes\">lost-writes</span>: 1 of 40 acknowledged \
                 commits missing; drops 3: #2 unlink db-journal<br>replay: <code>crashlab replay /s/replays/1-abcd \
                 --cell a/b/c --cycle 1 --point 1 --state &#39;p0&#39;</code></li>"
            ),
            "{html}"
        );
    }

    #[test]
    fn strategies_under_host_loss_share_one_table_with_the_markdown_notes() {
        let html = render(&crate::hosts::tests::host_loss_report());
        assert!(html.contains("<h2>Across hosts</h2>"), "{html}");
        assert!(html.contains("<b>single-host</b> keeps the data on that host only"), "{html}");
        assert!(
            html.contains("<td>replica-semisync</td><td>replicated</td><td>host-loss</td><td>intact ×2</td>"),
            "{html}"
        );
        assert!(
            html.contains("<li>Where <code>named-volume</code> could not take the fault (n/a), the ratio is to its <code>host-loss</code> cell"),
            "{html}"
        );
        let section = &html[html.find("<h2>Across hosts</h2>").unwrap()..];
        let charts = &section[section.find("<div class=\"charts\">").unwrap()..section.find("<ul").unwrap()];
        assert_eq!(charts.matches("<svg").count(), 2, "recovery point and recovery time: {charts}");
        assert!(charts.contains("Recovery point: writes lost (ms, worst cycle)"), "{charts}");
        assert!(charts.contains("partition-failover") && !charts.contains("named-volume"), "{charts}");
        assert!(!render(&sample_report()).contains("Across hosts"), "no host lost, no section");
        assert_eq!(inline("a **b** `c` * d"), "a <b>b</b> <code>c</code> * d");
    }

    #[test]
    fn cells_not_run_have_no_bar() {
        // tmpfs × restart was not run and tmpfs × disk-full is n/a: the
        // throughput chart has bars for the three cells that ran only.
        let html = render(&sample_report());
        let throughput = html.split("<svg").find(|svg| svg.contains("Throughput")).unwrap();
        let desc = &throughput[throughput.find("<desc>").unwrap()..throughput.find("</desc>").unwrap()];
        assert!(desc.contains("tmpfs: process-kill 333, restart no figure"), "{desc}");
        let bars = |svg: &str| svg.matches("<rect").count();
        let mut all_ran = sample_report();
        let mut extra = all_ran.cells[1].clone();
        extra.strategy = "tmpfs".into();
        all_ran.cells.push(extra);
        let html_all = render(&all_ran);
        let throughput_all = html_all.split("<svg").find(|svg| svg.contains("Throughput")).unwrap();
        assert_eq!(bars(throughput_all), bars(throughput) + 1, "one more bar for the one more cell run");
    }

    #[test]
    fn a_cell_that_never_came_back_has_no_recovery_bar() {
        let mut report = sample_report();
        report.cells[0].cycle_details[0].recovery_ms = None;
        let html = render(&report);
        let recovery = html.split("<svg").find(|svg| svg.contains("Recovery time")).unwrap();
        assert!(recovery.contains("process-kill: named-volume no figure, tmpfs 500"), "{recovery}");
    }

    #[test]
    fn every_svg_is_an_image_with_a_title_and_a_description_and_every_table_a_caption() {
        for report in [sample_report(), crate::hosts::tests::host_loss_report()] {
            let html = render(&report);
            let svgs: Vec<&str> = html.split("<svg").skip(1).collect();
            assert!(!svgs.is_empty());
            for svg in svgs {
                assert!(svg.starts_with(" role=\"img\""), "{}", &svg[..80]);
                let body = &svg[svg.find('>').unwrap() + 1..];
                assert!(body.starts_with("<title>") && body.contains("</title><desc>"), "{}", &body[..80]);
                let desc = &body[body.find("<desc>").unwrap() + 6..body.find("</desc>").unwrap()];
                assert!(desc.len() > 20, "a description that says something: {desc}");
            }
            assert!(html.contains("<table"));
            for table in html.split("<table").skip(1) {
                let open = &table[table.find('>').unwrap() + 1..];
                assert!(open.trim_start().starts_with("<caption>"), "{}", &open[..60]);
            }
        }
    }

    #[test]
    fn a_timeline_shows_each_cell_in_time_with_its_bands() {
        let html = render(&sample_report());
        assert!(html.contains("<h3>mariadb: in time</h3>"), "{html}");
        let svg = html.split("<svg").find(|svg| svg.contains("named-volume × restart, cycle 1 of 1")).unwrap();
        assert!(svg.contains("<desc>999 commits acknowledged in 100 ms buckets"), "{svg}");
        assert!(svg.contains("Fault from 3.00 s to 3.06 s; first successful query at 3.56 s"), "{svg}");
        assert!(svg.contains("first write after recovery acknowledged at 3.60 s."), "{svg}");
        let mut old = sample_report();
        for c in &mut old.cells {
            c.cycle_details[0].timeline = None;
        }
        assert!(!render(&old).contains("in time"), "no timeline, no section");
    }

    #[test]
    fn text_is_escaped() {
        let mut r = sample_report();
        r.scenario = "<b>&".into();
        assert!(render(&r).contains("crashlab report: &lt;b&gt;&amp;"));
    }

    #[test]
    fn charts_draw_bars_for_the_values() {
        let svg = grouped_bars("t", &["a".into(), "b".into()], &[("s".into(), vec![1.0, 2.0])]);
        assert!(svg.contains("<svg"), "{svg}");
        let rects = svg.matches("<rect").count();
        assert!(rects >= 3, "background and two bars: {svg}");
        let gap = grouped_bars("t", &["a".into(), "b".into()], &[("s".into(), vec![f64::NAN, 2.0])]);
        assert_eq!(gap.matches("<rect").count(), rects - 1, "no bar where there is no figure: {gap}");
        // No data at all still gives a chart, not a panic.
        assert!(grouped_bars("t", &[], &[]).contains("<svg"));
    }

    #[test]
    fn an_explore_report_shows_its_section_and_no_metrics() {
        let mut report = crate::markdown::tests::sample_report();
        report.cells.clear();
        report.explore = Some(crate::schedules::tests::sample());
        let html = render(&report);
        assert!(!html.contains("<h2>Metrics</h2>"), "an explore has no cells to measure");
        let section = &html[html.find("<h2>Explore</h2>").expect("the section")..html.find("</body>").unwrap()];
        insta::assert_snapshot!(section);
    }
}
