//! `backup-mariabackup`: hot physical backups with MariaDB's own tool,
//! Debian's `mariadb-backup`, run by Docker exec in a sidecar that mounts
//! the server's volume read-only at the server's data directory and shares
//! its network namespace (the tool asks the server for its backup locks
//! and follows its redo log while it copies). The cycle's first backup is
//! full, each later one incremental on the one before
//! (`--incremental-basedir`), each in its own directory of the cell's
//! backup directory. After a host loss a one-shot container of the same
//! image copies the full backup into the new volume and prepares it there
//! (`--prepare`), then applies every incremental in order
//! (`--prepare --incremental-dir`), and the server starts on the result.
//!
//! Only the tool's redo log makes the copy consistent: a backup is
//! complete when `mariadb-backup` says `completed OK!`, and its LSNs
//! (`xtrabackup_checkpoints`) chain each incremental to the one before.
//! The prepare's outcome is the cycle's [`ToolCheck`]: the chain of LSNs
//! applied when it completed, the tool's own error when a step failed. A
//! failed step stops the chain where it is — an operator whose
//! incremental does not apply has the backups prepared so far — and the
//! server starts on what was prepared, so the verdict says what that
//! holds.

use super::{Artifact, BackupError, BackupMethod, Reported, Site, bind};
use crate::deploy::deployment::Deployment;
use crate::text::sh_quoted;
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType};
use crashlab_reports::{RestoreStep, ToolCheck};
use crashlab_workloads::Workload;
use futures_util::future::BoxFuture;
use std::path::PathBuf;

/// Where the containers see the cell's backups.
const BACKUPS: &str = "/backups";
/// The directory of the cell's backup directory that holds the backups.
const REPO: &str = "mariabackup";
/// What the tool prints when a backup or a prepare is whole.
const COMPLETED: &str = "completed OK!";
/// Marks a restore step's start and a failed step in the one-shot
/// container's output.
const STEP: &str = "crashlab-step:";
const FAILED: &str = "crashlab-failed:";
/// The prefix of an incremental's copy in the new volume while it is
/// applied.
const SCRATCH: &str = ".crashlab-incremental-";

/// One completed backup of the cycle's chain.
#[derive(Debug, Clone, PartialEq)]
struct Link {
    /// Its directory under [`BACKUPS`], the artifact's handle.
    dir: String,
    lsn: Checkpoints,
}

/// The LSNs `mariadb-backup` wrote to a backup's `xtrabackup_checkpoints`.
#[derive(Debug, Clone, PartialEq)]
struct Checkpoints {
    backup_type: String,
    from_lsn: u64,
    /// The checkpoint the backup started from: the next incremental's
    /// `from_lsn`.
    to_lsn: u64,
    /// Where the copied redo log ends: the point the backup restores to.
    last_lsn: u64,
}

impl Checkpoints {
    fn parse(text: &str) -> Option<Checkpoints> {
        let value = |key: &str| {
            text.lines().find_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == key).then(|| v.trim().to_owned())
            })
        };
        Some(Checkpoints {
            backup_type: value("backup_type")?,
            from_lsn: value("from_lsn")?.parse().ok()?,
            to_lsn: value("to_lsn")?.parse().ok()?,
            last_lsn: value("last_lsn")?.parse().ok()?,
        })
    }
}

/// mariadb-backup's backups.
pub struct Mariabackup {
    pub(super) site: Site,
    /// The sidecar while the load runs.
    sidecar: Option<String>,
    /// This cycle's completed backups, the full one first.
    chain: Vec<Link>,
    /// The data directory's owner (`uid:gid`), as the sidecar saw it: the
    /// restored files are given to it, since the tool writes as root.
    owner: Option<String>,
    /// The outcome of the cycle's prepare, reported as its tool check.
    prepared: Option<ToolCheck>,
    /// The restore's copy and prepare, timed by its script.
    pub(super) steps: Vec<RestoreStep>,
}

impl Mariabackup {
    pub fn new(site: Site) -> Mariabackup {
        Mariabackup { site, sidecar: None, chain: vec![], owner: None, prepared: None, steps: vec![] }
    }

    fn repo(&self) -> PathBuf {
        self.site.path(REPO)
    }

