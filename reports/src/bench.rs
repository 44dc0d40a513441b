//! The storage benchmark's part of the report (`crashlab bench`): IO
//! profiles measured by crashlab's agent inside a container on each
//! storage backend, the same profiles measured by fio in the same
//! container on the same mount, and the workload's throughput on each
//! backend.
//!
//! The agent's figures are the product; fio's are the check. Each profile
//! has one headline figure ([`Profile::headline`]): IOPS for the 4 KiB
//! profiles and etcd's check, MiB/s for the sequential write. etcd's check
//! is also judged against etcd's own guidance for its disk, a 99th
//! percentile `fdatasync` latency under [`ETCD_P99_LIMIT_MS`]. Both tools run `rounds` times,
//! alternating, and the medians are compared: a profile whose agent median
//! differs from fio's by more than the tolerance is flagged.

use crate::LatencySummary;
use serde::{Deserialize, Serialize};

/// An IO profile, as the agent and the bench definition name it. Reports
/// and the JSON stream name it the same way; the aliases read reports
/// written when serde derived `fsync4k` from the variant's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// 4 KiB writes at random aligned offsets of a file, each followed by
    /// an fsync.
    #[serde(rename = "fsync-4k", alias = "fsync4k")]
    Fsync4k,
    /// 1 MiB sequential writes.
    #[serde(rename = "seq-write-1m", alias = "seq-write1m")]
    SeqWrite1m,
    /// 4 KiB reads at random aligned offsets of a file.
    #[serde(rename = "rand-read-4k", alias = "rand-read4k")]
    RandRead4k,
    /// etcd's disk check: 2,300-byte sequential writes, each followed by
    /// an fdatasync.
    EtcdFdatasync,
}

/// etcd's guidance for its disk: the 99th percentile of `fdatasync`
/// latency in its check should be under 10 ms (etcd's documentation,
/// "Hardware recommendations" and its FAQ on the fio job).
pub const ETCD_P99_LIMIT_MS: f64 = 10.0;

impl Profile {
    pub const ALL: [Profile; 4] = [Profile::Fsync4k, Profile::SeqWrite1m, Profile::RandRead4k, Profile::EtcdFdatasync];

    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Fsync4k => "fsync-4k",
            Profile::SeqWrite1m => "seq-write-1m",
            Profile::RandRead4k => "rand-read-4k",
            Profile::EtcdFdatasync => "etcd-fdatasync",
        }
    }

    /// The figure the profile is judged by.
    pub fn headline(self) -> Headline {
        match self {
            Profile::Fsync4k | Profile::RandRead4k | Profile::EtcdFdatasync => Headline::Iops,
            Profile::SeqWrite1m => Headline::MibPerS,
        }
    }
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Profile {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Profile::ALL.into_iter().find(|p| p.as_str() == s).ok_or_else(|| {
            format!("unknown IO profile `{s}` (known: {})", Profile::ALL.map(Profile::as_str).join(", "))
        })
    }
}

/// Which figure of [`IoFigures`] a profile is judged by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Headline {
    Iops,
    MibPerS,
}

impl Headline {
    pub fn of(self, figures: &IoFigures) -> f64 {
        match self {
            Headline::Iops => figures.iops,
            Headline::MibPerS => figures.mib_per_s,
        }
    }

    pub fn unit(self) -> &'static str {
        match self {
            Headline::Iops => "IOPS",
            Headline::MibPerS => "MiB/s",
        }
    }
}

/// What one run of one profile measured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct IoFigures {
    pub iops: f64,
    pub mib_per_s: f64,
    /// Latency of one operation in microseconds; for `fsync-4k`, of the
    /// fsync, for `etcd-fdatasync` of the fdatasync.
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
    /// fsyncs and fdatasyncs the run timed; zero in reports that predate
    /// it.
    #[serde(default)]
    pub syncs: u64,
}

/// Everything one `crashlab bench` found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BenchReport {
    /// Runs of each tool per profile and backend; the figures are medians.
    pub rounds: u32,
    /// Length of each timed run.
    pub seconds: f64,
    /// File size of `fsync-4k` (and, in reports older than `read_size_bytes`,
    /// of `rand-read-4k`).
    pub size_bytes: u64,
    /// File size of `rand-read-4k`; zero in reports that predate it.
    pub read_size_bytes: u64,
    /// Bytes `seq-write-1m` writes.
    pub seq_size_bytes: u64,
    /// Bytes `etcd-fdatasync` writes; zero in reports that predate it.
    pub etcd_size_bytes: u64,
    /// Largest allowed difference between the agent's and fio's headline
    /// medians, in percent of fio's.
    pub tolerance_pct: f64,
    /// The backends, in the order they ran.
    pub strategies: Vec<BenchStrategy>,
    pub io: Vec<IoResult>,
    pub workload: Vec<WorkloadResult>,
    /// Backends that could not be measured, with the reason.
    pub errors: Vec<BenchFailure>,
}

