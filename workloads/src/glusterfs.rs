//! The GlusterFS storage node: Debian's `glusterfs-server` on a minimal
//! bookworm, for the `glusterfs-replica` strategy. Three containers of
//! this image stand for three storage hosts; each serves one brick of a
//! replicated volume, on its own named volume, and the harness's host
//! mounts the volume with the FUSE client.
//!
//! It is not a workload: it has no driver. `glusterd` runs in the
//! foreground as PID 1 and spawns the brick processes (`glusterfsd`);
//! the harness configures the pool and the volume with `gluster` through
//! `exec`.

use crate::ImageRecipe;

/// Image crashlab builds for `glusterfs-replica`'s storage nodes.
pub const IMAGE: &str = "crashlab/glusterfs:latest";

/// Debian's GlusterFS server, with `glusterd` in the foreground.
pub const RECIPE: ImageRecipe = ImageRecipe {
    name: "glusterfs",
    tag: IMAGE,
    suite: "bookworm",
    packages: &["glusterfs-server"],
    files: &[],
    prune: &["var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/locale"],
    // `-N`: no daemon, so that the container lives as long as glusterd;
    // its log goes to the container's output, where a failure is read.
    changes: &[r#"ENTRYPOINT ["glusterd", "-N", "--log-level=WARNING", "--log-file=/dev/stderr"]"#, "ENV LANG=C.UTF-8"],
};
