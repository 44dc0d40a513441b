//! Joining shard reports into one, as `crashlab merge` does after a CI job
//! matrix ran one `--partition` of a scenario on each runner.
//!
//! Shards join only when they are the same test: the same scenario name,
//! seed and plan (every runnable cell, in order, recorded by each shard
//! whatever its partition) and the same partitioning. The merged report
//! holds each cell once, in plan order, and says which shards it came from,
//! each with its own environment (runners differ), which shards and cells
//! are missing and which cells came more than once. A merged report with
//! anything missing or duplicated does not pass.

use crate::partition::{Partition, PartitionError};
use crate::{Environment, Execution, Report};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

/// What a merged report was made of.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Merged {
    /// The shards, in the order they were given.
    pub shards: Vec<Shard>,
    /// Partitions of the scheme no shard covered (e.g. `hash:2/3`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_shards: Vec<String>,
    /// Cells of the plan no shard reported, as `workload/strategy/fault`:
    /// those of missing shards and those an interrupted shard never ran.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_cells: Vec<String>,
    /// Cells more than one shard reported; the first shard's is kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub duplicate_cells: Vec<String>,
}

impl Merged {
    /// Every cell of the plan is there, exactly once.
    pub fn complete(&self) -> bool {
        self.missing_shards.is_empty() && self.missing_cells.is_empty() && self.duplicate_cells.is_empty()
    }
}

/// One shard of a merged report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Shard {
    /// Where the shard's report was read from.
    pub origin: String,
    pub run_id: String,
    /// Its `--partition`; absent for a run of the whole plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    pub started_at_unix: u64,
    pub duration_s: f64,
    /// The cells it reported, as `workload/strategy/fault`.
    pub cells: Vec<String>,
    pub environment: Environment,
    /// How it ran its cells (`jobs`, limits); the plan is left out, being
    /// the merged report's own.
    pub execution: Execution,
}

/// Why shards cannot be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("merge shard reports: none were given")]
    Empty,
    #[error("merge {origin}: it is a `crashlab bench` report, not a run")]
    Bench { origin: String },
    #[error("merge {origin}: it is already a merged report; merge the shards themselves")]
    AlreadyMerged { origin: String },
    #[error(
        "merge {origin}: it does not record its plan (written by a crashlab without `--partition`), so missing cells cannot be found"
    )]
    NoPlan { origin: String },
    #[error("merge {origin} with {first}: scenario `{found}` is not `{expected}`")]
    Scenario { origin: String, first: String, found: String, expected: String },
    #[error("merge {origin} with {first}: seed {found} is not {expected}")]
    Seed { origin: String, first: String, found: u64, expected: u64 },
    #[error("merge {origin} with {first}: the scenarios plan different cells ({detail})")]
    Plan { origin: String, first: String, detail: String },
    #[error("merge {origin} with {first}: partition {found} is not of the same scheme and count as {expected}")]
    Partitioning { origin: String, first: String, found: String, expected: String },
    #[error("merge {origin}: its partition `{partition}` does not parse")]
    Partition {
        origin: String,
        partition: String,
        #[source]
        source: PartitionError,
    },
}

