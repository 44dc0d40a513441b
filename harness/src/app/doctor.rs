//! `crashlab doctor`: whether this host can run crashlab, one check a
//! line, each that is not met with the command that fixes it. What the
//! default run (`crashlab run`, the built-in smoke scenario) cannot do
//! without fails the doctor (exit 2): a daemon of Docker 20.10 (API 1.41)
//! or newer, and its image or a mirror to build it from. What only some
//! strategies or faults need (FUSE, loop devices, btrfs-progs, the
//! GlusterFS client) warns and names them; the test suite needs all of it,
//! and `scripts/prepare` installs what packages supply.
//!
//! [`missing_for`] answers the same question for a plan's cells, so that a
//! test that needs a tool this host lacks can say so in one line.

use crate::app::{self, exit};
use crate::docker::{Docker, docker_host};
use crate::faults::Fault;
use crate::images::{self, ImageStatus};
use crate::scenario::{Cell, Scenario};
use crate::storage::{DataOn, Strategy};
use crate::text::error_chain;
use std::path::Path;
use std::time::Duration;

/// The oldest Docker Engine crashlab supports, and the API version it
/// speaks (bollard's requests, the `HostConfig` fields the runs set).
pub const MIN_ENGINE: (u32, u32) = (20, 10);
pub const MIN_API: (u32, u32) = (1, 41);

/// How long the doctor waits for the mirror's `InRelease`.
const MIRROR_TIMEOUT: Duration = Duration::from_secs(30);

/// How bad an unmet check is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Ok,
    /// Some strategies or faults cannot run here; the default run can.
    Warn,
    /// The default run cannot work here.
    Fail,
}

/// One line of the doctor's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub level: Level,
    pub what: String,
    pub detail: String,
    /// The command that fixes it, when the check is not met.
    pub fix: Option<String>,
}

impl Check {
    fn ok(what: impl Into<String>, detail: impl Into<String>) -> Check {
        Check { level: Level::Ok, what: what.into(), detail: detail.into(), fix: None }
    }

    fn not(level: Level, what: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check { level, what: what.into(), detail: detail.into(), fix: Some(fix.into()) }
    }
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tag = match self.level {
            Level::Ok => "ok  ",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        };
        write!(f, "{tag} {}: {}", self.what, self.detail)?;
        if let Some(fix) = &self.fix {
            write!(f, "\n       fix: {fix}")?;
        }
        Ok(())
    }
}

/// Something of the host a cell needs beyond the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Need {
    /// A loop-mounted btrfs image: root, loop devices, btrfs-progs.
    BtrfsPool,
    /// The GlusterFS FUSE client's mount helper.
    GlusterClient,
    /// `/dev/fuse`: the fault filesystem and the GlusterFS client.
    Fuse,
}

impl Need {
    const ALL: [Need; 3] = [Need::BtrfsPool, Need::GlusterClient, Need::Fuse];
}

/// What a cell of `strategy` under `fault` needs of the host.
fn needs(strategy: Strategy, fault: Fault) -> Vec<Need> {
    let mut out = match strategy.def().data_on {
        DataOn::BtrfsSubvolume => vec![Need::BtrfsPool],
        // A driver volume on a loop device crashlab makes: root, loop
        // devices and the tools (`LoopDevice::create` checks btrfs-progs'
        // with them).
        DataOn::DriverVolume if strategy.driver_volume().is_some_and(|v| matches!(v.loop_fs(), Ok(Some(_)))) => {
            vec![Need::BtrfsPool]
        }
        DataOn::Gluster => vec![Need::GlusterClient, Need::Fuse],
        _ => vec![],
    };
    if fault.needs_faultfs(strategy) {
        out.push(Need::Fuse);
    }
    out
}

/// The strategies and faults that need `need`, by name, over every pair
/// that can run.
fn users(need: Need) -> Vec<&'static str> {
    let mut out = Vec::new();
    for strategy in Strategy::ALL {
        for fault in Fault::ALL.into_iter().filter(|f| f.unsupported_on(strategy).is_none()) {
            if !needs(strategy, fault).contains(&need) {
                continue;
            }
            let by_fault = need == Need::Fuse && fault.needs_faultfs(strategy);
            let name = if by_fault { fault.as_str() } else { strategy.as_str() };
            if !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out
}

/// Something this host lacks for a need: the program or device, and the
/// command that supplies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    pub what: String,
    pub fix: String,
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.what, self.fix)
    }
}

