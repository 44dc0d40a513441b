//! `backup-restic`: a restic sidecar (Debian's `restic`) mounting the
//! volume read-only runs `restic backup`, by Docker exec, into a
//! repository on the schedule: incremental and deduplicated, so an
//! unchanged file costs a metadata lookup and nothing stored. After a host
//! loss a one-shot restic container restores the cycle's latest snapshot
//! into the new volume; `restic check` checks the repository after every
//! cycle that stored something.

use super::{Artifact, BackupError, BackupMethod, Reported, SIDECAR_DATA, Site, bind};
use crate::deploy::deployment::Deployment;
use crate::settings::{BackupSection, Repository};
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType};
use crashlab_reports::ToolCheck;
use crashlab_workloads::Workload;
use futures_util::future::BoxFuture;
use std::path::PathBuf;

/// Where the restic containers see a repository on the host.
const RESTIC_REPO: &str = "/repo";
/// The repository's password unless `sync-env` gives `RESTIC_PASSWORD`:
/// the repository stands for a backup server, not a secret.
const RESTIC_PASSWORD: &str = "RESTIC_PASSWORD=crashlab";
/// The host name restic records: the sidecar's changes every cycle, and
/// restic picks a backup's parent snapshot (the one whose unchanged files
/// it skips) by host and paths.
const RESTIC_HOST: &str = "crashlab";

/// Where the repository is.
enum Repo<'a> {
    /// A directory on the host, bind-mounted at [`RESTIC_REPO`].
    Local(PathBuf),
    /// A backend restic reaches itself, named as restic names it.
    Remote(&'a str),
}

/// restic's backups.
pub struct Restic {
    site: Site,
    repository: Option<Repository>,
    env: Vec<String>,
    /// The sidecar while the load runs.
    sidecar: Option<String>,
}

impl Restic {
    pub fn new(site: Site, settings: &BackupSection) -> Restic {
        Restic { site, repository: settings.repository.clone(), env: settings.sync_env.clone(), sidecar: None }
    }

    /// The repository: `[backup] repository`, else a directory of the
    /// cell's backups.
    fn repo(&self) -> Repo<'_> {
        match &self.repository {
            None => Repo::Local(self.site.path("restic")),
            Some(Repository::Dir(dir)) => Repo::Local(dir.clone()),
            Some(Repository::Backend(url)) => Repo::Remote(url),
        }
    }

    /// The repository's host directory, when it is one.
    fn local_repo(&self) -> Option<PathBuf> {
        match self.repo() {
            Repo::Local(dir) => Some(dir),
            Repo::Remote(_) => None,
        }
    }

    /// A container of the restic image with the repository (and, given a
    /// deployment, its volume at [`SIDECAR_DATA`]), created, not started.
    /// Without `cmd` it idles (the sidecar); with it, it runs `restic CMD…`.
    async fn restic_container(
        &mut self,
        what: &str,
        data: Option<(&Deployment, bool)>,
        cmd: Option<Vec<String>>,
    ) -> Result<String, BackupError> {
        let seq = self.site.next_seq();
        let mut mounts = Vec::new();
        if let Some((d, read_only)) = data {
            mounts.push(Mount {
                target: Some(SIDECAR_DATA.into()),
                source: d.storage().volume().map(str::to_owned),
                typ: Some(MountType::VOLUME),
                read_only: Some(read_only),
                ..Default::default()
            });
        }
        let repository = match self.repo() {
            Repo::Remote(url) => url.to_owned(),
            Repo::Local(dir) => {
                std::fs::create_dir_all(&dir).map_err(|source| BackupError::Dir { path: dir.clone(), source })?;
                mounts.push(bind(&dir, RESTIC_REPO, false));
                RESTIC_REPO.to_owned()
            }
        };
        // Later entries win: `sync-env` may set its own password.
        let mut env = vec![RESTIC_PASSWORD.to_owned(), format!("RESTIC_REPOSITORY={repository}")];
        env.extend(self.env.iter().cloned());
        let config = ContainerCreateBody {
            image: Some(crashlab_workloads::restic::IMAGE.into()),
            entrypoint: cmd.is_some().then(|| vec!["restic".to_owned()]),
            cmd,
            env: Some(env),
            labels: Some(self.site.run.labels()),
            host_config: Some(HostConfig { mounts: Some(mounts), ..Default::default() }),
            ..Default::default()
        };
        let name = format!("{}-restic-{what}-{seq}", self.site.name);
        Ok(self.site.docker.create_container(&name, config).await?)
    }

    /// Starts the restic sidecar on the deployment's volume, creating the
    /// repository the first time.
    async fn start_sidecar(&mut self, d: &Deployment) -> Result<(), BackupError> {
        let id = self.restic_container("sidecar", Some((d, true)), None).await?;
        self.sidecar = Some(id.clone());
        self.site.docker.start(&id).await?;
        let init = "restic cat config >/dev/null 2>&1 || restic init";
        let cmd = ["sh", "-c", init].map(str::to_owned);
        self.site.exec_checked(&id, &cmd, init.into()).await?;
        Ok(())
    }

    /// `restic backup` in the sidecar: what it added to the repository and
    /// the snapshot it made.
    async fn backup(&self) -> Result<Artifact, BackupError> {
        let id = self.sidecar.as_deref().ok_or(BackupError::NoContainer)?;
        let before = self.local_repo().map(|dir| crate::storage::dir_size(&dir));
        let cmd = ["restic", "backup", "--json", "--quiet", "--host", RESTIC_HOST, SIDECAR_DATA].map(str::to_owned);
        let output = self.site.exec_checked(id, &cmd, cmd.join(" ")).await?;
        let summary = ResticSummary::parse(&output)
            .ok_or_else(|| BackupError::NoResticSummary(crate::text::folded_tail(&output, 600)))?;
        let repo_bytes = self.local_repo().map(|dir| crate::storage::dir_size(&dir));
        // A repository on the host is measured; a remote one is taken at
        // restic's word for what it added.
        let bytes = match (before, repo_bytes) {
            (Some(before), Some(after)) => after.saturating_sub(before),
            _ => summary.data_added,
        };
        Ok(Artifact { bytes, repo_bytes, handle: summary.snapshot_id })
    }

    /// Runs `restic ARGS…` in a one-shot container and waits for it.
    async fn once(&mut self, what: &str, data: Option<&Deployment>, args: &[&str]) -> Result<(), BackupError> {
        let cmd: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let id = self.restic_container(what, data.map(|d| (d, false)), Some(cmd)).await?;
        let docker = &self.site.docker;
        let result = async {
            docker.start(&id).await?;
            let code = docker.wait(&id).await?;
            if code != 0 {
                let output = docker.logs_tail(&id, 8).await.unwrap_or_default();
                let command = format!("restic {}", args.join(" "));
                return Err(BackupError::Tool {
                    command,
                    code: Some(code),
                    output: crate::text::folded_tail(&output, 600),
                });
            }
            Ok(())
        }
        .await;
        docker.remove_container(&id).await.ok();
        result
    }

    /// Removes the sidecar, if it runs.
    async fn remove_sidecar(&mut self) -> Result<(), BackupError> {
        if let Some(id) = self.sidecar.take() {
            self.site.docker.remove_container(&id).await?;
        }
        Ok(())
    }
}

