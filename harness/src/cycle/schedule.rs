//! A cycle that follows a fault schedule ([`crate::scenario::schedule`]):
//! the phases of [`super::phases`] called in the order the schedule
//! gives — each load with the faults that strike at its end, the recovery
//! from the last of them, the waits — and one verification at the end
//! against the ack log of every load, so that several faults meet one
//! dataset before the oracle judges it.

use super::phases::{CycleFailure, CycleRun, Strike};
use crate::scenario::schedule::{Condition, Schedule, Step};
use crate::text::error_chain;
use crashlab_reports::schedules::StepTime;
use std::time::{Duration, Instant};

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
    /// segment's faults are armed. The report keeps each step's span in
    /// time ([`crashlab_reports::CycleReport::steps`]).
    pub async fn scheduled(&mut self, schedule: &Schedule) -> Result<(), CycleFailure> {
        self.ready().await?;
        self.setup_dataset().await?;
        let mut begun = false;
        let steps = schedule.steps();
        let mut spans: Vec<(String, Instant, Instant)> = Vec::new();
        let mut i = 0;
        while i < steps.len() {
            let started = Instant::now();
            match &steps[i] {
                Step::Load { .. } | Step::Fault { .. } => {
                    let (segment, next) = self.segment(steps, i);
                    let faults: Vec<String> = steps[i..next]
                        .iter()
                        .skip(usize::from(segment.load.is_some()))
                        .map(ToString::to_string)
                        .collect();
                    let (length, clients) = segment.load.map_or((None, None), |(d, c)| (Some(d), c));
                    self.arm(&segment.strikes, length)?;
                    if !begun {
                        self.begin_hooks().await?;
                        begun = true;
                    }
                    let load_started = Instant::now();
                    self.load_and_faults(length, clients, segment.strikes).await?;
                    let loaded = self.loaded.as_ref().expect("absorbed by the load");
                    if segment.load.is_some() {
                        spans.push((steps[i].to_string(), load_started, loaded.fault_started));
                    }
                    spans.push((faults.join(", "), loaded.fault_started, loaded.fault_done));
                    i = next;
                    continue;
                }
                Step::Recover => self.recover().await?,
                Step::Wait(condition) => self.wait(*condition).await?,
                Step::Verify => self.verify().await?,
            }
            spans.push((steps[i].to_string(), started, Instant::now()));
            i += 1;
        }
        if let Some(loaded) = &self.loaded {
            let epoch = loaded.outcome.epoch;
            let ms = |t: Instant| match t.checked_duration_since(epoch) {
                Some(d) => d.as_secs_f64() * 1e3,
                None => -(epoch.duration_since(t).as_secs_f64() * 1e3),
            };
            self.report.steps =
                spans.into_iter().map(|(step, from, to)| StepTime { step, from_ms: ms(from), to_ms: ms(to) }).collect();
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
                self.deployment
                    .catch_up(&*self.runner.workload, CATCH_UP)
                    .await
                    .map_err(|e| CycleFailure::Wait(format!("wait caught-up: {}", error_chain(&e))))?;
            }
        }
        Ok(())
    }
}
