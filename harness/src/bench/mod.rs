//! `crashlab bench`: storage backends measured side by side.
//!
//! For each backend — a built-in strategy, a volume of any Docker volume
//! driver with its options, or a directory under any host path — the bench
//! mounts fresh storage at `/bench` in a `crashlab/fio` container, copies
//! `crashlab-agent` into it before it starts, and runs every IO profile
//! with the agent and with fio (see [`tools`]) `rounds` times, back to
//! back, alternating which goes first so that neither always meets a
//! colder or busier machine. The report gives the medians and flags a
//! profile where the median of the rounds' agent/fio ratios is more than
//! the tolerance from 1 ([`IoResult::from_rounds`]). Then, when the
//! definition has a `[workload]`, it deploys the workload on fresh storage
//! of the same backend and runs one load phase without a fault, for its
//! throughput and commit latency.
//!
//! Everything is labelled with the run id and removed at the end, on error
//! and on Ctrl-C, like `crashlab run`'s cells; host-path directories are
//! listed in the run directory so that a hard interrupt can remove them
//! too ([`cleanup`]).

pub mod definition;
pub mod tools;

pub use definition::{Backend, BenchDefinition, BenchDefinitionError, BenchFlags, BenchStrategy};

use crate::deploy::deployment::Deployment;
use crate::docker::Docker;
use crate::report::json_events::{JsonEvents, Line, MessageFormat};
use crate::run::RunContext;
use crate::run::journal::Entry;
use crate::settings::WorkloadSection;
use crate::storage::{Place, ProvisionOptions, Storage, StorageError, Strategy};
use crate::text::error_chain;
use bollard::models::{ContainerCreateBody, HostConfig};
use bytes::Bytes;
use crashlab_reports::bench::{BenchFailure, BenchReport, IoFigures, IoResult, Profile, WorkloadResult};
use crashlab_reports::{LatencySummary, Report, markdown};
use crashlab_workloads::{LoadConfig, Workload};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tools::Job;

/// Where the backend is mounted in the bench container.
const MOUNT: &str = "/bench";
/// Where the agent is copied to in the bench container.
const AGENT_DIR: &str = crashlab_workloads::agent::BIN_DIR;
const AGENT_NAME: &str = crashlab_workloads::agent::BIN_NAME;

