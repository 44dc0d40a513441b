//! Bad input, tried at scale: the real scenario and bench files, mutated
//! (lines deleted, duplicated and swapped, keys renamed, values retyped,
//! tokens spliced in, the text truncated, random bytes), and fault rules
//! mutated the same way. Every parser must return an error rather than
//! panic, and every error must be one line that gives a line and column
//! within the text and names a key or the offending token.
//!
//! The default case count keeps `cargo test` quick; for a long run:
//!
//! ```text
//! PROPTEST_CASES=200000 cargo test -p crashlab --test scenario_fuzz -- --nocapture
//! ```
//!
//! Each property prints how many inputs it tried, how many parsed and how
//! long it took, so that a long run can be reported. With
//! `PROPTEST_CASES=1000000` and `--test-threads=1`, a debug build on a
//! shared 2-core machine took 811 s for the five properties (5,000,000
//! inputs) and found no panic.

use crashlab::bench::BenchDefinition;
use crashlab::scenario::Scenario;
use crashlab_faultfs::FaultRule;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::time::Instant;

/// Every scenario shipped, as the seeds of the mutations.
const SCENARIOS: &[(&str, &str)] = &[
    ("across-hosts.toml", include_str!("../../scenarios/across-hosts.toml")),
    ("backup-bench.toml", include_str!("../../scenarios/backup-bench.toml")),
    ("backups.toml", include_str!("../../scenarios/backups.toml")),
    ("backups-postgres.toml", include_str!("../../scenarios/backups-postgres.toml")),
    ("backups-postgres-pitr.toml", include_str!("../../scenarios/backups-postgres-pitr.toml")),
    ("backups-postgres-pitr-no-target.toml", include_str!("../../scenarios/backups-postgres-pitr-no-target.toml")),
    ("binlog-stream.toml", include_str!("../../scenarios/binlog-stream.toml")),
    ("binlog-stream-pitr.toml", include_str!("../../scenarios/binlog-stream-pitr.toml")),
    ("crash-states-postgres.toml", include_str!("../../scenarios/crash-states-postgres.toml")),
    ("crash-states-redis.toml", include_str!("../../scenarios/crash-states-redis.toml")),
    ("crash-states-sqlite.toml", include_str!("../../scenarios/crash-states-sqlite.toml")),
    ("etcd.toml", include_str!("../../scenarios/etcd.toml")),
    ("fsync-log.toml", include_str!("../../scenarios/fsync-log.toml")),
    ("nats.toml", include_str!("../../scenarios/nats.toml")),
    ("postgres.toml", include_str!("../../scenarios/postgres.toml")),
    ("postgres-data-sync-retry-off.toml", include_str!("../../scenarios/postgres-data-sync-retry-off.toml")),
    ("postgres-data-sync-retry-on.toml", include_str!("../../scenarios/postgres-data-sync-retry-on.toml")),
    ("power-loss.toml", include_str!("../../scenarios/power-loss.toml")),
    ("rabbitmq.toml", include_str!("../../scenarios/rabbitmq.toml")),
    ("redis.toml", include_str!("../../scenarios/redis.toml")),
    ("schedules-lazy-flush.toml", include_str!("../../scenarios/schedules-lazy-flush.toml")),
    ("schedules-semisync.toml", include_str!("../../scenarios/schedules-semisync.toml")),
    ("schedules-semisync-default.toml", include_str!("../../scenarios/schedules-semisync-default.toml")),
    ("smoke.toml", include_str!("../../scenarios/smoke.toml")),
    ("sqlite.toml", include_str!("../../scenarios/sqlite.toml")),
    ("torn-pages.toml", include_str!("../../scenarios/torn-pages.toml")),
    ("torn-pages-postgres.toml", include_str!("../../scenarios/torn-pages-postgres.toml")),
    ("wal-stream.toml", include_str!("../../scenarios/wal-stream.toml")),
    ("zookeeper.toml", include_str!("../../scenarios/zookeeper.toml")),
    (
        "every-key.toml",
        r#"name = "every-key"
seed = 7
[workload]
kind = "mariadb"
image = "mariadb:11"
server-args = ["--innodb-flush-log-at-trx-commit=1"]
clients = 4
accounts = 100
load = "3s"
ready-timeout = "60s"
env = ["MARIADB_ROOT_PASSWORD=crashlab"]
command = ["mariadbd"]
data-dir = "/var/lib/mysql"
port = 3306
ready-log = "ready for connections"
[matrix]
strategies = ["named-volume", "sync-agent"]
faults = ["restart", "host-loss"]
cycles = 2
[faults]
disk-full-after = "1MiB"
io-error = "eio:fsync:50"
torn = "prefix"
fsync-reaches-disk = false
[backup]
interval = "2s"
ballast = "1MiB"
quiesce = "engine"
store = "file:///srv/backups"
sync-env = ["AWS_REGION=eu-west-1"]
[explore]
max-states = 16
k = 2
torn-splits = 3
parallel = 1
points = "fsync:*.ibd"
max-points = 4
spread = "first"
point-every = 2
[[expect]]
strategy = "*"
fault = "host-loss"
verdict = "lost-writes"
"#,
    ),
];