impl BenchReport {
    /// The files the profiles used, for the sentence above the tables.
    pub fn files(&self) -> String {
        let mib = |b: u64| b >> 20;
        // Reports that predate read_size_bytes read the one size.
        let read = if self.read_size_bytes == 0 { self.size_bytes } else { self.read_size_bytes };
        let mut files = format!(
            "fsync-4k on a {} MiB file, rand-read-4k on a {} MiB file, seq-write-1m writing {} MiB",
            mib(self.size_bytes),
            mib(read),
            mib(self.seq_size_bytes)
        );
        if self.io.iter().any(|r| r.profile == Profile::EtcdFdatasync) {
            files.push_str(&format!(", etcd-fdatasync writing {} MiB", mib(self.etcd_size_bytes)));
        }
        files
    }

    /// Every profile that was compared agreed with fio, and nothing failed.
    pub fn passed(&self) -> bool {
        self.errors.is_empty() && self.io.iter().all(|r| r.agrees != Some(false))
    }
}

/// A storage backend the bench ran on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BenchStrategy {
    pub name: String,
    /// What it is: `built-in`, `volume driver local (device=tmpfs, type=tmpfs)`,
    /// `host path /mnt/ssd`.
    pub kind: String,
}

/// One profile on one backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IoResult {
    pub strategy: String,
    pub profile: Profile,
    /// Medians over the rounds, figure by figure.
    pub agent: IoFigures,
    /// fio's medians; absent when fio was not run.
    #[serde(default)]
    pub fio: Option<IoFigures>,
    #[serde(default)]
    pub agent_rounds: Vec<IoFigures>,
    #[serde(default)]
    pub fio_rounds: Vec<IoFigures>,
    /// The agent's headline over fio's in each round, in round order; a
    /// round where fio's figure was zero has none.
    #[serde(default)]
    pub round_ratios: Vec<f64>,
    /// The median of `round_ratios`; absent when fio did not run or some
    /// round has no ratio.
    #[serde(default)]
    pub ratio: Option<f64>,
    /// `ratio` is within the tolerance.
    #[serde(default)]
    pub agrees: Option<bool>,
}

/// How a backend did against etcd's guidance for its disk.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EtcdCheck {
    /// The agent's fdatasync p99, and fio's when it ran, in milliseconds.
    pub p99_ms: f64,
    pub fio_p99_ms: Option<f64>,
    /// The agent's p99 is under [`ETCD_P99_LIMIT_MS`].
    pub passes: bool,
}

impl IoResult {
    /// etcd's verdict on this backend, for an `etcd-fdatasync` result that
    /// timed some fdatasync.
    pub fn etcd_check(&self) -> Option<EtcdCheck> {
        (self.profile == Profile::EtcdFdatasync && self.agent.p99_us > 0.0).then(|| EtcdCheck {
            p99_ms: self.agent.p99_us / 1e3,
            fio_p99_ms: self.fio.map(|f| f.p99_us / 1e3),
            passes: self.agent.p99_us / 1e3 < ETCD_P99_LIMIT_MS,
        })
    }

    /// Builds the result from every round's figures (round `i` of each
    /// tool ran back to back), comparing them round by round when fio ran.
    pub fn from_rounds(
        strategy: &str,
        profile: Profile,
        agent_rounds: Vec<IoFigures>,
        fio_rounds: Vec<IoFigures>,
        tolerance_pct: f64,
    ) -> IoResult {
        let agent = median_figures(&agent_rounds);
        let fio = (!fio_rounds.is_empty()).then(|| median_figures(&fio_rounds));
        let headline = profile.headline();
        let paired: Vec<Option<f64>> =
            agent_rounds.iter().zip(&fio_rounds).map(|(a, f)| ratio(headline.of(a), headline.of(f))).collect();
        let complete = !paired.is_empty() && paired.iter().all(Option::is_some);
        let round_ratios: Vec<f64> = paired.into_iter().flatten().collect();
        let ratio = complete.then(|| median(round_ratios.clone()));
        IoResult {
            strategy: strategy.to_owned(),
            profile,
            agent,
            fio,
            agent_rounds,
            fio_rounds,
            round_ratios,
            ratio,
            agrees: fio.map(|_| ratio.is_some_and(|r| within(r, tolerance_pct))),
        }
    }

