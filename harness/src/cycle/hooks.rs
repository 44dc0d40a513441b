//! What backups, replication and crash-state exploration add to a cycle,
//! each as a [`CycleHook`] with the cycle's lifecycle: begin (after the
//! fault is armed), during the load, at the fault, after recovery, and a
//! contribution to the cycle's report once the data was read back. The
//! phases ([`super::phases`]) call every hook at each point and have no
//! branch on which hooks a cell has.

use crate::backup::{Backups, Restored};
use crate::deploy::deployment::Deployment;
use crate::faults::{Behaviour, Cx, Recovered};
use crate::scenario::{FaultsSection, Scenario};
use crate::text::error_chain;
use crashlab_reports::{CycleReport, Verdict};
use crashlab_workloads::{AckLog, Outcome, Workload};
use futures_util::future::BoxFuture;
use std::time::Instant;
use tokio::sync::watch;

/// What a hook may act on: the cycle's deployment and what it runs.
pub struct Stage<'s> {
    pub deployment: &'s mut Deployment,
    pub workload: &'s dyn Workload,
    pub scenario: &'s Scenario,
    pub behaviour: &'static dyn Behaviour,
    /// The fault's knobs: the scenario's, with a schedule step's length.
    pub knobs: &'s FaultsSection,
}

impl Stage<'_> {
    /// The fault's context, lending it the cell's backups when a hook
    /// keeps them.
    pub fn cx<'c>(&'c mut self, backups: Option<&'c mut Backups>) -> Cx<'c> {
        Cx {
            deployment: self.deployment,
            knobs: self.knobs,
            explore: &self.scenario.explore,
            workload: self.workload,
            backups,
            load: None,
        }
    }
}

/// What the cycle found, for the hooks' contributions.
pub struct Evidence<'e> {
    pub log: &'e AckLog,
    /// The zero of the log's times.
    pub epoch: Instant,
    pub load_s: f64,
    pub fault_started: Instant,
    /// When the fault's damage was done.
    pub fault_done: Instant,
    /// Where the service answered after recovery.
    pub addr: Option<std::net::SocketAddr>,
    /// What the data read back showed; `None` when the service did not
    /// come back after the fault.
    pub found: Option<&'e crate::checker::Check>,
    pub accounts: u32,
    pub seed: u64,
    /// The cell's id and the cycle's number from 1, as reports and
    /// `crashlab replay` name them.
    pub cell_id: &'e str,
    pub cycle: u32,
    pub cancel: &'e watch::Receiver<bool>,
    pub run: &'e crate::run::RunContext,
}

impl Evidence<'_> {
    /// Microseconds from the load's start to the fault.
    pub fn fault_us(&self) -> u64 {
        self.fault_started.saturating_duration_since(self.epoch).as_micros() as u64
    }
}

/// One addition to a cycle. Every method has a default that does nothing.
pub trait CycleHook: Send {
    /// After the fault is armed, before the load.
    fn begin<'a>(&'a mut self, _stage: &'a mut Stage<'_>) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }

    /// Whether the hook has work beside the load that decides when the
    /// load time is up ([`during_load`](Self::during_load)); at most one
    /// hook of a cell has.
    fn drives_load(&self) -> bool {
        false
    }

    /// The work beside the load, ending no earlier than `deadline` (or on
    /// cancel); called only when [`drives_load`](Self::drives_load).
    fn during_load<'a>(
        &'a mut self,
        _stage: &'a mut Stage<'_>,
        _load_started: Instant,
        _deadline: Instant,
        _cancel: &'a mut watch::Receiver<bool>,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }

    /// The moment the fault lands, before it is injected: what goes down
    /// with the host goes down here, on the fault's clock.
    fn at_fault<'a>(&'a mut self, _stage: &'a mut Stage<'_>) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }

    /// The backups the fault's recovery may restore from.
    fn backups(&mut self) -> Option<&mut Backups> {
        None
    }

    /// After the fault's recovery, with what it did.
    fn after_recovery(&mut self, _recovered: &mut Recovered) {}

    /// The instant the recovered data stands at, when the recovery brought
    /// it back to a point before the fault (a point-in-time restore): the
    /// checker then judges it against the ack log as it stood there
    /// ([`AckLog::restored_to`]); a target read from the server is the
    /// window between the question and the answer, an instant both ends.
    /// `None`, the default, judges it against the whole load.
    fn restored_to(&self) -> Option<(Instant, Instant)> {
        None
    }

    /// Adds the hook's part to the report; may make the verdict worse,
    /// never better.
    fn contribute<'a>(
        &'a mut self,
        _stage: &'a mut Stage<'_>,
        _evidence: &'a Evidence<'_>,
        _report: &'a mut CycleReport,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

