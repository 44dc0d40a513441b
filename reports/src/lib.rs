//! The report model of crashlab, and its renderers.
//!
//! A run produces one [`Report`]: the scenario, the seed, the environment it
//! ran in and one [`CellReport`] per (workload, strategy, fault). The model is
//! what other tools may depend on: it is versioned by [`SCHEMA_VERSION`], and
//! a change that removes or renames a field bumps it. `report.json` is this
//! model serialised with serde; `report.md` is rendered from it by
//! [`markdown::render`].

#![forbid(unsafe_code)]

pub mod bench;
pub mod compare;
pub mod hosts;
pub mod html;
pub mod junit;
pub mod markdown;
mod markup;
pub mod merge;
mod names;
pub mod partition;
pub mod replication;
pub mod schedules;
pub mod summary;
pub mod timeline;
mod verdict;

pub use verdict::{ParseVerdictError, Verdict};

use serde::{Deserialize, Serialize};

/// Version of the `report.json` schema. Bumped on any breaking change (a
/// field removed, renamed or given another meaning); a field added with a
/// default, which older files load without, is not one.
pub const SCHEMA_VERSION: u32 = 1;

/// The report as `report.json` holds it: the model, pretty-printed, with a
/// final newline (`crashlab report --format json`).
pub fn to_json(report: &Report) -> String {
    serde_json::to_string_pretty(report).expect("a report always serialises") + "\n"
}

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
    /// (strategy, fault) pairs of the plan that were not run because the
    /// strategy cannot take the fault; they neither pass nor fail.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unsupported: Vec<Unsupported>,
    /// What `crashlab bench` measured; absent from `crashlab run`'s
    /// reports, whose cells it leaves empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bench: Option<bench::BenchReport>,
    /// How the cells were run: side by side, under which limits, which
    /// shard of the plan; absent from reports written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution: Option<Execution>,
    /// Present when `crashlab merge` joined shard reports into this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged: Option<merge::Merged>,
    /// Present when the run tested one service of a Compose file
    /// (`crashlab run --compose`): which, and the strategy the file keeps
    /// its data on, whose cells come first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compose: Option<ComposeOrigin>,
    /// What `crashlab explore` did (a report of an explore has no cells).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explore: Option<schedules::ExploreReport>,
}

/// An empty report of this schema: no cells and no section of a kind of
/// run (bench, execution, merge, Compose, explore), each producer setting
/// what it has (`Report { cells, ..Report::default() }`), so that a new
/// section does not touch every producer.
impl Default for Report {
    fn default() -> Self {
        Report {
            schema_version: SCHEMA_VERSION,
            scenario: String::new(),
            seed: 0,
            run_id: String::new(),
            started_at_unix: 0,
            duration_s: 0.0,
            environment: Environment::default(),
            cells: vec![],
            unsupported: vec![],
            bench: None,
            execution: None,
            merged: None,
            compose: None,
            explore: None,
        }
    }
}

/// The Compose service a run tested, and "your configuration": the
/// strategy its file implies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ComposeOrigin {
    /// The Compose file, as named on the command line.
    pub file: String,
    pub service: String,
    /// The strategy the file deploys the service's data on.
    pub strategy: String,
    /// What the file says that the test did not carry over, one sentence
    /// each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Report {
    /// How the report names a strategy: the user's own marked as such.
    pub fn strategy_label(&self, strategy: &str) -> String {
        match &self.compose {
            Some(c) if c.strategy == strategy => format!("{strategy} (your configuration)"),
            _ => strategy.to_owned(),
        }
    }
}

impl Report {
    /// True when every cell met its expectation (for a bench, every
    /// backend was measured and agreed with fio; for a merge, every cell of
    /// the plan is there exactly once).
    pub fn passed(&self) -> bool {
        self.cells.iter().all(|c| c.passed)
            && self.bench.as_ref().is_none_or(bench::BenchReport::passed)
            && self.merged.as_ref().is_none_or(merge::Merged::complete)
            && self.explore.as_ref().is_none_or(|e| !e.findings.iter().any(schedules::Finding::failing))
    }
}