/// Joins shard reports, each with where it was read from, into one report.
pub fn merge(shards: Vec<(String, Report)>) -> Result<Report, MergeError> {
    let Some((first_origin, first)) = shards.first() else { return Err(MergeError::Empty) };
    let mut partitions: Vec<Option<Partition>> = Vec::new();
    for (origin, shard) in &shards {
        let partition = check(origin, shard, first_origin, first)?;
        let expected = partitions.first().copied().flatten();
        if let Some(found) = partition
            && let Some(expected) = expected
            && (found.scheme, found.count) != (expected.scheme, expected.count)
        {
            return Err(MergeError::Partitioning {
                origin: origin.clone(),
                first: first_origin.clone(),
                found: found.to_string(),
                expected: expected.to_string(),
            });
        }
        if !partitions.is_empty() && partition.is_some() != expected.is_some() {
            // A whole run beside shards would duplicate every cell; say
            // what is wrong instead.
            let name = |p: Option<Partition>| p.map_or_else(|| "the whole plan".to_owned(), |p| p.to_string());
            return Err(MergeError::Partitioning {
                origin: origin.clone(),
                first: first_origin.clone(),
                found: name(partition),
                expected: name(expected),
            });
        }
        partitions.push(partition);
    }
    let plan = first.execution.as_ref().map(|e| e.plan.clone()).unwrap_or_default();
    // The plans are equal, so every filtered shard selected the same cells
    // of the same scenario: the merged report is as filtered as they were.
    let filter = shards.iter().find_map(|(_, s)| s.execution.as_ref().and_then(|e| e.filter.clone()));

    let missing_shards: Vec<Partition> = match partitions.first().copied().flatten() {
        Some(p) => (1..=p.count)
            .map(|shard| Partition { shard, ..p })
            .filter(|want| !partitions.iter().any(|have| have.is_some_and(|have| have.shard == want.shard)))
            .collect(),
        None => Vec::new(),
    };

    let mut by_id: BTreeMap<String, crate::CellReport> = BTreeMap::new();
    let mut duplicate_cells: Vec<String> = Vec::new();
    let mut records = Vec::new();
    for (origin, shard) in &shards {
        for cell in &shard.cells {
            match by_id.entry(cell.id()) {
                Entry::Vacant(slot) => {
                    slot.insert(cell.clone());
                }
                Entry::Occupied(seen) => {
                    if !duplicate_cells.contains(seen.key()) {
                        duplicate_cells.push(seen.key().clone());
                    }
                }
            }
        }
        let mut execution = shard.execution.clone().unwrap_or_default();
        execution.plan.clear();
        records.push(Shard {
            origin: origin.clone(),
            run_id: shard.run_id.clone(),
            partition: execution.partition.clone(),
            started_at_unix: shard.started_at_unix,
            duration_s: shard.duration_s,
            cells: shard.cells.iter().map(crate::CellReport::id).collect(),
            environment: shard.environment.clone(),
            execution,
        });
    }
    let mut cells = Vec::new();
    let mut missing_cells = Vec::new();
    for id in &plan {
        match by_id.remove(id) {
            Some(cell) => cells.push(cell),
            None => missing_cells.push(id.clone()),
        }
    }
    // Plans are equal, so this is empty unless a shard reported a cell
    // outside its own plan; keep it rather than drop evidence.
    cells.extend(by_id.into_values());

    let started = shards.iter().map(|(_, s)| s.started_at_unix).min().unwrap_or(0);
    let ended = shards.iter().map(|(_, s)| s.started_at_unix as f64 + s.duration_s).fold(0.0, f64::max);
    Ok(Report {
        schema_version: crate::SCHEMA_VERSION,
        scenario: first.scenario.clone(),
        seed: first.seed,
        run_id: format!("merged-{}", shards.iter().map(|(_, s)| s.run_id.as_str()).collect::<Vec<_>>().join("+")),
        started_at_unix: started,
        // Wall clock from the first shard's start to the last one's end:
        // what the split cost the pipeline, not the sum of the shards.
        duration_s: (ended - started as f64).max(0.0),
        environment: first.environment.clone(),
        cells,
        unsupported: first.unsupported.clone(),
        execution: Some(Execution { plan, filter, ..Execution::default() }),
        merged: Some(Merged {
            shards: records,
            missing_shards: missing_shards.iter().map(Partition::to_string).collect(),
            missing_cells,
            duplicate_cells,
        }),
        compose: first.compose.clone(),
        ..Report::default()
    })
}