    /// A container of the mariabackup image with `d`'s volume at its data
    /// directory and the backups at [`BACKUPS`], created, not started.
    /// Without `script` it idles in the server's network namespace (the
    /// sidecar); with it, it runs `sh -c SCRIPT`.
    async fn container(&mut self, what: &str, d: &Deployment, script: Option<String>) -> Result<String, BackupError> {
        let seq = self.site.next_seq();
        let repo = self.repo();
        std::fs::create_dir_all(&repo).map_err(|source| BackupError::Dir { path: repo.clone(), source })?;
        let sidecar = script.is_none();
        let mounts = vec![
            Mount {
                target: Some(d.spec().data_dir.clone()),
                source: d.storage().volume().map(str::to_owned),
                typ: Some(MountType::VOLUME),
                // The sidecar only reads the live files; the restore
                // prepares in the new volume.
                read_only: Some(sidecar),
                ..Default::default()
            },
            // A restore reads the backups and never changes them.
            bind(&repo, BACKUPS, !sidecar),
        ];
        let network_mode = match d.container_id() {
            Some(id) if sidecar => Some(format!("container:{id}")),
            _ => None,
        };
        let config = ContainerCreateBody {
            image: Some(crashlab_workloads::mariabackup::IMAGE.into()),
            entrypoint: script.is_some().then(|| vec!["sh".to_owned(), "-c".to_owned()]),
            cmd: script.map(|s| vec![s]),
            labels: Some(self.site.run.labels()),
            host_config: Some(HostConfig { mounts: Some(mounts), network_mode, ..Default::default() }),
            ..Default::default()
        };
        let name = format!("{}-mariabackup-{what}-{seq}", self.site.name);
        Ok(self.site.docker.create_container(&name, config).await?)
    }

    /// Starts the sidecar beside the running server, after removing the
    /// previous cycle's backups: each cycle's chain starts with a full one.
    async fn start_sidecar(&mut self, d: &Deployment) -> Result<(), BackupError> {
        self.remove_sidecar().await?;
        self.chain.clear();
        self.prepared = None;
        let repo = self.repo();
        if let Err(source) = std::fs::remove_dir_all(&repo)
            && source.kind() != std::io::ErrorKind::NotFound
        {
            return Err(BackupError::Dir { path: repo, source });
        }
        let id = self.container("sidecar", d, None).await?;
        self.sidecar = Some(id.clone());
        self.site.docker.start(&id).await?;
        Ok(())
    }

    /// Runs `cmd` in the sidecar; a non-zero exit is the tool's error.
    async fn exec(&self, cmd: Vec<String>) -> Result<String, BackupError> {
        let id = self.sidecar.as_deref().ok_or(BackupError::NoContainer)?;
        self.site.exec_checked(id, &cmd, redacted(&cmd)).await
    }

    /// One backup into a new directory: full when the chain is empty,
    /// else incremental on the chain's last backup.
    async fn backup(&mut self, d: &Deployment, workload: &dyn Workload) -> Result<Artifact, BackupError> {
        let data_dir = d.spec().data_dir.clone();
        if self.owner.is_none() {
            let out = self.exec(["stat", "-c", "%u:%g", &data_dir].map(str::to_owned).to_vec()).await?;
            self.owner = Some(out.trim().to_owned());
        }
        let dir = self.site.next_seq().to_string();
        let (user, password) = login(workload);
        let mut cmd: Vec<String> = vec![
            "mariadb-backup".into(),
            "--backup".into(),
            format!("--target-dir={BACKUPS}/{dir}"),
            format!("--datadir={data_dir}"),
            "--host=127.0.0.1".into(),
            format!("--port={}", d.spec().port),
            format!("--user={user}"),
            format!("--password={password}"),
        ];
        if let Some(base) = self.chain.last() {
            cmd.push(format!("--incremental-basedir={BACKUPS}/{}", base.dir));
        }
        let host_dir = self.repo().join(&dir);
        let output = match self.exec(cmd).await {
            Ok(output) => output,
            Err(e) => {
                // A failed backup is not a base for the next one.
                std::fs::remove_dir_all(&host_dir).ok();
                return Err(e);
            }
        };
        let checkpoints = host_dir.join("xtrabackup_checkpoints");
        let lsn = std::fs::read_to_string(&checkpoints).ok().and_then(|t| Checkpoints::parse(&t));
        let (true, Some(lsn)) = (output.contains(COMPLETED), lsn) else {
            std::fs::remove_dir_all(&host_dir).ok();
            return Err(BackupError::Tool {
                command: "mariadb-backup --backup".into(),
                code: Some(0),
                output: format!(
                    "no `{COMPLETED}` or no LSNs in {}: {}",
                    checkpoints.display(),
                    crate::text::folded_tail(&output, 400)
                ),
            });
        };
        self.chain.push(Link { dir: dir.clone(), lsn });
        let bytes = crate::storage::dir_size(&host_dir);
        Ok(Artifact { bytes, repo_bytes: Some(crate::storage::dir_size(&self.repo())), handle: dir })
    }

