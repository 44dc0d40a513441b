//! Replaying one crash state: what a `crash-states` cycle keeps of a failing
//! crash point, and `crashlab replay`, which checks one of its states again.
//!
//! When a crash point has a failing state, [`Keeper::keep`] moves the
//! point's copy of the durable base out of the run directory (which goes
//! at the end of the run) to `<state dir>/replays/<run id>/<cell>/cycle-<n>/point-<p>/`,
//! beside what else a check needs: the unsynced history (`history.json`,
//! its write data in `history.bin`), the ack log already cut at the crash
//! point (`acklog.json`) and the workload's settings with the failing
//! state's id and verdict (`replay.json`). Only the first failing point of
//! each cycle is kept, so the disk used is at most one base copy per cycle
//! that failed; `crashlab clean --replays` ([`clean_kept`]) frees it.
//!
//! [`replay`] rebuilds one state of a kept point exactly as the explorer
//! checks it ([`crate::explore`]): written out with
//! [`crashlab_faultfs::materialise()`] into a new directory of a fresh run,
//! a fresh container of the workload started on it (a bind mount), the
//! server's recovery awaited, the data read back, the engine's check run
//! and the same checker applied to the kept ack log. Everything it creates
//! belongs to that run and is journaled and cleaned like any other
//! ([`crate::run`]); with `keep` the container is left running.

use crate::deploy::deployment::Deployment;
use crate::docker::Docker;
use crate::explore::{Oracle, judge};
use crate::run::RunContext;
use crate::settings::{ExploreSection, WorkloadKind, WorkloadSection};
use crate::storage::{Place, ProvisionOptions, Storage};
use crate::text::error_chain;
use crashlab_faultfs::{Barrier, Base, Event, History, Op, StateId};
use crashlab_reports::{StateFailure, Verdict};
use crashlab_workloads::{AckLog, Outcome, Span, Transfer};
use serde::{Deserialize, Serialize};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Where kept crash points go, under the state directory.
pub const DIR: &str = "replays";
/// The version of the files a kept point holds.
const VERSION: u32 = 1;
const META: &str = "replay.json";
const HISTORY: &str = "history.json";
const HISTORY_DATA: &str = "history.bin";
const ACK_LOG: &str = "acklog.json";
const BASE: &str = "base";

/// Why a crash point could not be kept or replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("read {}: {detail}", path.display())]
    Format { path: PathBuf, detail: String },
    #[error(
        "find a kept crash point at {}: {detail}",
        path.display()
    )]
    NotKept { path: PathBuf, detail: String },
    #[error("replay state {state}: {detail}")]
    State { state: String, detail: String },
    #[error("keep the crash point: its unsynced history is incomplete")]
    Incomplete,
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ReplayError {
    let path = path.to_owned();
    move |source| ReplayError::Io { what, path, source }
}

/// The workload of a kept point, as the scenario set it: what it takes to
/// start the same server and check it the same way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SavedWorkload {
    pub kind: String,
    pub image: Option<String>,
    pub server_args: Vec<String>,
    pub env: Vec<String>,
    pub command: Option<Vec<String>>,
    pub data_dir: Option<String>,
    pub port: Option<u16>,
    pub ready_log: Option<String>,
    pub accounts: u32,
    pub ready_timeout_ms: u64,
    /// The user the server runs as, when the scenario set one.
    #[serde(default)]
    pub user: Option<String>,
    /// Host paths bound read-only into the container, `HOST:CONTAINER`.
    #[serde(default)]
    pub binds: Vec<String>,
    /// Replaces the image's entrypoint.
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
}

impl SavedWorkload {
    /// The section as saved. It is taken apart field by field, with no
    /// `..`, so that a key added to `[workload]` does not compile until it
    /// is saved here (or said not to matter to a replay).
    pub fn of(w: &WorkloadSection) -> SavedWorkload {
        let WorkloadSection {
            kind,
            image,
            server_args,
            clients: _,
            accounts,
            load: _,
            ready_timeout,
            env,
            command,
            data_dir,
            port,
            ready_log,
            user,
            binds,
            entrypoint,
            // A crash point is kept for a workload that records
            // acknowledgements; the user's check is for one that does not.
            check: _,
            check_timeout: _,
        } = w;
        SavedWorkload {
            kind: kind.as_str().to_owned(),
            image: image.clone(),
            server_args: server_args.clone(),
            env: env.clone(),
            command: command.clone(),
            data_dir: data_dir.clone(),
            port: *port,
            ready_log: ready_log.clone(),
            accounts: *accounts,
            ready_timeout_ms: ready_timeout.as_millis() as u64,
            user: user.clone(),
            binds: binds.iter().map(|b| format!("{}:{}", b.source, b.target)).collect(),
            entrypoint: entrypoint.clone(),
        }
    }

