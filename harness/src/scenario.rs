//! Scenarios: what to run, read from TOML, and the plan of cells they
//! expand to.
//!
//! Keys are kebab-case. An unknown key or a bad value is an error that names
//! the file, the line and the key; nothing is guessed. See
//! `scenarios/smoke.toml` for a complete example, `docs/scenarios.md` for
//! every key and `docs/design.md` for the contract.

pub mod filter;
pub mod schedule;
pub mod table;
use crate::faults::Fault;
use crate::storage::{BackupKind, Strategy};
use crashlab_reports::{Unsupported, Verdict};
use serde::{Deserialize, Deserializer};
use std::path::{Path, PathBuf};

pub use crate::settings::*;
use crate::text::{line_column, one_line, toml_message};

/// The smoke scenario, built in so that `crashlab run` works from any
/// directory.
pub const SMOKE: &str = include_str!("../../scenarios/smoke.toml");

/// A scenario that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("read scenario {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `location` is `file:line:column`; `message` names the key.
    #[error("{location}: {message}")]
    Invalid { location: String, message: String },
}

/// The identity of a cell across runs and shards, as its report will
/// carry it: `workload/strategy/fault`.
pub fn cell_id(scenario: &Scenario, cell: &Cell) -> String {
    crashlab_reports::partition::cell_id(
        scenario.workload.kind.as_str(),
        &cell.strategy.to_string(),
        &cell.fault_name(),
    )
}

/// A parsed, validated scenario.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Scenario {
    pub name: String,
    /// Same seed, same plan: every random choice derives from it.
    #[serde(default = "default_seed")]
    pub seed: u64,
    pub workload: WorkloadSection,
    pub matrix: Matrix,
    #[serde(default)]
    pub faults: FaultsSection,
    #[serde(default)]
    pub backup: BackupSection,
    #[serde(default)]
    pub explore: ExploreSection,
    #[serde(default)]
    pub expect: Vec<Expectation>,
    /// `[[schedule]]`: fault schedules, each run as a cell of its own
    /// after the matrix's ([`schedule`]).
    #[serde(default)]
    pub schedule: Vec<ScheduleEntry>,
    /// `[[strategy]]`: volumes of drivers, by the names `[matrix]
    /// strategies` and `[[expect]]` give them ([`table`]).
    #[serde(default, rename = "strategy")]
    pub strategy_tables: Vec<table::StrategyTable>,
    /// The cells chosen on the command line (`--filter`); the plan leaves
    /// the others out. Not a scenario key.
    #[serde(skip)]
    pub filter: Option<crate::scenario::filter::Filter>,
}

/// `[matrix]`: strategies × faults, each cell run `cycles` times.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Matrix {
    #[serde(deserialize_with = "non_empty_unique")]
    pub strategies: Vec<Strategy>,
    #[serde(deserialize_with = "non_empty_unique")]
    pub faults: Vec<Fault>,
    #[serde(default = "default_cycles", deserialize_with = "cycles")]
    pub cycles: u32,
    /// CPUs each cell's workload container may use (Docker's `--cpus`),
    /// so that cells run side by side (`--jobs`) do not distort each
    /// other's throughput; unlimited when absent.
    #[serde(default, deserialize_with = "cpus")]
    pub cpus: Option<f64>,
    /// Memory each cell's workload container may use (`--memory`), e.g.
    /// `"1GiB"`; unlimited when absent.
    #[serde(default, deserialize_with = "memory")]
    pub memory: Option<u64>,
}

/// `[[expect]]`: the verdict a cell may reach at worst. Later entries
/// override earlier ones; cells no entry matches expect `intact`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Expectation {
    #[serde(default)]
    pub strategy: Pattern<Strategy>,
    #[serde(default)]
    pub fault: Pattern<Fault>,
    #[serde(deserialize_with = "expected_verdict")]
    pub verdict: Verdict,
}

/// `"*"` or one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pattern<T> {
    #[default]
    Any,
    Is(T),
}

impl<T: PartialEq> Pattern<T> {
    pub fn matches(&self, value: &T) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Is(v) => v == value,
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Pattern<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s == "*" {
            return Ok(Pattern::Any);
        }
        T::deserialize(serde::de::value::StrDeserializer::<D::Error>::new(&s)).map(Pattern::Is)
    }
}

/// `[[schedule]]`: a fault schedule on one strategy, with the verdict it
/// may reach at worst (`intact` unless `expect` says otherwise).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ScheduleEntry {
    /// The cell's name in reports, `schedule-<name>`; `<n>`, its place
    /// among the scenario's schedules from 1, when left out.
    #[serde(default)]
    pub name: Option<String>,
    pub strategy: Strategy,
    #[serde(deserialize_with = "schedule_steps")]
    pub steps: schedule::Schedule,
    #[serde(default = "intact", deserialize_with = "expected_verdict")]
    pub expect: Verdict,
}

fn intact() -> Verdict {
    Verdict::Intact
}

fn schedule_steps<'de, D: Deserializer<'de>>(d: D) -> Result<schedule::Schedule, D::Error> {
    let steps = Vec::<String>::deserialize(d)?;
    let steps =
        steps.iter().map(|s| s.parse()).collect::<Result<Vec<_>, String>>().map_err(serde::de::Error::custom)?;
    schedule::Schedule::new(steps).map_err(serde::de::Error::custom)
}

impl ScheduleEntry {
    /// The entry as a scenario writes it, ready to paste.
    pub fn to_toml(&self) -> String {
        let mut text = String::from("[[schedule]]\n");
        if let Some(name) = &self.name {
            text.push_str(&format!("name = {}\n", toml::Value::from(name.as_str())));
        }
        text.push_str(&format!("strategy = \"{}\"\n{}\n", self.strategy, self.steps.toml_steps()));
        if self.expect != Verdict::Intact {
            text.push_str(&format!("expect = \"{}\"\n", self.expect));
        }
        text
    }
}

/// A schedule a cell runs, and its name in reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedSchedule {
    pub name: String,
    pub schedule: schedule::Schedule,
}

/// What is read of a scenario before the rest: its `[[strategy]]` tables.
#[derive(Deserialize)]
struct Tables {
    #[serde(default)]
    strategy: Vec<table::StrategyTable>,
}

/// One (workload, strategy, fault) of the plan, or one schedule: then
/// `fault` is the schedule's first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    pub index: usize,
    pub strategy: Strategy,
    pub fault: Fault,
    pub expected: Verdict,
    pub schedule: Option<NamedSchedule>,
}