/// Why a bench could not run at all. A backend that fails is recorded in
/// the report instead, and the others still run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Definition(#[from] BenchDefinitionError),
    #[error(transparent)]
    Agent(#[from] crate::deploy::agent::AgentError),
    #[error("read crashlab-agent at {}", path.display())]
    ReadAgent {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl BenchError {
    /// The one line the binary prints: "invalid bench definition: ..." for
    /// bad input, "failed to ..." with every cause otherwise.
    pub fn describe(&self) -> String {
        match self {
            BenchError::Definition(BenchDefinitionError::Read { .. }) => {
                format!("failed to {}", error_chain(self))
            }
            BenchError::Definition(e) => format!("invalid bench definition: {e}"),
            _ => format!("failed to {}", error_chain(self)),
        }
    }
}

/// How to run a bench, apart from its definition.
#[derive(Debug, Clone)]
pub struct BenchSettings {
    pub quiet: bool,
    /// Leave containers and storage in place for debugging.
    pub keep: bool,
    /// The agent binary to copy into the bench containers.
    pub agent: PathBuf,
    /// `--message-format`: with `Json`, the bench's progress and results
    /// go to stdout as JSON lines ([`crate::report::json_events`]).
    pub message_format: MessageFormat,
}

/// The agent binary to copy into the bench containers (see
/// [`crate::deploy::agent::locate`]).
pub fn find_agent() -> Result<PathBuf, BenchError> {
    Ok(crate::deploy::agent::locate()?)
}

/// The agent as a tar archive holding `crashlab-agent`, executable.
fn agent_archive(path: &Path) -> Result<Bytes, BenchError> {
    let read = |source| BenchError::ReadAgent { path: path.to_owned(), source };
    let binary = std::fs::read(path).map_err(read)?;
    let mut header = tar::Header::new_gnu();
    header.set_size(binary.len() as u64);
    header.set_mode(0o755);
    header.set_cksum();
    let mut builder = tar::Builder::new(Vec::new());
    builder.append_data(&mut header, AGENT_NAME, binary.as_slice()).map_err(read)?;
    Ok(builder.into_inner().map_err(read)?.into())
}

/// Runs the bench in `run` (created by the caller, so that it can clean up
/// after a hard interrupt) and returns its report. Stops between steps once
/// `cancel` turns true. Removes everything it created unless `keep`.
pub async fn execute(
    docker: &Docker,
    run: &RunContext,
    definition: &BenchDefinition,
    settings: &BenchSettings,
    cancel: watch::Receiver<bool>,
) -> Result<Report, BenchError> {
    // Everything the bench creates goes into the run's journal first.
    let docker = &docker.journaled(run.journal().clone());
    let agent = match agent_archive(&settings.agent) {
        Ok(agent) => agent,
        Err(e) => {
            let _ = cleanup(docker, run).await;
            return Err(e);
        }
    };
    let environment = crate::report::environment::capture(docker, run.state_dir()).await;
    let started = Instant::now();
    let started_at_unix = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let io = &definition.io;
    let workload = definition.workload.as_ref().map(workload_of);
    let tools_per_round = if io.fio { 2 } else { 1 };
    let steps_per_backend =
        io.rounds as u64 * io.profiles.len() as u64 * tools_per_round + u64::from(workload.is_some());
    let bar = progress(settings.quiet, steps_per_backend * definition.strategies.len() as u64);
    let events = (settings.message_format == MessageFormat::Json).then(|| JsonEvents::stdout(""));
    let bench = Bench {
        docker,
        run,
        definition,
        agent,
        bar: bar.clone(),
        cancel,
        keep: settings.keep,
        events: std::sync::Mutex::new(events),
    };
    bench.announce(workload.as_ref().map(|(_, w)| w.name()));

    let mut report = BenchReport {
        rounds: io.rounds,
        seconds: io.seconds.as_secs_f64(),
        size_bytes: io.size,
        read_size_bytes: io.read_size,
        seq_size_bytes: io.seq_size,
        etcd_size_bytes: io.etcd_size,
        tolerance_pct: io.tolerance,
        ..Default::default()
    };
    for (index, strategy) in definition.strategies.iter().enumerate() {
        if bench.cancelled() {
            break;
        }
        report
            .strategies
            .push(crashlab_reports::bench::BenchStrategy { name: strategy.name.clone(), kind: strategy.kind() });
        let prefix = format!("[{}/{}] {}", index + 1, definition.strategies.len(), strategy.name);
        match bench.io(index, strategy, &prefix).await {
            Ok(results) => {
                results.iter().for_each(|r| bench.emit(&Line::BenchIo(r)));
                report.io.extend(results);
            }
            Err(detail) => bench.failed(&mut report, strategy, "io", detail),
        }
        if let (Some((section, workload)), false) = (&workload, bench.cancelled()) {
            bar.set_message(format!("{prefix}: {} load", workload.name()));
            match bench.workload(index, strategy, section, workload.as_ref()).await {
                Ok(result) => {
                    bench.emit(&Line::BenchWorkload(&result));
                    report.workload.push(result);
                }
                Err(detail) => bench.failed(&mut report, strategy, "workload", detail),
            }
            bar.inc(1);
        }
        // A backend that failed midway left steps undone; keep the bar honest.
        bar.set_position(steps_per_backend * (index as u64 + 1));
    }
    bar.finish_and_clear();
    if settings.keep {
        tracing::info!("--keep: leaving run {}'s containers and storage in place", run.id());
    } else if let Err(e) = cleanup(docker, run).await {
        tracing::warn!("cleanup of run {} failed: {}; run `crashlab clean`", run.id(), error_chain(&e));
    }
    Ok(Report {
        scenario: definition.name.clone(),
        run_id: run.id().to_owned(),
        started_at_unix,
        duration_s: started.elapsed().as_secs_f64(),
        environment,
        bench: Some(report),
        ..Report::default()
    })
}

/// Removes everything the run created, from its journal: containers,
/// volumes, the directories it made under host paths, and the run
/// directory.
pub async fn cleanup(docker: &Docker, run: &RunContext) -> Result<(), crate::docker::DockerError> {
    let cleaned = crate::cleanup::cleanup_run(docker, run.state_dir(), run.id()).await?;
    for refusal in &cleaned.refused {
        tracing::warn!("{refusal}");
    }
    Ok(())
}

/// The scenario's workload driver for a bench's `[workload]`.
fn workload_of(section: &WorkloadSection) -> (WorkloadSection, Box<dyn Workload>) {
    (section.clone(), crate::workload::workload_for(section))
}

/// The image the bench's workload runs.
pub fn workload_image(section: &WorkloadSection) -> String {
    workload_of(section).1.container().image
}

/// The final summary for stdout: the side-by-side table, the check against
/// fio, failures, and a verdict line coloured when `color` is set.
pub fn summary(report: &Report, color: bool) -> String {
    let Some(bench) = &report.bench else { return String::new() };
    let mut out = String::from("\n");
    out.push_str(&markdown::bench_table(bench));
    out.push('\n');
    out.push_str(&markdown::bench_comparison(bench));
    let etcd = markdown::etcd_check(bench);
    if !etcd.is_empty() {
        out.push('\n');
        out.push_str(&etcd);
    }
    for e in &bench.errors {
        out.push_str(&format!("\nfailed: {} ({}): {}", e.strategy, e.stage, e.detail));
    }
    let flagged = bench.io.iter().filter(|r| r.agrees == Some(false)).count();
    let checked = bench.io.iter().filter(|r| r.agrees.is_some()).count();
    let line = if bench.io.is_empty() {
        "no profile was measured".to_owned()
    } else if checked == 0 {
        format!("{} profiles measured; fio check off", bench.io.len())
    } else {
        format!(
            "{} of {checked} profiles within {:.0} % of fio{}",
            checked - flagged,
            bench.tolerance_pct,
            if bench.errors.is_empty() {
                String::new()
            } else {
                format!("; {} backend steps failed", bench.errors.len())
            }
        )
    };
    let ok = report.passed();
    let line = match (color, ok) {
        (false, _) => line,
        (true, true) => format!("\x1b[32m{line}\x1b[0m"),
        (true, false) => format!("\x1b[1;31m{line}\x1b[0m"),
    };
    out.push_str(&format!("\n{line}\n"));
    out
}

fn progress(quiet: bool, steps: u64) -> ProgressBar {
    let target = if quiet { ProgressDrawTarget::hidden() } else { ProgressDrawTarget::stderr() };
    let bar = ProgressBar::with_draw_target(Some(steps), target);
    bar.set_style(
        ProgressStyle::with_template("[{bar:20}] {pos}/{len} steps, {elapsed} elapsed, ~{eta} left  {wide_msg}")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}

struct Bench<'a> {
    docker: &'a Docker,
    run: &'a RunContext,
    definition: &'a BenchDefinition,
    agent: Bytes,
    bar: ProgressBar,
    cancel: watch::Receiver<bool>,
    keep: bool,
    /// The JSON stream, when asked for.
    events: std::sync::Mutex<Option<JsonEvents<std::io::Stdout>>>,
}

/// One tool's run of one profile.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tool {
    Agent,
    Fio,
}

impl Bench<'_> {
    fn cancelled(&self) -> bool {
        *self.cancel.borrow()
    }

    /// `bench-started` on the JSON stream, with the workload whose load
    /// follows the profiles on each backend.
    fn announce(&self, workload: Option<&str>) {
        let (definition, io) = (self.definition, &self.definition.io);
        self.emit(&Line::BenchStarted {
            run_id: self.run.id(),
            bench: &definition.name,
            strategies: definition.strategies.iter().map(|s| s.name.as_str()).collect(),
            profiles: io.profiles.clone(),
            rounds: io.rounds,
            seconds: io.seconds.as_secs_f64(),
            fio: io.fio,
            workload,
        });
    }

    /// Records a backend step that failed at `stage`, in `report` and on
    /// the JSON stream.
    fn failed(&self, report: &mut BenchReport, strategy: &BenchStrategy, stage: &str, detail: String) {
        let failure = BenchFailure { strategy: strategy.name.clone(), stage: stage.into(), detail };
        self.emit(&Line::BenchFailed(&failure));
        report.errors.push(failure);
    }

    /// Writes `line` to the JSON stream, if there is one.
    fn emit(&self, line: &Line<'_>) {
        if let Ok(mut events) = self.events.lock()
            && let Some(events) = events.as_mut()
        {
            events.emit(line);
        }
    }

    /// Fresh storage of `strategy`'s backend, named for `purpose`.
    async fn provision(&self, index: usize, strategy: &BenchStrategy, purpose: &str) -> Result<Storage, String> {
        let name = self.run.object_name(&format!("b{index}-{}-{purpose}", strategy.name));
        let place = match &strategy.backend {
            Backend::Builtin(s) => Place::Strategy(*s),
            Backend::Volume(v) => Place::Strategy(Strategy::Volume(v)),
            Backend::HostPath(root) => {
                // Validation saw a directory or a path that can become one.
                std::fs::create_dir_all(root).map_err(|e| format!("create host path {}: {e}", root.display()))?;
                // Journaled before it exists, with the root it must stay
                // directly below, so that no interrupt can leave it unlisted
                // and no cleanup can remove anything else.
                let root = std::fs::canonicalize(root).map_err(|e| format!("resolve {}: {e}", root.display()))?;
                let dir = root.join(&name);
                self.run
                    .journal()
                    .record(&Entry::HostDir { root: root.clone(), dir: dir.clone() })
                    .map_err(|e| error_chain(&e))?;
                Place::HostSubdir(root.clone())
            }
        };
        Storage::provision(self.docker, self.run, &place, &name, ProvisionOptions::default())
            .await
            .map_err(|e| error_chain(&e))
    }

    async fn teardown(&self, container: Option<&str>, storage: Storage) {
        if self.keep {
            return;
        }
        if let Some(id) = container
            && let Err(e) = self.docker.remove_container(id).await
        {
            tracing::warn!("{}", error_chain(&e));
        }
        if let Err(e) = storage.teardown(self.docker).await {
            tracing::warn!("{}", error_chain(&e as &StorageError));
        }
    }

    /// Every profile on one backend, both tools, all rounds.
    async fn io(&self, index: usize, strategy: &BenchStrategy, prefix: &str) -> Result<Vec<IoResult>, String> {
        self.bar.set_message(format!("{prefix}: starting the bench container"));
        let storage = self.provision(index, strategy, "io").await?;
        let name = self.run.object_name(&format!("b{index}-{}-io", strategy.name));
        let config = ContainerCreateBody {
            image: Some(crate::images::resolve(crashlab_workloads::fio::IMAGE)),
            labels: Some(self.run.labels()),
            host_config: Some(HostConfig { mounts: Some(storage.mounts(self.run, MOUNT)), ..Default::default() }),
            ..Default::default()
        };
        let id = match self.docker.create_container(&name, config).await {
            Ok(id) => id,
            Err(e) => {
                self.teardown(None, storage).await;
                return Err(error_chain(&e));
            }
        };
        let result = self.io_in(&id, strategy, prefix).await;
        self.teardown(Some(&id), storage).await;
        result
    }

    async fn io_in(&self, id: &str, strategy: &BenchStrategy, prefix: &str) -> Result<Vec<IoResult>, String> {
        let io = &self.definition.io;
        self.docker.upload(id, AGENT_DIR, self.agent.clone()).await.map_err(|e| error_chain(&e))?;
        self.docker.start(id).await.map_err(|e| error_chain(&e))?;
        // The writable layer has no /bench until someone makes it.
        self.exec(id, &["mkdir".into(), "-p".into(), MOUNT.into()], "mkdir").await?;
        let agent = format!("{AGENT_DIR}/{AGENT_NAME}");
        let mut rounds: Vec<(Profile, Vec<IoFigures>, Vec<IoFigures>)> =
            io.profiles.iter().map(|p| (*p, vec![], vec![])).collect();
        for round in 0..io.rounds {
            for (profile, agent_rounds, fio_rounds) in &mut rounds {
                let job = Job {
                    profile: *profile,
                    dir: MOUNT.into(),
                    size: match profile {
                        Profile::Fsync4k => io.size,
                        Profile::RandRead4k => io.read_size,
                        Profile::SeqWrite1m => io.seq_size,
                        Profile::EtcdFdatasync => io.etcd_size,
                    },
                    seconds: io.seconds.as_secs_f64(),
                };
                // Alternate which tool goes first, so that neither always
                // finds the page cache or the disk in the other's wake.
                let order = match (io.fio, round % 2) {
                    (false, _) => vec![Tool::Agent],
                    (true, 0) => vec![Tool::Agent, Tool::Fio],
                    (true, _) => vec![Tool::Fio, Tool::Agent],
                };
                for tool in order {
                    if self.cancelled() {
                        return Err("interrupted".into());
                    }
                    let label = if tool == Tool::Agent { "crashlab" } else { "fio" };
                    self.bar.set_message(format!("{prefix}: round {}/{} {profile} ({label})", round + 1, io.rounds));
                    // Neither tool should pay for the other's leftovers:
                    // the previous run's unlinked file and its metadata go
                    // to disk before the next one starts.
                    self.exec(id, &["sync".into()], "sync").await?;
                    let figures = match tool {
                        Tool::Agent => {
                            let out = self.exec(id, &tools::agent_command(&agent, &job), "crashlab-agent").await?;
                            tools::parse_agent(&out, *profile)
                        }
                        Tool::Fio => {
                            tools::parse_fio(&self.exec(id, &tools::fio_command(&job), "fio").await?, *profile)
                        }
                    };
                    let figures =
                        figures.map_err(|e| format!("{} on {}: {}", profile, strategy.name, error_chain(&e)))?;
                    self.emit(&Line::BenchRound {
                        strategy: &strategy.name,
                        profile: *profile,
                        round: round + 1,
                        rounds: io.rounds,
                        tool: label,
                        figures: &figures,
                    });
                    match tool {
                        Tool::Agent => agent_rounds.push(figures),
                        Tool::Fio => fio_rounds.push(figures),
                    }
                    self.bar.inc(1);
                }
            }
        }
        Ok(rounds
            .into_iter()
            .map(|(profile, agent, fio)| IoResult::from_rounds(&strategy.name, profile, agent, fio, io.tolerance))
            .collect())
    }

    /// Runs `cmd` in the bench container; its output, or an error quoting
    /// it when it exits non-zero.
    async fn exec(&self, id: &str, cmd: &[String], what: &str) -> Result<String, String> {
        let out = self.docker.exec(id, cmd).await.map_err(|e| error_chain(&e))?;
        match out.exit_code {
            Some(0) => Ok(out.output),
            code => Err(format!(
                "{what} exited with {}: {}",
                code.map_or("no status".into(), |c| c.to_string()),
                out.output.trim()
            )),
        }
    }

    /// One load phase of the workload, without a fault, on fresh storage.
    async fn workload(
        &self,
        index: usize,
        strategy: &BenchStrategy,
        section: &WorkloadSection,
        workload: &dyn Workload,
    ) -> Result<WorkloadResult, String> {
        let storage = self.provision(index, strategy, "db").await?;
        let name = self.run.object_name(&format!("b{index}-{}-db", strategy.name));
        let mut d = Deployment::new(self.docker.clone(), self.run.clone(), workload.container(), storage, name);
        let result = self.load(&mut d, &strategy.name, section, workload).await;
        if self.keep {
            d.leak();
        } else if let Err(e) = d.teardown().await {
            tracing::warn!("{}", error_chain(&e));
        }
        result
    }

    async fn load(
        &self,
        d: &mut Deployment,
        strategy: &str,
        section: &WorkloadSection,
        workload: &dyn Workload,
    ) -> Result<WorkloadResult, String> {
        d.create().await.map_err(|e| error_chain(&e))?;
        d.start().await.map_err(|e| error_chain(&e))?;
        let addr = d.wait_ready(workload, section.ready_timeout, Some(&self.cancel)).await.map_err(|e| e.detail())?;
        let config = LoadConfig {
            clients: section.clients,
            accounts: section.accounts,
            seed: 42,
            reconnect: false,
            ids_from: 0,
            replicas: 1,
        };
        workload.setup(addr, config).await.map_err(|e| format!("create the dataset: {}", error_chain(&e)))?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let started = Instant::now();
        let load = workload.load(addr, config, stop_rx, Duration::from_secs(5));
        let stop = async {
            tokio::time::sleep(section.load).await;
            let _ = stop_tx.send(true);
        };
        let (outcome, ()) = tokio::join!(load, stop);
        let load_s = started.elapsed().as_secs_f64().min(section.load.as_secs_f64()).max(1e-9);
        let outcome = outcome.map_err(|e| format!("load: {}", error_chain(&e)))?;
        if let Some(first) = outcome.client_errors.first() {
            return Err(format!("a load client failed without a fault: {first}"));
        }
        let h = &outcome.latency_us;
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1e3;
        let latency_ms = if h.is_empty() {
            LatencySummary::default()
        } else {
            LatencySummary { p50: ms(0.5), p95: ms(0.95), p99: ms(0.99), max: h.max() as f64 / 1e3 }
        };
        let acked = outcome.log.acked();
        Ok(WorkloadResult {
            strategy: strategy.to_owned(),
            workload: workload.name().to_owned(),
            clients: section.clients,
            load_s,
            acked_writes: acked,
            throughput_tps: acked as f64 / load_s,
            latency_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crashlab_reports::bench::BenchFailure;

    fn report(bench: BenchReport) -> Report {
        Report {
            scenario: "bench".into(),
            run_id: "r".into(),
            duration_s: 1.0,
            bench: Some(bench),
            ..Report::default()
        }
    }

    fn figures(iops: f64) -> IoFigures {
        IoFigures { iops, mib_per_s: iops / 256.0, p50_us: 1.0, p99_us: 2.0, max_us: 3.0, syncs: 0 }
    }

    #[test]
    fn summary_counts_the_profiles_that_agree_with_fio() {
        let io = vec![
            IoResult::from_rounds("a", Profile::Fsync4k, vec![figures(100.0)], vec![figures(104.0)], 10.0),
            IoResult::from_rounds("a", Profile::RandRead4k, vec![figures(100.0)], vec![figures(150.0)], 10.0),
        ];
        let text = summary(&report(BenchReport { io, tolerance_pct: 10.0, ..Default::default() }), false);
        assert!(text.contains("| a | fsync-4k | 100 IOPS | 104 IOPS | 0.96 |"), "{text}");
        assert!(text.ends_with("\n1 of 2 profiles within 10 % of fio\n"), "{text}");
    }

    #[test]
    fn summary_says_when_nothing_was_measured_or_checked() {
        let failed = BenchReport {
            errors: vec![BenchFailure { strategy: "a".into(), stage: "io".into(), detail: "interrupted".into() }],
            ..Default::default()
        };
        let text = summary(&report(failed), false);
        assert!(text.contains("failed: a (io): interrupted") && text.ends_with("no profile was measured\n"), "{text}");
        let io = vec![IoResult::from_rounds("a", Profile::Fsync4k, vec![figures(1.0)], vec![], 10.0)];
        let unchecked = summary(&report(BenchReport { io, ..Default::default() }), false);
        assert!(unchecked.ends_with("1 profiles measured; fio check off\n"), "{unchecked}");
    }
}
