//! Faults that act on the container alone: `process-kill`, `restart`,
//! `recreate`. They run on every strategy, and fire when the Docker call
//! that does the damage succeeded (a server that had already exited makes
//! the call fail, and the cycle `error`). On a cluster strategy
//! `process-kill` kills every member; `restart` and `recreate` act on the
//! first member alone, the others serving on.

use super::{Behaviour, Cx, FaultError, Recovered, STOP_TIMEOUT_S, fired};
use crashlab_reports::Fired;
use futures_util::future::BoxFuture;

/// SIGKILL to the container's main process; the same container starts
/// again. On a cluster, to every member's, one after another, and every
/// member starts again.
pub struct ProcessKill;

impl Behaviour for ProcessKill {
    fn inject<'a>(&'a self, cx: &'a mut Cx<'_>) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async move {
            cx.deployment.on_every_host(async |d| d.kill().await).await?;
            Ok(())
        })
    }

    fn fired<'a>(&'a self, cx: &'a mut Cx<'_>) -> BoxFuture<'a, Fired> {
        Box::pin(async move {
            match cx.deployment.members_mut().len() {
                0 => fired("SIGKILL landed on the running server"),
                n => fired(format!("SIGKILL landed on every member's running server, all {} of them", n + 1)),
            }
        })
    }

    fn recover<'a>(&'a self, cx: &'a mut Cx<'_>) -> BoxFuture<'a, Result<Recovered, FaultError>> {
        Box::pin(async move {
            cx.deployment.on_every_host(async |d| d.start().await).await?;
            Ok(Recovered::default())
        })
    }
}

/// A graceful stop (SIGTERM, SIGKILL after [`STOP_TIMEOUT_S`]); the same
/// container starts again.
pub struct Restart;

impl Behaviour for Restart {
    fn inject<'a>(&'a self, cx: &'a mut Cx<'_>) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async move { Ok(cx.deployment.stop(STOP_TIMEOUT_S).await?) })
    }

    fn fired<'a>(&'a self, _cx: &'a mut Cx<'_>) -> BoxFuture<'a, Fired> {
        Box::pin(async { fired("the container was stopped gracefully") })
    }

    fn recover<'a>(&'a self, cx: &'a mut Cx<'_>) -> BoxFuture<'a, Result<Recovered, FaultError>> {
        Box::pin(async move {
            cx.deployment.start().await?;
            Ok(Recovered::default())
        })
    }
}

/// The container is removed, as a redeploy does; a new one is created on
/// the same storage.
pub struct Recreate;

impl Behaviour for Recreate {
    fn inject<'a>(&'a self, cx: &'a mut Cx<'_>) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(async move { Ok(cx.deployment.remove().await?) })
    }

    fn fired<'a>(&'a self, _cx: &'a mut Cx<'_>) -> BoxFuture<'a, Fired> {
        Box::pin(async { fired("the container was removed with its anonymous volumes") })
    }

    fn recover<'a>(&'a self, cx: &'a mut Cx<'_>) -> BoxFuture<'a, Result<Recovered, FaultError>> {
        Box::pin(async move {
            cx.deployment.create().await?;
            cx.deployment.start().await?;
            Ok(Recovered::default())
        })
    }
}
