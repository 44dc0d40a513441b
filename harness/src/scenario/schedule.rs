//! Fault schedules: a cycle as a sequence of steps on one deployment —
//! loads, faults on named hosts, recoveries, waits — ending in the
//! oracle's verdict, instead of one load and one fault at its end.
//!
//! A schedule has a textual form, one step a string, that a scenario
//! carries in `[[schedule]]` and that crashlab prints back the same way:
//!
//! ```text
//! load 2s                       the load runs for 2 s (`load 2s clients=2`: with 2 clients)
//! host-kill on primary          a fault, on the host it acts on, while the load still runs
//! partition on replica for 3s   a fault that lasts, with its length
//! recover                       the way back from the last fault, as an operator would
//! wait ready | wait caught-up   until the server answers, or the replica applied everything
//! verify                        the data read back and judged; the last step
//! ```
//!
//! The faults are the registry's ([`Fault::ALL`]) and what a schedule may
//! do with one follows from its [`crate::faults::Behaviour`]: the host it
//! acts on, whether the service still answers after it (then another
//! fault may land before the recovery), whether it lasts, and which
//! simpler fault a shrunk schedule tries instead. A new fault needs nothing
//! here.
//!
//! [`generate`] draws schedules from a seed, and [`shrink`] lists the
//! smaller schedules a failing one is shrunk through.

use crate::deploy::topology::Host;
use crate::faults::Fault;
use crate::settings::{FaultsSection, parse_duration};
use crate::text::one_line;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use std::fmt;
use std::time::Duration;

/// The shortest load or fault length a schedule takes, and the grain of
/// generated and shrunk lengths.
pub const GRAIN: Duration = Duration::from_millis(100);
/// The longest load step.
const MAX_LOAD: Duration = Duration::from_secs(3600);
/// The longest fault length (a partition's, as `[faults] partition`).
const MAX_LENGTH: Duration = Duration::from_secs(60);

/// One step of a schedule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Step {
    /// The load runs for `length`, with `clients` clients (the scenario's
    /// when `None`); it goes on through the faults that follow it, until
    /// the next step that is not a fault.
    Load { length: Duration, clients: Option<u32> },
    /// A fault on `host`, lasting `length` when it lasts.
    Fault { fault: Fault, host: Host, length: Option<Duration> },
    /// The way back from the last fault.
    Recover,
    /// Until a condition holds.
    Wait(Condition),
    /// The data read back and judged.
    Verify,
}

/// What a `wait` step waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Condition {
    /// The server answers.
    Ready,
    /// The replica applied everything the primary committed.
    CaughtUp,
}

impl Condition {
    fn as_str(self) -> &'static str {
        match self {
            Condition::Ready => "ready",
            Condition::CaughtUp => "caught-up",
        }
    }
}

/// A sequence of steps, valid by [`Schedule::new`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Schedule {
    steps: Vec<Step>,
}

/// Writes a length the way durations are written in scenarios.
fn length(d: Duration) -> String {
    if d.subsec_millis() == 0 { format!("{}s", d.as_secs()) } else { format!("{}ms", d.as_millis()) }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Load { length: d, clients: None } => write!(f, "load {}", length(*d)),
            Step::Load { length: d, clients: Some(n) } => write!(f, "load {} clients={n}", length(*d)),
            Step::Fault { fault, host, length: None } => write!(f, "{fault} on {host}"),
            Step::Fault { fault, host, length: Some(d) } => write!(f, "{fault} on {host} for {}", length(*d)),
            Step::Recover => f.write_str("recover"),
            Step::Wait(c) => write!(f, "wait {}", c.as_str()),
            Step::Verify => f.write_str("verify"),
        }
    }
}

fn bounded(word: &str, what: &str, max: Duration) -> Result<Duration, String> {
    let d = parse_duration(word).map_err(|e| format!("{what}: {e}"))?;
    if d < GRAIN || d > max {
        return Err(format!("{what} must be between {} and {}, got `{}`", length(GRAIN), length(max), one_line(word)));
    }
    Ok(d)
}

