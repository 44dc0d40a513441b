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
//! there holds nothing the call was about to make durable but a size.
//!
//! Captures happen live, so the sample cannot be chosen after the fact (a
//! reservoir would copy the base again at every replacement, with the
//! application waiting). A plan chooses its points one of two ways:
//!
//! - **Spread over the load** ([`CapturePlan::window`] set, the harness's
//!   default): the window (the load's length) is cut into `max_points`
//!   equal strata, and each stratum captures one point, so the points
//!   fall across the whole load rather than in its first moments (a
//!   stratum that captured none, because no candidate came after its look
//!   instant or a capture's copy stalled the load past it, leaves its
//!   point to the next).
//!   Within a stratum the plan prefers the candidates with the most at
//!   stake, scored by files with unsynced operations times bytes of
//!   unsynced writes (a page batch of several data files beside the log
//!   outscores a log write alone): it only watches candidates until a look
//!   instant drawn by the seed in the first fifth to half of the stratum,
//!   remembering the best score, then captures the first candidate whose
//!   score reaches that best times the fraction of the stratum still left
//!   (a bar that falls to 0 at the stratum's end, so a stratum with
//!   candidates after its look instant captures one). This is the
//!   secretary rule with a falling bar. After the window every candidate
//!   counts as the last stratum's.
//! - **The first candidates** (no window): of the candidates, numbered from
//!   0, the plan captures number `offset`, `offset + every`, `offset + 2 *
//!   every`, … until it holds `max_points`, where `offset` is drawn from
//!   `0..every` by the seed. With `every = 1` that is the first
//!   `max_points` candidates.
//!
//! Either way the choice depends only on the seed and the sequence of
//! candidates (their times and scores): the same seed on the same sequence
//! captures the same points.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

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
    /// Seed of the offset of the first capture, in `0..every`, and of the
    /// strata's look instants.
    pub seed: u64,
    /// When set, the points are spread over this span from the moment the
    /// plan is armed (the load's length), `every` unused; see the
    /// [module docs](self).
    pub window: Option<Duration>,
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
    /// How long after the plan was armed the call arrived (the plan is
    /// armed as the load begins: how far into the load).
    pub since: Duration,
    /// The call, e.g. `fdatasync #12 of /test/bank.ibd` (the candidate's
    /// number, from 0).
    pub label: String,
    /// Why the copy failed, if it did.
    pub error: Option<String>,
    /// The candidate's score: files with unsynced operations times bytes
    /// of unsynced writes.
    pub score: u64,
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

/// How much a crash point at this history has at stake: files with
/// unsynced operations times bytes of unsynced writes.
pub(crate) fn score(history: &History) -> u64 {
    (history.files() as u64).saturating_mul(history.bytes())
}

/// An armed plan and its counters, kept in the filesystem's state.
#[derive(Debug)]
pub(crate) struct Armed {
    pub(crate) plan: CapturePlan,
    offset: u64,
    pub(crate) counts: CaptureCounts,
    /// When the plan was armed: the zero of the window.
    pub(crate) armed_at: Instant,
    strata: Option<Strata>,
}

impl Armed {
    pub(crate) fn new(plan: CapturePlan) -> Self {
        let every = u64::from(plan.every.max(1));
        let mut rng = crate::rng::SplitMix64::new(plan.seed);
        let offset = rng.below(every);
        let strata = plan.window.filter(|_| plan.max_points > 0).map(|w| Strata::new(w, plan.max_points, &mut rng));
        Armed { plan, offset, counts: CaptureCounts::default(), armed_at: Instant::now(), strata }
    }

    /// Counts a candidate that arrived `since` the plan was armed, with
    /// `score` at stake; returns its number when it is to be captured.
    pub(crate) fn select(&mut self, since: Duration, score: u64) -> Option<u64> {
        let n = self.counts.candidates;
        self.counts.candidates += 1;
        if self.counts.captured >= u64::from(self.plan.max_points) {
            return None;
        }
        match &mut self.strata {
            Some(strata) => strata.select(since, score, self.counts.captured).then_some(n),
            None => {
                let every = u64::from(self.plan.every.max(1));
                (n >= self.offset && (n - self.offset).is_multiple_of(every)).then_some(n)
            }
        }
    }
}

/// The state of a plan that spreads its points over a window: one point
/// per stratum, by the secretary rule with a falling bar (module docs).
/// With one stratum it also aims a power cut at the write with the most at
/// stake ([`crate::FaultHandle::cut_at_best_write`]).
#[derive(Debug)]
pub(crate) struct Strata {
    window: Duration,
    /// Each stratum's look instant, from the plan's arming.
    looks: Vec<Duration>,
    /// The stratum of the last candidate, and the best score seen in it.
    current: usize,
    best: u64,
}

impl Strata {
    pub(crate) fn new(window: Duration, points: u32, rng: &mut crate::rng::SplitMix64) -> Self {
        let width = window / points;
        let looks = (0..points)
            .map(|j| {
                // A look instant in the first fifth to half of the stratum.
                let fraction = 200_000 + rng.below(300_000);
                width * j + width.mul_f64(fraction as f64 / 1e6)
            })
            .collect();
        Strata { window, looks, current: 0, best: 0 }
    }

