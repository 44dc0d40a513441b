//! Checking crash states: the harness side of crash-state exploration.
//!
//! A crash point ([`CrashPoint`]) is a copy of the fault filesystem's
//! durable base and the unsynced history captured with it. The fault
//! filesystem's model ([`crashlab_faultfs::explore()`], see the
//! `crashlab-faultfs` crate docs, "Crash states") turns the pair into the
//! distinct file trees a crash at that point may leave, bounded by the
//! scenario's `[explore]` section. Each is checked as the live cycle is:
//! written out ([`crashlab_faultfs::materialise()`]) into a new directory
//! beside the mount, a fresh container of the workload started on it (a
//! bind mount), the server's own crash recovery awaited, the data read
//! back, and the same checker run against the ack log **cut at the crash
//! point**: a commit acknowledged after it was only in flight at the crash
//! and is in doubt ([`AckLog::cut_at`]). A server that does not come back
//! on a state is `corrupt`, as in the live cycle. Containers and
//! directories go as soon as their state is judged.
//!
//! The point's verdict is its worst state's, and the cycle's the worst of
//! the live recovery and every point. The report keeps every state's id
//! and verdict and, for the first failing state, which unsynced operations
//! it dropped or tore.

use crate::deploy::deployment::Deployment;
use crate::deploy::readiness::NotReady;
use crate::settings::ExploreSection;
use crate::storage::faultmount::CrashPoint;
use crate::storage::{Place, ProvisionOptions, Storage};
use crate::text::error_chain;
use crashlab_faultfs::{Base, ExploreConfig, FileId, History, Op, StateId};
use crashlab_reports::{CycleReport, Exploration, PointReport, StateFailure, StateReport, Verdict};
use crashlab_workloads::{AckLog, Workload};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Dropped operations named in a failure's description; the rest are
/// counted.
const DESCRIBED_OPS: usize = 8;

/// Keeps a cycle's first failing crash point for `crashlab replay`
/// (implemented by `replay::Keeper`, which sits beside this module and
/// reads such points back).
pub trait PointKeeper: Sync {
    /// The number of the next crash point of the cycle.
    fn next_point(&self) -> u32;
    /// Keeps `point` when it is the cycle's first failing one: the command
    /// that replays it, or `None` when a point was kept already.
    fn keep(
        &self,
        point: u32,
        at: (&str, f64),
        base: &Path,
        history: &History,
        log: &AckLog,
        failure: &StateFailure,
    ) -> Result<Option<String>, String>;
}

/// What every state of a cycle is judged against.
pub struct Oracle<'a> {
    /// The load's ack log, whole; each point cuts it at its own time.
    pub log: &'a AckLog,
    /// The zero of the log's times.
    pub epoch: Instant,
    pub accounts: u32,
    /// How long a server may take to come back on a state.
    pub ready_timeout: Duration,
    pub cancel: &'a watch::Receiver<bool>,
    pub bounds: &'a ExploreSection,
    /// Seed of the exploration's samples (the cycle's).
    pub seed: u64,
    /// Keeps the cycle's first failing point for `crashlab replay`.
    pub replay: Option<&'a dyn PointKeeper>,
}

impl Oracle<'_> {
    fn config(&self) -> ExploreConfig {
        ExploreConfig {
            max_states: self.bounds.max_states as usize,
            max_drop: self.bounds.k as usize,
            max_torn_splits: u64::from(self.bounds.torn_splits),
            seed: self.seed,
            ..ExploreConfig::default()
        }
    }
}

/// Folds an exploration into its cycle: the worst state's verdict if worse
/// than the live one, and a sentence in the detail.
pub fn fold(report: &mut CycleReport, explored: Exploration) {
    let mut notes = Vec::new();
    match explored.worst() {
        Some(worst) => report.verdict = report.verdict.max(worst),
        // A crash point whose states were never checked is no evidence:
        // the live recovery alone must not pass for an exploration.
        None => {
            report.verdict = Verdict::Error;
            notes.push("no crash state was checked".to_owned());
        }
    }
    for point in &explored.points {
        if let Some(e) = &point.error {
            notes.push(format!("crash states at {}: {e}", point.at));
        } else if let Some(f) = &point.first_failure {
            notes.push(format!(
                "crash states at {}: {} of {} failed; the first, `{}`, is {}: {}",
                point.at,
                point.failed(),
                point.states.len(),
                f.id,
                f.verdict,
                f.detail
            ));
        }
    }
    if !notes.is_empty() {
        if !report.detail.is_empty() {
            report.detail.push_str("; ");
        }
        report.detail.push_str(&notes.join("; "));
    }
    report.explore = Some(explored);
}

