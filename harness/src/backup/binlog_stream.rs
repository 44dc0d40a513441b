//! `binlog-stream`: `backup-mariabackup`'s backups, with MariaDB's binary
//! log also streamed, as the server writes it, to the backup host by
//! `mariadb-binlog --read-from-remote-server --raw --stop-never` (the
//! server's own client, from the server's image) in a sidecar sharing the
//! server's network namespace and writing the binlog files into a
//! directory of the cell's backup directory, which stands for the backup
//! host's disk and survives the host loss.
//!
//! The server needs its binary log: the method asks for `--log-bin`, a
//! `--server-id` and `--binlog-format=ROW`, which the scenario's
//! `server-args` override. A server whose binary log is off (the
//! scenario's `--skip-log-bin`) has nothing to stream: the sidecar says so
//! and the cycle fails with that reason, rather than measuring a stream
//! that never ran.
//!
//! After a host loss the latest backup is restored and prepared as for
//! `backup-mariabackup`, then a one-shot container of the server's image
//! starts the server on it without networking, binary log or grant
//! tables, replays the streamed binlogs from the position the backup
//! recorded (`xtrabackup_binlog_info`, written under the backup's
//! commit lock) to the end of the stream with `mariadb-binlog
//! --start-position=POS FILES | mariadb`, and shuts it down; the server
//! then starts on the result.
//!
//! A point-in-time restore (`restore-to`) needs a stop finer than the
//! binary log's own clock: its events are stamped in whole seconds, so
//! `--stop-datetime` can only stop at the first event of the target's
//! second, and what was committed in that second before the target would
//! not come back. An operator stops a replay at a position instead (the
//! event before the mistaken statement, found in the log); the drill's
//! target stands for such a position, and the method marks it
//! ([`BackupMethod::marks_target`]): at the target instant the harness
//! reads the server's binary log's end (`SHOW MASTER STATUS`, on a
//! connection opened beforehand), and the replay stops there
//! (`--stop-position` in that file). A commit acknowledged before the
//! question was written to the log before it, and one begun after the
//! answer cannot have been, so the restore holds exactly what was
//! acknowledged by the target. Only when the position could not be read
//! does the replay fall back to `--stop-datetime`, which the report says.
//!
//! An earlier version stopped at what the stream had *received* by the
//! target (the sidecar logged its file's size every 20 ms): the stream
//! trails the server, and 2–44 commits acknowledged before the target were
//! missing in each of the drills measured (docs/backups.md).

use super::mariabackup::Mariabackup;
use super::{Artifact, BackupError, BackupMethod, ServerNeeds, Site, bind};
use crate::deploy::deployment::Deployment;
use crate::text::sh_quoted;
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType};
use crashlab_reports::{RestoreStep, ToolCheck};
use crashlab_workloads::{LogPosition, Workload};
use futures_util::future::BoxFuture;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

/// The cell's backup directory's subdirectory the stream writes into.
const STREAM_DIR: &str = "binlog";
/// Where the containers see it.
const STREAM: &str = "/stream";
/// The binary log's base name the method asks the server for.
const BASENAME: &str = "mysql-bin";
/// How long the stream may take to write its first file.
const STREAMING_WITHIN: Duration = Duration::from_secs(30);
/// How long the stream may take to see the server gone and end, flushing
/// what it received.
const ENDS_WITHIN: Duration = Duration::from_secs(10);
/// What the sidecar prints when the server's binary log is off.
const OFF: &str = "crashlab-binlog-off:";
/// The replay's markers in the one-shot container's output.
const MARK: &str = "crashlab-replay";
const FAILED: &str = "crashlab-failed:";

/// Where a point-in-time replay stops.
#[derive(Debug, Clone, PartialEq)]
enum Stop {
    /// The end of the server's binary log read at the target: its file,
    /// and the offset past its last event.
    Marked { file: String, offset: u64 },
    /// The first event of the target's second (`--stop-datetime`).
    Second(String),
}

impl Stop {
    /// `mariadb-binlog`'s arguments for it.
    fn arg(&self) -> String {
        match self {
            Stop::Marked { offset, .. } => format!(" --stop-position={offset}"),
            Stop::Second(at) => format!(" --stop-datetime={}", sh_quoted(at)),
        }
    }

