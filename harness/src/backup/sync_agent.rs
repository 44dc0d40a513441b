//! `sync-agent`: a sidecar container (`crashlab-agent sync`) mounting the
//! volume read-only archives and gzips the data directory every interval,
//! on its own clock, and uploads it to an object store, one object per
//! application; after a host loss a one-shot `crashlab-agent restore`
//! container unpacks the object into the new volume. The sidecar goes down
//! with the host; its log says which backups it took.

use super::{Artifact, BackupError, BackupMethod, Reported, SIDECAR_DATA, Site, bind};
use crate::deploy::deployment::{Deployment, DeploymentError};
use crate::settings::{BackupSection, Store};
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType};
use crashlab_workloads::Workload;
use futures_util::future::BoxFuture;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long the sidecar may take to report ready.
const SIDECAR_READY: Duration = Duration::from_secs(15);
/// Where the sidecar sees a local object store.
const SIDECAR_STORE: &str = "/store";

/// The sidecar while it runs.
struct Sidecar {
    id: String,
    /// The load's start, in Unix milliseconds: the sidecar reports its
    /// backups in wall-clock time.
    load_start_unix_ms: f64,
}

/// The sync agent's backups.
pub struct SyncAgent {
    site: Site,
    interval: Duration,
    store: Option<Store>,
    env: Vec<String>,
    sidecar: Option<Sidecar>,
}

impl SyncAgent {
    pub fn new(site: Site, settings: &BackupSection) -> SyncAgent {
        SyncAgent {
            site,
            interval: settings.interval,
            store: settings.store.clone(),
            env: settings.sync_env.clone(),
            sidecar: None,
        }
    }

    /// A container running `crashlab-agent COMMAND --dir … --store … --key
    /// … EXTRA…` with the deployment's volume at [`SIDECAR_DATA`] and the
    /// local store (if any) at [`SIDECAR_STORE`], created with the agent
    /// uploaded, not started.
    async fn agent_container(
        &mut self,
        d: &Deployment,
        command: &str,
        extra: &[String],
        read_only: bool,
    ) -> Result<String, BackupError> {
        let seq = self.site.next_seq();
        let (url, store_mount) = sidecar_store(self.store.as_ref(), &self.site.path("store"));
        let mut args: Vec<String> = [command, "--dir", SIDECAR_DATA, "--store", &url, "--key", &self.site.name]
            .into_iter()
            .map(str::to_owned)
            .collect();
        args.extend_from_slice(extra);
        if let Some(source) = store_mount.as_ref().and_then(|m| m.source.as_ref()) {
            std::fs::create_dir_all(source)
                .map_err(|source_err| BackupError::Dir { path: source.into(), source: source_err })?;
        }
        let mut mounts = vec![Mount {
            target: Some(SIDECAR_DATA.into()),
            source: d.storage().volume().map(str::to_owned),
            typ: Some(MountType::VOLUME),
            read_only: Some(read_only),
            ..Default::default()
        }];
        mounts.extend(store_mount);
        let config = ContainerCreateBody {
            image: Some(crashlab_workloads::agent::IMAGE.into()),
            cmd: Some(args),
            env: Some(self.env.clone()),
            labels: Some(self.site.run.labels()),
            host_config: Some(HostConfig { mounts: Some(mounts), ..Default::default() }),
            ..Default::default()
        };
        let name = format!("{}-{command}-{seq}", self.site.name);
        let docker = &self.site.docker;
        let id = docker.create_container(&name, config).await?;
        let agent = crate::deploy::agent::locate()?;
        let archive = crate::deploy::deployment::tar_of(&agent)
            .map_err(|source| DeploymentError::Archive { path: agent.clone(), source })?;
        docker.upload(&id, crashlab_workloads::agent::BIN_DIR, archive.into()).await?;
        Ok(id)
    }

