//! `crashlab explore`: fault schedules as properties. Draws schedules
//! ([`crate::scenario::schedule`]) from a seed, runs each as a cell
//! through the normal phases and oracle, and when one fails, shrinks it:
//! each smaller candidate is replayed up to `replays` times and taken when
//! it fails at least `accept` of them (the system under test is not
//! deterministic, so a schedule fails at a rate, not always). The result is
//! the smallest failing schedule, its replay rate and its seed, printed as
//! a `[[schedule]]` to paste into the scenario, and stored in the
//! scenario's regressions file (`<scenario>.regressions.toml`), whose
//! schedules the next explore runs first.
//!
//! This is not the crash-state explorer (`crash-states`, [`crate::explore`]),
//! which checks the states one power cut may leave; here each schedule is
//! a whole cycle of several faults on live containers.

use super::{AppError, Stop, Supervised, connect, ensure_images, supervise, with_image_repo};
use crate::cycle::Runner;
use crate::events::{Event, Reporter};
use crate::run::{self, RunContext};
use crate::scenario::schedule::{self, Alphabet, Schedule};
use crate::scenario::{Cell, NamedSchedule, Scenario, ScenarioError, ScheduleEntry};
use crate::storage::Strategy;
use crate::text::{error_chain, line_column, toml_message};
use crate::workload::workload_for;
use crashlab_reports::schedules::{ExploreReport, Finding, ScheduleCost};
use crashlab_reports::{CellReport, Report, Verdict};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// Options of `crashlab explore`.
#[derive(Debug, Clone)]
pub struct ExploreOptions {
    pub scenario: PathBuf,
    /// How long to search for a failing schedule.
    pub budget: Duration,
    /// How long to shrink one; the search's budget when `None`.
    pub shrink_budget: Option<Duration>,
    /// The generator's seed; the scenario's when `None`.
    pub seed: Option<u64>,
    /// The strategy the schedules run on; the scenario's first that can
    /// take one of its faults when `None`.
    pub strategy: Option<Strategy>,
    /// At most this many faults a schedule.
    pub max_faults: u32,
    /// Most replays of a candidate while shrinking, and of the result for
    /// its rate.
    pub replays: u32,
    /// The share of a candidate's replays that must fail for it to be
    /// taken, in (0, 1].
    pub accept: f64,
    /// Schedules (or replays) run at once, each on its own deployment.
    pub jobs: u32,
    /// Write a found schedule into the regressions file.
    pub store: bool,
    /// Where the reports go; `crashlab-results/<run id>` when `None`.
    pub out: Option<PathBuf>,
    pub quiet: bool,
    pub mirror: String,
}

/// Reports nothing: explore prints its own progress, one line a schedule.
struct Silent;

impl Reporter for Silent {
    fn on_event(&mut self, _event: &Event<'_>) {}
}

/// The regressions file of the scenario at `path`: beside it, named after
/// it.
pub fn regressions_path(path: &Path) -> PathBuf {
    let stem = path.file_stem().map_or_else(|| "scenario".into(), |s| s.to_string_lossy().into_owned());
    path.with_file_name(format!("{stem}.regressions.toml"))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Regressions {
    #[serde(default)]
    schedule: Vec<ScheduleEntry>,
}

/// The schedules stored in a regressions file; none when it does not
/// exist.
pub fn read_regressions(path: &Path) -> Result<Vec<ScheduleEntry>, AppError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(source) => return Err(AppError::Io { what: "read", path: path.to_owned(), source }),
    };
    let parsed: Regressions = toml::from_str(&text).map_err(|e| {
        let (line, column) = e.span().map_or((1, 1), |s| line_column(&text, s.start));
        ScenarioError::Invalid {
            location: format!("{}:{line}:{column}", path.display()),
            message: toml_message(&text, &e),
        }
    })?;
    Ok(parsed.schedule)
}