impl Cell {
    /// What the cell does to its deployment, as reports name it: the
    /// fault, or `schedule-<name>`.
    pub fn fault_name(&self) -> String {
        match &self.schedule {
            Some(s) => format!("schedule-{}", s.name),
            None => self.fault.to_string(),
        }
    }

    /// The faults the cell injects.
    pub fn faults(&self) -> Vec<Fault> {
        match &self.schedule {
            Some(s) => s.schedule.faults().collect(),
            None => vec![self.fault],
        }
    }
}

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ScenarioError::Read { path: path.to_owned(), source })?;
        Scenario::parse(&text, &path.display().to_string())
    }

    /// Parses scenario text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Scenario, ScenarioError> {
        let toml_error = |e: toml::de::Error| {
            let (line, column) = e.span().map_or((1, 1), |s| line_column(text, s.start));
            ScenarioError::Invalid { location: format!("{origin}:{line}:{column}"), message: toml_message(text, &e) }
        };
        let invalid = |offset: usize, message: String| {
            let (line, column) = line_column(text, offset);
            ScenarioError::Invalid { location: format!("{origin}:{line}:{column}"), message: one_line(&message) }
        };
        // The tables first, so that the rest can name what they define.
        let tables = toml::from_str::<Tables>(text).map_err(toml_error)?.strategy;
        let mut volumes: Vec<&'static crate::storage::driver::DriverVolume> = Vec::new();
        for t in &tables {
            let at = t.name.span().start;
            let volume = t.check_volume().map_err(|m| invalid(at, format!("strategy: {m}")))?;
            if Strategy::from_name(&volume.name).is_some() || volumes.iter().any(|v| v.name == volume.name) {
                return Err(invalid(
                    at,
                    format!("strategy `{}` is defined twice (or is a built-in's name)", volume.name),
                ));
            }
            volumes.push(volume);
        }
        let scenario: Scenario =
            crate::storage::driver::with_tables(&volumes, || toml::from_str(text)).map_err(toml_error)?;
        for (t, volume) in tables.iter().zip(&volumes) {
            if !scenario.matrix.strategies.contains(&Strategy::Volume(volume)) {
                let message = format!("strategy `{}` is defined but not listed in `[matrix] strategies`", volume.name);
                return Err(invalid(t.name.span().start, message));
            }
        }
        if scenario.explore.spread == crate::settings::Spread::Load && scenario.explore.point_every != 1 {
            let at = key_offset(text, "explore", "point-every").unwrap_or(0);
            return Err(invalid(at, "point-every takes effect with `spread = \"first\"` only: by default (`spread = \"load\"`) the points are spread over the whole load".to_owned()));
        }
        if let Some(Store::S3(url)) = &scenario.backup.store
            && scenario.matrix.strategies.contains(&Strategy::SyncAgent)
            && let Ok(agent) = crate::deploy::agent::locate()
            && let Ok(false) = crate::deploy::agent::has_s3(&agent)
        {
            let (line, column) = line_column(text, key_offset(text, "backup", "store").unwrap_or(0));
            return Err(ScenarioError::Invalid {
                location: format!("{origin}:{line}:{column}"),
                message: format!(
                    "store `{}` needs a crashlab-agent built with S3, and {} has file stores only \
                     (build it with `cargo build --release -p crashlab-agent --features s3`)",
                    one_line(url),
                    agent.display()
                ),
            });
        }
        if let Err((key, message)) = scenario.check_user_check() {
            let (line, column) = line_column(text, key_offset(text, "workload", key).unwrap_or(0));
            return Err(ScenarioError::Invalid { location: format!("{origin}:{line}:{column}"), message });
        }
        if let Err(message) = scenario.check_restore_to() {
            let (line, column) = line_column(text, key_offset(text, "backup", "restore-to").unwrap_or(0));
            return Err(ScenarioError::Invalid { location: format!("{origin}:{line}:{column}"), message });
        }
        Ok(scenario)
    }

    /// A workload with no driver (`app`) runs the user's image and is
    /// judged by the user's `check` alone; a driver that records
    /// acknowledgements takes no `check`. `Err` names the key at fault.
    fn check_user_check(&self) -> Result<(), (&'static str, String)> {
        let w = &self.workload;
        let kind = w.kind.as_str();
        if w.kind.def().workload().records_acks() {
            return match w.check {
                Some(_) => Err((
                    "check",
                    format!(
                        "`check` is for kind `app`, a service crashlab has no driver for; `{kind}`'s driver checks                          the data against the writes it acknowledged: leave `check` out, or set kind = \"app\""
                    ),
                )),
                None => Ok(()),
            };
        }
        if w.image.is_none() {
            return Err(("kind", format!("kind `{kind}` runs your own service: name its image in `image`")));
        }
        if w.check.is_none() {
            return Err((
                "kind",
                format!(
                    "kind `{kind}` has no driver to read the data back: give the command that checks it in `check` \
                     (run on the recovered data after each fault; exit 0 passes)"
                ),
            ));
        }
        Ok(())
    }

    /// A point-in-time `[backup] restore-to` needs every backup strategy
    /// of the matrix to restore to a point, and a point a backup can have
    /// completed by: after the first interval, within the load.
    fn check_restore_to(&self) -> Result<(), String> {
        let to = self.backup.restore_to;
        let Some(into) = to.into_load(self.workload.load) else { return Ok(()) };
        let key = format!("restore-to `{to}`");
        if let Some(strategy) =
            self.matrix.strategies.iter().find(|s| s.def().backup.is_some_and(|k| !k.restores_to_a_point()))
        {
            let able: Vec<&str> = Strategy::ALL
                .iter()
                .filter(|s| s.def().backup.is_some_and(|k| k.restores_to_a_point()))
                .map(|s| s.as_str())
                .collect();
            return Err(format!(
                "{key}: {strategy} restores only its latest backup (it keeps no log to replay to a point); only {} \
                 restore to a point in time: leave {strategy} out of this scenario or set restore-to = \"latest\"",
                able.join(", ")
            ));
        }
        let load = self.workload.load;
        if into >= load {
            return Err(format!("{key} is not within the load (`load = {load:?}`): give a point before its end"));
        }
        let interval = self.backup.interval;
        if into <= interval {
            return Err(format!(
                "{key} is {into:?} into the load, not after the first backup (taken {interval:?} in, `[backup] \
                 interval`): no backup could be restored to it"
            ));
        }
        Ok(())
    }

    /// The cells to run, in run order, and the planned pairs that are not
    /// run because the strategy cannot take the fault (see
    /// [`Fault::unsupported_on`]). Cells keep their index in [`Self::cells`],
    /// so seeds and names do not depend on what is left out. With a
    /// [`Self::filter`], both lists hold only the cells it selects.
    pub fn plan(&self) -> (Vec<Cell>, Vec<Unsupported>) {
        let mut run = Vec::new();
        let mut unsupported = Vec::new();
        let replicates = self.workload.kind.def().workload().replication().is_some();
        let clusters = self.workload.kind.def().workload().clustering().is_some();
        let acks = self.workload.kind.def().workload().records_acks();
        for cell in self.cells() {
            if self.filter.as_ref().is_some_and(|f| !f.selects(self.workload.kind, &cell)) {
                continue;
            }
            let no_replica = (cell.strategy.def().data_on.replication().is_some() && !replicates)
                .then_some("crashlab drives replicas of MariaDB and PostgreSQL only; this workload has none")
                .or((cell.strategy.def().data_on.members().is_some() && !clusters).then_some(
                    "crashlab forms the engine's own cluster for NATS and etcd only; this workload has none",
                ));
            let other_engine = cell
                .strategy
                .def()
                .backup
                .and_then(BackupKind::only_for)
                .and_then(|(workload, why)| (workload != self.workload.kind.as_str()).then_some(why));
            let other_fault = cell
                .strategy
                .def()
                .backup
                .and_then(BackupKind::only_under)
                .and_then(|(fault, why)| (fault != cell.fault_name()).then_some(why));
            // Crash states are judged by the ack log cut at each point,
            // which a service with no driver does not have.
            let no_acks = (cell.schedule.is_none() && cell.fault == Fault::CrashStates && !acks).then_some(
                "crash states are judged against the acknowledged writes, and crashlab records none for a service \
                 it has no driver for",
            );
            let own = match &cell.schedule {
                Some(s) => s.schedule.unsupported_on(cell.strategy),
                None => cell.fault.unsupported_on(cell.strategy).map(str::to_owned),
            };
            match no_replica.or(other_engine).or(other_fault).or(no_acks).map(str::to_owned).or(own) {
                None => run.push(cell),
                Some(reason) => unsupported.push(Unsupported {
                    workload: self.workload.kind.as_str().to_owned(),
                    strategy: cell.strategy.to_string(),
                    fault: cell.fault_name(),
                    reason,
                }),
            }
        }
        (run, unsupported)
    }

    /// Every planned cell in order, strategies outer, faults inner, each
    /// with its expectation, then the schedules, including those
    /// [`Self::plan`] leaves out.
    pub fn cells(&self) -> Vec<Cell> {
        let mut cells = Vec::new();
        for &strategy in &self.matrix.strategies {
            for &fault in &self.matrix.faults {
                let expected = self.expected(strategy, fault);
                cells.push(Cell { index: cells.len(), strategy, fault, expected, schedule: None });
            }
        }
        for (i, entry) in self.schedule.iter().enumerate() {
            cells.push(Cell {
                index: cells.len(),
                strategy: entry.strategy,
                fault: entry.steps.faults().next().expect("a schedule has a fault"),
                expected: entry.expect,
                schedule: Some(NamedSchedule {
                    name: entry.name.clone().unwrap_or_else(|| (i + 1).to_string()),
                    schedule: entry.steps.clone(),
                }),
            });
        }
        cells
    }

    /// The verdict expected of a cell: the last matching `[[expect]]`, or
    /// `intact`.
    pub fn expected(&self, strategy: Strategy, fault: Fault) -> Verdict {
        self.expect
            .iter()
            .rev()
            .find(|e| e.strategy.matches(&strategy) && e.fault.matches(&fault))
            .map_or(Verdict::Intact, |e| e.verdict)
    }
}

