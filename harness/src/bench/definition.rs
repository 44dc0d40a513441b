//! What `crashlab bench` measures, read from TOML (`scenarios/bench.toml`)
//! and adjusted by command-line flags.
//!
//! ```toml
//! name = "bench"
//! [io]
//! profiles = ["fsync-4k", "seq-write-1m", "rand-read-4k", "etcd-fdatasync"]
//! seconds = "3s"         # each timed run of the random profiles
//! size = "64MiB"         # file of fsync-4k
//! read-size = "1GiB"     # file of rand-read-4k
//! seq-size = "256MiB"    # written by seq-write-1m
//! etcd-size = "22MiB"    # written by etcd-fdatasync, 2,300 bytes at a time
//! rounds = 3             # agent and fio alternate; medians are reported
//! fio = true             # check the agent against fio
//! tolerance = 10         # percent
//! [workload]             # optional: the scenario's [workload] keys
//! kind = "mariadb"
//! load = "5s"
//! [[strategy]]           # a built-in strategy, by name
//! name = "named-volume"
//! [[strategy]]           # any Docker volume driver and its options
//! name = "local-tmpfs"
//! driver = "local"
//! driver-opts = { type = "tmpfs", device = "tmpfs" }
//! [[strategy]]           # any host directory, bind-mounted
//! name = "scratch"
//! host-path = "/var/tmp/crashlab-bench"
//! ```
//!
//! As in scenarios, keys are kebab-case and an unknown key or a bad value is
//! an error naming the key and its line.

pub use crate::scenario::table::Backend;
use crate::scenario::table::{StrategyTable, builtin, check_name, host_path};
use crate::settings::{WorkloadSection, parse_duration, parse_size};
use crate::storage::driver::{self, DriverVolume};
use crate::text::{line_column, one_line, toml_message};
use crashlab_reports::bench::Profile;
use serde::{Deserialize, Deserializer};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The default benchmark, built in so that `crashlab bench` works from any
/// directory.
pub const DEFAULT: &str = include_str!("../../../scenarios/bench.toml");

/// A bench definition or flag that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BenchDefinitionError {
    #[error("read bench definition {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `location` is `file:line:column`; `message` names the key.
    #[error("{location}: {message}")]
    Invalid { location: String, message: String },
    #[error("{flag}: {message}")]
    Flag { flag: &'static str, message: String },
}

/// A parsed, validated bench definition.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchDefinition {
    pub name: String,
    pub io: IoSection,
    /// The workload whose throughput is measured on each backend; none
    /// measures IO only.
    pub workload: Option<WorkloadSection>,
    pub strategies: Vec<BenchStrategy>,
}

/// The file as written; each `[[strategy]]` is checked afterwards, so
/// that an error can point at its `name` line.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawDefinition {
    name: String,
    #[serde(default)]
    io: IoSection,
    workload: Option<WorkloadSection>,
    #[serde(rename = "strategy", default)]
    strategies: Vec<StrategyTable>,
}

/// `[io]`: the profiles and how long and how often they run.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct IoSection {
    #[serde(default = "all_profiles", deserialize_with = "profiles")]
    pub profiles: Vec<Profile>,
    #[serde(default = "default_seconds", deserialize_with = "seconds")]
    pub seconds: Duration,
    /// File of `fsync-4k`.
    #[serde(default = "default_size", deserialize_with = "file_size")]
    pub size: u64,
    /// File of `rand-read-4k`: large enough that a run's reads cannot
    /// bring much of it into the page cache, so that they measure the
    /// backend rather than memory.
    #[serde(default = "default_read_size", deserialize_with = "file_size")]
    pub read_size: u64,
    #[serde(default = "default_seq_size", deserialize_with = "file_size")]
    pub seq_size: u64,
    /// Written by `etcd-fdatasync`; etcd's documentation writes 22 MiB.
    #[serde(default = "default_etcd_size", deserialize_with = "file_size")]
    pub etcd_size: u64,
    #[serde(default = "default_rounds", deserialize_with = "rounds")]
    pub rounds: u32,
    #[serde(default = "default_true")]
    pub fio: bool,
    #[serde(default = "default_tolerance", deserialize_with = "tolerance")]
    pub tolerance: f64,
}

impl Default for IoSection {
    fn default() -> Self {
        IoSection {
            profiles: all_profiles(),
            seconds: default_seconds(),
            size: default_size(),
            read_size: default_read_size(),
            seq_size: default_seq_size(),
            etcd_size: default_etcd_size(),
            rounds: default_rounds(),
            fio: true,
            tolerance: default_tolerance(),
        }
    }
}

/// A backend the bench runs on, by the name reports show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchStrategy {
    pub name: String,
    pub backend: Backend,
}