/// Adds the schedules stored beside the scenario at `path` (its
/// regressions file) to its `[[schedule]]`s, so that `crashlab run` runs
/// each as a cell, `schedule-regression-<name>`, with the verdict it
/// stores as its expectation (`intact` unless edited): a found failure
/// fails the run until it is fixed. A stored schedule the scenario already
/// has (same strategy and steps, pasted) is not added twice. Returns how
/// many were added.
pub fn with_regressions(scenario: &mut Scenario, path: &Path) -> Result<usize, AppError> {
    let stored = read_regressions(&regressions_path(path))?;
    let mut added = 0;
    for (i, mut entry) in stored.into_iter().enumerate() {
        if scenario.schedule.iter().any(|s| s.strategy == entry.strategy && s.steps == entry.steps) {
            continue;
        }
        let name = entry.name.take().unwrap_or_else(|| (i + 1).to_string());
        entry.name = Some(format!("regression-{name}"));
        scenario.schedule.push(entry);
        added += 1;
    }
    Ok(added)
}

/// The faults schedules on `strategy` are drawn from: the scenario's that
/// the strategy can take and that take part in schedules.
fn alphabet(scenario: &Scenario, strategy: Strategy, max_faults: u32) -> Alphabet {
    let faults = scenario
        .matrix
        .faults
        .iter()
        .copied()
        .filter(|f| f.unsupported_on(strategy).is_none() && !f.records_history())
        .collect();
    Alphabet {
        faults,
        max_faults,
        max_load: scenario.workload.load,
        clients: scenario.workload.clients,
        replicated: strategy.def().data_on.replication().is_some(),
    }
}

/// The strategy to explore: the one asked for, else the scenario's first
/// whose cells run at least one fault that takes part in schedules.
fn pick_strategy(scenario: &Scenario, asked: Option<Strategy>, max_faults: u32) -> Result<Strategy, AppError> {
    let (cells, unsupported) = scenario.plan();
    let runs = |s: Strategy| {
        !s.is_backup()
            && cells.iter().any(|c| c.strategy == s && c.schedule.is_none() && !c.fault.records_history())
            && !alphabet(scenario, s, max_faults).faults.is_empty()
    };
    let candidates: Vec<Strategy> = match asked {
        Some(s) => vec![s],
        None => scenario.matrix.strategies.clone(),
    };
    candidates.into_iter().find(|s| runs(*s)).ok_or_else(|| AppError::NothingToRun {
        scenario: scenario.name.clone(),
        reasons: if unsupported.is_empty() {
            vec![
                "no fault of [matrix] faults runs in a schedule on the strategies asked for (backup strategies \
                  are not explored yet)"
                    .into(),
            ]
        } else {
            unsupported.iter().map(|u| format!("{}/{}: {}", u.strategy, u.fault, u.reason)).collect()
        },
    })
}

/// `crashlab explore`: returns 1 when a failing schedule was found (or a
/// stored one still fails), 0 when the budget ran out without one.
pub async fn explore(options: ExploreOptions) -> Result<i32, AppError> {
    let mut stop = Stop::listen()?;
    let mut scenario = Scenario::load(&options.scenario)?;
    with_image_repo(&mut scenario.workload);
    scenario.matrix.cycles = 1;
    let strategy = pick_strategy(&scenario, options.strategy, options.max_faults)?;
    let alphabet = alphabet(&scenario, strategy, options.max_faults);
    let regressions_file = regressions_path(&options.scenario);
    let regressions = read_regressions(&regressions_file)?;
    let docker = connect().await?;
    ensure_images(&docker, &scenario, &options.mirror, options.quiet).await?;
    if workload_for(&scenario.workload).agent_dir().is_some() {
        crate::deploy::agent::locate()?;
    }
    let state = run::state_dir();
    let ctx = RunContext::create(&state).map_err(|source| AppError::Io {
        what: "create the run directory under",
        path: state.clone(),
        source,
    })?;
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let runner = Runner {
        docker: docker.journaled(ctx.journal().clone()),
        run: ctx.clone(),
        scenario: &scenario,
        workload: workload_for(&scenario.workload),
        cancel: cancel_rx,
        keep: false,
    };
    let seed = options.seed.unwrap_or(scenario.seed);
    note!(
        "explore {}: scenario {} on {strategy}, faults {}, up to {} a schedule, seed {seed}, budget {:.0} s{}",
        ctx.id(),
        scenario.name,
        alphabet.faults.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
        alphabet.max_faults,
        options.budget.as_secs_f64(),
        if regressions.is_empty() {
            String::new()
        } else {
            format!(", {} stored schedule(s) first", regressions.len())
        }
    );
    let mut search = Search {
        runner: &runner,
        options: &options,
        strategy,
        alphabet,
        seed,
        index: 0,
        tried: 0,
        slots: Vec::new(),
        slot_for: None,
        faults: 0,
        errors: 0,
        findings: Vec::new(),
        cost: ScheduleCost { jobs: options.jobs, ..ScheduleCost::default() },
    };
    let started = (Instant::now(), SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()));
    let work = async {
        let code = search.run(regressions, &regressions_file).await;
        for slot in &mut search.slots {
            runner.release(slot.take()).await;
        }
        code
    };
    let outcome = supervise(&mut stop, &cancel_tx, work).await;
    let environment = crate::report::environment::capture(&docker, &state).await;
    if let Err(e) = crate::cleanup::cleanup_run(&docker, &state, ctx.id()).await {
        note!("warning: cleanup of run {} failed: {}; run `crashlab clean`", ctx.id(), error_chain(&e));
    }
    if matches!(outcome, Supervised::Done { .. }) {
        let report = explore_report(&scenario, ctx.id(), &search, environment, started);
        let out = options.out.clone().unwrap_or_else(|| PathBuf::from("crashlab-results").join(ctx.id()));
        crate::report::write_files(&report, &out).map_err(|source| AppError::Io {
            what: "write the reports to",
            path: out.clone(),
            source,
        })?;
        note!("reports: {}", out.display());
    }
    match outcome {
        Supervised::Done { value, stopped: Some(code) } => value.map(|_| code),
        Supervised::Done { value, stopped: None } => value,
        Supervised::Abandoned(code) => Ok(code),
        Supervised::Panicked(panic) => std::panic::resume_unwind(panic),
    }
}