/// Where `key = ...` is written in `[table]`, for errors found after
/// parsing.
fn key_offset(text: &str, table: &str, key: &str) -> Option<usize> {
    let mut offset = 0;
    let mut current = "";
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            current = trimmed.trim_matches(|c| c == '[' || c == ']').trim();
        } else if current == table
            && let Some(rest) = trimmed.strip_prefix(key)
            && rest.trim_start().starts_with('=')
        {
            return Some(offset + line.len() - line.trim_start().len());
        }
        offset += line.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crashlab_faultfs::TornMode;
    use std::time::Duration;

    const MINIMAL: &str = r#"
name = "t"
[workload]
kind = "mariadb"
[matrix]
strategies = ["named-volume"]
faults = ["restart"]
"#;

    fn error_of(text: &str) -> String {
        Scenario::parse(text, "s.toml").unwrap_err().to_string()
    }

    #[test]
    fn smoke_parses_and_expands_to_fifteen_cells() {
        let s = Scenario::parse(SMOKE, "smoke.toml").unwrap();
        assert_eq!(s.name, "smoke");
        assert_eq!(s.cells().len(), 15);
        assert_eq!(s.matrix.cycles, 2);
        assert_eq!(s.expected(Strategy::Tmpfs, Fault::Restart), Verdict::DataGone);
        assert_eq!(s.expected(Strategy::NamedVolume, Fault::Recreate), Verdict::Intact);
        assert_eq!(s.expected(Strategy::ContainerLayer, Fault::Recreate), Verdict::DataGone);
        assert_eq!(s.expected(Strategy::ContainerLayer, Fault::ProcessKill), Verdict::Intact);
    }

    #[test]
    fn power_loss_runs_fourteen_cells_and_reports_eleven_as_unsupported() {
        let text = include_str!("../../scenarios/power-loss.toml");
        let s = Scenario::parse(text, "power-loss.toml").unwrap();
        let (run, unsupported) = s.plan();
        assert_eq!((run.len(), unsupported.len()), (14, 11));
        assert_eq!(s.faults.disk_full_after, 256 << 10);
        assert_eq!(s.expected(Strategy::Tmpfs, Fault::HostKill), Verdict::DataGone);
        assert_eq!(s.expected(Strategy::NamedVolume, Fault::TornWrite), Verdict::Intact);
        assert!(run.iter().any(|c| (c.strategy, c.fault) == (Strategy::Tmpfs, Fault::HostKill)));
    }

    #[test]
    fn driver_volumes_are_strategies_by_their_text_or_a_table_name() {
        let text = MINIMAL.replace(
            r#"strategies = ["named-volume"]"#,
            r#"strategies = ["ram", "volume:local,type=btrfs,device=loop"]"#,
        ) + "[[strategy]]\nname = \"ram\"\ndriver = \"local\"\ndriver-opts = { type = \"tmpfs\", device = \"tmpfs\" }\n\
              [[expect]]\nstrategy = \"ram\"\nverdict = \"data-gone\"\n";
        let s = Scenario::parse(&text, "s.toml").unwrap();
        let ram = s.matrix.strategies[0].driver_volume().expect("a driver volume");
        assert_eq!((ram.name.as_str(), ram.driver.as_str(), ram.option("type")), ("ram", "local", Some("tmpfs")));
        assert_eq!(s.expected(s.matrix.strategies[0], Fault::Restart), Verdict::DataGone);
        assert_eq!(s.expected(s.matrix.strategies[1], Fault::Restart), Verdict::Intact);
        // Outside the scenario that defines it, a table's name means nothing.
        assert_eq!(Strategy::from_name("ram"), None);
        let unused =
            text.replace(r#""ram", "#, "").replace("[[expect]]\nstrategy = \"ram\"\nverdict = \"data-gone\"\n", "");
        assert!(
            error_of(&unused).contains("s.toml:9:8: strategy `ram` is defined but not listed"),
            "{}",
            error_of(&unused)
        );
        let builtin = text.replace("name = \"ram\"", "name = \"tmpfs\"");
        assert!(error_of(&builtin).contains("s.toml:9:8: strategy `tmpfs` is defined twice (or is a built-in's name)"));
        let bad = MINIMAL.replace(r#"["named-volume"]"#, r#"["volume:local,o"]"#);
        assert!(
            error_of(&bad).contains("s.toml:6:14: driver option `o` of `volume:local,o` is not KEY=VALUE"),
            "{}",
            error_of(&bad)
        );
    }

    #[test]
    fn defaults_fill_what_is_left_out() {
        let s = Scenario::parse(MINIMAL, "m.toml").unwrap();
        assert_eq!(s.seed, 42);
        assert_eq!(s.workload.clients, 4);
        assert_eq!(s.workload.load, Duration::from_secs(3));
        assert_eq!(s.matrix.cycles, 1);
        assert_eq!(s.cells()[0].expected, Verdict::Intact);
    }

    #[test]
    fn bad_input_names_the_key_and_line() {
        let cases: &[(&str, &str, &str)] = &[
            // (replace this, with this, expect the error to contain)
            ("kind = \"mariadb\"", "kind = \"mariadb\"\nclinets = 3", "s.toml:5:1: unknown field `clinets`"),
            ("kind = \"mariadb\"", "kind = \"oracle\"", "s.toml:4:8: unknown variant `oracle`"),
            ("[\"restart\"]", "[\"reboot\"]", "s.toml:7:11: unknown variant `reboot`"),
            ("[\"named-volume\"]", "[\"nfs\"]", "s.toml:6:14: unknown variant `nfs`"),
            ("[\"restart\"]", "[]", "s.toml:7:10: the list is empty"),
            ("[\"restart\"]", "[\"restart\", \"restart\"]", "Restart is listed twice"),
            (
                "kind = \"mariadb\"",
                "kind = \"mariadb\"\nload = \"3\"",
                "s.toml:5:8: invalid duration `3`: missing unit",
            ),
            ("kind = \"mariadb\"", "kind = \"mariadb\"\nload = \"3 parsecs\"", "unknown unit `parsecs`"),
            (
                "kind = \"mariadb\"",
                "kind = \"mariadb\"\nclients = 0",
                "s.toml:5:11: clients must be between 1 and 256, got 0",
            ),
            (
                "name = \"t\"",
                "name = \"t\"\nseed = \"x\"",
                "s.toml:3:8: invalid type: string \"x\", expected u64, for key `seed`",
            ),
            (
                "name = \"t\"",
                "name = \"t\"\nseed = 1 2",
                "s.toml:3:8: string values must be quoted, expected literal string, for key `seed`",
            ),
            ("[matrix]", "[matrix", "s.toml:5:8: unclosed table"),
            ("name = \"t\"", "name = \"t\"\nseed =", "s.toml:3:7: string values must be quoted"),
            ("[\"restart\"]", "[\"re\\nstart\"]", "s.toml:7:11: unknown variant `re\\nstart`"),
            ("name = \"t\"\n", "", "missing field `name`"),
        ];
        for (from, to, expected) in cases {
            assert!(MINIMAL.contains(from), "bad test case: {from}");
            let err = error_of(&MINIMAL.replacen(from, to, 1));
            assert!(err.contains(expected), "for {to:?}: got {err:?}, wanted {expected:?}");
        }
    }

    #[test]
    fn expectations_reject_unknown_verdicts_and_error() {
        let with = |v: &str| format!("{MINIMAL}\n[[expect]]\nstrategy = \"*\"\nfault = \"*\"\nverdict = \"{v}\"\n");
        assert!(error_of(&with("fine")).contains("s.toml:12:11: unknown verdict `fine`"));
        assert!(error_of(&with("error")).contains("cannot be expected"));
        let s = Scenario::parse(&with("lost-writes"), "s.toml").unwrap();
        assert_eq!(s.cells()[0].expected, Verdict::LostWrites);
    }

    /// Kind `app` (no driver) needs its image and a `check`; a driver's
    /// kind takes no `check`; `crash-states`, judged by the ack log, is
    /// n/a for `app`.
    #[test]
    fn a_service_with_no_driver_needs_an_image_and_a_check() {
        let app = |extra: &str| MINIMAL.replacen("kind = \"mariadb\"", &format!("kind = \"app\"\n{extra}"), 1);
        assert_eq!(error_of(&app("")), "s.toml:4:1: kind `app` runs your own service: name its image in `image`");
        assert!(error_of(&app("image = \"shop:1\"")).starts_with("s.toml:4:1: kind `app` has no driver to read"));
        assert!(error_of(&app("image = \"shop:1\"\ncheck = []")).contains("the check is empty"));
        let e = error_of(&MINIMAL.replacen("[matrix]", "check = [\"true\"]\n[matrix]", 1));
        assert!(e.starts_with("s.toml:5:1: `check` is for kind `app`"), "{e}");
        let s = Scenario::parse(
            &app("image = \"shop:1\"\ncheck = [\"shop-fsck\"]\ncheck-timeout = \"5s\"\nentrypoint = []")
                .replace("faults = [\"restart\"]", "faults = [\"restart\", \"crash-states\"]"),
            "s.toml",
        )
        .unwrap();
        assert_eq!(s.workload.check_timeout, std::time::Duration::from_secs(5));
        assert_eq!(s.workload.entrypoint, Some(vec![]));
        let (run, na) = s.plan();
        assert_eq!(run.len(), 1);
        assert!(na[0].reason.contains("crashlab records none for a service it has no driver for"), "{na:?}");
    }

    #[test]
    fn bring_your_own_image_keys() {
        let with = |extra: &str| MINIMAL.replacen("kind = \"mariadb\"", &format!("kind = \"mariadb\"\n{extra}"), 1);
        let s = Scenario::parse(
            &with(
                "image = \"mariadb:11\"\nenv = [\"MARIADB_ROOT_PASSWORD=crashlab\"]\ncommand = [\"mariadbd\"]\n\
                 data-dir = \"/data\"\nport = 3307\nready-log = \"ready for connections\"",
            ),
            "s.toml",
        )
        .unwrap();
        let o = s.workload.overrides();
        assert_eq!(o.command.as_deref(), Some(&["mariadbd".to_owned()][..]));
        assert_eq!((o.data_dir.as_deref(), o.port), (Some("/data"), Some(3307)));
        assert!(!o.is_empty());
        assert!(Scenario::parse(MINIMAL, "s.toml").unwrap().workload.overrides().is_empty());
        let s = Scenario::parse(&with("user = \"mysql:999\"\nbinds = [\"/etc/hostname:/etc/mysql/x.cnf\"]"), "s.toml")
            .unwrap();
        let o = s.workload.overrides();
        assert_eq!(o.user.as_deref(), Some("mysql:999"));
        assert_eq!(o.binds[0].source, "/etc/hostname");
        assert_eq!(o.binds[0].target, "/etc/mysql/x.cnf");
        let cases = [
            ("env = [\"NOEQUALS\"]", "s.toml:5:7: `NOEQUALS` is not of the form KEY=VALUE"),
            ("command = []", "s.toml:5:11: the command is empty"),
            ("data-dir = \"data\"", "s.toml:5:12: data-dir must be an absolute path"),
            ("data-dir = \"/\"", "s.toml:5:12: data-dir must be an absolute path below /"),
            ("data-dir = \"/var/../etc\"", "s.toml:5:12: data-dir must not contain `..`, got `/var/../etc`"),
            ("data-dir = \"/a\\nb\"", "s.toml:5:12: data-dir must not contain control characters, got `/a\\nb`"),
            ("port = 70000", "s.toml:5:8: port must be between 1 and 65535, got 70000"),
            ("ready-log = \" \"", "s.toml:5:13: ready-log is empty"),
            ("user = \"a b\"", "s.toml:5:8: user `a b` is not a user[:group]"),
            ("user = \"a:\"", "s.toml:5:8: user `a:` is not a user[:group]"),
            ("binds = [\"x.cnf:/etc/x.cnf\"]", "s.toml:5:9: bind `x.cnf:/etc/x.cnf` is not HOST:CONTAINER"),
            ("binds = [\"/etc/hostname\"]", "s.toml:5:9: bind `/etc/hostname` is not HOST:CONTAINER"),
            (
                "binds = [\"/nonexistent-x:/etc/x\"]",
                "s.toml:5:9: bind `/nonexistent-x:/etc/x`: /nonexistent-x does not exist",
            ),
        ];
        for (extra, expected) in cases {
            let err = error_of(&with(extra));
            assert!(err.contains(expected), "for {extra:?}: got {err:?}, wanted {expected:?}");
        }
    }

    #[test]
    fn store_urls_are_a_host_directory_or_s3() {
        let dir = tempfile::tempdir().unwrap();
        let with = |url: &str| format!("{MINIMAL}[backup]\nstore = \"{url}\"\n");
        let store_of = |url: &str| Scenario::parse(&with(url), "s.toml").map(|s| s.backup.store.unwrap());
        let fresh = dir.path().join("new/store");
        let url = format!("file://{}", fresh.display());
        assert_eq!(store_of(&url).unwrap(), Store::Dir(fresh.clone()), "a missing directory is created at run time");
        assert_eq!(store_of(&url).unwrap().to_string(), url);
        assert_eq!(store_of("s3://backups/crashlab").unwrap(), Store::S3("s3://backups/crashlab".into()));
        assert_eq!(key_offset(&with("s3://b/p"), "backup", "store"), with("s3://b/p").find("store"));
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        let state = crate::run::state_dir();
        let bad = [
            (
                "file://srv/backups".to_owned(),
                "s.toml:9:9: store `file://srv/backups` needs an absolute path after file://",
            ),
            ("file:///".to_owned(), "store `/` is the root directory"),
            ("file:///srv/../etc".to_owned(), "store `/srv/../etc` must not contain `..`"),
            ("file:///srv/a%20b".to_owned(), "without %-escapes"),
            (format!("file://{}", file.display()), "is not a directory"),
            (format!("file://{}/x", file.display()), "cannot be created"),
            (format!("file://{}/runs", state.display()), "is inside crashlab's state directory"),
            ("s3://".to_owned(), "store `s3://` needs a bucket name"),
            ("s3://Bad_Bucket/x".to_owned(), "needs a bucket name"),
            ("/srv/backups".to_owned(), "store `/srv/backups` is neither file:///DIR (a host directory) nor s3://"),
            ("gs://bucket".to_owned(), "is neither file:///DIR"),
        ];
        for (url, expected) in bad {
            let err = store_of(&url).unwrap_err().to_string();
            assert!(err.contains(expected), "for {url:?}: got {err:?}, wanted {expected:?}");
        }
    }

    #[test]
    fn a_restic_repository_is_a_host_directory_or_a_restic_backend() {
        let dir = tempfile::tempdir().unwrap();
        let with = |repo: &str| format!("{MINIMAL}[backup]\nrepository = \"{repo}\"\n");
        let repo_of = |repo: &str| Scenario::parse(&with(repo), "s.toml").map(|s| s.backup.repository.unwrap());
        let fresh = dir.path().join("new/repo");
        let path = fresh.display().to_string();
        assert_eq!(repo_of(&path).unwrap(), Repository::Dir(fresh.clone()));
        for backend in ["sftp:backup@host:/srv/restic", "rest:http://127.0.0.1:8000/", "s3:s3.example/bucket"] {
            assert_eq!(repo_of(backend).unwrap(), Repository::Backend(backend.into()));
        }
        let bad = [
            ("relative/dir", "repository `relative/dir` is neither an absolute host directory nor a restic backend"),
            ("/", "repository `/` is the root directory"),
            ("local:/srv/r", "without `local:`"),
            ("sftp:", "is neither"),
            ("file:///srv/r", "is neither"),
        ];
        for (repo, expected) in bad {
            let err = repo_of(repo).unwrap_err().to_string();
            assert!(err.contains(expected), "for {repo:?}: got {err:?}, wanted {expected:?}");
        }
    }

    #[test]
    fn the_fault_waits_for_one_completed_backup_unless_told_otherwise() {
        let parse = |extra: &str| Scenario::parse(&format!("{MINIMAL}[backup]\n{extra}"), "s.toml");
        let default = parse("").unwrap().backup;
        assert_eq!(default.min_backups, 1);
        assert_eq!(default.min_backups_wait(), Duration::from_secs(60), "a 2 s interval waits at least a minute");
        let long = parse("interval = \"30s\"\nmin-backups = 0\n").unwrap().backup;
        assert_eq!((long.min_backups, long.min_backups_wait()), (0, Duration::from_secs(300)));
        let err = parse("min-backups = 101\n").unwrap_err().to_string();
        assert!(err.contains("min-backups must be between 0 and 100, got 101"), "{err}");
    }

    #[test]
    fn an_s3_store_needs_an_agent_built_with_s3() {
        let text = MINIMAL.replace("[\"named-volume\"]", "[\"sync-agent\"]")
            + "[backup]\ninterval = \"1s\"\nstore = \"s3://backups/crashlab\"\n";
        let Ok(agent) = crate::deploy::agent::locate() else {
            eprintln!("no crashlab-agent built: the check is skipped, as it is for a run without one");
            return;
        };
        match (crate::deploy::agent::has_s3(&agent).unwrap(), Scenario::parse(&text, "s.toml")) {
            (true, parsed) => assert!(parsed.is_ok(), "{parsed:?}"),
            (false, parsed) => {
                let err = parsed.unwrap_err().to_string();
                assert!(
                    err.starts_with("s.toml:10:1: store `s3://backups/crashlab` needs a crashlab-agent built with S3"),
                    "{err}"
                );
            }
        }
        let other = text.replace("[\"sync-agent\"]", "[\"backup-hot\"]");
        assert!(Scenario::parse(&other, "s.toml").is_ok(), "only the sync agent uses the store");
    }

    #[test]
    fn later_expectations_override_earlier_ones() {
        let text = format!(
            "{MINIMAL}\n[[expect]]\nverdict = \"data-gone\"\n[[expect]]\nstrategy = \"named-volume\"\nfault = \"restart\"\nverdict = \"lost-writes\"\n"
        );
        let s = Scenario::parse(&text, "s.toml").unwrap();
        assert_eq!(s.expected(Strategy::NamedVolume, Fault::Restart), Verdict::LostWrites);
        assert_eq!(s.expected(Strategy::Tmpfs, Fault::Restart), Verdict::DataGone);
    }

    #[test]
    fn fault_knobs_parse_with_defaults_and_range_checks() {
        let s = Scenario::parse(MINIMAL, "m.toml").unwrap();
        assert_eq!(s.faults, FaultsSection::default());
        assert_eq!(s.faults.disk_full_after, 256 << 10);
        assert_eq!(s.faults.io_error.to_string(), "eio:fsync:50");
        assert_eq!(s.faults.torn, TornMode::Prefix);

        let with = |body: &str| format!("{MINIMAL}[faults]\n{body}\n");
        type Holds = fn(&FaultsSection) -> bool;
        let ok: &[(&str, Holds)] = &[
            ("disk-full-after = \"1MiB\"", |f| f.disk_full_after == 1 << 20),
            ("disk-full-after = \"4096B\"", |f| f.disk_full_after == 4096),
            ("io-error = \"eio:write:200+\"", |f| f.io_error.to_string() == "eio:write:200+"),
            ("io-error = \"eio:fsync:3:ib_logfile\"", |f| f.io_error.to_string() == "eio:fsync:3:ib_logfile"),
            ("torn = \"sectors\"", |f| f.torn == TornMode::Sectors),
            ("fsync-reaches-disk = true", |f| f.fsync_reaches_disk),
            ("partition = \"2500ms\"", |f| f.partition == Duration::from_millis(2500)),
        ];
        for (body, holds) in ok {
            let s = Scenario::parse(&with(body), "s.toml").unwrap_or_else(|e| panic!("{body}: {e}"));
            assert!(holds(&s.faults), "{body}: {:?}", s.faults);
        }
        let bad: &[(&str, &str)] = &[
            ("disk-full-after = \"16MB\"", "s.toml:9:19: invalid size `16MB`: unknown unit `MB`"),
            ("disk-full-after = \"16\"", "missing unit"),
            ("disk-full-after = \"1KiB\"", "disk-full-after must be between 4KiB and 64GiB, got `1KiB`"),
            ("disk-full-after = \"65GiB\"", "between 4KiB and 64GiB"),
            ("disk-full-after = \"99999999999999GiB\"", "too large"),
            ("io-error = \"enospc:1m\"", "io-error takes an `eio:<op>:<n>` rule"),
            ("io-error = \"eio:fsync:0\"", "s.toml:9:12: parse fault rule: `0` is not a positive operation count"),
            ("io-error = \"eio:scribble:1\"", "unknown operation `scribble`"),
            ("torn = \"middle\"", "s.toml:9:8: unknown torn mode `middle`"),
            ("tron = \"prefix\"", "s.toml:9:1: unknown field `tron`"),
        ];
        for (body, expected) in bad {
            let err = error_of(&with(body));
            assert!(err.contains(expected), "for {body:?}: got {err:?}, wanted {expected:?}");
        }
    }

    #[test]
    fn the_torn_page_scenarios_take_points_inside_the_load() {
        for (name, text, trigger) in [
            ("torn-pages.toml", include_str!("../../scenarios/torn-pages.toml"), "fsync:*.ibd"),
            ("torn-pages-postgres.toml", include_str!("../../scenarios/torn-pages-postgres.toml"), "fsync"),
        ] {
            let s = Scenario::parse(text, name).unwrap();
            assert_eq!(s.explore.points.to_string(), trigger, "{name}");
            assert_eq!(s.expected(Strategy::BindMount, Fault::CrashStates), Verdict::Corrupt, "{name}");
        }
        let crash_states = Scenario::parse(include_str!("../../scenarios/crash-states.toml"), "c.toml").unwrap();
        assert_eq!(crash_states.explore.points, Points::EndOfLoad, "the default stays the end of the load");
    }

    #[test]
    fn explore_keys_parse_with_defaults_and_range_checks() {
        let s = Scenario::parse(MINIMAL, "m.toml").unwrap();
        assert_eq!(s.explore, ExploreSection::default());
        assert_eq!((&s.explore.points, s.explore.max_points, s.explore.point_every), (&Points::EndOfLoad, 4, 1));
        assert_eq!(s.explore.spread, Spread::Load, "points spread over the load by default");

        let with = |body: &str| format!("{MINIMAL}[explore]\n{body}\n");
        type Holds = fn(&ExploreSection) -> bool;
        let ok: &[(&str, Holds)] = &[
            ("points = \"end-of-load\"", |e| e.points == Points::EndOfLoad),
            ("points = \"fsync\"", |e| e.points.to_string() == "fsync"),
            ("points = \"fsync:*.ibd\"", |e| e.points.to_string() == "fsync:*.ibd"),
            ("points = \"rename:/pg_wal/\"", |e| e.points.to_string() == "rename:/pg_wal/"),
            ("max-points = 64", |e| e.max_points == 64),
            ("spread = \"first\"\npoint-every = 10", |e| e.point_every == 10 && e.spread == Spread::First),
            ("spread = \"load\"", |e| e.spread == Spread::Load),
            ("max-states = 8\nk = 0\ntorn-splits = 0\nparallel = 2", |e| {
                (e.max_states, e.k, e.torn_splits, e.parallel) == (8, 0, 0, 2)
            }),
        ];
        for (body, holds) in ok {
            let s = Scenario::parse(&with(body), "s.toml").unwrap_or_else(|e| panic!("{body}: {e}"));
            assert!(holds(&s.explore), "{body}: {:?}", s.explore);
        }
        let bad: &[(&str, &str)] = &[
            (
                "points = \"fsink\"",
                "s.toml:9:10: points takes `end-of-load` or a trigger like `fsync` or `fsync:*.ibd`: unknown operation \
                 `fsink`",
            ),
            ("points = \"\"", "s.toml:9:10: points takes `end-of-load` or a trigger"),
            ("points = 3", "s.toml:9:10: invalid type: integer `3`, expected a string"),
            ("max-points = 0", "s.toml:9:14: max-points must be between 1 and 64, got 0"),
            ("max-points = 65", "max-points must be between 1 and 64, got 65"),
            ("point-every = 0", "s.toml:9:15: point-every must be between 1 and 1000000, got 0"),
            ("point-every = 5", "s.toml:9:1: point-every takes effect with `spread = \"first\"` only"),
            ("spread = \"middle\"", "s.toml:9:10: unknown variant `middle`, expected `load` or `first`"),
            ("max-states = 0", "s.toml:9:14: max-states must be between 1 and 4096, got 0"),
            ("k = 9", "s.toml:9:5: k must be between 0 and 8, got 9"),
            ("torn-splits = 65", "torn-splits must be between 0 and 64, got 65"),
            ("parallel = 0", "parallel must be between 1 and 16, got 0"),
            ("max-point = 3", "s.toml:9:1: unknown field `max-point`"),
        ];
        for (body, expected) in bad {
            let err = error_of(&with(body));
            assert!(err.contains(expected), "for {body:?}: got {err:?}, wanted {expected:?}");
        }
    }

    #[test]
    fn a_restore_to_a_point_needs_a_method_that_replays_a_log_and_a_point_after_a_backup() {
        let text = |strategies: &str, to: &str| {
            MINIMAL
                .replace("kind = \"mariadb\"", "kind = \"postgres\"\nload = \"8s\"")
                .replace("[\"named-volume\"]", strategies)
                .replace("[\"restart\"]", "[\"host-loss\"]")
                + &format!("[backup]\ninterval = \"2s\"\nrestore-to = \"{to}\"\n")
        };
        let parse = |strategies: &str, to: &str| Scenario::parse(&text(strategies, to), "s.toml");
        let to_of = |to: &str| parse("[\"backup-pgbackrest\"]", to).map(|s| s.backup.restore_to);
        assert_eq!(to_of("latest").unwrap(), RestoreTo::Latest);
        assert_eq!(to_of("mid-load").unwrap(), RestoreTo::MidLoad);
        assert_eq!(to_of("5s").unwrap(), RestoreTo::After(Duration::from_secs(5)));
        let both = "[\"named-volume\", \"backup-pgbackrest\"]";
        assert!(parse(both, "mid-load").is_ok(), "a strategy without backups restores nothing either way");
        let err = parse("[\"backup-pgbackrest\", \"backup-hot\"]", "mid-load").unwrap_err().to_string();
        assert!(
            err.starts_with("s.toml:11:1: restore-to `mid-load`: backup-hot restores only its latest backup"),
            "{err}"
        );
        assert!(parse("[\"backup-hot\"]", "latest").is_ok(), "every method restores its latest backup");
        for (to, expected) in [
            ("8s", "s.toml:11:1: restore-to `8s` is not within the load (`load = 8s`)"),
            ("2s", "s.toml:11:1: restore-to `2s` is 2s into the load, not after the first backup (taken 2s in"),
            ("soon", "restore-to must be `latest`, `mid-load` or a duration into the load (`3s`), got `soon`"),
            ("0s", "invalid duration `0s`: must be above zero"),
        ] {
            let err = to_of(to).unwrap_err().to_string();
            assert!(err.contains(expected), "for {to}: got {err:?}, wanted {expected:?}");
        }
    }

    #[test]
    fn an_engines_own_backup_tool_is_unsupported_on_other_engines() {
        let text = MINIMAL
            .replace("[\"named-volume\"]", "[\"backup-mariabackup\"]")
            .replace("[\"restart\"]", "[\"host-loss\"]");
        let (run, unsupported) = Scenario::parse(&text, "s.toml").unwrap().plan();
        assert_eq!((run.len(), unsupported.len()), (1, 0), "MariaDB's tool backs up MariaDB");
        let text = text.replace("kind = \"mariadb\"", "kind = \"postgres\"");
        let (run, unsupported) = Scenario::parse(&text, "s.toml").unwrap().plan();
        assert!(run.is_empty());
        assert_eq!(unsupported.len(), 1);
        assert!(unsupported[0].reason.contains("MariaDB's own backup tool"), "{:?}", unsupported[0]);
    }

    #[test]
    fn a_synchronous_wal_stream_runs_under_host_loss_only() {
        let text = MINIMAL
            .replace("kind = \"mariadb\"", "kind = \"postgres\"")
            .replace("[\"named-volume\"]", "[\"wal-stream\", \"wal-stream-sync\"]")
            .replace("[\"restart\"]", "[\"host-loss\", \"process-kill\"]");
        let (run, unsupported) = Scenario::parse(&text, "s.toml").unwrap().plan();
        let ran: Vec<String> = run.iter().map(|c| format!("{}/{}", c.strategy, c.fault)).collect();
        assert_eq!(ran, ["wal-stream/host-loss", "wal-stream/process-kill", "wal-stream-sync/host-loss"]);
        assert_eq!(unsupported.len(), 1);
        assert!(unsupported[0].reason.contains("synchronous_standby_names by ALTER SYSTEM"), "{:?}", unsupported[0]);
    }

    #[test]
    fn strategies_that_cannot_take_a_fault_are_planned_as_unsupported() {
        let text = MINIMAL
            .replace("[\"named-volume\"]", "[\"container-layer\", \"bind-mount\", \"tmpfs\"]")
            .replace("[\"restart\"]", "[\"process-kill\", \"host-kill\", \"disk-full\"]");
        let s = Scenario::parse(&text, "s.toml").unwrap();
        let (run, unsupported) = s.plan();
        let ran: Vec<(Strategy, Fault, usize)> = run.iter().map(|c| (c.strategy, c.fault, c.index)).collect();
        assert_eq!(
            ran,
            [
                (Strategy::ContainerLayer, Fault::ProcessKill, 0),
                (Strategy::BindMount, Fault::ProcessKill, 3),
                (Strategy::BindMount, Fault::HostKill, 4),
                (Strategy::BindMount, Fault::DiskFull, 5),
                (Strategy::Tmpfs, Fault::ProcessKill, 6),
                (Strategy::Tmpfs, Fault::HostKill, 7),
            ]
        );
        let skipped: Vec<(&str, &str)> = unsupported.iter().map(|u| (u.strategy.as_str(), u.fault.as_str())).collect();
        assert_eq!(
            skipped,
            [("container-layer", "host-kill"), ("container-layer", "disk-full"), ("tmpfs", "disk-full")]
        );
        assert!(unsupported.iter().all(|u| !u.reason.is_empty() && u.workload == "mariadb"));
    }

    #[test]
    fn schedules_are_cells_after_the_matrix_and_print_back_as_written() {
        let block = "[[schedule]]\nname = \"kill-then-cut\"\nstrategy = \"bind-mount\"\nsteps = [\"load 2s\", \
                     \"process-kill on primary\", \"recover\", \"load 1s clients=2\", \"host-kill on primary\", \
                     \"recover\", \"verify\"]\nexpect = \"lost-writes\"\n";
        let plain = "[[schedule]]\nstrategy = \"tmpfs\"\nsteps = [\"load 1s\", \"torn-write on primary\", \"recover\", \
                     \"verify\"]\n";
        let s = Scenario::parse(&format!("{MINIMAL}{block}{plain}"), "s.toml").unwrap();
        assert_eq!(s.schedule.len(), 2);
        assert_eq!(s.schedule[0].to_toml(), block, "printed back as written");
        assert_eq!(s.schedule[1].to_toml(), plain);
        let cells = s.cells();
        assert_eq!(cells.len(), 3);
        let cell = &cells[1];
        assert_eq!(
            (cell.index, cell.strategy, cell.fault, cell.expected),
            (1, Strategy::BindMount, Fault::ProcessKill, Verdict::LostWrites)
        );
        assert_eq!(cell.fault_name(), "schedule-kill-then-cut");
        assert_eq!(cell.faults(), [Fault::ProcessKill, Fault::HostKill]);
        assert_eq!(cells[2].fault_name(), "schedule-2", "named by its place");
        assert_eq!(cell_id(&s, cell), "mariadb/bind-mount/schedule-kill-then-cut");
        let (run, unsupported) = s.plan();
        assert_eq!(run.len(), 2);
        assert_eq!(unsupported.len(), 1);
        assert_eq!(unsupported[0].fault, "schedule-2");
        assert!(unsupported[0].reason.starts_with("torn-write: "), "{:?}", unsupported[0]);
    }

    #[test]
    fn a_wrong_schedule_names_the_key_and_line() {
        let with = |body: &str| format!("{MINIMAL}[[schedule]]\nstrategy = \"bind-mount\"\n{body}\n");
        let cases = [
            ("steps = [\"load 1s\", \"host-kil\", \"recover\", \"verify\"]", "s.toml:10:9: unknown step `host-kil`"),
            (
                "steps = [\"load 1s\", \"host-kill\", \"verify\"]",
                "s.toml:10:9: step 3 `verify`: `recover` from host-kill",
            ),
            ("steps = [\"load 1s\", \"host-kill\", \"recover\", \"verify\"]\nexpect = \"error\"", "cannot be expected"),
            ("step = []", "s.toml:10:1: unknown field `step`"),
            ("steps = []", "s.toml:10:9: a schedule needs at least one fault, for key `steps`"),
            ("stratgy = \"tmpfs\"", "s.toml:10:1: unknown field `stratgy`"),
        ];
        for (body, expected) in cases {
            let err = error_of(&with(body));
            assert!(err.contains(expected), "for {body:?}: got {err:?}, wanted {expected:?}");
        }
    }

    #[test]
    fn sizes() {
        let ok = [("16MiB", 16 << 20), ("4096B", 4096), (" 2GiB ", 2 << 30), ("512KiB", 512 << 10)];
        for (s, bytes) in ok {
            assert_eq!(parse_size(s), Ok(bytes), "{s}");
        }
        for bad in ["", "MiB", "16", "16MB", "1.5MiB", "-1MiB", "16 mib"] {
            assert!(parse_size(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn durations() {
        let ok = [("500ms", 0.5), ("3s", 3.0), ("1.5s", 1.5), ("2m", 120.0), (" 1h ", 3600.0)];
        for (s, secs) in ok {
            assert_eq!(parse_duration(s), Ok(Duration::from_secs_f64(secs)), "{s}");
        }
        for bad in ["", "s", "0s", "-1s", "3", "1d", "1e9s"] {
            assert!(parse_duration(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn line_and_column_count_from_one() {
        assert_eq!(line_column("ab\ncd", 0), (1, 1));
        assert_eq!(line_column("ab\ncd", 4), (2, 2));
    }

    #[test]
    fn per_cell_limits_parse_and_are_range_checked() {
        let with =
            |keys: &str| MINIMAL.replacen("faults = [\"restart\"]", &format!("faults = [\"restart\"]\n{keys}"), 1);
        let s = Scenario::parse(&with("cpus = 1.5\nmemory = \"1GiB\""), "s.toml").unwrap();
        assert_eq!((s.matrix.cpus, s.matrix.memory), (Some(1.5), Some(1 << 30)));
        let s = Scenario::parse(MINIMAL, "s.toml").unwrap();
        assert_eq!((s.matrix.cpus, s.matrix.memory), (None, None));
        assert!(error_of(&with("cpus = 0")).contains("s.toml:8:8: cpus must be between 0.01 and 1024, got 0"));
        assert!(error_of(&with("memory = \"1MiB\"")).contains("memory must be at least 32MiB"));
        assert!(error_of(&with("memory = \"1G\"")).contains("unknown unit `G`"));
    }
}