fn missing(what: impl Into<String>, fix: impl Into<String>) -> Missing {
    Missing { what: what.into(), fix: fix.into() }
}

/// What this host lacks for `need`; empty when it has it all.
fn lacking(need: Need) -> Vec<Missing> {
    use crate::storage::btrfs::{self, BtrfsError};
    match need {
        Need::BtrfsPool => {
            let mut out = Vec::new();
            if !Path::new("/dev/loop-control").exists() {
                out.push(missing("loop devices (/dev/loop-control)", "modprobe loop"));
            }
            match btrfs::check_available() {
                Ok(()) => {}
                Err(BtrfsError::MissingTool { program, package }) => {
                    out.push(missing(program, format!("apt-get install {package}")))
                }
                Err(BtrfsError::NotRoot) => out.push(missing("root", "run as root: loop devices and mounts need it")),
                Err(e) => out.push(missing("btrfs pools", error_chain(&e))),
            }
            out
        }
        Need::GlusterClient if !crate::storage::gluster::client_installed() => {
            vec![missing("mount.glusterfs", "apt-get install glusterfs-client")]
        }
        Need::GlusterClient => vec![],
        Need::Fuse => fuse_lacking().into_iter().collect(),
    }
}

/// `/dev/fuse` must exist and open for reading and writing, as a mount
/// opens it.
fn fuse_lacking() -> Option<Missing> {
    let fuse = Path::new("/dev/fuse");
    if !fuse.exists() {
        return Some(missing("/dev/fuse", "modprobe fuse (in a container: run it with --device /dev/fuse)"));
    }
    match std::fs::OpenOptions::new().read(true).write(true).open(fuse) {
        Ok(_) => None,
        Err(e) => Some(missing("/dev/fuse", format!("make it usable ({e}): run as root, or with --device /dev/fuse"))),
    }
}

/// What this host lacks for `cells`, each once: empty when they can all
/// run here.
pub fn missing_for(cells: &[Cell]) -> Vec<Missing> {
    let mut wanted: Vec<Need> = cells.iter().flat_map(|c| needs(c.strategy, c.fault)).collect();
    wanted.sort();
    wanted.dedup();
    let mut out: Vec<Missing> = Vec::new();
    for m in wanted.into_iter().flat_map(lacking) {
        if !out.contains(&m) {
            out.push(m);
        }
    }
    out
}