/// A schedule's replays: how many failed, of how many, and the worst.
struct Replays {
    failed: u32,
    runs: u32,
    worst: Option<CellReport>,
}

/// A failure: a verdict worse than `intact` that is not the harness's own
/// `error` (no evidence either way).
fn failed(report: &CellReport) -> bool {
    report.verdict != Verdict::Error && report.verdict > Verdict::Intact
}

/// What a cell's one cycle said, in a line.
fn said(report: &CellReport) -> String {
    let detail = report.cycle_details.first().map(|c| c.detail.as_str()).unwrap_or_default();
    let detail: String = detail.chars().take(160).collect();
    if detail.is_empty() { report.verdict.to_string() } else { format!("{} ({detail})", report.verdict) }
}

struct Search<'a, 'r> {
    runner: &'r Runner<'a>,
    options: &'r ExploreOptions,
    strategy: Strategy,
    alphabet: Alphabet,
    seed: u64,
    /// Cells run so far: each run is a cell of its own index, so that its
    /// containers and load seeds are its own.
    index: usize,
    /// Schedules drawn and run.
    tried: u64,
    /// The deployment schedules share while none breaks it, and its
    /// strategy.
    slots: Vec<Option<crate::deploy::deployment::Deployment>>,
    slot_for: Option<Strategy>,
    /// Faults the drawn schedules injected, and schedules that ended
    /// `error`.
    faults: u64,
    errors: u64,
    /// The stored schedules replayed and the failure found, for the report.
    findings: Vec<Finding>,
    /// The drawn schedules' time, summed.
    cost: ScheduleCost,
}

/// The CPU time this process has used, user and system, all threads
/// (`/proc/self/stat`'s `utime` and `stime`, in clock ticks of 10 ms: a
/// single schedule's figure is coarse, a sum over many is not); zero
/// where it cannot be read.
fn cpu_time() -> Duration {
    const TICK: Duration = Duration::from_millis(10);
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return Duration::ZERO };
    // The command name is in parentheses and may hold spaces: the fields
    // counted from after it, `utime` and `stime` are the 12th and 13th.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let ticks: u32 = [11, 12].iter().filter_map(|&i| fields.get(i)?.parse::<u32>().ok()).sum();
    TICK * ticks
}

