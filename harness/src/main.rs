//! The `crashlab` binary: parses arguments and dispatches to
//! [`crashlab::app`]. Expected errors print one line and a hint and exit 2.

use clap::{Parser, Subcommand};
use crashlab::app::{self, RunOptions, exit};
use crashlab::images::{DEFAULT_MIRROR, Via};
use crashlab::report::Format;
use crashlab_reports::compare::Thresholds;
use crashlab_reports::partition::Partition;
use std::path::PathBuf;

/// Crash- and application-consistency tests for containerised data.
#[derive(Parser)]
#[command(name = "crashlab", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario (the built-in smoke scenario when none is given).
    Run {
        /// Scenario file (TOML).
        #[arg(conflicts_with = "compose")]
        scenario: Option<PathBuf>,
        /// Test a service of a Compose file as the file deploys it, beside
        /// the other strategies under the smoke scenario's faults.
        #[arg(long, value_name = "FILE")]
        compose: Option<PathBuf>,
        /// The Compose file's service to test (its only one when left out).
        #[arg(long, value_name = "SERVICE", requires = "compose")]
        service: Option<String>,
        /// Take the Compose file's variables from FILE instead of the
        /// `.env` beside it (after crashlab's environment, as `docker
        /// compose --env-file` does).
        #[arg(long, value_name = "FILE", requires = "compose")]
        env_file: Option<PathBuf>,
        /// Cells to run at once on this host: a number, or `auto` for the
        /// CPU count.
        #[arg(long, short, default_value = "1", value_parser = app::parse_jobs)]
        jobs: usize,
        /// Run one shard of the plan, as cargo-nextest does: `hash:K/N`
        /// (by each cell's identity; a cell keeps its shard when others
        /// are added) or `slice:K/N` (round-robin in plan order).
        #[arg(long, value_name = "hash:K/N|slice:K/N", value_parser = parse_partition)]
        partition: Option<Partition>,
        #[command(flatten)]
        run: RunFlags,
    },
    /// Join shard reports (report.json files, or directories holding one)
    /// into one report; exit 1 when a cell missed its expectation or a
    /// shard or cell is missing.
    Merge {
        #[arg(required = true, value_name = "SHARD")]
        shards: Vec<PathBuf>,
        /// Directory for the merged reports.
        #[arg(long, required = true)]
        out: PathBuf,
    },
    /// Benchmark storage backends: IO profiles (checked against fio) and
    /// the workload's throughput on each, side by side.
    Bench {
        /// Bench definition (TOML); the built-in scenarios/bench.toml when
        /// none is given.
        definition: Option<PathBuf>,
        /// Backend to measure, replacing the definition's (repeatable): a
        /// built-in strategy, NAME=volume:DRIVER[,KEY=VALUE...] or
        /// NAME=path:/DIR.
        #[arg(long = "strategy", value_name = "SPEC")]
        strategies: Vec<String>,
        /// IO profile to run, replacing the definition's (repeatable):
        /// fsync-4k, seq-write-1m, rand-read-4k, etcd-fdatasync.
        #[arg(long = "profile", value_name = "PROFILE", value_parser = parse_profile)]
        profiles: Vec<crashlab_reports::bench::Profile>,
        /// Length of each timed IO run, e.g. 3s.
        #[arg(long)]
        seconds: Option<String>,
        /// Rounds of each tool per profile; medians are reported.
        #[arg(long)]
        rounds: Option<u32>,
        /// Skip the fio check.
        #[arg(long)]
        no_fio: bool,
        /// Skip the workload's load phase.
        #[arg(long)]
        no_workload: bool,
        #[command(flatten)]
        run: RunFlags,
    },
    /// Check one crash state of a failing crash point again, as the run
    /// checked it, in a fresh container: the command is in the report.
    /// Exits 0 when the state is intact, 1 when it is not.
    Replay {
        /// The run's replay directory (<state dir>/replays/<run id>), or
        /// the run id.
        run: String,
        /// The cell, workload/strategy/fault; needed when the run kept
        /// points of several cells.
        #[arg(long)]
        cell: Option<String>,
        /// The cycle, from 1.
        #[arg(long, default_value_t = 1)]
        cycle: u32,
        /// The crash point of the cycle, from 1.
        #[arg(long, default_value_t = 1)]
        point: u32,
        /// The state's id (`p0`, `e1-drop{3}`, `t2@1/4`); the point's first
        /// failing state by default.
        #[arg(long)]
        state: Option<String>,
        /// Leave the container running on the state, to look into it.
        #[arg(long)]
        keep: bool,
        /// Debian mirror for building a missing image.
        #[arg(long, env = "CRASHLAB_DEBIAN_MIRROR", default_value = DEFAULT_MIRROR)]
        mirror: String,
    },
    /// Re-render a stored report.json as Markdown, HTML or JUnit.
    Report {
        report: PathBuf,
        #[arg(long, value_enum, default_value = "md")]
        format: Format,
        /// Write here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Compare a run against a baseline; exit 1 on regression.
    Compare {
        base: PathBuf,
        new: PathBuf,
        /// Largest allowed throughput drop, in percent of the baseline.
        #[arg(long, default_value_t = Thresholds::default().max_throughput_drop)]
        max_throughput_drop: f64,
        /// Largest allowed rise of p99 commit latency, in percent.
        #[arg(long, default_value_t = Thresholds::default().max_p99_rise)]
        max_p99_rise: f64,
        /// Largest allowed rise of p50 recovery time, in percent.
        #[arg(long, default_value_t = Thresholds::default().max_recovery_rise)]
        max_recovery_rise: f64,
        /// Write the Markdown diff here (e.g. for a pull-request comment)
        /// instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Check a scenario file without running it.
    Validate { scenario: PathBuf },
    /// Build or list crashlab's workload images.
    Images {
        #[command(subcommand)]
        command: ImagesCommand,
    },
    /// Remove containers, volumes and directories left by killed runs.
    Clean {
        /// Also remove the crash points kept for `crashlab replay` (of runs
        /// that are over).
        #[arg(long)]
        replays: bool,
    },
    /// Check the daemon and its API version, the mirror, images, root,
    /// /dev/fuse, loop devices and the tools strategies need.
    Doctor {
        #[arg(long, env = "CRASHLAB_DEBIAN_MIRROR", default_value = DEFAULT_MIRROR)]
        mirror: String,
    },
}

#[derive(Subcommand)]
enum ImagesCommand {
    /// Build images from Debian packages (read from the mirror, installed
    /// in a container, then imported).
    Build {
        /// Image names: mariadb, postgres, redis, fio (the bench container), agent.
        #[arg(required = true)]
        names: Vec<String>,
        #[arg(long, env = "CRASHLAB_DEBIAN_MIRROR", default_value = DEFAULT_MIRROR)]
        mirror: String,
        #[arg(long, short)]
        quiet: bool,
        /// How to bootstrap the base system: crashlab itself, or the host's
        /// debootstrap (needs it installed and root; kept for comparison).
        #[arg(long, value_enum, default_value = "archive")]
        via: ViaArg,
    },
    /// Show each image and whether it is built.
    List,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ViaArg {
    Archive,
    Debootstrap,
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CRASHLAB_LOG").unwrap_or_else(|_| "warn,fuser=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("crashlab: failed to start the async runtime: {e}");
            std::process::exit(exit::SETUP);
        }
    };
    let code = runtime.block_on(dispatch(cli.command));
    std::process::exit(code);
}

