//! Crash points inside the load: a trigger that names filesystem calls,
//! and the plan that captures a crash point at some of them, in the FUSE
//! handler, when the call arrives and before it takes effect.
//!
//! A point taken at an `fsync` *before* it takes effect still holds, in its
//! unsynced history, the writes that fsync was about to make durable: the
//! data pages a database writes before syncing its data file, which is
//! where torn pages live (CrashMonkey's observation that bugs live at
//! fsyncs; LazyFS's `crash::timing`). While a plan is armed faultfs serves
//! one request at a time (every request takes its gate exclusively; see the
//! crate docs, "Concurrency"), so capturing inside the handler is exact:
//! no other request runs between the call's arrival and the copy.
//!
//! Trigger grammar (`<op>[:<path>]`, the fault rules' operation names and
//! path patterns, see [`crate::rules`]):
//!
//! | text | calls |
//! |---|---|
//! | `fsync` | the fsync family: `fsync` and `fdatasync` of a file, `fsync` of a directory, and writes and truncates through an `O_SYNC`/`O_DSYNC` descriptor |
//! | `fsync:<path>` | the same, of a file or directory whose path matches |
//! | `<op>[:<path>]` | any other operation of the rules' grammar (`fsyncdir`, `write`, `rename`, `unlink`, `create`, …), optionally of a matching path |
//!
//! Unlike in an `eio` rule, `fsync` here names the whole family.
//!
//! A call is a **candidate** when it matches the trigger and something is
//! unsynced (the history has an operation, and is complete): a point with
//! nothing unsynced has one crash state, the durable base, and tests
//! nothing a power cut does not. An `fsync` or `fdatasync` of a file is a
//! candidate only when that file has unsynced writes, i.e. when the call
//! persists data: databases also fsync a file just extended, and a point
//! there holds nothing the call was about to make durable but a size. Captures happen live, so the sample
//! cannot be chosen after the fact (a reservoir would copy the base again
//! at every replacement): of the candidates, numbered from 0, the plan
//! captures number `offset`, `offset + every`, `offset + 2 * every`, …
//! until it holds `max_points`, where `offset` is drawn from `0..every` by
//! the seed. With `every = 1` that is the first `max_points` candidates.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Instant;

use crate::history::History;
use crate::rules::{OpKind, PathPattern, RuleError};

/// Which calls a [`CapturePlan`] considers.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Trigger {
    /// `None`: the fsync family; otherwise one operation kind.
    pub op: Option<OpKind>,
    /// Restrict to calls on a matching path (a file's, or for a directory
    /// fsync the directory's; for operations on names, the name's).
    pub path: Option<PathPattern>,
}

impl Trigger {
    /// The fsync family, on any path.
    pub fn fsync() -> Self {
        Trigger { op: None, path: None }
    }

    /// Whether a call of kind `op` (`sync`: made durable at once, an
    /// `O_SYNC` write or truncate) on `path` matches.
    pub(crate) fn matches(&self, op: OpKind, sync: bool, path: Option<&str>) -> bool {
        self.may_match(op, sync) && self.path.as_ref().is_none_or(|p| path.is_some_and(|path| p.matches(path)))
    }

    /// Whether a call of kind `op` could match, before its path is known.
    pub(crate) fn may_match(&self, op: OpKind, sync: bool) -> bool {
        match self.op {
            None => matches!(op, OpKind::Fsync | OpKind::Fsyncdir) || sync,
            Some(want) => want.matches(op),
        }
    }
}

impl FromStr for Trigger {
    type Err = RuleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Err(RuleError::Empty);
        }
        let (op, path) = s.split_once(':').unwrap_or((s, ""));
        let op = match op {
            "fsync" => None,
            other => Some(other.parse::<OpKind>()?),
        };
        let path = (!path.is_empty()).then(|| PathPattern::from(path));
        Ok(Trigger { op, path })
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.op {
            None => f.write_str("fsync")?,
            Some(op) => write!(f, "{op}")?,
        }
        if let Some(p) = &self.path {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

/// Where and how many crash points to capture during the load; see the
/// [module docs](self). Armed with [`crate::FaultHandle::capture_at`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapturePlan {
    /// Which calls are candidates.
    pub trigger: Trigger,
    /// Most points captured; 0 captures none.
    pub max_points: u32,
    /// Capture every `every`th candidate (at least 1).
    pub every: u32,
    /// Seed of the offset of the first capture, in `0..every`.
    pub seed: u64,
    /// Directory under which point `n` is copied to `<into>/<n>`; created
    /// at the first capture. Must not be inside the mount.
    pub into: PathBuf,
}