/// Adds one drawn schedule's run to `sum`: its wall and CPU time, and the
/// phase clocks of its cycle.
fn add_cost(sum: &mut ScheduleCost, schedule: &Schedule, report: &CellReport, wall: Duration, cpu: Duration) {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let load: Duration = schedule
        .steps()
        .iter()
        .map(|s| if let schedule::Step::Load { length, .. } = s { *length } else { Duration::ZERO })
        .sum();
    let Some(cycle) = report.cycle_details.first() else { return };
    let p = &cycle.phases;
    let recovery = p.recover_ms;
    let parts = p.ready_ms + p.setup_ms + ms(load) + p.inject_ms + p.drain_ms + recovery + p.verify_ms;
    sum.schedules += 1;
    sum.wall_ms += ms(wall);
    sum.ready_ms += p.ready_ms;
    sum.setup_ms += p.setup_ms;
    sum.load_ms += ms(load);
    sum.fault_ms += p.inject_ms + p.drain_ms;
    sum.recovery_ms += recovery;
    sum.verify_ms += p.verify_ms;
    sum.own_ms += (ms(wall) - parts).max(0.0);
    sum.cpu_ms += ms(cpu);
}

/// `sum`'s figures per schedule; `None` when it counts none.
fn mean_cost(sum: &ScheduleCost) -> Option<ScheduleCost> {
    let n = sum.schedules as f64;
    (sum.schedules > 0).then(|| ScheduleCost {
        schedules: sum.schedules,
        elapsed_ms: sum.elapsed_ms,
        jobs: sum.jobs,
        wall_ms: sum.wall_ms / n,
        ready_ms: sum.ready_ms / n,
        setup_ms: sum.setup_ms / n,
        load_ms: sum.load_ms / n,
        fault_ms: sum.fault_ms / n,
        recovery_ms: sum.recovery_ms / n,
        verify_ms: sum.verify_ms / n,
        own_ms: sum.own_ms / n,
        cpu_ms: sum.cpu_ms / n,
    })
}

impl Search<'_, '_> {
    fn cancelled(&self) -> bool {
        *self.runner.cancel.borrow()
    }

    /// Runs `schedules` on `strategy` at once, each on a deployment of its
    /// own (kept for the next batch while none breaks it), and returns
    /// each one's report and how long it took, in order; `None` for one
    /// interrupted. Each run is a cell of its own index, so that its
    /// containers and load seeds are its own.
    async fn batch(&mut self, strategy: Strategy, schedules: &[Schedule]) -> Vec<Option<(CellReport, Duration)>> {
        if self.slot_for.replace(strategy).is_some_and(|s| s != strategy) {
            for slot in &mut self.slots {
                self.runner.release(slot.take()).await;
            }
        }
        let cells: Vec<Cell> = schedules
            .iter()
            .map(|schedule| {
                let index = self.index;
                self.index += 1;
                Cell {
                    index,
                    strategy,
                    fault: schedule.faults().next().expect("a schedule has a fault"),
                    expected: Verdict::Intact,
                    schedule: Some(NamedSchedule { name: format!("x{index}"), schedule: schedule.clone() }),
                }
            })
            .collect();
        if self.slots.len() < cells.len() {
            self.slots.resize_with(cells.len(), || None);
        }
        let runner = self.runner;
        let runs = cells.iter().zip(self.slots.iter_mut()).map(|(cell, slot)| async move {
            let started = Instant::now();
            let report = runner.run_on(cell, slot, &mut Silent).await?;
            Some((report, started.elapsed()))
        });
        futures_util::future::join_all(runs).await
    }

    /// Runs `schedule` up to `k` times, `--jobs` at once; with `need`,
    /// stops as soon as it has failed `need` times or can no longer.
    async fn replay(&mut self, strategy: Strategy, schedule: &Schedule, k: u32, need: Option<u32>) -> Replays {
        let mut r = Replays { failed: 0, runs: 0, worst: None };
        while r.runs < k && !self.cancelled() {
            let at_once = self.options.jobs.min(k - r.runs).max(1) as usize;
            let reports = self.batch(strategy, &vec![schedule.clone(); at_once]).await;
            let interrupted = reports.iter().any(Option::is_none);
            for (report, _) in reports.into_iter().flatten() {
                r.runs += 1;
                if failed(&report) {
                    r.failed += 1;
                }
                if r.worst.as_ref().is_none_or(|w| !failed(w) || (failed(&report) && report.verdict > w.verdict)) {
                    r.worst = Some(report);
                }
            }
            let decided = need.is_some_and(|need| r.failed >= need || r.failed + (k - r.runs) < need);
            if interrupted || decided {
                break;
            }
        }
        r
    }

