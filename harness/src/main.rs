//! The `crashlab` binary: parses arguments and dispatches to
//! [`crashlab::app`]. Expected errors print one line and a hint and exit 2
//! (with `--message-format json`, also an `error` line on stdout).

use clap::{ArgAction, CommandFactory as _, Parser, Subcommand};
use crashlab::app::{self, RunOptions, exit};
use crashlab::images::{DEFAULT_MIRROR, Via};
use crashlab::report::json_events::{JsonEvents, Line, MessageFormat};
use crashlab::report::{ColorChoice, CompareFormat, Format};
use crashlab::scenario::filter::Filter;
use crashlab_reports::compare::Thresholds;
use crashlab_reports::partition::Partition;
use std::path::PathBuf;

/// Crash- and application-consistency tests for containerised data.
#[derive(Parser)]
#[command(name = "crashlab", version, about)]
struct Cli {
    /// No progress output (run, bench, images build) and only errors
    /// logged; summaries and results still go to stdout.
    #[arg(long, short, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Log more on stderr: -v info, -vv debug, -vvv trace. CRASHLAB_LOG,
    /// when set, decides instead (a tracing filter, e.g. `crashlab=debug`).
    #[arg(long, short, global = true, action = ArgAction::Count)]
    verbose: u8,
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
        /// Run only the cells this selects, e.g. `strategy=bind-mount and
        /// fault!=restart`: KEY=VALUE or KEY!=VALUE (keys workload,
        /// strategy, fault; `*` in a value matches any characters), joined
        /// with and, or, not and parentheses. `crashlab list` shows the
        /// cells; selecting none is an error.
        #[arg(long, value_name = "EXPR", value_parser = parse_filter)]
        filter: Option<Filter>,
        /// `json`: one JSON event a line on stdout (docs/ci.md has the
        /// schema), the summary and progress on stderr.
        #[arg(long, value_enum, value_name = "FORMAT", default_value = "human")]
        message_format: MessageFormat,
        /// Colour the verdicts: `auto` on a terminal unless NO_COLOR is set.
        #[arg(long, value_enum, default_value = "auto")]
        color: ColorChoice,
        #[command(flatten)]
        run: RunFlags,
    },
    /// Show a scenario's cells (workload/strategy/fault) with their
    /// expectations, and the n/a pairs with the reason, without running
    /// anything.
    List {
        /// Scenario file (TOML); the built-in smoke scenario when none is
        /// given.
        scenario: Option<PathBuf>,
        /// Show only the cells this selects (the grammar of `run
        /// --filter`).
        #[arg(long, value_name = "EXPR", value_parser = parse_filter)]
        filter: Option<Filter>,
        /// `json`: one `planned` or `not-applicable` line per cell.
        #[arg(long, value_enum, value_name = "FORMAT", default_value = "human")]
        message_format: MessageFormat,
    },
    /// Join shard reports (report.json files, or directories holding one)
    /// into one report; exit 1 when a cell missed its expectation or a
    /// shard or cell is missing.
    Merge {
        /// The shards' report.json files, or the directories holding them.
        #[arg(required = true, value_name = "SHARD")]
        shards: Vec<PathBuf>,
        /// Directory for the merged reports.
        #[arg(long, required = true, value_name = "DIR")]
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
        /// `json`: one JSON event a line on stdout, the bench's progress
        /// and results (docs/ci.md has the schema); the summary on stderr.
        #[arg(long, value_enum, value_name = "FORMAT", default_value = "human")]
        message_format: MessageFormat,
        #[command(flatten)]
        run: RunFlags,
    },
    /// Search fault schedules for one that fails: schedules drawn from a
    /// seed over the scenario's [matrix] faults, each run through the
    /// oracle; a failing one is shrunk to the smallest that still fails at
    /// the --accept rate, printed as a [[schedule]] with its replay rate
    /// and stored in SCENARIO's regressions file, which the next explore
    /// runs first. Exits 1 when a schedule fails, 0 when none did.
    Explore(ExploreArgs),
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
    /// Re-render a stored report.json as JSON, Markdown, HTML or JUnit.
    Report {
        /// The report.json of a run (in its --out directory).
        report: PathBuf,
        /// What to render: Markdown, HTML, or JUnit XML for CI test views.
        #[arg(long, value_enum, default_value = "md")]
        format: Format,
        /// Write here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Compare a run against a baseline; exit 1 on regression.
    Compare {
        /// The baseline's report.json.
        base: PathBuf,
        /// The report.json of the run to judge against the baseline.
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
        /// Write the diff here (e.g. for a pull-request comment) instead
        /// of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// `md`: a Markdown diff for a pull request; `json`: the same
        /// comparison for a program (docs/ci.md has the schema).
        #[arg(long, value_enum, default_value = "md")]
        format: CompareFormat,
    },
    /// Check a scenario file without running it.
    Validate {
        /// Scenario file (TOML).
        scenario: PathBuf,
        /// Check that this selects some cell to run (the grammar of `run
        /// --filter`).
        #[arg(long, value_name = "EXPR", value_parser = parse_filter)]
        filter: Option<Filter>,
    },
    /// Build or list crashlab's workload images.
    Images {
        #[command(subcommand)]
        command: ImagesCommand,
    },
    /// Serve crashlab's fault filesystem to Docker as the `crashlab`
    /// volume driver (`docker volume create -d crashlab`), until SIGINT or
    /// SIGTERM.
    VolumeDriver {
        /// The unix socket Docker finds the driver by.
        #[arg(long, default_value = crashlab::plugin::SOCKET)]
        socket: PathBuf,
        /// Where the volumes live (default: `volume-driver` in the state
        /// directory).
        #[arg(long)]
        root: Option<PathBuf>,
    },
    /// Act on a volume of the `crashlab` volume driver.
    Volume {
        #[command(subcommand)]
        command: VolumeCommand,
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
        /// Debian mirror missing images would be built from.
        #[arg(long, env = "CRASHLAB_DEBIAN_MIRROR", default_value = DEFAULT_MIRROR)]
        mirror: String,
    },
    /// Print a shell completion script, e.g. `source <(crashlab
    /// completions bash)`.
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `crashlab man | man -l -`.
    Man {
        /// Write crashlab.1 and a page per subcommand (crashlab-run.1, ...)
        /// into DIR instead.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

/// `crashlab explore`'s arguments.
#[derive(clap::Args)]
struct ExploreArgs {
    /// Scenario file (TOML).
    scenario: PathBuf,
    /// How long to search, the stored schedules included, e.g. 10m.
    #[arg(long, default_value = "10m", value_parser = parse_budget)]
    budget: std::time::Duration,
    /// How long to shrink a failing schedule [default: the budget].
    #[arg(long, value_parser = parse_budget)]
    shrink_budget: Option<std::time::Duration>,
    /// The generator's seed [default: the scenario's].
    #[arg(long)]
    seed: Option<u64>,
    /// The strategy to run schedules on [default: the scenario's first
    /// that takes one of its faults].
    #[arg(long, value_parser = parse_strategy)]
    strategy: Option<crashlab::storage::Strategy>,
    /// At most this many faults a schedule.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=16))]
    max_faults: u32,
    /// Replays of each shrinking candidate, and of the result for its
    /// rate.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    replays: u32,
    /// The share of a candidate's replays that must fail for it to be
    /// taken, from 0.01 to 1.
    #[arg(long, default_value_t = 0.5, value_parser = parse_share)]
    accept: f64,
    /// Schedules (and a candidate's replays) run at once, each on a
    /// deployment of its own; the same seed draws the same schedules.
    #[arg(long, short = 'j', default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    jobs: u32,
    /// Do not write a found schedule into the regressions file.
    #[arg(long)]
    no_store: bool,
    /// Directory for the reports (report.json, .md, .html with the Explore
    /// section) [default: crashlab-results/<run id>].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Debian mirror for building missing images.
    #[arg(long, env = "CRASHLAB_DEBIAN_MIRROR", default_value = DEFAULT_MIRROR)]
    mirror: String,
}

impl ExploreArgs {
    fn options(self, quiet: bool) -> app::schedules::ExploreOptions {
        app::schedules::ExploreOptions {
            scenario: self.scenario,
            budget: self.budget,
            shrink_budget: self.shrink_budget,
            seed: self.seed,
            strategy: self.strategy,
            max_faults: self.max_faults,
            replays: self.replays,
            accept: self.accept,
            jobs: self.jobs,
            store: !self.no_store,
            out: self.out,
            quiet,
            mirror: self.mirror,
        }
    }
}

#[derive(Subcommand)]
enum VolumeCommand {
    /// Power loss: kill the containers using the volume, then drop every
    /// write and directory entry not yet durable.
    Cut {
        /// The volume, as `docker volume ls` names it.
        name: String,
        /// The driver's socket (another driver name, `--socket` of
        /// `crashlab volume-driver`).
        #[arg(long, default_value = crashlab::plugin::SOCKET)]
        socket: PathBuf,
    },
    /// Install a fault rule on the volume's current mount: `eio:fsync:1`,
    /// `eio:write:1+:/pg_wal/`, `enospc:1m`, `latency:fsync:20ms`.
    Fail {
        /// The volume, as `docker volume ls` names it.
        name: String,
        /// The rule, in the grammar of `[faults] rules` (`eio:fsync:1`).
        rule: String,
        /// The driver's socket (another driver name, `--socket` of
        /// `crashlab volume-driver`).
        #[arg(long, default_value = crashlab::plugin::SOCKET)]
        socket: PathBuf,
    },
    /// Write the crash states of what is unsynced on the volume now, each
    /// a directory a checker of your own can read (the volume must be
    /// created with `-o history=true`).
    States {
        /// The volume, as `docker volume ls` names it.
        name: String,
        /// The directory the states are written under (`state-NNN`, and
        /// `states.txt` naming each state).
        #[arg(long)]
        out: PathBuf,
        /// At most this many distinct states.
        #[arg(long, default_value_t = 16)]
        max: usize,
        /// The driver's socket (another driver name, `--socket` of
        /// `crashlab volume-driver`).
        #[arg(long, default_value = crashlab::plugin::SOCKET)]
        socket: PathBuf,
    },
    /// Serve one volume's mount (the driver starts this at the volume's
    /// first mount; not for use by hand).
    #[command(hide = true)]
    Hold {
        /// The volume's directory under the driver's root.
        dir: PathBuf,
    },
    /// Whether the volume is mounted, its unsynced bytes and operations,
    /// whether its power is cut, and the errors its rules injected.
    Status {
        /// The volume, as `docker volume ls` names it.
        name: String,
        /// The driver's socket (another driver name, `--socket` of
        /// `crashlab volume-driver`).
        #[arg(long, default_value = crashlab::plugin::SOCKET)]
        socket: PathBuf,
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
        /// Debian mirror the packages are read from.
        #[arg(long, env = "CRASHLAB_DEBIAN_MIRROR", default_value = DEFAULT_MIRROR)]
        mirror: String,
        /// How to bootstrap the base system: crashlab itself, or the host's
        /// debootstrap (needs it installed and root; kept for comparison).
        #[arg(long, value_enum, default_value = "archive")]
        via: ViaArg,
        /// How many images to build at once.
        #[arg(long, short = 'j', default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..))]
        jobs: u16,
    },
    /// Show each image and whether it is built.
    List,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ViaArg {
    /// crashlab reads and unpacks the Debian archive itself.
    Archive,
    /// The host's debootstrap.
    Debootstrap,
}

fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt().with_env_filter(log_filter(cli.quiet, cli.verbose)).with_writer(std::io::stderr).init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("crashlab: failed to start the async runtime: {e}");
            std::process::exit(exit::SETUP);
        }
    };
    let code = runtime.block_on(dispatch(cli.command, cli.quiet));
    std::process::exit(code);
}

