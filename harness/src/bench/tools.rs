//! The two measuring tools of `crashlab bench`, as commands to run in the
//! bench container and parsers of what they print: crashlab's own agent
//! (`crashlab-agent io`), whose figures the report is about, and fio with
//! the job that matches each agent profile, as the check.
//!
//! | profile | agent | fio job |
//! |---|---|---|
//! | `fsync-4k` | 4 KiB `pwrite` at a random offset of a laid-out file, then `fsync`, for `seconds` | `--rw=randwrite --bs=4k --fsync=1 --overwrite=1`, time-based |
//! | `seq-write-1m` | `seq-size` in 1 MiB writes to a new file, then one `fsync` | `--rw=write --bs=1M --end_fsync=1` |
//! | `rand-read-4k` | 4 KiB `pread` at random offsets of a laid-out file (`read-size`, 1 GiB by default), for `seconds` | `--rw=randread --bs=4k`, time-based |
//! | `etcd-fdatasync` | `etcd-size` (22 MiB by default) in 2,300-byte `write`s to a new file, each followed by `fdatasync` | `--rw=write --ioengine=sync --bs=2300 --fdatasync=1`, etcd's own disk check |
//!
//! Both use synchronous calls (`--ioengine=psync`; `sync`, plain `write`,
//! for etcd's check, as etcd's documentation runs it), one job, queue depth
//! one, page-aligned buffers, and neither preallocates
//! (`--fallocate=none`), so the same system calls reach the same
//! filesystem. Both drop the file from the page cache before a random
//! profile and give the kernel fio's default access hint (random: no
//! readahead; sequential for the sequential write). The agent draws
//! offsets uniformly with replacement, so fio runs with `--norandommap=1`
//! (fio's default visits each block once per pass).
//!
//! `rand-read-4k` reads a file far larger than a run can bring into the
//! page cache: fio by hand on this machine's ext4, 3 s runs, read a 64 MiB
//! file at about 300,000 IOPS with a p50 of 1.3 µs (the cache held it) and
//! a 1 GiB file at about 11,000 IOPS with a p50 of 90 µs (the disk).
//!
//! fio's `--end_fsync=1` bandwidth includes the final fsync (fio 3.33), as
//! the agent's `seq-write-1m` rate does. Latencies are fio's completion
//! latencies; for `fsync-4k`, fio's fsync latency, against the agent's
//! write-plus-fsync per operation (the write to the page cache is a few
//! microseconds of it); for `etcd-fdatasync`, fio's sync latency against
//! the agent's timing of the `fdatasync` call alone. fio's own run of
//! etcd's job would preallocate the file (`fallocate=native`, its
//! default); here both tools write without preallocating, as for every
//! profile, so that they make the same calls.
//!
//! Where an operation costs about a microsecond (tmpfs, or a file the page
//! cache holds), the tools' own work per operation is a visible part of
//! it: profiled here (`perf record`) on tmpfs, fio's own code took 21 % of
//! its samples for `rand-read-4k` and the agent's 5 %, so the agent counts
//! more IOPS there than fio does for the same system calls.

use crashlab_reports::bench::{IoFigures, Profile};
use serde::Deserialize;
use std::collections::BTreeMap;