impl BenchStrategy {
    /// What the backend is, for reports.
    pub fn kind(&self) -> String {
        match &self.backend {
            Backend::Builtin(_) => "built-in".to_owned(),
            Backend::Volume(v) if v.options.is_empty() => format!("volume driver {}", v.driver),
            Backend::Volume(v) => format!("volume driver {} ({})", v.driver, v.option_texts().join(", ")),
            Backend::HostPath(path) => format!("host path {}", path.display()),
        }
    }

    /// Parses a `--strategy` flag: a built-in name, `NAME=volume:DRIVER[,KEY=VALUE...]`
    /// or `NAME=path:/DIR`.
    pub fn parse_flag(text: &str) -> Result<BenchStrategy, String> {
        Self::parse_flag_text(text).map_err(|e| one_line(&e))
    }

    fn parse_flag_text(text: &str) -> Result<BenchStrategy, String> {
        let Some((name, spec)) = text.split_once('=') else {
            return builtin(text).map(|backend| BenchStrategy { name: text.to_owned(), backend });
        };
        check_name(name)?;
        let backend = if spec.starts_with(driver::PREFIX) {
            let mut volume = DriverVolume::parse(spec)?;
            volume.name = name.to_owned();
            Backend::Volume(volume.intern())
        } else if let Some(path) = spec.strip_prefix("path:") {
            host_path(path)?
        } else {
            return Err(format!("`{text}`: expected NAME=volume:DRIVER[,KEY=VALUE...] or NAME=path:/DIR"));
        };
        Ok(BenchStrategy { name: name.to_owned(), backend })
    }
}

impl BenchDefinition {
    /// Reads and validates a bench definition file.
    pub fn load(path: &Path) -> Result<BenchDefinition, BenchDefinitionError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| BenchDefinitionError::Read { path: path.to_owned(), source })?;
        BenchDefinition::parse(&text, &path.display().to_string())
    }

    /// Parses definition text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<BenchDefinition, BenchDefinitionError> {
        let invalid = |offset: usize, message: String| {
            let (line, column) = line_column(text, offset);
            BenchDefinitionError::Invalid { location: format!("{origin}:{line}:{column}"), message: one_line(&message) }
        };
        let raw: RawDefinition =
            toml::from_str(text).map_err(|e| invalid(e.span().map_or(0, |s| s.start), toml_message(text, &e)))?;
        if raw.strategies.is_empty() {
            return Err(invalid(text.len(), "no `[[strategy]]` is given".into()));
        }
        let mut strategies: Vec<BenchStrategy> = Vec::new();
        for strategy in raw.strategies {
            let at = strategy.name.span().start;
            let (name, backend) = strategy.check().map_err(|message| invalid(at, format!("strategy: {message}")))?;
            let checked = BenchStrategy { name, backend };
            if strategies.iter().any(|s| s.name == checked.name) {
                return Err(invalid(at, format!("strategy `{}` is listed twice", checked.name)));
            }
            strategies.push(checked);
        }
        Ok(BenchDefinition { name: raw.name, io: raw.io, workload: raw.workload, strategies })
    }

    /// Applies command-line overrides; given strategies replace the file's.
    pub fn apply(&mut self, flags: &BenchFlags) -> Result<(), BenchDefinitionError> {
        if !flags.strategies.is_empty() {
            let parsed: Result<Vec<_>, _> = flags.strategies.iter().map(|s| BenchStrategy::parse_flag(s)).collect();
            let parsed = parsed.map_err(|message| BenchDefinitionError::Flag { flag: "--strategy", message })?;
            if let Some(dup) = parsed.iter().enumerate().find(|(i, s)| parsed[..*i].iter().any(|o| o.name == s.name)) {
                let message = format!("`{}` is given twice", dup.1.name);
                return Err(BenchDefinitionError::Flag { flag: "--strategy", message });
            }
            self.strategies = parsed;
        }
        if !flags.profiles.is_empty() {
            self.io.profiles = flags.profiles.clone();
        }
        if let Some(s) = &flags.seconds {
            self.io.seconds =
                parse_duration(s).map_err(|message| BenchDefinitionError::Flag { flag: "--seconds", message })?;
        }
        if let Some(rounds) = flags.rounds {
            if !(1..=100).contains(&rounds) {
                let message = format!("must be between 1 and 100, got {rounds}");
                return Err(BenchDefinitionError::Flag { flag: "--rounds", message });
            }
            self.io.rounds = rounds;
        }
        if flags.no_fio {
            self.io.fio = false;
        }
        if flags.no_workload {
            self.workload = None;
        }
        Ok(())
    }
}

/// Command-line overrides of a definition.
#[derive(Debug, Clone, Default)]
pub struct BenchFlags {
    /// `--strategy`, see [`BenchStrategy::parse_flag`].
    pub strategies: Vec<String>,
    pub profiles: Vec<Profile>,
    /// `--seconds`, a duration such as `3s`.
    pub seconds: Option<String>,
    pub rounds: Option<u32>,
    pub no_fio: bool,
    pub no_workload: bool,
}

