//! `backup-pgbackrest`: PostgreSQL's backups and WAL archive with
//! pgBackRest (Debian's package, in crashlab's PostgreSQL image). Its
//! repository is a directory of the cell's backup directory, bound into
//! every server container at pgBackRest's default repository path: it
//! stands for a backup server, so a host loss leaves it.
//!
//! The server archives every WAL segment into the repository as it
//! completes (`archive_mode = on`, `archive_command = 'pgbackrest
//! --stanza=crashlab archive-push %p'`, added unless the scenario's
//! `server-args` set them: the user's win, and the report names theirs).
//! How much a host loss costs is then what was not archived yet: a
//! segment is archived when full, or after `archive_timeout` seconds with
//! writes in it (PostgreSQL's default, 0, never forces a switch), so the
//! scenario's `-c archive_timeout=1s` bounds the loss to about a second
//! whatever the backup interval.
//!
//! Each backup runs `pgbackrest backup` by Docker exec in the server's
//! container (the tool reads the data directory and asks the server for
//! its backup start and stop): the cycle's first full, each later one
//! incremental on the one before. After a host loss a one-shot container
//! of the server's image runs `pgbackrest restore --set=LABEL` of the
//! cycle's latest backup into the new volume, which writes the recovery
//! settings (`restore_command`, `recovery.signal`): the server then
//! replays every archived segment to the end of the archive, and starts a
//! new timeline, on which it goes on archiving.
//!
//! A point-in-time restore (`[backup] restore-to`) restores the latest
//! backup that ended before the target with `--type=time
//! --target=TIME --target-action=promote`: recovery replays the archive
//! up to the last commit at or before the target (PostgreSQL's
//! `recovery_target_time`, inclusive) and promotes. The target is written
//! on the wall clock, which the server's containers share with the
//! harness, so it is the instant the ack log is cut at.
//!
//! The tool's own check of its repository is `pgbackrest verify` (every
//! backup file and archived segment against its checksum), after each
//! cycle, with the restore's outcome when there was one.

use super::{Artifact, BackupError, BackupMethod, ServerNeeds, Site, bind};
use crate::deploy::deployment::Deployment;
use crate::text::sh_quoted;
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType};
use crashlab_reports::{RestoreStep, ToolCheck};
use crashlab_workloads::Workload;
use futures_util::future::BoxFuture;
use std::path::PathBuf;
use std::time::SystemTime;

/// pgBackRest's default repository path, where every container sees the
/// repository (crashlab's image configures it there).
const REPO: &str = "/var/lib/pgbackrest";
/// The cell's backup directory's subdirectory that is the repository.
const REPO_DIR: &str = "pgbackrest";
/// The stanza: pgBackRest's name for the one cluster it backs up.
const STANZA: &str = "crashlab";
/// How the tool says a command completed.
const COMPLETED: &str = "completed successfully";
/// Where a restore sees the WAL `wal-stream` streamed, when there is one.
const STREAM: &str = "/stream";

/// pgBackRest's backups of one cell.
pub struct PgBackRest {
    pub(super) site: Site,
    /// The repository has the stanza of the cluster the server runs.
    stanza: bool,
    /// This cycle's completed backups, the full one first.
    backups: Vec<Listed>,
    /// The outcome of the cycle's restore, when there was one.
    restored: Option<ToolCheck>,
    /// The server's image, which carries the tool, for one-shot
    /// containers.
    pub(super) image: Option<String>,
    /// The restored server's container, whose log says how far its
    /// recovery replayed the archive, and the archive's newest segment
    /// when the restore ran.
    restored_server: Option<String>,
    archive_end: Option<String>,
    /// The last WAL segment the restored backup needs of the archive.
    backup_stop: Option<String>,
    /// The recovery target of a point-in-time restore, as given to the
    /// tool.
    target: Option<String>,
    /// The host directory of the WAL streamed beside the archive
    /// (`wal-stream`), which a restore puts in `pg_wal` for recovery to
    /// replay after the archive.
    stream: Option<PathBuf>,
    /// The restore's parts: `pgbackrest restore`, and the archive's
    /// replay as the restored server's log times it.
    steps: Vec<RestoreStep>,
}

