//! `crashlab volume-driver` (serve crashlab's fault filesystem to Docker as
//! the `crashlab` volume driver) and `crashlab volume cut|status NAME` (act
//! on one of its volumes), each printing one line a script can parse.

use super::{AppError, connect, exit};
use crate::plugin::{self, Driver, HolderCommand, VolumeStatus, http::PluginError};
use crate::text::error_chain;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::signal::unix::{SignalKind, signal};

/// The driver's root: `<state dir>/volume-driver`.
pub fn default_root() -> PathBuf {
    crate::run::state_dir().join("volume-driver")
}

/// Resolves at the first SIGINT or SIGTERM.
fn stop_signal() -> Result<impl std::future::Future<Output = ()>, AppError> {
    let mut int = signal(SignalKind::interrupt()).map_err(AppError::Signals)?;
    let mut term = signal(SignalKind::terminate()).map_err(AppError::Signals)?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    })
}

/// `crashlab volume-driver`: serves until SIGINT or SIGTERM, then removes
/// the socket; the mounted volumes' holders go on serving them.
pub async fn serve(socket: &Path, root: &Path) -> Result<i32, AppError> {
    let io = |what, path: &Path| {
        let path = path.to_owned();
        move |source| AppError::Io { what, path, source }
    };
    let program = std::env::current_exe().map_err(io("find crashlab's own program", Path::new("/proc/self/exe")))?;
    let holder = HolderCommand { program, args: vec!["volume".into(), "hold".into()] };
    let driver = Arc::new(Driver::open(root, holder).map_err(io("open the volume driver's root", root))?);
    let stop = stop_signal()?;
    let _ = writeln!(
        std::io::stderr(),
        "crashlab volume-driver: serving `{}` on {} over {}",
        plugin::NAME,
        socket.display(),
        root.display()
    );
    let served = plugin::http::serve(driver.clone(), socket, stop, std::time::Duration::ZERO).await;
    driver.shutdown().await;
    served.map_err(|e| AppError::Plugin(error_chain(&e)))?;
    Ok(exit::PASS)
}

/// `crashlab volume hold DIR` (started by the driver, not by hand): mounts
/// the volume in `DIR` and serves it until the driver's `/Holder.Unmount`,
/// SIGINT or SIGTERM.
pub async fn hold(dir: &Path) -> Result<i32, AppError> {
    let stop = stop_signal()?;
    plugin::holder::hold(dir, stop).await.map_err(AppError::Plugin)?;
    Ok(exit::PASS)
}

/// `crashlab volume cut NAME`: cuts the power under the volume, then kills
/// the containers using it, as a host losing power takes both. The cut
/// comes first: a killed container's unmount would otherwise make its
/// unsynced writes durable before the cut could drop them; between the two
/// the containers' calls on the volume fail, as on a disk that is gone.
/// Prints `cut volume=NAME killed=N dropped-bytes=N dropped-files=N dropped-ops=N`.
pub async fn cut(name: &str, socket: &Path) -> Result<i32, AppError> {
    let docker = connect().await?;
    let answer =
        plugin::http::call(socket, "/Crashlab.Cut", serde_json::json!({ "Name": name })).await.map_err(plugin_error)?;
    let running = docker.running_with_volume(name).await?;
    for id in running.iter().filter_map(|c| c.id.as_deref()) {
        docker.kill(id, "SIGKILL").await?;
    }
    let status: VolumeStatus =
        serde_json::from_value(answer).map_err(|e| AppError::Plugin(format!("read the driver's answer: {e}")))?;
    println!(
        "cut volume={name} killed={} dropped-bytes={} dropped-files={} dropped-ops={}",
        running.len(),
        status.dropped_bytes,
        status.dropped_files,
        status.dropped_ops
    );
    Ok(exit::PASS)
}

/// `crashlab volume fail NAME RULE`: installs a fault rule of the
/// `io-error`/`disk-full` grammar on the volume's current mount. Prints
/// `fail volume=NAME rule=RULE`.
pub async fn fail(name: &str, rule: &str, socket: &Path) -> Result<i32, AppError> {
    let answer = plugin::http::call(socket, "/Crashlab.Fail", serde_json::json!({ "Name": name, "Rule": rule }))
        .await
        .map_err(plugin_error)?;
    let s: VolumeStatus =
        serde_json::from_value(answer).map_err(|e| AppError::Plugin(format!("read the driver's answer: {e}")))?;
    println!("fail volume={name} rule={}", s.rules.last().map_or(rule, String::as_str));
    Ok(exit::PASS)
}

/// `crashlab volume status NAME`: prints `volume=NAME mounted=B
/// unsynced=N power-cut=B injected-errors=N rules=R[,R...]`.
pub async fn status(name: &str, socket: &Path) -> Result<i32, AppError> {
    let answer = plugin::http::call(socket, "/Crashlab.Status", serde_json::json!({ "Name": name }))
        .await
        .map_err(plugin_error)?;
    let s: VolumeStatus =
        serde_json::from_value(answer).map_err(|e| AppError::Plugin(format!("read the driver's answer: {e}")))?;
    println!(
        "volume={name} mounted={} unsynced={} power-cut={} injected-errors={} rules={}",
        s.mounted,
        s.unsynced,
        s.power_cut,
        s.injected_errors,
        s.rules.join(",")
    );
    Ok(exit::PASS)
}

/// `crashlab volume states NAME --out DIR`: materialises up to `max`
/// crash states of the volume's unsynced writes under `out`. Prints
/// `states volume=NAME states=N distinct=N candidates=N operations=N out=DIR`,
/// then one line a state, `state volume=NAME id=ID dir=DIR/state-NNN` (as
/// `DIR/states.txt` lists them).
pub async fn states(name: &str, out: &Path, max: usize, socket: &Path) -> Result<i32, AppError> {
    let out = if out.is_absolute() {
        out.to_owned()
    } else {
        std::env::current_dir().map_err(|source| AppError::Io { what: "find", path: ".".into(), source })?.join(out)
    };
    let body = serde_json::json!({ "Name": name, "Out": out, "Max": max });
    let answer = plugin::http::call(socket, "/Crashlab.States", body).await.map_err(plugin_error)?;
    let n = |key: &str| answer.get(key).and_then(serde_json::Value::as_u64).unwrap_or(0);
    println!(
        "states volume={name} states={} distinct={} candidates={} operations={} out={}",
        n("States"),
        n("Distinct"),
        n("Candidates"),
        n("Operations"),
        out.display()
    );
    let index = out.join("states.txt");
    let listed =
        std::fs::read_to_string(&index).map_err(|source| AppError::Io { what: "read", path: index, source })?;
    for (dir, id) in listed.lines().filter_map(|l| l.split_once(' ')) {
        println!("state volume={name} id={id} dir={}", out.join(dir).display());
    }
    Ok(exit::PASS)
}

fn plugin_error(e: PluginError) -> AppError {
    AppError::Plugin(error_chain(&e))
}