    pub fn headline(&self) -> f64 {
        self.profile.headline().of(&self.agent)
    }
}

/// `a / b`, when that means something.
pub fn ratio(a: f64, b: f64) -> Option<f64> {
    (a.is_finite() && b.is_finite() && b > 0.0).then(|| a / b)
}

/// Whether a ratio is within `tolerance_pct` percent of 1.
pub fn within(ratio: f64, tolerance_pct: f64) -> bool {
    // A tiny epsilon keeps exactly 10 % inside a 10 % tolerance despite
    // rounding in the division.
    (ratio - 1.0).abs() * 100.0 <= tolerance_pct + 1e-9
}

/// The median of each figure separately (the mean of the middle two for an
/// even count); zero figures for no rounds.
pub fn median_figures(rounds: &[IoFigures]) -> IoFigures {
    let m = |get: fn(&IoFigures) -> f64| median(rounds.iter().map(get).collect());
    IoFigures {
        iops: m(|f| f.iops),
        mib_per_s: m(|f| f.mib_per_s),
        p50_us: m(|f| f.p50_us),
        p99_us: m(|f| f.p99_us),
        max_us: m(|f| f.max_us),
        syncs: m(|f| f.syncs as f64).round() as u64,
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 { values[mid] } else { (values[mid - 1] + values[mid]) / 2.0 }
}

/// The workload's load phase, without a fault, on one backend.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkloadResult {
    pub strategy: String,
    pub workload: String,
    pub clients: u32,
    pub load_s: f64,
    /// Commits the server acknowledged.
    pub acked_writes: u64,
    /// Acknowledged commits per second of load.
    pub throughput_tps: f64,
    pub latency_ms: LatencySummary,
}

