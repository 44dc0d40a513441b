//! The build without host tools, in debootstrap's two stages:
//!
//! 1. On the host: read the archive ([`super::archive`]), work out the
//!    `required` set (`Priority: required`, essential, `usr-is-merged`,
//!    and their dependencies) and the `base` set (`apt` and the recipe's
//!    packages with theirs, less `required`), fetch every `.deb`, and
//!    stream a tar of the required packages' unpacked files (merged
//!    `/usr`) and an install script into the daemon's image import as a
//!    temporary base image.
//! 2. In a container of that base, with no network and the package cache
//!    mounted read-only at `/mnt`, the script does what
//!    debootstrap's `second_stage_install` does for `--variant=minbase`
//!    with `--include`: install the core packages one by one, unpack and
//!    configure the rest of `required`, install pre-dependencies of
//!    `base` in the order `dpkg --predep-package` gives, unpack and
//!    configure the rest; then adds the recipe's files and prunes.
//!
//! The container's file system is then exported straight into an image
//! import with the recipe's `ENTRYPOINT`/`ENV` and fingerprint, so the
//! image is one layer, as the debootstrap path's is; the base image and
//! the container are removed.

use super::archive::{self, Mirror, Packages};
use super::deb::RootfsWriter;
use super::{BuildOptions, ChannelWriter, ImageError, import_changes, spinner, tokio_stream};
use crate::docker::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bytes::Bytes;
use crashlab_workloads::ImageRecipe;
use futures_util::TryStreamExt;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;

/// Labels of a build container: the image it builds, the pid of the
/// crashlab that runs it, and its base image, so `crashlab clean` can
/// remove what a killed build left.
pub(super) const BUILD_LABEL: &str = "crashlab.build";
pub(super) const BUILD_PID_LABEL: &str = "crashlab.build-pid";
pub(super) const BUILD_BASE_LABEL: &str = "crashlab.build-base";

/// Where stage 2's script and files live in the base image.
const STAGE_DIR: &str = "crashlab-bootstrap";

/// Where stage 2 sees the package cache: a directory every Debian system
/// has empty, so the mount point leaves no trace in the image.
const DEBS_DIR: &str = "/mnt";

/// Installed one at a time, in this order, before anything else (as
/// debootstrap's `x_core_install`): they make dpkg and maintainer scripts
/// work.
const CORE: [&str; 6] = ["base-passwd", "base-files", "dpkg", "libc6", "perl-base", "mawk"];

/// Packages debootstrap leaves out of bookworm: merged `/usr` is set up at
/// unpack time, so the converter is not needed.
const EXCLUDE: [&str; 1] = ["usrmerge"];

/// What stage 1 decided: the two package sets and their files.
struct Plan {
    required: BTreeSet<String>,
    base: BTreeSet<String>,
    debs: HashMap<String, PathBuf>,
}

/// Builds `recipe`'s image as `image`; see the module docs for the steps.
pub(super) async fn build(
    docker: &Docker,
    recipe: &ImageRecipe,
    image: &str,
    options: &BuildOptions,
) -> Result<(), ImageError> {
    let image = image.to_owned();
    let started = std::time::Instant::now();
    let phase = |what: &str| tracing::info!("{image}: {what} after {:.1} s", started.elapsed().as_secs_f64());
    let archive_err = |source| ImageError::Archive { image: image.clone(), source };
    let bar = spinner(options, format!("building {image}"));

    bar.set_message(format!("{image}: reading {}", options.mirror));
    let mirror = Mirror::new(&options.mirror).map_err(archive_err)?;
    let release = archive::release(&mirror, recipe.suite).await.map_err(archive_err)?;
    let arch = archive::host_arch();
    let index = archive::packages(&mirror, recipe.suite, &release, arch, &options.cache_dir.join("indexes"))
        .await
        .map_err(archive_err)?;
    phase("read the index");
    let (required, base) = package_sets(&index, recipe.packages).map_err(archive_err)?;
    let all: BTreeSet<String> = required.union(&base).cloned().collect();
    let debs_dir = std::path::absolute(options.cache_dir.join("debs"))
        .map_err(|source| ImageError::Rootfs { path: options.cache_dir.clone(), source })?;
    let debs = archive::fetch_debs(&mirror, &index, &all, &debs_dir, |done, total| {
        bar.set_message(format!("{image}: {done}/{total} packages fetched"))
    })
    .await
    .map_err(archive_err)?;
    phase("fetched and checked the packages");
    let plan = Plan { required, base, debs };
    let script = install_script(&index, &plan, recipe, &options.mirror);
    let available: String = all.iter().map(|name| index.stanza(name).to_owned() + "\n").collect();
    let dpkg_status = format!(
        "Package: dpkg\nVersion: {}\nMaintainer: unknown\nStatus: install ok installed\n\n",
        index.by_name.get("dpkg").map_or("", |p| p.version.as_str())
    );
    drop(index);
    phase("wrote the install script");

    let id = std::process::id();
    let base_tag = format!("crashlab-build/{}:{id}", recipe.name);
    let container = format!("crashlab-build-{}-{id}", recipe.name);
    bar.set_message(format!("{image}: unpacking {} required packages into a base image", plan.required.len()));
    let result = async {
        import_base(docker, &base_tag, &image, &plan, recipe, script, available, dpkg_status).await?;
        phase("imported the base image");
        bar.set_message(format!(
            "{image}: installing {} packages in {container}",
            plan.required.len() + plan.base.len()
        ));
        install(docker, &base_tag, &container, &image, &debs_dir).await?;
        phase("installed the packages");
        bar.set_message(format!("{image}: importing into Docker"));
        let rootfs = docker.export_container(&container).map_err(std::io::Error::other);
        docker.import_image(&image, import_changes(recipe), rootfs).await?;
        phase("imported the image");
        Ok::<(), ImageError>(())
    }
    .await;
    let cleanup = async {
        docker.remove_container(&container).await?;
        docker.remove_image(&base_tag).await
    }
    .await;
    result?;
    cleanup?;
    bar.finish_with_message(format!("built {image}"));
    Ok(())
}