const BENCH: &str = include_str!("../../scenarios/bench.toml");
const BENCH_EVERY_KEY: &str = r#"name = "b"
[io]
profiles = ["fsync-4k", "seq-write-1m"]
seconds = "1s"
size = "8MiB"
read-size = "16MiB"
seq-size = "16MiB"
rounds = 1
fio = false
tolerance = 10
[workload]
kind = "redis"
load = "1s"
[[strategy]]
name = "tmpfs"
[[strategy]]
name = "local-tmpfs"
driver = "local"
driver-opts = { type = "tmpfs", device = "tmpfs" }
[[strategy]]
name = "scratch"
host-path = "/var/tmp/crashlab-bench"
"#;

/// Rules of every kind, the seeds of the rule mutations.
const RULES: &[&str] = &[
    "eio:write:3",
    "eio:fdatasync:1+:*.ibd",
    "eio:*:2:ib_log",
    "enospc:4k",
    "enospc:10",
    "latency:fsync:5ms",
    "torn:sectors:/wal/",
    "torn:prefix",
];

/// Keys, values and tokens spliced into the text: other keys, every TOML
/// type, the wrong type for most keys, huge numbers, unicode and control
/// characters, and paths and URLs for the keys that take them.
const TOKENS: &[&str] = &[
    "name",
    "seed",
    "kind",
    "image",
    "clients",
    "accounts",
    "load",
    "ready-timeout",
    "env",
    "command",
    "data-dir",
    "port",
    "ready-log",
    "server-args",
    "strategies",
    "faults",
    "cycles",
    "disk-full-after",
    "io-error",
    "torn",
    "fsync-reaches-disk",
    "interval",
    "ballast",
    "quiesce",
    "store",
    "sync-env",
    "restore-to",
    "strategy",
    "fault",
    "verdict",
    "profiles",
    "seconds",
    "size",
    "read-size",
    "seq-size",
    "rounds",
    "fio",
    "tolerance",
    "driver",
    "driver-opts",
    "host-path",
    "max-states",
    "k",
    "torn-splits",
    "parallel",
    "points",
    "max-points",
    "point-every",
    "spread",
    "end-of-load",
    "fsync:*.ibd",
    "[workload]",
    "[matrix]",
    "[faults]",
    "[backup]",
    "[explore]",
    "[[expect]]",
    "[io]",
    "[[strategy]]",
    "[[workload]]",
    "[matrix.x]",
    "=",
    "\"",
    "'",
    "[",
    "]",
    "{",
    "}",
    ",",
    ".",
    "#",
    "\n",
    "\r\n",
    "\t",
    " ",
    "\\",
    "\"\"\"",
    "'''",
    "0",
    "-1",
    "1",
    "1.5",
    "1e400",
    "nan",
    "-inf",
    "true",
    "false",
    "[]",
    "{}",
    "[1, \"a\"]",
    "{ a = 1 }",
    "1979-05-27T07:32:00Z",
    "07:32:00",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999",
    "-9223372036854775809",
    "0x7fffffff",
    "0o777",
    "0b1",
    "\"\"",
    "\" \"",
    "\"*\"",
    "\"x\"",
    "\"3\"",
    "\"0s\"",
    "\"1e9s\"",
    "\"99999999999999GiB\"",
    "\"16MB\"",
    "\"é☃\"",
    "\"\\u0000\"",
    "\"\\n\"",
    "\"a\\nb=c\"",
    "é",
    "☃",
    "\u{0}",
    "\u{7f}",
    "\u{feff}",
    "\u{202e}",
    "𝕏",
    "\"eio:fsync:0\"",
    "\"eio:write:200+\"",
    "\"torn:middle\"",
    "\"enospc:1m\"",
    "\"latency:read:5ms\"",
    "\"file:///srv/backups\"",
    "\"file://srv/backups\"",
    "\"file:///\"",
    "\"file:\"",
    "\"file:///a/../b\"",
    "\"s3://bucket/prefix\"",
    "\"s3://\"",
    "\"gs://b\"",
    "\"http://x\"",
    "\"/\"",
    "\"/data\"",
    "\"data\"",
    "\"/a/../b\"",
    "\"//\"",
    "\"/var/tmp/x\"",
    "\"..\"",
    "\"named-volume\"",
    "\"restart\"",
    "\"host-loss\"",
    "\"sync-agent\"",
    "\"mariadb\"",
    "\"lost-writes\"",
    "\"error\"",
    "\"fsync-4k\"",
    "\"local\"",
];

