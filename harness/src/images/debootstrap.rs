//! The debootstrap path: the host's `debootstrap --variant=minbase` into a
//! work directory, the recipe's files added, the tree streamed as a tar
//! archive into the daemon's image import. Kept behind
//! `crashlab images build --via debootstrap` to compare build times.

use super::{
    BuildOptions, CHUNK, ChannelWriter, ImageError, import_changes, is_root, remove_rootfs, spinner, tokio_stream,
    which,
};
use crate::docker::Docker;
use bytes::Bytes;
use crashlab_workloads::ImageRecipe;
use indicatif::ProgressBar;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

/// Builds `recipe`'s image and imports it into the daemon.
pub(super) async fn build(
    docker: &Docker,
    recipe: &ImageRecipe,
    image: &str,
    options: &BuildOptions,
) -> Result<(), ImageError> {
    if which("debootstrap").is_none() {
        return Err(ImageError::NoDebootstrap);
    }
    if !is_root() {
        return Err(ImageError::NotRoot);
    }
    let rootfs = options.work_dir.join(format!("{}-rootfs-{}", recipe.name, std::process::id()));
    let result = build_in(docker, recipe, image, options, &rootfs).await;
    remove_rootfs(&rootfs);
    result
}

async fn build_in(
    docker: &Docker,
    recipe: &ImageRecipe,
    image: &str,
    options: &BuildOptions,
    rootfs: &Path,
) -> Result<(), ImageError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ImageError::Rootfs { path, source }
    };
    let cache_dir = options.cache_dir.join("debootstrap");
    std::fs::create_dir_all(&cache_dir).map_err(io(&cache_dir))?;
    std::fs::create_dir_all(rootfs).map_err(io(rootfs))?;
    let bar = spinner(options, format!("building {}", image));

    let recipe_owned = recipe.clone();
    let (rootfs_owned, options_owned, bar_owned) = (rootfs.to_owned(), options.clone(), bar.clone());
    let image_owned = image.to_owned();
    tokio::task::spawn_blocking(move || {
        debootstrap(&recipe_owned, &image_owned, &options_owned.mirror, &cache_dir, &rootfs_owned, &bar_owned)
    })
    .await
    .map_err(|e| ImageError::Tar(std::io::Error::other(e)))??;

    bar.set_message(format!("{}: adding crashlab's files", image));
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

    bar.set_message(format!("{}: importing into Docker", image));
    let changes = import_changes(recipe);
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
    let imported = docker.import_image(image, changes, stream).await;
    let tarred = tar_task.await.map_err(|e| ImageError::Tar(std::io::Error::other(e)))?;
    // A daemon that refuses the import stops reading, so the tar side sees
    // only a broken pipe; the daemon's answer says why.
    imported?;
    tarred.map_err(ImageError::Tar)?;
    bar.finish_with_message(format!("built {}", image));
    Ok(())
}

fn debootstrap(
    recipe: &ImageRecipe,
    image: &str,
    mirror: &str,
    cache_dir: &Path,
    rootfs: &Path,
    bar: &ProgressBar,
) -> Result<(), ImageError> {
    let mut child = Command::new("debootstrap")
        .arg("--variant=minbase")
        .arg(format!("--include={}", recipe.packages.join(",")))
        .arg(format!("--cache-dir={}", cache_dir.display()))
        .arg(recipe.suite)
        .arg(rootfs)
        .arg(mirror)
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
        bar.set_message(format!("{}: debootstrap: {}", image, line.trim_start_matches("I: ")));
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
        Err(ImageError::Debootstrap { image: image.to_owned(), status: status.to_string(), output: tail.join("\n") })
    }
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