/// Explores one crash point and checks its states, each in a fresh
/// container of the workload beside the deployment `live` (whose image,
/// uploads, run and names it borrows). `label` names the point in the
/// report; `states_dir` is where states are written out. The point's base
/// copy is removed at the end, unless the oracle's keeper keeps it for a
/// replay of its first failing state.
pub async fn check_point(
    live: &Deployment,
    workload: &dyn Workload,
    point: CrashPoint,
    label: &str,
    states_dir: &Path,
    oracle: &Oracle<'_>,
) -> PointReport {
    let started = Instant::now();
    let at_us = point.at.saturating_duration_since(oracle.epoch).as_micros() as u64;
    let mut report = PointReport {
        at: label.to_owned(),
        at_ms: at_us as f64 / 1e3,
        ops: point.history.ops().len() as u64,
        bytes: point.history.bytes(),
        files: point.history.files() as u64,
        ..PointReport::default()
    };
    let log = oracle.log.cut_at(at_us);
    let number = oracle.replay.map(|k| k.next_point());
    if let Err(e) = check_states(live, workload, &point, states_dir, oracle, &log, &mut report).await {
        report.error = Some(e);
    }
    if let (Some(keeper), Some(n), Some(failure)) = (oracle.replay, number, report.first_failure.as_mut()) {
        match keeper.keep(n, (label, report.at_ms), &point.base, &point.history, &log, failure) {
            Ok(command) => failure.replay = command,
            Err(e) => tracing::warn!("could not keep the crash point for a replay: {e}"),
        }
    }
    let base = point.base.clone();
    if let Err(e) = tokio::task::spawn_blocking(move || remove_tree(&base)).await.expect("removal panicked") {
        tracing::warn!("could not remove the crash point {}: {e}", point.base.display());
    }
    report.ms = started.elapsed().as_secs_f64() * 1e3;
    report
}