fn profiles<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Profile>, D::Error> {
    let names = Vec::<String>::deserialize(d)?;
    let mut out = Vec::new();
    for name in names {
        let p: Profile = name.parse().map_err(serde::de::Error::custom)?;
        if out.contains(&p) {
            return Err(serde::de::Error::custom(format!("profile `{p}` is listed twice")));
        }
        out.push(p);
    }
    if out.is_empty() {
        return Err(serde::de::Error::custom("the list is empty"));
    }
    Ok(out)
}

fn seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    parse_duration(&String::deserialize(d)?).map_err(serde::de::Error::custom)
}

fn file_size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let s = String::deserialize(d)?;
    let bytes = parse_size(&s).map_err(serde::de::Error::custom)?;
    if !(1 << 20..=64 << 30).contains(&bytes) || bytes % (1 << 20) != 0 {
        return Err(serde::de::Error::custom(format!("`{s}` must be whole MiB between 1MiB and 64GiB")));
    }
    Ok(bytes)
}

fn rounds<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let n = i64::deserialize(d)?;
    if !(1..=100).contains(&n) {
        return Err(serde::de::Error::custom(format!("rounds must be between 1 and 100, got {n}")));
    }
    Ok(n as u32)
}

fn tolerance<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let n = f64::deserialize(d)?;
    if !(n > 0.0 && n <= 100.0) {
        return Err(serde::de::Error::custom(format!("tolerance is a percentage above 0 and at most 100, got {n}")));
    }
    Ok(n)
}