/// Checks that `shard` can join `first`; returns its partition.
fn check(origin: &str, shard: &Report, first_origin: &str, first: &Report) -> Result<Option<Partition>, MergeError> {
    let origin = origin.to_owned();
    if shard.bench.is_some() {
        return Err(MergeError::Bench { origin });
    }
    if shard.merged.is_some() {
        return Err(MergeError::AlreadyMerged { origin });
    }
    let Some(execution) = shard.execution.as_ref().filter(|e| !e.plan.is_empty()) else {
        return Err(MergeError::NoPlan { origin });
    };
    let first_origin = first_origin.to_owned();
    if shard.scenario != first.scenario {
        return Err(MergeError::Scenario {
            origin,
            first: first_origin,
            found: shard.scenario.clone(),
            expected: first.scenario.clone(),
        });
    }
    if shard.seed != first.seed {
        return Err(MergeError::Seed { origin, first: first_origin, found: shard.seed, expected: first.seed });
    }
    let plan = &execution.plan;
    let first_plan = first.execution.as_ref().map(|e| &e.plan).filter(|p| !p.is_empty());
    if let Some(first_plan) = first_plan
        && plan != first_plan
    {
        let only = |a: &Vec<String>, b: &Vec<String>| a.iter().filter(|id| !b.contains(id)).count();
        let detail = format!(
            "{} cells only in this one, {} only in the first, {} in both",
            only(plan, first_plan),
            only(first_plan, plan),
            plan.iter().filter(|id| first_plan.contains(id)).count()
        );
        // Runs filtered differently plan different cells by design; say so.
        let expression =
            |r: &Report| r.execution.as_ref().and_then(|e| e.filter.as_ref()).map(|f| f.expression.clone());
        let detail = match (expression(shard), expression(first)) {
            (found, expected) if found != expected => {
                let name =
                    |f: Option<String>| f.map_or_else(|| "no --filter".to_owned(), |f| format!("--filter '{f}'"));
                format!("{detail}; {} against {}", name(found), name(expected))
            }
            _ => detail,
        };
        return Err(MergeError::Plan { origin, first: first_origin, detail });
    }
    execution
        .partition
        .as_ref()
        .map(|p| {
            p.parse::<Partition>().map_err(|source| MergeError::Partition { origin, partition: p.clone(), source })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Verdict;
    use crate::markdown::tests::sample_report;
    use crate::partition::Partition;

    /// The sample report's plan, run as shard `k` of `hash:k/n`.
    fn shard(partition: &str) -> (String, Report) {
        let mut report = sample_report();
        let plan: Vec<String> = report.cells.iter().map(crate::CellReport::id).collect();
        let p: Partition = partition.parse().unwrap();
        let mut position = 0;
        report.cells.retain(|c| {
            position += 1;
            p.contains(position - 1, &c.id())
        });
        report.run_id = format!("run-{}", p.shard);
        report.started_at_unix = 100 + u64::from(p.shard);
        report.duration_s = 10.0;
        report.environment.kernel = format!("kernel of runner {}", p.shard);
        report.execution =
            Some(Execution { jobs: 2, partition: Some(partition.to_owned()), plan, ..Execution::default() });
        (format!("shard-{}/report.json", p.shard), report)
    }

    fn ids(report: &Report) -> Vec<String> {
        report.cells.iter().map(crate::CellReport::id).collect()
    }

    #[test]
    fn three_slices_merge_into_the_whole_plan_in_plan_order() {
        let whole = sample_report();
        let merged = merge(vec![shard("slice:3/3"), shard("slice:1/3"), shard("slice:2/3")]).unwrap();
        assert_eq!(ids(&merged), ids(&whole));
        let verdicts = |r: &Report| r.cells.iter().map(|c| (c.verdict, c.passed)).collect::<Vec<_>>();
        assert_eq!(verdicts(&merged), verdicts(&whole));
        let m = merged.merged.as_ref().unwrap();
        assert!(m.complete(), "{m:?}");
        assert_eq!(m.shards.len(), 3);
        assert_eq!(m.shards[0].environment.kernel, "kernel of runner 3", "each shard keeps its environment");
        assert_eq!(m.shards[0].partition.as_deref(), Some("slice:3/3"));
        // The sample has a cell that misses its expectation, so the merge
        // fails as the whole run would.
        assert_eq!(merged.passed(), whole.passed());
        assert_eq!(merged.started_at_unix, 101);
        assert_eq!(merged.duration_s, 12.0);
    }

    #[test]
    fn a_missing_shard_is_named_with_its_cells_and_fails_the_merge() {
        let mut first = shard("slice:1/3");
        for c in &mut first.1.cells {
            c.passed = true;
        }
        let mut third = shard("slice:3/3");
        for c in &mut third.1.cells {
            c.passed = true;
        }
        let merged = merge(vec![first, third]).unwrap();
        let m = merged.merged.as_ref().unwrap();
        assert_eq!(m.missing_shards, ["slice:2/3"]);
        assert_eq!(m.missing_cells, ["mariadb/named-volume/restart"]);
        assert!(m.duplicate_cells.is_empty());
        assert!(merged.cells.iter().all(|c| c.passed));
        assert!(!merged.passed(), "a cell that never ran is no pass");
    }

    #[test]
    fn a_shard_given_twice_reports_its_cells_as_duplicates() {
        let merged = merge(vec![shard("hash:1/1"), shard("hash:1/1")]).unwrap();
        let m = merged.merged.unwrap();
        assert_eq!(m.duplicate_cells, ids(&sample_report()));
        assert!(m.missing_shards.is_empty() && m.missing_cells.is_empty());
        assert_eq!(merged.cells.len(), 3, "each cell is kept once");
    }

    #[test]
    fn shards_of_one_filtered_plan_keep_the_filter_and_differently_filtered_ones_are_refused() {
        let selection = |expression: &str| crate::Selection { expression: expression.into(), selected: 3, total: 12 };
        let filtered = |partition: &str, expression: &str| {
            let mut s = shard(partition);
            s.1.execution.as_mut().unwrap().filter = Some(selection(expression));
            s
        };
        let merged =
            merge(vec![filtered("hash:1/2", "workload=mariadb"), filtered("hash:2/2", "workload=mariadb")]).unwrap();
        assert_eq!(merged.execution.as_ref().unwrap().filter, Some(selection("workload=mariadb")));
        let md = crate::markdown::render(&merged);
        assert!(md.contains("**Cells selected by `--filter 'workload=mariadb'`: 3 of 12**"), "{md}");
        let html = crate::html::render(&merged);
        assert!(html.contains("<b>Cells selected by <code>--filter 'workload=mariadb'</code>: 3 of 12</b>"), "{html}");

        let mut other = filtered("hash:2/2", "fault=restart");
        other.1.execution.as_mut().unwrap().plan.pop();
        let e = merge(vec![filtered("hash:1/2", "workload=mariadb"), other]).unwrap_err().to_string();
        assert!(e.contains("--filter 'fault=restart' against --filter 'workload=mariadb'"), "{e}");
    }

    #[test]
    fn shards_of_other_tests_are_refused() {
        let refused = |other: (String, Report)| merge(vec![shard("hash:1/2"), other]).unwrap_err().to_string();
        let mut renamed = shard("hash:2/2");
        renamed.1.scenario = "postgres".into();
        assert_eq!(
            refused(renamed),
            "merge shard-2/report.json with shard-1/report.json: scenario `postgres` is not `smoke`"
        );
        let mut reseeded = shard("hash:2/2");
        reseeded.1.seed = 43;
        assert!(refused(reseeded).ends_with("seed 43 is not 42"));
        let mut replanned = shard("hash:2/2");
        replanned.1.execution.as_mut().unwrap().plan.pop();
        assert!(
            refused(replanned)
                .ends_with("plan different cells (0 cells only in this one, 1 only in the first, 2 in both)")
        );
        assert!(
            refused(shard("slice:2/2")).contains("partition slice:2/2 is not of the same scheme and count as hash:1/2")
        );
        assert!(refused(shard("hash:2/3")).contains("partition hash:2/3 is not"));
        let mut whole = shard("hash:1/1");
        whole.1.execution.as_mut().unwrap().partition = None;
        assert!(refused(whole).contains("partition the whole plan is not"));
        let mut old = shard("hash:2/2");
        old.1.execution = None;
        assert!(refused(old).contains("does not record its plan"));
        let mut bench = shard("hash:2/2");
        bench.1.bench = Some(crate::bench::BenchReport::default());
        assert!(refused(bench).contains("is a `crashlab bench` report"));
        assert!(matches!(merge(vec![]), Err(MergeError::Empty)));
        let merged = merge(vec![shard("hash:1/1")]).unwrap();
        assert!(matches!(merge(vec![("m".into(), merged)]), Err(MergeError::AlreadyMerged { .. })));
    }

    #[test]
    fn an_interrupted_shard_leaves_its_unrun_cells_missing() {
        let mut cut = shard("hash:1/1");
        cut.1.cells.truncate(1);
        let merged = merge(vec![cut]).unwrap();
        let m = merged.merged.unwrap();
        assert!(m.missing_shards.is_empty());
        assert_eq!(m.missing_cells, ["mariadb/named-volume/restart", "mariadb/tmpfs/process-kill"]);
        assert_eq!(merged.cells[0].verdict, Verdict::Intact);
    }

    #[test]
    fn a_merged_report_round_trips_through_json() {
        let merged = merge(vec![shard("hash:1/2"), shard("hash:2/2")]).unwrap();
        let json = serde_json::to_string(&merged).unwrap();
        assert_eq!(serde_json::from_str::<Report>(&json).unwrap(), merged);
    }
}