/// How a run executed its cells.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Execution {
    /// Cells run at once on this host (`--jobs`).
    pub jobs: u32,
    /// CPUs each workload container was limited to (`[matrix] cpus`);
    /// absent when unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// Memory each workload container was limited to, in bytes (`[matrix]
    /// memory`); absent when unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// The shard this run was (`--partition`, e.g. `hash:2/3`); absent
    /// when it ran the whole plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// Every runnable cell of the whole plan, as [`partition::cell_id`]s in
    /// plan order, whichever shard this is: what `merge` checks the shards
    /// against for missing cells.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plan: Vec<String>,
    /// The signal that stopped the run before its end (`SIGINT`, `SIGTERM`
    /// or `SIGHUP`): the report's cells are those that had finished by
    /// then, `plan` all of them. Absent when the run went to its end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<String>,
    /// The `--filter` the run's cells were chosen by; absent when the run
    /// took the scenario's whole matrix. `plan` then holds only the cells
    /// it selected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Selection>,
}

/// A run's `--filter` and how much of the scenario it kept, so that a
/// report of a filtered run never reads as one of the whole matrix.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection {
    /// The expression, as `--filter` was given it.
    pub expression: String,
    /// Runnable cells of the scenario the expression selected.
    pub selected: usize,
    /// Runnable cells of the scenario without the filter.
    pub total: usize,
}

impl Selection {
    /// The sentence reports print: "cells selected by --filter '...': N
    /// of M".
    pub fn sentence(&self) -> String {
        format!("cells selected by --filter '{}': {} of {}", self.expression, self.selected, self.total)
    }
}

impl CellReport {
    /// The cell's identity across runs and shards: `workload/strategy/fault`.
    pub fn id(&self) -> String {
        partition::cell_id(&self.workload, &self.strategy, &self.fault)
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

/// A planned cell that was not run: the strategy cannot take the fault
/// (e.g. a power cut under Docker's writable layer, which crashlab cannot
/// put its fault filesystem under). Shown as `n/a` with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unsupported {
    #[serde(default)]
    pub workload: String,
    pub strategy: String,
    pub fault: String,
    pub reason: String,
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
    /// Every fault-filesystem rule installed over the cycles (e.g.
    /// `enospc:16777216`, `torn:prefix`), distinct, in first-use order;
    /// each cycle's own rules and seed are in its `faultfs`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fault_rules: Vec<String>,
    /// What the cell's backups cost and what restoring them recovered;
    /// absent for strategies that take none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupSummary>,
    /// How the strategy protects the data against the loss of its host,
    /// from the strategy's definition; absent from reports written before
    /// it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<Family>,
    /// The volume driver of a `volume:` strategy, as Docker answered for
    /// it; absent for the built-in strategies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_driver: Option<VolumeDriver>,
}

/// A volume driver a cell's data was on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeDriver {
    pub driver: String,
    /// Its options as `KEY=VALUE`, in the order given.
    pub options: Vec<String>,
    /// `local` (one host reaches a volume) or `global` (every host of a
    /// cluster does), as the driver declared it to Docker.
    pub scope: String,
    /// The loop device crashlab made for the volume's `device`, as
    /// `FSTYPE SIZE` (e.g. `btrfs 1073741824`), when it made one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loop_device: Option<String>,
}

/// How a strategy protects its data against the loss of the host: the
/// groups the "Across hosts" section ([`hosts`]) puts side by side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    /// The live data and nothing else on one host: its loss is the data's.
    SingleHost,
    /// The live data on one host, copies taken during the load elsewhere;
    /// restored after the host's loss.
    Backup,
    /// A second server on another host receives every commit; it is
    /// promoted after the primary's host is lost.
    Replicated,
    /// The data on storage several hosts reach; the database starts on
    /// another host on the same data.
    Shared,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Family::SingleHost => "single-host",
            Family::Backup => "backup",
            Family::Replicated => "replicated",
            Family::Shared => "shared",
        }
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A median and a maximum over a cell's cycles or backups.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    pub p50: f64,
    pub max: f64,
}

impl Spread {
    /// The median (lower middle) and maximum of `values`; zeros when empty.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Spread {
        let mut v: Vec<f64> = values.into_iter().collect();
        v.sort_by(f64::total_cmp);
        Spread {
            p50: v.get(v.len().saturating_sub(1) / 2).copied().unwrap_or(0.0),
            max: v.last().copied().unwrap_or(0.0),
        }
    }
}