fn remove_tree(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

async fn check_states(
    live: &Deployment,
    workload: &dyn Workload,
    point: &CrashPoint,
    states_dir: &Path,
    oracle: &Oracle<'_>,
    log: &AckLog,
    report: &mut PointReport,
) -> Result<(), String> {
    let history = Arc::new(point.history.clone());
    let (base_dir, config, h) = (point.base.clone(), oracle.config(), history.clone());
    let (base, found, names) = tokio::task::spawn_blocking(move || {
        let base = Base::open(&base_dir)?;
        let found = crashlab_faultfs::explore(&base, &h, &config)?;
        Ok::<_, crashlab_faultfs::ExploreError>((Arc::new(base), found, file_names(&base_dir, &h)))
    })
    .await
    .expect("exploration panicked")
    .map_err(|e| format!("could not explore: {}", error_chain(&e)))?;
    report.candidates = found.candidates as u64;
    report.distinct = found.distinct as u64;
    report.sampled = found.sampled;
    report.unsynced_files = unsynced_files(&history, &names);
    std::fs::create_dir_all(states_dir).map_err(|e| format!("could not create {}: {e}", states_dir.display()))?;
    let parallel = oracle.bounds.parallel.max(1) as usize;
    let (base, history) = (&base, &history);
    let checks = futures_util::stream::iter(found.states.into_iter().enumerate())
        .map(|(i, state)| {
            let name = format!("s{i}");
            async move {
                if *oracle.cancel.borrow() {
                    return (state, Err("interrupted".to_owned()), 0.0);
                }
                let started = Instant::now();
                let judged =
                    check_state(live, workload, base, history, &state.id, states_dir, &name, oracle, log).await;
                (state, judged, started.elapsed().as_secs_f64() * 1e3)
            }
        })
        .buffered(parallel);
    let mut checks = std::pin::pin!(checks);
    while let Some((state, judged, ms)) = checks.next().await {
        let (verdict, detail) = judged?;
        report.states.push(StateReport { id: state.id.to_string(), verdict, ms });
        if verdict > Verdict::Intact && report.first_failure.is_none() {
            report.first_failure = Some(StateFailure {
                id: state.id.to_string(),
                verdict,
                detail,
                dropped: describe(history, &state.id, &names),
                replay: None,
            });
        }
    }
    Ok(())
}

/// One state: written out, served, recovered, read back and judged.
/// `Err` when the harness itself failed (the cycle is then `error`).
#[expect(clippy::too_many_arguments, reason = "the steps of one check, each needing its part")]
async fn check_state(
    live: &Deployment,
    workload: &dyn Workload,
    base: &Arc<Base>,
    history: &Arc<History>,
    id: &StateId,
    states_dir: &Path,
    name: &str,
    oracle: &Oracle<'_>,
    log: &AckLog,
) -> Result<(Verdict, String), String> {
    let docker = live.docker();
    let place = Place::HostSubdir(states_dir.to_owned());
    let storage = Storage::provision(docker, live.run(), &place, name, ProvisionOptions::default())
        .await
        .map_err(|e| format!("could not create the directory of state {id}: {}", error_chain(&e)))?;
    let dir = states_dir.join(name);
    let (b, h, i, out) = (base.clone(), history.clone(), id.clone(), dir.clone());
    let written = tokio::task::spawn_blocking(move || crashlab_faultfs::materialise(&b, &h, &i, &out))
        .await
        .expect("materialise panicked");
    let mut d = Deployment::new(
        docker.clone(),
        live.run().clone(),
        workload.container(),
        storage,
        format!("{}-{name}", live.name()),
    )
    .with_uploads(live.uploads().to_vec());
    let judged = match written {
        Ok(()) => judge(&mut d, workload, oracle, log).await,
        Err(e) => Err(format!("could not write out state {id}: {}", error_chain(&e))),
    };
    if let Err(e) = d.teardown().await {
        tracing::warn!("could not remove state {id}: {}", error_chain(&e));
    }
    judged
}

/// Starts the state's server in `d`, awaits its recovery, reads the data
/// back, runs the engine's check and judges it against `log`. The
/// deployment is left as it is; `crashlab replay` judges with this too.
pub(crate) async fn judge(
    d: &mut Deployment,
    workload: &dyn Workload,
    oracle: &Oracle<'_>,
    log: &AckLog,
) -> Result<(Verdict, String), String> {
    d.create().await.map_err(|e| error_chain(&e))?;
    d.start().await.map_err(|e| error_chain(&e))?;
    judge_started(d, workload, oracle, log).await
}

/// [`judge`] once the server of `d` has started: a cycle's recheck
/// ([`crate::cycle`]) puts a copy of the data in place between the two.
pub(crate) async fn judge_started(
    d: &mut Deployment,
    workload: &dyn Workload,
    oracle: &Oracle<'_>,
    log: &AckLog,
) -> Result<(Verdict, String), String> {
    let addr = match d.wait_ready(workload, oracle.ready_timeout, Some(oracle.cancel)).await {
        Ok(addr) => addr,
        Err(NotReady::Docker(e)) => return Err(e),
        // The engine does not come back on this state.
        Err(e) => return Ok((Verdict::Corrupt, e.detail())),
    };
    let found = d.verify(workload, addr, log, oracle.accounts).await?;
    Ok((found.verdict, found.detail))
}

/// A name for each file the history writes: its path in the base (found by
/// the inode its backing object shares with it), or the name it was
/// created under.
/// The files of `history` with the most unsynced bytes, named, with their
/// writes and bytes, most first; at most eight.
fn unsynced_files(history: &History, names: &HashMap<FileId, PathBuf>) -> Vec<String> {
    let mut per_file: HashMap<FileId, (u64, u64)> = HashMap::new();
    for op in history.ops() {
        if let Op::Write { file, data, .. } = op {
            let entry = per_file.entry(*file).or_default();
            *entry = (entry.0 + 1, entry.1 + data.len() as u64);
        }
    }
    let mut files: Vec<(FileId, (u64, u64))> = per_file.into_iter().collect();
    files.sort_by(|a, b| b.1.1.cmp(&a.1.1).then(a.0.cmp(&b.0)));
    files
        .into_iter()
        .take(8)
        .map(|(id, (writes, bytes))| {
            let name = names.get(&id).map_or_else(|| format!("file {id}"), |p| p.display().to_string());
            format!("{name}: {writes} write{}, {bytes} B", if writes == 1 { "" } else { "s" })
        })
        .collect()
}

fn file_names(base: &Path, history: &History) -> HashMap<FileId, PathBuf> {
    let mut by_ino: HashMap<u64, PathBuf> = HashMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(base.join(&rel)) else { continue };
        for entry in entries.flatten() {
            let name = rel.join(entry.file_name());
            if name.as_os_str() == ".crashlab-faultfs" {
                continue;
            }
            match entry.metadata() {
                Ok(m) if m.is_dir() => stack.push(name),
                Ok(m) if m.is_file() => {
                    by_ino.entry(m.ino()).or_insert(name);
                }
                _ => {}
            }
        }
    }
    let mut names = HashMap::new();
    if let Ok(entries) = std::fs::read_dir(base.join(".crashlab-faultfs")) {
        for entry in entries.flatten() {
            let id = entry.file_name().to_str().and_then(|n| n.parse::<FileId>().ok());
            if let (Some(id), Ok(m)) = (id, entry.metadata())
                && let Some(path) = by_ino.get(&m.ino())
            {
                names.insert(id, path.clone());
            }
        }
    }
    for op in history.ops() {
        if let Op::Create { path, file } | Op::Link { path, file } = op {
            names.entry(*file).or_insert_with(|| path.clone());
        }
    }
    names
}