impl BackupMethod for Restic {
    fn describe(&self) -> String {
        format!(
            "restic sidecar backing the volume up every interval into {} (incremental, deduplicated)",
            self.repository
                .as_ref()
                .map_or_else(|| "a repository in a local directory".to_owned(), |r| format!("repository {r}"))
        )
    }

    fn begin_cycle<'a>(&'a mut self, d: &'a Deployment) -> BoxFuture<'a, Result<(), BackupError>> {
        Box::pin(self.start_sidecar(d))
    }

    fn take<'a>(
        &'a mut self,
        _d: &'a mut Deployment,
        _workload: &'a dyn Workload,
    ) -> BoxFuture<'a, Result<Option<Artifact>, BackupError>> {
        Box::pin(async move { self.backup().await.map(Some) })
    }

    /// The sidecar is gone with the host; a backup in flight was let
    /// finish.
    fn host_lost(&mut self) -> BoxFuture<'_, Result<Vec<Reported>, BackupError>> {
        Box::pin(async move {
            self.remove_sidecar().await?;
            Ok(vec![])
        })
    }

    /// Restores the snapshot into the new volume: its path was
    /// [`SIDECAR_DATA`], so restoring at `/` puts it there.
    fn restore<'a>(
        &'a mut self,
        d: &'a mut Deployment,
        latest: Option<&'a Artifact>,
    ) -> BoxFuture<'a, Result<(), BackupError>> {
        Box::pin(async move {
            d.reprovision(None).await?;
            if let Some(snapshot) = latest {
                self.once("restore", Some(d), &["restore", &snapshot.handle, "--target", "/"]).await?;
            }
            d.create().await?;
            Ok(())
        })
    }

    /// `restic check` of the repository: its own view of whether what it
    /// stored is whole.
    fn tool_check(&mut self) -> BoxFuture<'_, Option<ToolCheck>> {
        Box::pin(async move {
            let command = "restic check".to_owned();
            Some(match self.once("check", None, &["check"]).await {
                Ok(()) => ToolCheck { command, passed: true, detail: String::new() },
                Err(e) => ToolCheck { command, passed: false, detail: crate::text::error_chain(&e) },
            })
        })
    }

    fn teardown(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.remove_sidecar().await.ok();
        })
    }
}

/// What `restic backup --json` said it did.
#[derive(Debug, Clone, PartialEq)]
struct ResticSummary {
    snapshot_id: String,
    /// Bytes the backup added to the repository, as restic counts them.
    data_added: u64,
}

impl ResticSummary {
    /// The `summary` line of restic's JSON output, among its others.
    fn parse(output: &str) -> Option<ResticSummary> {
        output.lines().rev().find_map(|line| {
            let v: serde_json::Value = serde_json::from_str(line.get(line.find('{')?..)?).ok()?;
            (v.get("message_type")?.as_str()? == "summary").then_some(())?;
            Some(ResticSummary {
                snapshot_id: v.get("snapshot_id")?.as_str()?.to_owned(),
                data_added: v.get("data_added").and_then(serde_json::Value::as_u64).unwrap_or(0),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restics_summary_is_found_among_its_other_lines() {
        let output = "using parent snapshot 63ab8408\n\
            {\"message_type\":\"status\",\"percent_done\":1}\n\
            {\"message_type\":\"summary\",\"files_new\":0,\"data_added\":1234,\"snapshot_id\":\"286a8d6e\"}\n";
        assert_eq!(
            ResticSummary::parse(output),
            Some(ResticSummary { snapshot_id: "286a8d6e".into(), data_added: 1234 })
        );
        assert_eq!(ResticSummary::parse("Fatal: unable to open repository"), None);
    }
}