/// A backup strategy's figures for one cell, over all its cycles.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BackupSummary {
    /// How each backup was taken, in words (`tar of the live volume through
    /// the Docker API`).
    pub method: String,
    /// The scenario's `[backup] interval`.
    pub interval_s: f64,
    /// Backups completed over the cycles, and attempts that failed.
    pub backups: u32,
    pub failed_backups: u32,
    /// Wall-clock time of one backup, from its start until the copy was
    /// complete and the workload writing again.
    pub duration_ms: Spread,
    /// Size of one backup as stored (compressed for `sync-agent`).
    pub bytes: Spread,
    /// Recovery point after a host loss: acknowledged commits lost, worst
    /// cycle; absent when no cycle lost the host.
    pub rpo_commits_max: Option<u64>,
    /// Recovery point after a host loss: seconds from the last surviving
    /// acknowledged commit to the fault, worst cycle.
    pub rpo_s_max: Option<f64>,
    /// Putting the latest backup on new storage after a host loss.
    pub restore_ms: Spread,
    /// Restore plus recovery: from the fault to the first successful query
    /// on the restored data (the cycles' `recovery_ms`).
    pub rto_ms: Spread,
    /// The restore's parts over the cycles ([`BackupCycle::restore_steps`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restore_steps: Vec<StepSpread>,
    /// Restores attempted after a host loss, and those that started and
    /// passed the engine's integrity check and the invariants: a backup
    /// method whose restores all pass is application-consistent in
    /// practice, as far as these cycles show.
    pub restores: u32,
    pub consistent_restores: u32,
    /// The stall the backups caused, over all cycles.
    pub stall: Stall,
    /// For methods that add each backup to a repository (`backup-restic`):
    /// the largest size the repository reached; `bytes` is then what one
    /// backup added to it (its growth), not a whole copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo_bytes_max: Option<f64>,
    /// The backup tool's own integrity checks of what it stored (`restic
    /// check`), run over the cycles, and those that passed; zero for
    /// methods without one.
    #[serde(default)]
    pub tool_checks: u32,
    #[serde(default)]
    pub tool_checks_passed: u32,
}

/// Commits while a backup ran against commits outside backups, over the
/// load phase. A transaction counts in a backup window when it overlapped
/// one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Stall {
    /// Seconds of load inside backup windows, and outside them.
    pub window_s: f64,
    pub outside_s: f64,
    /// Acknowledged commits per second inside and outside the windows.
    pub window_tps: f64,
    pub outside_tps: f64,
    /// Commit latency percentiles in milliseconds, inside and outside.
    pub window_p99_ms: f64,
    pub window_max_ms: f64,
    pub outside_p99_ms: f64,
    pub outside_max_ms: f64,
}

impl Stall {
    /// How much lower throughput was during backups, in percent of the
    /// throughput outside them (negative when it was higher).
    pub fn throughput_drop_pct(&self) -> Option<f64> {
        (self.outside_tps > 0.0 && self.window_s > 0.0).then(|| (1.0 - self.window_tps / self.outside_tps) * 100.0)
    }
}

/// The backups of one cycle and, after a host loss, the restore.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BackupCycle {
    /// Every backup started during the load, in order.
    pub backups: Vec<BackupRecord>,
    /// Index in `backups` of the one restored after a host loss; absent
    /// when nothing was restored (no host loss, or no backup to restore).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored: Option<usize>,
    /// Putting that backup on new storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_ms: Option<f64>,
    /// Seconds into the load a point-in-time restore brought the data back
    /// to (`[backup] restore-to`); absent when the restore brought back
    /// everything the backups held. The data was then judged against the
    /// ack log cut at that instant, and the recovery point runs to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_to_s: Option<f64>,
    /// Seconds from the last acknowledged commit that survived the host
    /// loss to the fault (from the start of the load when none survived);
    /// to the target, after a point-in-time restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo_s: Option<f64>,
    pub stall: Stall,
    /// The restore's parts, timed by the method, in order; their sum is
    /// at most `restore_ms` (the rest is new storage and the container).
    /// A replay the server does as it starts (PostgreSQL's archive
    /// recovery) is timed from the server's own log and lies outside
    /// `restore_ms`, inside the cycle's RTO. Empty for methods that do not
    /// time their parts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restore_steps: Vec<RestoreStep>,
    /// The backup tool's own check of what it stored, after the cycle's
    /// backups; absent for methods without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_check: Option<ToolCheck>,
}

/// One timed part of a restore after a host loss: `fetch` (the backup
/// copied onto new storage), `prepare` (the tool made the copy
/// consistent), `replay` (the log streamed or archived since applied on
/// top).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RestoreStep {
    pub step: String,
    pub ms: f64,
}

