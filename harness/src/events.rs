//! The events of a run, the interface between the runner ([`crate::cycle`])
//! and the reporters ([`crate::report`] and the other sinks): the runner
//! emits them, reporters consume them, and neither imports the other.

use crate::scenario::Cell;
use crashlab_reports::{CellReport, CycleReport};

/// The phases of a cycle, as shown in progress output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Deploy,
    Setup,
    Load,
    Fault,
    Recover,
    Verify,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Deploy => "deploy",
            Phase::Setup => "setup",
            Phase::Load => "load",
            Phase::Fault => "fault",
            Phase::Recover => "recover",
            Phase::Verify => "verify",
        }
    }
}

/// What the runner tells reporters.
#[derive(Debug)]
pub enum Event<'a> {
    CellStarted { cell: &'a Cell },
    Phase { cell: &'a Cell, cycle: u32, phase: Phase },
    CycleFinished { cell: &'a Cell, cycle: u32, report: &'a CycleReport },
    CellFinished { cell: &'a Cell, report: &'a CellReport },
}

/// A sink for runner events. Events of cells run side by side
/// interleave; each names its cell.
pub trait Reporter {
    fn on_event(&mut self, event: &Event<'_>);
}
