//! Cleanup of a run's objects. [`cleanup_run`] removes everything a run
//! created, from its journal ([`crate::run::journal`]), with the labels,
//! `/proc/self/mounts` and sysfs's loop devices as a backstop, so a run
//! cleans up the same way whether it finished, failed, was interrupted or
//! panicked, and `crashlab clean` ([`clean_stale`]) can remove what a
//! killed run left.

use crate::docker::{Docker, DockerError};
use crate::run::journal::{self, Entry, Owner, Refusal};
use crate::run::{RUN_LABEL, STATE_LABEL};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// What a cleanup removed, and what it would not touch.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Cleaned {
    pub containers: usize,
    pub volumes: usize,
    pub networks: usize,
    /// Images the run committed or loaded (`commit-image`).
    pub images: usize,
    /// Run directories removed.
    pub dirs: usize,
    /// Bench host-path directories removed.
    pub host_dirs: usize,
    /// Fault-filesystem mounts detached.
    pub mounts: usize,
    /// btrfs pools unmounted or whose loop devices were freed, and the
    /// loop devices of `volume:local,...,device=loop` strategies.
    pub btrfs_pools: usize,
    /// Runs left alone because their process holds the journal's lock.
    pub live: usize,
    /// Labelled objects left alone because they belong to another state
    /// directory (or to a crashlab older than the state label).
    pub elsewhere: usize,
    /// Ids, names and paths that were not used, each with its reason.
    pub refused: Vec<Refusal>,
}

impl Cleaned {
    fn add(&mut self, other: Cleaned) {
        self.containers += other.containers;
        self.volumes += other.volumes;
        self.networks += other.networks;
        self.images += other.images;
        self.dirs += other.dirs;
        self.host_dirs += other.host_dirs;
        self.mounts += other.mounts;
        self.btrfs_pools += other.btrfs_pools;
        self.live += other.live;
        self.elsewhere += other.elsewhere;
        self.refused.extend(other.refused);
    }
}

/// Why `crashlab clean` could not scan for dead runs.
#[derive(Debug, thiserror::Error)]
pub enum CleanError {
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error("lock {} to look for dead runs", path.display())]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The run directory of `run_id` in the canonical `state`, refused when
/// `runs` or the run directory is a symlink (it would lead out of the
/// state directory); `None` when it does not exist.
fn run_dir(state: &Path, run_id: &str) -> Result<Option<PathBuf>, Refusal> {
    let Some(dir) = journal::confine("run directory", &state.join("runs").join(run_id), state)? else {
        return Ok(None);
    };
    match std::fs::symlink_metadata(&dir) {
        Ok(meta) if meta.is_dir() => Ok(Some(dir)),
        Ok(_) => {
            Err(Refusal::Unusable { what: "run directory".into(), path: dir, reason: "it is not a directory".into() })
        }
        Err(_) => Ok(None),
    }
}