impl PgBackRest {
    pub fn new(site: Site) -> PgBackRest {
        PgBackRest {
            site,
            stanza: false,
            backups: vec![],
            restored: None,
            image: None,
            restored_server: None,
            archive_end: None,
            backup_stop: None,
            target: None,
            stream: None,
            steps: vec![],
        }
    }

    /// pgBackRest's backups, with the WAL streamed into `stream` besides.
    pub(super) fn with_stream(site: Site, stream: PathBuf) -> PgBackRest {
        PgBackRest { stream: Some(stream), ..PgBackRest::new(site) }
    }

    fn repo(&self) -> PathBuf {
        self.site.path(REPO_DIR)
    }

    /// Runs the tool by Docker exec in the server's container, as the
    /// server's user; a non-zero exit is the tool's error.
    async fn exec(&self, d: &Deployment, args: &[&str]) -> Result<String, BackupError> {
        let id = d.container_id().ok_or(BackupError::NoContainer)?;
        let cmd = as_postgres(args);
        self.site.exec_checked(id, &cmd, format!("pgbackrest {}", args.join(" "))).await
    }

    /// Gives the repository to the server's user and creates the stanza,
    /// once per cluster: a new cluster (the service restored empty) gets a
    /// new repository, since pgBackRest keeps one cluster's history.
    async fn ensure_stanza(&mut self, d: &Deployment) -> Result<(), BackupError> {
        if self.stanza {
            return Ok(());
        }
        let id = d.container_id().ok_or(BackupError::NoContainer)?;
        let chown = ["chown", "-R", "postgres:postgres", REPO].map(str::to_owned);
        self.site.exec_checked(id, &chown, chown.join(" ")).await?;
        self.exec(d, &[&format!("--stanza={STANZA}"), "stanza-create"]).await?;
        self.stanza = true;
        Ok(())
    }

    /// One backup: full when the cycle has none yet, else incremental on
    /// the last. Its size is what it added to the repository.
    async fn backup(&mut self, d: &Deployment) -> Result<Artifact, BackupError> {
        self.ensure_stanza(d).await?;
        let kind = if self.backups.is_empty() { "--type=full" } else { "--type=incr" };
        let output = self.exec(d, &[&format!("--stanza={STANZA}"), kind, "backup"]).await?;
        let info = self.exec(d, &[&format!("--stanza={STANZA}"), "--output=json", "info"]).await?;
        let Some(latest) = latest_backup(&info) else {
            return Err(BackupError::Tool {
                command: "pgbackrest info".into(),
                code: Some(0),
                output: format!(
                    "no backup listed after `pgbackrest backup` said: {}",
                    crate::text::folded_tail(&output, 300)
                ),
            });
        };
        let artifact = Artifact {
            bytes: latest.repo_delta,
            repo_bytes: Some(crate::storage::dir_size(&self.repo())),
            handle: latest.label.clone(),
        };
        self.backups.push(latest);
        Ok(artifact)
    }

    /// A one-shot container of the server's image with the repository
    /// bound in and, when given, a volume at the data directory
    /// (`(volume, data_dir)`); runs `script` with `sh -c` and returns its
    /// exit code and output.
    async fn one_shot(
        &mut self,
        what: &str,
        data: Option<(&str, &str)>,
        script: String,
    ) -> Result<(i64, String), BackupError> {
        let image = self.image.clone().ok_or(BackupError::NoContainer)?;
        let mut mounts = vec![bind(&self.repo(), REPO, false)];
        if let Some(stream) = &self.stream {
            mounts.push(bind(stream, STREAM, true));
        }
        if let Some((volume, data_dir)) = data {
            mounts.push(Mount {
                target: Some(data_dir.to_owned()),
                source: Some(volume.to_owned()),
                typ: Some(MountType::VOLUME),
                ..Default::default()
            });
        }
        let config = ContainerCreateBody {
            image: Some(image),
            entrypoint: Some(vec!["sh".into(), "-c".into()]),
            cmd: Some(vec![script]),
            labels: Some(self.site.run.labels()),
            host_config: Some(HostConfig { mounts: Some(mounts), ..Default::default() }),
            ..Default::default()
        };
        let seq = self.site.next_seq();
        let name = format!("{}-pgbackrest-{what}-{seq}", self.site.name);
        let id = self.site.docker.create_container(&name, config).await?;
        self.site.run_to_end(&id).await
    }