/// Parses the leading `MAJOR.MINOR` of a version such as `20.10.24+dfsg1`
/// or `1.41`.
pub fn major_minor(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Whether a daemon reporting `engine` and `api` is new enough; `Err`
/// says what is too old.
pub fn daemon_new_enough(engine: &str, api: &str) -> Result<(), String> {
    let old = |what: &str, v: &str, min: (u32, u32)| format!("{what} {v} is older than {}.{}", min.0, min.1);
    match (major_minor(engine), major_minor(api)) {
        (_, None) => Err(format!("the daemon's API version `{api}` cannot be read")),
        (_, Some(a)) if a < MIN_API => Err(old("API", api, MIN_API)),
        // The API decides what crashlab can ask; an engine whose version
        // does not parse (a distribution's own scheme) passes on its API.
        (Some(e), _) if e < MIN_ENGINE => Err(old("Docker Engine", engine, MIN_ENGINE)),
        _ => Ok(()),
    }
}

/// The daemon: reachable, and new enough.
async fn daemon() -> (Check, Option<Docker>) {
    let docker = match app::connect().await {
        Ok(docker) => docker,
        Err(e) => {
            let fix = e.hint().unwrap_or_default();
            return (Check::not(Level::Fail, "docker daemon", e.to_string(), fix), None);
        }
    };
    let version = match docker.version().await {
        Ok(v) => v,
        Err(e) => {
            let fix = "check that DOCKER_HOST names a Docker Engine";
            return (Check::not(Level::Fail, "docker daemon", error_chain(&e), fix), None);
        }
    };
    let engine = version.version.unwrap_or_default();
    let api = version.api_version.unwrap_or_default();
    let detail = format!("Docker Engine {engine} at {}, API {api}", docker_host());
    let check = match daemon_new_enough(&engine, &api) {
        Ok(()) => Check::ok("docker daemon", detail),
        Err(why) => Check::not(
            Level::Fail,
            "docker daemon",
            format!("{detail}: {why}"),
            format!(
                "upgrade to Docker Engine {}.{} (API {}.{}) or newer",
                MIN_ENGINE.0, MIN_ENGINE.1, MIN_API.0, MIN_API.1
            ),
        ),
    };
    (check, Some(docker))
}

/// The mirror: every suite the recipes build from, its `InRelease`
/// fetched and verified. `Err` holds why not.
async fn mirror(mirror: &str) -> Result<String, String> {
    let mut suites: Vec<&str> = crashlab_workloads::RECIPES.iter().map(|r| r.suite).collect();
    suites.sort_unstable();
    suites.dedup();
    for suite in &suites {
        match tokio::time::timeout(MIRROR_TIMEOUT, images::verify_release(mirror, suite)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(error_chain(&e)),
            Err(_) => return Err(format!("no answer for dists/{suite}/InRelease in {} s", MIRROR_TIMEOUT.as_secs())),
        }
    }
    Ok(format!("{mirror}: InRelease of {} verified against the Debian archive keys", suites.join(", ")))
}

/// The images, and the mirror they are built from. The default run's
/// image must be there or buildable; the others warn.
async fn images(docker: &Docker, mirror_url: &str) -> Vec<Check> {
    let default_image =
        default_scenario().map(|s| crate::workload::workload_for(&s.workload).container().image).unwrap_or_default();
    let mirror = mirror(mirror_url).await;
    let mut checks = Vec::new();
    let mut default_buildable = true;
    for recipe in crashlab_workloads::RECIPES {
        let tag = images::tag(recipe);
        let what = format!("image {tag}");
        let level = if recipe.tag == default_image { Level::Fail } else { Level::Warn };
        checks.push(match images::status(docker, recipe).await {
            Ok(ImageStatus::Current) => Check::ok(what, "built"),
            Ok(ImageStatus::Stale) => {
                Check::ok(what, "built from an older recipe; `crashlab images build` refreshes it")
            }
            Ok(ImageStatus::Missing) if mirror.is_ok() => Check::ok(what, "missing; `crashlab run` builds it"),
            Ok(ImageStatus::Missing) => {
                default_buildable &= level != Level::Fail;
                let fix = format!(
                    "name a reachable mirror (--mirror or CRASHLAB_DEBIAN_MIRROR), then `crashlab images build {}`",
                    recipe.name
                );
                Check::not(level, what, "missing, and the mirror cannot build it", fix)
            }
            Err(e) => Check::not(level, what, error_chain(&e), "check the daemon"),
        });
    }
    let mirror = match mirror {
        Ok(detail) => Check::ok("Debian mirror", detail),
        Err(why) => Check::not(
            if default_buildable { Level::Warn } else { Level::Fail },
            "Debian mirror",
            format!("{mirror_url}: {why}"),
            "name another http:// Debian mirror with --mirror or CRASHLAB_DEBIAN_MIRROR",
        ),
    };
    checks.insert(0, mirror);
    checks
}

/// The built-in scenario `crashlab run` runs without arguments.
fn default_scenario() -> Option<Scenario> {
    Scenario::parse(crate::scenario::SMOKE, "scenarios/smoke.toml (built in)").ok()
}

/// The host's devices and tools, each with what needs it: a failure when
/// the default run does, a warning otherwise.
fn host() -> Vec<Check> {
    let default_cells = default_scenario().map(|s| s.plan().0).unwrap_or_default();
    let mut checks = vec![if images::is_root() {
        Check::ok("root", "yes")
    } else {
        Check::not(
            Level::Warn,
            "root",
            "no: fault filesystems, btrfs pools and the GlusterFS mount need root",
            "run crashlab as root",
        )
    }];
    for need in Need::ALL {
        let needed_by_default = default_cells.iter().any(|c| needs(c.strategy, c.fault).contains(&need));
        let level = if needed_by_default { Level::Fail } else { Level::Warn };
        let users = users(need).join(", ");
        let name = match need {
            Need::BtrfsPool => "btrfs pools",
            Need::GlusterClient => "GlusterFS FUSE client",
            Need::Fuse => "/dev/fuse",
        };
        let lacking = lacking(need);
        if lacking.is_empty() {
            checks.push(Check::ok(name, format!("usable (needed by {users})")));
        }
        for m in lacking {
            checks.push(Check::not(level, name, format!("{} missing (needed by {users})", m.what), m.fix));
        }
    }
    let state = crate::run::state_dir();
    let fs = crate::report::environment::filesystem_of(state.parent().unwrap_or(&state)).unwrap_or_default();
    checks.push(Check::ok("state directory", format!("{} ({fs})", state.display())));
    checks
}

/// Every check, in the order the doctor prints them.
pub async fn checks(mirror: &str) -> Vec<Check> {
    let (daemon, docker) = daemon().await;
    let mut checks = vec![daemon];
    if let Some(docker) = &docker {
        checks.extend(images(docker, mirror).await);
    }
    checks.extend(host());
    checks
}

/// `crashlab doctor`: prints every check and a verdict; returns 0 when
/// the default run can work here, 2 when it cannot.
pub async fn doctor(mirror: &str) -> i32 {
    use std::io::Write as _;
    let checks = checks(mirror).await;
    let mut out = std::io::stdout();
    for check in &checks {
        let _ = writeln!(out, "{check}");
    }
    let failed: Vec<&str> = checks.iter().filter(|c| c.level == Level::Fail).map(|c| c.what.as_str()).collect();
    let warned = checks.iter().filter(|c| c.level == Level::Warn).count();
    let verdict = if failed.is_empty() {
        let also = if warned == 0 {
            "and so can every strategy and fault".to_owned()
        } else {
            format!("{warned} warning(s) name what the others need")
        };
        format!("the default run (`crashlab run`) can work here; {also}")
    } else {
        format!("the default run (`crashlab run`) cannot work here: fix {}", failed.join(", "))
    };
    let _ = writeln!(out, "\n{verdict}");
    if failed.is_empty() { exit::PASS } else { exit::SETUP }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_to_major_and_minor() {
        for (text, want) in [
            ("20.10.24+dfsg1", Some((20, 10))),
            ("1.41", Some((1, 41))),
            ("27.3.1", Some((27, 3))),
            ("v1", None),
            ("", None),
        ] {
            assert_eq!(major_minor(text), want, "{text}");
        }
    }

    #[test]
    fn a_daemon_older_than_20_10_or_api_1_41_is_refused_and_named() {
        assert_eq!(daemon_new_enough("20.10.24+dfsg1", "1.41"), Ok(()));
        assert_eq!(daemon_new_enough("27.3.1", "1.47"), Ok(()));
        assert_eq!(daemon_new_enough("custom-build", "1.43"), Ok(()));
        assert_eq!(daemon_new_enough("19.03.15", "1.40"), Err("API 1.40 is older than 1.41".into()));
        assert_eq!(daemon_new_enough("19.03.15", "1.41"), Err("Docker Engine 19.03.15 is older than 20.10".into()));
        assert!(daemon_new_enough("20.10.0", "").unwrap_err().contains("cannot be read"));
    }

    #[test]
    fn needs_follow_from_where_the_data_lives_and_the_fault_filesystem() {
        assert_eq!(needs(Strategy::NamedVolume, Fault::ProcessKill), vec![]);
        assert_eq!(needs(Strategy::NamedVolume, Fault::HostKill), vec![Need::Fuse]);
        assert_eq!(needs(Strategy::BtrfsSnapshot, Fault::HostLoss), vec![Need::BtrfsPool]);
        assert_eq!(needs(Strategy::GlusterfsReplica, Fault::HostLoss), vec![Need::GlusterClient, Need::Fuse]);
        assert_eq!(users(Need::BtrfsPool), vec!["btrfs-snapshot"]);
        assert_eq!(users(Need::GlusterClient), vec!["glusterfs-replica"]);
        let fuse = users(Need::Fuse);
        for name in ["host-kill", "torn-write", "disk-full", "io-error", "crash-states", "glusterfs-replica"] {
            assert!(fuse.contains(&name), "{name} needs /dev/fuse: {fuse:?}");
        }
        assert!(!fuse.contains(&"process-kill"), "{fuse:?}");
    }

    #[test]
    fn the_default_run_needs_nothing_of_the_host_beyond_the_daemon() {
        let (cells, _) = default_scenario().unwrap().plan();
        assert!(cells.iter().all(|c| needs(c.strategy, c.fault).is_empty()));
        assert_eq!(missing_for(&cells), vec![]);
    }

    #[test]
    fn a_check_not_met_prints_its_fix_under_it() {
        let check = Check::not(Level::Warn, "btrfs pools", "mkfs.btrfs missing", "apt-get install btrfs-progs");
        assert_eq!(check.to_string(), "warn btrfs pools: mkfs.btrfs missing\n       fix: apt-get install btrfs-progs");
        assert_eq!(Check::ok("root", "yes").to_string(), "ok   root: yes");
    }
}
