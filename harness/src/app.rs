//! What the subcommands do, with their errors mapped to exit codes. The
//! binary only parses arguments and calls in here.

use crate::docker::{Docker, DockerError, docker_host};
use crate::images::{self, ArchiveError, BuildOptions, ImageError, ImageStatus, Via};
use crate::report::{self, Terminal};
use crate::run::runner::{Runner, error_chain};
use crate::run::{self, RunContext};
use crate::scenario::{Scenario, ScenarioError, WorkloadKind};
use crate::storage::Strategy;
use crashlab_reports::{Report, SCHEMA_VERSION};
use crashlab_workloads::Workload;
use crashlab_workloads::agent;
use crashlab_workloads::fsync_log;
use crashlab_workloads::mariadb::{self, MariaDb};
use crashlab_workloads::postgres::{self, Postgres};
use crashlab_workloads::redis::{self, Redis};
use crashlab_workloads::sqlite;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Writes a line to stderr, ignoring failure: a closed terminal must not
/// abort a run before it has cleaned up.
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// Exit codes, stable for CI.
pub mod exit {
    /// Every cell met its expectation.
    pub const PASS: i32 = 0;
    /// Some cell did not meet its expectation.
    pub const MISS: i32 = 1;
    /// Usage or setup error: bad scenario, no daemon, missing image or tool.
    pub const SETUP: i32 = 2;
    /// Interrupted (Ctrl-C); everything created was removed.
    pub const INTERRUPTED: i32 = 130;
}

