//! Workload images built without a registry and without host tools: read
//! a Debian archive over HTTP or HTTPS (its `InRelease`'s OpenPGP
//! signatures, and their dates, checked against the Debian archive keys
//! shipped with crashlab; every index and package against the hashes it
//! signs), unpack the essential packages into a root
//! filesystem streamed into the daemon's image import, finish the install
//! with dpkg in a container of that base as debootstrap's second stage
//! does, and import the container's file system as the image. The
//! recipe's fingerprint is stored in the image (`CRASHLAB_RECIPE` in its
//! environment), so a stale image can be told from a current one.
//!
//! The debootstrap path (`--via debootstrap`) is kept to measure the two
//! side by side; it needs the host tool and root.

mod archive;
mod bootstrap;
mod deb;
mod debootstrap;
mod signature;

pub use archive::ArchiveError;
pub use deb::DebError;

use crate::docker::{Docker, DockerError};
use bytes::Bytes;
use crashlab_workloads::ImageRecipe;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The Debian mirror used unless `--mirror` or `CRASHLAB_DEBIAN_MIRROR`
/// says otherwise.
pub const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";

const FINGERPRINT_ENV: &str = "CRASHLAB_RECIPE";

/// Names another repository for crashlab's images (`crashlab-test` builds
/// `crashlab-test/mariadb:latest`), to try a build beside the images in
/// use.
pub const REPO_ENV: &str = "CRASHLAB_IMAGE_REPO";

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("find debootstrap: it is not installed (install it with `apt-get install debootstrap`)")]
    NoDebootstrap,
    #[error("build images: debootstrap needs root (run crashlab as root)")]
    NotRoot,
    #[error("run debootstrap for {image} (exit status {status}); its last output:\n{output}")]
    Debootstrap { image: String, status: String, output: String },
    #[error("read the Debian archive for {image}")]
    Archive {
        image: String,
        #[source]
        source: ArchiveError,
    },
    #[error("unpack the base system for {image}")]
    Unpack {
        image: String,
        #[source]
        source: DebError,
    },
    #[error("install packages for {image} in container {container} (exit code {code}); its last output:\n{output}")]
    Install { image: String, container: String, code: i64, output: String },
    #[error("prepare the root filesystem at {path}")]
    Rootfs {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("take the build lock {path}")]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("stream the root filesystem")]
    Tar(#[source] std::io::Error),
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error("find image {0}: no such crashlab image (known: {known})", known = known_images())]
    Unknown(String),
}

/// Options for a build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub mirror: String,
    /// Where downloaded packages and indexes are kept between builds.
    pub cache_dir: PathBuf,
    /// Where debootstrap assembles the root filesystem; removed afterwards.
    pub work_dir: PathBuf,
    pub quiet: bool,
    pub via: Via,
    /// Where the build's progress line is drawn, beside those of the
    /// builds running with it.
    pub bars: MultiProgress,
}

/// How the base system is bootstrapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Via {
    /// crashlab reads the archive itself and installs in a container.
    #[default]
    Archive,
    /// The host's debootstrap, kept for comparison.
    Debootstrap,
}

/// The tag `recipe`'s image is built and looked up as: its own, or under
/// the repository `CRASHLAB_IMAGE_REPO` names.
pub fn tag(recipe: &ImageRecipe) -> String {
    match std::env::var(REPO_ENV) {
        Ok(repo) if !repo.is_empty() => {
            let name = recipe.tag.split_once('/').map_or(recipe.tag, |(_, name)| name);
            format!("{repo}/{name}")
        }
        _ => recipe.tag.to_owned(),
    }
}

/// What crashlab runs when a scenario names no image: one of crashlab's
/// own images (`crashlab/mariadb:latest`) as [`tag`] names it, so under
/// `CRASHLAB_IMAGE_REPO` when that is set, as `crashlab images build`
/// builds it; any other image as it is.
pub fn resolve(image: &str) -> String {
    crashlab_workloads::RECIPES.into_iter().find(|r| r.tag == image).map_or_else(|| image.to_owned(), tag)
}

/// The recipe `image` is built from: one of crashlab's own images by its
/// own tag or by [`tag`]'s.
pub fn recipe_of(image: &str) -> Option<&'static ImageRecipe> {
    crashlab_workloads::RECIPES.into_iter().find(|r| r.tag == image || tag(r) == image)
}

