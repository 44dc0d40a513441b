//! Rendering every report of a 200-cell run: JSON, Markdown, HTML (with its
//! SVG charts) and JUnit. Target: all four in under 1 s.

use crashlab_reports::{Environment, Report, SCHEMA_VERSION, Verdict, html, junit, markdown};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use std::hint::black_box;

/// 200 cells: 4 workloads × 5 strategies × 10 faults, 3 cycles each, with
/// every verdict represented. Built as JSON so that fields later issues add
/// (all defaulted) need no change here.
fn big_report() -> Report {
    let strategies = ["container-layer", "anonymous-volume", "named-volume", "bind-mount", "tmpfs"];
    let mut cells = Vec::new();
    for w in 0..4 {
        for (s, strategy) in strategies.iter().enumerate() {
            for f in 0..10 {
                let i = cells.len();
                let verdict = Verdict::ALL[i % 5];
                let cycle = json!({
                    "verdict": verdict, "acked_writes": 5000 + i, "in_doubt_writes": 3, "invariant_violations": 0,
                    "lost_acked_writes": if verdict == Verdict::LostWrites { 17 } else { 0 },
                    "load_s": 2.0, "recovery_ms": 400.0 + s as f64, "cycle_ms": 3000.0,
                    "detail": if verdict == Verdict::Intact { String::new() } else { format!("cell {i} detail") },
                });
                cells.push(json!({
                    "workload": format!("workload-{w}"), "strategy": strategy, "fault": format!("fault-{f}"),
                    "cycles": 3, "verdict": verdict, "verdicts": [verdict, verdict, verdict],
                    "expected": "data-gone", "passed": verdict <= Verdict::DataGone, "acked_writes": 15000,
                    "lost_acked_writes": 0, "in_doubt_writes": 9, "invariant_violations": 0,
                    "throughput_tps": 2500.0 + i as f64,
                    "latency_ms": {"p50": 1.5, "p95": 2.5, "p99": 3.5, "max": 12.0},
                    "recovery_ms": {"p50": 400.0, "max": 450.0},
                    "cycle_details": [cycle.clone(), cycle.clone(), cycle],
                }));
            }
        }
    }
    serde_json::from_value(json!({
        "schema_version": SCHEMA_VERSION, "scenario": "bench", "seed": 1, "run_id": "bench",
        "started_at_unix": 0, "duration_s": 600.0, "environment": Environment::default(), "cells": cells,
    }))
    .expect("the report model accepts the bench report")
}

fn bench(c: &mut Criterion) {
    let report = big_report();
    assert_eq!(report.cells.len(), 200);
    let mut group = c.benchmark_group("render_200_cells");
    group.sample_size(10);
    group.bench_function("all_formats", |b| {
        b.iter(|| {
            let r = black_box(&report);
            (serde_json::to_string_pretty(r).unwrap(), markdown::render(r), html::render(r), junit::render(r))
        })
    });
    group.bench_function("html", |b| b.iter(|| html::render(black_box(&report))));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