    /// The scenario's `[workload]` again (its load settings do not matter
    /// to a replay and take their defaults).
    pub fn section(&self) -> Result<WorkloadSection, String> {
        let kind: WorkloadKind = serde_json::from_value(serde_json::Value::String(self.kind.clone()))
            .map_err(|e| format!("unknown workload `{}`: {e}", self.kind))?;
        Ok(WorkloadSection {
            kind,
            image: self.image.clone(),
            server_args: self.server_args.clone(),
            clients: 1,
            accounts: self.accounts,
            load: Duration::from_secs(1),
            ready_timeout: Duration::from_millis(self.ready_timeout_ms),
            env: self.env.clone(),
            command: self.command.clone(),
            data_dir: self.data_dir.clone(),
            port: self.port,
            ready_log: self.ready_log.clone(),
            user: self.user.clone(),
            binds: self
                .binds
                .iter()
                .map(|b| {
                    let (source, target) =
                        b.split_once(':').ok_or_else(|| format!("bind `{b}` is not HOST:CONTAINER"))?;
                    Ok(crashlab_workloads::HostBind { source: source.to_owned(), target: target.to_owned() })
                })
                .collect::<Result<_, String>>()?,
            entrypoint: self.entrypoint.clone(),
            check: None,
            check_timeout: crate::settings::default_check_timeout(),
        })
    }
}

/// `replay.json`: which point this is and what its check found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Meta {
    pub version: u32,
    pub run_id: String,
    /// `workload/strategy/fault`.
    pub cell: String,
    pub cycle: u32,
    /// 1-based, in the order of the cycle's points in the report.
    pub point: u32,
    /// Where the point is, e.g. `end of load`.
    pub at: String,
    pub at_ms: f64,
    /// The point's first failing state, its verdict and the checker's words.
    pub state: String,
    pub verdict: Verdict,
    pub detail: String,
    pub workload: SavedWorkload,
}

/// Keeps the first failing crash point of one cycle for [`replay`].
#[derive(Debug)]
pub struct Keeper {
    /// `<state dir>/replays/<run id>`.
    root: PathBuf,
    run_id: String,
    cell: String,
    cycle: u32,
    workload: SavedWorkload,
    /// Points seen so far, and whether one was kept.
    seen: Mutex<(u32, bool)>,
}

impl Keeper {
    /// A keeper for cycle `cycle` (1-based) of cell `cell` of run `run`.
    pub fn new(run: &RunContext, cell: &str, cycle: u32, workload: &WorkloadSection) -> Keeper {
        Keeper {
            root: run.state_dir().join(DIR).join(run.id()),
            run_id: run.id().to_owned(),
            cell: cell.to_owned(),
            cycle,
            workload: SavedWorkload::of(workload),
            seen: Mutex::new((0, false)),
        }
    }

    /// Numbers the next crash point of the cycle, from 1.
    pub fn next_point(&self) -> u32 {
        let mut seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        seen.0 += 1;
        seen.0
    }