    /// Copies the full backup into the new volume, prepares it and applies
    /// the incrementals up to `latest` in order; then gives the files to
    /// the server's user. Returns the prepare's outcome; an error only when
    /// the one-shot container could not run.
    async fn prepare(&mut self, d: &Deployment, latest: &Artifact) -> Result<ToolCheck, BackupError> {
        let end = self.chain.iter().position(|l| l.dir == latest.handle).map_or(self.chain.len(), |i| i + 1);
        let chain = self.chain[..end].to_vec();
        let script = restore_script(&d.spec().data_dir, self.owner.as_deref(), &chain);
        let id = self.container("restore", d, Some(script)).await?;
        let (code, output) = self.site.run_to_end(&id).await?;
        let (copy_ms, prepare_ms) = split_ms(&steps(&output));
        self.steps = vec![
            RestoreStep { step: "fetch".into(), ms: copy_ms },
            RestoreStep { step: "prepare".into(), ms: prepare_ms },
        ];
        Ok(prepare_check(&chain, code, &output))
    }

    /// After a host loss: new storage holding `latest` prepared (empty
    /// without it), and no container on it yet.
    pub(super) async fn restore_data(
        &mut self,
        d: &mut Deployment,
        latest: Option<&Artifact>,
    ) -> Result<(), BackupError> {
        self.steps.clear();
        d.reprovision(None).await?;
        if let Some(latest) = latest {
            let check = self.prepare(d, latest).await?;
            if !check.passed {
                tracing::warn!("{}: {}", check.command, check.detail);
            }
            self.prepared = Some(check);
        }
        Ok(())
    }

    /// The directory on the host that holds the backup `handle` names.
    pub(super) fn backup_dir(&self, handle: &str) -> PathBuf {
        self.repo().join(handle)
    }

    /// Removes the sidecar, if it runs.
    async fn remove_sidecar(&mut self) -> Result<(), BackupError> {
        if let Some(id) = self.sidecar.take() {
            self.site.docker.remove_container(&id).await?;
        }
        Ok(())
    }
}

/// The user and password the driver logs in with (`root/crashlab`).
fn login(workload: &dyn Workload) -> (String, String) {
    let login = workload.credentials().map(|c| c.login).unwrap_or_default();
    match login.split_once('/') {
        Some((user, password)) => (user.to_owned(), password.to_owned()),
        None => (login, String::new()),
    }
}

