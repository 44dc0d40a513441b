//! The runner: runs the plan's cells, up to `jobs` at once, and, per cell,
//! cycle by cycle: load → fault → recover → verify. Every step is announced
//! as an [`Event`]; reporters turn events into a terminal view and files.
//!
//! Cells run side by side share nothing but the daemon and the host: each
//! has its own containers, volumes, fault-filesystem mounts and btrfs pool
//! (all named after the cell), its own host port (picked by the daemon, or
//! by the kernel for backup strategies) and its own seeds, which derive
//! from its place in the plan and not from what runs beside it. They do
//! share the host's CPUs and disk, which is what `[matrix] cpus` and
//! `memory` are for. They run as futures of one task; the load clients,
//! the fault filesystems and blocking work run on their own threads.
//!
//! A cycle starts from a fresh dataset on the cell's deployment. When a
//! cycle ends with the server down or the harness unsure of its state (a
//! `corrupt` or `error` verdict), the deployment and its storage are thrown
//! away and the next cycle starts on new ones, so one bad cycle cannot
//! decide the next.

mod hooks;
mod phases;
mod recheck;
mod schedule;
pub mod timeline;
mod user_check;

use crate::backup::Backups;
use crate::deploy::deployment::{Deployment, Limits};
use crate::deploy::readiness::NotReady;
use crate::docker::Docker;
use crate::events::{Event, Phase, Reporter};
use crate::run::RunContext;
use crate::scenario::{Cell, Scenario};
use crate::storage::{DataOn, FaultFsOptions, Place, ProvisionOptions, Storage};
use crate::text::error_chain;
use crashlab_reports::{
    BackupCycle, BackupSummary, CellReport, CycleReport, LatencySummary, Spread, Stall, Verdict, VolumeDriver,
};
use crashlab_workloads::{LoadConfig, Workload, latency_histogram};
use futures_util::StreamExt as _;
use hdrhistogram::Histogram;
use phases::{CycleFailure, CycleRun};
use std::cell::RefCell;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How long load clients get to notice a stop before they are aborted.
const CLIENT_GRACE: Duration = Duration::from_secs(5);

/// The longest a second look at a broken dataset waits for the engine to
/// finish its own recovery.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a second look asks whether the engine is still recovering.
const SETTLE_POLL: Duration = Duration::from_millis(200);
/// The wait before a second look when the workload cannot tell whether its
/// engine is still recovering.
const SETTLE_BLIND: Duration = Duration::from_secs(5);

/// One reporter lent to every running cell in turn: events are delivered
/// synchronously, so no borrow outlives a call.
struct Shared<'a, 'r>(&'a RefCell<&'r mut dyn Reporter>);

impl Reporter for Shared<'_, '_> {
    fn on_event(&mut self, event: &Event<'_>) {
        self.0.borrow_mut().on_event(event);
    }
}

/// Drives one scenario.
pub struct Runner<'a> {
    pub docker: Docker,
    pub run: RunContext,
    pub scenario: &'a Scenario,
    pub workload: Box<dyn Workload>,
    pub cancel: watch::Receiver<bool>,
    /// Leave each cell's last deployment in place (`--keep`).
    pub keep: bool,
}

/// A finished cycle and the latencies of its load.
struct CycleResult {
    report: CycleReport,
    latency_us: Option<Histogram<u64>>,
    /// The deployment is no longer trustworthy and must be replaced.
    discard: bool,
}

