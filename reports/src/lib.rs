//! The report model of crashlab, and its renderers.
//!
//! A run produces one [`Report`]: the scenario, the seed, the environment it
//! ran in and one [`CellReport`] per (workload, strategy, fault). The model is
//! what other tools may depend on: it is versioned by [`SCHEMA_VERSION`], and
//! a change that removes or renames a field bumps it. `report.json` is this
//! model serialised with serde; `report.md` is rendered from it by
//! [`markdown::render`].

#![forbid(unsafe_code)]

pub mod markdown;
mod verdict;

pub use verdict::{ParseVerdictError, Verdict};

use serde::{Deserialize, Serialize};

/// Version of the `report.json` schema. Bumped on any breaking change.
pub const SCHEMA_VERSION: u32 = 1;

/// Everything one `crashlab run` found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema_version: u32,
    /// The scenario's `name`.
    pub scenario: String,
    /// The seed every random choice of the run was drawn from.
    pub seed: u64,
    /// The run id that labelled every container, volume and directory.
    pub run_id: String,
    /// Wall-clock start, seconds since the Unix epoch.
    pub started_at_unix: u64,
    /// Wall-clock duration of the whole run.
    pub duration_s: f64,
    pub environment: Environment,
    pub cells: Vec<CellReport>,
}

impl Report {
    /// True when every cell met its expectation.
    pub fn passed(&self) -> bool {
        self.cells.iter().all(|c| c.passed)
    }
}

/// Where the run happened; needed to compare two runs honestly.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    pub docker_version: String,
    pub docker_api_version: String,
    pub kernel: String,
    pub storage_driver: String,
    /// Filesystem type of the directory holding bind mounts and state.
    pub host_filesystem: String,
    pub cpus: usize,
    pub crashlab_version: String,
}

/// The outcome of one (workload, strategy, fault) over all its cycles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellReport {
    pub workload: String,
    pub strategy: String,
    pub fault: String,
    pub cycles: u32,
    /// The worst verdict over the cycles.
    pub verdict: Verdict,
    /// One verdict per cycle, in order.
    pub verdicts: Vec<Verdict>,
    pub expected: Verdict,
    /// `verdict` is no worse than `expected` (an `error` never passes).
    pub passed: bool,
    /// Commits the database acknowledged, summed over cycles.
    pub acked_writes: u64,
    /// Acknowledged commits missing after the fault, summed over cycles.
    pub lost_acked_writes: u64,
    /// Commits sent but not acknowledged when the fault hit: they may or
    /// may not be present, and either is correct.
    pub in_doubt_writes: u64,
    /// Broken invariants (phantom rows, altered rows, unbalanced accounts),
    /// summed over cycles.
    pub invariant_violations: u64,
    /// Acknowledged commits per second of load, over all cycles.
    pub throughput_tps: f64,
    /// Commit latency over all cycles.
    pub latency_ms: LatencySummary,
    /// Fault to first successful query.
    pub recovery_ms: RecoverySummary,
    pub cycle_details: Vec<CycleReport>,
}

/// Commit latency percentiles in milliseconds, from an HdrHistogram.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

/// Recovery time in milliseconds over the cycles of a cell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RecoverySummary {
    pub p50: f64,
    pub max: f64,
}

/// What one load → fault → recover → verify cycle found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CycleReport {
    pub verdict: Verdict,
    pub acked_writes: u64,
    pub lost_acked_writes: u64,
    pub in_doubt_writes: u64,
    pub invariant_violations: u64,
    pub load_s: f64,
    /// Fault to first successful query; absent when the service never
    /// came back.
    pub recovery_ms: Option<f64>,
    /// Whole cycle, wall clock.
    pub cycle_ms: f64,
    /// Why the verdict is what it is, in a sentence or two; empty when
    /// intact.
    pub detail: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_round_trips_through_json() {
        let report = markdown::tests::sample_report();
        let json = serde_json::to_string_pretty(&report).unwrap();
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back, report);
        assert!(json.contains("\"schema_version\": 1"));
        assert!(json.contains("\"verdict\": \"lost-writes\""));
    }
}