/// A command for messages, without its password.
fn redacted(cmd: &[String]) -> String {
    cmd.iter()
        .map(|a| if a.starts_with("--password=") { "--password=…" } else { a.as_str() })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The restore's shell script: each step announced with [`STEP`], the
/// clock (ns) and its name, and the end with a last `done` step; the first
/// that fails is announced with [`FAILED`] and ends the chain, and the
/// files prepared so far are given to `owner` either way.
fn restore_script(data_dir: &str, owner: Option<&str>, chain: &[Link]) -> String {
    let data = sh_quoted(data_dir);
    let chown = owner.map_or_else(|| "true".to_owned(), |o| format!("chown -R {} {data}", sh_quoted(o)));
    let clean = format!("rm -rf {data}/{SCRATCH}*");
    let mut s = format!(
        "step() {{ echo \"{STEP} $(date +%s%N) $1\"; shift; \"$@\" 2>&1 || {{ echo \"{FAILED} $?\"; {clean}; {chown}; exit 3; }}; }}\n"
    );
    if let Some((full, incrementals)) = chain.split_first() {
        s += &format!("step copy cp -a {BACKUPS}/{}/. {data}\n", full.dir);
        s += &format!("step prepare mariadb-backup --prepare --target-dir={data}\n");
        // The prepare renames the incremental's pages into the data
        // directory, so it must be on the same filesystem: each is copied
        // into the new volume first, and removed once applied.
        for link in incrementals {
            let inc = format!("{data_dir}/{SCRATCH}{}", link.dir);
            s += &format!("step 'copy {0}' cp -a {BACKUPS}/{0} {1}\n", link.dir, sh_quoted(&inc));
            s += &format!(
                "step {0} mariadb-backup --prepare --target-dir={data} --incremental-dir={1}\n",
                link.dir,
                sh_quoted(&inc)
            );
            s += &format!("rm -rf {}\n", sh_quoted(&inc));
        }
    }
    s += &format!("step owner {chown}\nstep done true\n");
    s
}

/// The steps the restore announced: the clock (ns) and the name.
fn steps(output: &str) -> Vec<(u64, &str)> {
    output
        .lines()
        .filter_map(|l| {
            let (ns, name) = l.strip_prefix(STEP)?.trim().split_once(' ')?;
            Some((ns.parse().ok()?, name))
        })
        .collect()
}

/// Milliseconds the restore spent copying backups into the new volume and
/// preparing them, from the clock of each step to the next.
fn split_ms(steps: &[(u64, &str)]) -> (f64, f64) {
    let (mut copy, mut prepare) = (0u64, 0u64);
    for pair in steps.windows(2) {
        let ns = pair[1].0.saturating_sub(pair[0].0);
        match pair[0].1 {
            name if name.starts_with("copy") => copy += ns,
            "owner" | "done" => {}
            _ => prepare += ns,
        }
    }
    (copy as f64 / 1e6, prepare as f64 / 1e6)
}

/// The prepare's outcome from the one-shot container's exit code and
/// output: the time spent copying and preparing and the LSNs applied when
/// every step completed, else the step that failed and the tool's last
/// words.
fn prepare_check(chain: &[Link], code: i64, output: &str) -> ToolCheck {
    let command = format!("mariadb-backup --prepare (full + {} incremental)", chain.len().saturating_sub(1));
    let lsns: Vec<String> = chain
        .iter()
        .map(|l| {
            format!("{} {} {}→{} (log to {})", l.dir, l.lsn.backup_type, l.lsn.from_lsn, l.lsn.to_lsn, l.lsn.last_lsn)
        })
        .collect();
    let completed = output.matches(COMPLETED).count();
    let steps = steps(output);
    if code == 0 && completed >= chain.len() {
        let (copy_ms, prepare_ms) = split_ms(&steps);
        let detail = format!(
            "{COMPLETED} ×{completed}; copy {copy_ms:.0} ms, prepare {prepare_ms:.0} ms; LSNs applied: {}",
            lsns.join(", ")
        );
        return ToolCheck { command, passed: true, detail };
    }
    let (_, step) = steps.last().copied().unwrap_or((0, "?"));
    let lines: Vec<&str> = output.lines().collect();
    let from = lines.iter().rposition(|l| l.starts_with(STEP)).map_or(0, |i| i + 1);
    let said: Vec<&str> = lines[from..].iter().copied().filter(|l| !l.starts_with(FAILED)).collect();
    let detail = format!(
        "step `{step}` failed (exit {code}) after {completed} prepare(s) {COMPLETED}; chain {}: {}",
        lsns.join(", "),
        crate::text::folded_tail(&said.join("\n"), 500)
    );
    ToolCheck { command, passed: false, detail }
}

impl BackupMethod for Mariabackup {
    fn describe(&self) -> String {
        "mariadb-backup sidecar: a full hot physical backup, then incremental ones every interval; restore = copy, \
         --prepare, incrementals applied in order"
            .into()
    }

    fn begin_cycle<'a>(&'a mut self, d: &'a Deployment) -> BoxFuture<'a, Result<(), BackupError>> {
        Box::pin(self.start_sidecar(d))
    }

    fn take<'a>(
        &'a mut self,
        d: &'a mut Deployment,
        workload: &'a dyn Workload,
    ) -> BoxFuture<'a, Result<Option<Artifact>, BackupError>> {
        Box::pin(async move { self.backup(d, workload).await.map(Some) })
    }

    /// The sidecar is gone with the host; a backup in flight was let
    /// finish.
    fn host_lost(&mut self) -> BoxFuture<'_, Result<Vec<Reported>, BackupError>> {
        Box::pin(async move {
            self.remove_sidecar().await?;
            Ok(vec![])
        })
    }

    fn restore<'a>(
        &'a mut self,
        d: &'a mut Deployment,
        latest: Option<&'a Artifact>,
    ) -> BoxFuture<'a, Result<(), BackupError>> {
        Box::pin(async move {
            self.restore_data(d, latest).await?;
            d.create().await?;
            Ok(())
        })
    }

    /// The prepare's outcome: `mariadb-backup --prepare` is the tool's own
    /// check that its backups make a data directory.
    fn tool_check(&mut self) -> BoxFuture<'_, Option<ToolCheck>> {
        Box::pin(async move { self.prepared.take() })
    }

    fn restore_steps(&mut self) -> Vec<RestoreStep> {
        std::mem::take(&mut self.steps)
    }

    fn teardown(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.remove_sidecar().await.ok();
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(dir: &str, backup_type: &str, from_lsn: u64, to_lsn: u64) -> Link {
        let lsn = Checkpoints { backup_type: backup_type.into(), from_lsn, to_lsn, last_lsn: to_lsn + 5 };
        Link { dir: dir.into(), lsn }
    }

    #[test]
    fn checkpoints_parse_as_the_tool_writes_them() {
        let text = "backup_type = incremental\nfrom_lsn = 46080\nto_lsn = 51234\nlast_lsn = 51250\n";
        assert_eq!(
            Checkpoints::parse(text),
            Some(Checkpoints { backup_type: "incremental".into(), from_lsn: 46080, to_lsn: 51234, last_lsn: 51250 })
        );
        assert_eq!(Checkpoints::parse("backup_type = full-backuped\n"), None);
    }

    #[test]
    fn the_restore_applies_the_incrementals_in_order_after_the_full_one() {
        let chain =
            [link("1", "full-backuped", 0, 10), link("2", "incremental", 10, 20), link("3", "incremental", 20, 30)];
        let s = restore_script("/var/lib/mysql", Some("101:102"), &chain);
        let copy = s.find("cp -a /backups/1/. '/var/lib/mysql'").expect(&s);
        let full = s.find("--prepare --target-dir='/var/lib/mysql'\n").expect(&s);
        let two = s.find("--incremental-dir='/var/lib/mysql/.crashlab-incremental-2'").expect(&s);
        let three = s.find("--incremental-dir='/var/lib/mysql/.crashlab-incremental-3'").expect(&s);
        assert!(copy < full && full < two && two < three, "{s}");
        assert!(s.contains("step 'copy 3' cp -a /backups/3 '/var/lib/mysql/.crashlab-incremental-3'\n"), "{s}");
        assert!(s.contains("rm -rf '/var/lib/mysql/.crashlab-incremental-3'\n"), "{s}");
        assert!(s.ends_with("step owner chown -R '101:102' '/var/lib/mysql'\nstep done true\n"), "{s}");
    }

    #[test]
    fn a_failed_step_is_reported_with_the_tools_own_words() {
        let chain = [link("1", "full-backuped", 0, 10), link("3", "incremental", 20, 30)];
        let output = "crashlab-step: 1000000 copy\ncrashlab-step: 2000000 prepare\n[00] completed OK!\n\
                      crashlab-step: 3000000 copy 3\ncrashlab-step: 4000000 3\n\
                      [00] This incremental backup seems not to be proper for the target.\ncrashlab-failed: 1\n";
        let check = prepare_check(&chain, 3, output);
        assert!(!check.passed);
        assert!(check.detail.starts_with("step `3` failed (exit 3) after 1 prepare(s)"), "{}", check.detail);
        assert!(
            check.detail.ends_with("(log to 35): [00] This incremental backup seems not to be proper for the target."),
            "{}",
            check.detail
        );
    }

    #[test]
    fn a_restore_that_completed_says_what_it_applied_and_how_long_each_part_took() {
        let chain = [link("1", "full-backuped", 0, 10), link("3", "incremental", 20, 30)];
        // copy 1 ms, prepare 2 ms, copy 3 ms, apply 4 ms, owner 5 ms.
        let output = "crashlab-step: 1000000 copy\ncrashlab-step: 2000000 prepare\n[00] completed OK!\n\
                      crashlab-step: 4000000 copy 3\ncrashlab-step: 7000000 3\n[00] completed OK!\n\
                      crashlab-step: 11000000 owner\ncrashlab-step: 16000000 done\n";
        let check = prepare_check(&chain, 0, output);
        assert!(check.passed, "{check:?}");
        assert_eq!(
            check.detail,
            "completed OK! ×2; copy 4 ms, prepare 6 ms; LSNs applied: 1 full-backuped 0→10 (log to 15), \
             3 incremental 20→30 (log to 35)"
        );
    }

    #[test]
    fn the_password_stays_out_of_messages() {
        let cmd = ["mariadb-backup", "--user=root", "--password=crashlab"].map(str::to_owned);
        assert_eq!(redacted(&cmd), "mariadb-backup --user=root --password=…");
    }
}