impl Runner<'_> {
    fn cancelled(&self) -> bool {
        *self.cancel.borrow()
    }

    /// Runs every cell, up to `jobs` at once, starting them in plan order;
    /// the reports come back in plan order. Stops early, between steps,
    /// once cancelled: cells not started by then never start, and only
    /// the cells that finished every cycle are returned.
    pub async fn run(&self, cells: &[Cell], jobs: usize, reporter: &mut dyn Reporter) -> Vec<CellReport> {
        let shared = RefCell::new(reporter);
        let shared = &shared;
        let mut finished: Vec<(usize, CellReport)> = futures_util::stream::iter(cells.iter().enumerate())
            .map(|(position, cell)| async move {
                if self.cancelled() {
                    return None;
                }
                let mut reporter = Shared(shared);
                reporter.on_event(&Event::CellStarted { cell });
                let report = self.run_cell(cell, &mut reporter).await;
                if self.cancelled() && report.verdicts.len() < self.scenario.matrix.cycles as usize {
                    return None;
                }
                reporter.on_event(&Event::CellFinished { cell, report: &report });
                Some((position, report))
            })
            .buffer_unordered(jobs.max(1))
            .filter_map(std::future::ready)
            .collect()
            .await;
        finished.sort_by_key(|(position, _)| *position);
        finished.into_iter().map(|(_, report)| report).collect()
    }

    async fn run_cell(&self, cell: &Cell, reporter: &mut dyn Reporter) -> CellReport {
        let mut deployment: Option<Deployment> = None;
        let mut backups =
            Backups::new(cell.strategy, &self.scenario.backup, &self.docker, &self.run, &self.cell_name(cell));
        let mut cycles = Vec::new();
        let mut latency = latency_histogram();
        // What the driver of a `volume:` strategy declared, from the
        // first volume it made.
        let mut scope: Option<String> = None;
        for cycle in 0..self.scenario.matrix.cycles {
            if self.cancelled() {
                break;
            }
            let result = self.run_cycle(cell, cycle, &mut deployment, backups.as_mut(), reporter).await;
            if self.cancelled() {
                break;
            }
            if scope.is_none() {
                scope = deployment.as_ref().and_then(|d| d.storage().driver_scope()).map(str::to_owned);
            }
            if let Some(h) = &result.latency_us {
                latency.add(h).expect("histograms share bounds");
            }
            if result.discard {
                self.teardown(deployment.take()).await;
            }
            reporter.on_event(&Event::CycleFinished { cell, cycle, report: &result.report });
            cycles.push(result.report);
        }
        let backup_method = backups.as_ref().map(Backups::method);
        if self.keep {
            // --keep: leave the cell's last container and storage for a
            // look; the run-wide cleanup is skipped too.
            if let Some(d) = deployment.take() {
                d.leak();
            }
        } else {
            self.teardown(deployment.take()).await;
            if let Some(b) = backups.take() {
                b.teardown().await;
            }
        }
        let mut report = summarise(self.scenario, cell, cycles, &latency);
        report.volume_driver = cell.strategy.driver_volume().map(|v| VolumeDriver {
            driver: v.driver.clone(),
            options: v.option_texts(),
            scope: scope.unwrap_or_else(|| "unknown (no volume was made)".to_owned()),
            loop_device: v.loop_fs().ok().flatten().map(|fs| format!("{} {}", fs.fstype, fs.size)),
        });
        if let Some(method) = backup_method {
            report.backup = Some(summarise_backups(method, self.scenario.backup.interval, &report.cycle_details));
        }
        report
    }

    /// Runs one cycle of `cell` on the deployment in `slot`, deploying one
    /// when the slot is empty or its storage does not suit the cell's
    /// faults, and leaves it there for the next call unless the cycle
    /// broke it: `crashlab explore`'s schedules on one strategy share it,
    /// each on a fresh dataset, as a cell's cycles do. Backup strategies
    /// are not run this way. `None` when cancelled.
    pub async fn run_on(
        &self,
        cell: &Cell,
        slot: &mut Option<Deployment>,
        reporter: &mut dyn Reporter,
    ) -> Option<CellReport> {
        let faultfs = cell.faults().iter().any(|f| f.needs_faultfs(cell.strategy));
        if let Some(d) = slot.as_mut()
            && d.faultfs_mut().is_some() != faultfs
        {
            self.teardown(slot.take()).await;
        }
        reporter.on_event(&Event::CellStarted { cell });
        let result = self.run_cycle(cell, 0, slot, None, reporter).await;
        if result.discard {
            self.teardown(slot.take()).await;
        }
        if self.cancelled() {
            return None;
        }
        reporter.on_event(&Event::CycleFinished { cell, cycle: 0, report: &result.report });
        let mut latency = latency_histogram();
        if let Some(h) = &result.latency_us {
            latency.add(h).expect("histograms share bounds");
        }
        let report = summarise(self.scenario, cell, vec![result.report], &latency);
        reporter.on_event(&Event::CellFinished { cell, report: &report });
        Some(report)
    }

    /// Tears down a deployment [`Self::run_on`] kept.
    pub async fn release(&self, slot: Option<Deployment>) {
        self.teardown(slot).await;
    }

    /// The base of the names of a cell's containers and volumes.
    fn cell_name(&self, cell: &Cell) -> String {
        self.run.object_name(&format!("c{}-{}-{}", cell.index, cell.strategy.object_part(), cell.fault))
    }

    async fn teardown(&self, deployment: Option<Deployment>) {
        if let Some(d) = deployment
            && let Err(e) = d.teardown().await
        {
            // The run-wide cleanup removes what is left by label.
            tracing::warn!("teardown failed: {e}");
        }
    }

    fn load_config(&self, cell: &Cell, cycle: u32) -> LoadConfig {
        let w = &self.scenario.workload;
        let seed =
            self.scenario.seed ^ ((cell.index as u64) << 32 | u64::from(cycle)).wrapping_mul(0x2545_f491_4f6c_dd1d);
        LoadConfig {
            clients: w.clients,
            accounts: w.accounts,
            seed,
            reconnect: cell.strategy.is_backup(),
            ids_from: 0,
            replicas: cell.strategy.def().data_on.members().map_or(1, u32::from),
        }
    }

    async fn deploy(&self, cell: &Cell, backups: Option<&mut Backups>) -> Result<Deployment, String> {
        let needs = backups.as_ref().map(|b| b.server_needs()).transpose().map_err(|e| error_chain(&e))?;
        let spec = self.workload.container();
        if cell.strategy.def().data_on == DataOn::WritableLayer {
            // An image that declares its data directory a VOLUME gets an
            // anonymous volume there whatever the harness asks, so the
            // writable layer is never what is tested.
            let image = self.docker.image(&spec.image).await.map_err(|e| error_chain(&e))?;
            let volumes = image.and_then(|i| i.config).and_then(|c| c.volumes).unwrap_or_default();
            if volumes.iter().any(|v| v.trim_end_matches('/') == spec.data_dir.trim_end_matches('/')) {
                return Err(format!(
                    "image {} declares VOLUME {}, so its data never lives in the container's writable layer",
                    spec.image, spec.data_dir
                ));
            }
        }
        let name = self.cell_name(cell);
        let faults = cell.faults();
        let faultfs = faults.iter().any(|f| f.needs_faultfs(cell.strategy)).then(|| FaultFsOptions {
            seed: self.scenario.seed ^ (cell.index as u64 + 1).wrapping_mul(0xd6e8_feb8_6659_fd93),
            fsync_reaches_disk: self.scenario.faults.fsync_reaches_disk,
            record_history: faults.iter().any(|f| f.records_history()),
            fsync_failure: crashlab_faultfs::FsyncFailure::Ext4,
        });
        let driver_history = faults.iter().any(|f| f.records_history());
        let options = ProvisionOptions { faultfs, ballast: self.scenario.backup.ballast, driver_history };
        let storage = Storage::provision(&self.docker, &self.run, &Place::Strategy(cell.strategy), &name, options)
            .await
            .map_err(|e| error_chain(&e))?;
        let mut uploads = Vec::new();
        if let Some(dir) = self.workload.agent_dir() {
            // Checked before the run started; this only fails if the
            // binary went away since.
            uploads.push((dir.to_owned(), crate::deploy::agent::locate().map_err(|e| error_chain(&e))?));
        }
        let limits = Limits { cpus: self.scenario.matrix.cpus, memory: self.scenario.matrix.memory };
        let mut d = Deployment::new(self.docker.clone(), self.run.clone(), spec, storage, name)
            .with_uploads(uploads)
            .with_limits(limits);
        if cell.strategy.is_backup() {
            d = match d.with_pinned_port() {
                Ok(d) => d,
                Err(e) => return Err(format!("could not pick a host port: {e}")),
            };
        }
        if let Some((backups, needs)) = backups.zip(needs) {
            d = backups.dress(d, needs);
        }
        if let Some(members) = cell.strategy.def().data_on.members() {
            let ready = self.scenario.workload.ready_timeout;
            let cluster = (cell.strategy, members);
            return crate::deploy::hosts::peers::deploy(
                &self.docker,
                &self.run,
                &*self.workload,
                d,
                cluster,
                options,
                ready,
            )
            .await
            .map_err(|e| error_chain(&e));
        }
        if let Some(mode) = cell.strategy.def().data_on.replication() {
            let ready = self.scenario.workload.ready_timeout;
            return crate::deploy::hosts::deploy(&self.docker, &self.run, &*self.workload, d, mode, ready)
                .await
                .map_err(|e| error_chain(&e));
        }
        if let Err(e) = d.create().await {
            self.teardown(Some(d)).await;
            return Err(error_chain(&e));
        }
        if let Err(e) = d.start().await {
            self.teardown(Some(d)).await;
            return Err(error_chain(&e));
        }
        Ok(d)
    }

    /// Reads a broken dataset back again and checks it again, once the
    /// engine says it has finished its own recovery (polled up to
    /// [`SETTLE_TIMEOUT`]), or [`SETTLE_BLIND`] later when the workload
    /// cannot tell; says what it found, for the cycle's detail. The first
    /// look came as soon as the server answered, which with InnoDB may be
    /// while it still rolls back the transactions it recovered.
    async fn second_look(
        &self,
        deployment: &Deployment,
        addr: SocketAddr,
        log: &crashlab_workloads::AckLog,
        accounts: u32,
    ) -> String {
        let waited = Instant::now();
        let mut at_first = None;
        let settled = loop {
            match self.workload.recovering(addr).await {
                Ok(None) => {
                    tokio::time::sleep(SETTLE_BLIND).await;
                    break "whether the server had finished its recovery unknown";
                }
                Ok(Some(recovering)) => {
                    let at_first = *at_first.get_or_insert(recovering);
                    if !recovering {
                        break if at_first {
                            "once the server had finished its recovery (still under way when the first look ended)"
                        } else {
                            "the server's recovery already over when the first look ended"
                        };
                    }
                    if waited.elapsed() >= SETTLE_TIMEOUT {
                        break "the server still recovering";
                    }
                    tokio::time::sleep(SETTLE_POLL).await;
                }
                Err(e) => return format!("a second look failed: could not ask the server: {}", error_chain(&e)),
            }
        };
        let again = match deployment.verify(&*self.workload, addr, log, accounts).await {
            Ok(found) => found,
            Err(e) => return format!("a second look failed: {e}"),
        };
        let found = if again.detail.is_empty() {
            again.verdict.to_string()
        } else {
            format!("{} ({})", again.verdict, again.detail)
        };
        format!("a second look {:.1} s later, {settled}, found: {found}", waited.elapsed().as_secs_f64())
    }

    async fn wait_ready(&self, d: &Deployment) -> Result<SocketAddr, NotReady> {
        d.wait_ready(&*self.workload, self.scenario.workload.ready_timeout, Some(&self.cancel)).await
    }

    /// One cycle, phase by phase, with what the fault filesystem under the
    /// data (if any) did during it.
    async fn run_cycle(
        &self,
        cell: &Cell,
        cycle: u32,
        slot: &mut Option<Deployment>,
        mut backups: Option<&mut Backups>,
        reporter: &mut dyn Reporter,
    ) -> CycleResult {
        // The cycle's clock starts once the server is up: deploying it is
        // timed apart, since only some cycles deploy.
        let started = Instant::now();
        if slot.is_none() {
            reporter.on_event(&Event::Phase { cell, cycle, phase: Phase::Deploy });
            match self.deploy(cell, backups.as_deref_mut()).await {
                Ok(d) => *slot = Some(d),
                Err(e) => return failed(phases::empty_report(), &CycleFailure::Deploy(e), started),
            }
        }
        let deployment = slot.as_mut().expect("deployed above");
        let hooks = hooks::for_cell(cell, backups);
        let mut result = {
            let mut run = CycleRun::new(self, cell, cycle, reporter, deployment, hooks, started);
            let outcome = run.steps().await;
            match outcome {
                Ok(()) => {
                    run.report.cycle_ms = ms(run.started);
                    // A deployment that lost a host is rebuilt whole for the
                    // next cycle.
                    let discard = run.report.verdict >= Verdict::Corrupt || run.deployment.degraded();
                    let latency_us = run.loaded.take().map(|l| l.outcome.latency_us);
                    CycleResult { report: run.report, latency_us, discard }
                }
                Err(failure) => {
                    let latency_us = match failure {
                        CycleFailure::NotBack { .. } => run.loaded.take().map(|l| l.outcome.latency_us),
                        _ => None,
                    };
                    let mut result = failed(run.report, &failure, run.started);
                    result.latency_us = latency_us;
                    result
                }
            }
        };
        if let Some(fs) = slot.as_mut().and_then(Deployment::faultfs_mut) {
            result.report.faultfs = Some(fs.end_cycle());
        }
        result
    }
}