impl std::str::FromStr for Step {
    type Err = String;

    fn from_str(text: &str) -> Result<Step, String> {
        let text = text.trim();
        let words: Vec<&str> = text.split_whitespace().collect();
        match words.as_slice() {
            ["load", d] => Ok(Step::Load { length: bounded(d, "a load's length", MAX_LOAD)?, clients: None }),
            ["load", d, clients] => {
                let n = clients
                    .strip_prefix("clients=")
                    .and_then(|n| n.parse::<u32>().ok())
                    .filter(|n| (1..=256).contains(n))
                    .ok_or_else(|| {
                        format!("`{}`: write the clients as `clients=N`, N from 1 to 256", one_line(text))
                    })?;
                Ok(Step::Load { length: bounded(d, "a load's length", MAX_LOAD)?, clients: Some(n) })
            }
            ["recover"] => Ok(Step::Recover),
            ["verify"] => Ok(Step::Verify),
            ["wait", "ready"] => Ok(Step::Wait(Condition::Ready)),
            ["wait", "caught-up"] => Ok(Step::Wait(Condition::CaughtUp)),
            ["wait", ..] => Err(format!("`{}`: wait for `ready` or `caught-up`", one_line(text))),
            [name, rest @ ..] => fault_step(text, name, rest),
            [] => Err("an empty step: write `load 2s`, a fault such as `host-kill`, `recover`, `wait ready` or \
                       `verify`"
                .into()),
        }
    }
}

/// `<fault> [on <host>] [for <length>]`.
fn fault_step(text: &str, name: &str, rest: &[&str]) -> Result<Step, String> {
    let fault = Fault::named(name).ok_or_else(|| {
        format!(
            "unknown step `{}`: a step is `load <length>`, `recover`, `wait ready`, `wait caught-up`, `verify` \
             or a fault ({})",
            one_line(text),
            Fault::ALL.map(Fault::as_str).join(", ")
        )
    })?;
    let behaviour = fault.behaviour();
    let (host, rest) = match rest {
        ["on", host, rest @ ..] => (host.parse::<Host>()?, rest),
        rest => (behaviour.host(), rest),
    };
    if host != behaviour.host() {
        return Err(format!("{fault} acts on the {}, not the {host}", behaviour.host()));
    }
    let length = match rest {
        [] => None,
        ["for", d] => {
            let d = bounded(d, &format!("{fault}'s length"), MAX_LENGTH)?;
            if !behaviour.set_length(&mut FaultsSection::default(), d) {
                return Err(format!("{fault} has no length: write it without `for …`"));
            }
            Some(d)
        }
        _ => return Err(format!("`{}`: write a fault as `{fault} [on <host>] [for <length>]`", one_line(text))),
    };
    Ok(Step::Fault { fault, host, length })
}