    /// Restores backup `label` into `d`'s new, empty volume, for recovery
    /// to the end of the archive or to [`Self::target`]; the outcome is
    /// the cycle's tool check.
    async fn restore_into(&mut self, d: &Deployment, label: &str) -> Result<ToolCheck, BackupError> {
        let data = sh_quoted(&d.spec().data_dir);
        let (stanza, set) = (format!("--stanza={STANZA}"), format!("--set={label}"));
        let mut args = vec![stanza.as_str(), set.as_str()];
        let target = self.target.as_ref().map(|t| format!("--target={t}"));
        if let Some(target) = &target {
            args.extend(["--type=time", target.as_str(), "--target-action=promote"]);
        }
        args.push("restore");
        let mut script = format!("mkdir -p {data} && chown postgres:postgres {data} && chmod 700 {data} && ");
        match &self.stream {
            None => script += &as_script(&args),
            Some(_) => script += &format!("{} && {}", as_command(&args), stream_into_pg_wal(&d.spec().data_dir)),
        }
        let volume = d.storage().volume().ok_or(BackupError::NoContainer)?.to_owned();
        let (code, output) = self.one_shot("restore", Some((&volume, &d.spec().data_dir)), script).await?;
        self.backup_stop = self.backups.iter().find(|b| b.label == label).map(|b| b.stop.clone());
        // The archive's end before the restored server adds to it.
        let info = as_script(&[&format!("--stanza={STANZA}"), "--output=json", "info"]);
        self.archive_end = self.one_shot("info", None, info).await.ok().and_then(|(_, out)| newest_archived(&out));
        let passed = code == 0 && output.contains(COMPLETED);
        let detail = format!("backup {label}: {}", crate::text::folded_tail(&output, 400));
        Ok(ToolCheck { command: "pgbackrest restore".into(), passed, detail })
    }

    /// `pgbackrest verify` of the repository, from a one-shot container.
    async fn verify(&mut self) -> Result<ToolCheck, BackupError> {
        let script = as_script(&[&format!("--stanza={STANZA}"), "verify"]);
        let (code, output) = self.one_shot("verify", None, script).await?;
        let passed = code == 0 && output.contains(COMPLETED) && !output.contains("ERROR");
        Ok(ToolCheck {
            command: "pgbackrest verify".into(),
            passed,
            detail: format!("exit {code}: {}", crate::text::folded_tail(&output, 400)),
        })
    }
}

/// `pgbackrest ARGS` as the server's user.
fn as_postgres(args: &[&str]) -> Vec<String> {
    ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "pgbackrest"]
        .iter()
        .chain(args)
        .map(|&a| a.to_owned())
        .collect()
}

/// The newest backup `pgbackrest info --output=json` lists.
#[derive(Debug, Clone, PartialEq)]
struct Listed {
    label: String,
    /// What the backup added to the repository (compressed).
    repo_delta: u64,
    /// The last WAL segment the backup needs to be consistent.
    stop: String,
}

/// The JSON of `pgbackrest info --output=json`, after any log lines
/// before it.
fn json_part(output: &str) -> Option<&str> {
    if output.starts_with('[') { Some(output) } else { output.find("\n[").map(|i| &output[i + 1..]) }
}