/// A backend the bench could not (fully) measure.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BenchFailure {
    pub strategy: String,
    /// What was being done: `io`, `workload`.
    pub stage: String,
    pub detail: String,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn f(iops: f64, mib: f64) -> IoFigures {
        IoFigures { iops, mib_per_s: mib, p50_us: iops / 10.0, p99_us: iops / 5.0, max_us: iops, syncs: 0 }
    }

    #[test]
    fn profiles_serialise_by_the_names_the_command_line_takes_and_old_names_still_load() {
        for p in Profile::ALL {
            assert_eq!(serde_json::to_value(p).unwrap(), p.to_string());
            assert_eq!(p.to_string().parse::<Profile>(), Ok(p));
        }
        for (old, p) in
            [("fsync4k", Profile::Fsync4k), ("seq-write1m", Profile::SeqWrite1m), ("rand-read4k", Profile::RandRead4k)]
        {
            assert_eq!(serde_json::from_value::<Profile>(old.into()).unwrap(), p);
        }
    }

    #[test]
    fn medians_are_taken_figure_by_figure() {
        let m = median_figures(&[f(300.0, 1.0), f(100.0, 9.0), f(200.0, 5.0)]);
        assert_eq!((m.iops, m.mib_per_s, m.max_us), (200.0, 5.0, 200.0));
        assert_eq!(median_figures(&[f(100.0, 2.0), f(300.0, 4.0)]).iops, 200.0);
        assert_eq!(median_figures(&[]).iops, 0.0);
    }

    #[test]
    fn a_profile_agrees_within_the_tolerance_on_its_headline() {
        let agree = IoResult::from_rounds(
            "tmpfs",
            Profile::Fsync4k,
            vec![f(1100.0, 4.0), f(1090.0, 4.0), f(900.0, 4.0)],
            vec![f(1000.0, 40.0), f(1000.0, 40.0), f(990.0, 40.0)],
            10.0,
        );
        assert_eq!(agree.ratio, Some(1.09));
        assert_eq!(agree.agrees, Some(true), "MiB/s is not the headline of fsync-4k");

        let seq = IoResult::from_rounds("tmpfs", Profile::SeqWrite1m, vec![f(1.0, 89.0)], vec![f(1.0, 100.0)], 10.0);
        assert_eq!(seq.agrees, Some(false), "11 % below fio");
        let edge = IoResult::from_rounds("tmpfs", Profile::SeqWrite1m, vec![f(1.0, 110.0)], vec![f(1.0, 100.0)], 10.0);
        assert_eq!(edge.agrees, Some(true), "exactly 10 % is inside");
    }

    #[test]
    fn rounds_are_compared_pairwise_and_the_median_ratio_is_the_check() {
        // The backend slowed down during fio's third round: the separate
        // medians (220 vs 200) differ by 10 %, the rounds agree.
        let r = IoResult::from_rounds(
            "named-volume",
            Profile::RandRead4k,
            vec![f(100.0, 0.0), f(220.0, 0.0), f(400.0, 0.0)],
            vec![f(100.0, 0.0), f(200.0, 0.0), f(500.0, 0.0)],
            5.0,
        );
        assert_eq!(r.round_ratios, vec![1.0, 1.1, 0.8]);
        assert_eq!((r.ratio, r.agrees), (Some(1.0), Some(true)));
        assert_eq!((r.agent.iops, r.fio.map(|f| f.iops)), (220.0, Some(200.0)), "medians stay the figures shown");
        let lopsided = IoResult::from_rounds("x", Profile::RandRead4k, vec![f(1.0, 0.0); 2], vec![f(1.0, 0.0)], 5.0);
        assert_eq!((lopsided.round_ratios.len(), lopsided.ratio), (1, Some(1.0)), "only complete pairs count");
    }

    #[test]
    fn no_fio_means_no_verdict_and_a_zero_fio_figure_never_agrees() {
        let alone = IoResult::from_rounds("x", Profile::RandRead4k, vec![f(5.0, 0.0)], vec![], 10.0);
        assert_eq!((alone.fio, alone.ratio, alone.agrees), (None, None, None));
        let zero = IoResult::from_rounds("x", Profile::RandRead4k, vec![f(5.0, 0.0)], vec![f(0.0, 0.0)], 10.0);
        assert_eq!((zero.ratio, zero.agrees), (None, Some(false)));
    }

    #[test]
    fn profiles_parse_from_their_names() {
        for p in Profile::ALL {
            assert_eq!(p.as_str().parse::<Profile>(), Ok(p));
        }
        assert!(
            "fsync".parse::<Profile>().unwrap_err().contains("fsync-4k, seq-write-1m, rand-read-4k, etcd-fdatasync")
        );
    }

    #[test]
    fn etcds_check_passes_under_10_ms_of_fdatasync_p99() {
        let etcd = |p99_us: f64| {
            let figures = IoFigures { iops: 500.0, p99_us, syncs: 9000, ..IoFigures::default() };
            IoResult::from_rounds("x", Profile::EtcdFdatasync, vec![figures], vec![figures], 10.0)
        };
        let fast = etcd(2_500.0).etcd_check().unwrap();
        assert_eq!((fast.p99_ms, fast.fio_p99_ms, fast.passes), (2.5, Some(2.5), true));
        assert!(!etcd(10_000.0).etcd_check().unwrap().passes, "10 ms is not under 10 ms");
        assert_eq!(etcd(0.0).etcd_check(), None, "nothing timed, no verdict");
        let other = IoResult::from_rounds("x", Profile::Fsync4k, vec![f(1.0, 1.0)], vec![], 10.0);
        assert_eq!(other.etcd_check(), None);
        assert_eq!(median_figures(&[etcd(1.0).agent, IoFigures::default(), etcd(1.0).agent]).syncs, 9000);
    }

    fn etcd(iops: f64, p50_us: f64, p99_us: f64, syncs: u64) -> IoFigures {
        IoFigures { iops, mib_per_s: iops * 2300.0 / 1_048_576.0, p50_us, p99_us, max_us: p99_us * 2.0, syncs }
    }

    /// Two backends, three profiles, one flagged, one failing etcd's check, one workload row and one
    /// failure: every part of the bench section.
    pub(crate) fn sample_bench() -> BenchReport {
        BenchReport {
            rounds: 3,
            seconds: 3.0,
            size_bytes: 64 << 20,
            read_size_bytes: 1 << 30,
            seq_size_bytes: 256 << 20,
            etcd_size_bytes: 22 << 20,
            tolerance_pct: 10.0,
            strategies: vec![
                BenchStrategy { name: "named-volume".into(), kind: "built-in".into() },
                BenchStrategy { name: "ram".into(), kind: "volume driver local (device=tmpfs, type=tmpfs)".into() },
            ],
            io: vec![
                IoResult::from_rounds(
                    "named-volume",
                    Profile::Fsync4k,
                    vec![f(4100.0, 16.0)],
                    vec![f(4000.0, 15.6)],
                    10.0,
                ),
                IoResult::from_rounds(
                    "named-volume",
                    Profile::SeqWrite1m,
                    vec![f(1.0, 350.0)],
                    vec![f(1.0, 352.0)],
                    10.0,
                ),
                IoResult::from_rounds(
                    "ram",
                    Profile::Fsync4k,
                    vec![f(600_000.0, 2300.0)],
                    vec![f(480_000.0, 1900.0)],
                    10.0,
                ),
                IoResult::from_rounds(
                    "named-volume",
                    Profile::EtcdFdatasync,
                    vec![etcd(450.0, 2_000.0, 12_000.0, 10_029)],
                    vec![etcd(440.0, 1_900.0, 11_500.0, 10_029)],
                    10.0,
                ),
                IoResult::from_rounds(
                    "ram",
                    Profile::EtcdFdatasync,
                    vec![etcd(300_000.0, 0.4, 3.0, 10_029)],
                    vec![etcd(250_000.0, 0.3, 2.0, 10_029)],
                    10.0,
                ),
            ],
            workload: vec![WorkloadResult {
                strategy: "named-volume".into(),
                workload: "mariadb".into(),
                clients: 4,
                load_s: 5.0,
                acked_writes: 11_000,
                throughput_tps: 2200.0,
                latency_ms: LatencySummary { p50: 1.5, p95: 2.5, p99: 3.5, max: 9.0 },
            }],
            errors: vec![BenchFailure {
                strategy: "ram".into(),
                stage: "workload".into(),
                detail: "the server did not answer in time".into(),
            }],
        }
    }

    fn bench_only_report() -> crate::Report {
        let mut report = crate::markdown::tests::sample_report();
        report.cells.clear();
        report.unsupported.clear();
        report.bench = Some(sample_bench());
        report
    }

    #[test]
    fn markdown_puts_backends_side_by_side_and_flags_disagreement() {
        let md = crate::markdown::render(&bench_only_report());
        assert!(!md.contains("## Metrics"), "no cells, no cell metrics: {md}");
        assert!(md.contains("| named-volume | 4100 | 410 | 820 | 350 | 450 | 12.00 | 2200 | 1.50 | 3.50 |"), "{md}");
        assert!(md.contains("| ram | 600000 | 60000 | 120000 | – | 300000 | 0.003 | – | – | – |"), "{md}");
        assert!(
            md.contains("| named-volume | 10029 / 10029 | 450 | 2.00 | 12.00 / 11.50 | 24.00 | **fail (12.00 ms)** |"),
            "{md}"
        );
        assert!(md.contains("| ram | 10029 / 10029 | 300000 | 0.000 | 0.003 / 0.002 | 0.006 | pass |"), "{md}");
        assert!(md.contains("etcd-fdatasync writing 22 MiB"), "{md}");
        assert!(md.contains("| named-volume | fsync-4k | 4100 IOPS | 4000 IOPS | 1.02 |"), "{md}");
        assert!(
            md.contains("| ram | fsync-4k | 600000 IOPS | 480000 IOPS | 1.25 |") && md.contains("**✗ +25 %**"),
            "{md}"
        );
        assert!(md.contains("- ram (workload): the server did not answer in time"), "{md}");
        insta::assert_snapshot!(crate::markdown::bench_section(&sample_bench()));
    }

    #[test]
    fn html_draws_a_chart_per_profile_and_the_same_tables() {
        let html = crate::html::render(&bench_only_report());
        assert!(html.contains("<h2>Storage benchmark</h2>"));
        assert_eq!(html.matches("<svg").count(), 4, "fsync-4k, seq-write-1m, etcd-fdatasync, mariadb");
        assert!(
            html.contains("<h3>etcd disk check</h3>")
                && html.contains("<td class=\"inconsistent\">fail (12.00 ms)</td>")
        );
        assert!(html.contains("<code>bench.io[profile=fsync-4k].agent.iops and .fio.iops</code>"));
        assert!(html.contains("<td class=\"inconsistent\">✗ +25 %</td>"), "flag cells are marked");
        assert!(!html.contains("<h2>Metrics</h2>"));
    }

    #[test]
    fn a_bench_report_round_trips_and_old_reports_have_none() {
        let report = bench_only_report();
        let json = serde_json::to_string(&report).unwrap();
        assert_eq!(serde_json::from_str::<crate::Report>(&json).unwrap(), report);
        let old = serde_json::to_string(&crate::markdown::tests::sample_report()).unwrap();
        assert!(!old.contains("\"bench\""));
        assert_eq!(serde_json::from_str::<crate::Report>(&old).unwrap().bench, None);
        assert!(!report.passed(), "the failure and the flagged profile fail it");
    }

    #[test]
    fn passed_needs_agreement_and_no_failure() {
        let mut report = BenchReport {
            io: vec![IoResult::from_rounds("x", Profile::Fsync4k, vec![f(5.0, 0.0)], vec![], 10.0)],
            ..Default::default()
        };
        assert!(report.passed());
        report.errors.push(BenchFailure { strategy: "x".into(), stage: "io".into(), detail: "boom".into() });
        assert!(!report.passed());
    }
}