/// What a tool printed that cannot be read as its figures.
#[derive(Debug, thiserror::Error)]
pub enum ToolOutputError {
    #[error("parse {tool}'s output as JSON ({detail}); it printed: {output}")]
    Json { tool: &'static str, detail: String, output: String },
    #[error("read {tool}'s output: {detail}")]
    Missing { tool: &'static str, detail: String },
}

/// How a profile is to be run.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub profile: Profile,
    /// Directory in the container, on the backend's mount.
    pub dir: String,
    /// File size in bytes.
    pub size: u64,
    /// How long the random profiles run.
    pub seconds: f64,
}

/// The agent's command line for `job`.
pub fn agent_command(agent: &str, job: &Job) -> Vec<String> {
    vec![
        agent.to_owned(),
        "io".into(),
        "--profile".into(),
        job.profile.as_str().into(),
        "--dir".into(),
        job.dir.clone(),
        "--size".into(),
        job.size.to_string(),
        "--seconds".into(),
        format!("{}", job.seconds),
    ]
}

/// fio's command line for the job that matches the agent's `job`.
pub fn fio_command(job: &Job) -> Vec<String> {
    // etcd's documentation runs its job with `write` (`sync`); the
    // others use `pwrite`/`pread` (`psync`), as the agent does for them.
    let engine = if job.profile == Profile::EtcdFdatasync { "--ioengine=sync" } else { "--ioengine=psync" };
    let mut cmd: Vec<String> = [
        "fio",
        "--output-format=json",
        engine,
        "--numjobs=1",
        "--iodepth=1",
        "--fallocate=none",
        "--unlink=1",
        "--randrepeat=0",
        "--norandommap=1",
        // fio times each op's submission and its total as well as its
        // completion; only the completion latency is read, and the agent
        // times nothing else, so fio skips the other two clock readings.
        "--disable_slat=1",
        "--disable_lat=1",
        // The agent writes the same buffer each time; fio would change a
        // few bytes of it before each write.
        "--scramble_buffers=0",
    ]
    .map(String::from)
    .to_vec();
    cmd.push(format!("--name={}", job.profile));
    cmd.push(format!("--directory={}", job.dir));
    cmd.push(format!("--size={}", job.size));
    let timed = |cmd: &mut Vec<String>| {
        cmd.push("--time_based=1".into());
        cmd.push(format!("--runtime={}ms", (job.seconds * 1000.0).round() as u64));
    };
    match job.profile {
        Profile::Fsync4k => {
            cmd.extend(["--rw=randwrite", "--bs=4k", "--fsync=1", "--overwrite=1"].map(String::from));
            timed(&mut cmd);
        }
        Profile::SeqWrite1m => cmd.extend(["--rw=write", "--bs=1M", "--end_fsync=1"].map(String::from)),
        Profile::RandRead4k => {
            cmd.extend(["--rw=randread", "--bs=4k"].map(String::from));
            timed(&mut cmd);
        }
        Profile::EtcdFdatasync => cmd.extend(["--rw=write", "--bs=2300", "--fdatasync=1"].map(String::from)),
    }
    cmd
}

/// The agent's JSON line, as documented in `workloads/agent`.
#[derive(Deserialize)]
struct AgentLine {
    profile: String,
    /// Absent from agents that predate it.
    #[serde(default)]
    syncs: u64,
    iops: f64,
    mib_per_s: f64,
    latency_us: AgentLatency,
}

#[derive(Deserialize)]
struct AgentLatency {
    p50: f64,
    p99: f64,
    max: f64,
}

/// Reads the agent's figures from its output: the last line that is a
/// JSON object (anything before it is diagnostics).
pub fn parse_agent(output: &str, profile: Profile) -> Result<IoFigures, ToolOutputError> {
    let line = output.lines().rev().map(str::trim).find(|l| l.starts_with('{')).ok_or_else(|| {
        ToolOutputError::Missing { tool: "crashlab-agent", detail: format!("no JSON line in: {}", tail(output)) }
    })?;
    let parsed: AgentLine = serde_json::from_str(line).map_err(|e| ToolOutputError::Json {
        tool: "crashlab-agent",
        detail: e.to_string(),
        output: tail(output),
    })?;
    if parsed.profile != profile.as_str() {
        return Err(ToolOutputError::Missing {
            tool: "crashlab-agent",
            detail: format!("it ran profile {} instead of {profile}", parsed.profile),
        });
    }
    Ok(IoFigures {
        iops: parsed.iops,
        mib_per_s: parsed.mib_per_s,
        p50_us: parsed.latency_us.p50,
        p99_us: parsed.latency_us.p99,
        max_us: parsed.latency_us.max,
        syncs: parsed.syncs,
    })
}

/// The parts of fio's `--output-format=json` that the bench reads.
#[derive(Deserialize)]
struct FioOutput {
    jobs: Vec<FioJob>,
}

#[derive(Deserialize)]
struct FioJob {
    #[serde(default)]
    error: i64,
    read: FioDirection,
    write: FioDirection,
    sync: Option<FioSync>,
}

#[derive(Deserialize)]
struct FioDirection {
    bw_bytes: f64,
    iops: f64,
    clat_ns: FioLatency,
}

#[derive(Deserialize)]
struct FioSync {
    /// fsyncs issued; fio prints the section with zeros when there were none.
    /// fio 3.33 counts its `--fdatasync` calls only in `lat_ns.N`.
    #[serde(default)]
    total_ios: u64,
    lat_ns: FioLatency,
}

impl FioSync {
    /// fsyncs and fdatasyncs timed.
    fn count(&self) -> u64 {
        self.total_ios.max(self.lat_ns.samples)
    }
}

#[derive(Deserialize)]
struct FioLatency {
    #[serde(default)]
    max: f64,
    /// Operations timed.
    #[serde(default, rename = "N")]
    samples: u64,
    /// Keyed by percentile with six decimals (`"99.000000"`); absent when
    /// nothing was measured.
    #[serde(default)]
    percentile: BTreeMap<String, f64>,
}

impl FioLatency {
    fn us(&self, percentile: &str) -> f64 {
        self.percentile.get(percentile).copied().unwrap_or(0.0) / 1000.0
    }
}

/// Reads fio's figures for `profile` from its JSON output. fio may print
/// notes before the JSON document, so parsing starts at the first `{`.
pub fn parse_fio(output: &str, profile: Profile) -> Result<IoFigures, ToolOutputError> {
    let start = output
        .find('{')
        .ok_or_else(|| ToolOutputError::Missing { tool: "fio", detail: format!("no JSON in: {}", tail(output)) })?;
    let mut de = serde_json::Deserializer::from_str(&output[start..]);
    let parsed = FioOutput::deserialize(&mut de).map_err(|e| ToolOutputError::Json {
        tool: "fio",
        detail: e.to_string(),
        output: tail(output),
    })?;
    let job = parsed.jobs.first().ok_or(ToolOutputError::Missing { tool: "fio", detail: "no job".into() })?;
    if job.error != 0 {
        return Err(ToolOutputError::Missing {
            tool: "fio",
            detail: format!("the job failed with error {}", job.error),
        });
    }
    let direction = if profile == Profile::RandRead4k { &job.read } else { &job.write };
    let syncing = matches!(profile, Profile::Fsync4k | Profile::EtcdFdatasync);
    let latency = match &job.sync {
        Some(sync) if syncing && sync.count() > 0 => &sync.lat_ns,
        _ if syncing => {
            let detail = format!("no fsync or fdatasync latencies for {profile}");
            return Err(ToolOutputError::Missing { tool: "fio", detail });
        }
        _ => &direction.clat_ns,
    };
    Ok(IoFigures {
        iops: direction.iops,
        mib_per_s: direction.bw_bytes / f64::from(1 << 20),
        p50_us: latency.us("50.000000"),
        p99_us: latency.us("99.000000"),
        max_us: latency.max / 1000.0,
        syncs: job.sync.as_ref().map_or(0, FioSync::count),
    })
}

/// The end of a tool's output, for an error message.
fn tail(output: &str) -> String {
    let trimmed = output.trim();
    let start = trimmed.char_indices().rev().nth(400).map_or(0, |(i, _)| i);
    trimmed[start..].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from fio 3.33 (the version in Debian bookworm, and so in
    // crashlab/fio) on this machine's ext4, with the commands of
    // `fio_command`.
    const FSYNC: &str = include_str!("fixtures/fio-fsync-4k.json");
    const SEQ: &str = include_str!("fixtures/fio-seq-write-1m.json");
    const RAND: &str = include_str!("fixtures/fio-rand-read-4k.json");
    // etcd's job on 1 MiB, in crashlab/fio's writable layer: fio counts
    // its fdatasyncs in `sync.lat_ns.N`, leaving `total_ios` zero.
    const ETCD: &str = include_str!("fixtures/fio-etcd-fdatasync.json");

    #[test]
    fn fio_fsync_job_reports_write_iops_and_fsync_latency() {
        let f = parse_fio(FSYNC, Profile::Fsync4k).unwrap();
        assert!((f.iops - 1222.777223).abs() < 1e-6, "{f:?}");
        assert!((f.mib_per_s - 5_008_495.0 / 1_048_576.0).abs() < 1e-9, "{f:?}");
        assert!((f.p50_us - 160.768).abs() < 1e-9, "{f:?}");
        assert!(f.p50_us <= f.p99_us && f.p99_us <= f.max_us, "{f:?}");
    }

    #[test]
    fn fio_etcd_job_counts_each_fdatasync_and_reports_its_latency() {
        let f = parse_fio(ETCD, Profile::EtcdFdatasync).unwrap();
        assert_eq!(f.syncs, 455, "one fdatasync per whole 2,300-byte block of 1 MiB: {f:?}");
        assert!((f.iops - 201.684397).abs() < 1e-6, "{f:?}");
        assert!((f.p99_us - 18_219.008).abs() < 1e-9, "{f:?}");
        assert!(f.p50_us <= f.p99_us && f.p99_us <= f.max_us, "{f:?}");
        assert_eq!(parse_fio(FSYNC, Profile::Fsync4k).unwrap().syncs, 1224, "fsync-4k counts in total_ios");
    }

    #[test]
    fn fio_sequential_and_random_read_jobs_parse() {
        let seq = parse_fio(SEQ, Profile::SeqWrite1m).unwrap();
        assert!(seq.mib_per_s > 0.0 && seq.iops > 0.0, "{seq:?}");
        assert!((seq.iops - seq.mib_per_s).abs() < 1e-6 * seq.iops, "1 MiB blocks: IOPS = MiB/s, {seq:?}");
        let rand = parse_fio(RAND, Profile::RandRead4k).unwrap();
        assert!(rand.iops > 0.0 && rand.p50_us > 0.0 && rand.p99_us >= rand.p50_us, "{rand:?}");
        assert!((rand.mib_per_s * 256.0 - rand.iops).abs() < 0.01 * rand.iops, "4 KiB reads, {rand:?}");
    }

    #[test]
    fn fio_notes_before_the_json_are_skipped_and_garbage_is_an_error() {
        let noisy = format!("fio: note: both iodepth >= 1 and synchronous I/O engine are selected\n{RAND}");
        assert_eq!(parse_fio(&noisy, Profile::RandRead4k).unwrap(), parse_fio(RAND, Profile::RandRead4k).unwrap());
        let err = parse_fio("fio: unrecognized option '--bogus'", Profile::Fsync4k).unwrap_err();
        assert!(err.to_string().contains("no JSON in: fio: unrecognized option"), "{err}");
        assert!(parse_fio("{\"jobs\": 3}", Profile::Fsync4k).is_err());
        assert!(parse_fio(SEQ, Profile::Fsync4k).unwrap_err().to_string().contains("no fsync or fdatasync latencies"));
    }

    #[test]
    fn agent_line_parses_and_must_be_the_profile_asked_for() {
        let line = r#"{"profile":"fsync-4k","ops":10,"bytes":40960,"seconds":2.0,"iops":5.0,"mib_per_s":0.02,"latency_us":{"p50":1.0,"p99":2.0,"max":3.0}}"#;
        let f = parse_agent(&format!("warming up\n{line}\n"), Profile::Fsync4k).unwrap();
        assert_eq!(f, IoFigures { iops: 5.0, mib_per_s: 0.02, p50_us: 1.0, p99_us: 2.0, max_us: 3.0, syncs: 0 });
        let counted = line.replace(r#""bytes":40960,"#, r#""bytes":40960,"syncs":10,"#);
        assert_eq!(parse_agent(&counted, Profile::Fsync4k).unwrap().syncs, 10);
        assert!(parse_agent(line, Profile::RandRead4k).unwrap_err().to_string().contains("instead of rand-read-4k"));
        let err = parse_agent("crashlab-agent: failed to create /x: No such file", Profile::Fsync4k).unwrap_err();
        assert!(err.to_string().contains("failed to create /x"), "{err}");
    }

    #[test]
    fn commands_match_profile_for_profile() {
        let job = Job { profile: Profile::Fsync4k, dir: "/bench/r1".into(), size: 8 << 20, seconds: 1.5 };
        let fio = fio_command(&job).join(" ");
        for part in
            ["--rw=randwrite", "--bs=4k", "--fsync=1", "--size=8388608", "--runtime=1500ms", "--directory=/bench/r1"]
        {
            assert!(fio.contains(part), "{fio}");
        }
        assert_eq!(
            agent_command("/usr/local/bin/crashlab-agent", &job).join(" "),
            "/usr/local/bin/crashlab-agent io --profile fsync-4k --dir /bench/r1 --size 8388608 --seconds 1.5"
        );
        assert!(!fio.contains("fadvise_hint"), "fio keeps its default access hint, as the agent gives it: {fio}");
        assert!(fio.contains("--disable_lat=1") && fio.contains("--scramble_buffers=0"), "{fio}");
        let seq = fio_command(&Job { profile: Profile::SeqWrite1m, ..job.clone() }).join(" ");
        assert!(seq.contains("--end_fsync=1") && !seq.contains("time_based"), "{seq}");
        let rand = fio_command(&Job { profile: Profile::RandRead4k, ..job.clone() }).join(" ");
        assert!(rand.contains("--rw=randread") && rand.contains("--time_based=1"), "{rand}");
        let etcd = fio_command(&Job { profile: Profile::EtcdFdatasync, ..job }).join(" ");
        for part in ["--rw=write", "--ioengine=sync", "--fdatasync=1", "--bs=2300", "--size=8388608"] {
            assert!(etcd.contains(part), "etcd's own job: {etcd}");
        }
        assert!(!etcd.contains("psync") && !etcd.contains("time_based"), "{etcd}");
    }
}