    /// Keeps point `point` (its base copy moved, not copied) when no point
    /// of the cycle was kept yet, and returns the command that replays its
    /// failing state; `None` when one was kept already (the caller then
    /// removes the base). `log` is the ack log cut at the point.
    pub fn keep(
        &self,
        point: u32,
        at: (&str, f64),
        base: &Path,
        history: &History,
        log: &AckLog,
        failure: &StateFailure,
    ) -> Result<Option<String>, ReplayError> {
        let mut seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.1 {
            return Ok(None);
        }
        if !history.is_complete() {
            return Err(ReplayError::Incomplete);
        }
        let dir = point_dir(&self.root, &self.cell, self.cycle, point);
        std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        let meta = Meta {
            version: VERSION,
            run_id: self.run_id.clone(),
            cell: self.cell.clone(),
            cycle: self.cycle,
            point,
            at: at.0.to_owned(),
            at_ms: at.1,
            state: failure.id.clone(),
            verdict: failure.verdict,
            detail: failure.detail.clone(),
            workload: self.workload.clone(),
        };
        let written = save_history(history, &dir)
            .and_then(|()| write_json(&dir.join(ACK_LOG), &SavedLog::of(log)))
            .and_then(|()| {
                // Both live under the state directory: a rename, not a copy.
                std::fs::rename(base, dir.join(BASE)).map_err(io("move the crash point's base to", &dir.join(BASE)))
            })
            .and_then(|()| write_json(&dir.join(META), &meta));
        if let Err(e) = written {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        seen.1 = true;
        Ok(Some(command(&self.root, &self.cell, self.cycle, point, &failure.id)))
    }
}

/// The directory of a kept point.
fn point_dir(root: &Path, cell: &str, cycle: u32, point: u32) -> PathBuf {
    root.join(cell.replace('/', "+")).join(format!("cycle-{cycle}")).join(format!("point-{point}"))
}

/// The command that replays `state` of a kept point, as the report shows it.
fn command(root: &Path, cell: &str, cycle: u32, point: u32, state: &str) -> String {
    format!("crashlab replay {} --cell {cell} --cycle {cycle} --point {point} --state '{state}'", root.display())
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<(), ReplayError> {
    let text = serde_json::to_vec(value)
        .map_err(|e| ReplayError::Format { path: path.to_owned(), detail: format!("could not serialise: {e}") })?;
    std::fs::write(path, text).map_err(io("write", path))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ReplayError> {
    let text = std::fs::read(path).map_err(io("read", path))?;
    serde_json::from_slice(&text).map_err(|e| ReplayError::Format { path: path.to_owned(), detail: e.to_string() })
}

/// A history entry on disk; a write's data sits in `history.bin` at
/// `at`, `len` bytes long.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
enum SavedEvent {
    Write { file: u64, offset: u64, at: u64, len: u64 },
    Truncate { file: u64, size: u64 },
    Create { path: PathBuf, file: u64 },
    Link { path: PathBuf, file: u64 },
    Mkdir { path: PathBuf, perm: u32, uid: u32, gid: u32 },
    Symlink { path: PathBuf, target: PathBuf },
    Unlink { path: PathBuf },
    Rmdir { path: PathBuf },
    Rename { from: PathBuf, to: PathBuf },
    Fsync { file: u64 },
    Fdatasync { file: u64 },
    OSync { file: u64 },
    DirFsync { path: PathBuf },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct SavedHistory {
    sector_size: u64,
    events: Vec<SavedEvent>,
}

/// Writes `history` into `dir` (`history.json` and `history.bin`); the
/// volume driver's mount holder hands a crash point over the same way.
pub(crate) fn save_history(history: &History, dir: &Path) -> Result<(), ReplayError> {
    let data_path = dir.join(HISTORY_DATA);
    let mut data = std::io::BufWriter::new(std::fs::File::create(&data_path).map_err(io("create", &data_path))?);
    let mut at = 0u64;
    let mut events = Vec::with_capacity(history.events().len());
    for event in history.events() {
        events.push(match event {
            Event::Op(op) => match op.clone() {
                Op::Write { file, offset, data: bytes } => {
                    data.write_all(&bytes).map_err(io("write", &data_path))?;
                    let len = bytes.len() as u64;
                    at += len;
                    SavedEvent::Write { file, offset, at: at - len, len }
                }
                Op::Truncate { file, size } => SavedEvent::Truncate { file, size },
                Op::Create { path, file } => SavedEvent::Create { path, file },
                Op::Link { path, file } => SavedEvent::Link { path, file },
                Op::Mkdir { path, perm, uid, gid } => SavedEvent::Mkdir { path, perm, uid, gid },
                Op::Symlink { path, target } => SavedEvent::Symlink { path, target },
                Op::Unlink { path } => SavedEvent::Unlink { path },
                Op::Rmdir { path } => SavedEvent::Rmdir { path },
                Op::Rename { from, to } => SavedEvent::Rename { from, to },
            },
            Event::Barrier(b) => match b.clone() {
                Barrier::Fsync(file) => SavedEvent::Fsync { file },
                Barrier::Fdatasync(file) => SavedEvent::Fdatasync { file },
                Barrier::OSync(file) => SavedEvent::OSync { file },
                Barrier::DirFsync(path) => SavedEvent::DirFsync { path },
            },
        });
    }
    data.flush().map_err(io("write", &data_path))?;
    write_json(&dir.join(HISTORY), &SavedHistory { sector_size: history.sector_size(), events })
}

/// Reads back what [`save_history`] wrote.
pub(crate) fn load_history(dir: &Path) -> Result<History, ReplayError> {
    let saved: SavedHistory = read_json(&dir.join(HISTORY))?;
    let data_path = dir.join(HISTORY_DATA);
    let data = std::fs::read(&data_path).map_err(io("read", &data_path))?;
    let mut history = History::with_sector_size(saved.sector_size);
    for event in saved.events {
        let op = match event {
            SavedEvent::Write { file, offset, at, len } => {
                let bytes = usize::try_from(at)
                    .ok()
                    .zip(usize::try_from(at + len).ok())
                    .and_then(|(a, b)| data.get(a..b))
                    .ok_or_else(|| ReplayError::Format {
                        path: data_path.clone(),
                        detail: format!("a write's {len} bytes at {at} lie beyond its {} bytes", data.len()),
                    })?;
                Op::Write { file, offset, data: bytes.into() }
            }
            SavedEvent::Truncate { file, size } => Op::Truncate { file, size },
            SavedEvent::Create { path, file } => Op::Create { path, file },
            SavedEvent::Link { path, file } => Op::Link { path, file },
            SavedEvent::Mkdir { path, perm, uid, gid } => Op::Mkdir { path, perm, uid, gid },
            SavedEvent::Symlink { path, target } => Op::Symlink { path, target },
            SavedEvent::Unlink { path } => Op::Unlink { path },
            SavedEvent::Rmdir { path } => Op::Rmdir { path },
            SavedEvent::Rename { from, to } => Op::Rename { from, to },
            SavedEvent::Fsync { file } => {
                history.push_barrier(Barrier::Fsync(file));
                continue;
            }
            SavedEvent::Fdatasync { file } => {
                history.push_barrier(Barrier::Fdatasync(file));
                continue;
            }
            SavedEvent::OSync { file } => {
                history.push_barrier(Barrier::OSync(file));
                continue;
            }
            SavedEvent::DirFsync { path } => {
                history.push_barrier(Barrier::DirFsync(path));
                continue;
            }
        };
        history.push_op(op);
    }
    Ok(history)
}

/// The ack log on disk: per entry `[id, src, dst, amount, outcome, start
/// µs, end µs]`, the outcome as `a` (acknowledged), `x` (aborted) or `?`
/// (in doubt).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct SavedLog {
    timed: bool,
    entries: Vec<(u64, u32, u32, i64, char, u64, u64)>,
}

impl SavedLog {
    fn of(log: &AckLog) -> SavedLog {
        let entries = log
            .entries
            .iter()
            .enumerate()
            .map(|(i, (t, o))| {
                let span = log.span(i).unwrap_or_default();
                let outcome = match o {
                    Outcome::Acked => 'a',
                    Outcome::Aborted => 'x',
                    Outcome::InDoubt => '?',
                    Outcome::AfterTarget => 'l',
                };
                (t.id, t.src, t.dst, t.amount, outcome, span.start_us, span.end_us)
            })
            .collect();
        SavedLog { timed: !log.times.is_empty(), entries }
    }

    fn log(&self) -> Result<AckLog, String> {
        let mut log = AckLog::default();
        for &(id, src, dst, amount, outcome, start_us, end_us) in &self.entries {
            let outcome = match outcome {
                'a' => Outcome::Acked,
                'x' => Outcome::Aborted,
                '?' => Outcome::InDoubt,
                'l' => Outcome::AfterTarget,
                other => return Err(format!("unknown outcome `{other}` of entry {id}")),
            };
            log.entries.push((Transfer { id, src, dst, amount }, outcome));
            if self.timed {
                log.times.push(Span { start_us, end_us });
            }
        }
        Ok(log)
    }
}

/// Finds the kept point: `target` is a run's replay directory
/// (`<state dir>/replays/<run id>`) or a run id under `state_dir`; `cell`
/// may be left out when the run kept points of one cell only.
pub fn locate(
    target: &str,
    state_dir: &Path,
    cell: Option<&str>,
    cycle: u32,
    point: u32,
) -> Result<PathBuf, ReplayError> {
    let root = if Path::new(target).is_dir() {
        PathBuf::from(target)
    } else if crate::run::journal::is_run_id(target) {
        state_dir.join(DIR).join(target)
    } else {
        return Err(ReplayError::NotKept {
            path: PathBuf::from(target),
            detail: "it is neither a directory nor a run id (<unix seconds>-<4 hex digits>)".into(),
        });
    };
    let not_kept = |detail: String| ReplayError::NotKept { path: root.clone(), detail };
    let cells: Vec<String> = std::fs::read_dir(&root)
        .map_err(|e| not_kept(format!("{e}")))?
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().replace('+', "/"))
        .collect();
    let cell = match cell {
        Some(c) => c.to_owned(),
        None if cells.len() == 1 => cells[0].clone(),
        None => return Err(not_kept(format!("name the cell with --cell, one of: {}", cells.join(", ")))),
    };
    let dir = point_dir(&root, &cell, cycle, point);
    if !dir.join(META).is_file() {
        let mut kept: Vec<String> = Vec::new();
        for c in &cells {
            let cell_dir = root.join(c.replace('/', "+"));
            for cy in std::fs::read_dir(&cell_dir).into_iter().flatten().flatten() {
                for p in std::fs::read_dir(cy.path()).into_iter().flatten().flatten() {
                    kept.push(format!("{c} {} {}", cy.file_name().to_string_lossy(), p.file_name().to_string_lossy()));
                }
            }
        }
        kept.sort();
        return Err(not_kept(format!(
            "no point {point} of cycle {cycle} of {cell} was kept (only a cycle's first failing point is); kept: {}",
            if kept.is_empty() { "none".to_owned() } else { kept.join("; ") }
        )));
    }
    Ok(dir)
}

/// Reads a kept point's `replay.json`.
pub fn read_meta(dir: &Path) -> Result<Meta, ReplayError> {
    let meta: Meta = read_json(&dir.join(META))?;
    if meta.version > VERSION {
        return Err(ReplayError::Format {
            path: dir.join(META),
            detail: format!("version {} is newer than this crashlab reads ({VERSION})", meta.version),
        });
    }
    Ok(meta)
}

/// What a replay found.
#[derive(Debug, Clone)]
pub struct Replayed {
    pub state: String,
    pub verdict: Verdict,
    pub detail: String,
    /// With `keep`: the container left running and where its server
    /// listens.
    pub kept: Option<(String, Option<SocketAddr>)>,
}

/// Replays state `state` of the point kept in `dir` (its failing state by
/// default) in run `run`, judged as the explorer judges it. `docker` must
/// journal into the run. With `keep` the container stays up; otherwise it
/// and its directory are removed before this returns.
pub async fn replay(
    docker: &Docker,
    run: &RunContext,
    dir: &Path,
    state: Option<&str>,
    keep: bool,
    cancel: &watch::Receiver<bool>,
) -> Result<Replayed, ReplayError> {
    let meta = read_meta(dir)?;
    let state = state.unwrap_or(&meta.state).to_owned();
    let bad = |detail: String| ReplayError::State { state: state.clone(), detail };
    let section = meta.workload.section().map_err(|e| ReplayError::Format { path: dir.join(META), detail: e })?;
    let workload = crate::workload::workload_for(&section);
    let id: StateId = state.parse().map_err(|e| bad(error_chain(&e)))?;
    let saved: SavedLog = read_json(&dir.join(ACK_LOG))?;
    let log = saved.log().map_err(|detail| ReplayError::Format { path: dir.join(ACK_LOG), detail })?;
    let (point, states) = (dir.to_owned(), run.dir().join("states"));
    std::fs::create_dir_all(&states).map_err(io("create", &states))?;
    let storage =
        Storage::provision(docker, run, &Place::HostSubdir(states.clone()), "state", ProvisionOptions::default())
            .await
            .map_err(|e| bad(format!("could not create its directory: {}", error_chain(&e))))?;
    let out = states.join("state");
    let i = id.clone();
    tokio::task::spawn_blocking(move || {
        let history = load_history(&point)?;
        let base = Base::open(&point.join(BASE)).map_err(|e| ReplayError::State {
            state: i.to_string(),
            detail: format!("could not read the kept base: {}", error_chain(&e)),
        })?;
        crashlab_faultfs::materialise(&base, &history, &i, &out).map_err(|e| ReplayError::State {
            state: i.to_string(),
            detail: format!("could not write it out: {}", error_chain(&e)),
        })
    })
    .await
    .expect("materialise panicked")?;
    let mut uploads = Vec::new();
    if let Some(agent_dir) = workload.agent_dir() {
        let agent = crate::deploy::agent::locate().map_err(|e| bad(error_chain(&e)))?;
        uploads.push((agent_dir.to_owned(), agent));
    }
    let mut d = Deployment::new(docker.clone(), run.clone(), workload.container(), storage, run.object_name("replay"))
        .with_uploads(uploads);
    let bounds = ExploreSection::default();
    let oracle = Oracle {
        log: &log,
        epoch: Instant::now(),
        accounts: meta.workload.accounts,
        ready_timeout: section.ready_timeout,
        cancel,
        bounds: &bounds,
        seed: 0,
        replay: None,
    };
    let judged = judge(&mut d, &*workload, &oracle, &log).await;
    let kept = if keep {
        // Docker takes an id's first 12 digits as the container.
        let name = d.container_id().map(|id| id.chars().take(12).collect::<String>());
        let addr = d.addr();
        d.leak();
        name.map(|n| (n, addr))
    } else {
        if let Err(e) = d.teardown().await {
            tracing::warn!("could not remove the replayed state {state}: {}", error_chain(&e));
        }
        None
    };
    let (verdict, detail) = judged.map_err(bad)?;
    Ok(Replayed { state, verdict, detail, kept })
}

/// How to get into a replayed state's container: a shell, and the
/// workload's own client where its image has one
/// ([`crashlab_workloads::Workload::client_command`]).
pub fn how_to_enter(kind: &str, container: &str) -> Vec<String> {
    let mut out = vec![format!("a shell: docker exec -it {container} sh")];
    let client = WorkloadKind::named(kind).and_then(|k| k.def().workload().client_command());
    if let Some(client) = client {
        out.push(format!("the server's client: docker exec -it {container} {client}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history() -> History {
        let mut h = History::with_sector_size(4096);
        h.push_op(Op::Create { path: "db-journal".into(), file: 7 });
        h.push_op(Op::Write { file: 7, offset: 0, data: vec![1u8; 1000].into() });
        h.push_barrier(Barrier::Fsync(7));
        h.push_op(Op::Write { file: 3, offset: 4096, data: vec![2u8; 24].into() });
        h.push_op(Op::Truncate { file: 3, size: 9000 });
        h.push_op(Op::Mkdir { path: "d".into(), perm: 0o755, uid: 1, gid: 2 });
        h.push_op(Op::Symlink { path: "d/l".into(), target: "../db".into() });
        h.push_op(Op::Link { path: "d/h".into(), file: 3 });
        h.push_op(Op::Rename { from: "d/h".into(), to: "d/i".into() });
        h.push_barrier(Barrier::DirFsync("d".into()));
        h.push_op(Op::Rmdir { path: "e".into() });
        h.push_barrier(Barrier::Fdatasync(3));
        h.push_op(Op::Unlink { path: "db-journal".into() });
        h.push_barrier(Barrier::OSync(3));
        h
    }

    #[test]
    fn a_replayed_state_is_entered_with_the_workload_s_own_client() {
        let cases = [
            ("mariadb", Some("mariadb -uroot -pcrashlab")),
            ("postgres", Some("psql -U postgres")),
            ("redis", Some("redis-cli")),
            ("sqlite", None),
            ("fsync-log", None),
            ("oracle", None),
        ];
        for (kind, client) in cases {
            let lines = how_to_enter(kind, "c0ffee");
            assert_eq!(lines[0], "a shell: docker exec -it c0ffee sh", "{kind}");
            let want = client.map(|c| format!("the server's client: docker exec -it c0ffee {c}"));
            assert_eq!(lines.get(1), want.as_ref(), "{kind}");
            assert_eq!(lines.len(), 1 + usize::from(client.is_some()), "{kind}");
        }
    }

    #[test]
    fn a_history_reads_back_as_it_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let h = history();
        save_history(&h, dir.path()).unwrap();
        let back = load_history(dir.path()).unwrap();
        assert_eq!(back, h);
        assert_eq!(std::fs::metadata(dir.path().join(HISTORY_DATA)).unwrap().len(), 1024);
    }

    #[test]
    fn a_history_whose_data_is_short_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        save_history(&history(), dir.path()).unwrap();
        std::fs::write(dir.path().join(HISTORY_DATA), [0u8; 10]).unwrap();
        let e = load_history(dir.path()).unwrap_err();
        assert!(e.to_string().contains("lie beyond its 10 bytes"), "{e}");
    }

    #[test]
    fn an_ack_log_reads_back_with_its_outcomes_and_times() {
        let t = |id| Transfer { id, src: 1, dst: 2, amount: -5 };
        let log = AckLog {
            entries: vec![(t(1), Outcome::Acked), (t(2), Outcome::Aborted), (t(3), Outcome::InDoubt)],
            times: vec![Span { start_us: 1, end_us: 2 }, Span { start_us: 3, end_us: 4 }, Span::default()],
        };
        let text = serde_json::to_string(&SavedLog::of(&log)).unwrap();
        let back: SavedLog = serde_json::from_str(&text).unwrap();
        assert_eq!(back.log().unwrap(), log);
        let untimed = AckLog { entries: log.entries.clone(), times: vec![] };
        assert_eq!(SavedLog::of(&untimed).log().unwrap(), untimed);
    }

    #[test]
    fn a_saved_workload_gives_back_the_section_but_its_load_settings() {
        let section = crate::scenario::Scenario::parse(
            "name = \"t\"\n[workload]\nkind = \"mariadb\"\nimage = \"me/db:1\"\nserver-args = [\"--x=1\"]\n\
             env = [\"A=b\"]\nuser = \"999:999\"\nbinds = [\"/etc/hostname:/etc/my.cnf\"]\nport = 3307\n\
             ready-timeout = \"90s\"\naccounts = 7\nclients = 3\nload = \"9s\"\n\
             [matrix]\nstrategies = [\"bind-mount\"]\nfaults = [\"crash-states\"]\n",
            "test",
        )
        .unwrap()
        .workload;
        let saved: SavedWorkload =
            serde_json::from_str(&serde_json::to_string(&SavedWorkload::of(&section)).unwrap()).unwrap();
        let back = saved.section().unwrap();
        assert_eq!((back.clients, back.load), (1, Duration::from_secs(1)), "load settings take the replay's");
        assert_eq!(WorkloadSection { clients: section.clients, load: section.load, ..back }, section);
    }

    #[test]
    fn a_kept_point_is_found_by_its_cell_cycle_and_point_and_only_the_first_failure_is_kept() {
        let state = tempfile::tempdir().unwrap();
        let run = RunContext::create(state.path()).unwrap();
        let section = crate::scenario::Scenario::parse(
            "name = \"t\"\n[workload]\nkind = \"sqlite\"\nserver-args = [\"--journal-mode=delete\"]\n[matrix]\nstrategies = [\"bind-mount\"]\nfaults = [\"crash-states\"]\n",
            "test",
        )
        .unwrap()
        .workload;
        let keeper = Keeper::new(&run, "sqlite/bind-mount/crash-states", 2, &section);
        let failure = StateFailure {
            id: "p0".into(),
            verdict: Verdict::LostWrites,
            detail: "1 of 9 acknowledged commits missing".into(),
            dropped: String::new(),
            replay: None,
        };
        let base = |n: &str| {
            let b = run.dir().join(n);
            std::fs::create_dir_all(b.join("sub")).unwrap();
            std::fs::write(b.join("sub/db"), b"x").unwrap();
            b
        };
        let (first, second) = (keeper.next_point(), keeper.next_point());
        assert_eq!((first, second), (1, 2));
        let log = AckLog::default();
        let command = keeper.keep(second, ("end of load", 12.5), &base("b2"), &history(), &log, &failure).unwrap();
        let root = state.path().canonicalize().unwrap().join(DIR).join(run.id());
        assert_eq!(
            command.as_deref(),
            Some(
                format!(
                    "crashlab replay {} --cell sqlite/bind-mount/crash-states --cycle 2 --point 2 --state 'p0'",
                    root.display()
                )
                .as_str()
            )
        );
        assert!(!run.dir().join("b2").exists(), "the base was moved");
        let again = keeper.keep(first, ("end of load", 1.0), &base("b1"), &history(), &log, &failure).unwrap();
        assert_eq!(again, None, "one point per cycle");

        let dir = locate(root.to_str().unwrap(), state.path(), None, 2, 2).unwrap();
        assert_eq!(std::fs::read(dir.join(BASE).join("sub/db")).unwrap(), b"x");
        let meta = read_meta(&dir).unwrap();
        assert_eq!((meta.state.as_str(), meta.verdict, meta.at_ms), ("p0", Verdict::LostWrites, 12.5));
        assert_eq!(
            meta.workload.section().unwrap(),
            WorkloadSection { clients: 1, load: Duration::from_secs(1), ..section }
        );
        assert_eq!(locate(run.id(), state.path(), Some("sqlite/bind-mount/crash-states"), 2, 2).unwrap(), dir);
        let missing = locate(run.id(), state.path(), None, 1, 1).unwrap_err().to_string();
        assert!(missing.contains("kept: sqlite/bind-mount/crash-states cycle-2 point-2"), "{missing}");
        assert!(locate("../x", state.path(), None, 1, 1).is_err());
    }
}

/// What [`clean_kept`] found under `<state dir>/replays`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct KeptPoints {
    /// Runs whose kept points were there (removed, when asked).
    pub runs: usize,
    /// Their size on disk, in bytes.
    pub bytes: u64,
    /// Runs left alone because they are still going.
    pub live: usize,
}

/// Counts, and with `remove` removes, the crash points kept for replay
/// under `<state dir>/replays`: one directory per run, named by its id.
/// A run that is still going (its journal locked) is left alone, as is any
/// entry that is not a run id, so nothing outside the directory is ever
/// touched. Holds the runs lock while it looks, as `clean` does, so a run
/// being born is not taken for dead.
pub fn clean_kept(state_dir: &Path, remove: bool) -> std::io::Result<KeptPoints> {
    use crate::run::journal::{self, Owner};
    let root = state_dir.join(DIR);
    let mut found = KeptPoints::default();
    let entries = match std::fs::read_dir(&root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e),
    };
    let _lock = journal::lock_runs(&state_dir.join("runs"), true)?;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !journal::is_run_id(&name) || !entry.file_type()?.is_dir() {
            continue;
        }
        if matches!(journal::owner(&state_dir.join("runs").join(&name))?, Owner::Alive) {
            found.live += 1;
            continue;
        }
        found.runs += 1;
        found.bytes += crate::storage::dir_size(&entry.path());
        if remove {
            std::fs::remove_dir_all(entry.path())?;
        }
    }
    Ok(found)
}

