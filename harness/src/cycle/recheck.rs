//! The recheck: whether the damage a durable cell's first look found is in
//! the data directory's files or only in what was read.
//!
//! When a cell expects `intact` and the data read back after recovery is
//! worse (`lost-writes`, `data-gone`, `inconsistent` or `corrupt`), the
//! live server is frozen (`docker pause`), its data directory copied out
//! through the Docker API as a tar archive, and the server thawed; a fresh
//! container of the workload is then started on the copy (its own host
//! directory under the run directory, its own container, both named after
//! the live deployment and labelled with the run, so the run's cleanup
//! removes whatever an interrupted recheck leaves), its crash recovery
//! awaited, and the data read back and checked against the same ack log,
//! as a crash state is ([`crate::explore::judge_started`]). The copy and
//! its container go as soon as it is judged.
//!
//! Why freeze rather than stop: a clean stop makes the engine write out
//! what it holds in memory (InnoDB flushes its buffer pool and checkpoints)
//! and so changes the files the question is about, and the live server
//! must go on answering for the hooks after this one and, unless the cycle
//! is `corrupt`, for the next cycle. The cgroup freezer writes nothing: the
//! copy is the file image a kill at that instant would leave, page cache
//! included, which the fresh server recovers from as the live one did
//! after the fault.
//!
//! What the verdict becomes ([`fold`]): if the copy is not `intact`, the
//! damage is in the files and the worse of the two verdicts stands; if it
//! is `intact`, the first look's damage was a reading artefact, and the
//! cycle is `error` (no evidence either way, never a pass) rather than a
//! claim about the engine. `docs/design.md` argues the rule.

use super::hooks::{CycleHook, Evidence, Stage};
use crate::deploy::deployment::Deployment;
use crate::explore::{Oracle, judge_started};
use crate::storage::{Place, ProvisionOptions, Storage};
use crate::text::error_chain;
use crashlab_reports::{CycleReport, Verdict};
use futures_util::future::BoxFuture;
use std::path::Path;

/// Where copies go, under the run directory.
const DIR: &str = "recheck";

/// Rechecks a broken cycle of a cell that expects `expected`.
pub struct RecheckHook {
    pub expected: Verdict,
}

/// Whether a cycle whose first look found `found` is rechecked: only on a
/// durable expectation, and only when the data was read back worse.
pub fn applies(expected: Verdict, found: Verdict) -> bool {
    expected == Verdict::Intact && found > Verdict::Intact && found != Verdict::Error
}

/// What a fresh server on a copy of the data directory found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rechecked {
    /// Its verdict and the checker's words.
    Found(Verdict, String),
    /// The recheck could not be done, and why.
    Failed(String),
}

/// Folds a recheck into a cycle whose first look found `first`: the
/// verdict (never better) and a sentence at the end of the detail.
pub fn fold(report: &mut CycleReport, first: Verdict, rechecked: &Rechecked) {
    let note = match rechecked {
        Rechecked::Found(Verdict::Intact, _) => {
            report.verdict = report.verdict.max(Verdict::Error);
            format!(
                "a fresh server on a copy found the data intact: the first look's damage was a reading artefact, \
                 so the cycle is error (no evidence), not {first}"
            )
        }
        Rechecked::Found(Verdict::Error, why) => format!("a fresh server on a copy could not judge it: {why}"),
        Rechecked::Found(verdict, detail) => {
            report.verdict = report.verdict.max(*verdict);
            let said = if detail.is_empty() { String::new() } else { format!(" ({detail})") };
            format!("the damage is in the files: a fresh server on a copy found {verdict}{said}")
        }
        Rechecked::Failed(why) => format!("a recheck on a copy of the data directory failed: {why}"),
    };
    if !report.detail.is_empty() {
        report.detail.push_str("; ");
    }
    report.detail.push_str(&note);
}

impl CycleHook for RecheckHook {
    fn contribute<'a>(
        &'a mut self,
        stage: &'a mut Stage<'_>,
        evidence: &'a Evidence<'_>,
        report: &'a mut CycleReport,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let Some(found) = evidence.found else { return };
            if !applies(self.expected, found.verdict) || *evidence.cancel.borrow() {
                return;
            }
            let rechecked = match on_a_copy(stage, evidence).await {
                Ok((verdict, detail)) => Rechecked::Found(verdict, detail),
                Err(why) => Rechecked::Failed(why),
            };
            fold(report, found.verdict, &rechecked);
        })
    }
}

/// Copies the live data directory, starts a fresh server on the copy and
/// judges it; everything it made is gone when it returns.
async fn on_a_copy(stage: &mut Stage<'_>, evidence: &Evidence<'_>) -> Result<(Verdict, String), String> {
    let run = evidence.run;
    let dir = run.dir().join(DIR);
    std::fs::create_dir_all(&dir).map_err(|e| format!("could not create {}: {e}", dir.display()))?;
    let name = format!("{}-recheck{}", stage.deployment.name(), evidence.cycle);
    let archive = dir.join(format!("{name}.tar"));
    let copied = copy_out(stage.deployment, &archive).await;
    let judged = match copied {
        Ok(()) => judge_copy(stage, evidence, &dir, &name, &archive).await,
        Err(e) => Err(e),
    };
    if let Err(e) = std::fs::remove_file(&archive)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!("could not remove {}: {e}", archive.display());
    }
    judged
}