/// Removes everything run `run_id` of `state_dir` created: containers,
/// images, volumes and networks (by journal and by label), btrfs pools, fault
/// filesystem mounts, bench host-path directories and the run directory,
/// in that order. Containers go first: a volume in use cannot be removed,
/// and a container keeps the fault filesystem it binds alive. Mounts go
/// before any directory: a recursive removal must never walk through a FUSE
/// mount, live (it would delete the backing data through it) or dead (it
/// fails with `ENOTCONN`), nor through a btrfs pool. The pools go before
/// the lazy detach of every other mount, so that they are unmounted
/// properly and their loop devices freed rather than left holding an image
/// nobody can reach.
///
/// Only what provably belongs to the run is touched: the id must have
/// crashlab's shape, journaled names must carry the run's prefix, journaled
/// paths must resolve below the run directory (a host-path directory:
/// directly below the root it was made in, never `/`), and what is refused
/// is listed in [`Cleaned::refused`]. The caller must own the run, or hold
/// its journal's lock.
pub async fn cleanup_run(docker: &Docker, state_dir: &Path, run_id: &str) -> Result<Cleaned, DockerError> {
    let mut cleaned = Cleaned::default();
    if !journal::is_run_id(run_id) {
        cleaned.refused.push(Refusal::BadRunId { id: run_id.to_owned(), what: "a run to clean".into() });
        return Ok(cleaned);
    }
    let state = std::fs::canonicalize(state_dir).unwrap_or_else(|_| state_dir.to_owned());
    let dir = run_dir(&state, run_id).unwrap_or_else(|refusal| {
        cleaned.refused.push(refusal);
        None
    });
    let entries = match &dir {
        Some(dir) => journal::read(&dir.join(journal::FILE)).unwrap_or_else(|e| {
            tracing::warn!("could not read the journal of run {run_id}: {e}; cleaning by label and path");
            vec![]
        }),
        None => vec![],
    };
    let prefix = format!("crashlab-{run_id}-");
    let mut named = |what: &str, name: &str| {
        let ok = name.starts_with(&prefix);
        if !ok {
            let refusal = Refusal::ForeignName { what: what.into(), name: name.into(), run: run_id.into() };
            cleaned.refused.push(refusal);
        }
        ok
    };
    let (mut containers, mut volumes, mut networks, mut images) = (vec![], vec![], vec![], vec![]);
    for entry in &entries {
        match entry {
            Entry::Image(tag) if named("journaled image", tag) => images.push(tag.clone()),
            Entry::Container(name) if named("journaled container", name) => containers.push(name.clone()),
            Entry::Volume(name) if named("journaled volume", name) => volumes.push(name.clone()),
            Entry::Network(name) if named("journaled network", name) => networks.push(name.clone()),
            _ => {}
        }
    }

    let label = format!("{RUN_LABEL}={run_id}");
    // A run killed in the middle of a request can get a container the
    // daemon finishes creating after the listing below: a volume it holds
    // answers "in use", and another pass over the containers frees it.
    let mut pass = 1;
    loop {
        let listed = docker.containers_labelled(&label).await?;
        let listed_names: Vec<String> = listed
            .iter()
            .flat_map(|c| c.names.iter().flatten())
            .map(|n| n.trim_start_matches('/').to_owned())
            .collect();
        for id in listed.into_iter().filter_map(|c| c.id) {
            cleaned.containers += usize::from(docker.remove_container_if_present(&id).await?);
        }
        for name in containers.iter().filter(|n| !listed_names.contains(n)) {
            cleaned.containers += usize::from(docker.remove_container_if_present(name).await?);
        }
        match remove_volumes(docker, &label, &volumes, &mut cleaned).await {
            Err(e) if e.is_conflict() && pass < 3 => {
                tracing::debug!("{}; removing containers again", crate::text::error_chain(&e));
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                pass += 1;
            }
            result => break result?,
        }
    }
    // Images after the containers that may run them; by label too, since
    // an image whose tag moved on (a later commit) keeps only its id.
    for image in docker.images_labelled(&label).await?.iter().chain(&images) {
        cleaned.images += usize::from(docker.remove_image(image).await?);
    }
    let listed: Vec<String> =
        docker.networks_labelled(&label).await?.into_iter().filter_map(|n| n.name.or(n.id)).collect();
    for name in listed.iter().chain(networks.iter().filter(|n| !listed.contains(n))) {
        cleaned.networks += usize::from(docker.remove_network_if_present(name).await?);
    }

    if let Some(dir) = dir {
        clean_host(run_id, &state, &dir, &entries, &mut cleaned);
    }
    Ok(cleaned)
}

/// The host's side of a run's cleanup: its btrfs pools and fault
/// filesystems detached, its bench host directories and its run directory
/// removed.
fn clean_host(run_id: &str, state: &Path, dir: &Path, entries: &[Entry], cleaned: &mut Cleaned) {
    for entry in entries {
        let confined = match entry {
            Entry::LoopImage(image) => journal::confine("journaled btrfs image", image, dir),
            Entry::Mount(mount) => journal::confine("journaled mount", mount, dir),
            _ => continue,
        };
        match (entry, confined) {
            (Entry::LoopImage(_), Ok(Some(image))) => {
                cleaned.btrfs_pools += crate::storage::btrfs::detach_btrfs_under(image.parent().unwrap_or(dir));
            }
            (Entry::Mount(_), Ok(Some(mount))) => {
                cleaned.mounts += crate::storage::faultmount::detach_mounts_under(&mount);
            }
            (_, Err(refusal)) => cleaned.refused.push(refusal),
            _ => {}
        }
    }
    // What a journal line could not yet name (a kill mid-write) is still
    // under the run directory.
    cleaned.btrfs_pools += crate::storage::btrfs::detach_btrfs_under(dir);
    cleaned.mounts += crate::storage::faultmount::detach_mounts_under(dir);
    for entry in entries {
        if let Entry::HostDir { root, dir: host_dir } = entry {
            match remove_host_dir(run_id, state, root, host_dir) {
                Ok(removed) => cleaned.host_dirs += usize::from(removed),
                Err(refusal) => cleaned.refused.push(refusal),
            }
        }
    }
    if !crate::images::mounts_under(dir).is_empty() {
        tracing::warn!("{} still has mounts; left in place", dir.display());
    } else if let Err(e) = std::fs::remove_dir_all(dir) {
        tracing::warn!("could not remove {}: {e}", dir.display());
    } else {
        cleaned.dirs += 1;
    }
}

/// Removes the volumes labelled `label` and the journaled `volumes`.
async fn remove_volumes(
    docker: &Docker,
    label: &str,
    volumes: &[String],
    cleaned: &mut Cleaned,
) -> Result<(), DockerError> {
    let listed: Vec<String> = docker.volumes_labelled(label).await?.into_iter().map(|v| v.name).collect();
    for name in listed.iter().chain(volumes.iter().filter(|n| !listed.contains(n))) {
        cleaned.volumes += usize::from(docker.remove_volume_if_present(name).await?);
    }
    Ok(())
}

