//! What the subcommands do, with their errors mapped to exit codes. The
//! binary only parses arguments and calls in here.

pub mod doctor;
pub mod listing;
pub mod volume;
use crate::cycle::Runner;
use crate::docker::{Docker, DockerError, docker_host};
use crate::images::{self, ArchiveError, BuildOptions, ImageError, ImageStatus, Via};
use crate::report::json_events::{JsonEvents, Line, MessageFormat, ReportPaths, Tee};
use crate::report::{self, Terminal};
use crate::run::{self, RunContext};
use crate::scenario::{Scenario, ScenarioError};
use crate::storage::Strategy;
use crate::text::error_chain;
use crate::workload::workload_for;
use crashlab_reports::merge::MergeError;
use crashlab_reports::partition::Partition;
use crashlab_reports::{Execution, Report, SCHEMA_VERSION};
use futures_util::FutureExt as _;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio::signal::unix::{Signal, SignalKind};
use tokio::sync::watch;

/// Writes a line to stderr, ignoring failure: a closed terminal must not
/// abort a run before it has cleaned up.
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

pub mod schedules;

/// Exit codes, stable for CI.
pub mod exit {
    /// Every cell met its expectation.
    pub const PASS: i32 = 0;
    /// Some cell did not meet its expectation.
    pub const MISS: i32 = 1;
    /// Usage or setup error: bad scenario, no daemon, missing image or tool.
    pub const SETUP: i32 = 2;
    /// Interrupted by Ctrl-C (SIGINT, 128 + 2); everything created was
    /// removed.
    pub const INTERRUPTED: i32 = 130;
    /// Stopped by SIGTERM (128 + 15: CI cancellation, `timeout`, systemd);
    /// everything created was removed.
    pub const TERMINATED: i32 = 143;
    /// Stopped by SIGHUP (128 + 1: the terminal or session went away);
    /// everything created was removed.
    pub const HANGUP: i32 = 129;

    /// The signal an exit code above stands for, as reports name it.
    pub fn signal(code: i32) -> Option<&'static str> {
        match code {
            INTERRUPTED => Some("SIGINT"),
            TERMINATED => Some("SIGTERM"),
            HANGUP => Some("SIGHUP"),
            _ => None,
        }
    }
}