impl Schedule {
    /// Checks that the steps make a schedule: at least one load before the
    /// first fault, at least one fault, every fault that takes the service
    /// down recovered from before anything but `recover`, every fault
    /// recovered from before a load, a wait or the verification, and
    /// `verify` last and only there. Faults that explore crash points of
    /// their own cycle (`crash-states`) take no part in schedules.
    pub fn new(steps: Vec<Step>) -> Result<Schedule, String> {
        let mut loaded = false;
        let mut faults = 0;
        // The fault not yet recovered from, and whether it left the
        // service up.
        let mut pending: Option<(Fault, bool)> = None;
        for (i, step) in steps.iter().enumerate() {
            let last = i + 1 == steps.len();
            if let Some((fault, up)) = pending {
                let allowed = matches!(step, Step::Recover) || (up && matches!(step, Step::Fault { .. }));
                if !allowed {
                    let why = if up { "a load, a wait or verify" } else { "anything else" };
                    return Err(format!("step {} `{step}`: `recover` from {fault} must come before {why}", i + 1));
                }
            }
            match step {
                Step::Load { .. } => loaded = true,
                Step::Fault { fault, .. } => {
                    if !loaded {
                        return Err(format!("step {} `{step}`: a load must come before the first fault", i + 1));
                    }
                    if fault.records_history() {
                        return Err(format!(
                            "step {} `{step}`: {fault} explores the crash states of one cycle's fault and takes no \
                             part in a schedule",
                            i + 1
                        ));
                    }
                    faults += 1;
                    pending = Some((*fault, fault.behaviour().leaves_service_up()));
                }
                Step::Recover if pending.is_none() => {
                    return Err(format!("step {} `recover`: no fault to recover from", i + 1));
                }
                Step::Recover => pending = None,
                Step::Wait(_) => {}
                Step::Verify if !last => return Err(format!("step {} `verify`: verify is the last step", i + 1)),
                Step::Verify => {}
            }
        }
        if faults == 0 {
            return Err("a schedule needs at least one fault".into());
        }
        if steps.last() != Some(&Step::Verify) {
            return Err("a schedule ends with `verify`".into());
        }
        Ok(Schedule { steps })
    }

    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The faults, in order.
    pub fn faults(&self) -> impl Iterator<Item = Fault> + '_ {
        self.steps.iter().filter_map(|s| match s {
            Step::Fault { fault, .. } => Some(*fault),
            _ => None,
        })
    }

    /// Why `strategy` cannot run this schedule, when it cannot: a backup
    /// strategy, one of its faults cannot run there, it waits for a replica
    /// the strategy has none of, or it needs the replica after a failover.
    pub fn unsupported_on(&self, strategy: crate::storage::Strategy) -> Option<String> {
        if strategy.is_backup() {
            // Their backup schedule ends with the one fault of a cycle.
            return Some(format!(
                "{strategy} takes its backups through one load and one fault; schedules of several \
                                 are not run on backup strategies yet"
            ));
        }
        if let Some(f) = self.faults().find(|f| f.unsupported_on(strategy).is_some()) {
            return f.unsupported_on(strategy).map(|why| format!("{f}: {why}"));
        }
        let replicated = strategy.def().data_on.replication().is_some();
        if !replicated {
            return self
                .steps
                .contains(&Step::Wait(Condition::CaughtUp))
                .then(|| format!("`wait caught-up` waits for a replica, and {strategy} has none"));
        }
        // A replicated deployment fails over once: after that it has no
        // replica left.
        let lost =
            self.steps.iter().position(|s| matches!(s, Step::Fault { fault, .. } if fault.behaviour().loses_host()))?;
        self.steps[lost + 1..].iter().find(|s| needs_a_replica(s)).map(|s| {
            format!("`{s}` comes after `{}` failed over to the replica, and {strategy} has no other", self.steps[lost])
        })
    }

    /// The steps as a scenario writes them: `steps = ["load 2s", …]`.
    pub fn toml_steps(&self) -> String {
        let steps: Vec<String> = self.steps.iter().map(|s| format!("\"{s}\"")).collect();
        format!("steps = [{}]", steps.join(", "))
    }
}

/// Whether a step needs the replica of a replicated deployment.
fn needs_a_replica(step: &Step) -> bool {
    match step {
        Step::Fault { fault, host, .. } => *host == Host::Replica || fault.behaviour().loses_host(),
        Step::Wait(c) => *c == Condition::CaughtUp,
        _ => false,
    }
}

/// The one-line form: the steps joined by `, `.
impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let steps: Vec<String> = self.steps.iter().map(ToString::to_string).collect();
        f.write_str(&steps.join(", "))
    }
}

impl std::str::FromStr for Schedule {
    type Err = String;

    fn from_str(text: &str) -> Result<Schedule, String> {
        let steps = text.split(',').map(str::parse).collect::<Result<Vec<Step>, String>>()?;
        Schedule::new(steps)
    }
}

/// What schedules are drawn from.
#[derive(Debug, Clone)]
pub struct Alphabet {
    /// The faults a schedule may take, each runnable on the strategy.
    pub faults: Vec<Fault>,
    /// At most this many faults a schedule.
    pub max_faults: u32,
    /// The longest load step.
    pub max_load: Duration,
    /// The scenario's clients: loads draw as many or fewer.
    pub clients: u32,
    /// Whether the strategy has a replica to wait for.
    pub replicated: bool,
}