    /// Starts the sidecar on the deployment's volume and waits for it to
    /// report ready.
    async fn start_sidecar(&mut self, d: &Deployment) -> Result<(), BackupError> {
        let interval = ["--interval".to_owned(), format!("{}ms", self.interval.as_millis())];
        let id = self.agent_container(d, "sync", &interval, true).await?;
        let docker = &self.site.docker;
        docker.start(&id).await?;
        let load_start_unix_ms = unix_ms(SystemTime::now());
        self.sidecar = Some(Sidecar { id: id.clone(), load_start_unix_ms });
        let deadline = Instant::now() + SIDECAR_READY;
        loop {
            let logs = docker.logs_all(&id).await?;
            if logs.lines().any(|l| l.contains(r#""event":"ready""#)) {
                return Ok(());
            }
            let running = docker.inspect(&id).await?.state.and_then(|s| s.running).unwrap_or(false);
            if !running || Instant::now() > deadline {
                let tail: String = logs.chars().rev().take(600).collect::<Vec<_>>().into_iter().rev().collect();
                return Err(BackupError::SidecarNotReady(tail.split_whitespace().collect::<Vec<_>>().join(" ")));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Unpacks the application's object into the deployment's new volume
    /// with a one-shot `crashlab-agent restore` container.
    async fn restore_object(&mut self, d: &Deployment) -> Result<(), BackupError> {
        let id = self.agent_container(d, "restore", &[], false).await?;
        let docker = &self.site.docker;
        let result = async {
            docker.start(&id).await?;
            let code = docker.wait(&id).await?;
            if code != 0 {
                let output = docker.logs_tail(&id, 5).await.unwrap_or_default();
                return Err(BackupError::RestoreFailed {
                    code,
                    output: output.split_whitespace().collect::<Vec<_>>().join(" "),
                });
            }
            Ok(())
        }
        .await;
        docker.remove_container(&id).await.ok();
        result
    }
}

impl BackupMethod for SyncAgent {
    fn describe(&self) -> String {
        format!(
            "sidecar archiving (tar.gz) and uploading to {} every interval, one object per application",
            self.store.as_ref().map_or_else(|| "a local object store".to_owned(), Store::to_string)
        )
    }

    fn begin_cycle<'a>(&'a mut self, d: &'a Deployment) -> BoxFuture<'a, Result<(), BackupError>> {
        Box::pin(self.start_sidecar(d))
    }

    /// The sidecar keeps its own time.
    fn take<'a>(
        &'a mut self,
        _d: &'a mut Deployment,
        _workload: &'a dyn Workload,
    ) -> BoxFuture<'a, Result<Option<Artifact>, BackupError>> {
        Box::pin(async { Ok(None) })
    }

    /// The sidecar's completed backups so far, from its log.
    fn unreported(&self) -> BoxFuture<'_, usize> {
        Box::pin(async move {
            let Some(sidecar) = &self.sidecar else { return 0 };
            let logs = self.site.docker.logs_all(&sidecar.id).await.unwrap_or_default();
            logs.lines().filter_map(SidecarEvent::parse).filter(|e| e.error.is_none()).count()
        })
    }

    /// Kills the sidecar and reads its report.
    fn host_lost(&mut self) -> BoxFuture<'_, Result<Vec<Reported>, BackupError>> {
        Box::pin(async move {
            let Some(sidecar) = self.sidecar.take() else { return Ok(vec![]) };
            let docker = &self.site.docker;
            // Killed, not stopped: the host goes down with everything on
            // it, and an upload in flight must not finish after the fault.
            if let Err(e) = docker.kill(&sidecar.id, "SIGKILL").await
                && !e.is_not_found()
            {
                tracing::debug!("sync-agent sidecar already gone: {e}");
            }
            let logs = docker.logs_all(&sidecar.id).await;
            docker.remove_container(&sidecar.id).await.ok();
            let reported = logs?
                .lines()
                .filter_map(SidecarEvent::parse)
                .map(|event| Reported {
                    at_s: (event.started_unix_ms - sidecar.load_start_unix_ms) / 1e3,
                    duration_ms: event.finished_unix_ms - event.started_unix_ms,
                    result: match event.error {
                        None => Ok(Artifact { bytes: event.bytes, repo_bytes: None, handle: self.site.name.clone() }),
                        Some(error) => Err(error),
                    },
                })
                .collect();
            Ok(reported)
        })
    }