/// What `run` and `bench` share: where reports go, cleanup, progress and
/// the mirror missing images are built from.
#[derive(Debug, clap::Args)]
struct RunFlags {
    /// Directory for the reports (report.json, .md, .html, junit.xml)
    /// [default: crashlab-results/<run id>].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Leave containers, volumes and directories in place for debugging.
    #[arg(long)]
    keep: bool,
    /// No progress output; the summary still goes to stdout.
    #[arg(long, short)]
    quiet: bool,
    /// Debian mirror for building missing images.
    #[arg(long, env = "CRASHLAB_DEBIAN_MIRROR", default_value = DEFAULT_MIRROR)]
    mirror: String,
}

fn parse_partition(s: &str) -> Result<Partition, String> {
    s.parse().map_err(|e: crashlab_reports::partition::PartitionError| e.to_string())
}

fn parse_profile(s: &str) -> Result<crashlab_reports::bench::Profile, String> {
    s.parse()
}

async fn dispatch(command: Command) -> i32 {
    let result = match command {
        Command::Run {
            scenario,
            compose,
            service,
            env_file,
            jobs,
            partition,
            run: RunFlags { out, keep, quiet, mirror },
        } => {
            let compose = compose.map(|file| app::ComposeTarget { file, service, env_file });
            app::run(RunOptions { scenario, out, keep, quiet, mirror, jobs, partition, compose }).await
        }
        Command::Merge { shards, out } => app::merge(&shards, &out),
        Command::Replay { run, cell, cycle, point, state, keep, mirror } => {
            app::replay(app::ReplayOptions { target: run, cell, cycle, point, state, keep, mirror }).await
        }
        Command::Bench {
            definition,
            strategies,
            profiles,
            seconds,
            rounds,
            no_fio,
            no_workload,
            run: RunFlags { out, keep, quiet, mirror },
        } => {
            let flags = crashlab::bench::BenchFlags { strategies, profiles, seconds, rounds, no_fio, no_workload };
            app::bench(app::BenchOptions { definition, flags, out, keep, quiet, mirror }).await
        }
        Command::Validate { scenario } => app::validate(&scenario),
        Command::Images { command: ImagesCommand::Build { names, mirror, quiet, via } } => {
            let via = match via {
                ViaArg::Archive => Via::Archive,
                ViaArg::Debootstrap => Via::Debootstrap,
            };
            app::build_images(&names, &mirror, quiet, via).await.map(|()| exit::PASS)
        }
        Command::Report { report, format, out } => {
            app::render_report(&report, format, out.as_deref()).map(|()| exit::PASS)
        }
        Command::Compare { base, new, max_throughput_drop, max_p99_rise, max_recovery_rise, out } => {
            let thresholds = Thresholds { max_throughput_drop, max_p99_rise, max_recovery_rise };
            app::compare_reports(&base, &new, thresholds, out.as_deref())
        }
        Command::Images { command: ImagesCommand::List } => app::list_images().await.map(|()| exit::PASS),
        Command::Clean { replays } => app::clean(replays).await.map(|()| exit::PASS),
        Command::Doctor { mirror } => Ok(app::doctor(&mirror).await),
    };
    result.unwrap_or_else(|e| {
        eprintln!("crashlab: {e}");
        if let Some(hint) = e.hint() {
            eprintln!("hint: {hint}");
        }
        e.exit_code()
    })
}