/// A cycle that ended on `failure`: its verdict and detail, and a
/// deployment no longer to be trusted.
fn failed(mut report: CycleReport, failure: &CycleFailure, started: Instant) -> CycleResult {
    report.verdict = failure.verdict();
    report.detail = failure.to_string();
    report.cycle_ms = ms(started);
    CycleResult { report, latency_us: None, discard: true }
}

/// Folds a cell's cycles into its report.
fn summarise(scenario: &Scenario, cell: &Cell, cycles: Vec<CycleReport>, latency_us: &Histogram<u64>) -> CellReport {
    let verdicts: Vec<Verdict> = cycles.iter().map(|c| c.verdict).collect();
    let mut fault_rules: Vec<String> = Vec::new();
    for rule in cycles.iter().filter_map(|c| c.faultfs.as_ref()).flat_map(|f| &f.rules) {
        if !fault_rules.contains(rule) {
            fault_rules.push(rule.clone());
        }
    }
    let verdict = Verdict::worst(verdicts.iter().copied()).unwrap_or(Verdict::Error);
    let sum = |f: fn(&CycleReport) -> u64| cycles.iter().map(f).sum::<u64>();
    let acked = sum(|c| c.acked_writes);
    let load_s: f64 = cycles.iter().map(|c| c.load_s).sum();
    let ms = |q: f64| latency_us.value_at_quantile(q) as f64 / 1e3;
    let latency_ms = if latency_us.is_empty() {
        LatencySummary::default()
    } else {
        LatencySummary { p50: ms(0.5), p95: ms(0.95), p99: ms(0.99), max: latency_us.max() as f64 / 1e3 }
    };
    let recovery_ms = Spread::of(cycles.iter().filter_map(|c| c.recovery_ms));
    CellReport {
        workload: scenario.workload.kind.as_str().to_owned(),
        strategy: cell.strategy.to_string(),
        fault: cell.fault_name(),
        cycles: cycles.len() as u32,
        verdict,
        passed: verdict.meets(cell.expected) && cycles.len() == scenario.matrix.cycles as usize,
        verdicts,
        expected: cell.expected,
        acked_writes: acked,
        lost_acked_writes: sum(|c| c.lost_acked_writes),
        in_doubt_writes: sum(|c| c.in_doubt_writes),
        invariant_violations: sum(|c| c.invariant_violations),
        throughput_tps: if load_s > 0.0 { acked as f64 / load_s } else { 0.0 },
        latency_ms,
        recovery_ms,
        cycle_details: cycles,
        fault_rules,
        backup: None,
        family: Some(cell.strategy.def().family()),
        volume_driver: None,
    }
}

