//! A cycle that follows a fault schedule ([`crate::scenario::schedule`]):
//! the phases of [`super::phases`] called in the order the schedule
//! gives — each load with the faults that strike at its end, the recovery
//! from the last of them, the waits — and one verification at the end
//! against the ack log of every load, so that several faults meet one
//! dataset before the oracle judges it.

use super::phases::{CycleFailure, CycleRun, Strike};
use crate::scenario::schedule::{Condition, Schedule, Step};
use crate::text::error_chain;
use std::time::Duration;

/// How long `wait caught-up` waits for the replica.
const CATCH_UP: Duration = Duration::from_secs(60);

/// A load and the faults that strike at its end (or with no load, right
/// after the step before).
struct Segment {
    load: Option<(Duration, Option<u32>)>,
    strikes: Vec<Strike>,
}

impl CycleRun<'_, '_> {
    /// Runs `schedule` step by step; the hooks begin once the first
    /// segment's faults are armed.
    pub async fn scheduled(&mut self, schedule: &Schedule) -> Result<(), CycleFailure> {
        self.ready().await?;
        self.setup_dataset().await?;
        let mut begun = false;
        let steps = schedule.steps();
        let mut i = 0;
        while i < steps.len() {
            match &steps[i] {
                Step::Load { .. } | Step::Fault { .. } => {
                    let (segment, next) = self.segment(steps, i);
                    i = next;
                    self.arm(&segment.strikes)?;
                    if !begun {
                        self.begin_hooks().await?;
                        begun = true;
                    }
                    let (length, clients) = segment.load.map_or((None, None), |(d, c)| (Some(d), c));
                    self.load_and_faults(length, clients, segment.strikes).await?;
                    continue;
                }
                Step::Recover => self.recover().await?,
                Step::Wait(condition) => self.wait(*condition).await?,
                Step::Verify => self.verify().await?,
            }
            i += 1;
        }
        Ok(())
    }

    /// The segment that starts at step `i`: a load, if there is one, and
    /// the faults right after it, each with its knobs; and where the next
    /// step is.
    fn segment(&self, steps: &[Step], mut i: usize) -> (Segment, usize) {
        let mut segment = Segment { load: None, strikes: Vec::new() };
        if let Step::Load { length, clients } = steps[i] {
            segment.load = Some((length, clients));
            i += 1;
        }
        while let Some(Step::Fault { fault, length, .. }) = steps.get(i) {
            let mut knobs = self.runner.scenario.faults.clone();
            if let Some(length) = length {
                fault.behaviour().set_length(&mut knobs, *length);
            }
            segment.strikes.push(Strike { fault: *fault, knobs });
            i += 1;
        }
        (segment, i)
    }

    /// Waits until `condition` holds.
    async fn wait(&mut self, condition: Condition) -> Result<(), CycleFailure> {
        match condition {
            Condition::Ready => {
                let addr = self
                    .runner
                    .wait_ready(self.deployment)
                    .await
                    .map_err(|e| CycleFailure::Wait(format!("wait ready: {}", e.detail())))?;
                self.addr = Some(addr);
            }
            Condition::CaughtUp => {
                crate::deploy::hosts::catch_up(self.deployment, CATCH_UP)
                    .await
                    .map_err(|e| CycleFailure::Wait(format!("wait caught-up: {}", error_chain(&e))))?;
            }
        }
        Ok(())
    }
}