/// A length from `GRAIN` to `max`, in grains.
fn draw_length(rng: &mut SmallRng, min: Duration, max: Duration) -> Duration {
    let (lo, hi) = ((min.as_millis() / GRAIN.as_millis()) as u32, (max.as_millis() / GRAIN.as_millis()) as u32);
    GRAIN * rng.random_range(lo.max(1)..=hi.max(lo.max(1)))
}

/// The `n`th schedule drawn from `seed`: the same seed and alphabet give
/// the same schedules. Each has 1 to `max_faults` faults, in groups that
/// end in a recovery; a group starts with a load, except that a later one
/// may strike right after the last recovery (not a fault that strikes the
/// load's writes, which would then not fire); a fault that leaves the
/// service up may be followed by another in the same group.
pub fn generate(seed: u64, n: u64, alphabet: &Alphabet) -> Schedule {
    let mut rng = SmallRng::seed_from_u64(seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut steps = Vec::new();
    let mut left = rng.random_range(1..=alphabet.max_faults.max(1));
    let min_load = (GRAIN * 5).min(alphabet.max_load);
    // On a replicated strategy, once a fault lost a host no step may need
    // the replica (see `Schedule::unsupported_on`).
    let mut failed_over = false;
    while left > 0 {
        if steps.is_empty() || rng.random_bool(0.75) {
            let clients = (alphabet.clients > 1 && rng.random_bool(0.3)).then(|| rng.random_range(1..alphabet.clients));
            steps.push(Step::Load { length: draw_length(&mut rng, min_load, alphabet.max_load), clients });
        }
        loop {
            let fault = alphabet.faults[rng.random_range(0..alphabet.faults.len())];
            let behaviour = fault.behaviour();
            let length = behaviour
                .set_length(&mut FaultsSection::default(), GRAIN)
                .then(|| draw_length(&mut rng, GRAIN, Duration::from_secs(4)));
            let step = Step::Fault { fault, host: behaviour.host(), length };
            if failed_over && needs_a_replica(&step) {
                // Drawn all the same, so that the draws after it do not
                // depend on the topology; the schedule ends here.
                left = 0;
                break;
            }
            failed_over |= alphabet.replicated && behaviour.loses_host();
            if behaviour.strikes_the_loads_writes() && matches!(steps.last(), Some(Step::Recover | Step::Wait(_))) {
                steps.push(Step::Load { length: draw_length(&mut rng, min_load, alphabet.max_load), clients: None });
            }
            steps.push(step);
            left -= 1;
            if left == 0 || !behaviour.leaves_service_up() || !rng.random_bool(0.5) {
                break;
            }
        }
        if matches!(steps.last(), Some(Step::Fault { .. })) {
            steps.push(Step::Recover);
        }
        if alphabet.replicated && !failed_over && rng.random_bool(0.25) {
            steps.push(Step::Wait(Condition::CaughtUp));
        }
    }
    if matches!(steps.last(), Some(Step::Load { .. })) {
        steps.pop();
    }
    steps.push(Step::Verify);
    Schedule::new(steps).expect("generated schedules are valid by construction")
}

/// Half of `d`, in grains, no shorter than `floor`; `None` when it is
/// already there.
fn halved(d: Duration, floor: Duration) -> Option<Duration> {
    let half = (GRAIN * ((d.as_millis() / GRAIN.as_millis() / 2) as u32)).max(floor);
    (half < d).then_some(half)
}

/// The schedules one step smaller than `s`, simplest first: a fault fewer
/// (with its group's load and recovery when it was the group's only
/// fault), a load fewer (the fault then strikes earlier), a simpler fault,
/// shorter loads and faults, fewer clients (`clients` is the scenario's).
/// Only valid schedules are listed, each once.
pub fn shrink(s: &Schedule, clients: u32) -> Vec<Schedule> {
    let steps = &s.steps;
    let mut out: Vec<Vec<Step>> = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        if let Step::Fault { .. } = step {
            let mut fewer = steps.clone();
            fewer.remove(i);
            out.push(fewer.clone());
            // The group alone: the load before and the recovery after go too.
            let start = if i > 0 && matches!(steps[i - 1], Step::Load { .. }) { i - 1 } else { i };
            let mut end = i + 1;
            if matches!(steps.get(end), Some(Step::Recover)) {
                end += 1;
                while matches!(steps.get(end), Some(Step::Wait(_))) {
                    end += 1;
                }
            }
            let mut group = steps.clone();
            group.drain(start..end);
            out.push(group);
        }
    }
    for (i, step) in steps.iter().enumerate() {
        if let Step::Load { .. } = step {
            let mut earlier = steps.clone();
            earlier.remove(i);
            out.push(earlier);
        }
    }
    for (i, step) in steps.iter().enumerate() {
        if let Step::Fault { fault, length, .. } = step
            && let Some(simpler) = fault.behaviour().simpler()
        {
            let behaviour = simpler.behaviour();
            let length = length.filter(|d| behaviour.set_length(&mut FaultsSection::default(), *d));
            let mut simplified = steps.clone();
            simplified[i] = Step::Fault { fault: simpler, host: behaviour.host(), length };
            out.push(simplified);
        }
    }
    for (i, step) in steps.iter().enumerate() {
        let shorter = match *step {
            Step::Load { length, clients: c } => halved(length, GRAIN).map(|length| Step::Load { length, clients: c }),
            Step::Fault { fault, host, length: Some(d) } => {
                halved(d, GRAIN).map(|d| Step::Fault { fault, host, length: Some(d) })
            }
            _ => None,
        };
        if let Some(shorter) = shorter {
            let mut v = steps.clone();
            v[i] = shorter;
            out.push(v);
        }
    }
    for (i, step) in steps.iter().enumerate() {
        if let Step::Load { length, clients: c } = *step
            && c.unwrap_or(clients) > 1
        {
            let mut v = steps.clone();
            v[i] = Step::Load { length, clients: Some(c.unwrap_or(clients) / 2) };
            out.push(v);
        }
    }
    let mut seen = std::collections::HashSet::new();
    out.into_iter().filter_map(|v| Schedule::new(v).ok()).filter(|c| c != s && seen.insert(c.clone())).collect()
}

