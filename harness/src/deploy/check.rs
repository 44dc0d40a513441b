//! The user's own check of a service crashlab has no driver for
//! (`[workload] check`; Compose's `x-crashlab: { check: ... }`): a command
//! run after recovery in a container of its own on the recovered data.
//!
//! The service is stopped first (SIGTERM, then SIGKILL after
//! [`STOP_S`] seconds), so that the check reads data at rest rather than
//! files the service is still writing, and started again afterwards for
//! the next cycle. The check's container is the service's — the same image,
//! environment, user, data mount at the same path and read-only binds, with
//! the run's labels — except that it runs the check as written: the image's
//! entrypoint is cleared, since an entrypoint usually starts the service
//! itself. Its exit code and the tail of its output are the evidence; a
//! check still running at its deadline is killed.
//!
//! Data no other container can see — in the service's writable layer, on a
//! tmpfs, on an anonymous volume — is checked inside the service's own
//! container instead (`docker exec`, as its user), while it runs: a check
//! still running at the deadline is left to the container's removal, the
//! cycle being `error`.

use super::deployment::{Deployment, DeploymentError};
use bollard::models::{ContainerCreateBody, HostConfig};
use std::time::{Duration, Instant};

/// How long the service has to stop gracefully before the check.
pub const STOP_S: i32 = 10;

/// How the check ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRun {
    /// Its exit code; `None` when it was still running at the deadline.
    pub exit_code: Option<i64>,
    /// Its whole output, stdout and stderr as they came.
    pub output: String,
    pub took: Duration,
}

impl Deployment {
    /// Stops the service, runs `cmd` on its data for at most `limit`, and
    /// starts the service again. `Err` when the check could not be run at
    /// all.
    pub async fn run_user_check(&mut self, cmd: &[String], limit: Duration) -> Result<CheckRun, DeploymentError> {
        // A mount with a source (a volume, a host or FUSE directory) is one
        // another container can mount too.
        let shared = self.storage().mounts(self.run(), &self.spec().data_dir).iter().any(|m| m.source.is_some());
        if !shared {
            return self.exec_user_check(cmd, limit).await;
        }
        if self.is_running().await? {
            self.stop(STOP_S).await?;
        }
        let config = ContainerCreateBody {
            image: Some(self.image().to_owned()),
            user: self.spec().user.clone(),
            entrypoint: Some(Vec::new()),
            cmd: Some(cmd.to_vec()),
            env: Some(self.spec().env.clone()),
            labels: Some(self.run().labels()),
            host_config: Some(HostConfig { mounts: Some(self.mounts()), ..Default::default() }),
            ..Default::default()
        };
        let docker = self.docker().clone();
        let id = docker.create_container(&format!("{}-check", self.name()), config).await?;
        let ran = async {
            let started = Instant::now();
            docker.start(&id).await?;
            let exit_code = match tokio::time::timeout(limit, docker.wait(&id)).await {
                Ok(code) => Some(code?),
                Err(_) => {
                    docker.kill(&id, "SIGKILL").await.ok();
                    None
                }
            };
            let took = started.elapsed();
            Ok::<_, DeploymentError>(CheckRun { exit_code, output: docker.logs_all(&id).await?, took })
        }
        .await;
        let removed = docker.remove_container(&id).await;
        let ran = ran?;
        removed?;
        self.start().await?;
        Ok(ran)
    }

    /// The check inside the running service's container, for data only it
    /// can see.
    async fn exec_user_check(&self, cmd: &[String], limit: Duration) -> Result<CheckRun, DeploymentError> {
        let id = self.container_id().ok_or(DeploymentError::NoContainer)?;
        let started = Instant::now();
        match tokio::time::timeout(limit, self.docker().exec(id, cmd)).await {
            Ok(run) => {
                let run = run?;
                Ok(CheckRun { exit_code: run.exit_code, output: run.output, took: started.elapsed() })
            }
            Err(_) => Ok(CheckRun { exit_code: None, output: String::new(), took: started.elapsed() }),
        }
    }
}