/// The live data directory as a tar archive at `archive`, the server
/// frozen while it is read (a server no longer running is copied as it is).
async fn copy_out(live: &mut Deployment, archive: &Path) -> Result<(), String> {
    let id = live.container_id().ok_or("the deployment has no container")?.to_owned();
    let running = live.is_running().await.map_err(|e| error_chain(&e))?;
    if running {
        live.pause().await.map_err(|e| format!("could not freeze the server: {}", error_chain(&e)))?;
    }
    let copied = live.docker().download(&id, &live.spec().data_dir, archive).await;
    if running {
        live.unpause().await.map_err(|e| format!("could not thaw the server: {}", error_chain(&e)))?;
    }
    copied.map(drop).map_err(|e| format!("could not copy the data directory: {}", error_chain(&e)))
}

/// A fresh container of the workload, on a new host directory that holds
/// the archive's copy, started, recovered and judged, then removed.
async fn judge_copy(
    stage: &mut Stage<'_>,
    evidence: &Evidence<'_>,
    dir: &Path,
    name: &str,
    archive: &Path,
) -> Result<(Verdict, String), String> {
    let live = &*stage.deployment;
    let docker = live.docker();
    let storage =
        Storage::provision(docker, evidence.run, &Place::HostSubdir(dir.to_owned()), name, ProvisionOptions::default())
            .await
            .map_err(|e| format!("could not create the copy's directory: {}", error_chain(&e)))?;
    let spec = stage.workload.container();
    let data_dir = spec.data_dir.trim_end_matches('/').to_owned();
    let mut d = Deployment::new(docker.clone(), evidence.run.clone(), spec, storage, name.to_owned())
        .with_uploads(live.uploads().to_vec());
    let oracle = Oracle {
        log: evidence.log,
        epoch: evidence.epoch,
        accounts: evidence.accounts,
        ready_timeout: stage.scenario.workload.ready_timeout,
        cancel: evidence.cancel,
        bounds: &stage.scenario.explore,
        seed: evidence.seed,
        replay: None,
    };
    let judged = async {
        d.create().await.map_err(|e| error_chain(&e))?;
        // The archive holds the data directory itself: it is extracted
        // into the directory's parent, over the empty mount.
        let parent = match data_dir.rsplit_once('/') {
            Some(("", _)) | None => "/".to_owned(),
            Some((parent, _)) => parent.to_owned(),
        };
        let id = d.container_id().ok_or("the copy's deployment has no container")?.to_owned();
        d.docker()
            .upload_file(&id, &parent, archive)
            .await
            .map_err(|e| format!("could not put the copy in place: {}", error_chain(&e)))?;
        // The copy is in place: the archive's disk is freed before the
        // server runs.
        let _ = std::fs::remove_file(archive);
        d.start().await.map_err(|e| error_chain(&e))?;
        judge_started(&mut d, stage.workload, &oracle, evidence.log).await
    }
    .await;
    if let Err(e) = d.teardown().await {
        tracing::warn!("could not remove the recheck's copy {name}: {}", error_chain(&e));
    }
    judged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(verdict: Verdict) -> CycleReport {
        CycleReport { verdict, detail: "first look".into(), ..super::super::phases::empty_report() }
    }

    #[test]
    fn only_a_durable_cell_read_back_worse_is_rechecked() {
        let cases = [
            (Verdict::Intact, Verdict::Intact, false),
            (Verdict::Intact, Verdict::LostWrites, true),
            (Verdict::Intact, Verdict::DataGone, true),
            (Verdict::Intact, Verdict::Inconsistent, true),
            (Verdict::Intact, Verdict::Corrupt, true),
            (Verdict::Intact, Verdict::Error, false),
            (Verdict::LostWrites, Verdict::Corrupt, false),
            (Verdict::DataGone, Verdict::DataGone, false),
        ];
        for (expected, found, want) in cases {
            assert_eq!(applies(expected, found), want, "{expected} / {found}");
        }
    }

    #[test]
    fn damage_in_the_files_keeps_the_worse_verdict() {
        let mut r = report(Verdict::Corrupt);
        fold(&mut r, Verdict::Corrupt, &Rechecked::Found(Verdict::Corrupt, "CHECK TABLE failed".into()));
        assert_eq!(r.verdict, Verdict::Corrupt);
        assert_eq!(
            r.detail,
            "first look; the damage is in the files: a fresh server on a copy found corrupt (CHECK TABLE failed)"
        );
        let mut worse = report(Verdict::LostWrites);
        fold(&mut worse, Verdict::LostWrites, &Rechecked::Found(Verdict::Inconsistent, String::new()));
        assert_eq!(worse.verdict, Verdict::Inconsistent, "the copy's worse verdict counts");
        assert!(worse.detail.ends_with("a fresh server on a copy found inconsistent"), "{}", worse.detail);
    }

    #[test]
    fn a_clean_copy_makes_the_cycle_error_never_a_pass() {
        let mut r = report(Verdict::Corrupt);
        fold(&mut r, Verdict::Corrupt, &Rechecked::Found(Verdict::Intact, String::new()));
        assert_eq!(r.verdict, Verdict::Error);
        assert!(!r.verdict.meets(Verdict::Intact));
        assert!(
            r.detail.ends_with(
                "a fresh server on a copy found the data intact: the first look's damage was a reading artefact, so \
                 the cycle is error (no evidence), not corrupt"
            ),
            "{}",
            r.detail
        );
    }

    #[test]
    fn a_recheck_that_could_not_judge_leaves_the_verdict() {
        for rechecked in
            [Rechecked::Failed("could not freeze the server".into()), Rechecked::Found(Verdict::Error, "x".into())]
        {
            let mut r = report(Verdict::Inconsistent);
            fold(&mut r, Verdict::Inconsistent, &rechecked);
            assert_eq!(r.verdict, Verdict::Inconsistent, "{rechecked:?}");
            assert!(r.detail.starts_with("first look; a "), "{}", r.detail);
        }
    }
}