/// Whether the daemon has `recipe`'s image, and whether it is current.
pub async fn status(docker: &Docker, recipe: &ImageRecipe) -> Result<ImageStatus, DockerError> {
    status_as(docker, recipe, &tag(recipe)).await
}

/// Whether the daemon has `recipe`'s image as `image`, and whether it is
/// current.
pub async fn status_as(docker: &Docker, recipe: &ImageRecipe, image: &str) -> Result<ImageStatus, DockerError> {
    let Some(image) = docker.image(image).await? else { return Ok(ImageStatus::Missing) };
    let env = image.config.and_then(|c| c.env).unwrap_or_default();
    let wanted = format!("{FINGERPRINT_ENV}={}", recipe.fingerprint());
    Ok(if env.contains(&wanted) { ImageStatus::Current } else { ImageStatus::Stale })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageStatus {
    Missing,
    Stale,
    Current,
}

/// Builds `recipe`'s image and imports it into the daemon as
/// [`tag`]`(recipe)`; see [`build_as`].
pub async fn build(docker: &Docker, recipe: &ImageRecipe, options: &BuildOptions) -> Result<Built, ImageError> {
    build_as(docker, recipe, &tag(recipe), options).await
}

/// Whether a build built its image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Built {
    /// This build did.
    Now,
    /// Another build of it held its lock, and it was current when that
    /// one ended: nothing was built twice.
    ByAnother,
}

/// Builds `recipe`'s image as `image`, holding its build lock (see
/// [`build_missing`]); when another build held the lock and left the
/// image current, it is not built again.
pub async fn build_as(
    docker: &Docker,
    recipe: &ImageRecipe,
    image: &str,
    options: &BuildOptions,
) -> Result<Built, ImageError> {
    let (_lock, waited) = lock(image, options).await?;
    if waited && status_as(docker, recipe, image).await? == ImageStatus::Current {
        return Ok(Built::ByAnother);
    }
    build_locked(docker, recipe, image, options).await?;
    Ok(Built::Now)
}

async fn build_locked(
    docker: &Docker,
    recipe: &ImageRecipe,
    image: &str,
    options: &BuildOptions,
) -> Result<(), ImageError> {
    match options.via {
        Via::Archive => bootstrap::build(docker, recipe, image, options).await,
        Via::Debootstrap => debootstrap::build(docker, recipe, image, options).await,
    }
}

/// Builds `recipe`'s image as `image` unless the daemon has it, waiting
/// first for any other build of it that holds its lock — another
/// crashlab's, e.g. `crashlab images build` in the background while
/// tests that need the image start (CI's `.ci/run`). Returns whether it
/// built the image.
pub async fn build_missing(
    docker: &Docker,
    recipe: &ImageRecipe,
    image: &str,
    options: &BuildOptions,
) -> Result<bool, ImageError> {
    let _lock = lock(image, options).await?;
    if status_as(docker, recipe, image).await? != ImageStatus::Missing {
        return Ok(false);
    }
    build_locked(docker, recipe, image, options).await?;
    Ok(true)
}

/// Takes `image`'s build lock, a file under the work directory locked
/// for the build's length (the kernel drops it with the process), saying
/// so when another build holds it. Returns the lock and whether it had to
/// wait for it.
async fn lock(image: &str, options: &BuildOptions) -> Result<(std::fs::File, bool), ImageError> {
    let path = options.work_dir.join(format!("{}.lock", image.replace(['/', ':'], "_")));
    let lock_err = |source| ImageError::Lock { path: path.clone(), source };
    std::fs::create_dir_all(&options.work_dir).map_err(lock_err)?;
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(lock_err)?;
    match file.try_lock() {
        Ok(()) => return Ok((file, false)),
        Err(std::fs::TryLockError::WouldBlock) => {}
        Err(std::fs::TryLockError::Error(e)) => return Err(lock_err(e)),
    }
    if !options.quiet {
        options.bars.suspend(|| eprintln!("waiting for another build of {image} to end ({})", path.display()));
    }
    let file = tokio::task::spawn_blocking(move || file.lock().map(|()| file))
        .await
        .map_err(|e| lock_err(std::io::Error::other(e)))?
        .map_err(lock_err)?;
    Ok((file, true))
}

