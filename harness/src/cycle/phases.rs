//! A cycle as phases, one function each: ready, setup (with the fault
//! armed and the hooks begun), load with the fault landing at its end,
//! recover, verify (with the second look and the hooks' contributions).
//! Each returns a `Result` whose error is a typed [`CycleFailure`]; the
//! cycle's verdict on a failure is the failure's. The state a phase leaves
//! for the next is in [`CycleRun`], so a schedule of several faults can
//! call load and recover more than once before it verifies.

use super::hooks::{CycleHook, Evidence, Stage};
use super::{CLIENT_GRACE, Runner, ms};
use crate::deploy::deployment::Deployment;
use crate::deploy::readiness::NotReady;
use crate::events::{Event, Phase, Reporter};
use crate::faults::{Behaviour, Fault, Recovered};
use crate::scenario::Cell;
use crate::scenario::cell_id;
use crate::settings::FaultsSection;
use crate::text::error_chain;
use crashlab_reports::Fired;
use crashlab_reports::{CycleReport, PhaseTimes, Verdict};
use crashlab_workloads::{AckLog, LoadConfig, LoadOutcome};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The [`Stage`] of a [`CycleRun`], borrowing only its deployment, so
/// that its hooks, report and reporter stay free.
macro_rules! stage {
    ($run:expr) => {
        Stage {
            deployment: &mut *$run.deployment,
            workload: &*$run.runner.workload,
            scenario: $run.runner.scenario,
            behaviour: $run.fault.behaviour(),
            knobs: &$run.knobs,
        }
    };
}

/// Why a cycle ended before its data was checked.
#[derive(Debug, thiserror::Error)]
pub enum CycleFailure {
    #[error("could not deploy: {0}")]
    Deploy(String),
    #[error("before the fault: {0}")]
    NotReady(String),
    #[error("could not create the dataset: {0}")]
    Setup(String),
    #[error("could not make the dataset durable: {0}")]
    Checkpoint(String),
    #[error("could not arm {fault}: {why}")]
    Arm { fault: Fault, why: String },
    /// A hook's own failure, phrased by the hook.
    #[error("{0}")]
    Hook(String),
    #[error("could not inject {fault}: {why}")]
    Inject { fault: Fault, why: String },
    #[error("load failed: {0}")]
    Load(String),
    #[error("interrupted")]
    Interrupted,
    #[error("nothing was at stake: the load acknowledged no write; {0}")]
    NothingAtStake(String),
    #[error("{fault} did not fire: {what}")]
    DidNotFire { fault: Fault, what: String },
    #[error("could not recover from {fault}: {why}")]
    Recover { fault: Fault, why: String },
    /// The daemon failed while the service came back.
    #[error("{0}")]
    Docker(String),
    /// The engine did not come back on its data after the fault.
    #[error("after {fault}: {why}")]
    NotBack { fault: Fault, why: String },
    #[error("{0}")]
    Verify(String),
    /// A schedule's `wait` that did not come true.
    #[error("{0}")]
    Wait(String),
}

impl CycleFailure {
    /// The cycle's verdict: an engine that does not come back on its own
    /// data is `corrupt`; any other failure is the harness's, `error`.
    pub fn verdict(&self) -> Verdict {
        match self {
            CycleFailure::NotBack { .. } => Verdict::Corrupt,
            _ => Verdict::Error,
        }
    }
}

/// What the load and its fault left for recovery and verification.
pub struct Loaded {
    pub outcome: LoadOutcome,
    pub load_s: f64,
    pub fault_started: Instant,
    pub fault_done: Instant,
    pub fired: crashlab_reports::Fired,
}

/// One cycle in progress.
pub struct CycleRun<'r, 'a> {
    pub runner: &'r Runner<'a>,
    pub cell: &'r Cell,
    pub cycle: u32,
    pub reporter: &'r mut dyn Reporter,
    pub deployment: &'r mut Deployment,
    pub hooks: Vec<Box<dyn CycleHook + 'r>>,
    pub report: CycleReport,
    /// The clock of the current phase group.
    pub started: Instant,
    pub config: LoadConfig,
    pub addr: Option<SocketAddr>,
    pub loaded: Option<Loaded>,
    /// The fault injected last, which `recover` recovers from: the cell's,
    /// or a schedule's.
    pub fault: Fault,
    /// The knobs of [`Self::fault`].
    pub knobs: FaultsSection,
    /// Loads run so far in the cycle: a later one's ledger ids start after
    /// the earlier ones'.
    pub loads: u32,
}