/// The schedule's shape: its steps with every length and client count
/// alike, so that schedules that differ only in them compare equal.
pub fn shape(s: &Schedule) -> Vec<Step> {
    s.steps
        .iter()
        .map(|step| match *step {
            Step::Load { .. } => Step::Load { length: GRAIN, clients: None },
            Step::Fault { fault, host, length } => Step::Fault { fault, host, length: length.map(|_| GRAIN) },
            ref other => other.clone(),
        })
        .collect()
}

/// How many steps down [`crate::faults::Behaviour::simpler`] a fault is
/// from the simplest.
fn complexity(fault: Fault) -> usize {
    std::iter::successors(fault.behaviour().simpler(), |f| f.behaviour().simpler()).take(Fault::ALL.len()).count()
}

/// A size for comparing schedules: faults first, then steps, then how
/// complex the faults are, the time the schedule loads and cuts, and its
/// clients (summed over its loads).
pub fn size(s: &Schedule, clients: u32) -> (usize, usize, usize, Duration, u32) {
    let mut time = Duration::ZERO;
    let mut most = 0;
    for step in &s.steps {
        match step {
            Step::Load { length, clients: c } => {
                time += *length;
                most += c.unwrap_or(clients);
            }
            Step::Fault { length: Some(d), .. } => time += *d,
            _ => {}
        }
    }
    (s.faults().count(), s.steps.len(), s.faults().map(complexity).sum(), time, most)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(text: &str) -> Result<Schedule, String> {
        text.parse()
    }

    #[test]
    fn the_textual_form_round_trips() {
        for text in [
            "load 2s, host-kill on primary, recover, verify",
            "load 1500ms clients=2, process-kill on primary, recover, load 3s, host-kill on primary, recover, verify",
            "load 2s, partition on replica for 3s, host-loss on primary, recover, wait caught-up, verify",
            "load 2s, host-kill on primary, recover, host-kill on primary, recover, wait ready, verify",
            "load 1s, storage-node-loss on storage, recover, verify",
        ] {
            let s = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(s.to_string(), text);
        }
        let s = parse("load 2s,host-kill, recover,verify").unwrap();
        assert_eq!(s.to_string(), "load 2s, host-kill on primary, recover, verify", "the host is written out");
    }

    #[test]
    fn bad_schedules_say_what_is_wrong() {
        let cases = [
            ("load 2s, host-kill on replica, recover, verify", "host-kill acts on the primary, not the replica"),
            ("load 2s, host-kill on moon, recover, verify", "unknown host `moon`"),
            ("load 2s, power-cut, recover, verify", "unknown step `power-cut`"),
            ("load 2s, host-kill for 3s, recover, verify", "host-kill has no length"),
            ("load 2, host-kill, recover, verify", "a load's length: invalid duration `2`: missing unit"),
            ("load 50ms, host-kill, recover, verify", "a load's length must be between 100ms and 3600s"),
            ("load 1s clients=0, host-kill, recover, verify", "`clients=N`, N from 1 to 256"),
            ("load 2s, process-kill, process-kill, recover, verify", "`recover` from process-kill must come before"),
            ("load 2s, process-kill, verify", "step 3 `verify`: `recover` from process-kill"),
            ("load 2s, partition, load 1s, recover, verify", "step 3 `load 1s`: `recover` from partition"),
            ("host-kill, recover, verify", "a load must come before the first fault"),
            ("load 2s, recover, verify", "no fault to recover from"),
            ("load 2s, verify", "at least one fault"),
            ("load 2s, host-kill, recover", "ends with `verify`"),
            ("load 2s, host-kill, recover, verify, verify", "verify is the last step"),
            ("load 2s, crash-states, recover, verify", "takes no part in a schedule"),
            ("load 2s, wait soon, host-kill, recover, verify", "wait for `ready` or `caught-up`"),
            ("load 2s, partition for 2m, recover, verify", "partition's length must be between 100ms and 60s"),
        ];
        for (text, expected) in cases {
            let err = parse(text).unwrap_err();
            assert!(err.contains(expected), "for {text:?}: got {err:?}, wanted {expected:?}");
        }
    }

    #[test]
    fn partitions_leave_the_service_up_so_another_fault_may_follow() {
        assert!(parse("load 2s, partition for 3s, host-loss, recover, verify").is_ok());
        assert!(parse("load 2s, partition, partition, recover, verify").is_ok());
    }

    fn alphabet() -> Alphabet {
        Alphabet {
            faults: vec![Fault::HostKill, Fault::ProcessKill, Fault::Partition, Fault::HostLoss],
            max_faults: 3,
            max_load: Duration::from_secs(2),
            clients: 4,
            replicated: true,
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_schedules() {
        let a = alphabet();
        let draw = |seed| (0..50).map(|n| generate(seed, n, &a).to_string()).collect::<Vec<_>>();
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        let distinct: std::collections::HashSet<String> = draw(7).into_iter().collect();
        assert!(distinct.len() > 40, "{distinct:?}");
        let most = (0..200).map(|n| generate(7, n, &a).faults().count()).max();
        assert_eq!(most, Some(3));
        assert!((0..200).any(|n| generate(7, n, &a).to_string().contains("partition on replica for")));
        let replicated = Alphabet { faults: vec![Fault::Partition, Fault::HostLoss, Fault::ProcessKill], ..a };
        for n in 0..500 {
            let s = generate(7, n, &replicated);
            assert_eq!(s.unsupported_on(crate::storage::Strategy::ReplicaSemisync), None, "{s}");
        }
    }

    #[test]
    fn a_replicated_deployment_fails_over_once() {
        use crate::storage::Strategy;
        let after = parse("load 2s, host-loss, recover, load 1s, partition, recover, verify").unwrap();
        let why = after.unsupported_on(Strategy::ReplicaAsync).unwrap();
        assert!(
            why.contains("`partition on replica for` comes after")
                || why.contains("`partition on replica` comes after `host-loss on primary` failed over"),
            "{why}"
        );
        assert_eq!(after.unsupported_on(Strategy::NamedVolume).map(|w| w.contains("partition")), Some(true));
        let twice = parse("load 2s, host-loss, recover, host-loss, recover, verify").unwrap();
        assert!(twice.unsupported_on(Strategy::ReplicaSemisync).is_some());
        assert_eq!(twice.unsupported_on(Strategy::NamedVolume), None, "a single host is rebuilt after each loss");
        let first = parse("load 2s, partition for 3s, host-loss, recover, verify").unwrap();
        assert_eq!(first.unsupported_on(Strategy::ReplicaSemisync), None);
        assert!(first.unsupported_on(Strategy::BackupHot).unwrap().contains("not run on backup strategies"));
        let waits = parse("load 2s, host-kill, recover, wait caught-up, verify").unwrap();
        assert!(waits.unsupported_on(Strategy::BindMount).unwrap().contains("has none"));
    }

    #[test]
    fn shrinking_reaches_one_fault_and_only_smaller_schedules() {
        let s = parse("load 2s, process-kill, recover, load 1s clients=3, host-loss, recover, wait caught-up, verify")
            .unwrap();
        let candidates = shrink(&s, 4);
        let texts: Vec<String> = candidates.iter().map(ToString::to_string).collect();
        assert!(texts.contains(&"load 1s clients=3, host-loss on primary, recover, wait caught-up, verify".into()));
        assert!(texts.contains(&"load 2s, process-kill on primary, recover, verify".into()));
        assert!(
            texts.contains(
                &"load 2s, process-kill on primary, recover, load 1s clients=3, host-kill on primary, recover, wait \
              caught-up, verify"
                    .into()
            )
        );
        assert!(texts.contains(
            &"load 2s, process-kill on primary, recover, host-loss on primary, recover, wait caught-up, verify".into()
        ));
        assert!(texts.iter().any(|t| t.contains("load 1s clients=1,")));
        assert!(texts.iter().any(|t| t.starts_with("load 2s clients=2, process-kill")), "{texts:?}");
        for c in &candidates {
            assert!(size(c, 4) < size(&s, 4), "{c} is no smaller than {s}");
        }
        let single = parse("load 100ms clients=1, process-kill, recover, verify").unwrap();
        assert!(shrink(&single, 4).is_empty(), "{:?}", shrink(&single, 4));
    }

    proptest! {
        /// A torn write or a disk fault right after a recovery would find
        /// no write in flight and not fire: a load always comes first.
        #[test]
        fn a_fault_on_the_loads_writes_always_follows_a_load(seed in any::<u64>(), n in 0u64..200) {
            let a = Alphabet {
                faults: vec![Fault::TornWrite, Fault::DiskFull, Fault::ProcessKill, Fault::Restart],
                replicated: false,
                ..alphabet()
            };
            let s = generate(seed, n, &a);
            for pair in s.steps().windows(2) {
                if let [before, Step::Fault { fault, .. }] = pair
                    && fault.behaviour().strikes_the_loads_writes()
                {
                    prop_assert!(matches!(before, Step::Load { .. }), "{} in {}", fault, s);
                }
            }
        }

        #[test]
        fn generated_schedules_print_and_parse_back(seed in any::<u64>(), n in 0u64..1000) {
            let s = generate(seed, n, &alphabet());
            prop_assert_eq!(parse(&s.to_string()), Ok(s.clone()));
            for c in shrink(&s, 4) {
                prop_assert_eq!(parse(&c.to_string()), Ok(c.clone()));
            }
        }
    }
}
