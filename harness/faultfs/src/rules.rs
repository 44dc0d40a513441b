//! Fault rules: typed values with a compact text form for scenarios and the
//! command line, and the per-mount state that decides when they fire.
//!
//! Grammar (one rule per string):
//!
//! | text | meaning |
//! |---|---|
//! | `eio:<op>:<n>[:<path>]` | the `n`th matching operation (1-based, counted from when the rule is installed) fails with `EIO`; later ones succeed |
//! | `eio:<op>:<n>+[:<path>]` | the `n`th and every later matching operation fail with `EIO` |
//! | `enospc:<size>` | after `size` more bytes have been written, writes and `fallocate` fail with `ENOSPC` |
//! | `latency:<op>:<duration>` | every matching operation is delayed by `duration` |
//! | `torn:prefix[:<path>]`, `torn:sectors[:<path>]` | at a power cut, the last unsynced write of each matching file is torn (see [`TornMode`]) instead of being lost whole |
//!
//! `<op>` is one of `*` (any), `lookup`, `getattr`, `setattr`, `open`,
//! `read`, `write`, `fsync` (also `fdatasync`), `fsyncdir`, `create` (also
//! `mknod`), `mkdir`, `unlink`, `rmdir`, `rename`, `link`, `symlink`,
//! `readdir`, `fallocate`. `<path>` is matched against the path inside the
//! mount, starting with `/` (for operations that create or remove a name,
//! the path of that name; for `rename`, the source): a pattern containing
//! `*` or `?` is a glob in which `*` also matches `/`, anything else matches
//! as a substring. `<size>` is bytes with an optional `k`, `m` or `g`
//! (binary) suffix; `<duration>` is a number followed by `ns`, `us`, `ms` or
//! `s`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::cache::TornMode;

/// The kind of filesystem operation a rule applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[expect(missing_docs, reason = "each variant is the FUSE operation of the same name")]
pub enum OpKind {
    /// Matches every operation.
    Any,
    Lookup,
    Getattr,
    Setattr,
    Open,
    Read,
    Write,
    /// `fsync` and `fdatasync` of a file.
    Fsync,
    /// `fsync` of a directory.
    Fsyncdir,
    /// `creat`, `open(O_CREAT)` of a new file, and `mknod`.
    Create,
    Mkdir,
    Unlink,
    Rmdir,
    Rename,
    Link,
    Symlink,
    Readdir,
    Fallocate,
}

const OP_NAMES: &[(OpKind, &str)] = &[
    (OpKind::Any, "*"),
    (OpKind::Lookup, "lookup"),
    (OpKind::Getattr, "getattr"),
    (OpKind::Setattr, "setattr"),
    (OpKind::Open, "open"),
    (OpKind::Read, "read"),
    (OpKind::Write, "write"),
    (OpKind::Fsync, "fsync"),
    (OpKind::Fsyncdir, "fsyncdir"),
    (OpKind::Create, "create"),
    (OpKind::Mkdir, "mkdir"),
    (OpKind::Unlink, "unlink"),
    (OpKind::Rmdir, "rmdir"),
    (OpKind::Rename, "rename"),
    (OpKind::Link, "link"),
    (OpKind::Symlink, "symlink"),
    (OpKind::Readdir, "readdir"),
    (OpKind::Fallocate, "fallocate"),
];

impl OpKind {
    /// Whether a rule for `self` applies to an operation of kind `op`.
    pub fn matches(self, op: OpKind) -> bool {
        self == OpKind::Any || self == op
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = OP_NAMES.iter().find(|(k, _)| k == self).map_or("?", |(_, n)| n);
        f.write_str(name)
    }
}

impl FromStr for OpKind {
    type Err = RuleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "any" => Ok(OpKind::Any),
            "fdatasync" => Ok(OpKind::Fsync),
            "mknod" => Ok(OpKind::Create),
            _ => OP_NAMES
                .iter()
                .find(|(_, n)| *n == s)
                .map(|(k, _)| *k)
                .ok_or_else(|| RuleError::UnknownOp(s.to_owned())),
        }
    }
}