fn latest_backup(json: &str) -> Option<Listed> {
    let info: serde_json::Value = serde_json::from_str(json_part(json)?).ok()?;
    let stanza = info.as_array()?.iter().find(|s| s["name"] == STANZA)?;
    let backup = stanza["backup"].as_array()?.last()?;
    Some(Listed {
        label: backup["label"].as_str()?.to_owned(),
        repo_delta: backup["info"]["repository"]["delta"].as_u64()?,
        stop: backup["archive"]["stop"].as_str()?.to_owned(),
    })
}

impl BackupMethod for PgBackRest {
    fn describe(&self) -> String {
        "pgBackRest: every WAL segment archived by the server into a repository off its host, a full backup then \
         incremental ones every interval; restore = the latest backup, then every archived segment replayed"
            .into()
    }

    /// The archive, and no connection to a server in archive recovery:
    /// with `hot_standby` on (PostgreSQL's default) a restored server
    /// answers read-only while it replays the archive, and would be
    /// verified before its recovery ends.
    fn server_needs(&self) -> ServerNeeds {
        let args = [
            "-c".to_owned(),
            "archive_mode=on".to_owned(),
            "-c".to_owned(),
            format!("archive_command=pgbackrest --stanza={STANZA} archive-push %p"),
            "-c".to_owned(),
            "hot_standby=off".to_owned(),
        ];
        ServerNeeds { args: args.to_vec(), dirs: vec![(self.repo(), REPO.to_owned())] }
    }

    fn begin_cycle<'a>(&'a mut self, d: &'a Deployment) -> BoxFuture<'a, Result<(), BackupError>> {
        Box::pin(async move {
            self.backups.clear();
            self.restored = None;
            self.restored_server = None;
            self.image = Some(d.spec().image.clone());
            self.ensure_stanza(d).await
        })
    }

    fn take<'a>(
        &'a mut self,
        d: &'a mut Deployment,
        _workload: &'a dyn Workload,
    ) -> BoxFuture<'a, Result<Option<Artifact>, BackupError>> {
        Box::pin(async move { self.backup(d).await.map(Some) })
    }

    fn restore<'a>(
        &'a mut self,
        d: &'a mut Deployment,
        latest: Option<&'a Artifact>,
    ) -> BoxFuture<'a, Result<(), BackupError>> {
        self.target = None;
        Box::pin(self.restore_cycle(d, latest))
    }

    fn restore_to<'a>(
        &'a mut self,
        d: &'a mut Deployment,
        backup: &'a Artifact,
        at: SystemTime,
        _marked: Option<&'a crashlab_workloads::LogPosition>,
    ) -> BoxFuture<'a, Result<(), BackupError>> {
        // PostgreSQL stamps each commit record to the microsecond: its
        // recovery target is the time itself.
        self.target = Some(recovery_target(at));
        Box::pin(self.restore_cycle(d, Some(backup)))
    }

    /// The restore's outcome when it failed; else whether the restored
    /// server's recovery replayed the whole archive, and `pgbackrest
    /// verify` of the repository.
    fn restore_steps(&mut self) -> Vec<RestoreStep> {
        std::mem::take(&mut self.steps)
    }

    fn tool_check(&mut self) -> BoxFuture<'_, Option<ToolCheck>> {
        Box::pin(async move {
            let restored = self.restored.take();
            if let Some(failed) = restored.as_ref().filter(|r| !r.passed) {
                return Some(failed.clone());
            }
            let mut check = self.verify().await.unwrap_or_else(|e| ToolCheck {
                command: "pgbackrest verify".into(),
                passed: false,
                detail: crate::text::error_chain(&e),
            });
            if let Some(restored) = restored {
                let replay = self.replay().await;
                check.passed &= replay.passed;
                check.detail = format!("restore {}; {}; verify {}", restored.detail, replay.detail, check.detail);
            }
            Some(check)
        })
    }
}