/// One operation in words.
fn describe_op(op: &Op, names: &HashMap<FileId, PathBuf>) -> String {
    let file = |f: &FileId| names.get(f).map_or_else(|| format!("file #{f}"), |p| p.display().to_string());
    match op {
        Op::Write { file: f, offset, data } => format!("write of {} B at {offset} of {}", data.len(), file(f)),
        Op::Truncate { file: f, size } => format!("truncate of {} to {size} B", file(f)),
        Op::Create { path, .. } => format!("create {}", path.display()),
        Op::Link { path, .. } => format!("link {}", path.display()),
        Op::Mkdir { path, .. } => format!("mkdir {}", path.display()),
        Op::Symlink { path, .. } => format!("symlink {}", path.display()),
        Op::Unlink { path } => format!("unlink {}", path.display()),
        Op::Rmdir { path } => format!("rmdir {}", path.display()),
        Op::Rename { from, to } => format!("rename {} to {}", from.display(), to.display()),
    }
}

/// What a state keeps of its history, in words: the operations it drops
/// (the first few by name) and the write it tears.
fn describe(history: &History, id: &StateId, names: &HashMap<FileId, PathBuf>) -> String {
    let Ok(kept) = crashlab_faultfs::kept_ops(history, id) else {
        return format!("state {id} does not resolve against its history");
    };
    let ops = history.ops();
    let torn = kept.torn.map(|(i, _)| i);
    let dropped: Vec<usize> = kept.dropped.iter().copied().filter(|&i| Some(i) != torn).collect();
    let mut out = format!("of {} unsynced operations it keeps {}", ops.len(), kept.kept.len());
    if !dropped.is_empty() {
        let named: Vec<String> =
            dropped.iter().take(DESCRIBED_OPS).map(|&i| format!("#{i} {}", describe_op(ops[i], names))).collect();
        let more = dropped.len().saturating_sub(DESCRIBED_OPS);
        out.push_str(&format!(", drops {}: {}", dropped.len(), named.join(", ")));
        if more > 0 {
            out.push_str(&format!(" and {more} more"));
        }
    }
    if let Some((i, bytes)) = kept.torn {
        out.push_str(&format!(", and tears #{i} {} after {bytes} B", describe_op(ops[i], names)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crashlab_faultfs::Barrier;

    fn history() -> History {
        let mut h = History::new();
        h.push_op(Op::Create { path: "db-journal".into(), file: 7 });
        h.push_op(Op::Write { file: 7, offset: 0, data: vec![1u8; 1024].into() });
        h.push_barrier(Barrier::Fsync(7));
        h.push_op(Op::Write { file: 3, offset: 4096, data: vec![2u8; 1024].into() });
        h.push_op(Op::Unlink { path: "db-journal".into() });
        h
    }

    #[test]
    fn a_failing_state_is_described_by_what_it_drops_and_tears() {
        let h = history();
        let names = HashMap::from([(3, PathBuf::from("db")), (7, PathBuf::from("db-journal"))]);
        let dropped = describe(&h, &"e1-drop{3}".parse().unwrap(), &names);
        assert_eq!(dropped, "of 4 unsynced operations it keeps 3, drops 1: #3 unlink db-journal");
        let torn = describe(&h, &"t2@1/2".parse().unwrap(), &names);
        assert_eq!(
            torn,
            "of 4 unsynced operations it keeps 2, drops 1: #3 unlink db-journal, and tears #2 write of 1024 B at 4096 of db after 512 B"
        );
        let unknown = describe_op(&Op::Truncate { file: 9, size: 0 }, &names);
        assert_eq!(unknown, "truncate of file #9 to 0 B");
    }

    #[test]
    fn files_are_named_by_their_base_path_or_their_create() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".crashlab-faultfs")).unwrap();
        std::fs::create_dir_all(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/db"), b"x").unwrap();
        std::fs::hard_link(dir.path().join("sub/db"), dir.path().join(".crashlab-faultfs/3")).unwrap();
        let names = file_names(dir.path(), &history());
        assert_eq!(names[&3], Path::new("sub/db"));
        assert_eq!(names[&7], Path::new("db-journal"));
    }

    #[test]
    fn a_state_verdict_worse_than_the_live_one_decides_the_cycle() {
        let mut report = CycleReport {
            verdict: Verdict::Intact,
            acked_writes: 10,
            lost_acked_writes: 0,
            in_doubt_writes: 0,
            invariant_violations: 0,
            load_s: 1.0,
            recovery_ms: None,
            cycle_ms: 0.0,
            detail: String::new(),
            faultfs: None,
            phases: Default::default(),
            backup: None,
            fired: None,
            explore: None,
            replication: None,
            timeline: None,
            steps: Vec::new(),
            lost_acks_ms: None,
        };
        let state = |id: &str, verdict| StateReport { id: id.into(), verdict, ms: 1.0 };
        let point = PointReport {
            at: "end of load".into(),
            states: vec![state("p0", Verdict::Intact), state("p1", Verdict::LostWrites)],
            first_failure: Some(StateFailure {
                id: "p1".into(),
                verdict: Verdict::LostWrites,
                detail: "1 of 10 acknowledged commits missing".into(),
                dropped: String::new(),
                replay: None,
            }),
            ..PointReport::default()
        };
        fold(&mut report, Exploration { points: vec![point] });
        assert_eq!(report.verdict, Verdict::LostWrites);
        assert_eq!(
            report.detail,
            "crash states at end of load: 1 of 2 failed; the first, `p1`, is lost-writes: 1 of 10 acknowledged commits \
             missing"
        );
        let mut errored = report.clone();
        let broken = PointReport { error: Some("could not explore".into()), ..PointReport::default() };
        fold(&mut errored, Exploration { points: vec![broken] });
        assert_eq!(errored.verdict, Verdict::Error, "a point that could not be explored is no evidence");
        let mut unchecked = report.clone();
        unchecked.verdict = Verdict::Intact;
        fold(&mut unchecked, Exploration { points: vec![PointReport::default()] });
        assert_eq!(unchecked.verdict, Verdict::Error, "a point with no state checked is no evidence");
        assert!(unchecked.detail.ends_with("no crash state was checked"), "{}", unchecked.detail);
    }
}