/// Removes a bench host-path directory the journal lists, if it is
/// what the run made: named for the run, directly below the root the user
/// gave, that root not `/`, a real directory (not a symlink), with nothing
/// mounted below it and not holding the state directory. Returns whether
/// it was there to remove.
fn remove_host_dir(run_id: &str, state: &Path, root: &Path, dir: &Path) -> Result<bool, Refusal> {
    let what = "journaled host directory";
    let refuse = |reason: &str| Refusal::Unusable { what: what.into(), path: dir.to_owned(), reason: reason.into() };
    let root = match std::fs::canonicalize(root) {
        Ok(root) => root,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(refuse(&format!("cannot resolve its root {}: {e}", root.display()))),
    };
    if root.parent().is_none() {
        return Err(refuse("its root is `/`"));
    }
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if !name.starts_with(&format!("crashlab-{run_id}-")) {
        return Err(Refusal::ForeignName { what: what.into(), name, run: run_id.into() });
    }
    let Some(path) = journal::confine(what, dir, &root)? else { return Ok(false) };
    if path.parent() != Some(root.as_path()) {
        return Err(Refusal::Outside { what: what.into(), path, root });
    }
    if state.starts_with(&path) {
        return Err(refuse("it holds the state directory"));
    }
    match std::fs::symlink_metadata(&path) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(refuse("it is not a directory")),
        Err(_) => return Ok(false),
    }
    if !crate::images::mounts_under(&path).is_empty() {
        return Err(refuse("something is mounted below it"));
    }
    match std::fs::remove_dir_all(&path) {
        Ok(()) => Ok(true),
        Err(e) => Err(refuse(&format!("removing it failed: {e}"))),
    }
}

/// Removes what dead runs of `state_dir` left behind. A run is dead when
/// nobody holds its journal's lock; live runs are left alone, and so are
/// objects labelled for another state directory, so that runs with their
/// own state directory on the same daemon are never touched. Labels whose
/// run id is not crashlab's are refused.
pub async fn clean_stale(docker: &Docker, state_dir: &Path) -> Result<Cleaned, CleanError> {
    let mut total = Cleaned::default();
    let state = std::fs::canonicalize(state_dir).unwrap_or_else(|_| state_dir.to_owned());
    let runs_dir = state.join("runs");
    let ours = state.display().to_string();
    // Docker objects are listed before the runs lock is taken: a run born
    // after the listing has nothing in it, and one born before has its
    // directory and locked journal in place.
    let mut candidates: BTreeMap<String, ()> = BTreeMap::new();
    let mut consider = |what: String, labels: &HashMap<String, String>| {
        let Some(run) = labels.get(RUN_LABEL) else { return };
        if !journal::is_run_id(run) {
            total.refused.push(Refusal::BadRunId { id: run.clone(), what });
            return;
        }
        match labels.get(STATE_LABEL) {
            Some(s) if *s == ours => {
                candidates.insert(run.clone(), ());
            }
            None if runs_dir.join(run).is_dir() => {
                candidates.insert(run.clone(), ());
            }
            _ => total.elsewhere += 1,
        }
    };
    for c in docker.containers_labelled(RUN_LABEL).await? {
        let name = c.names.iter().flatten().next().map_or_else(|| c.id.clone().unwrap_or_default(), |n| n.clone());
        consider(format!("container {}", name.trim_start_matches('/')), &c.labels.unwrap_or_default());
    }
    for v in docker.volumes_labelled(RUN_LABEL).await? {
        consider(format!("volume {}", v.name), &v.labels);
    }
    for n in docker.networks_labelled(RUN_LABEL).await? {
        consider(format!("network {}", n.name.unwrap_or_default()), &n.labels.unwrap_or_default());
    }

    let mut claims = vec![];
    if runs_dir.is_dir() {
        let lock_err = |source| CleanError::Lock { path: runs_dir.join(journal::RUNS_LOCK), source };
        let scan = journal::lock_runs(&runs_dir, true).map_err(lock_err)?;
        for entry in std::fs::read_dir(&runs_dir).map_err(lock_err)?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == journal::RUNS_LOCK {
                continue;
            }
            if journal::is_run_id(&name) {
                candidates.insert(name, ());
            } else {
                let what = format!("directory {}", entry.path().display());
                total.refused.push(Refusal::BadRunId { id: name, what });
            }
        }
        for run in candidates.keys() {
            let dir = runs_dir.join(run);
            if !dir.is_dir() {
                claims.push((run.clone(), None));
                continue;
            }
            match journal::owner(&dir) {
                Ok(Owner::Alive) => total.live += 1,
                Ok(Owner::Dead(lock)) => claims.push((run.clone(), Some(lock))),
                Ok(Owner::NoJournal) => claims.push((run.clone(), None)),
                Err(e) => tracing::warn!("could not read the journal lock of run {run}: {e}; left alone"),
            }
        }
        drop(scan);
    } else {
        claims.extend(candidates.into_keys().map(|run| (run, None)));
    }
    for (run, lock) in claims {
        total.add(cleanup_run(docker, &state, &run).await?);
        drop(lock);
    }
    Ok(total)
}