/// Folds the backup figures of a cell's cycles.
fn summarise_backups(method: String, interval: Duration, cycles: &[CycleReport]) -> BackupSummary {
    let with_backups: Vec<(&CycleReport, &BackupCycle)> =
        cycles.iter().filter_map(|c| c.backup.as_ref().map(|b| (c, b))).collect();
    let records = || with_backups.iter().flat_map(|(_, b)| &b.backups);
    let done = || records().filter(|r| r.error.is_none());
    let lost_host: Vec<&(&CycleReport, &BackupCycle)> =
        with_backups.iter().filter(|(_, b)| b.rpo_s.is_some()).collect();
    let restores: Vec<&(&CycleReport, &BackupCycle)> =
        with_backups.iter().filter(|(_, b)| b.restored.is_some()).collect();
    let mut stall = Stall::default();
    for (_, b) in &with_backups {
        let s = &b.stall;
        stall.window_tps += s.window_tps * s.window_s;
        stall.outside_tps += s.outside_tps * s.outside_s;
        stall.window_s += s.window_s;
        stall.outside_s += s.outside_s;
        // Percentiles do not add up across cycles: the worst cycle's.
        stall.window_p99_ms = stall.window_p99_ms.max(s.window_p99_ms);
        stall.outside_p99_ms = stall.outside_p99_ms.max(s.outside_p99_ms);
        stall.window_max_ms = stall.window_max_ms.max(s.window_max_ms);
        stall.outside_max_ms = stall.outside_max_ms.max(s.outside_max_ms);
    }
    stall.window_tps = if stall.window_s > 0.0 { stall.window_tps / stall.window_s } else { 0.0 };
    stall.outside_tps = if stall.outside_s > 0.0 { stall.outside_tps / stall.outside_s } else { 0.0 };
    BackupSummary {
        method,
        interval_s: interval.as_secs_f64(),
        backups: done().count() as u32,
        failed_backups: records().filter(|r| r.error.is_some()).count() as u32,
        duration_ms: Spread::of(done().map(|r| r.duration_ms)),
        bytes: Spread::of(done().map(|r| r.bytes as f64)),
        rpo_commits_max: lost_host.iter().map(|(c, _)| c.lost_acked_writes).max(),
        rpo_s_max: lost_host.iter().filter_map(|(_, b)| b.rpo_s).max_by(f64::total_cmp),
        restore_ms: Spread::of(with_backups.iter().filter_map(|(_, b)| b.restore_ms)),
        rto_ms: Spread::of(restores.iter().filter_map(|(c, _)| c.recovery_ms)),
        restore_steps: crashlab_reports::StepSpread::of(with_backups.iter().map(|(_, b)| b.restore_steps.as_slice())),
        restores: restores.len() as u32,
        consistent_restores: restores.iter().filter(|(c, _)| c.verdict <= Verdict::LostWrites).count() as u32,
        stall,
        repo_bytes_max: done().filter_map(|r| r.repo_bytes).max().map(|b| b as f64),
        tool_checks: with_backups.iter().filter(|(_, b)| b.tool_check.is_some()).count() as u32,
        tool_checks_passed: with_backups.iter().filter(|(_, b)| b.tool_check.as_ref().is_some_and(|t| t.passed)).count()
            as u32,
    }
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}