impl PgBackRest {
    /// After a host loss: new storage holding `latest` (empty without
    /// it), recovered to the end of the archive or to [`Self::target`],
    /// and a new container on it.
    async fn restore_cycle(&mut self, d: &mut Deployment, latest: Option<&Artifact>) -> Result<(), BackupError> {
        self.steps.clear();
        d.reprovision(None).await?;
        match latest {
            Some(latest) => {
                let started = std::time::Instant::now();
                let check = self.restore_into(d, &latest.handle).await?;
                let ms = started.elapsed().as_secs_f64() * 1e3;
                self.steps.push(RestoreStep { step: "fetch".into(), ms });
                if !check.passed {
                    tracing::warn!("{}: {}", check.command, check.detail);
                }
                self.restored = Some(check);
            }
            None => {
                // The server starts a new, empty cluster, which the
                // repository's stanza does not describe.
                self.stanza = false;
                let repo = self.repo();
                std::fs::remove_dir_all(&repo)
                    .and_then(|()| std::fs::create_dir_all(&repo))
                    .map_err(|source| BackupError::Dir { path: repo, source })?;
            }
        }
        d.create().await?;
        self.restored_server = d.container_id().map(str::to_owned);
        Ok(())
    }

    /// How far the restored server's recovery went: the first segment
    /// `archive-get` did not find ends it, which is the archive's end
    /// unless a segment is missing below the newest the archive holds (a
    /// gap `pgbackrest verify` does not see past the backups' own ranges);
    /// a point-in-time recovery ends at its target instead.
    async fn replay(&mut self) -> ToolCheck {
        let command = "archive replay".to_owned();
        let Some(id) = self.restored_server.take() else {
            return ToolCheck { command, passed: false, detail: "the restored server is gone".into() };
        };
        let log = self.site.docker.logs_all(&id).await.unwrap_or_default();
        if let Some(ms) = redo_ms(&log) {
            self.steps.push(RestoreStep { step: "replay in recovery".into(), ms });
        }
        let (stop, newest) = (self.backup_stop.take(), self.archive_end.take());
        let (passed, detail) = replay_verdict(&log, stop.as_deref(), newest.as_deref(), self.target.as_deref());
        ToolCheck { command, passed, detail }
    }
}

/// How long the server's recovery replayed the log, as its own log says
/// at the end (`redo done at 0/4000100 system usage: CPU: …, elapsed:
/// 1.23 s`, PostgreSQL 15); `None` when it does not say.
fn redo_ms(log: &str) -> Option<f64> {
    let line = log.lines().find(|l| l.contains("redo done at"))?;
    let secs: f64 = line.split("elapsed: ").nth(1)?.split_whitespace().next()?.parse().ok()?;
    Some(secs * 1e3)
}

/// `exec pgbackrest ARGS` as the server's user, for `sh -c`.
fn as_script(args: &[&str]) -> String {
    format!("exec {}", as_command(args))
}

/// `pgbackrest ARGS` as the server's user, for `sh -c`.
fn as_command(args: &[&str]) -> String {
    as_postgres(args).iter().map(|a| sh_quoted(a)).collect::<Vec<_>>().join(" ")
}

/// The shell that puts the streamed WAL into the restored cluster's
/// `pg_wal` (the segment being written when the stream ended under its
/// full name, as `pg_receivewal` leaves it `.partial`), where recovery
/// reads it once `restore_command` finds nothing more in the archive; and
/// forgets the stream as a synchronous standby, which the restored server
/// no longer has.
fn stream_into_pg_wal(data_dir: &str) -> String {
    let data = sh_quoted(data_dir);
    format!(
        "for f in {STREAM}/*; do [ -f \"$f\" ] || continue; cp \"$f\" {data}/pg_wal/\"$(basename \"$f\" .partial)\"; \
         done && chown -R postgres:postgres {data}/pg_wal && \
         sed -i '/^synchronous_standby_names/d' {data}/postgresql.auto.conf && echo 'stream: '$(ls {STREAM} | wc -l)' files'"
    )
}

/// The newest WAL segment in the archive, from `pgbackrest info
/// --output=json`.
fn newest_archived(json: &str) -> Option<String> {
    let info: serde_json::Value = serde_json::from_str(json_part(json)?).ok()?;
    let stanza = info.as_array()?.iter().find(|s| s["name"] == STANZA)?;
    stanza["archive"].as_array()?.iter().filter_map(|a| a["max"].as_str()).max().map(str::to_owned)
}