    /// Whether to capture a candidate that arrived `since` the plan was
    /// armed with `score`, `captured` points being held already. By the end
    /// of stratum `j` the plan may hold `j + 1` points: a stratum that
    /// captured none (a capture's copy stalled the load past it, or no
    /// candidate came) leaves its point to the next.
    pub(crate) fn select(&mut self, since: Duration, score: u64, captured: u64) -> bool {
        let k = self.looks.len();
        let width = (self.window / k as u32).as_nanos().max(1);
        let j = usize::try_from(since.as_nanos() / width).unwrap_or(usize::MAX).min(k - 1);
        if j != self.current {
            (self.current, self.best) = (j, 0);
        }
        if captured > j as u64 {
            return false;
        }
        let look = self.looks[j];
        if since < look {
            self.best = self.best.max(score);
            return false;
        }
        let end = if j + 1 == k { self.window } else { self.window / k as u32 * (j as u32 + 1) };
        let span = end.saturating_sub(look).as_nanos().max(1);
        let left = end.saturating_sub(since).as_nanos().min(span);
        let bar = u128::from(self.best) * left / span;
        self.best = self.best.max(score);
        u128::from(score) >= bar
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
            window: None,
        };
        let run = |armed: &mut Armed| {
            let mut picked = Vec::new();
            for _ in 0..20 {
                if let Some(n) = armed.select(Duration::ZERO, 0) {
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

    /// Feeds `armed` candidates `(ms since armed, score)`; returns the
    /// numbers captured.
    fn feed(armed: &mut Armed, candidates: &[(u64, u64)]) -> Vec<u64> {
        let mut picked = Vec::new();
        for &(ms, score) in candidates {
            if let Some(n) = armed.select(Duration::from_millis(ms), score) {
                picked.push(n);
                armed.counts.captured += 1;
            }
        }
        picked
    }

    fn spread(points: u32, seed: u64) -> Armed {
        Armed::new(CapturePlan {
            trigger: Trigger::fsync(),
            max_points: points,
            every: 1,
            seed,
            into: PathBuf::from("/nonexistent"),
            window: Some(Duration::from_secs(3)),
        })
    }

    #[test]
    fn spread_points_fall_one_per_stratum_across_the_whole_window() {
        // A candidate every millisecond, all alike: each of the three
        // seconds captures one, after its look instant (a fifth to half in).
        let candidates: Vec<(u64, u64)> = (0..3000).map(|ms| (ms, 100)).collect();
        for seed in 0..16 {
            let picked = feed(&mut spread(3, seed), &candidates);
            assert_eq!(picked.len(), 3, "seed {seed}: {picked:?}");
            for (j, &n) in picked.iter().enumerate() {
                let lo = 1000 * j as u64;
                assert!((lo + 200..=lo + 500).contains(&n), "seed {seed}: point {j} at {n} ms: {picked:?}");
            }
        }
    }

    #[test]
    fn spread_points_prefer_candidates_with_more_at_stake() {
        // Log writes (score 1) every millisecond; every 100 ms a page batch
        // (score 1000). The look phase sees a batch, so each stratum waits
        // for the next batch rather than taking a log write.
        let candidates: Vec<(u64, u64)> = (0..3000).map(|ms| (ms, if ms % 100 == 50 { 1000 } else { 1 })).collect();
        for seed in 0..16 {
            let picked = feed(&mut spread(3, seed), &candidates);
            assert_eq!(picked.len(), 3, "seed {seed}: {picked:?}");
            assert!(picked.iter().all(|n| n % 100 == 50), "seed {seed}: {picked:?}");
        }
    }

    #[test]
    fn the_bar_falls_so_a_stratum_takes_a_lesser_candidate_rather_than_none() {
        // One big candidate early in the stratum, then only small ones: the
        // bar falls with the time left, and a small one is taken before the
        // stratum ends.
        let mut candidates = vec![(10, 1000)];
        candidates.extend((600..1000).map(|ms| (ms, 10)));
        let picked = feed(&mut spread(1, 7), &candidates.iter().map(|&(t, s)| (t * 3, s)).collect::<Vec<_>>());
        assert_eq!(picked.len(), 1, "{picked:?}");
        // A stratum with no candidate after its look instant captures none.
        assert!(feed(&mut spread(3, 7), &[(10, 5), (1010, 5), (2010, 5)]).is_empty());
    }

    #[test]
    fn a_stratum_that_captured_nothing_leaves_its_point_to_the_next() {
        // The first third sees one candidate, in its look phase; nothing
        // comes in the second (a capture's copy stalls the load); the last
        // third takes its own point and the two left to it.
        let mut candidates = vec![(10, 5)];
        candidates.extend((2000..3000).step_by(10).map(|ms| (ms, 5)));
        let picked = feed(&mut spread(3, 7), &candidates);
        assert_eq!(picked.len(), 3, "{picked:?}");
        assert!(picked.iter().all(|&n| n > 0), "the look phase's candidate is not taken: {picked:?}");
    }

    #[test]
    fn spread_points_are_the_same_for_the_same_seed_and_move_with_it() {
        let candidates: Vec<(u64, u64)> = (0..3000).map(|ms| (ms, (ms * 7919) % 13)).collect();
        let picks: Vec<Vec<u64>> = (0..8).map(|seed| feed(&mut spread(4, seed), &candidates)).collect();
        for (seed, p) in picks.iter().enumerate() {
            assert_eq!(&feed(&mut spread(4, seed as u64), &candidates), p, "seed {seed}");
        }
        let distinct: std::collections::BTreeSet<&Vec<u64>> = picks.iter().collect();
        assert!(distinct.len() > 1, "the seed moves the points: {picks:?}");
    }

    #[test]
    fn after_the_window_candidates_count_as_the_last_stratum() {
        // The load ran past its length (the fault waits at its end): a
        // last stratum that had no candidate yet still captures one.
        let picked = feed(&mut spread(2, 3), &[(100, 1), (1400, 1), (3500, 1), (3600, 1)]);
        assert_eq!(picked, [1, 2], "{picked:?}");
    }
}