/// Pieces of fault rules: kinds, operations, counts, sizes, durations,
/// modes, paths and separators.
const RULE_TOKENS: &[&str] = &[
    "eio",
    "enospc",
    "latency",
    "torn",
    ":",
    "::",
    "+",
    "*",
    "?",
    "any",
    "write",
    "fsync",
    "fdatasync",
    "mknod",
    "scribble",
    "0",
    "1",
    "50",
    "-1",
    "18446744073709551615",
    "18446744073709551616",
    "4k",
    "1m",
    "1g",
    "k",
    "5ms",
    "1s",
    "5",
    "5h",
    "0ns",
    "99999999999999999999s",
    "prefix",
    "sectors",
    "middle",
    "/wal/",
    "*.ibd",
    "**",
    "é",
    "☃",
    "\u{0}",
    " ",
    "\n",
    "",
];

#[derive(Debug, Clone)]
enum Mutation {
    DeleteLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    /// Replaces what follows the `=` of a line.
    ReplaceValue(usize, String),
    /// Replaces what precedes the `=` of a line.
    ReplaceKey(usize, String),
    Insert(usize, String),
    DeleteRange(usize, usize),
    Truncate(usize),
}

fn token(pool: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        6 => proptest::sample::select(pool).prop_map(str::to_owned),
        2 => any::<String>(),
        1 => "[a-z0-9\"=:./\\[\\] -]{0,12}",
        1 => proptest::collection::vec(proptest::sample::select(pool), 1..4).prop_map(|t| t.concat()),
    ]
}

fn mutation(pool: &'static [&'static str]) -> impl Strategy<Value = Mutation> {
    let at = any::<usize>();
    prop_oneof![
        1 => at.prop_map(Mutation::DeleteLine),
        1 => at.prop_map(Mutation::DuplicateLine),
        1 => (at, at).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        3 => (at, token(pool)).prop_map(|(a, t)| Mutation::ReplaceValue(a, t)),
        2 => (at, token(pool)).prop_map(|(a, t)| Mutation::ReplaceKey(a, t)),
        3 => (at, token(pool)).prop_map(|(a, t)| Mutation::Insert(a, t)),
        1 => (at, 0..16usize).prop_map(|(a, n)| Mutation::DeleteRange(a, n)),
        1 => at.prop_map(Mutation::Truncate),
    ]
}