/// A fault a load segment injects, with its knobs.
pub struct Strike {
    pub fault: Fault,
    pub knobs: FaultsSection,
}

impl<'r, 'a> CycleRun<'r, 'a> {
    pub fn new(
        runner: &'r Runner<'a>,
        cell: &'r Cell,
        cycle: u32,
        reporter: &'r mut dyn Reporter,
        deployment: &'r mut Deployment,
        hooks: Vec<Box<dyn CycleHook + 'r>>,
        started: Instant,
    ) -> Self {
        CycleRun {
            config: runner.load_config(cell, cycle),
            runner,
            cell,
            cycle,
            reporter,
            deployment,
            hooks,
            report: empty_report(),
            started,
            addr: None,
            loaded: None,
            fault: cell.fault,
            knobs: runner.scenario.faults.clone(),
            loads: 0,
        }
    }

    fn announce(&mut self, phase: Phase) {
        self.reporter.on_event(&Event::Phase { cell: self.cell, cycle: self.cycle, phase });
    }

    pub(super) fn behaviour(&self) -> &'static dyn Behaviour {
        self.fault.behaviour()
    }

    /// The cycle: ready, setup, load and fault, recover, verify, or the
    /// cell's schedule ([`super::schedule`]).
    pub async fn steps(&mut self) -> Result<(), CycleFailure> {
        let cell = self.cell;
        if let Some(named) = &cell.schedule {
            return self.scheduled(&named.schedule).await;
        }
        self.ready().await?;
        self.setup_dataset().await?;
        let strike = Strike { fault: self.cell.fault, knobs: self.runner.scenario.faults.clone() };
        let load = self.runner.scenario.workload.load;
        self.arm(std::slice::from_ref(&strike), Some(load))?;
        self.begin_hooks().await?;
        self.load_and_faults(Some(load), None, vec![strike]).await?;
        self.recover().await?;
        self.verify().await
    }

    /// Waits for the server; the cycle's clock starts once it answers.
    pub async fn ready(&mut self) -> Result<(), CycleFailure> {
        let addr = self.runner.wait_ready(self.deployment).await.map_err(|e| CycleFailure::NotReady(e.detail()))?;
        self.addr = Some(addr);
        self.report.phases.ready_ms = ms(self.started);
        self.started = Instant::now();
        Ok(())
    }

    /// Creates the dataset and makes it the fault filesystem's durable
    /// baseline.
    pub async fn setup_dataset(&mut self) -> Result<(), CycleFailure> {
        self.announce(Phase::Setup);
        let addr = self.addr.expect("ready before setup");
        let workload = &*self.runner.workload;
        workload.setup(addr, self.config).await.map_err(|e| CycleFailure::Setup(error_chain(&e)))?;
        self.report.phases.setup_ms = ms(self.started);
        // The dataset as set up is the baseline, on every member of a
        // cluster: only what the load writes is at stake.
        for fs in self.deployment.fault_mounts_mut() {
            fs.checkpoint().map_err(|e| CycleFailure::Checkpoint(error_chain(&e)))?;
            fs.begin_cycle();
        }
        Ok(())
    }

    /// Arms the faults a load of length `load` is about to meet.
    pub fn arm(&mut self, strikes: &[Strike], load: Option<Duration>) -> Result<(), CycleFailure> {
        for strike in strikes {
            let (fault, behaviour) = (strike.fault, strike.fault.behaviour());
            let mut stage = stage!(self);
            stage.behaviour = behaviour;
            stage.knobs = &strike.knobs;
            let mut cx = stage.cx(None);
            cx.load = load;
            behaviour.arm(&mut cx).map_err(|e| CycleFailure::Arm { fault, why: error_chain(&e) })?;
        }
        Ok(())
    }

    /// Begins every hook, once the first faults are armed.
    pub async fn begin_hooks(&mut self) -> Result<(), CycleFailure> {
        let mut stage = stage!(self);
        for hook in self.hooks.iter_mut() {
            hook.begin(&mut stage).await.map_err(CycleFailure::Hook)?;
        }
        Ok(())
    }

    /// The load's settings for the next load of the cycle: `clients` when
    /// given, and, after the first load, another seed and ledger ids after
    /// the earlier loads'.
    fn next_load_config(&mut self, clients: Option<u32>) -> LoadConfig {
        let mut config = self.config;
        if let Some(n) = clients {
            config.clients = n;
        }
        config.seed ^= u64::from(self.loads).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        config.ids_from = u64::from(self.loads) << 32;
        self.loads += 1;
        config
    }

    /// Runs the load for `length` (with none, the faults strike with no
    /// load running) and lands `strikes` one after the other at its end,
    /// while the clients are mid-transaction; they are told to stop once
    /// the damage is done. Then asks whether anything was at stake and
    /// whether every fault fired. `recover` then recovers from the last.
    pub async fn load_and_faults(
        &mut self,
        length: Option<Duration>,
        clients: Option<u32>,
        strikes: Vec<Strike>,
    ) -> Result<(), CycleFailure> {
        self.announce(Phase::Load);
        let addr = self.addr.expect("ready before the load");
        let (runner, cell, cycle) = (self.runner, self.cell, self.cycle);
        let config = length.map(|_| self.next_load_config(clients));
        let (stop_tx, stop_rx) = watch::channel(false);
        let load_started = Instant::now();
        let load = async {
            match config {
                Some(config) => Some(runner.workload.load(addr, config, stop_rx, CLIENT_GRACE).await),
                None => None,
            }
        };
        let reporter = &mut *self.reporter;
        let mut stage = stage!(self);
        let hooks = &mut self.hooks;
        let landed = async {
            let mut cancel = runner.cancel.clone();
            if let Some(length) = length {
                let deadline = load_started + length;
                match hooks.iter_mut().find(|h| h.drives_load()) {
                    Some(hook) => hook.during_load(&mut stage, load_started, deadline, &mut cancel).await,
                    None => tokio::select! {
                        _ = tokio::time::sleep(length) => {}
                        _ = cancel.wait_for(|c| *c) => {}
                    },
                }
            }
            reporter.on_event(&Event::Phase { cell, cycle, phase: Phase::Fault });
            let load_s = load_started.elapsed().as_secs_f64();
            let fault_started = Instant::now();
            let mut at_fault = Ok(());
            let mut injected = Ok(());
            for strike in &strikes {
                let (fault, behaviour) = (strike.fault, strike.fault.behaviour());
                stage.behaviour = behaviour;
                stage.knobs = &strike.knobs;
                for hook in hooks.iter_mut() {
                    at_fault = at_fault.and(hook.at_fault(&mut stage).await);
                }
                injected = behaviour.inject(&mut stage.cx(None)).await.map_err(|e| (fault, e));
                if injected.is_err() {
                    break;
                }
            }
            let fault_done = Instant::now();
            let _ = stop_tx.send(true);
            (injected, at_fault, fault_started, fault_done, load_s)
        };
        let (load, (injected, at_fault, fault_started, fault_done, load_s)) = tokio::join!(load, landed);
        if length.is_some() {
            self.report.load_s += load_s;
        }
        self.report.phases.inject_ms += (fault_done - fault_started).as_secs_f64() * 1e3;
        self.report.phases.drain_ms += ms(fault_done);
        injected.map_err(|(fault, e)| CycleFailure::Inject { fault, why: error_chain(&e) })?;
        at_fault.map_err(CycleFailure::Hook)?;
        let outcome = match load {
            Some(load) => load.map_err(|e| CycleFailure::Load(error_chain(&e)))?,
            None => LoadOutcome {
                log: AckLog::default(),
                latency_us: crashlab_workloads::latency_histogram(),
                client_errors: vec![],
                epoch: fault_started,
            },
        };
        if runner.cancelled() {
            return Err(CycleFailure::Interrupted);
        }
        if let Some(last) = strikes.last() {
            self.fault = last.fault;
            self.knobs = last.knobs.clone();
        }
        let fired = self.fired(&strikes).await;
        self.absorb(Loaded { outcome, load_s, fault_started, fault_done, fired: fired.clone().unwrap_or_default() });
        self.judge_stakes(&strikes, fired.as_ref())
    }

    /// Whether each of `strikes` fired, in one [`Fired`]: as the fault
    /// said, each named by its fault in a schedule; the first that did not
    /// fire decides. `None` when nothing struck.
    async fn fired(&mut self, strikes: &[Strike]) -> Option<Fired> {
        let mut each = Vec::new();
        for strike in strikes {
            let (fault, behaviour) = (strike.fault, strike.fault.behaviour());
            let mut stage = stage!(self);
            stage.behaviour = behaviour;
            stage.knobs = &strike.knobs;
            each.push((fault, behaviour.fired(&mut stage.cx(None)).await));
        }
        if self.cell.schedule.is_none() {
            return each.pop().map(|(_, fired)| fired);
        }
        let named = |(fault, f): &(Fault, Fired)| format!("{fault}: {}", f.what);
        match each.iter().find(|(_, f)| !f.fired) {
            Some(failed) => Some(Fired { fired: false, what: named(failed) }),
            None if each.is_empty() => None,
            None => Some(Fired { fired: true, what: each.iter().map(named).collect::<Vec<_>>().join("; ") }),
        }
    }

    /// Adds a load's outcome to the cycle's: one ack log whose times count
    /// from the first load's start, one latency histogram; the fault's
    /// instants and what fired are the latest.
    fn absorb(&mut self, mut next: Loaded) {
        let Some(first) = self.loaded.as_mut() else {
            self.loaded = Some(next);
            return;
        };
        let shift = next.outcome.epoch.saturating_duration_since(first.outcome.epoch).as_micros() as u64;
        for span in &mut next.outcome.log.times {
            span.start_us += shift;
            if span.end_us > 0 {
                span.end_us += shift;
            }
        }
        first.outcome.log.extend(next.outcome.log);
        first.outcome.latency_us.add(&next.outcome.latency_us).expect("histograms share bounds");
        first.outcome.client_errors.extend(next.outcome.client_errors);
        first.load_s += next.load_s;
        first.fault_started = next.fault_started;
        first.fault_done = next.fault_done;
        // A load that no fault met (an empty record) changes nothing.
        if first.fired.what.is_empty() {
            first.fired = next.fired;
        } else if !next.fired.what.is_empty() {
            first.fired.fired &= next.fired.fired;
            first.fired.what = format!("{}; {}", first.fired.what, next.fired.what);
        }
    }

    /// A cycle is evidence only when writes were at stake and every fault
    /// did what it names; otherwise it is `error`, never a pass.
    fn judge_stakes(&mut self, strikes: &[Strike], fired: Option<&Fired>) -> Result<(), CycleFailure> {
        let loaded = self.loaded.as_ref().expect("absorbed above");
        self.report.acked_writes = loaded.outcome.log.acked();
        self.report.fired = Some(loaded.fired.clone());
        // A service with no driver writes on its own: what is at stake is
        // its data, which the user's check judges.
        if self.report.acked_writes == 0 && self.runner.workload.records_acks() {
            let why = loaded.outcome.client_errors.first().map_or_else(
                || "the clients ended without an error".to_owned(),
                |e| format!("the first client error: {e}"),
            );
            return Err(CycleFailure::NothingAtStake(why));
        }
        match (strikes.first(), fired) {
            (Some(first), Some(fired)) if !fired.fired => {
                Err(CycleFailure::DidNotFire { fault: first.fault, what: fired.what.clone() })
            }
            _ => Ok(()),
        }
    }

    /// Brings the service back as the fault's recovery says, lending it
    /// the backups a hook keeps, and waits for it to answer.
    pub async fn recover(&mut self) -> Result<(), CycleFailure> {
        self.announce(Phase::Recover);
        let fault = self.cell.fault;
        let behaviour = self.behaviour();
        let mut stage = stage!(self);
        let backups = self.hooks.iter_mut().find_map(|h| h.backups());
        let recovered = behaviour.recover(&mut stage.cx(backups)).await;
        let mut recovered: Recovered = recovered.map_err(|e| CycleFailure::Recover { fault, why: error_chain(&e) })?;
        self.report.replication = recovered.replication.take();
        for hook in self.hooks.iter_mut() {
            hook.after_recovery(&mut recovered);
        }
        let addr = match self.runner.wait_ready(self.deployment).await {
            Ok(addr) => addr,
            Err(NotReady::Docker(e)) => return Err(CycleFailure::Docker(e)),
            Err(e) => {
                // The engine does not come back on its own data (or on the
                // backup restored for it: no older one is tried instead).
                let failure = CycleFailure::NotBack { fault, why: e.detail() };
                self.contribute(None).await;
                return Err(failure);
            }
        };
        self.addr = Some(addr);
        let fault_done = self.loaded.as_ref().expect("loaded before recovery").fault_done;
        let recovery_ms = fault_done.elapsed().as_secs_f64() * 1e3;
        self.report.recovery_ms = Some(recovery_ms);
        self.report.phases.recover_ms += recovery_ms;
        Ok(())
    }

    /// Reads the data back and checks it, takes a second look at a broken
    /// dataset, and lets every hook add its part.
    pub async fn verify(&mut self) -> Result<(), CycleFailure> {
        self.announce(Phase::Verify);
        let verify_started = Instant::now();
        if let Some(cmd) = &self.runner.scenario.workload.check {
            return self.verify_by_check(cmd, verify_started).await;
        }
        let addr = self.addr.expect("recovered before verify");
        let loaded = self.loaded.as_ref().expect("loaded before verify");
        let workload = &*self.runner.workload;
        // A recovery that brought the data back to an earlier point is
        // judged against the log as it stood there.
        let cut = self.hooks.iter().find_map(|h| h.restored_to()).map(|(at, until)| {
            let us = |t: Instant| t.saturating_duration_since(loaded.outcome.epoch).as_micros() as u64;
            loaded.outcome.log.restored_to(us(at), us(until))
        });
        let log = cut.as_ref().unwrap_or(&loaded.outcome.log);
        let found =
            self.deployment.verify(workload, addr, log, self.config.accounts).await.map_err(CycleFailure::Verify)?;
        self.report.verdict = found.verdict;
        self.report.lost_acked_writes = found.lost;
        self.report.lost_acks_ms = found.lost_acks_us.map(|(a, b)| (a as f64 / 1e3, b as f64 / 1e3));
        self.report.in_doubt_writes = found.in_doubt;
        self.report.invariant_violations = found.violations;
        // A broken dataset comes with what the server itself said about it
        // since it came back: the first clue for whoever reads the report.
        let broken = found.verdict >= Verdict::Inconsistent && found.verdict != Verdict::Error;
        let (server_said, second_look) = if broken {
            let said = self.deployment.server_errors(workload, 3, 600).await;
            // The verdict is what a client connecting at once saw; whether
            // the damage outlasts the engine's own recovery is evidence
            // beside it.
            let look = self.runner.second_look(self.deployment, addr, log, self.config.accounts).await;
            (said.map(|said| format!("the server's newest errors: {said}")), Some(look))
        } else {
            (None, None)
        };
        let notes: Vec<String> =
            [Some(found.detail.clone()), self.behaviour().detail(&loaded.fired), server_said, second_look]
                .into_iter()
                .flatten()
                .filter(|d| !d.is_empty())
                .collect();
        self.report.detail = notes.join("; ");
        self.report.phases.verify_ms = ms(verify_started);
        self.contribute(Some(&found)).await;
        Ok(())
    }

    /// Every hook's part of the report, in order.
    pub(super) async fn contribute(&mut self, found: Option<&crate::checker::Check>) {
        let loaded = self.loaded.as_ref().expect("loaded before the hooks contribute");
        // Cycles are numbered from 1 in the reports and the replay command.
        let id = cell_id(self.runner.scenario, self.cell);
        let evidence = Evidence {
            log: &loaded.outcome.log,
            epoch: loaded.outcome.epoch,
            load_s: loaded.load_s,
            fault_started: loaded.fault_started,
            fault_done: loaded.fault_done,
            addr: found.and(self.addr),
            found,
            accounts: self.config.accounts,
            seed: self.config.seed,
            cell_id: &id,
            cycle: self.cycle + 1,
            cancel: &self.runner.cancel,
            run: &self.runner.run,
        };
        let mut stage = stage!(self);
        for hook in self.hooks.iter_mut() {
            hook.contribute(&mut stage, &evidence, &mut self.report).await;
        }
    }
}

/// A cycle's report before anything happened: `error` until a verdict is
/// found.
pub fn empty_report() -> CycleReport {
    CycleReport {
        verdict: Verdict::Error,
        acked_writes: 0,
        lost_acked_writes: 0,
        in_doubt_writes: 0,
        invariant_violations: 0,
        load_s: 0.0,
        recovery_ms: None,
        cycle_ms: 0.0,
        detail: String::new(),
        faultfs: None,
        phases: PhaseTimes::default(),
        backup: None,
        fired: None,
        explore: None,
        replication: None,
        timeline: None,
        steps: Vec::new(),
        lost_acks_ms: None,
    }
}