/// The Dockerfile-style changes the image is imported with: the recipe's,
/// and the fingerprint.
fn import_changes(recipe: &ImageRecipe) -> Vec<String> {
    let mut changes: Vec<String> = recipe.changes.iter().map(|c| c.to_string()).collect();
    changes.push(format!("ENV {FINGERPRINT_ENV}={}", recipe.fingerprint()));
    changes
}

const CHUNK: usize = 1 << 20;

/// A `Write` that hands 1 MiB chunks to an async channel, so a blocking tar
/// builder can feed an HTTP body.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the daemon stopped reading the image"))
    }
}

fn tokio_stream(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Removes root filesystems that builds killed midway left under
/// `work_dir` (their owner, named by the directory's pid suffix, is gone).
/// Returns how many it removed.
pub fn clean_stale_builds(work_dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(work_dir) else { return 0 };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((_, pid)) = name.rsplit_once("-rootfs-") else { continue };
        if pid == std::process::id().to_string() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        remove_rootfs(&entry.path());
        removed += usize::from(!entry.path().exists());
    }
    removed
}

/// Removes the install containers and base images of builds whose
/// crashlab process is gone. Returns how many builds it cleaned up.
pub async fn clean_stale_build_containers(docker: &Docker) -> Result<usize, DockerError> {
    let mut removed = 0;
    for container in docker.containers_labelled(bootstrap::BUILD_PID_LABEL).await? {
        let labels = container.labels.unwrap_or_default();
        let pid = labels.get(bootstrap::BUILD_PID_LABEL).map(String::as_str).unwrap_or_default();
        if pid == std::process::id().to_string() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let Some(id) = container.id else { continue };
        docker.remove_container(&id).await?;
        if let Some(base) = labels.get(bootstrap::BUILD_BASE_LABEL) {
            docker.remove_image(base).await?;
        }
        removed += 1;
    }
    Ok(removed)
}

/// Removes a build's root filesystem, first detaching anything debootstrap
/// left mounted inside it (a failed run can leave /proc mounted there, and
/// deleting through it would be a disaster).
fn remove_rootfs(rootfs: &Path) {
    if !rootfs.exists() {
        return;
    }
    let mounts = mounts_under(rootfs);
    for mount in mounts.iter().rev() {
        let _ = Command::new("umount").arg("-l").arg(mount).status();
    }
    if !mounts_under(rootfs).is_empty() {
        tracing::warn!("{} still has mounts inside; left in place", rootfs.display());
        return;
    }
    if let Err(e) = std::fs::remove_dir_all(rootfs) {
        tracing::warn!("could not remove {}: {e}", rootfs.display());
    }
}

/// Mount points at or below `dir`, from /proc/self/mounts.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else { return vec![] };
    mounts
        .lines()
        .filter_map(|line| line.split_whitespace().nth(1))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(dir))
        .collect()
}

fn spinner(options: &BuildOptions, message: String) -> ProgressBar {
    if options.quiet {
        return ProgressBar::hidden();
    }
    let bar = options.bars.add(ProgressBar::new_spinner());
    bar.set_style(ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_msg}").expect("static template"));
    bar.enable_steady_tick(Duration::from_millis(200));
    bar.set_message(message);
    bar
}

/// The path of an executable on `PATH`.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(program)).find(|p| p.is_file())
}

pub fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
}

/// The recipe for a name given on the command line.
pub fn recipe(name: &str) -> Result<&'static ImageRecipe, ImageError> {
    crashlab_workloads::RECIPES.into_iter().find(|r| r.name == name).ok_or_else(|| ImageError::Unknown(name.to_owned()))
}

fn known_images() -> String {
    crashlab_workloads::RECIPES.map(|r| r.name).join(", ")
}

/// Fetches `dists/SUITE/InRelease` from `mirror` and verifies it against
/// the Debian archive keys, as every build does first: what `crashlab
/// doctor` asks of the mirror.
pub async fn verify_release(mirror: &str, suite: &str) -> Result<(), ArchiveError> {
    archive::release(&archive::Mirror::new(mirror)?, suite).await.map(|_| ())
}