    /// The stored schedules first, then schedules drawn from the seed until
    /// one fails or the budget is spent; a failing one is shrunk, printed
    /// and stored. Returns the exit code.
    async fn run(&mut self, regressions: Vec<ScheduleEntry>, file: &Path) -> Result<i32, AppError> {
        let k = self.options.replays;
        // The budget counts from the start: the stored schedules are part
        // of the search.
        let started = Instant::now();
        let mut still_failing = 0;
        for (i, entry) in regressions.iter().enumerate() {
            let r = self.replay(entry.strategy, &entry.steps, k, None).await;
            let name = entry.name.clone().unwrap_or_else(|| (i + 1).to_string());
            let verdict = r.worst.as_ref().map_or_else(|| "interrupted".into(), said);
            note!("stored schedule {name} on {}: {verdict}; failed {} of {} replays", entry.strategy, r.failed, r.runs);
            still_failing += u32::from(r.failed > 0);
            self.findings.push(finding(
                format!("stored {name} on {}", entry.strategy),
                &entry.steps,
                &r,
                r.worst.as_ref(),
            ));
        }
        while started.elapsed() < self.options.budget && !self.cancelled() {
            let drawn: Vec<Schedule> = (self.tried..self.tried + u64::from(self.options.jobs.max(1)))
                .map(|n| schedule::generate(self.seed, n, &self.alphabet))
                .collect();
            let (wall, cpu) = (Instant::now(), cpu_time());
            let reports = self.batch(self.strategy, &drawn).await;
            let ran = reports.iter().flatten().count() as u32;
            let cpu_each = cpu_time().saturating_sub(cpu) / ran.max(1);
            self.cost.elapsed_ms += wall.elapsed().as_secs_f64() * 1e3;
            let mut first_failure = None;
            for (schedule, ran) in drawn.into_iter().zip(reports) {
                let Some((report, took)) = ran else { continue };
                add_cost(&mut self.cost, &schedule, &report, took, cpu_each);
                let n = self.tried;
                self.tried += 1;
                self.faults += schedule.faults().count() as u64;
                self.errors += u64::from(report.verdict == Verdict::Error);
                if !self.options.quiet {
                    let (found, faults, errors) = (u32::from(failed(&report)), self.faults, self.errors);
                    note!(
                        "[{} tried, {faults} faults, {errors} errors, {found} failures, {:.0} s] #{n} {schedule} → {}",
                        self.tried,
                        started.elapsed().as_secs_f64(),
                        said(&report)
                    );
                }
                if failed(&report) && first_failure.is_none() {
                    first_failure = Some((n, schedule, report));
                }
            }
            // The first failure in the order drawn, whichever ended first.
            if let Some((n, schedule, report)) = first_failure {
                self.found(n, schedule, &report, file).await?;
                return Ok(super::exit::MISS);
            }
        }
        note!(
            "explored {} schedules ({} faults, {} errors) in {:.0} s with seed {}: no failure",
            self.tried,
            self.faults,
            self.errors,
            started.elapsed().as_secs_f64(),
            self.seed
        );
        if let Some(cost) = mean_cost(&self.cost) {
            note!("{}", cost.summary());
        }
        Ok(if still_failing > 0 { super::exit::MISS } else { super::exit::PASS })
    }