fn all_profiles() -> Vec<Profile> {
    Profile::ALL.to_vec()
}
fn default_seconds() -> Duration {
    Duration::from_secs(3)
}
fn default_size() -> u64 {
    64 << 20
}
fn default_read_size() -> u64 {
    1 << 30
}
fn default_seq_size() -> u64 {
    256 << 20
}
fn default_etcd_size() -> u64 {
    22 << 20
}
fn default_rounds() -> u32 {
    3
}
fn default_true() -> bool {
    true
}
fn default_tolerance() -> f64 {
    10.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Strategy;

    #[test]
    fn the_default_definition_parses() {
        let d = BenchDefinition::parse(DEFAULT, "bench.toml").unwrap();
        assert_eq!(d.io.profiles, Profile::ALL);
        assert!(d.io.fio && d.io.rounds >= 3);
        assert_eq!((d.io.size, d.io.read_size), (64 << 20, 1 << 30), "rand-read-4k's file outgrows a run's caching");
        assert_eq!(d.io.etcd_size, 22 << 20, "etcd's documented job");
        assert!(d.workload.is_some());
        assert!(d.strategies.iter().any(|s| matches!(s.backend, Backend::Builtin(_))));
        assert!(d.strategies.iter().any(|s| matches!(s.backend, Backend::Volume(_))), "a volume driver example");
    }

    #[test]
    fn every_kind_of_backend_parses() {
        let text = r#"
name = "b"
[io]
profiles = ["fsync-4k"]
seconds = "1s"
size = "8MiB"
rounds = 1
[[strategy]]
name = "tmpfs"
[[strategy]]
name = "local-tmpfs"
driver = "local"
driver-opts = { type = "tmpfs", device = "tmpfs" }
[[strategy]]
name = "scratch"
host-path = "/var/tmp/x"
"#;
        let d = BenchDefinition::parse(text, "b.toml").unwrap();
        assert_eq!(d.workload, None);
        assert_eq!(d.io.size, 8 << 20);
        assert_eq!(d.strategies[0].backend, Backend::Builtin(Strategy::Tmpfs));
        assert_eq!(d.strategies[1].kind(), "volume driver local (device=tmpfs, type=tmpfs)");
        assert_eq!(d.strategies[2].backend, Backend::HostPath("/var/tmp/x".into()));
    }

    #[test]
    fn bad_keys_and_values_name_the_key_and_line() {
        let base = "name = \"b\"\n[[strategy]]\nname = \"tmpfs\"\n";
        let cases = [
            ("[io]\nprofile = [\"fsync-4k\"]\n", "b.toml:5:1: unknown field `profile`"),
            ("[io]\nprofiles = [\"fsync\"]\n", "b.toml:5:12: unknown IO profile `fsync`"),
            ("[io]\nseconds = \"3\"\n", "b.toml:5:11: invalid duration `3`: missing unit"),
            ("[io]\nsize = \"1500KiB\"\n", "b.toml:5:8: `1500KiB` must be whole MiB"),
            ("[io]\nrounds = 0\n", "b.toml:5:10: rounds must be between 1 and 100, got 0"),
            ("[io]\ntolerance = -1\n", "b.toml:5:13: tolerance is a percentage"),
            ("[[strategy]]\nname = \"nvme\"\n", "b.toml:5:8: strategy: `nvme` is not a built-in strategy"),
            (
                "[[strategy]]\nname = \"x\"\ndriver-opts = { a = \"b\" }\n",
                "b.toml:5:8: strategy: `driver-opts` needs a `driver`",
            ),
            (
                "[[strategy]]\nname = \"x\"\nhost-path = \"rel/dir\"\n",
                "b.toml:5:8: strategy: host-path `rel/dir` must be an absolute path",
            ),
            (
                "[[strategy]]\nname = \"x\"\nhost-path = \"/\"\n",
                "b.toml:5:8: strategy: host-path `/` is the root directory",
            ),
            (
                "[[strategy]]\nname = \"x\"\nhost-path = \"/var/../tmp\"\n",
                "b.toml:5:8: strategy: host-path `/var/../tmp` must not contain `..`",
            ),
            (
                "[[strategy]]\nname = \"x\"\nhost-path = \"/proc/version/x\"\n",
                "b.toml:5:8: strategy: host-path `/proc/version/x` cannot be created: /proc/version is not a directory",
            ),
            (
                "[[strategy]]\nname = \"x\"\ndriver = \"local\"\nhostpath = \"/a\"\n",
                "b.toml:7:1: unknown field `hostpath`",
            ),
            ("[[strategy]]\nname = \"tmpfs\"\n", "b.toml:5:8: strategy `tmpfs` is listed twice"),
            ("[[strategy]]\nname = \"a b\"\nhost-path = \"/a\"\n", "b.toml:5:8: strategy: strategy name `a b` must be"),
            ("[workload]\nkind = \"mariadb\"\nclient = 4\n", "b.toml:6:1: unknown field `client`"),
        ];
        for (extra, want) in cases {
            let text = format!("{base}{extra}");
            let err = BenchDefinition::parse(&text, "b.toml").unwrap_err().to_string();
            assert!(err.contains(want), "{extra:?}: got {err:?}, want {want:?}");
        }
        let err = BenchDefinition::parse("name = \"b\"\nseed = 1\n", "b.toml").unwrap_err().to_string();
        assert!(err.starts_with("b.toml:2:1: unknown field `seed`"), "{err}");
        let err = BenchDefinition::parse("name = \"b\"\n", "b.toml").unwrap_err().to_string();
        assert!(err.contains("no `[[strategy]]` is given"), "{err}");
    }

    #[test]
    fn strategy_flags_cover_every_backend() {
        assert_eq!(BenchStrategy::parse_flag("bind-mount").unwrap().backend, Backend::Builtin(Strategy::BindMount));
        let v = BenchStrategy::parse_flag("ram=volume:local,type=tmpfs,device=tmpfs,o=size=64m").unwrap();
        assert_eq!(v.name, "ram");
        let Backend::Volume(volume) = v.backend else { panic!("a volume") };
        assert_eq!(volume.driver, "local");
        assert_eq!(volume.option("o"), Some("size=64m"));
        assert_eq!(
            BenchStrategy::parse_flag("ssd=path:/mnt/ssd").unwrap().backend,
            Backend::HostPath("/mnt/ssd".into())
        );
        let state = crate::run::state_dir();
        let inside = format!("x=path:{}/runs", state.display());
        assert!(BenchStrategy::parse_flag(&inside).unwrap_err().contains("inside crashlab's state directory"));
        for bad in [
            "nvme",
            "x=volume:",
            "x=path:rel",
            "x=path:/",
            "x=path:/a/../b",
            "x=nfs:server",
            "bad name=path:/a",
            "x=volume:local,novalue",
        ] {
            assert!(BenchStrategy::parse_flag(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn flags_override_the_file() {
        let mut d = BenchDefinition::parse(DEFAULT, "bench.toml").unwrap();
        let flags = BenchFlags {
            strategies: vec!["tmpfs".into(), "s=path:/tmp/s".into()],
            profiles: vec![Profile::SeqWrite1m],
            seconds: Some("500ms".into()),
            rounds: Some(1),
            no_fio: true,
            no_workload: true,
        };
        d.apply(&flags).unwrap();
        assert_eq!(d.strategies.len(), 2);
        assert_eq!(d.io.profiles, [Profile::SeqWrite1m]);
        assert_eq!((d.io.seconds, d.io.rounds, d.io.fio), (Duration::from_millis(500), 1, false));
        assert!(d.workload.is_none());
        let dup = BenchFlags { strategies: vec!["tmpfs".into(), "tmpfs".into()], ..Default::default() };
        assert!(d.apply(&dup).unwrap_err().to_string().contains("`tmpfs` is given twice"));
    }
}
