//! Readiness is a condition, not a sleep: the one loop that waits for a
//! deployment's server to answer, used before a cycle, after recovery, by
//! `backup-stopped` after each copy, and by the bench.

use super::deployment::Deployment;
use crate::text::error_chain;
use crashlab_workloads::Workload;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// One readiness probe may take this long before it counts as failed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
const PROBE_INTERVAL: Duration = Duration::from_millis(25);
/// How often the loop asks Docker whether the container still runs.
const STATE_INTERVAL: Duration = Duration::from_millis(500);

/// Why the wait gave up.
#[derive(Debug)]
pub enum NotReady {
    /// The container exited; its last output.
    Exited(String),
    /// The limit passed (or the run was cancelled); the last output.
    Timeout(String),
    /// Docker could not be asked.
    Docker(String),
}

impl NotReady {
    /// In a sentence, for a verdict's detail.
    pub fn detail(&self) -> String {
        match self {
            NotReady::Exited(logs) => format!("server exited instead of starting; last output: {logs}"),
            NotReady::Timeout(logs) => format!("server did not answer in time; last output: {logs}"),
            NotReady::Docker(e) => e.clone(),
        }
    }
}

impl Deployment {
    /// Polls `workload`'s probe until the server answers and, when the
    /// workload names a ready line, has printed it since the last start.
    /// Gives up early when the container exits, and after `limit` or once
    /// `cancel` turns true.
    pub async fn wait_ready(
        &self,
        workload: &dyn Workload,
        limit: Duration,
        cancel: Option<&watch::Receiver<bool>>,
    ) -> Result<SocketAddr, NotReady> {
        let deadline = Instant::now() + limit;
        let mut last_state_check = Instant::now();
        loop {
            if let Some(addr) = self.addr()
                && let Ok(Ok(())) = tokio::time::timeout(PROBE_TIMEOUT, workload.probe(addr)).await
                && self.ready_log_seen().await.unwrap_or(false)
            {
                return Ok(addr);
            }
            if last_state_check.elapsed() > STATE_INTERVAL {
                last_state_check = Instant::now();
                match self.is_running().await {
                    Ok(true) => {}
                    Ok(false) => return Err(NotReady::Exited(self.logs_tail(8).await)),
                    Err(e) => return Err(NotReady::Docker(error_chain(&e))),
                }
            }
            if Instant::now() > deadline || cancel.is_some_and(|c| *c.borrow()) {
                return Err(NotReady::Timeout(self.logs_tail(8).await));
            }
            tokio::time::sleep(PROBE_INTERVAL).await;
        }
    }
}