    fn restore<'a>(
        &'a mut self,
        d: &'a mut Deployment,
        latest: Option<&'a Artifact>,
    ) -> BoxFuture<'a, Result<(), BackupError>> {
        Box::pin(async move {
            d.reprovision(None).await?;
            if latest.is_some() {
                self.restore_object(d).await?;
            }
            d.create().await?;
            Ok(())
        })
    }

    fn teardown(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(sidecar) = self.sidecar.take() {
                self.site.docker.remove_container(&sidecar.id).await.ok();
            }
        })
    }
}

/// The store URL the sidecar is given and the bind mount it needs: a
/// directory on the host (`store`'s `file:///DIR`, else `default_dir`)
/// is mounted at [`SIDECAR_STORE`], since the sidecar sees only its own
/// filesystem; an S3 URL is passed as written.
fn sidecar_store(store: Option<&Store>, default_dir: &std::path::Path) -> (String, Option<Mount>) {
    let dir = match store {
        Some(Store::S3(url)) => return (url.clone(), None),
        Some(Store::Dir(dir)) => dir,
        None => default_dir,
    };
    let mount = bind(dir, SIDECAR_STORE, false);
    (format!("file://{SIDECAR_STORE}"), Some(mount))
}

fn unix_ms(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64() * 1e3
}

/// One line of the sync agent's report.
#[derive(Debug, Clone, PartialEq)]
struct SidecarEvent {
    started_unix_ms: f64,
    finished_unix_ms: f64,
    bytes: u64,
    error: Option<String>,
}

impl SidecarEvent {
    /// A `backup` or `backup-failed` line; `None` for anything else.
    fn parse(line: &str) -> Option<SidecarEvent> {
        let start = line.find('{')?;
        let v: serde_json::Value = serde_json::from_str(&line[start..]).ok()?;
        let ms = |key: &str| v.get(key).and_then(serde_json::Value::as_f64);
        let error = match v.get("event")?.as_str()? {
            "backup" => None,
            "backup-failed" => Some(v.get("error").and_then(|e| e.as_str()).unwrap_or("unknown error").to_owned()),
            _ => return None,
        };
        Some(SidecarEvent {
            started_unix_ms: ms("started_unix_ms")?,
            finished_unix_ms: ms("finished_unix_ms")?,
            bytes: v.get("bytes").and_then(serde_json::Value::as_u64).unwrap_or(0),
            error,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_directory_store_is_mounted_into_the_sidecar() {
        let default = std::path::Path::new("/state/runs/r/backups/c/store");
        let given = Store::Dir("/srv/backups".into());
        for (store, source) in [(None, default.to_str().unwrap()), (Some(&given), "/srv/backups")] {
            let (url, mount) = sidecar_store(store, default);
            assert_eq!(url, "file:///store");
            let mount = mount.expect("a bind mount");
            assert_eq!((mount.source.as_deref(), mount.target.as_deref()), (Some(source), Some("/store")));
            assert_eq!(mount.typ, Some(MountType::BIND));
        }
        let s3 = Store::S3("s3://bucket/prefix".into());
        assert_eq!(sidecar_store(Some(&s3), default), ("s3://bucket/prefix".to_owned(), None));
    }

    #[test]
    fn sidecar_lines_parse_and_others_are_skipped() {
        let ok = r#"{"event":"backup","seq":1,"started_unix_ms":1000,"finished_unix_ms":1250,"bytes":42,"files":3}"#;
        let e = SidecarEvent::parse(ok).unwrap();
        assert_eq!((e.started_unix_ms, e.finished_unix_ms, e.bytes, e.error), (1000.0, 1250.0, 42, None));
        let failed = r#"{"event":"backup-failed","seq":2,"started_unix_ms":1,"finished_unix_ms":2,"error":"disk"}"#;
        assert_eq!(SidecarEvent::parse(failed).unwrap().error.as_deref(), Some("disk"));
        assert_eq!(SidecarEvent::parse(r#"{"event":"ready"}"#), None);
        assert_eq!(SidecarEvent::parse("plain text"), None);
    }
}