/// What to log: CRASHLAB_LOG when set, else the level -q and -v ask for.
/// The FUSE library's own warnings (one per unsupported call) only show
/// from -vv on, and so do the broker and ZooKeeper clients' errors
/// (async-nats, lapin, zookeeper-client): they log each failed connection
/// or reconnect as one, and readiness probes meet many while a server
/// restarts.
fn log_filter(quiet: bool, verbose: u8) -> tracing_subscriber::EnvFilter {
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("CRASHLAB_LOG") {
        return filter;
    }
    let filter = match (quiet, verbose) {
        (true, _) => "error,async_nats=off,lapin=off,zookeeper_client=off",
        (false, 0) => "warn,fuser=error,async_nats=off,lapin=off,zookeeper_client=off",
        (false, 1) => "info,fuser=error,async_nats=off,lapin=off,zookeeper_client=off",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    filter.into()
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
    /// Debian mirror for building missing images.
    #[arg(long, env = "CRASHLAB_DEBIAN_MIRROR", default_value = DEFAULT_MIRROR)]
    mirror: String,
}

/// Writes to stdout; a reader that closed it early (`| head`) is no error.
fn print_all(bytes: &[u8]) {
    use std::io::Write as _;
    let _ = std::io::stdout().write_all(bytes);
}

fn parse_partition(s: &str) -> Result<Partition, String> {
    s.parse().map_err(|e: crashlab_reports::partition::PartitionError| e.to_string())
}

fn parse_budget(s: &str) -> Result<std::time::Duration, String> {
    crashlab::settings::parse_duration(s)
}

fn parse_strategy(s: &str) -> Result<crashlab::storage::Strategy, String> {
    crashlab::storage::Strategy::ALL
        .into_iter()
        .find(|st| st.as_str() == s)
        .ok_or_else(|| format!("unknown strategy `{s}`; `crashlab list` shows a scenario's"))
}

fn parse_share(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if (0.01..=1.0).contains(&x) => Ok(x),
        _ => Err(format!("`{s}` is not a share from 0.01 to 1")),
    }
}