/// A restore step's median and maximum over a cell's cycles.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepSpread {
    pub step: String,
    pub ms: Spread,
}

impl StepSpread {
    /// Each step of `cycles`' restores, in the order they first came, with
    /// its spread over the cycles that had it.
    pub fn of<'a>(cycles: impl IntoIterator<Item = &'a [RestoreStep]>) -> Vec<StepSpread> {
        let mut seen: Vec<(String, Vec<f64>)> = vec![];
        for step in cycles.into_iter().flatten() {
            match seen.iter_mut().find(|(name, _)| *name == step.step) {
                Some((_, ms)) => ms.push(step.ms),
                None => seen.push((step.step.clone(), vec![step.ms])),
            }
        }
        seen.into_iter().map(|(step, ms)| StepSpread { step, ms: Spread::of(ms) }).collect()
    }
}

/// A backup tool checking its own store (`restic check`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCheck {
    /// The command, as run.
    pub command: String,
    pub passed: bool,
    /// The tail of its output when it failed or could not run; what it
    /// checked, when the tool says (the LSNs a `mariadb-backup --prepare`
    /// applied).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// One backup.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BackupRecord {
    /// Start, seconds since the load began.
    pub at_s: f64,
    pub duration_ms: f64,
    /// Size as stored; 0 for a snapshot, which shares its blocks. For a
    /// backup into a repository (`backup-restic`), what it added to the
    /// repository.
    pub bytes: u64,
    /// The repository's size after this backup, for methods that keep one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo_bytes: Option<u64>,
    /// Why the backup failed; absent when it completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Commit latency percentiles in milliseconds, from an HdrHistogram.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

/// Recovery time in milliseconds over the cycles of a cell: a [`Spread`]
/// (the name is kept for the schema's users).
pub type RecoverySummary = Spread;

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
    /// What the fault filesystem under the data did during the cycle;
    /// absent when the data was not on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faultfs: Option<FaultFsCycle>,
    /// Where the cycle's time went.
    #[serde(default)]
    pub phases: PhaseTimes,
    /// Backups taken during the load and the restore after a host loss;
    /// absent for strategies that take none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupCycle>,
    /// Whether the fault did what it names, and what it did; absent when
    /// the cycle ended before the fault (e.g. the deploy failed). A cycle
    /// whose fault did not fire is `error`, never a pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fired: Option<Fired>,
    /// The crash states explored beside the live recovery (`crash-states`);
    /// absent for other faults. The cycle's verdict is the worst of the
    /// live one and every state's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explore: Option<Exploration>,
    /// A replicated strategy's replica lag, synchronous replication state
    /// and failover; absent for single-host strategies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication: Option<ReplicationCycle>,
    /// Commits and latency through the load, and the instants of the
    /// fault, the recovery and the first write after it; absent from
    /// reports written before it existed and from cycles that ended before
    /// the load did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<timeline::Timeline>,
    /// A schedule's steps in time (milliseconds after its first load
    /// began); empty for a cycle that is not a schedule.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<schedules::StepTime>,
    /// When the first and the last of the acknowledged commits found
    /// missing had been acknowledged, in milliseconds after the load began;
    /// absent when none was missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost_acks_ms: Option<(f64, f64)>,
}

/// The crash states a cycle explored: one entry per crash point.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Exploration {
    pub points: Vec<PointReport>,
}

impl Exploration {
    /// States checked, over every point.
    pub fn states(&self) -> u64 {
        self.points.iter().map(|p| p.states.len() as u64).sum()
    }

    /// States whose verdict was worse than `intact`.
    pub fn failed(&self) -> u64 {
        self.points.iter().map(|p| p.failed()).sum()
    }

    /// The worst verdict of any state, `error` when a point could not be
    /// explored; `None` when nothing was checked.
    pub fn worst(&self) -> Option<Verdict> {
        let errors = self.points.iter().filter(|p| p.error.is_some()).map(|_| Verdict::Error);
        Verdict::worst(self.points.iter().flat_map(|p| p.states.iter().map(|s| s.verdict)).chain(errors))
    }
}

