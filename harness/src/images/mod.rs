//! Workload images built without a registry: debootstrap a Debian root
//! filesystem with the recipe's packages, add the recipe's files, prune
//! what a server does not need, and stream it as a tar archive into the
//! daemon's image import. The recipe's fingerprint is stored in the image
//! (`CRASHLAB_RECIPE` in its environment), so a stale image can be told
//! from a current one.

use crate::docker::{Docker, DockerError};
use bytes::Bytes;
use crashlab_workloads::ImageRecipe;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The Debian mirror used unless `--mirror` or `CRASHLAB_DEBIAN_MIRROR`
/// says otherwise.
pub const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";

const FINGERPRINT_ENV: &str = "CRASHLAB_RECIPE";

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("find debootstrap: it is not installed (install it with `apt-get install debootstrap`)")]
    NoDebootstrap,
    #[error("build images: debootstrap needs root (run crashlab as root)")]
    NotRoot,
    #[error("run debootstrap for {image} (exit status {status}); its last output:\n{output}")]
    Debootstrap { image: String, status: String, output: String },
    #[error("prepare the root filesystem at {path}")]
    Rootfs {
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
    /// Where debootstrap keeps downloaded packages between builds.
    pub cache_dir: PathBuf,
    /// Where the root filesystem is assembled; removed afterwards.
    pub work_dir: PathBuf,
    pub quiet: bool,
}

/// Whether the daemon has `recipe`'s image, and whether it is current.
pub async fn status(docker: &Docker, recipe: &ImageRecipe) -> Result<ImageStatus, DockerError> {
    let Some(image) = docker.image(recipe.tag).await? else { return Ok(ImageStatus::Missing) };
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

/// Builds `recipe`'s image and imports it into the daemon.
pub async fn build(docker: &Docker, recipe: &ImageRecipe, options: &BuildOptions) -> Result<(), ImageError> {
    if which("debootstrap").is_none() {
        return Err(ImageError::NoDebootstrap);
    }
    if !is_root() {
        return Err(ImageError::NotRoot);
    }
    let rootfs = options.work_dir.join(format!("{}-rootfs-{}", recipe.name, std::process::id()));
    let result = build_in(docker, recipe, options, &rootfs).await;
    remove_rootfs(&rootfs);
    result
}

async fn build_in(
    docker: &Docker,
    recipe: &ImageRecipe,
    options: &BuildOptions,
    rootfs: &Path,
) -> Result<(), ImageError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ImageError::Rootfs { path, source }
    };
    std::fs::create_dir_all(&options.cache_dir).map_err(io(&options.cache_dir))?;
    std::fs::create_dir_all(rootfs).map_err(io(rootfs))?;
    let bar = spinner(options.quiet, format!("building {}", recipe.tag));

    let recipe_owned = recipe.clone();
    let (rootfs_owned, options_owned, bar_owned) = (rootfs.to_owned(), options.clone(), bar.clone());
    tokio::task::spawn_blocking(move || debootstrap(&recipe_owned, &options_owned, &rootfs_owned, &bar_owned))
        .await
        .map_err(|e| ImageError::Tar(std::io::Error::other(e)))??;

    bar.set_message(format!("{}: adding crashlab's files", recipe.tag));
    for file in recipe.files {
        let path = rootfs.join(file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&path, file.contents).map_err(io(&path))?;
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(file.mode)).map_err(io(&path))?;
    }
    // Docker provides /dev, /proc and /sys; the pruned paths are caches and
    // documentation a server never reads.
    for dir in ["dev", "proc", "sys"].iter().chain(recipe.prune) {
        let path = rootfs.join(dir);
        if path.is_dir() {
            empty_dir(&path).map_err(io(&path))?;
        }
    }

    bar.set_message(format!("{}: importing into Docker", recipe.tag));
    let mut changes: Vec<String> = recipe.changes.iter().map(|c| c.to_string()).collect();
    changes.push(format!("ENV {FINGERPRINT_ENV}={}", recipe.fingerprint()));
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    let tar_root = rootfs.to_owned();
    let tar_task = tokio::task::spawn_blocking(move || {
        let mut builder = tar::Builder::new(ChannelWriter { tx: tx.clone(), buf: Vec::with_capacity(CHUNK) });
        builder.follow_symlinks(false);
        // Docker's importer rejects GNU sparse entries (type S).
        builder.sparse(false);
        let result =
            builder.append_dir_all(".", &tar_root).and_then(|()| builder.into_inner()).and_then(|mut w| w.flush());
        if let Err(e) = &result {
            let _ = tx.blocking_send(Err(std::io::Error::new(e.kind(), e.to_string())));
        }
        result
    });
    let stream = tokio_stream(rx);
    let imported = docker.import_image(recipe.tag, changes, stream).await;
    let tarred = tar_task.await.map_err(|e| ImageError::Tar(std::io::Error::other(e)))?;
    // A daemon that refuses the import stops reading, so the tar side sees
    // only a broken pipe; the daemon's answer says why.
    imported?;
    tarred.map_err(ImageError::Tar)?;
    bar.finish_with_message(format!("built {}", recipe.tag));
    Ok(())
}

fn debootstrap(
    recipe: &ImageRecipe,
    options: &BuildOptions,
    rootfs: &Path,
    bar: &ProgressBar,
) -> Result<(), ImageError> {
    let mut child = Command::new("debootstrap")
        .arg("--variant=minbase")
        .arg(format!("--include={}", recipe.packages.join(",")))
        .arg(format!("--cache-dir={}", options.cache_dir.display()))
        .arg(recipe.suite)
        .arg(rootfs)
        .arg(&options.mirror)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| ImageError::Rootfs { path: rootfs.to_owned(), source })?;
    // debootstrap reports progress as "I: Retrieving foo" lines on stdout
    // and warnings on stderr; both feed the spinner and the error report.
    let stderr = child.stderr.take().expect("piped");
    let stderr_lines =
        std::thread::spawn(move || BufReader::new(stderr).lines().map_while(Result::ok).collect::<Vec<_>>());
    let mut tail: Vec<String> = Vec::new();
    for line in BufReader::new(child.stdout.take().expect("piped")).lines().map_while(Result::ok) {
        bar.set_message(format!("{}: debootstrap: {}", recipe.tag, line.trim_start_matches("I: ")));
        tail.push(line);
        if tail.len() > 20 {
            tail.remove(0);
        }
    }
    let status = child.wait().map_err(|source| ImageError::Rootfs { path: rootfs.to_owned(), source })?;
    tail.extend(stderr_lines.join().unwrap_or_default());
    if status.success() {
        Ok(())
    } else {
        Err(ImageError::Debootstrap {
            image: recipe.tag.to_owned(),
            status: status.to_string(),
            output: tail.join("\n"),
        })
    }
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

fn empty_dir(path: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(entry.path())?;
        } else {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// Removes a build's root filesystem, first detaching anything debootstrap
/// left mounted inside it (a failed run can leave /proc mounted there, and
/// deleting through it would be a disaster).
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

fn spinner(quiet: bool, message: String) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
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