#[cfg(test)]
mod clean_tests {
    use super::*;

    #[test]
    fn clean_kept_removes_finished_runs_points_and_nothing_else() {
        let state = tempfile::tempdir().unwrap();
        let kept = state.path().join(DIR);
        for name in ["1796000000-abcd", "1796000001-0123"] {
            std::fs::create_dir_all(kept.join(name).join("cell/cycle-1/point-1/base")).unwrap();
            std::fs::write(kept.join(name).join("cell/cycle-1/point-1/base/f"), [0u8; 100]).unwrap();
        }
        // A run still going: its journal locked, as a live run holds it.
        let live = state.path().join("runs/1796000002-beef");
        std::fs::create_dir_all(&live).unwrap();
        std::fs::create_dir_all(kept.join("1796000002-beef")).unwrap();
        let journal = std::fs::File::create(live.join(crate::run::journal::FILE)).unwrap();
        journal.lock().unwrap();
        std::fs::create_dir_all(kept.join("not-a-run")).unwrap();
        std::fs::write(kept.join("stray-file"), b"x").unwrap();

        let counted = clean_kept(state.path(), false).unwrap();
        assert_eq!(counted, KeptPoints { runs: 2, bytes: 200, live: 1 });
        assert!(kept.join("1796000000-abcd").exists(), "counting removes nothing");

        let removed = clean_kept(state.path(), true).unwrap();
        assert_eq!(removed, counted);
        assert!(!kept.join("1796000000-abcd").exists() && !kept.join("1796000001-0123").exists());
        assert!(kept.join("1796000002-beef").exists(), "a live run's points stay");
        assert!(kept.join("not-a-run").exists() && kept.join("stray-file").exists(), "only run ids are touched");
        assert_eq!(clean_kept(state.path(), true).unwrap(), KeptPoints { live: 1, ..KeptPoints::default() });
    }

    #[test]
    fn clean_kept_without_a_replays_directory_finds_nothing() {
        let state = tempfile::tempdir().unwrap();
        assert_eq!(clean_kept(state.path(), true).unwrap(), KeptPoints::default());
        assert!(!state.path().join("runs").exists(), "no lock taken, nothing made");
    }
}

impl crate::explore::PointKeeper for Keeper {
    fn next_point(&self) -> u32 {
        Keeper::next_point(self)
    }

    fn keep(
        &self,
        point: u32,
        at: (&str, f64),
        base: &Path,
        history: &History,
        log: &AckLog,
        failure: &StateFailure,
    ) -> Result<Option<String>, String> {
        Keeper::keep(self, point, at, base, history, log, failure).map_err(|e| error_chain(&e))
    }
}
