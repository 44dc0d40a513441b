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
use crashlab_reports::schedules::{ExploreReport, Finding};
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
        slot: None,
        slot_for: None,
        faults: 0,
        errors: 0,
        findings: Vec::new(),
    };
    let started = (Instant::now(), SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()));
    let work = async {
        let code = search.run(regressions, &regressions_file).await;
        runner.release(search.slot.take()).await;
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
    slot: Option<crate::deploy::deployment::Deployment>,
    slot_for: Option<Strategy>,
    /// Faults the drawn schedules injected, and schedules that ended
    /// `error`.
    faults: u64,
    errors: u64,
    /// The stored schedules replayed and the failure found, for the report.
    findings: Vec<Finding>,
}

impl Search<'_, '_> {
    fn cancelled(&self) -> bool {
        *self.runner.cancel.borrow()
    }

    /// Runs `schedule` once on `strategy`; `None` when interrupted.
    async fn once(&mut self, strategy: Strategy, schedule: &Schedule) -> Option<CellReport> {
        let index = self.index;
        self.index += 1;
        let cell = Cell {
            index,
            strategy,
            fault: schedule.faults().next().expect("a schedule has a fault"),
            expected: Verdict::Intact,
            schedule: Some(NamedSchedule { name: format!("x{index}"), schedule: schedule.clone() }),
        };
        if self.slot_for.replace(strategy).is_some_and(|s| s != strategy) {
            self.runner.release(self.slot.take()).await;
        }
        self.runner.run_on(&cell, &mut self.slot, &mut Silent).await
    }

    /// Runs `schedule` up to `k` times; with `need`, stops as soon as it
    /// has failed `need` times or can no longer.
    async fn replay(&mut self, strategy: Strategy, schedule: &Schedule, k: u32, need: Option<u32>) -> Replays {
        let mut r = Replays { failed: 0, runs: 0, worst: None };
        while r.runs < k && !self.cancelled() {
            let Some(report) = self.once(strategy, schedule).await else { break };
            r.runs += 1;
            if failed(&report) {
                r.failed += 1;
            }
            if r.worst.as_ref().is_none_or(|w| !failed(w) || (failed(&report) && report.verdict > w.verdict)) {
                r.worst = Some(report);
            }
            if let Some(need) = need
                && (r.failed >= need || r.failed + (k - r.runs) < need)
            {
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
            self.findings.push(finding(format!("stored {name} on {}", entry.strategy), &entry.steps, &r));
        }
        while started.elapsed() < self.options.budget && !self.cancelled() {
            let schedule = schedule::generate(self.seed, self.tried, &self.alphabet);
            let Some(report) = self.once(self.strategy, &schedule).await else { break };
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
            if failed(&report) {
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
        self.findings.push(finding(origin, &current, &rate));
        let verdict = rate.worst.as_ref().map_or_else(|| report.verdict.to_string(), said);
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

/// A schedule and its replays as the report shows them: the worst
/// replay's verdict, detail, steps in time and lost commits.
fn finding(origin: String, schedule: &Schedule, r: &Replays) -> Finding {
    let worst = r.worst.as_ref();
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