/// One crash point captured inside a handler.
#[derive(Debug)]
pub struct Capture {
    /// Where the copy of the durable base is (absent if `error`).
    pub base: PathBuf,
    /// The unsynced history that applies to it.
    pub history: History,
    /// When the call arrived: an acknowledgement received later may not
    /// be covered by what was durable here.
    pub at: Instant,
    /// The call, e.g. `fdatasync #12 of /test/bank.ibd` (the candidate's
    /// number, from 0).
    pub label: String,
    /// Why the copy failed, if it did.
    pub error: Option<String>,
}

/// What a plan saw so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaptureCounts {
    /// Matching calls with something unsynced.
    pub candidates: u64,
    /// Matching calls with nothing unsynced (or an incomplete history).
    pub skipped_empty: u64,
    /// Points captured (including failed copies).
    pub captured: u64,
}

/// An armed plan and its counters, kept in the filesystem's state.
#[derive(Debug)]
pub(crate) struct Armed {
    pub(crate) plan: CapturePlan,
    offset: u64,
    pub(crate) counts: CaptureCounts,
}

impl Armed {
    pub(crate) fn new(plan: CapturePlan) -> Self {
        let every = u64::from(plan.every.max(1));
        let offset = crate::rng::SplitMix64::new(plan.seed).below(every);
        Armed { plan, offset, counts: CaptureCounts::default() }
    }

    /// Counts a candidate; returns its number when it is to be captured.
    pub(crate) fn select(&mut self) -> Option<u64> {
        let n = self.counts.candidates;
        self.counts.candidates += 1;
        let every = u64::from(self.plan.every.max(1));
        let due = n >= self.offset && (n - self.offset).is_multiple_of(every);
        (due && self.counts.captured < u64::from(self.plan.max_points)).then_some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers_parse_and_print_back() {
        let cases: &[(&str, Trigger)] = &[
            ("fsync", Trigger::fsync()),
            ("fsync:*.ibd", Trigger { op: None, path: Some(PathPattern::Glob("*.ibd".into())) }),
            ("fsyncdir", Trigger { op: Some(OpKind::Fsyncdir), path: None }),
            ("rename:/wal/", Trigger { op: Some(OpKind::Rename), path: Some(PathPattern::Substring("/wal/".into())) }),
        ];
        for (text, want) in cases {
            let got: Trigger = text.parse().unwrap();
            assert_eq!(&got, want, "{text}");
            assert_eq!(got.to_string(), *text);
        }
        assert_eq!("scribble".parse::<Trigger>(), Err(RuleError::UnknownOp("scribble".into())));
        assert_eq!(" ".parse::<Trigger>(), Err(RuleError::Empty));
    }

    #[test]
    fn the_fsync_family_includes_directory_fsync_and_sync_writes_only() {
        let t = Trigger::fsync();
        assert!(t.matches(OpKind::Fsync, false, None));
        assert!(t.matches(OpKind::Fsyncdir, false, None));
        assert!(t.matches(OpKind::Write, true, None), "an O_SYNC write");
        assert!(!t.matches(OpKind::Write, false, None));
        let ibd: Trigger = "fsync:*.ibd".parse().unwrap();
        assert!(ibd.matches(OpKind::Fsync, false, Some("/test/bank.ibd")));
        assert!(!ibd.matches(OpKind::Fsync, false, Some("/ib_logfile0")));
        assert!(!ibd.matches(OpKind::Fsync, false, None), "a path filter needs a path");
        let fsyncdir: Trigger = "fsyncdir".parse().unwrap();
        assert!(!fsyncdir.matches(OpKind::Fsync, false, None));
    }

    #[test]
    fn every_kth_candidate_after_a_seeded_offset_until_full() {
        let plan = |every, seed| CapturePlan {
            trigger: Trigger::fsync(),
            max_points: 3,
            every,
            seed,
            into: PathBuf::from("/nonexistent"),
        };
        let run = |armed: &mut Armed| {
            let mut picked = Vec::new();
            for _ in 0..20 {
                if let Some(n) = armed.select() {
                    picked.push(n);
                    armed.counts.captured += 1;
                }
            }
            picked
        };
        assert_eq!(run(&mut Armed::new(plan(1, 7))), [0, 1, 2], "every = 1: the first ones");
        let mut a = Armed::new(plan(4, 7));
        let picked = run(&mut a);
        assert_eq!(picked.len(), 3);
        assert!(picked[0] < 4 && picked.windows(2).all(|w| w[1] - w[0] == 4), "{picked:?}");
        assert_eq!(a.counts.captured, 3);
        assert_eq!(a.counts.candidates, 20);
        let offsets: std::collections::BTreeSet<u64> =
            (0..32).map(|seed| run(&mut Armed::new(plan(4, seed)))[0]).collect();
        assert!(offsets.len() > 1, "the offset depends on the seed: {offsets:?}");
        assert_eq!(run(&mut Armed::new(plan(4, 7))), picked, "the same seed picks the same candidates");
    }
}