/// One crash point: the unsynced history captured there, how many distinct
/// crash states it allows (as far as the bounds let the exploration see),
/// and the verdict of each state checked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PointReport {
    /// Where the point is, e.g. `end of load`.
    pub at: String,
    /// Milliseconds after the load began: acknowledgements later than this
    /// are in doubt when a state is checked.
    pub at_ms: f64,
    /// Unsynced operations in the history at the point.
    pub ops: u64,
    /// Bytes of unsynced writes in it.
    pub bytes: u64,
    /// Files with unsynced operations (the log alone, or data files too).
    #[serde(default)]
    pub files: u64,
    /// The files with the most unsynced bytes, each with its writes and
    /// bytes (`ibdata1: 3 writes, 49152 B`), most first, at most eight.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unsynced_files: Vec<String>,
    /// Candidate states hashed, and how many distinct contents they had.
    pub candidates: u64,
    pub distinct: u64,
    /// Whether the states checked are a seeded sample rather than all.
    pub sampled: bool,
    /// Each state checked, in exploration order.
    pub states: Vec<StateReport>,
    /// The first state whose verdict was worse than `intact`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_failure: Option<StateFailure>,
    /// Why the point could not be explored (or its checks not finished);
    /// makes the cycle `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Wall clock of the whole point: capture, exploration and checks.
    pub ms: f64,
}

impl PointReport {
    pub fn failed(&self) -> u64 {
        self.states.iter().filter(|s| s.verdict > Verdict::Intact).count() as u64
    }
}

/// One crash state checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateReport {
    /// The state's id in the fault filesystem's grammar (`p12`,
    /// `e0-drop{3}`, `t5@1/8`).
    pub id: String,
    pub verdict: Verdict,
    /// Materialise, start, recover, read back and check.
    pub ms: f64,
}

/// The first failing state of a point, described for a reader.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateFailure {
    pub id: String,
    pub verdict: Verdict,
    /// The checker's findings (or why the server did not come back).
    pub detail: String,
    /// Which unsynced operations the state dropped or tore, in words.
    pub dropped: String,
    /// How to look at exactly this state again, when the harness kept what
    /// it needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<String>,
}

/// What replication did during a cycle of a replicated strategy. Lags are
/// counted in transactions committed on the primary and not yet received
/// (lost with the primary's host) or not yet applied by the replica.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReplicationCycle {
    /// `async` or `sync`.
    pub mode: String,
    /// What the lags count: `transactions` (MariaDB), `WAL bytes`
    /// (PostgreSQL).
    pub lag_unit: String,
    /// Lag samples taken during the load (every 200 ms).
    pub lag_samples: u32,
    pub lag_max_unreceived: u64,
    pub lag_max_unapplied: u64,
    /// The lag measured just before the fault.
    pub at_fault_unreceived: Option<u64>,
    pub at_fault_unapplied: Option<u64>,
    /// Synchronous replication as the primary counted it just before the
    /// fault; absent for asynchronous replication.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync: Option<SyncCycle>,
    /// The failover after the primary's host was lost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failover: Option<FailoverTimes>,
    /// When the primary's host was lost, in milliseconds after the fault
    /// began (later than 0 when a partition came first).
    pub host_lost_after_ms: Option<f64>,
    /// Seconds of acknowledged writes lost: 0 when none was; otherwise
    /// from the last acknowledged commit that survived on the new primary
    /// to the loss of the primary's host (to the fault, when no host was
    /// lost).
    pub rpo_s: Option<f64>,
    /// Commits the load had acknowledged after the host was lost, counted
    /// from the ack log: after a storage host's loss, the writes the
    /// volume kept taking without it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acked_after_loss: Option<u64>,
    /// Replication settings the scenario's `server-args` set, in force
    /// instead of crashlab's own defaults for them, as the command line
    /// has them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub user_settings: Vec<String>,
}

/// Synchronous replication's own counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SyncCycle {
    /// Still in force at the fault.
    pub on: bool,
    /// Commits a replica acknowledged before the client was answered;
    /// absent where the engine counts none (PostgreSQL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acknowledged: Option<u64>,
    /// Commits answered without it (after a timeout): a fallback; absent
    /// where the engine counts none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unacknowledged: Option<u64>,
    pub fell_back: bool,
}

/// The recovery time of a failover and its parts, measured back to back:
/// the harness's monitor seeing the primary gone, the database promoting
/// the replica, a client's first acknowledged write on the new primary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FailoverTimes {
    pub detection_ms: f64,
    pub promotion_ms: f64,
    pub reconnection_ms: f64,
    /// The sum: fault to first acknowledged write on the new primary.
    pub rto_ms: f64,
}