/// A recovery target on the wall clock, as PostgreSQL reads a
/// `timestamptz`: `2026-12-07 06:00:05.123456+00`.
fn recovery_target(at: SystemTime) -> String {
    humantime::format_rfc3339_micros(at).to_string().replace('T', " ").replace('Z', "+00")
}

/// Whether the restored server's log shows recovery replaying to the end
/// of the archive (`newest` its newest segment when the restore ran), or
/// stopping at `target` for a point-in-time restore: the segments it
/// restored, how many of them came after the backup's own (`stop` its
/// last), the first one of `newest`'s timeline that `archive-get` could
/// not find, and where recovery said it stopped.
fn replay_verdict(log: &str, stop: Option<&str>, newest: Option<&str>, target: Option<&str>) -> (bool, String) {
    let restored: Vec<&str> =
        log.lines().filter_map(|l| l.split("restored log file \"").nth(1)?.split('"').next()).collect();
    let past = stop.map_or(0, |stop| restored.iter().filter(|&&s| s > stop).count());
    let replayed = format!(
        "recovery replayed {} archived segment(s), {past} past the backup's last ({})",
        restored.len(),
        stop.unwrap_or("unknown")
    );
    let timeline = |segment: &str| segment.get(..8).map(str::to_owned);
    let missing = log.lines().find_map(|l| {
        let segment = l.split("unable to find ").nth(1)?.split_whitespace().next()?;
        let wal = segment.len() == 24 && segment.bytes().all(|b| b.is_ascii_hexdigit());
        (wal && timeline(segment) == newest.and_then(timeline)).then_some(segment)
    });
    if let (Some(missing), Some(newest)) = (missing, newest)
        && missing <= newest
    {
        return (
            false,
            format!(
                "{replayed}, and stopped at a gap: {missing} is missing from the archive, which holds up to {newest}"
            ),
        );
    }
    // PostgreSQL says where a recovery with a target stopped: `recovery
    // stopping before commit of transaction 1234, time ...`.
    let stopped = log.lines().find_map(|l| Some(l.split_once("recovery stopping ")?.1.trim()));
    match (target, newest) {
        (Some(target), _) => match stopped {
            Some(stopped) => (true, format!("{replayed}, to the target {target}: recovery stopping {stopped}")),
            None => {
                // The server's own word on its recovery, not a client
                // turned away while it ran.
                let fatal = log
                    .lines()
                    .filter_map(|l| Some(l.split_once("FATAL:")?.1.trim()))
                    .find(|why| why.contains("recovery"));
                let said = fatal.map(|why| format!(" (the server: {why})")).unwrap_or_default();
                (false, format!("{replayed}, and never stopped at the target {target}{said}"))
            }
        },
        (None, Some(newest)) => (true, format!("{replayed}, to the archive's end ({newest})")),
        (None, None) => (true, format!("{replayed}; the archive's end unread")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_backup_is_the_last_listed() {
        let json = r#"[{"name":"crashlab","backup":[
            {"label":"20261207-101010F","type":"full","info":{"size":100,"delta":100,"repository":{"size":40,"delta":40}},
             "archive":{"start":"000000010000000000000002","stop":"000000010000000000000003"}},
            {"label":"20261207-101010F_20261207-101012I","type":"incr","info":{"size":100,"delta":8,"repository":{"size":40,"delta":3}},
             "archive":{"start":"000000010000000000000005","stop":"000000010000000000000006"}}
        ],"status":{"code":0,"message":"ok"}}]"#;
        assert_eq!(
            latest_backup(json),
            Some(Listed {
                label: "20261207-101010F_20261207-101012I".into(),
                repo_delta: 3,
                stop: "000000010000000000000006".into()
            })
        );
        assert_eq!(latest_backup(r#"[{"name":"crashlab","backup":[]}]"#), None);
        assert_eq!(latest_backup("not json"), None);
    }

    #[test]
    fn a_gap_below_the_archives_end_fails_the_replay() {
        let log = "LOG:  restored log file \"000000010000000000000007\" from archive\n\
                   P00   INFO: unable to find 000000010000000000000008 in the archive\n\
                   P00   INFO: unable to find 00000002.history in the archive\n";
        let stop = Some("000000010000000000000006");
        let (passed, detail) = replay_verdict(log, stop, Some("000000010000000000000009"), None);
        assert!(!passed);
        assert!(detail.contains("stopped at a gap: 000000010000000000000008 is missing"), "{detail}");
        let target = Some("2026-12-07 06:00:05.5+00");
        let (passed, _) = replay_verdict(log, stop, Some("000000010000000000000009"), target);
        assert!(!passed, "a gap before the target fails a point-in-time restore too");
        let (passed, detail) = replay_verdict(log, stop, Some("000000010000000000000007"), None);
        assert!(passed, "{detail}");
        assert_eq!(
            detail,
            "recovery replayed 1 archived segment(s), 1 past the backup's last (000000010000000000000006), to the \
             archive's end (000000010000000000000007)"
        );
    }

    #[test]
    fn the_replay_is_timed_by_the_servers_own_word() {
        let log = "LOG:  redo starts at 0/3000028\n\
                   LOG:  redo done at 0/4000100 system usage: CPU: user: 0.01 s, system: 0.02 s, elapsed: 1.25 s\n";
        assert_eq!(redo_ms(log), Some(1250.0));
        assert_eq!(redo_ms("LOG:  redo done at 0/4000100\n"), None);
    }

    #[test]
    fn a_point_in_time_recovery_passes_where_it_stopped_at_its_target() {
        let stop = Some("000000010000000000000003");
        let newest = Some("000000010000000000000009");
        let target = Some("2026-12-07 06:00:05.123456+00");
        let log = "LOG:  restored log file \"000000010000000000000004\" from archive\n\
                   LOG:  recovery stopping before commit of transaction 1234, time 2026-12-07 06:00:05.1235+00\n\
                   LOG:  redo done at 0/4000100\n";
        let (passed, detail) = replay_verdict(log, stop, newest, target);
        assert!(passed, "{detail}");
        assert!(
            detail.ends_with(
                "to the target 2026-12-07 06:00:05.123456+00: recovery stopping before commit of transaction 1234, \
                 time 2026-12-07 06:00:05.1235+00"
            ),
            "{detail}"
        );
        let ended = "FATAL:  the database system is starting up\n\
                     LOG:  restored log file \"000000010000000000000009\" from archive\n\
                     FATAL:  recovery ended before configured recovery target was reached\n";
        let (passed, detail) = replay_verdict(ended, stop, newest, target);
        assert!(!passed);
        assert!(
            detail.ends_with(
                "and never stopped at the target 2026-12-07 06:00:05.123456+00 (the server: recovery ended before \
                 configured recovery target was reached)"
            ),
            "{detail}"
        );
        assert_eq!(
            recovery_target(SystemTime::UNIX_EPOCH + std::time::Duration::from_micros(1_796_623_205_123_456)),
            "2026-12-07 06:00:05.123456+00"
        );
    }

    #[test]
    fn the_newest_archived_segment_is_read_from_info() {
        let json = "INFO: something\n[{\"name\":\"crashlab\",\"archive\":[{\"id\":\"15-1\",\"max\":\"000000010000000000000009\",\
                    \"min\":\"000000010000000000000001\"},{\"id\":\"15-1\",\"max\":\"00000002000000000000000A\"}]}]";
        assert_eq!(newest_archived(json).as_deref(), Some("00000002000000000000000A"));
    }

    #[test]
    fn the_server_archives_with_the_tool_and_binds_the_repository() {
        let args = ["-c", "archive_mode=on"];
        assert_eq!(
            as_postgres(&args)[..5],
            ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "pgbackrest"]
        );
        assert_eq!(sh_quoted("it's"), r"'it'\''s'");
    }
}