    /// Shrinks the failing schedule `n`, measures the result's replay rate,
    /// prints it and stores it.
    async fn found(&mut self, n: u64, schedule: Schedule, report: &CellReport, file: &Path) -> Result<(), AppError> {
        let clients = self.runner.scenario.workload.clients;
        let (k, accept) = (self.options.replays, self.options.accept);
        let need = ((accept * f64::from(k)).ceil() as u32).clamp(1, k);
        note!(
            "schedule #{n} failed: {}; shrinking (a candidate is taken at {need} failures of {k} replays)",
            said(report)
        );
        let deadline = Instant::now() + self.options.shrink_budget.unwrap_or(self.options.budget);
        let (mut current, mut taken, mut replays) = (schedule, 0, 0);
        // A shape (which faults, in which order) rejected once is not
        // tried again at other lengths: shrinking would otherwise replay
        // the same hopeless simplification after every shortening.
        let mut rejected = std::collections::HashSet::new();
        'shrinking: loop {
            let candidates = schedule::shrink(&current, clients);
            // A simpler fault the strategy cannot take (a host kill on a
            // replica's volume) would only fail as the harness's error.
            let strategy = self.strategy;
            for candidate in candidates.into_iter().filter(|c| c.unsupported_on(strategy).is_none()) {
                let shape = schedule::shape(&candidate);
                if shape != schedule::shape(&current) && rejected.contains(&shape) {
                    continue;
                }
                if Instant::now() > deadline || self.cancelled() {
                    note!("shrinking stopped: {}", if self.cancelled() { "interrupted" } else { "budget spent" });
                    break 'shrinking;
                }
                let r = self.replay(self.strategy, &candidate, k, Some(need)).await;
                replays += r.runs;
                let taken_now = r.failed >= need;
                if !self.options.quiet {
                    let verb = if taken_now { "taken" } else { "rejected" };
                    note!("  {verb}: {candidate} (failed {} of {})", r.failed, r.runs);
                }
                if taken_now {
                    current = candidate;
                    taken += 1;
                    continue 'shrinking;
                }
                rejected.insert(shape);
            }
            break;
        }
        let rate = self.replay(self.strategy, &current, k, None).await;
        let origin = format!("schedule #{n} of seed {}, shrunk in {taken} steps ({replays} replays)", self.seed);
        // A failure no replay reproduced keeps its own evidence: the
        // report shows the drawn schedule's run (no shrinking step was
        // taken then, so `current` is that schedule), not an `intact` replay.
        let reproduced = rate.worst.as_ref().filter(|w| failed(w));
        self.findings.push(finding(origin, &current, &rate, Some(reproduced.unwrap_or(report))));
        let verdict = match (reproduced, &rate.worst) {
            (Some(worst), _) => said(worst),
            (None, Some(worst)) => format!("{}; the drawn schedule's own run was {}", said(worst), said(report)),
            (None, None) => report.verdict.to_string(),
        };
        let entry = ScheduleEntry {
            name: Some(format!("seed{}-{n}", self.seed)),
            strategy: self.strategy,
            steps: current,
            expect: Verdict::Intact,
        };
        let comment = format!(
            "# crashlab explore --seed {} found schedule #{n} failing; shrunk in {taken} steps ({replays} replays); \
             replay rate {} of {} (run {}): {}\n",
            self.seed,
            rate.failed,
            rate.runs,
            self.runner.run.id(),
            verdict.replace('\n', " ")
        );
        println!(
            "minimal failing schedule (seed {}, schedule #{n}, shrunk in {taken} steps, {replays} replays):\n  {}\n\
             replay rate: failed {} of {} replays: {verdict}\n\n{}",
            self.seed,
            entry.steps,
            rate.failed,
            rate.runs,
            entry.to_toml()
        );
        if self.options.store {
            if store(file, &entry, &comment)? {
                note!("stored in {}; the next explore runs it first", file.display());
            } else {
                note!("already stored in {}", file.display());
            }
        }
        Ok(())
    }
}

/// A schedule and its replays as the report shows them: the verdict,
/// detail, steps in time and lost commits of `worst` (the worst failing
/// replay, or the drawn schedule's own run when no replay failed).
fn finding(origin: String, schedule: &Schedule, r: &Replays, worst: Option<&CellReport>) -> Finding {
    let cycle = worst.and_then(|w| w.cycle_details.first());
    Finding {
        origin,
        schedule: schedule.to_string(),
        shape: schedule.faults().map(|f| f.to_string()).collect::<Vec<_>>().join(" → "),
        verdict: worst.map_or(Verdict::Error, |w| w.verdict),
        failed: r.failed,
        runs: r.runs,
        detail: cycle.map(|c| c.detail.clone()).unwrap_or_default(),
        steps: cycle.map(|c| c.steps.clone()).unwrap_or_default(),
        lost: worst.map_or(0, |w| w.lost_acked_writes),
        lost_acks_ms: cycle.and_then(|c| c.lost_acks_ms),
    }
}

