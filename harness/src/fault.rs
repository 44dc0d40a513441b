//! Faults: what happens to a running workload. Each is split into the
//! destructive part ([`Fault::inject`]) and the way back
//! ([`Fault::recover`]); recovery time runs from the end of the first to
//! the first successful query after the second.
//!
//! | fault | inject | recover |
//! |---|---|---|
//! | `process-kill` | SIGKILL to the container's main process | start the same container |
//! | `restart` | graceful stop (SIGTERM, SIGKILL after 30 s) | start the same container |
//! | `recreate` | remove the container, as a redeploy does | create a new one on the same storage and start it |

use crate::deployment::{Deployment, DeploymentError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    ProcessKill,
    Restart,
    Recreate,
}

/// Seconds a graceful stop waits before Docker kills the server.
const STOP_TIMEOUT_S: i32 = 30;

impl Fault {
    pub const ALL: [Fault; 3] = [Fault::ProcessKill, Fault::Restart, Fault::Recreate];

    pub fn as_str(self) -> &'static str {
        match self {
            Fault::ProcessKill => "process-kill",
            Fault::Restart => "restart",
            Fault::Recreate => "recreate",
        }
    }

    /// Does the damage. When this returns, the server is down.
    pub async fn inject(self, deployment: &mut Deployment) -> Result<(), DeploymentError> {
        match self {
            Fault::ProcessKill => deployment.kill().await,
            Fault::Restart => deployment.stop(STOP_TIMEOUT_S).await,
            Fault::Recreate => deployment.remove().await,
        }
    }

    /// Brings the service back as an operator would after this fault.
    pub async fn recover(self, deployment: &mut Deployment) -> Result<(), DeploymentError> {
        match self {
            Fault::ProcessKill | Fault::Restart => deployment.start().await,
            Fault::Recreate => {
                deployment.create().await?;
                deployment.start().await
            }
        }
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