/// The hooks of a cell's cycles: the timeline, crash-state exploration and
/// replication always (each does nothing where it has nothing to add), the
/// recheck of a broken durable cycle on single-host strategies, backups
/// when the strategy takes them.
pub fn for_cell<'b>(cell: &crate::scenario::Cell, backups: Option<&'b mut Backups>) -> Vec<Box<dyn CycleHook + 'b>> {
    // In the order they contribute: the timeline first, its first write
    // timed right after the data was read back; the states explored may make the
    // verdict worse before replication asks whether it is still a pass,
    // and the backup figures come last.
    // The recheck copies the data the live look read, before exploration
    // may make the verdict worse.
    // It is registered only on single-host strategies: the fresh server
    // runs the workload's own container, which is what they deploy; a
    // promoted replica, a shared volume's new host or a restored backup
    // runs other settings (a replica's binary log, say), and a fresh server
    // without them can refuse the copy where the live one did not.
    let mut hooks: Vec<Box<dyn CycleHook + 'b>> = vec![Box::new(TimelineHook)];
    if cell.strategy.def().family() == crashlab_reports::Family::SingleHost {
        hooks.push(Box::new(super::recheck::RecheckHook { expected: cell.expected }));
    }
    hooks.extend([Box::new(ExploreHook) as Box<dyn CycleHook + 'b>, Box::new(ReplicationHook)]);
    if let Some(b) = backups {
        hooks.push(Box::new(BackupHook { backups: b, restored: None }));
    }
    hooks
}

/// A backup every interval through the load, the sidecars stopped with the
/// host, and the backup figures and recovery point in the report.
struct BackupHook<'b> {
    backups: &'b mut Backups,
    restored: Option<Restored>,
}

impl CycleHook for BackupHook<'_> {
    fn drives_load(&self) -> bool {
        true
    }

    fn begin<'a>(&'a mut self, stage: &'a mut Stage<'_>) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            ensure_ballast(stage.deployment, stage.scenario.backup.ballast)
                .await
                .map_err(|e| format!("could not write the ballast: {e}"))?;
            self.backups
                .begin_cycle(stage.deployment)
                .await
                .map_err(|e| format!("could not start the backups: {}", error_chain(&e)))
        })
    }

    fn during_load<'a>(
        &'a mut self,
        stage: &'a mut Stage<'_>,
        load_started: Instant,
        deadline: Instant,
        cancel: &'a mut watch::Receiver<bool>,
    ) -> BoxFuture<'a, ()> {
        Box::pin(self.backups.run_until(stage.deployment, stage.workload, load_started, deadline, cancel))
    }

    fn at_fault<'a>(&'a mut self, _stage: &'a mut Stage<'_>) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.backups
                .end_load()
                .await
                .map_err(|e| format!("could not collect the sync agent's backups: {}", error_chain(&e)))
        })
    }

    fn backups(&mut self) -> Option<&mut Backups> {
        Some(self.backups)
    }

    fn after_recovery(&mut self, recovered: &mut Recovered) {
        self.restored = recovered.restored.take();
    }

    fn restored_to(&self) -> Option<(Instant, Instant)> {
        self.restored.and_then(|r| r.to).map(|to| (to.at, to.until))
    }

    fn contribute<'a>(
        &'a mut self,
        _stage: &'a mut Stage<'_>,
        evidence: &'a Evidence<'_>,
        report: &'a mut CycleReport,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let load_us = (evidence.load_s * 1e6) as u64;
            let stall = crate::backup::stall(evidence.log, &self.backups.windows_us(), load_us);
            let to = self.restored.and_then(|r| r.to);
            let to_us = to.map(|to| to.at.saturating_duration_since(evidence.epoch).as_micros() as u64);
            // The recovery point is measured where a backup was restored,
            // up to the fault, or to the point a restore aimed at.
            let rpo_s = match (&self.restored, evidence.found) {
                (Some(_), Some(found)) => Some(found.rpo_s(to_us.unwrap_or_else(|| evidence.fault_us()))),
                _ => None,
            };
            if let Some(to) = to {
                let before = evidence.found.map_or(0, |f| f.acked);
                let until_us = to.until.saturating_duration_since(evidence.epoch).as_micros() as u64;
                let after = evidence.log.times.iter().filter(|s| s.start_us >= until_us).count();
                let s = |t: Instant| t.saturating_duration_since(evidence.epoch).as_secs_f64();
                let point = match to.until > to.at {
                    true => format!(
                        "{:.3} s into the load, as the server's log position read {:.4}–{:.4} s into it",
                        to.into_load_s,
                        s(to.at),
                        s(to.until)
                    ),
                    false => format!("{:.3} s into the load", to.into_load_s),
                };
                let said = format!(
                    "restored to {point}, judged against the log cut there ({before} commits acknowledged before \
                     it, {after} transactions begun after it)"
                );
                report.detail = [said, std::mem::take(&mut report.detail)].join("; ").trim_end_matches("; ").to_owned();
            }
            report.backup = Some(self.backups.cycle_report(stall, self.restored.take(), rpo_s).await);
        })
    }
}