/// Selects files by their path inside the mount (which starts with `/`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PathPattern {
    /// `*` matches any run of characters including `/`, `?` one character.
    Glob(String),
    /// Matches paths that contain the string.
    Substring(String),
}

impl PathPattern {
    /// Whether `path` is selected.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathPattern::Glob(g) => glob_match(g.as_bytes(), path.as_bytes()),
            PathPattern::Substring(s) => path.contains(s.as_str()),
        }
    }
}

impl From<&str> for PathPattern {
    fn from(s: &str) -> Self {
        if s.contains(['*', '?']) { PathPattern::Glob(s.to_owned()) } else { PathPattern::Substring(s.to_owned()) }
    }
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathPattern::Glob(s) | PathPattern::Substring(s) => f.write_str(s),
        }
    }
}

/// Iterative glob matching with single-star backtracking: linear enough
/// for paths, and no recursion to blow the stack on hostile patterns.
fn glob_match(pat: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pat.len() && (pat[p] == b'?' || pat[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pat.len() && pat[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

/// One fault to inject. See the [module docs](self) for the text form.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum FaultRule {
    /// Fail the `nth` matching operation with `EIO`, and every later one if
    /// `sticky`.
    IoError {
        /// Which operations are counted.
        op: OpKind,
        /// 1-based index of the first failing operation.
        nth: u64,
        /// Keep failing after the `nth`.
        sticky: bool,
        /// Restrict to files whose path matches.
        path: Option<PathPattern>,
    },
    /// Fail writes with `ENOSPC` once this many more bytes have been written.
    NoSpace {
        /// Bytes that may still be written.
        after_bytes: u64,
    },
    /// Delay every matching operation.
    Latency {
        /// Which operations are delayed.
        op: OpKind,
        /// How long.
        delay: Duration,
    },
    /// Tear the last unsynced write of matching files at a power cut.
    TornWrite {
        /// Which part survives.
        mode: TornMode,
        /// Restrict to files whose path matches.
        path: Option<PathPattern>,
    },
}

/// Why a fault rule did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// The rule text was empty.
    #[error("parse fault rule: empty rule")]
    Empty,
    /// The text before the first `:` is not a rule kind.
    #[error("parse fault rule: unknown kind `{0}` (expected eio, enospc, latency or torn)")]
    UnknownKind(String),
    /// A required field is absent.
    #[error("parse fault rule `{rule}`: missing {field}")]
    Missing {
        /// The whole rule text.
        rule: String,
        /// The absent field.
        field: &'static str,
    },
    /// A field that takes no further `:` parts had some.
    #[error("parse fault rule `{0}`: unexpected trailing fields")]
    Trailing(String),
    /// Not an operation name.
    #[error("parse fault rule: unknown operation `{0}`")]
    UnknownOp(String),
    /// A count was not a positive integer.
    #[error("parse fault rule: `{0}` is not a positive operation count")]
    BadCount(String),
    /// A size was not an integer with an optional k/m/g suffix.
    #[error("parse fault rule: `{0}` is not a size (bytes, or with k, m or g suffix)")]
    BadSize(String),
    /// A duration was not an integer with a unit.
    #[error("parse fault rule: `{0}` is not a duration (like 500us, 5ms or 1s)")]
    BadDuration(String),
    /// Not a torn-write mode.
    #[error("parse fault rule: unknown torn-write mode `{0}` (expected prefix or sectors)")]
    BadTornMode(String),
}

fn parse_size(s: &str) -> Result<u64, RuleError> {
    let bad = || RuleError::BadSize(s.to_owned());
    let lower = s.to_ascii_lowercase();
    let (num, mult) = match lower.as_bytes().last() {
        Some(b'k') => (&lower[..lower.len() - 1], 1 << 10),
        Some(b'm') => (&lower[..lower.len() - 1], 1 << 20),
        Some(b'g') => (&lower[..lower.len() - 1], 1 << 30),
        _ => (lower.as_str(), 1),
    };
    num.parse::<u64>().ok().and_then(|n| n.checked_mul(mult)).ok_or_else(bad)
}

fn parse_duration(s: &str) -> Result<Duration, RuleError> {
    let bad = || RuleError::BadDuration(s.to_owned());
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let n: u64 = s[..split].parse().map_err(|_| bad())?;
    match &s[split..] {
        "ns" => Ok(Duration::from_nanos(n)),
        "us" => Ok(Duration::from_micros(n)),
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        _ => Err(bad()),
    }
}

fn format_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns.is_multiple_of(1_000_000_000) {
        format!("{}s", ns / 1_000_000_000)
    } else if ns.is_multiple_of(1_000_000) {
        format!("{}ms", ns / 1_000_000)
    } else if ns.is_multiple_of(1_000) {
        format!("{}us", ns / 1_000)
    } else {
        format!("{ns}ns")
    }
}

impl FromStr for FaultRule {
    type Err = RuleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Err(RuleError::Empty);
        }
        let missing = |field| RuleError::Missing { rule: s.to_owned(), field };
        let (kind, rest) = s.split_once(':').unwrap_or((s, ""));
        match kind {
            "eio" => {
                let mut parts = rest.splitn(3, ':');
                let op = parts.next().filter(|p| !p.is_empty()).ok_or_else(|| missing("operation"))?.parse()?;
                let count = parts.next().ok_or_else(|| missing("operation count"))?;
                let (count, sticky) = match count.strip_suffix('+') {
                    Some(c) => (c, true),
                    None => (count, false),
                };
                let nth = count
                    .parse::<u64>()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| RuleError::BadCount(count.to_owned()))?;
                let path = parts.next().filter(|p| !p.is_empty()).map(PathPattern::from);
                Ok(FaultRule::IoError { op, nth, sticky, path })
            }
            "enospc" => {
                if rest.is_empty() {
                    return Err(missing("size"));
                }
                if rest.contains(':') {
                    return Err(RuleError::Trailing(s.to_owned()));
                }
                Ok(FaultRule::NoSpace { after_bytes: parse_size(rest)? })
            }
            "latency" => {
                let (op, delay) = rest.split_once(':').ok_or_else(|| missing("duration"))?;
                if delay.contains(':') {
                    return Err(RuleError::Trailing(s.to_owned()));
                }
                Ok(FaultRule::Latency { op: op.parse()?, delay: parse_duration(delay)? })
            }
            "torn" => {
                let (mode, path) = rest.split_once(':').unwrap_or((rest, ""));
                let mode = match mode {
                    "" => return Err(missing("mode")),
                    "prefix" => TornMode::Prefix,
                    "sectors" => TornMode::Sectors,
                    other => return Err(RuleError::BadTornMode(other.to_owned())),
                };
                let path = (!path.is_empty()).then(|| PathPattern::from(path));
                Ok(FaultRule::TornWrite { mode, path })
            }
            other => Err(RuleError::UnknownKind(other.to_owned())),
        }
    }
}