/// debootstrap's `required` and `base` for `--variant=minbase
/// --include=PACKAGES` on bookworm.
fn package_sets(
    index: &Packages,
    packages: &[&str],
) -> Result<(BTreeSet<String>, BTreeSet<String>), archive::ArchiveError> {
    let mut roots = index.required();
    if index.by_name.contains_key("usr-is-merged") {
        roots.insert("usr-is-merged".to_owned());
    }
    let required = index.resolve(roots.iter().map(String::as_str), &EXCLUDE)?;
    let base = index.resolve(std::iter::once("apt").chain(packages.iter().copied()), &EXCLUDE)?;
    let base = base.difference(&required).cloned().collect();
    Ok((required, base))
}

/// Streams the base image into the daemon: the required packages
/// unpacked, an empty dpkg database that claims dpkg (debootstrap's
/// `x_feign_install`), and stage 2's script, packages and files.
#[expect(clippy::too_many_arguments, reason = "one call site; the pieces are built by the caller")]
async fn import_base(
    docker: &Docker,
    base_tag: &str,
    image: &str,
    plan: &Plan,
    recipe: &ImageRecipe,
    script: String,
    available: String,
    dpkg_status: String,
) -> Result<(), ImageError> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    let required: Vec<(String, PathBuf)> = plan.required.iter().map(|n| (n.clone(), plan.debs[n].clone())).collect();
    let files: Vec<(u32, &'static str)> = recipe.files.iter().map(|f| (f.mode, f.contents)).collect();
    let image_owned = image.to_owned();
    let writer = tokio::task::spawn_blocking(move || -> Result<(), ImageError> {
        let channel = ChannelWriter { tx: tx.clone(), buf: Vec::with_capacity(super::CHUNK) };
        let result = (|| {
            let mut rootfs = RootfsWriter::new(channel);
            for (name, path) in &required {
                let deb = std::fs::read(path).map_err(|source| ImageError::Rootfs { path: path.clone(), source })?;
                rootfs
                    .add_deb(&deb, name)
                    .map_err(|source| ImageError::Unpack { image: image_owned.clone(), source })?;
            }
            let tar = |e| ImageError::Tar(e);
            rootfs.add_file("etc/fstab", 0o644, b"# UNCONFIGURED FSTAB FOR BASE SYSTEM\n").map_err(tar)?;
            rootfs.add_file("var/lib/dpkg/status", 0o644, dpkg_status.as_bytes()).map_err(tar)?;
            rootfs.add_file("var/lib/dpkg/available", 0o644, b"").map_err(tar)?;
            rootfs.add_file("var/lib/dpkg/info/dpkg.list", 0o644, b"").map_err(tar)?;
            rootfs.add_file(&format!("{STAGE_DIR}/install"), 0o755, script.as_bytes()).map_err(tar)?;
            rootfs.add_file(&format!("{STAGE_DIR}/available"), 0o644, available.as_bytes()).map_err(tar)?;
            for (i, (mode, contents)) in files.iter().enumerate() {
                rootfs.add_file(&format!("{STAGE_DIR}/files/{i}"), *mode, contents.as_bytes()).map_err(tar)?;
            }
            rootfs.finish().and_then(|mut w| w.flush()).map_err(tar)
        })();
        if let Err(e) = &result {
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
        result
    });
    let imported = docker.import_image(base_tag, vec![], tokio_stream(rx)).await;
    let written = writer.await.map_err(|e| ImageError::Tar(std::io::Error::other(e)))?;
    // A failed unpack says more than the daemon's view of a cut stream.
    written?;
    imported?;
    Ok(())
}

/// Runs stage 2 in a container of the base image and waits for it. The
/// package cache is mounted read-only rather than copied into the base
/// image: the daemon is local, as it is for crashlab's bind mounts.
async fn install(
    docker: &Docker,
    base_tag: &str,
    container: &str,
    image: &str,
    debs_dir: &std::path::Path,
) -> Result<(), ImageError> {
    let config = ContainerCreateBody {
        image: Some(base_tag.to_owned()),
        entrypoint: Some(vec!["/bin/sh".into(), format!("/{STAGE_DIR}/install")]),
        env: Some(vec![
            "DEBIAN_FRONTEND=noninteractive".into(),
            "DEBCONF_NONINTERACTIVE_SEEN=true".into(),
            "LC_ALL=C".into(),
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        ]),
        labels: Some(HashMap::from([
            (BUILD_LABEL.to_owned(), image.to_owned()),
            (BUILD_PID_LABEL.to_owned(), std::process::id().to_string()),
            (BUILD_BASE_LABEL.to_owned(), base_tag.to_owned()),
        ])),
        host_config: Some(HostConfig {
            network_mode: Some("none".into()),
            binds: Some(vec![format!("{}:{DEBS_DIR}:ro", debs_dir.display())]),
            ..Default::default()
        }),
        ..Default::default()
    };
    // A container left by a killed build of the same name would block this one.
    docker.remove_container(container).await?;
    let id = docker.create_container(container, config).await?;
    docker.start(&id).await?;
    let code = docker.wait(&id).await?;
    if code != 0 {
        let output = docker.logs_tail(&id, 40).await.unwrap_or_default();
        return Err(ImageError::Install {
            image: image.to_owned(),
            container: container.to_owned(),
            code,
            output: output.trim_end().to_owned(),
        });
    }
    Ok(())
}

/// Stage 2 as a shell script, following debootstrap's
/// `second_stage_install` (functions `x_core_install`, the required
/// unpack and configure, `setup_available`, the `get_next_predep` loop).
fn install_script(index: &Packages, plan: &Plan, recipe: &ImageRecipe, mirror: &str) -> String {
    let list = |set: &BTreeSet<String>| set.iter().map(String::as_str).collect::<Vec<_>>().join(" ");
    let mut s = String::new();
    s.push_str(&format!(
        r#"#!/bin/sh
# Stage 2 of crashlab's image build: debootstrap's second stage.
set -e
S=/{STAGE_DIR}
REQUIRED="{required}"
BASE="{base}"
debs() {{ for p; do printf '{DEBS_DIR}/%s ' "$(deb_file "$p")"; done; }}
without() {{ for x in $1; do case " $2 " in *" $x "*) ;; *) printf '%s ' "$x" ;; esac; done; }}
# dpkg syncs every file it writes; the image is committed from the
# export, so a crash midway only means building again.
dpkg() {{ yes '' | command dpkg --force-unsafe-io "$@"; }}
core() {{ echo "I: installing $1"; dpkg --force-depends --install $(debs "$@"); }}
"#,
        required = list(&plan.required),
        base = list(&plan.base),
    ));
    s.push_str("deb_file() {\n  case $1 in\n");
    for name in plan.required.iter().chain(&plan.base) {
        let file = plan.debs.get(name).and_then(|p| p.file_name()).map(|f| f.to_string_lossy().into_owned());
        let _ = writeln!(s, "    {name}) echo '{}' ;;", file.unwrap_or_else(|| format!("{name}.deb")));
    }
    s.push_str("  esac\n}\n\n/sbin/ldconfig\nln -sf mawk /usr/bin/awk\n");
    for core in CORE.iter().filter(|c| plan.required.contains(**c)) {
        if *core == "mawk" {
            s.push_str("rm /usr/bin/awk\n");
        }
        let _ = writeln!(s, "core {core}");
        if *core == "dpkg" {
            s.push_str("[ -e /etc/localtime ] || ln -sf /usr/share/zoneinfo/UTC /etc/localtime\n");
        }
    }
    s.push_str(
        r#"
echo "I: unpacking required packages"
dpkg --force-depends --unpack $(debs $REQUIRED)
printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
chmod 755 /usr/sbin/policy-rc.d
mv /sbin/start-stop-daemon /sbin/start-stop-daemon.REAL
printf '#!/bin/sh\necho\necho "Warning: Fake start-stop-daemon called, doing nothing"\n' >/sbin/start-stop-daemon
chmod 755 /sbin/start-stop-daemon
echo "apt apt" >/var/lib/dpkg/cmethopt
chmod 644 /var/lib/dpkg/cmethopt
echo "I: configuring required packages"
dpkg --configure --pending --force-configure-any --force-depends

cp "$S/available" /var/lib/dpkg/available
for p in $REQUIRED $BASE; do echo "$p install"; done | command dpkg --set-selections
"#,
    );
    // What each base package pulls in, for the pre-dependency loop
    // (debootstrap's `resolve_deps $predep`, less `required`).
    s.push_str("closure() {\n  case $1 in\n");
    for name in &plan.base {
        let closure = index.resolve([name.as_str()], &EXCLUDE).unwrap_or_default();
        let within: Vec<&str> = closure.iter().filter(|p| plan.base.contains(*p)).map(String::as_str).collect();
        let _ = writeln!(s, "    {name}) echo \"{}\" ;;", within.join(" "));
    }
    s.push_str("    *) echo \"$1\" ;;\n  esac\n}\n");
    s.push_str(
        r#"done_predeps=""
while predep=$(command dpkg --predep-package 2>/dev/null | sed -n 's/^Package: *//p'); [ -n "$predep" ]; do
    group=$(without "$(closure "$predep")" "$done_predeps")
    if [ -z "$group" ]; then
        echo "E: dpkg keeps asking for pre-dependency $predep" >&2
        exit 1
    fi
    echo "I: installing pre-dependencies: $group"
    dpkg --force-overwrite --force-confold --skip-same-version --install $(debs $group)
    BASE=$(without "$BASE" "$group")
    done_predeps="$done_predeps $group"
done
if [ -n "$(echo $BASE)" ]; then
    echo "I: unpacking the base system"
    dpkg --force-overwrite --force-confold --skip-same-version --unpack $(debs $BASE)
    echo "I: configuring the base system"
    dpkg --force-confold --skip-same-version --configure -a
fi
mv /sbin/start-stop-daemon.REAL /sbin/start-stop-daemon
rm -f /usr/sbin/policy-rc.d
"#,
    );
    let _ = writeln!(s, "echo 'deb {mirror} {} main' >/etc/apt/sources.list", recipe.suite);
    s.push_str("\necho \"I: adding crashlab's files\"\n");
    for (i, file) in recipe.files.iter().enumerate() {
        let _ = writeln!(s, "install -D -m {:o} \"$S/files/{i}\" '/{}'", file.mode, file.path);
    }
    for dir in recipe.prune {
        let _ = writeln!(s, "[ ! -d '/{dir}' ] || find '/{dir}' -mindepth 1 -delete");
    }
    s.push_str("rm -rf \"$S\"\necho \"I: base system installed\"\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const INDEX: &str = "\
Package: dpkg
Version: 1.21.22
Priority: required
Essential: yes
Pre-Depends: libc6
Filename: pool/d.deb
SHA256: 00

Package: libc6
Version: 2.36
Priority: optional
Filename: pool/l.deb
SHA256: 00

Package: usr-is-merged
Version: 37
Priority: optional
Filename: pool/u.deb
SHA256: 00

Package: apt
Version: 2.6.1
Priority: important
Depends: libc6, adduser
Filename: pool/a.deb
SHA256: 00

Package: adduser
Version: 3.134
Priority: important
Filename: pool/ad.deb
SHA256: 00

Package: server
Version: 1
Priority: optional
Pre-Depends: adduser
Depends: libc6, usrmerge | usr-is-merged
Filename: pool/s.deb
SHA256: 00

Package: usrmerge
Version: 35
Priority: optional
Filename: pool/um.deb
SHA256: 00
";

    fn sets() -> (Vec<String>, Vec<String>) {
        let index = Packages::parse(INDEX.to_owned());
        let (required, base) = package_sets(&index, &["server"]).unwrap();
        (required.into_iter().collect(), base.into_iter().collect())
    }

    #[test]
    fn required_is_essential_and_usr_is_merged_with_their_dependencies() {
        assert_eq!(sets().0, ["dpkg", "libc6", "usr-is-merged"]);
    }

    #[test]
    fn base_is_apt_and_the_recipe_less_required_and_never_usrmerge() {
        assert_eq!(sets().1, ["adduser", "apt", "server"]);
    }

    #[test]
    fn the_script_installs_core_packages_then_pre_dependencies() {
        let index = Packages::parse(INDEX.to_owned());
        let (required, base) = package_sets(&index, &["server"]).unwrap();
        let plan = Plan { required, base, debs: HashMap::new() };
        let script = install_script(&index, &plan, &crashlab_workloads::agent::RECIPE, "http://deb.debian.org/debian");
        let dpkg = script.find("core dpkg\n").unwrap();
        let libc = script.find("core libc6\n").unwrap();
        assert!(dpkg < libc, "{script}");
        assert!(!script.contains("core mawk"), "only core packages that exist");
        assert!(script.contains("    server) echo \"adduser server\" ;;\n"), "{script}");
        assert!(script.contains("find '/usr/share/doc' -mindepth 1 -delete"));
    }
}