fn parse_filter(s: &str) -> Result<Filter, String> {
    s.parse().map_err(|e: crashlab::scenario::filter::FilterError| e.to_string())
}

fn parse_profile(s: &str) -> Result<crashlab_reports::bench::Profile, String> {
    s.parse()
}

async fn dispatch(command: Command, quiet: bool) -> i32 {
    // Where a failure goes besides stderr: a program reading the JSON
    // stream learns why it ended without parsing text.
    let json = matches!(
        command,
        Command::Run { message_format: MessageFormat::Json, .. }
            | Command::List { message_format: MessageFormat::Json, .. }
            | Command::Bench { message_format: MessageFormat::Json, .. }
    );
    let result = match command {
        Command::Run {
            scenario,
            compose,
            service,
            env_file,
            jobs,
            partition,
            color,
            filter,
            message_format,
            run: RunFlags { out, keep, mirror },
        } => {
            crashlab::report::set_color(color);
            let compose = compose.map(|file| app::ComposeTarget { file, service, env_file });
            let options =
                RunOptions { scenario, out, keep, quiet, mirror, jobs, partition, compose, filter, message_format };
            app::run(options).await
        }
        Command::List { scenario, filter, message_format } => {
            crashlab::app::listing::list(scenario.as_deref(), filter, message_format)
        }
        Command::Merge { shards, out } => app::merge(&shards, &out),
        Command::Explore(args) => app::schedules::explore(args.options(quiet)).await,
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
            message_format,
            run: RunFlags { out, keep, mirror },
        } => {
            let flags = crashlab::bench::BenchFlags { strategies, profiles, seconds, rounds, no_fio, no_workload };
            app::bench(app::BenchOptions { definition, flags, out, keep, quiet, mirror, message_format }).await
        }
        Command::Validate { scenario, filter } => app::validate(&scenario, filter),
        Command::Images { command: ImagesCommand::Build { names, mirror, via, jobs } } => {
            let via = match via {
                ViaArg::Archive => Via::Archive,
                ViaArg::Debootstrap => Via::Debootstrap,
            };
            app::build_images(&names, &mirror, quiet, via, usize::from(jobs)).await.map(|()| exit::PASS)
        }
        Command::Report { report, format, out } => {
            app::render_report(&report, format, out.as_deref()).map(|()| exit::PASS)
        }
        Command::Compare { base, new, max_throughput_drop, max_p99_rise, max_recovery_rise, out, format } => {
            let thresholds = Thresholds { max_throughput_drop, max_p99_rise, max_recovery_rise };
            app::compare_reports(&base, &new, thresholds, out.as_deref(), format)
        }
        Command::Images { command: ImagesCommand::List } => app::list_images().await.map(|()| exit::PASS),
        Command::Clean { replays } => app::clean(replays).await.map(|()| exit::PASS),
        Command::VolumeDriver { socket, root } => {
            app::volume::serve(&socket, &root.unwrap_or_else(app::volume::default_root)).await
        }
        Command::Volume { command: VolumeCommand::Cut { name, socket } } => app::volume::cut(&name, &socket).await,
        Command::Volume { command: VolumeCommand::Hold { dir } } => app::volume::hold(&dir).await,
        Command::Volume { command: VolumeCommand::States { name, out, max, socket } } => {
            app::volume::states(&name, &out, max, &socket).await
        }
        Command::Volume { command: VolumeCommand::Fail { name, rule, socket } } => {
            app::volume::fail(&name, &rule, &socket).await
        }
        Command::Volume { command: VolumeCommand::Status { name, socket } } => {
            app::volume::status(&name, &socket).await
        }
        Command::Doctor { mirror } => Ok(app::doctor(&mirror).await),
        Command::Completions { shell } => {
            // Into a buffer first: the generator panics when its writer
            // fails, as stdout does under `| head`.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "crashlab", &mut script);
            print_all(&script);
            Ok(exit::PASS)
        }
        Command::Man { out } => return man(out.as_deref()),
    };
    result.unwrap_or_else(|e| {
        eprintln!("crashlab: {e}");
        if let Some(hint) = e.hint() {
            eprintln!("hint: {hint}");
        }
        if json {
            let line = Line::Error { message: e.to_string(), hint: e.hint(), exit_code: e.exit_code() };
            JsonEvents::stdout("").emit(&line);
        }
        e.exit_code()
    })
}