impl fmt::Display for FaultRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultRule::IoError { op, nth, sticky, path } => {
                write!(f, "eio:{op}:{nth}{}", if *sticky { "+" } else { "" })?;
                if let Some(p) = path {
                    write!(f, ":{p}")?;
                }
                Ok(())
            }
            FaultRule::NoSpace { after_bytes } => write!(f, "enospc:{after_bytes}"),
            FaultRule::Latency { op, delay } => {
                write!(f, "latency:{op}:{}", format_duration(*delay))
            }
            FaultRule::TornWrite { mode, path } => {
                let mode = match mode {
                    TornMode::Prefix => "prefix",
                    TornMode::Sectors => "sectors",
                };
                write!(f, "torn:{mode}")?;
                if let Some(p) = path {
                    write!(f, ":{p}")?;
                }
                Ok(())
            }
        }
    }
}

/// What the rules decided about one operation.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub(crate) delay: Duration,
    pub(crate) fail: bool,
}

#[derive(Debug)]
struct Active {
    rule: FaultRule,
    /// Matching operations seen (`IoError`) or bytes written (`NoSpace`).
    count: u64,
}

/// The installed rules and their counters.
#[derive(Debug, Default)]
pub(crate) struct RuleSet {
    active: Vec<Active>,
}