    /// The last streamed file the replay reads.
    fn last_file(&self) -> Option<&str> {
        match self {
            Stop::Marked { file, .. } => Some(file),
            Stop::Second(_) => None,
        }
    }

    fn describe(&self) -> String {
        match self {
            Stop::Marked { file, offset } => format!("{file}:{offset}, the server's log position read at the target"),
            Stop::Second(at) => {
                format!("the first event at {at} (the server's log position at the target could not be read)")
            }
        }
    }
}

/// mariadb-backup's backups and the stream of one cell.
pub struct BinlogStream {
    mb: Mariabackup,
    sidecar: Option<String>,
    /// How the stream ended at the host loss, for the tool check.
    ended: Option<String>,
    /// The replay's outcome, reported as part of the tool check.
    replayed: Option<ToolCheck>,
}

impl BinlogStream {
    pub fn new(site: Site) -> BinlogStream {
        BinlogStream { mb: Mariabackup::new(site), sidecar: None, ended: None, replayed: None }
    }

    fn stream_dir(&self) -> PathBuf {
        self.mb.site.path(STREAM_DIR)
    }

    /// The stream's files, in order.
    fn streamed(&self) -> Vec<(String, u64)> {
        let mut files: Vec<(String, u64)> = std::fs::read_dir(self.stream_dir())
            .map(|dir| {
                dir.filter_map(Result::ok)
                    .filter_map(|e| Some((e.file_name().into_string().ok()?, e.metadata().ok()?.len())))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
    }

    /// Starts `mariadb-binlog` beside the running server into an empty
    /// stream directory, and waits for its first file; a server whose
    /// binary log is off is an error that says so.
    async fn start(&mut self, d: &Deployment) -> Result<(), BackupError> {
        self.stop().await?;
        self.ended = None;
        self.replayed = None;
        let dir = self.mb.site.empty_dir(STREAM_DIR)?;
        let server = d.container_id().ok_or(BackupError::NoContainer)?.to_owned();
        let config = ContainerCreateBody {
            image: Some(d.spec().image.clone()),
            entrypoint: Some(vec!["sh".into(), "-c".into()]),
            cmd: Some(vec![stream_script(d.spec().port)]),
            // The server's own variables carry its root password.
            env: Some(d.spec().env.clone()),
            labels: Some(self.mb.site.run.labels()),
            host_config: Some(HostConfig {
                mounts: Some(vec![bind(&dir, STREAM, false)]),
                network_mode: Some(format!("container:{server}")),
                ..Default::default()
            }),
            ..Default::default()
        };
        let seq = self.mb.site.next_seq();
        let name = format!("{}-binlogstream-{seq}", self.mb.site.name);
        let id = self.mb.site.docker.create_container(&name, config).await?;
        self.sidecar = Some(id.clone());
        self.mb.site.docker.start(&id).await?;
        self.wait_streaming(&id).await
    }

    /// Waits for the stream's first file, or for the sidecar to end,
    /// which is its error.
    async fn wait_streaming(&self, id: &str) -> Result<(), BackupError> {
        let deadline = Instant::now() + STREAMING_WITHIN;
        loop {
            if !self.streamed().is_empty() {
                return Ok(());
            }
            let running = self.mb.site.docker.inspect(id).await?.state.and_then(|s| s.running).unwrap_or(false);
            if !running || Instant::now() >= deadline {
                let logs = self.mb.site.docker.logs_all(id).await.unwrap_or_default();
                let output = match logs.lines().find_map(|l| l.strip_prefix(OFF)) {
                    Some(value) => format!(
                        "the server's binary log is off ({}): binlog-stream streams it, so the scenario's \
                         server-args must not turn it off",
                        value.trim()
                    ),
                    None => crate::text::folded_tail(&logs, 400),
                };
                let command = format!("mariadb-binlog --read-from-remote-server (a file within {STREAMING_WITHIN:?})");
                return Err(BackupError::Tool { command, code: None, output });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The host is gone: waits for the stream to see the server go and
    /// end (it flushes what it received as it exits), then removes it.
    async fn end_stream(&mut self) -> Result<(), BackupError> {
        let Some(id) = self.sidecar.take() else { return Ok(()) };
        let docker = self.mb.site.docker.clone();
        let ended = match tokio::time::timeout(ENDS_WITHIN, docker.wait(&id)).await {
            Ok(Ok(code)) => format!("the stream ended by itself (exit {code})"),
            Ok(Err(e)) => format!("the stream's end was not seen: {}", crate::text::error_chain(&e)),
            Err(_) => {
                docker.stop(&id, 1).await.ok();
                format!("the stream did not end within {ENDS_WITHIN:?} of the host loss and was stopped")
            }
        };
        let logs = docker.logs_all(&id).await.unwrap_or_default();
        docker.remove_container_if_present(&id).await?;
        let said = crate::text::folded_tail(&logs, 200);
        self.ended = Some(if said.is_empty() { ended } else { format!("{ended}: {said}") });
        Ok(())
    }

    /// Stops and removes the sidecar, if it runs.
    async fn stop(&mut self) -> Result<(), BackupError> {
        if let Some(id) = self.sidecar.take() {
            self.mb.site.docker.stop(&id, 1).await.ok();
            self.mb.site.docker.remove_container_if_present(&id).await?;
        }
        Ok(())
    }

    /// After a host loss: the latest backup prepared on new storage, the
    /// stream replayed onto it from the backup's binlog position (up to
    /// `stop`, when given), and a new container on it.
    async fn restore_cycle(
        &mut self,
        d: &mut Deployment,
        latest: Option<&Artifact>,
        stop: Option<Stop>,
    ) -> Result<(), BackupError> {
        self.end_stream().await?;
        self.mb.restore_data(d, latest).await?;
        if let Some(latest) = latest {
            let started = Instant::now();
            let check = self.replay(d, latest, stop.as_ref()).await?;
            let ms = started.elapsed().as_secs_f64() * 1e3;
            self.mb.steps.push(RestoreStep { step: "replay".into(), ms });
            if !check.passed {
                tracing::warn!("{}: {}", check.command, check.detail);
            }
            self.replayed = Some(check);
        }
        d.create().await?;
        Ok(())
    }

    /// Replays the stream onto the prepared backup in a one-shot
    /// container of the server's image. Returns the replay's outcome; an
    /// error only when the container could not run.
    async fn replay(
        &mut self,
        d: &Deployment,
        backup: &Artifact,
        stop: Option<&Stop>,
    ) -> Result<ToolCheck, BackupError> {
        let command = "mariadb-binlog --start-position | mariadb".to_owned();
        let Some((file, pos)) = binlog_position(&self.mb.backup_dir(&backup.handle)) else {
            let detail = format!("backup {} recorded no binlog position: nothing replayed", backup.handle);
            return Ok(ToolCheck { command, passed: false, detail });
        };
        let script = replay_script(&d.spec().data_dir, &d.spec().cmd, &file, pos, stop);
        let volume = d.storage().volume().ok_or(BackupError::NoContainer)?.to_owned();
        let config = ContainerCreateBody {
            image: Some(d.spec().image.clone()),
            entrypoint: Some(vec!["sh".into(), "-c".into()]),
            cmd: Some(vec![script]),
            labels: Some(self.mb.site.run.labels()),
            host_config: Some(HostConfig {
                mounts: Some(vec![
                    Mount {
                        target: Some(d.spec().data_dir.clone()),
                        source: Some(volume),
                        typ: Some(MountType::VOLUME),
                        ..Default::default()
                    },
                    bind(&self.stream_dir(), STREAM, true),
                ]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let seq = self.mb.site.next_seq();
        let name = format!("{}-binlog-replay-{seq}", self.mb.site.name);
        let id = self.mb.site.docker.create_container(&name, config).await?;
        let (code, output) = self.mb.site.run_to_end(&id).await?;
        let from = format!("from {file}:{pos}{}", stop.map(|s| format!(" to {}", s.describe())).unwrap_or_default());
        let (passed, detail) = replay_verdict(code, &output, &from);
        Ok(ToolCheck { command, passed, detail })
    }
}

/// The sidecar's shell: over the server's loopback as root (the password
/// from the server's own variables, in `MYSQL_PWD`), whether the binary
/// log is on, then `mariadb-binlog` from the server's first binlog on,
/// writing each file under its own name into the stream directory and
/// waiting for more at the end of the last.
fn stream_script(port: u16) -> String {
    format!(
        "export MYSQL_PWD=\"${{MARIADB_ROOT_PASSWORD:-${{MYSQL_ROOT_PASSWORD:-}}}}\"; \
         c='--host=127.0.0.1 --port={port} --user=root'; \
         on=$(mariadb $c -N -B -e 'SELECT @@log_bin') || exit 2; \
         [ \"$on\" = 1 ] || {{ echo \"{OFF} @@log_bin = $on\"; exit 2; }}; \
         first=$(mariadb $c -N -B -e 'SHOW BINARY LOGS' | head -n 1 | cut -f 1); \
         exec mariadb-binlog $c --read-from-remote-server --raw --stop-never --stop-never-slave-server-id=65535 --result-file={STREAM}/ \"$first\""
    )
}

/// The binlog file and position a backup recorded: the first line of its
/// `xtrabackup_binlog_info` (`mariadb_backup_binlog_info` in later
/// releases), `FILE<TAB>POSITION[<TAB>GTID]`.
fn binlog_position(backup: &std::path::Path) -> Option<(String, u64)> {
    ["xtrabackup_binlog_info", "mariadb_backup_binlog_info"].iter().find_map(|name| {
        let text = std::fs::read_to_string(backup.join(name)).ok()?;
        let mut fields = text.lines().next()?.split_whitespace();
        Some((fields.next()?.to_owned(), fields.next()?.parse().ok()?))
    })
}

/// `--stop-datetime`'s argument for `at`: the second it falls in, on the
/// UTC clock the containers keep. Events are stamped in whole seconds, and
/// `mariadb-binlog` stops at the first event at or after it.
fn stop_datetime(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string().replace('T', " ").replace('Z', "")
}

/// The one-shot replay's shell: the server started on the prepared data
/// with the scenario's flags, but no networking, binary log, grant tables
/// or replica threads; the streamed files from the backup's on, decoded
/// from its position (to `stop`) into a file, counted and fed to the
/// server; then a clean shutdown. Each result is announced with [`MARK`],
/// the first failure with [`FAILED`].
fn replay_script(data_dir: &str, server_args: &[String], file: &str, pos: u64, stop: Option<&Stop>) -> String {
    let args: Vec<String> = server_args.iter().map(|a| sh_quoted(a)).collect();
    // `~` sorts after every binlog's name.
    let last = stop.and_then(Stop::last_file).unwrap_or("~");
    let stop = stop.map(Stop::arg).unwrap_or_default();
    let sock = "--socket=/tmp/crashlab-replay.sock";
    format!(
        "fail() {{ echo \"{FAILED} $1\"; tail -n 15 /tmp/server.log 2>/dev/null; exit 3; }}\n\
         mariadbd --user=mysql --datadir={data} {args} --skip-networking {sock} --skip-log-bin --skip-grant-tables \
         --skip-slave-start --pid-file=/tmp/crashlab-replay.pid >/tmp/server.log 2>&1 &\n\
         pid=$!\n\
         i=0; until mariadb-admin {sock} ping >/dev/null 2>&1; do\n\
         \x20 kill -0 $pid 2>/dev/null || fail 'the server did not start on the prepared backup'\n\
         \x20 i=$((i+1)); [ $i -le 1200 ] || fail 'the server did not answer within 120 s'; sleep 0.1; done\n\
         files=$(ls {STREAM} | grep -E '^{BASENAME}\\.[0-9]+$' | sort | awk -v f={file} -v l={last} '$0 >= f && $0 <= l')\n\
         case \"$files\" in {file}*) ;; *) fail \"the stream has no {file}: $(ls {STREAM} | tr '\\n' ' ')\";; esac\n\
         echo \"{MARK}-files: $(echo $files | wc -w) $(cd {STREAM} && stat -c %s $files | awk '{{s+=$1}} END {{print s+0}}')\"\n\
         (cd {STREAM} && mariadb-binlog --start-position={pos}{stop} $files) >/tmp/replay.sql 2>/tmp/binlog.err\n\
         echo \"{MARK}-binlog: $? $(tail -n 3 /tmp/binlog.err | tr '\\n' ' ')\"\n\
         echo \"{MARK}-commits: $(grep -c '^COMMIT/\\*!\\*/;' /tmp/replay.sql)\"\n\
         mariadb {sock} --binary-mode </tmp/replay.sql 2>/tmp/client.err\n\
         echo \"{MARK}-client: $? $(tail -n 3 /tmp/client.err | tr '\\n' ' ')\"\n\
         mariadb-admin {sock} shutdown && wait $pid || fail 'the server did not shut down cleanly'\n\
         echo \"{MARK}-done\"\n",
        data = sh_quoted(data_dir),
        args = args.join(" "),
    )
}

/// The replay's outcome from the one-shot container's exit code and
/// output: passed when the decoding and the client both exited 0 and the
/// server shut down cleanly.
fn replay_verdict(code: i64, output: &str, from: &str) -> (bool, String) {
    let said = |key: &str| {
        output.lines().find_map(|l| l.strip_prefix(&format!("{MARK}-{key}: ")).map(|v| v.trim().to_owned()))
    };
    if let Some(failed) = output.lines().find_map(|l| l.strip_prefix(FAILED)) {
        let tail = crate::text::folded_tail(output, 400);
        return (false, format!("replay {from} failed (exit {code}):{failed}; {tail}"));
    }
    let files = said("files").unwrap_or_default();
    let (binlog, client) = (said("binlog").unwrap_or_default(), said("client").unwrap_or_default());
    let exit = |s: &str| s.split_whitespace().next().map(str::to_owned);
    let passed = code == 0
        && output.contains(&format!("{MARK}-done"))
        && exit(&binlog).as_deref() == Some("0")
        && exit(&client).as_deref() == Some("0");
    let (count, bytes) = files.split_once(' ').unwrap_or(("?", "?"));
    let commits = said("commits").unwrap_or_else(|| "?".into());
    let detail = format!(
        "replayed {from}: {count} streamed file(s), {bytes} bytes, {commits} transaction(s); mariadb-binlog exit \
         {binlog}; mariadb exit {client}"
    );
    (passed, detail)
}

impl BackupMethod for BinlogStream {
    fn describe(&self) -> String {
        format!(
            "{}; besides, mariadb-binlog streams the binary log to the backup host; restore = the latest backup \
             prepared, then the stream replayed from its binlog position",
            self.mb.describe()
        )
    }

    /// The binary log, which the scenario's `server-args` may set
    /// otherwise (a `--skip-log-bin` there is refused as the stream
    /// starts).
    fn server_needs(&self) -> ServerNeeds {
        let args = [format!("--log-bin={BASENAME}"), "--server-id=1".into(), "--binlog-format=ROW".into()];
        ServerNeeds { args: args.to_vec(), dirs: vec![] }
    }

    fn begin_cycle<'a>(&'a mut self, d: &'a Deployment) -> BoxFuture<'a, Result<(), BackupError>> {
        Box::pin(async move {
            self.mb.begin_cycle(d).await?;
            self.start(d).await
        })
    }

    fn take<'a>(
        &'a mut self,
        d: &'a mut Deployment,
        workload: &'a dyn Workload,
    ) -> BoxFuture<'a, Result<Option<Artifact>, BackupError>> {
        self.mb.take(d, workload)
    }

    /// mariadb-backup's sidecar goes with the host; the stream, on the
    /// backup host, sees the server go.
    fn host_lost(&mut self) -> BoxFuture<'_, Result<Vec<super::Reported>, BackupError>> {
        self.mb.host_lost()
    }

    fn restore<'a>(
        &'a mut self,
        d: &'a mut Deployment,
        latest: Option<&'a Artifact>,
    ) -> BoxFuture<'a, Result<(), BackupError>> {
        Box::pin(self.restore_cycle(d, latest, None))
    }

    fn marks_target(&self) -> bool {
        true
    }

    fn restore_to<'a>(
        &'a mut self,
        d: &'a mut Deployment,
        backup: &'a Artifact,
        at: SystemTime,
        marked: Option<&'a LogPosition>,
    ) -> BoxFuture<'a, Result<(), BackupError>> {
        let stop = match marked {
            Some(m) => Stop::Marked { file: m.file.clone(), offset: m.offset },
            None => Stop::Second(stop_datetime(at)),
        };
        Box::pin(self.restore_cycle(d, Some(backup), Some(stop)))
    }

    /// The prepare's outcome and the replay's, with how the stream ended.
    fn tool_check(&mut self) -> BoxFuture<'_, Option<ToolCheck>> {
        Box::pin(async move {
            let prepared = self.mb.tool_check().await;
            let replayed = self.replayed.take();
            let ended = self.ended.take().unwrap_or_else(|| "the stream was not ended by a host loss".into());
            let (prepared, replayed) = match (prepared, replayed) {
                (None, None) => return None,
                (p, r) => (p, r),
            };
            let passed = prepared.as_ref().is_none_or(|c| c.passed) && replayed.as_ref().is_some_and(|c| c.passed);
            let said = |c: Option<ToolCheck>| c.map_or_else(|| "none".to_owned(), |c| c.detail);
            let detail = format!("prepare: {}; {}; {ended}", said(prepared), said(replayed));
            Some(ToolCheck { command: "mariadb-backup --prepare, mariadb-binlog | mariadb".into(), passed, detail })
        })
    }

    /// mariadb-backup's copy and prepare, then the replay (the one-shot
    /// server's start and stop included).
    fn restore_steps(&mut self) -> Vec<RestoreStep> {
        self.mb.restore_steps()
    }

    fn teardown(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.stop().await.ok();
            self.mb.teardown().await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_replay_starts_at_the_backups_position_and_stops_at_the_target_second() {
        let args = ["--innodb-flush-log-at-trx-commit=1".to_owned(), "--log-bin=mysql-bin".to_owned()];
        let second = Stop::Second("2026-12-07 13:40:12".into());
        let s = replay_script("/var/lib/mysql", &args, "mysql-bin.000002", 1234, Some(&second));
        assert!(s.contains("'--log-bin=mysql-bin' --skip-networking"), "{s}");
        assert!(s.contains("--skip-log-bin --skip-grant-tables"), "{s}");
        assert!(s.contains("awk -v f=mysql-bin.000002 -v l=~ '$0 >= f && $0 <= l'"), "{s}");
        assert!(s.contains("mariadb-binlog --start-position=1234 --stop-datetime='2026-12-07 13:40:12' $files"), "{s}");
        let latest = replay_script("/var/lib/mysql", &args, "mysql-bin.000001", 4, None);
        assert!(latest.contains("mariadb-binlog --start-position=4 $files)"), "{latest}");
        let marked = Stop::Marked { file: "mysql-bin.000003".into(), offset: 777 };
        let s = replay_script("/var/lib/mysql", &args, "mysql-bin.000002", 1234, Some(&marked));
        assert!(s.contains("-v l=mysql-bin.000003 '$0 >= f && $0 <= l'"), "{s}");
        assert!(s.contains("mariadb-binlog --start-position=1234 --stop-position=777 $files"), "{s}");
    }

    #[test]
    fn the_target_second_is_the_one_the_instant_falls_in() {
        // A microsecond before the next second: still this one.
        let at = SystemTime::UNIX_EPOCH + Duration::from_micros(1_796_000_000_999_999);
        assert_eq!(stop_datetime(at), "2026-11-30 00:53:20");
    }

    #[test]
    fn a_replay_passes_only_when_every_step_said_so() {
        let ok = "crashlab-replay-files: 2 5000\ncrashlab-replay-binlog: 0 \ncrashlab-replay-commits: 17\n\
                  crashlab-replay-client: 0 \ncrashlab-replay-done\n";
        let (passed, detail) = replay_verdict(0, ok, "from mysql-bin.000001:4");
        assert!(passed, "{detail}");
        assert_eq!(
            detail,
            "replayed from mysql-bin.000001:4: 2 streamed file(s), 5000 bytes, 17 transaction(s); mariadb-binlog \
             exit 0; mariadb exit 0"
        );
        let truncated = ok.replace("binlog: 0 ", "binlog: 1 ERROR: Could not read entry at offset 5000");
        assert!(!replay_verdict(0, &truncated, "from x:4").0);
        let (passed, detail) = replay_verdict(3, "crashlab-failed: the stream has no mysql-bin.000003\n", "from x:4");
        assert!(!passed && detail.contains("the stream has no mysql-bin.000003"), "{detail}");
    }

    #[test]
    fn the_position_is_the_first_line_of_the_backups_binlog_info() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(binlog_position(dir.path()), None);
        std::fs::write(dir.path().join("xtrabackup_binlog_info"), "mysql-bin.000003\t98765\t0-1-421\n").unwrap();
        assert_eq!(binlog_position(dir.path()), Some(("mysql-bin.000003".into(), 98765)));
    }
}