/// `crashlab man [--out DIR]`: the manual page on stdout, or every page
/// into DIR.
fn man(out: Option<&std::path::Path>) -> i32 {
    let written = match out {
        Some(dir) => std::fs::create_dir_all(dir).and_then(|()| clap_mangen::generate_to(Cli::command(), dir)),
        None => {
            let mut page = Vec::new();
            let rendered = clap_mangen::Man::new(Cli::command()).render(&mut page);
            print_all(&page);
            rendered
        }
    };
    match written {
        Ok(()) => exit::PASS,
        Err(e) => {
            let into = out.map_or("stdout".to_owned(), |d| d.display().to_string());
            eprintln!("crashlab: failed to write the manual pages to {into}: {e}");
            exit::SETUP
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    /// Every argument of every subcommand says what it is in `--help`.
    #[test]
    fn every_argument_has_help_text() {
        fn undocumented(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    out.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_about().is_none() {
                    out.push(format!("{path} {} (the subcommand)", sub.get_name()));
                }
                undocumented(sub, &format!("{path} {}", sub.get_name()), out);
            }
        }
        let mut missing = Vec::new();
        let mut cmd = Cli::command();
        cmd.build();
        undocumented(&cmd, "crashlab", &mut missing);
        assert!(missing.is_empty(), "arguments without help: {missing:?}");
    }

    #[test]
    fn quiet_is_global_and_still_taken_after_the_subcommand() {
        for args in [["crashlab", "-q", "run"], ["crashlab", "run", "-q"], ["crashlab", "run", "--quiet"]] {
            assert!(Cli::try_parse_from(args).unwrap().quiet, "{args:?}");
        }
        let cli = Cli::try_parse_from(["crashlab", "images", "build", "redis", "-q"]).unwrap();
        assert!(cli.quiet);
        assert_eq!(Cli::try_parse_from(["crashlab", "list", "-vv"]).unwrap().verbose, 2);
        assert!(Cli::try_parse_from(["crashlab", "run", "-q", "-v"]).is_err());
    }

    #[test]
    fn a_bad_filter_is_a_usage_error_naming_the_column() {
        let e = Cli::try_parse_from(["crashlab", "run", "--filter", "fault=restart and strat=tmpfs"])
            .err()
            .expect("refused");
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("at column 19: unknown key `strat`"), "{e}");
    }
}