/// A replicated strategy's recovery point, and what was acknowledged after
/// its host was lost: a cycle in which nothing was, although the load went
/// on through the fault, tested nothing of the loss.
struct ReplicationHook;

impl CycleHook for ReplicationHook {
    fn contribute<'a>(
        &'a mut self,
        stage: &'a mut Stage<'_>,
        evidence: &'a Evidence<'_>,
        report: &'a mut CycleReport,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let (Some(found), Some(r)) = (evidence.found, report.replication.as_mut()) else { return };
            // A semi-sync primary cut off its replica acknowledges
            // nothing: the last surviving commit is old, yet none was lost.
            let lost_at = evidence.fault_us() + (r.host_lost_after_ms.unwrap_or(0.0) * 1e3) as u64;
            r.rpo_s = Some(if found.lost == 0 { 0.0 } else { found.rpo_s(lost_at) });
            if r.host_lost_after_ms.is_none() {
                return;
            }
            let after = evidence.log.entries.iter().zip(&evidence.log.times);
            let acked = after.filter(|((_, o), span)| *o == Outcome::Acked && span.end_us > lost_at).count();
            r.acked_after_loss = Some(acked as u64);
            if acked == 0 && stage.behaviour.load_goes_on() && report.verdict != Verdict::Error {
                report.detail = format!(
                    "nothing was acknowledged after the storage host was lost, so the cycle tested nothing of the \
                     loss (writes stalled or the load ended first); {}",
                    report.detail
                );
                report.verdict = Verdict::Error;
            }
        })
    }
}

/// The cycle's picture in time ([`super::timeline`]), with a first write
/// timed once the data was read back.
struct TimelineHook;

impl CycleHook for TimelineHook {
    fn contribute<'a>(
        &'a mut self,
        stage: &'a mut Stage<'_>,
        evidence: &'a Evidence<'_>,
        report: &'a mut CycleReport,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let verified = match (evidence.found, evidence.addr) {
                (Some(_), Some(addr)) => Some((stage.workload, addr)),
                _ => None,
            };
            let instants = (evidence.fault_started, evidence.fault_done);
            super::timeline::record(report, (evidence.log, evidence.epoch), instants, verified).await;
        })
    }
}

/// The crash states of the fault's crash points, each checked on its own
/// server; the worst state's verdict counts when worse than the live one.
struct ExploreHook;

impl CycleHook for ExploreHook {
    fn contribute<'a>(
        &'a mut self,
        stage: &'a mut Stage<'_>,
        evidence: &'a Evidence<'_>,
        report: &'a mut CycleReport,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if evidence.found.is_none() {
                return;
            }
            let keeper =
                crate::replay::Keeper::new(evidence.run, evidence.cell_id, evidence.cycle, &stage.scenario.workload);
            let oracle = crate::explore::Oracle {
                log: evidence.log,
                epoch: evidence.epoch,
                accounts: evidence.accounts,
                ready_timeout: stage.scenario.workload.ready_timeout,
                cancel: evidence.cancel,
                bounds: &stage.scenario.explore,
                seed: evidence.seed,
                replay: Some(&keeper),
            };
            let behaviour = stage.behaviour;
            if let Some(explored) = behaviour.explore(&mut stage.cx(None), &oracle).await {
                crate::explore::fold(report, explored);
            }
        })
    }
}

/// Writes `bytes` of incompressible data into the data directory beside the
/// engine's files (`[backup] ballast`), once per deployment: every backup
/// then has at least that much to copy. Engines ignore a stray file in
/// their data directory's top level.
async fn ensure_ballast(d: &Deployment, bytes: u64) -> Result<(), String> {
    if bytes == 0 {
        return Ok(());
    }
    let id = d.container_id().ok_or("the deployment has no container")?;
    let file = format!("{}/crashlab-ballast", d.spec().data_dir.trim_end_matches('/'));
    let script = format!(
        "if [ \"$(stat -c %s {file} 2>/dev/null)\" != {bytes} ]; then \
         head -c {bytes} /dev/urandom > {file}.tmp && mv {file}.tmp {file} && sync {file}; fi"
    );
    let run = d.docker().exec(id, &["sh".to_owned(), "-c".to_owned(), script]).await.map_err(|e| error_chain(&e))?;
    match run.exit_code {
        Some(0) => Ok(()),
        code => Err(format!("`sh -c` exited with {code:?}: {}", run.output.trim())),
    }
}