/// The report of an explore: no cells, its "Explore" section.
fn explore_report(
    scenario: &Scenario,
    run_id: &str,
    search: &Search<'_, '_>,
    environment: crashlab_reports::Environment,
    (started, started_at_unix): (Instant, u64),
) -> Report {
    let elapsed_s = started.elapsed().as_secs_f64();
    Report {
        scenario: scenario.name.clone(),
        seed: search.seed,
        run_id: run_id.to_owned(),
        started_at_unix,
        duration_s: elapsed_s,
        environment,
        explore: Some(ExploreReport {
            strategy: search.strategy.to_string(),
            seed: search.seed,
            budget_s: search.options.budget.as_secs_f64(),
            elapsed_s,
            schedules: search.tried,
            faults: search.faults,
            errors: search.errors,
            findings: search.findings.clone(),
            cost: mean_cost(&search.cost),
        }),
        ..Report::default()
    }
}

/// Appends `entry` to the regressions file, unless the same schedule on
/// the same strategy is there already; says whether it did.
fn store(file: &Path, entry: &ScheduleEntry, comment: &str) -> Result<bool, AppError> {
    let stored = read_regressions(file)?;
    if stored.iter().any(|e| e.strategy == entry.strategy && e.steps == entry.steps) {
        return Ok(false);
    }
    let mut text = std::fs::read_to_string(file).unwrap_or_else(|_| {
        "# Fault schedules `crashlab explore` found failing, shrunk; the next explore runs them first.\n".into()
    });
    text.push('\n');
    text.push_str(comment);
    text.push_str(&entry.to_toml());
    std::fs::write(file, text).map_err(|source| AppError::Io { what: "write", path: file.to_owned(), source })?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_cpu_time_counts_work_done() {
        let before = cpu_time();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut x = 0u64;
        while cpu_time() < before + Duration::from_millis(50) && Instant::now() < deadline {
            for i in 0..100_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
        }
        assert!(cpu_time() >= before + Duration::from_millis(50), "10 s of spinning counted as no CPU time");
    }

    #[test]
    fn a_stored_schedule_reads_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let scenario = dir.path().join("unsafe.toml");
        let file = regressions_path(&scenario);
        assert_eq!(file, dir.path().join("unsafe.regressions.toml"));
        assert!(read_regressions(&file).unwrap().is_empty(), "no file, nothing stored");
        let entry = ScheduleEntry {
            name: Some("seed7-3".into()),
            strategy: Strategy::BindMount,
            steps: "load 500ms clients=1, host-kill on primary, recover, verify".parse().unwrap(),
            expect: Verdict::Intact,
        };
        assert!(store(&file, &entry, "# found\n").unwrap());
        assert!(!store(&file, &entry, "# found again\n").unwrap());
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.ends_with(
            "# found\n[[schedule]]\nname = \"seed7-3\"\nstrategy = \"bind-mount\"\nsteps = [\"load 500ms clients=1\", \
             \"host-kill on primary\", \"recover\", \"verify\"]\n"
        ));
        assert!(!text.contains("found again"), "stored once");
        assert_eq!(read_regressions(&file).unwrap(), vec![entry.clone()]);
        let text = "name = \"unsafe\"\n[workload]\nkind = \"mariadb\"\n[matrix]\nstrategies = [\"bind-mount\"]\n\
                    faults = [\"host-kill\"]\n";
        let mut s = Scenario::parse(text, "unsafe.toml").unwrap();
        assert_eq!(with_regressions(&mut s, &scenario).unwrap(), 1);
        let cells = s.cells();
        let last = cells.last().unwrap();
        assert_eq!(
            (cells.len(), last.fault_name(), last.expected),
            (2, "schedule-regression-seed7-3".into(), Verdict::Intact)
        );
        let pasted = format!("{text}{}", entry.to_toml());
        let mut s = Scenario::parse(&pasted, "unsafe.toml").unwrap();
        assert_eq!(with_regressions(&mut s, &scenario).unwrap(), 0, "pasted already: not twice");
        std::fs::write(&file, "[[schedule]]\nstrategy = \"bind-mount\"\nstep = []\n").unwrap();
        let err = read_regressions(&file).unwrap_err().to_string();
        assert!(err.contains("unsafe.regressions.toml:3:1: unknown field `step`"), "{err}");
    }
}