/// An error that ends a command, with the exit code and a hint.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("invalid scenario: {0}")]
    Scenario(#[from] ScenarioError),
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
    #[error("image {0} is not present and no registry is assumed reachable")]
    MissingImage(String),
    #[error("failed to {}", error_chain(.0))]
    Agent(#[from] crate::run::agent::AgentError),
    #[error("btrfs-snapshot cannot run here: failed to {}", error_chain(.0))]
    Btrfs(#[from] crate::storage::btrfs::BtrfsError),
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
            AppError::Agent(e) => Some(e.hint().into()),
            AppError::Bench(crate::bench::BenchError::Definition(_)) => {
                Some("see scenarios/bench.toml for a complete example".into())
            }
            AppError::Bench(crate::bench::BenchError::Agent(e)) => Some(e.hint().into()),
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
}

fn build_options(mirror: &str, quiet: bool, via: Via) -> BuildOptions {
    let state = run::state_dir();
    BuildOptions {
        mirror: mirror.to_owned(),
        cache_dir: state.join("packages"),
        work_dir: state.join("build"),
        quiet,
        via,
    }
}

pub fn workload_of(scenario: &Scenario) -> Box<dyn Workload> {
    let overrides = scenario.workload.overrides();
    let driver = protocol_driver(scenario);
    if overrides.is_empty() {
        driver
    } else {
        Box::new(crashlab_workloads::custom::Custom { inner: driver, overrides })
    }
}

fn protocol_driver(scenario: &Scenario) -> Box<dyn Workload> {
    let w = &scenario.workload;
    let image = |default: &str| w.image.clone().unwrap_or_else(|| default.to_owned());
    let server_args = w.server_args.clone();
    match w.kind {
        WorkloadKind::Mariadb => Box::new(MariaDb { image: image(mariadb::IMAGE), server_args }),
        WorkloadKind::Postgres => Box::new(Postgres { image: image(postgres::IMAGE), server_args }),
        WorkloadKind::Redis => Box::new(Redis { image: image(redis::IMAGE), server_args }),
        WorkloadKind::Sqlite => Box::new(sqlite::workload(image(agent::IMAGE), server_args)),
        WorkloadKind::FsyncLog => Box::new(fsync_log::workload(image(agent::IMAGE), server_args)),
    }
}

/// Makes sure the workload's image exists: crashlab's own images are built
/// when missing; any other image must already be there.
pub async fn ensure_image(docker: &Docker, image: &str, mirror: &str, quiet: bool) -> Result<(), AppError> {
    let recipe = crashlab_workloads::RECIPES.into_iter().find(|r| images::tag(r) == image);
    match recipe {
        Some(recipe) => {
            match images::status(docker, recipe).await? {
                ImageStatus::Current => {}
                ImageStatus::Stale => {
                    note!(
                        "note: {image} was built from an older recipe; `crashlab images build {}` refreshes it",
                        recipe.name
                    )
                }
                ImageStatus::Missing => {
                    note!("{image} is missing; building it from Debian packages (about a minute)");
                    images::build(docker, recipe, &build_options(mirror, quiet, Via::Archive)).await?;
                }
            }
            Ok(())
        }
        None if docker.image(image).await?.is_some() => Ok(()),
        None => Err(AppError::MissingImage(image.to_owned())),
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
}

/// `crashlab bench`: returns the exit code (0 when every backend was
/// measured and every profile agreed with fio, 1 otherwise).
pub async fn bench(options: BenchOptions) -> Result<i32, AppError> {
    use crate::bench::{self, BenchDefinition, BenchError, BenchSettings};
    let mut definition = match &options.definition {
        Some(path) => BenchDefinition::load(path).map_err(BenchError::from)?,
        None => BenchDefinition::parse(bench::definition::DEFAULT, "scenarios/bench.toml (built in)")
            .map_err(BenchError::from)?,
    };
    definition.apply(&options.flags).map_err(BenchError::from)?;
    let agent = bench::find_agent()?;
    let docker = connect().await?;
    ensure_image(&docker, crashlab_workloads::fio::IMAGE, &options.mirror, options.quiet).await?;
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
    let settings = BenchSettings { quiet: options.quiet, keep: options.keep, agent };
    let (cancel_tx, cancel_rx) = tokio::sync::watch::channel(false);
    let interrupted = async {
        let _ = tokio::signal::ctrl_c().await;
        let _ = cancel_tx.send(true);
        note!("\ninterrupted: finishing the current step, then cleaning up (Ctrl-C again to stop at once)");
        let _ = tokio::signal::ctrl_c().await;
    };
    let report = tokio::select! {
        report = bench::execute(&docker, &ctx, &definition, &settings, cancel_rx.clone()) => report?,
        () = interrupted => {
            if !options.keep {
                let _ = bench::cleanup(&docker, &ctx).await;
            }
            return Ok(exit::INTERRUPTED);
        }
    };
    publish(&report, options.out.clone(), bench::summary)?;
    Ok(if *cancel_rx.borrow() {
        exit::INTERRUPTED
    } else if report.passed() {
        exit::PASS
    } else {
        exit::MISS
    })
}

/// Writes every rendering of `report` to `out` (by default
/// `crashlab-results/<run id>`) and prints `summary` of it and where the
/// files went.
fn publish(report: &Report, out: Option<PathBuf>, summary: fn(&Report, bool) -> String) -> Result<(), AppError> {
    use std::io::Write as _;
    let out = out.unwrap_or_else(|| PathBuf::from("crashlab-results").join(&report.run_id));
    report::write_files(report, &out).map_err(|source| AppError::Io {
        what: "write the reports to",
        path: out.clone(),
        source,
    })?;
    let color = report::use_color(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    let _ = writeln!(std::io::stdout(), "{}reports: {}", summary(report, color), out.display());
    Ok(())
}

/// `crashlab run`: returns the exit code.
pub async fn run(options: RunOptions) -> Result<i32, AppError> {
    let scenario = match &options.scenario {
        Some(path) => Scenario::load(path)?,
        None => Scenario::parse(crate::scenario::SMOKE, "scenarios/smoke.toml (built in)")?,
    };
    let docker = connect().await?;
    let settings = RunSettings { keep: options.keep, quiet: options.quiet, state_dir: run::state_dir() };
    ensure_image(&docker, &workload_of(&scenario).container().image, &options.mirror, options.quiet).await?;
    if scenario.matrix.strategies.contains(&Strategy::SyncAgent) {
        // The sync agent's sidecar runs the agent's image.
        ensure_image(&docker, crashlab_workloads::agent::IMAGE, &options.mirror, options.quiet).await?;
    }

    // Ctrl-C asks the runner to stop between steps; a second one stops at
    // once. Either way the cleanup below runs.
    let (cancel_tx, cancel_rx) = tokio::sync::watch::channel(false);
    let interrupted = async {
        let _ = tokio::signal::ctrl_c().await;
        let _ = cancel_tx.send(true);
        note!("\ninterrupted: finishing the current step, then cleaning up (Ctrl-C again to stop at once)");
        let _ = tokio::signal::ctrl_c().await;
    };
    let outcome = tokio::select! {
        outcome = execute(&docker, &scenario, &settings, cancel_rx.clone()) => outcome?,
        () = interrupted => {
            let run_id = latest_run(&settings.state_dir);
            if let Some(id) = run_id.filter(|_| !settings.keep) {
                let _ = run::cleanup_run(&docker, &settings.state_dir, &id).await;
            }
            return Ok(exit::INTERRUPTED);
        }
    };
    publish(&outcome.report, options.out.clone(), report::summary)?;
    Ok(if *cancel_rx.borrow() {
        exit::INTERRUPTED
    } else if outcome.complete && outcome.report.passed() {
        exit::PASS
    } else {
        exit::MISS
    })
}

/// How to run a scenario, apart from the scenario itself.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// Leave everything created in place.
    pub keep: bool,
    pub quiet: bool,
    /// Where run directories (and bind mounts) go.
    pub state_dir: PathBuf,
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
    if workload_of(scenario).agent_dir().is_some() || strategies.contains(&Strategy::SyncAgent) {
        // Before anything is created: without the agent no cell can run.
        crate::run::agent::locate()?;
    }
    if strategies.contains(&Strategy::BtrfsSnapshot) {
        crate::storage::btrfs::check_available()?;
    }
    let ctx = RunContext::create(state).map_err(|source| AppError::Io {
        what: "create the run directory under",
        path: state.clone(),
        source,
    })?;
    let environment = crate::report::environment::capture(docker, state).await;
    let (cells, unsupported) = scenario.plan();
    if !settings.quiet {
        note!(
            "run {}: scenario {} (seed {}), {} cells × {} cycles, {} load each",
            ctx.id(),
            scenario.name,
            scenario.seed,
            cells.len(),
            scenario.matrix.cycles,
            humanize(scenario.workload.load)
        );
    }
    let started = Instant::now();
    let started_at_unix = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut runner = Runner {
        docker: docker.clone(),
        run: ctx.clone(),
        scenario,
        workload: workload_of(scenario),
        cancel,
        keep: settings.keep,
    };
    let mut terminal = Terminal::new(settings.quiet, scenario.matrix.cycles, cells.len());
    let results = runner.run(&cells, &mut terminal).await;

    if settings.keep {
        note!(
            "--keep: leaving run {}'s containers, volumes and {} in place; `crashlab clean` removes them",
            ctx.id(),
            ctx.dir().display()
        );
    } else if let Err(e) = run::cleanup_run(docker, state, ctx.id()).await {
        note!("warning: cleanup of run {} failed: {}; run `crashlab clean`", ctx.id(), error_chain(&e));
    }
    let complete = results.len() == cells.len();
    let report = Report {
        schema_version: SCHEMA_VERSION,
        scenario: scenario.name.clone(),
        seed: scenario.seed,
        run_id: ctx.id().to_owned(),
        started_at_unix,
        duration_s: started.elapsed().as_secs_f64(),
        environment,
        cells: results,
        unsupported,
        bench: None,
    };
    Ok(Outcome { report, complete })
}

/// The newest run directory, which is this process's run while it lives.
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

/// `crashlab compare BASE NEW`: prints the Markdown diff (or writes it to
/// `out`) and returns 1 on a regression.
pub fn compare_reports(
    base: &Path,
    new: &Path,
    thresholds: crashlab_reports::compare::Thresholds,
    out: Option<&Path>,
) -> Result<i32, AppError> {
    use crashlab_reports::compare;
    let comparison = compare::compare(&load_report(base)?, &load_report(new)?, thresholds);
    let text = compare::render_markdown(&comparison, &base.display().to_string(), &new.display().to_string());
    write_or_print(&text, out)?;
    Ok(if comparison.regressed() { exit::MISS } else { exit::PASS })
}

/// `crashlab images build NAME...`.
pub async fn build_images(names: &[String], mirror: &str, quiet: bool, via: Via) -> Result<(), AppError> {
    let recipes = names.iter().map(|n| images::recipe(n)).collect::<Result<Vec<_>, _>>()?;
    let docker = connect().await?;
    for recipe in recipes {
        let started = Instant::now();
        images::build(&docker, recipe, &build_options(mirror, quiet, via)).await?;
        note!("built {} in {:.1} s", images::tag(recipe), started.elapsed().as_secs_f64());
    }
    Ok(())
}

/// `crashlab images list`: each known image and its state.
pub async fn list_images() -> Result<(), AppError> {
    let docker = connect().await?;
    for recipe in crashlab_workloads::RECIPES {
        let status = match images::status(&docker, recipe).await? {
            ImageStatus::Current => "built",
            ImageStatus::Stale => "built from an older recipe",
            ImageStatus::Missing => "missing",
        };
        println!("{:10} {:28} {status}", recipe.name, images::tag(recipe));
    }
    Ok(())
}

/// `crashlab clean`: removes what killed runs left behind.
pub async fn clean() -> Result<(), AppError> {
    let docker = connect().await?;
    let state = run::state_dir();
    let c = run::clean_stale(&docker, &state).await?;
    let builds =
        images::clean_stale_builds(&state.join("build")) + images::clean_stale_build_containers(&docker).await?;
    println!(
        "removed {} containers, {} volumes, {} fault-filesystem mounts, {} btrfs pools, {} run directories, {} unfinished image builds",
        c.containers, c.volumes, c.mounts, c.btrfs_pools, c.dirs, builds
    );
    Ok(())
}

/// `crashlab doctor`: checks what runs need; returns the exit code.
pub async fn doctor(mirror: &str) -> i32 {
    let mut ok = true;
    let mut line = |good: bool, what: &str, detail: String| {
        ok &= good;
        println!("{} {what}: {detail}", if good { "ok  " } else { "FAIL" });
    };
    match connect().await {
        Ok(docker) => {
            let version = docker.version().await.ok();
            line(
                true,
                "docker daemon",
                format!(
                    "{} at {}, API {} (negotiated)",
                    version.and_then(|v| v.version).unwrap_or_default(),
                    docker_host(),
                    docker.api_version()
                ),
            );
            for recipe in crashlab_workloads::RECIPES {
                let status = images::status(&docker, recipe).await;
                let (good, detail) = match status {
                    Ok(ImageStatus::Current) => (true, "built".to_owned()),
                    Ok(ImageStatus::Stale) => {
                        (true, "built from an older recipe; `crashlab images build` refreshes it".into())
                    }
                    Ok(ImageStatus::Missing) => (true, format!("missing; `crashlab run` builds it from {mirror}")),
                    Err(e) => (false, error_chain(&e)),
                };
                line(good, &format!("image {}", images::tag(recipe)), detail);
            }
        }
        Err(e) => line(false, "docker daemon", format!("{e}; {}", e.hint().unwrap_or_default())),
    }
    line(
        images::is_root(),
        "root",
        if images::is_root() { "yes".into() } else { "bind mounts and fault filesystems need root".into() },
    );
    let fuse = Path::new("/dev/fuse").exists();
    line(true, "/dev/fuse", if fuse { "present".into() } else { "absent (only needed by power-loss faults)".into() });
    let btrfs = match crate::storage::btrfs::check_available() {
        Ok(()) => "usable".to_owned(),
        Err(e) => format!("not usable (only needed by btrfs-snapshot): {}", error_chain(&e)),
    };
    line(true, "btrfs pools", btrfs);
    let state = run::state_dir();
    line(
        true,
        "state directory",
        format!(
            "{} ({})",
            state.display(),
            crate::report::environment::filesystem_of(state.parent().unwrap_or(&state)).unwrap_or_default()
        ),
    );
    if ok { exit::PASS } else { exit::SETUP }
}