impl RuleSet {
    pub(crate) fn new(rules: impl IntoIterator<Item = FaultRule>) -> Self {
        let mut set = Self::default();
        for rule in rules {
            set.add(rule);
        }
        set
    }

    pub(crate) fn add(&mut self, rule: FaultRule) {
        self.active.push(Active { rule, count: 0 });
    }

    pub(crate) fn clear(&mut self) {
        self.active.clear();
    }

    pub(crate) fn rules(&self) -> Vec<FaultRule> {
        self.active.iter().map(|a| a.rule.clone()).collect()
    }

    /// Whether any rule filters by path, so callers only build paths when
    /// they matter.
    pub(crate) fn needs_path(&self) -> bool {
        self.active.iter().any(|a| {
            matches!(a.rule, FaultRule::IoError { path: Some(_), .. } | FaultRule::TornWrite { path: Some(_), .. })
        })
    }

    /// Counts an operation against the rules and says whether to delay or
    /// fail it.
    pub(crate) fn check(&mut self, op: OpKind, path: Option<&str>) -> Verdict {
        let mut verdict = Verdict::default();
        for a in &mut self.active {
            match &a.rule {
                FaultRule::Latency { op: want, delay } if want.matches(op) => {
                    verdict.delay += *delay;
                }
                FaultRule::IoError { op: want, nth, sticky, path: pat } if want.matches(op) => {
                    let selected = match (pat, path) {
                        (None, _) => true,
                        (Some(p), Some(path)) => p.matches(path),
                        (Some(_), None) => false,
                    };
                    if selected {
                        a.count += 1;
                        if a.count == *nth || (*sticky && a.count > *nth) {
                            verdict.fail = true;
                        }
                    }
                }
                _ => {}
            }
        }
        verdict
    }

    /// Charges `bytes` of new data against `NoSpace` rules; false means the
    /// write must fail with `ENOSPC` (and is not charged).
    pub(crate) fn charge(&mut self, bytes: u64) -> bool {
        let fits = self.active.iter().all(|a| match a.rule {
            FaultRule::NoSpace { after_bytes } => a.count.saturating_add(bytes) <= after_bytes,
            _ => true,
        });
        if fits {
            for a in &mut self.active {
                if matches!(a.rule, FaultRule::NoSpace { .. }) {
                    a.count += bytes;
                }
            }
        }
        fits
    }

    /// Bytes that may still be written before `ENOSPC`, if limited.
    pub(crate) fn space_left(&self) -> Option<u64> {
        self.active
            .iter()
            .filter_map(|a| match a.rule {
                FaultRule::NoSpace { after_bytes } => Some(after_bytes.saturating_sub(a.count)),
                _ => None,
            })
            .min()
    }