/// The nearest char boundary at or below `at`, modulo the length.
fn boundary(text: &str, at: usize) -> usize {
    let mut i = at % (text.len() + 1);
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn apply(text: &str, mutations: &[Mutation]) -> String {
    let mut text = text.to_owned();
    for m in mutations {
        let mut lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
        let n = lines.len();
        match m {
            Mutation::DeleteLine(i) => {
                lines.remove(i % n);
            }
            Mutation::DuplicateLine(i) => {
                let line = lines[i % n].clone();
                lines.insert(i % n, line);
            }
            Mutation::SwapLines(a, b) => lines.swap(a % n, b % n),
            Mutation::ReplaceValue(i, value) => {
                let line = &mut lines[i % n];
                if let Some((key, _)) = line.split_once('=') {
                    *line = format!("{key}= {value}");
                } else {
                    line.push_str(value);
                }
            }
            Mutation::ReplaceKey(i, key) => {
                let line = &mut lines[i % n];
                let value = line.split_once('=').map_or(String::new(), |(_, v)| v.to_owned());
                *line = format!("{key} ={value}");
            }
            Mutation::Insert(at, token) => {
                let at = boundary(&text, *at);
                text.insert_str(at, token);
                continue;
            }
            Mutation::DeleteRange(at, len) => {
                let start = boundary(&text, *at);
                let end = boundary(&text, (start + len).min(text.len()));
                text.replace_range(start..end, "");
                continue;
            }
            Mutation::Truncate(at) => {
                let at = boundary(&text, *at);
                text.truncate(at);
                continue;
            }
        }
        text = lines.join("\n");
    }
    text
}

/// An error is one line, `origin:line:column: message`, whose line is in
/// the text and whose message names a key or a token (in backticks or
/// quotes).
fn check_located(origin: &str, text: &str, err: &str) -> Result<(), TestCaseError> {
    prop_assert!(!err.contains('\n') && !err.contains('\r'), "one line: {:?}", err);
    let rest = err.strip_prefix(origin).and_then(|r| r.strip_prefix(':'));
    let rest = match rest {
        Some(r) => r,
        None => return Err(TestCaseError::fail(format!("no location: {err:?}"))),
    };
    let mut parts = rest.splitn(3, ':');
    let line: usize = parts.next().and_then(|l| l.parse().ok()).unwrap_or(0);
    let column: usize = parts.next().and_then(|c| c.parse().ok()).unwrap_or(0);
    let message = parts.next().unwrap_or_default().trim();
    let lines = text.matches('\n').count() + 1;
    prop_assert!((1..=lines).contains(&line) && column >= 1, "line {} of {}: {:?}", line, lines, err);
    prop_assert!(!message.is_empty(), "a message: {:?}", err);
    prop_assert!(names_something(message), "names a key or token: {:?}", err);
    Ok(())
}

/// Whether a message quotes a token or a key (in backticks or quotes), or
/// opens with the key it is about (`clients must be between ...`).
fn names_something(message: &str) -> bool {
    let opens_with_key = TOKENS
        .iter()
        .any(|k| k.chars().all(|c| c.is_ascii_lowercase() || c == '-') && message.starts_with(&format!("{k} ")));
    opens_with_key
        || message.matches('`').count() >= 2
        || message.matches('"').count() >= 2
        || message.ends_with("at the end of the file")
}

/// Runs `test` over `strategy` with the configured case count, and prints
/// what it tried.
fn run<S: Strategy>(what: &str, strategy: S, test: impl Fn(S::Value) -> Result<bool, TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let config = Config { failure_persistence: None, ..Config::default() };
    let cases = config.cases;
    let mut runner = TestRunner::new(config);
    let parsed = std::cell::Cell::new(0u64);
    let started = Instant::now();
    let result = runner.run(&strategy, |value| {
        if test(value)? {
            parsed.set(parsed.get() + 1);
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{what}: {e}");
    }
    eprintln!(
        "{what}: {cases} inputs in {:.1} s, {} parsed, {} rejected, no panic",
        started.elapsed().as_secs_f64(),
        parsed.get(),
        u64::from(cases) - parsed.get()
    );
}

#[test]
fn mutated_scenarios_never_panic_and_errors_name_key_and_line() {
    let seeds = 0..SCENARIOS.len();
    let strategy = (seeds, proptest::collection::vec(mutation(TOKENS), 1..6));
    run("scenario", strategy, |(seed, mutations)| {
        let (name, original) = SCENARIOS[seed];
        let text = apply(original, &mutations);
        match Scenario::parse(&text, name) {
            Ok(_) => Ok(true),
            Err(e) => check_located(name, &text, &e.to_string()).map(|()| false),
        }
    });
}

#[test]
fn random_text_is_never_a_scenario_and_never_a_panic() {
    run("random scenario text", any::<String>(), |text| match Scenario::parse(&text, "r.toml") {
        Ok(_) => Ok(true),
        Err(e) => check_located("r.toml", &text, &e.to_string()).map(|()| false),
    });
}

#[test]
fn mutated_bench_definitions_never_panic_and_errors_name_key_and_line() {
    let strategy = (any::<bool>(), proptest::collection::vec(mutation(TOKENS), 1..6));
    run("bench definition", strategy, |(every_key, mutations)| {
        let text = apply(if every_key { BENCH_EVERY_KEY } else { BENCH }, &mutations);
        match BenchDefinition::parse(&text, "b.toml") {
            Ok(_) => Ok(true),
            Err(e) => check_located("b.toml", &text, &e.to_string()).map(|()| false),
        }
    });
}

#[test]
fn mutated_strategy_flags_never_panic() {
    let flag = prop_oneof![
        token(TOKENS),
        (token(TOKENS), token(TOKENS)).prop_map(|(a, b)| format!("{a}=path:{b}")),
        (token(TOKENS), token(TOKENS)).prop_map(|(a, b)| format!("{a}=volume:{b}")),
    ];
    run("--strategy flag", flag, |text| match crashlab::bench::BenchStrategy::parse_flag(&text) {
        Ok(_) => Ok(true),
        Err(e) => {
            prop_assert!(!e.contains('\n'), "one line: {:?}", e);
            prop_assert!(names_something(&e), "names a token: {:?}", e);
            Ok(false)
        }
    });
}

#[test]
fn mutated_fault_rules_never_panic_and_errors_name_the_token() {
    let strategy = (proptest::sample::select(RULES), proptest::collection::vec(mutation(RULE_TOKENS), 1..4));
    run("fault rule", strategy, |(rule, mutations)| {
        let text = apply(rule, &mutations);
        match text.parse::<FaultRule>() {
            Ok(rule) => {
                // What parses prints back to a rule that parses the same.
                prop_assert_eq!(rule.to_string().parse::<FaultRule>(), Ok(rule));
                Ok(true)
            }
            Err(e) => {
                let e = e.to_string();
                prop_assert!(!e.contains('\n'), "one line: {:?}", e);
                prop_assert!(names_something(&e) || e.ends_with("empty rule"), "names a token: {:?}", e);
                Ok(false)
            }
        }
    });
}