/// An error that ends a command, with the exit code and a hint.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("invalid scenario: {0}")]
    Scenario(#[from] ScenarioError),
    #[error("{0}")]
    Compose(#[from] crate::compose::ComposeError),
    #[error("{}", .0.describe())]
    Bench(#[from] crate::bench::BenchError),
    #[error("cannot reach the Docker daemon at {host}: {detail}")]
    NoDaemon { host: String, detail: String },
    #[error("failed to {}", error_chain(.0))]
    Docker(#[from] DockerError),
    #[error("failed to {}", error_chain(.0))]
    Image(#[from] ImageError),
    #[error("read report {}: {detail}", path.display())]
    BadReport { path: PathBuf, detail: String },
    #[error("nothing to run: every cell of scenario {scenario} is n/a ({})", reasons.join("; "))]
    NothingToRun { scenario: String, reasons: Vec<String> },
    #[error("nothing to run: --filter `{filter}` selects no cell of scenario {scenario}")]
    NothingSelected { scenario: String, filter: String },
    #[error("image {0} is not present and no registry is assumed reachable")]
    MissingImage(String),
    #[error("failed to {}", error_chain(.0))]
    Agent(#[from] crate::deploy::agent::AgentError),
    #[error("btrfs-snapshot cannot run here: failed to {}", error_chain(.0))]
    Btrfs(#[from] crate::storage::btrfs::BtrfsError),
    #[error("volume driver `{driver}` cannot hold this run's data: failed to {detail}")]
    VolumeDriver { driver: String, detail: String },
    #[error("volume driver: failed to {0}")]
    Plugin(String),
    #[error("failed to install the signal handlers: {0}")]
    Signals(#[source] std::io::Error),
    #[error("failed to {}", error_chain(.0))]
    Clean(#[from] crate::cleanup::CleanError),
    #[error("failed to {}", error_chain(.0))]
    Merge(#[from] MergeError),
    #[error("failed to {}", error_chain(.0))]
    Replay(#[from] crate::replay::ReplayError),
    #[error("failed to {what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl AppError {
    pub fn exit_code(&self) -> i32 {
        exit::SETUP
    }

    /// What the user can do about it, when there is something.
    pub fn hint(&self) -> Option<String> {
        match self {
            AppError::NoDaemon { .. } => Some(
                "start the daemon (`sudo systemctl start docker`, or `sudo dockerd &` where systemd is absent), \
                 or set DOCKER_HOST to a running one"
                    .into(),
            ),
            AppError::MissingImage(tag) => {
                Some(format!("pull or load {tag} into the daemon first, or drop `image` to use crashlab's own"))
            }
            AppError::Image(ImageError::NoDebootstrap) => Some("then run `crashlab images build NAME` again".into()),
            AppError::Image(ImageError::Archive {
                source: ArchiveError::Fetch { .. } | ArchiveError::Status { .. },
                ..
            }) => Some(
                "check that the Debian mirror is reachable, or name another with --mirror or CRASHLAB_DEBIAN_MIRROR"
                    .into(),
            ),
            AppError::Image(ImageError::Archive {
                source: ArchiveError::Signature { .. } | ArchiveError::Hash { .. },
                ..
            }) => {
                Some("the mirror served files Debian's archive keys do not vouch for; try another with --mirror".into())
            }
            AppError::Scenario(_) => Some("see scenarios/smoke.toml for a complete example".into()),
            AppError::Compose(_) => {
                Some("see scenarios/compose/docker-compose.yml and docs/compose.md for what a service needs".into())
            }
            AppError::NothingToRun { .. } => {
                Some("choose faults the strategies can take (docs/scenarios.md lists which pairs run)".into())
            }
            AppError::NothingSelected { .. } => {
                Some("`crashlab list SCENARIO` shows the plan's cells, as workload/strategy/fault".into())
            }
            AppError::Agent(e) => Some(e.hint().into()),
            AppError::VolumeDriver { driver, .. } => Some(format!(
                "install the plugin (`docker plugin install`, or its socket or spec under /run/docker/plugins or \
                 /etc/docker/plugins) or change the options; `docker volume create -d {driver} -o KEY=VALUE` shows \
                 what Docker answers"
            )),
            AppError::Merge(MergeError::Empty) => None,
            AppError::Merge(_) => Some(
                "merge the shards of one scenario file and seed, all run with the same --partition scheme and count"
                    .into(),
            ),
            AppError::Bench(crate::bench::BenchError::Definition(_)) => {
                Some("see scenarios/bench.toml for a complete example".into())
            }
            AppError::Bench(crate::bench::BenchError::Agent(e)) => Some(e.hint().into()),
            AppError::Replay(crate::replay::ReplayError::NotKept { .. }) => Some(
                "copy the command from the report's crash-states section (report.md: `replay:`); only the first \
                 failing crash point of a cycle is kept, in the state directory of the run (CRASHLAB_STATE_DIR)"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// Connects to the daemon, turning a failure into the hint-carrying error.
pub async fn connect() -> Result<Docker, AppError> {
    Docker::connect().await.map_err(|e| AppError::NoDaemon {
        host: docker_host(),
        detail: std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_else(|| e.to_string()),
    })
}

/// Options of `crashlab run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub scenario: Option<PathBuf>,
    pub out: Option<PathBuf>,
    pub keep: bool,
    pub quiet: bool,
    pub mirror: String,
    /// Cells run at once (`--jobs`).
    pub jobs: usize,
    /// Run only this shard of the plan (`--partition`).
    pub partition: Option<Partition>,
    /// Test a service of a Compose file instead of a scenario
    /// (`--compose FILE --service S`).
    pub compose: Option<ComposeTarget>,
    /// Run only the cells this selects (`--filter`).
    pub filter: Option<crate::scenario::filter::Filter>,
    /// `--message-format`: with `Json`, stdout carries the event stream.
    pub message_format: MessageFormat,
}

/// `--compose FILE [--service S]`.
#[derive(Debug, Clone)]
pub struct ComposeTarget {
    pub file: PathBuf,
    /// The service; the file's only one when absent.
    pub service: Option<String>,
    /// `--env-file`: the file's variables from here instead of `.env`.
    pub env_file: Option<PathBuf>,
}

/// Parses `--jobs`: a count of at least 1, or `auto` for the number of
/// CPUs this process may use.
pub fn parse_jobs(s: &str) -> Result<usize, String> {
    if s == "auto" {
        return Ok(std::thread::available_parallelism().map_or(1, |n| n.get()));
    }
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("`{s}` is not a number of cells of at least 1, nor `auto`")),
    }
}

fn build_options(mirror: &str, quiet: bool, via: Via) -> BuildOptions {
    let state = run::state_dir();
    BuildOptions {
        mirror: mirror.to_owned(),
        cache_dir: state.join("packages"),
        work_dir: state.join("build"),
        quiet,
        via,
        bars: indicatif::MultiProgress::new(),
    }
}

/// Makes sure `image` exists: crashlab's own images (by their own tag or
/// under `CRASHLAB_IMAGE_REPO`) are built as `image` when missing, as
/// `crashlab images build` builds them; any other image must already be
/// there.
pub async fn ensure_image(docker: &Docker, image: &str, mirror: &str, quiet: bool) -> Result<(), AppError> {
    match images::recipe_of(image) {
        Some(recipe) => {
            match images::status_as(docker, recipe, image).await? {
                ImageStatus::Current => {}
                ImageStatus::Stale => {
                    note!(
                        "note: {image} was built from an older recipe; `crashlab images build {}` refreshes it",
                        recipe.name
                    )
                }
                ImageStatus::Missing => {
                    note!("{image} is missing; building it from Debian packages (about a minute)");
                    images::build_missing(docker, recipe, image, &build_options(mirror, quiet, Via::Archive)).await?;
                }
            }
            Ok(())
        }
        None if docker.image(image).await?.is_some() => Ok(()),
        None => Err(AppError::MissingImage(image.to_owned())),
    }
}

/// Gives a workload that names no image crashlab's own under
/// `CRASHLAB_IMAGE_REPO` ([`images::resolve`]), the image `crashlab images
/// build` builds with the same variable; an image the scenario names is
/// the user's and stays.
fn with_image_repo(section: &mut crate::settings::WorkloadSection) {
    if section.image.is_none() {
        let default = workload_for(section).container().image;
        let resolved = images::resolve(&default);
        if resolved != default {
            section.image = Some(resolved);
        }
    }
}

/// Options of `crashlab bench`.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub definition: Option<PathBuf>,
    pub flags: crate::bench::BenchFlags,
    pub out: Option<PathBuf>,
    pub keep: bool,
    pub quiet: bool,
    pub mirror: String,
    /// `--message-format`: with `Json`, stdout carries the event stream.
    pub message_format: MessageFormat,
}

/// `crashlab bench`: returns the exit code (0 when every backend was
/// measured and every profile agreed with fio, 1 otherwise).
pub async fn bench(options: BenchOptions) -> Result<i32, AppError> {
    use crate::bench::{self, BenchDefinition, BenchError, BenchSettings};
    let mut stop = Stop::listen()?;
    let mut definition = match &options.definition {
        Some(path) => BenchDefinition::load(path).map_err(BenchError::from)?,
        None => BenchDefinition::parse(bench::definition::DEFAULT, "scenarios/bench.toml (built in)")
            .map_err(BenchError::from)?,
    };
    definition.apply(&options.flags).map_err(BenchError::from)?;
    if let Some(section) = definition.workload.as_mut() {
        with_image_repo(section);
    }
    let agent = bench::find_agent()?;
    let docker = connect().await?;
    ensure_image(&docker, &images::resolve(crashlab_workloads::fio::IMAGE), &options.mirror, options.quiet).await?;
    if let Some(section) = &definition.workload {
        let image = bench::workload_image(section);
        ensure_image(&docker, &image, &options.mirror, options.quiet).await?;
    }
    let state = run::state_dir();
    let ctx = RunContext::create(&state).map_err(|source| AppError::Io {
        what: "create the run directory under",
        path: state.clone(),
        source,
    })?;
    if !options.quiet {
        let io = &definition.io;
        note!(
            "bench {}: {} backends × {} profiles × {} rounds{}, {:.1} s a run{}",
            ctx.id(),
            definition.strategies.len(),
            io.profiles.len(),
            io.rounds,
            if io.fio { " × (crashlab, fio)" } else { "" },
            io.seconds.as_secs_f64(),
            definition.workload.as_ref().map_or(String::new(), |w| format!(
                ", then {} load {}",
                w.kind.as_str(),
                humanize(w.load)
            ))
        );
    }
    let settings =
        BenchSettings { quiet: options.quiet, keep: options.keep, agent, message_format: options.message_format };
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let work = bench::execute(&docker, &ctx, &definition, &settings, cancel_rx);
    let (report, stopped) = match supervise(&mut stop, &cancel_tx, work).await {
        Supervised::Done { value, stopped } => (value?, stopped),
        Supervised::Abandoned(code) => {
            if !options.keep {
                let _ = bench::cleanup(&docker, &ctx).await;
            }
            return Ok(code);
        }
        Supervised::Panicked(panic) => {
            if !options.keep {
                let _ = bench::cleanup(&docker, &ctx).await;
            }
            std::panic::resume_unwind(panic)
        }
    };
    let out = options.out.clone().unwrap_or_else(|| PathBuf::from("crashlab-results").join(&report.run_id));
    publish_as(&report, Some(out.clone()), bench::summary, options.message_format)?;
    let code = match stopped {
        Some(code) => code,
        None if report.passed() => exit::PASS,
        None => exit::MISS,
    };
    if options.message_format == MessageFormat::Json {
        JsonEvents::stdout("").emit(&Line::BenchFinished {
            run_id: &report.run_id,
            passed: report.passed(),
            exit_code: code,
            duration_s: report.duration_s,
            reports: ReportPaths::in_dir(&out),
        });
    }
    Ok(code)
}

/// The signals that stop a run or a bench: Ctrl-C (SIGINT), SIGTERM (CI
/// cancellation, `timeout`, systemd) and SIGHUP (the terminal went away).
/// Once listened for, none of them kills the process: the first asks the
/// work to stop between steps, the second abandons it, and either way what
/// it created is removed.
struct Stop {
    int: Signal,
    term: Signal,
    hup: Signal,
}

impl Stop {
    /// Installs the handlers. Done first thing, so that a signal that comes
    /// while the images are checked cannot kill the process the default
    /// way once anything exists.
    fn listen() -> Result<Stop, AppError> {
        let install = |kind| tokio::signal::unix::signal(kind).map_err(AppError::Signals);
        Ok(Stop {
            int: install(SignalKind::interrupt())?,
            term: install(SignalKind::terminate())?,
            hup: install(SignalKind::hangup())?,
        })
    }

    /// The next signal: its exit code and how to name it to the user.
    async fn next(&mut self) -> (i32, &'static str) {
        tokio::select! {
            _ = self.int.recv() => (exit::INTERRUPTED, "interrupted"),
            _ = self.term.recv() => (exit::TERMINATED, "terminated (SIGTERM)"),
            _ = self.hup.recv() => (exit::HANGUP, "hung up (SIGHUP)"),
        }
    }
}

/// How supervised work ended.
enum Supervised<T> {
    /// It returned; `stopped` is the exit code of the signal that asked it
    /// to stop early, if one did.
    Done { value: T, stopped: Option<i32> },
    /// A second signal came before it returned; it was dropped (its fault
    /// filesystems detached on drop), and the caller must clean up. The
    /// code is the first signal's.
    Abandoned(i32),
    /// It panicked; the caller must clean up, then resume the panic.
    Panicked(Box<dyn std::any::Any + Send>),
}

/// How long after the first signal another one is still the same request
/// delivered twice rather than a second request. `timeout` sends its
/// signal to the child and then to the child's whole process group, and a
/// terminal's Ctrl-C reaches every process of the foreground group, so one
/// request can arrive twice: microseconds apart, or more on a busy machine
/// where the sender is preempted between its two `kill` calls. Taken as a
/// second request, it abandoned the run, and no report was written.
const SAME_REQUEST_WITHIN: std::time::Duration = std::time::Duration::from_secs(1);

/// Drives `work` while listening to `stop`: the first signal sends `true`
/// on `cancel`, a second one (after [`SAME_REQUEST_WITHIN`]) abandons the
/// work, and a panic in it is caught so that the caller can still remove
/// what the run created.
async fn supervise<T>(
    stop: &mut Stop,
    cancel: &watch::Sender<bool>,
    work: impl std::future::Future<Output = T>,
) -> Supervised<T> {
    let work = std::panic::AssertUnwindSafe(work).catch_unwind();
    tokio::pin!(work);
    let mut first: Option<(i32, Instant)> = None;
    loop {
        tokio::select! {
            result = &mut work => return match result {
                Ok(value) => Supervised::Done { value, stopped: first.map(|(code, _)| code) },
                Err(panic) => Supervised::Panicked(panic),
            },
            (code, what) = stop.next() => match first {
                Some((_, at)) if at.elapsed() < SAME_REQUEST_WITHIN => {}
                Some((first, _)) => {
                    note!("{what} again: stopping at once; removing what was created, without a report");
                    return Supervised::Abandoned(first);
                }
                None => {
                    first = Some((code, Instant::now()));
                    let _ = cancel.send(true);
                    note!("\n{what}: finishing the current step, then cleaning up (send it again to stop at once)");
                }
            },
        }
    }
}

/// Writes every rendering of `report` to `out` (by default
/// `crashlab-results/<run id>`) and prints `summary` of it and where the
/// files went.
fn publish(report: &Report, out: Option<PathBuf>, summary: fn(&Report, bool) -> String) -> Result<(), AppError> {
    publish_as(report, out, summary, MessageFormat::Human)
}

/// [`publish`], with the summary on stderr when stdout carries the JSON
/// stream.
fn publish_as(
    report: &Report,
    out: Option<PathBuf>,
    summary: fn(&Report, bool) -> String,
    format: MessageFormat,
) -> Result<(), AppError> {
    use std::io::{IsTerminal as _, Write as _};
    let out = out.unwrap_or_else(|| PathBuf::from("crashlab-results").join(&report.run_id));
    report::write_files(report, &out).map_err(|source| AppError::Io {
        what: "write the reports to",
        path: out.clone(),
        source,
    })?;
    let text = |color| format!("{}reports: {}", summary(report, color), out.display());
    let _ = match format {
        MessageFormat::Human => {
            writeln!(std::io::stdout(), "{}", text(report::use_color(std::io::stdout().is_terminal())))
        }
        MessageFormat::Json => {
            writeln!(std::io::stderr(), "{}", text(report::use_color(std::io::stderr().is_terminal())))
        }
    };
    Ok(())
}

/// What `run` runs: the scenario (a file's, the smoke one, or a Compose
/// service's translation), with `--filter` applied, and the daemon.
struct Target {
    docker: Docker,
    scenario: Scenario,
    /// For `--compose`: the file's service and its translation.
    compose: Option<(crate::compose::ServicePlan, crate::compose::Translation)>,
}

/// Reads what `options` say to run, checking all that can be checked
/// before the daemon is asked anything.
async fn target(options: &RunOptions) -> Result<Target, AppError> {
    let Some(target) = &options.compose else {
        let mut scenario = match &options.scenario {
            Some(path) => {
                let mut scenario = Scenario::load(path)?;
                let added = schedules::with_regressions(&mut scenario, path)?;
                if added > 0 {
                    note!(
                        "{added} stored schedule(s) of {} run as cells too",
                        schedules::regressions_path(path).display()
                    );
                }
                scenario
            }
            None => Scenario::parse(crate::scenario::SMOKE, "scenarios/smoke.toml (built in)")?,
        };
        scenario.filter = options.filter.clone();
        with_image_repo(&mut scenario.workload);
        runnable(&scenario)?;
        return Ok(Target { docker: connect().await?, scenario, compose: None });
    };
    let plan = crate::compose::load(&target.file, target.service.as_deref(), target.env_file.as_deref())?;
    // Every error the translation can find, before the daemon is asked
    // anything; the image's volumes only move the strategy.
    plan.translate(&[])?;
    let docker = connect().await?;
    // The image decides where unmounted data lives (its VOLUMEs), so it
    // must be there before the translation.
    ensure_image(&docker, &plan.image, &options.mirror, options.quiet).await?;
    let volumes = docker.image(&plan.image).await?.and_then(|i| i.config).and_then(|c| c.volumes).unwrap_or_default();
    let t = plan.translate(&volumes)?;
    let beside: Vec<String> = t.scenario.matrix.strategies[1..].iter().map(|s| s.to_string()).collect();
    note!(
        "compose: service `{}` of {} keeps its data on {} (your configuration); beside it: {}",
        plan.service,
        plan.origin,
        t.yours,
        if beside.is_empty() { "nothing (`alternatives` names none)".to_owned() } else { beside.join(", ") }
    );
    for n in &t.notes {
        note!("compose: note: {n}");
    }
    let mut scenario = t.scenario.clone();
    scenario.filter = options.filter.clone();
    runnable(&scenario)?;
    Ok(Target { docker, scenario, compose: Some((plan, t)) })
}

/// `crashlab run`: returns the exit code.
pub async fn run(options: RunOptions) -> Result<i32, AppError> {
    let mut stop = Stop::listen()?;
    let Target { docker, scenario, compose } = target(&options).await?;
    let settings = RunSettings {
        keep: options.keep,
        quiet: options.quiet,
        state_dir: run::state_dir(),
        jobs: options.jobs,
        partition: options.partition,
        message_format: options.message_format,
    };
    ensure_images(&docker, &scenario, &options.mirror, options.quiet).await?;

    // A signal asks the runner to stop between steps; a second one stops
    // it at once, and so does a panic. Either way the run is cleaned up:
    // by `execute` itself, or below from its journal.
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let work = execute(&docker, &scenario, &settings, cancel_rx);
    let abandoned = |settings: &RunSettings| {
        let run_id = latest_run(&settings.state_dir).filter(|_| !settings.keep);
        let (docker, state) = (docker.clone(), settings.state_dir.clone());
        async move {
            if let Some(id) = run_id
                && let Ok(cleaned) = crate::cleanup::cleanup_run(&docker, &state, &id).await
            {
                for refusal in cleaned.refused {
                    note!("warning: {refusal}");
                }
            }
        }
    };
    let (outcome, stopped) = match supervise(&mut stop, &cancel_tx, work).await {
        Supervised::Done { value, stopped } => (value?, stopped),
        Supervised::Abandoned(code) => {
            abandoned(&settings).await;
            return Ok(code);
        }
        Supervised::Panicked(panic) => {
            abandoned(&settings).await;
            std::panic::resume_unwind(panic)
        }
    };
    let mut report = outcome.report;
    if let Some(execution) = report.execution.as_mut() {
        execution.interrupted = stopped.and_then(exit::signal).map(str::to_owned);
    }
    let out = options.out.clone().unwrap_or_else(|| PathBuf::from("crashlab-results").join(&report.run_id));
    if let Some((plan, t)) = &compose {
        report.compose = Some(crashlab_reports::ComposeOrigin {
            file: plan.origin.clone(),
            service: plan.service.clone(),
            strategy: t.yours.to_string(),
            notes: t.notes.clone(),
        });
    }
    publish_as(&report, Some(out.clone()), report::summary, options.message_format)?;
    if let Some((_, t)) = &compose {
        // The equivalent scenario beside the reports, to rerun or edit.
        let path = out.join("scenario.toml");
        std::fs::write(&path, &t.toml).map_err(|source| AppError::Io { what: "write", path, source })?;
    }
    let code = match stopped {
        Some(code) => code,
        None if outcome.complete && report.passed() => exit::PASS,
        None => exit::MISS,
    };
    if options.message_format == MessageFormat::Json {
        let missed = report.cells.iter().filter(|c| !c.passed).count();
        JsonEvents::stdout(scenario.workload.kind.as_str()).emit(&Line::RunFinished {
            run_id: &report.run_id,
            cells: report.cells.len(),
            passed: report.cells.len() - missed,
            missed,
            complete: outcome.complete,
            exit_code: code,
            duration_s: report.duration_s,
            reports: ReportPaths::in_dir(&out),
        });
    }
    Ok(code)
}

/// Makes sure every image a scenario's cells run is there (see
/// [`ensure_image`]).
async fn ensure_images(docker: &Docker, scenario: &Scenario, mirror: &str, quiet: bool) -> Result<(), AppError> {
    ensure_image(docker, &workload_for(&scenario.workload).container().image, mirror, quiet).await?;
    let mut images: Vec<&str> = scenario.matrix.strategies.iter().flat_map(|s| s.def().sidecar_images()).collect();
    images.sort_unstable();
    images.dedup();
    for image in images {
        ensure_image(docker, image, mirror, quiet).await?;
    }
    Ok(())
}

/// Options of `crashlab replay`.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// A run's replay directory or a run id.
    pub target: String,
    pub cell: Option<String>,
    pub cycle: u32,
    pub point: u32,
    /// The state to replay; the point's first failing one by default.
    pub state: Option<String>,
    pub keep: bool,
    pub mirror: String,
}

/// `crashlab replay`: checks one crash state of a kept crash point again
/// in a run of its own, prints the verdict and returns 0 when the state is
/// intact, 1 when it is not. With `keep` the container stays up.
pub async fn replay(options: ReplayOptions) -> Result<i32, AppError> {
    let mut stop = Stop::listen()?;
    let state = run::state_dir();
    let dir = crate::replay::locate(&options.target, &state, options.cell.as_deref(), options.cycle, options.point)?;
    let meta = crate::replay::read_meta(&dir)?;
    let workload = meta
        .workload
        .section()
        .map(|s| workload_for(&s))
        .map_err(|detail| AppError::BadReport { path: dir.join("replay.json"), detail })?;
    let docker = connect().await?;
    ensure_image(&docker, &workload.container().image, &options.mirror, false).await?;
    if workload.agent_dir().is_some() {
        crate::deploy::agent::locate()?;
    }
    let ctx = RunContext::create(&state).map_err(|source| AppError::Io {
        what: "create the run directory under",
        path: state.clone(),
        source,
    })?;
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let journaled = docker.journaled(ctx.journal().clone());
    let work = crate::replay::replay(&journaled, &ctx, &dir, options.state.as_deref(), options.keep, &cancel_rx);
    let supervised = supervise(&mut stop, &cancel_tx, work).await;
    let clean = |keep: bool| {
        let (docker, state, id) = (docker.clone(), state.clone(), ctx.id().to_owned());
        async move {
            if keep {
                return;
            }
            match crate::cleanup::cleanup_run(&docker, &state, &id).await {
                Ok(cleaned) => cleaned.refused.iter().for_each(|refusal| note!("warning: {refusal}")),
                Err(e) => note!("warning: cleanup of run {id} failed: {}; run `crashlab clean`", error_chain(&e)),
            }
        }
    };
    let (replayed, stopped) = match supervised {
        Supervised::Done { value, stopped } => {
            clean(options.keep).await;
            (value?, stopped)
        }
        Supervised::Abandoned(code) => {
            clean(false).await;
            return Ok(code);
        }
        Supervised::Panicked(panic) => {
            clean(false).await;
            std::panic::resume_unwind(panic)
        }
    };
    use std::io::Write as _;
    let mut out = std::io::stdout();
    let _ = writeln!(
        out,
        "state `{}` of {} cycle {}, crash point {} ({}) of run {}: {}{}{}",
        replayed.state,
        meta.cell,
        meta.cycle,
        meta.point,
        meta.at,
        meta.run_id,
        replayed.verdict,
        if replayed.detail.is_empty() { "" } else { ": " },
        replayed.detail
    );
    if replayed.state == meta.state {
        let same = if replayed.verdict == meta.verdict { "reproduced" } else { "NOT reproduced" };
        let _ = writeln!(out, "the run found it {}: {} ({same})", meta.verdict, meta.detail);
    }
    if let Some((container, addr)) = &replayed.kept {
        let _ = writeln!(out, "--keep: container {container} of run {} is left running", ctx.id());
        if let Some(addr) = addr {
            let _ = writeln!(out, "  the server listens on {addr}");
        }
        for line in crate::replay::how_to_enter(&meta.workload.kind, container) {
            let _ = writeln!(out, "  {line}");
        }
        let _ = writeln!(
            out,
            "  remove it with `crashlab clean` (with CRASHLAB_STATE_DIR={} if that is not the default)",
            state.display()
        );
    }
    Ok(match stopped {
        Some(code) => code,
        None if replayed.verdict == crashlab_reports::Verdict::Intact => exit::PASS,
        None => exit::MISS,
    })
}

/// The scenario's plan: the cells that run and the `n/a` ones. An empty
/// plan is an error: it is no evidence of anything, never "0 of 0 met".
pub fn runnable(
    scenario: &Scenario,
) -> Result<(Vec<crate::scenario::Cell>, Vec<crashlab_reports::Unsupported>), AppError> {
    let (cells, unsupported) = scenario.plan();
    if let Some(filter) = &scenario.filter
        && cells.is_empty()
        && unsupported.is_empty()
    {
        return Err(AppError::NothingSelected { scenario: scenario.name.clone(), filter: filter.to_string() });
    }
    if cells.is_empty() {
        let mut reasons: Vec<String> = Vec::new();
        for u in &unsupported {
            let reason = format!("{} × {}: {}", u.strategy, u.fault, u.reason);
            if !reasons.contains(&reason) {
                reasons.push(reason);
            }
        }
        return Err(AppError::NothingToRun { scenario: scenario.name.clone(), reasons });
    }
    Ok((cells, unsupported))
}

/// `crashlab validate FILE [--filter F]`: parses the scenario and checks
/// that it plans something to run (of what `filter` selects).
pub fn validate(path: &Path, filter: Option<crate::scenario::filter::Filter>) -> Result<i32, AppError> {
    let mut scenario = Scenario::load(path)?;
    schedules::with_regressions(&mut scenario, path)?;
    scenario.filter = filter;
    let (cells, unsupported) = runnable(&scenario)?;
    println!(
        "{}: ok, {} cells × {} cycles{}",
        path.display(),
        cells.len(),
        scenario.matrix.cycles,
        if unsupported.is_empty() { String::new() } else { format!(" ({} more n/a)", unsupported.len()) }
    );
    Ok(exit::PASS)
}

/// How to run a scenario, apart from the scenario itself.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// Leave everything created in place.
    pub keep: bool,
    pub quiet: bool,
    /// Where run directories (and bind mounts) go.
    pub state_dir: PathBuf,
    /// Cells run at once; 1 runs them one after the other.
    pub jobs: usize,
    /// Run only this shard of the plan.
    pub partition: Option<Partition>,
    /// With `Json`, the run's events go to stdout as JSON lines.
    pub message_format: MessageFormat,
}

impl RunSettings {
    /// One cell at a time, the whole plan, progress shown, nothing kept.
    pub fn new(state_dir: PathBuf) -> RunSettings {
        RunSettings {
            keep: false,
            quiet: false,
            state_dir,
            jobs: 1,
            partition: None,
            message_format: MessageFormat::Human,
        }
    }
}

/// A finished (or interrupted) run.
#[derive(Debug)]
pub struct Outcome {
    pub report: Report,
    /// Every planned cell ran all its cycles.
    pub complete: bool,
}

/// Runs a scenario whose image is present, and removes everything it
/// created unless `keep` is set. The library's entry point: the binary and
/// the integration tests both come through here.
pub async fn execute(
    docker: &Docker,
    scenario: &Scenario,
    settings: &RunSettings,
    cancel: tokio::sync::watch::Receiver<bool>,
) -> Result<Outcome, AppError> {
    let state = &settings.state_dir;
    let strategies = &scenario.matrix.strategies;
    let (cells, unsupported) = runnable(scenario)?;
    // The plan is recorded whole in every shard's report, so that `merge`
    // can tell which cells no shard ran.
    let plan: Vec<String> = cells.iter().map(|c| crate::scenario::cell_id(scenario, c)).collect();
    let cells: Vec<_> = match settings.partition {
        Some(p) => cells
            .into_iter()
            .zip(&plan)
            .enumerate()
            .filter(|(i, (_, id))| p.contains(*i, id))
            .map(|(_, (c, _))| c)
            .collect(),
        None => cells,
    };
    let jobs = settings.jobs.max(1);
    if workload_for(&scenario.workload).agent_dir().is_some() || strategies.contains(&Strategy::SyncAgent) {
        // Before anything is created: without the agent no cell can run.
        crate::deploy::agent::locate()?;
    }
    if strategies.contains(&Strategy::BtrfsSnapshot) {
        crate::storage::btrfs::check_available()?;
    }
    let ctx = RunContext::create(state).map_err(|source| AppError::Io {
        what: "create the run directory under",
        path: state.clone(),
        source,
    })?;
    if let Err(e) = probe_drivers(&docker.journaled(ctx.journal().clone()), &ctx, &cells).await {
        if !settings.keep
            && let Err(clean) = crate::cleanup::cleanup_run(docker, state, ctx.id()).await
        {
            note!("warning: cleanup of run {} failed: {}; run `crashlab clean`", ctx.id(), error_chain(&clean));
        }
        return Err(e);
    }
    let environment = crate::report::environment::capture(docker, state).await;
    let mut json =
        (settings.message_format == MessageFormat::Json).then(|| JsonEvents::stdout(scenario.workload.kind.as_str()));
    announce(&ctx, scenario, settings, &cells, &plan, unsupported.len(), json.as_mut());
    let started = Instant::now();
    let started_at_unix = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let runner = Runner {
        // Everything the run creates goes into its journal first.
        docker: docker.journaled(ctx.journal().clone()),
        run: ctx.clone(),
        scenario,
        workload: workload_for(&scenario.workload),
        cancel,
        keep: settings.keep,
    };
    let mut terminal = Terminal::new(settings.quiet, scenario.matrix.cycles, cells.len());
    let results = runner.run(&cells, jobs, &mut Tee(&mut terminal, &mut json)).await;

    if settings.keep {
        note!(
            "--keep: leaving run {}'s containers, volumes and {} in place; `crashlab clean` removes them",
            ctx.id(),
            ctx.dir().display()
        );
    } else {
        match crate::cleanup::cleanup_run(docker, state, ctx.id()).await {
            Ok(cleaned) => cleaned.refused.iter().for_each(|refusal| note!("warning: {refusal}")),
            Err(e) => note!("warning: cleanup of run {} failed: {}; run `crashlab clean`", ctx.id(), error_chain(&e)),
        }
    }
    let complete = results.len() == cells.len();
    let report = Report {
        scenario: scenario.name.clone(),
        seed: scenario.seed,
        run_id: ctx.id().to_owned(),
        started_at_unix,
        duration_s: started.elapsed().as_secs_f64(),
        environment,
        cells: results,
        unsupported,
        execution: Some(Execution {
            jobs: jobs as u32,
            cpus: scenario.matrix.cpus,
            memory_bytes: scenario.matrix.memory,
            partition: settings.partition.map(|p| p.to_string()),
            filter: selection(scenario, plan.len()),
            plan,
            interrupted: None,
        }),
        ..Report::default()
    };
    Ok(Outcome { report, complete })
}

/// Makes and removes one volume of each driver volume strategy among
/// `cells`, before any cell runs (see [`crate::storage::Storage::probe`]).
async fn probe_drivers(docker: &Docker, ctx: &RunContext, cells: &[crate::scenario::Cell]) -> Result<(), AppError> {
    let mut probed: Vec<Strategy> = Vec::new();
    for strategy in cells.iter().map(|c| c.strategy) {
        let Some(volume) = strategy.driver_volume().filter(|_| !probed.contains(&strategy)) else { continue };
        let name = ctx.object_name(&format!("probe{}-{}", probed.len(), strategy.object_part()));
        probed.push(strategy);
        let facts = crate::storage::Storage::probe(docker, ctx, strategy, &name)
            .await
            .map_err(|e| AppError::VolumeDriver { driver: volume.driver.clone(), detail: error_chain(&e) })?;
        tracing::info!("volume driver {} for {strategy}: scope {}", volume.driver, facts.scope);
    }
    Ok(())
}

/// The run's `--filter`, with the runnable cells it selected (`selected`)
/// out of the whole scenario's.
fn selection(scenario: &Scenario, selected: usize) -> Option<crashlab_reports::Selection> {
    let filter = scenario.filter.as_ref()?;
    let whole = Scenario { filter: None, ..scenario.clone() };
    Some(crashlab_reports::Selection { expression: filter.to_string(), selected, total: whole.plan().0.len() })
}

/// Says what the run is about to do: a line on stderr unless quiet, and
/// `run-started` on the JSON stream when there is one.
fn announce(
    ctx: &RunContext,
    scenario: &Scenario,
    settings: &RunSettings,
    cells: &[crate::scenario::Cell],
    plan: &[String],
    not_applicable: usize,
    json: Option<&mut JsonEvents<std::io::Stdout>>,
) {
    let jobs = settings.jobs.max(1);
    if let Some(json) = json {
        json.emit(&Line::RunStarted {
            run_id: ctx.id(),
            scenario: &scenario.name,
            seed: scenario.seed,
            workload: scenario.workload.kind.as_str(),
            cells: cells.iter().map(|c| crate::scenario::cell_id(scenario, c)).collect(),
            plan_size: plan.len(),
            not_applicable,
            cycles: scenario.matrix.cycles,
            jobs,
            partition: settings.partition.map(|p| p.to_string()),
            filter: scenario.filter.as_ref().map(ToString::to_string),
        });
    }
    if settings.quiet {
        return;
    }
    let shard = settings.partition.map_or(String::new(), |p| format!(", shard {p} of {} cells", plan.len()));
    let limits =
        [scenario.matrix.cpus.map(|c| format!("{c} CPUs")), scenario.matrix.memory.map(|m| format!("{} MiB", m >> 20))]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>();
    let limits = if limits.is_empty() { String::new() } else { format!(", {} per cell", limits.join(" and ")) };
    note!(
        "run {}: scenario {} (seed {}), {} cells × {} cycles, {} load each, {jobs} at a time{limits}{shard}",
        ctx.id(),
        scenario.name,
        scenario.seed,
        cells.len(),
        scenario.matrix.cycles,
        humanize(scenario.workload.load)
    );
}

/// The newest run directory this process made (by its `pid` file, which
/// only ever answers "is it mine", never "is it alive").
fn latest_run(state_dir: &Path) -> Option<String> {
    let pid = std::process::id().to_string();
    std::fs::read_dir(state_dir.join("runs"))
        .ok()?
        .flatten()
        .filter(|e| std::fs::read_to_string(e.path().join("pid")).is_ok_and(|p| p.trim() == pid))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .max()
}

fn humanize(d: std::time::Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// Reads a stored `report.json`.
pub fn load_report(path: &Path) -> Result<Report, AppError> {
    let text = std::fs::read_to_string(path).map_err(|source| AppError::Io {
        what: "read the report",
        path: path.to_owned(),
        source,
    })?;
    let report: Report = serde_json::from_str(&text)
        .map_err(|e| AppError::BadReport { path: path.to_owned(), detail: e.to_string() })?;
    if report.schema_version > SCHEMA_VERSION {
        return Err(AppError::BadReport {
            path: path.to_owned(),
            detail: format!(
                "schema version {} is newer than this crashlab understands ({SCHEMA_VERSION})",
                report.schema_version
            ),
        });
    }
    Ok(report)
}

/// `crashlab report FILE --format F [--out PATH]`: re-renders a stored run.
pub fn render_report(path: &Path, format: report::Format, out: Option<&Path>) -> Result<(), AppError> {
    let text = format.render(&load_report(path)?);
    write_or_print(&text, out)
}

fn write_or_print(text: &str, out: Option<&Path>) -> Result<(), AppError> {
    match out {
        Some(out) => {
            std::fs::write(out, text).map_err(|source| AppError::Io { what: "write", path: out.to_owned(), source })
        }
        None => {
            use std::io::Write as _;
            let _ = std::io::stdout().write_all(text.as_bytes());
            Ok(())
        }
    }
}

/// `crashlab compare BASE NEW`: prints the diff in `format` (or writes it
/// to `out`) and returns 1 on a regression.
pub fn compare_reports(
    base: &Path,
    new: &Path,
    thresholds: crashlab_reports::compare::Thresholds,
    out: Option<&Path>,
    format: report::CompareFormat,
) -> Result<i32, AppError> {
    use crashlab_reports::compare;
    let comparison = compare::compare(&load_report(base)?, &load_report(new)?, thresholds);
    let text = format.render(&comparison, &base.display().to_string(), &new.display().to_string());
    write_or_print(&text, out)?;
    Ok(if comparison.regressed() { exit::MISS } else { exit::PASS })
}

/// `crashlab merge SHARD... --out DIR`: joins shard reports (each a
/// `report.json` or a directory holding one) into one report in `out`,
/// rendered like a run's. Returns 0 when every cell of the plan is there
/// once and met its expectation, 1 otherwise; shards that are not of one
/// scenario, seed and partitioning are refused (exit 2).
pub fn merge(shards: &[PathBuf], out: &Path) -> Result<i32, AppError> {
    let mut reports = Vec::new();
    for path in shards {
        let file = if path.is_dir() { path.join("report.json") } else { path.clone() };
        reports.push((file.display().to_string(), load_report(&file)?));
    }
    let merged = crashlab_reports::merge::merge(reports)?;
    publish(&merged, Some(out.to_owned()), report::summary)?;
    Ok(if merged.passed() { exit::PASS } else { exit::MISS })
}

/// `crashlab images build NAME... [--jobs N]`: builds the images, `jobs`
/// at a time (a build waits on the mirror, on dpkg in its container and on
/// the daemon's import in turn, so two overlap well on two cores). The
/// first failure ends the command once the builds under way have ended.
pub async fn build_images(names: &[String], mirror: &str, quiet: bool, via: Via, jobs: usize) -> Result<(), AppError> {
    use futures_util::StreamExt;
    let mut recipes = names.iter().map(|n| images::recipe(n)).collect::<Result<Vec<_>, _>>()?;
    // Two builds of one image at once would share their container's name.
    let mut seen = std::collections::HashSet::new();
    recipes.retain(|r| seen.insert(r.name));
    let docker = connect().await?;
    let options = build_options(mirror, quiet, via);
    let failed = std::cell::Cell::new(false);
    let builds = recipes.into_iter().map(|recipe| {
        let (docker, options, failed) = (&docker, &options, &failed);
        async move {
            if failed.get() {
                return Ok(());
            }
            let started = Instant::now();
            let built = images::build(docker, recipe, options).await?;
            let tag = images::tag(recipe);
            options.bars.suspend(|| match built {
                images::Built::Now => note!("built {tag} in {:.1} s", started.elapsed().as_secs_f64()),
                images::Built::ByAnother => {
                    note!("{tag}: another crashlab built it meanwhile ({:.1} s)", started.elapsed().as_secs_f64())
                }
            });
            Ok::<(), AppError>(())
        }
    });
    let mut first_error = None;
    let mut running = futures_util::stream::iter(builds).buffer_unordered(jobs.max(1));
    while let Some(result) = running.next().await {
        if let Err(e) = result {
            failed.set(true);
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// `crashlab images list`: each known image and its state.
pub async fn list_images() -> Result<(), AppError> {
    let docker = connect().await?;
    // Plain columns as wide as the longest entry: scripts read the first word
    // of each line (`.ci/run` picks the names to build with awk).
    let recipes = crashlab_workloads::RECIPES;
    let name_width = recipes.iter().map(|r| r.name.len()).max().unwrap_or(0);
    let tag_width = recipes.iter().map(|r| images::tag(r).len()).max().unwrap_or(0);
    for recipe in recipes {
        let status = match images::status(&docker, recipe).await? {
            ImageStatus::Current => "built",
            ImageStatus::Stale => "built from an older recipe",
            ImageStatus::Missing => "missing",
        };
        println!("{:name_width$}  {:tag_width$}  {status}", recipe.name, images::tag(recipe));
    }
    Ok(())
}

/// `crashlab clean`: removes what dead runs of the state directory left
/// behind. Whatever it refuses to touch (a label whose run id is not
/// crashlab's, a journaled path outside the state directory) is named on
/// stderr, one line each.
pub async fn clean(replays: bool) -> Result<(), AppError> {
    let docker = connect().await?;
    let state = run::state_dir();
    let c = crate::cleanup::clean_stale(&docker, &state).await?;
    let builds =
        images::clean_stale_builds(&state.join("build")) + images::clean_stale_build_containers(&docker).await?;
    for refusal in &c.refused {
        note!("crashlab: {refusal}");
    }
    println!(
        "removed {} containers, {} images, {} volumes, {} networks, {} fault-filesystem mounts, {} btrfs pools and loop devices, \
         {} host-path directories, {} run directories, {} unfinished image builds",
        c.containers, c.images, c.volumes, c.networks, c.mounts, c.btrfs_pools, c.host_dirs, c.dirs, builds
    );
    if c.live + c.elsewhere + c.refused.len() > 0 {
        println!(
            "left alone: {} live runs, {} objects of other state directories, {} refused",
            c.live,
            c.elsewhere,
            c.refused.len()
        );
    }
    let kept = crate::replay::clean_kept(&state, replays).map_err(|source| AppError::Io {
        what: "clean the kept crash points under",
        path: state.join(crate::replay::DIR),
        source,
    })?;
    if kept.runs > 0 {
        let mib = kept.bytes as f64 / (1024.0 * 1024.0);
        if replays {
            println!("removed the crash points kept for replay by {} run(s) ({mib:.1} MiB)", kept.runs);
        } else {
            println!(
                "kept for replay: crash points of {} run(s) ({mib:.1} MiB); `crashlab clean --replays` removes them",
                kept.runs
            );
        }
    }
    Ok(())
}

/// `crashlab doctor`: checks what runs need; returns the exit code. The
/// checks are [`crate::app::doctor`]'s.
pub async fn doctor(mirror: &str) -> i32 {
    crate::app::doctor::doctor(mirror).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_are_a_positive_count_or_auto() {
        assert_eq!(parse_jobs("3"), Ok(3));
        assert_eq!(parse_jobs("auto"), Ok(std::thread::available_parallelism().unwrap().get()));
        for bad in ["0", "-1", "two", ""] {
            assert!(parse_jobs(bad).unwrap_err().contains("nor `auto`"), "{bad}");
        }
    }

    /// Held by the tests that listen for signals: a signal reaches every
    /// listener of the process.
    static SIGNALS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    #[tokio::test]
    async fn supervised_work_that_panics_is_caught_so_the_run_can_be_cleaned() {
        let _signals = SIGNALS.lock().await;
        let mut stop = Stop::listen().unwrap();
        let (cancel, _rx) = watch::channel(false);
        let panicking = async { panic!("a bug in a fault") };
        assert!(matches!(supervise::<()>(&mut stop, &cancel, panicking).await, Supervised::Panicked(_)));
        let done = supervise(&mut stop, &cancel, async { 7 }).await;
        assert!(matches!(done, Supervised::Done { value: 7, stopped: None }));
    }

    /// Sends SIGTERM to this process, as `timeout` does.
    fn terminate_self() {
        let status = std::process::Command::new("kill").args(["-TERM", &std::process::id().to_string()]).status();
        assert!(status.is_ok_and(|s| s.success()));
    }

    /// `timeout` signals its child and then the child's process group: the
    /// repeat, coming after the first was handled, must not abandon the
    /// run (which then wrote no report); a second request after
    /// [`SAME_REQUEST_WITHIN`] still stops it at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_signal_delivered_twice_is_one_request_and_a_later_one_stops_at_once() {
        use std::time::Duration;
        let _signals = SIGNALS.lock().await;
        let mut stop = Stop::listen().unwrap();
        for second_request in [false, true] {
            let (cancel, mut rx) = watch::channel(false);
            let work = async move {
                let _ = rx.wait_for(|c| *c).await;
                if !second_request {
                    tokio::task::spawn_blocking(terminate_self).await.unwrap();
                }
                tokio::time::sleep(SAME_REQUEST_WITHIN * 2).await;
                7
            };
            let signals = async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                terminate_self();
                if second_request {
                    tokio::time::sleep(SAME_REQUEST_WITHIN + Duration::from_millis(200)).await;
                    terminate_self();
                }
            };
            let (supervised, ()) = tokio::join!(supervise(&mut stop, &cancel, work), signals);
            match supervised {
                Supervised::Done { value: 7, stopped: Some(exit::TERMINATED) } => assert!(!second_request),
                Supervised::Abandoned(exit::TERMINATED) => assert!(second_request),
                _ => panic!("neither finished after SIGTERM nor abandoned (second request: {second_request})"),
            }
        }
    }
}