    /// How a file's last write tears at a power cut, if it does.
    pub(crate) fn torn(&self, path: Option<&str>) -> Option<TornMode> {
        self.active.iter().find_map(|a| match &a.rule {
            FaultRule::TornWrite { mode, path: None } => Some(*mode),
            FaultRule::TornWrite { mode, path: Some(p) } if path.is_some_and(|path| p.matches(path)) => Some(*mode),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_each_rule_kind() {
        let cases: &[(&str, FaultRule)] = &[
            ("eio:write:3", FaultRule::IoError { op: OpKind::Write, nth: 3, sticky: false, path: None }),
            (
                "eio:fdatasync:1+:*.ibd",
                FaultRule::IoError {
                    op: OpKind::Fsync,
                    nth: 1,
                    sticky: true,
                    path: Some(PathPattern::Glob("*.ibd".into())),
                },
            ),
            (
                "eio:*:2:ib_log",
                FaultRule::IoError {
                    op: OpKind::Any,
                    nth: 2,
                    sticky: false,
                    path: Some(PathPattern::Substring("ib_log".into())),
                },
            ),
            ("enospc:4k", FaultRule::NoSpace { after_bytes: 4096 }),
            ("enospc:10", FaultRule::NoSpace { after_bytes: 10 }),
            ("latency:fsync:5ms", FaultRule::Latency { op: OpKind::Fsync, delay: Duration::from_millis(5) }),
            (
                "torn:sectors:/wal/",
                FaultRule::TornWrite { mode: TornMode::Sectors, path: Some(PathPattern::Substring("/wal/".into())) },
            ),
            ("torn:prefix", FaultRule::TornWrite { mode: TornMode::Prefix, path: None }),
        ];
        for (text, want) in cases {
            assert_eq!(&text.parse::<FaultRule>().unwrap(), want, "{text}");
        }
    }

    #[test]
    fn rejects_bad_rules_with_typed_errors() {
        let cases: &[(&str, RuleError)] = &[
            ("", RuleError::Empty),
            ("boom:1", RuleError::UnknownKind("boom".into())),
            ("eio:write:0", RuleError::BadCount("0".into())),
            ("eio:scribble:1", RuleError::UnknownOp("scribble".into())),
            ("eio:write", RuleError::Missing { rule: "eio:write".into(), field: "operation count" }),
            ("enospc:lots", RuleError::BadSize("lots".into())),
            ("latency:read:5", RuleError::BadDuration("5".into())),
            ("latency:read:5h", RuleError::BadDuration("5h".into())),
            ("torn:middle", RuleError::BadTornMode("middle".into())),
        ];
        for (text, want) in cases {
            assert_eq!(&text.parse::<FaultRule>().unwrap_err(), want, "{text}");
        }
    }

    #[test]
    fn globs_match_whole_paths() {
        let g = PathPattern::from("/data/*.ibd");
        assert!(g.matches("/data/t1.ibd"));
        assert!(g.matches("/data/sub/t1.ibd"));
        assert!(!g.matches("/data/t1.ibdx"));
        assert!(PathPattern::from("/?.log").matches("/a.log"));
        assert!(!PathPattern::from("/?.log").matches("/ab.log"));
    }

    #[test]
    fn eio_fires_on_the_nth_matching_op_only() {
        let mut set = RuleSet::new(["eio:write:2:/a".parse().unwrap()]);
        let fired: Vec<bool> =
            ["/a", "/b", "/a", "/a"].iter().map(|p| set.check(OpKind::Write, Some(p)).fail).collect();
        assert_eq!(fired, [false, false, true, false]);
        assert!(!set.check(OpKind::Read, Some("/a")).fail);
    }

    #[test]
    fn sticky_eio_keeps_failing() {
        let mut set = RuleSet::new(["eio:*:2+".parse().unwrap()]);
        let fired: Vec<bool> = (0..4).map(|_| set.check(OpKind::Open, None).fail).collect();
        assert_eq!(fired, [false, true, true, true]);
    }

    #[test]
    fn enospc_allows_exactly_the_budget() {
        let mut set = RuleSet::new(["enospc:10".parse().unwrap()]);
        assert!(set.charge(6));
        assert!(!set.charge(5));
        assert!(set.charge(4));
        assert!(!set.charge(1));
        assert_eq!(set.space_left(), Some(0));
    }

    fn arb_rule() -> impl Strategy<Value = FaultRule> {
        let op = proptest::sample::select(OP_NAMES.iter().map(|(k, _)| *k).collect::<Vec<_>>());
        let path = proptest::option::of("[a-z/.*]{1,8}".prop_map(|s| PathPattern::from(s.as_str())));
        prop_oneof![
            (op.clone(), 1..1000u64, any::<bool>(), path.clone())
                .prop_map(|(op, nth, sticky, path)| { FaultRule::IoError { op, nth, sticky, path } }),
            any::<u64>().prop_map(|after_bytes| FaultRule::NoSpace { after_bytes }),
            (op, 0..10_000_000_000u64).prop_map(|(op, ns)| FaultRule::Latency { op, delay: Duration::from_nanos(ns) }),
            (any::<bool>(), path).prop_map(|(prefix, path)| FaultRule::TornWrite {
                mode: if prefix { TornMode::Prefix } else { TornMode::Sectors },
                path,
            }),
        ]
    }

    proptest! {
        #[test]
        fn display_round_trips(rule in arb_rule()) {
            let text = rule.to_string();
            prop_assert_eq!(text.parse::<FaultRule>(), Ok(rule), "{}", text);
        }
    }
}