/// What a cycle's fault did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fired {
    /// The fault did what it names: the kill landed, the rule matched, the
    /// cut found unsynced data to drop or tear.
    pub fired: bool,
    /// What it did, or why it did not, in a sentence.
    pub what: String,
}

/// Wall-clock milliseconds of a cycle's steps. `cycle_ms` runs from the
/// start of `setup` to the end of `verify`; waiting for the server before
/// it (`ready_ms`, which includes deploying it when the cycle did) is not
/// part of it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PhaseTimes {
    pub ready_ms: f64,
    /// Creating the dataset afresh.
    pub setup_ms: f64,
    /// Doing the damage (e.g. the kill call).
    pub inject_ms: f64,
    /// From the end of the damage until every load client had stopped
    /// (summed over a schedule's loads).
    pub drain_ms: f64,
    /// From the end of the damage until the service answered again,
    /// summed over a schedule's recoveries (the cycle's `recovery_ms` is
    /// the last one's).
    pub recover_ms: f64,
    /// Reading the data back, the engine's checks and the ack-log check.
    pub verify_ms: f64,
}

/// The fault filesystem's part in one cycle: enough to replay it (seed and
/// rules) and to see whether the injected fault actually fired.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultFsCycle {
    /// Seed of the mount(s) in effect during the cycle (it decides which
    /// sectors of a torn write survive), in mount order: a power cut and
    /// remount adds one.
    pub seeds: Vec<u64>,
    /// Rules installed during the cycle, in the fault filesystem's text
    /// form, in order.
    pub rules: Vec<String>,
    /// Operations the rules failed with `EIO` or `ENOSPC`.
    pub injected_errors: u64,
    /// Unsynced bytes, files and directory-entry operations discarded by
    /// the power cut; zero without one.
    pub power_cut_dirty_bytes: u64,
    pub power_cut_dirty_files: u64,
    pub power_cut_namespace_ops: u64,
    /// Writes the power cut tore rather than dropped whole.
    pub torn_writes: u64,
    /// When the cut was aimed (held until a write had something to tear),
    /// the size of the unsynced write it landed on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aimed_cut_write_bytes: Option<u64>,
    /// How long after it was armed (the fault's instant) the aimed cut
    /// landed: a `host-kill` cut waits, within a window, for the write with
    /// the most at stake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aimed_cut_after_ms: Option<f64>,
    /// `fsync`s (and synchronous writes) the workload issued during the
    /// cycle.
    pub fsyncs: u64,
    /// Bytes the workload wrote during the cycle (what a `disk-full`
    /// budget is measured against).
    #[serde(default)]
    pub bytes_written: u64,
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

    #[test]
    fn reports_without_the_fault_filesystem_fields_still_parse() {
        let mut report = markdown::tests::sample_report();
        report.unsupported.clear();
        let mut json: serde_json::Value = serde_json::to_value(&report).unwrap();
        assert!(json.get("unsupported").is_none(), "empty lists are left out");
        json.as_object_mut().unwrap().remove("unsupported");
        for cell in json["cells"].as_array_mut().unwrap() {
            cell.as_object_mut().unwrap().remove("fault_rules");
            for cycle in cell["cycle_details"].as_array_mut().unwrap() {
                cycle.as_object_mut().unwrap().remove("faultfs");
            }
        }
        let back: Report = serde_json::from_value(json).unwrap();
        assert!(back.unsupported.is_empty());
        assert!(back.cells.iter().all(|c| c.fault_rules.is_empty()));
    }

    #[test]
    fn the_json_format_round_trips_with_timelines_and_reports_without_them_still_load() {
        let report = markdown::tests::sample_report();
        let json = to_json(&report);
        assert!(json.ends_with("}\n") && json.contains("\"timeline\": {") && json.contains("\"p99_ms\""), "{json}");
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back, report);
        // A report.json from before timelines: no `timeline` in any cycle.
        let mut old: serde_json::Value = serde_json::from_str(&json).unwrap();
        for cell in old["cells"].as_array_mut().unwrap() {
            for cycle in cell["cycle_details"].as_array_mut().unwrap() {
                assert!(cycle.as_object_mut().unwrap().remove("timeline").is_some());
            }
        }
        let back: Report = serde_json::from_value(old).unwrap();
        assert_eq!(back.schema_version, SCHEMA_VERSION);
        assert!(back.cells.iter().all(|c| c.cycle_details.iter().all(|d| d.timeline.is_none())));
    }
}
