//! The restic container: Debian's `restic` on a minimal bookworm, for the
//! `backup-restic` strategy. A long-lived sidecar mounts the volume
//! read-only and is told to back it up with `exec` every interval; one-shot
//! containers of the same image restore a snapshot into a new volume and
//! run `restic check` on the repository.
//!
//! It is not a workload: it stores nothing of its own and has no driver.
//! Its entrypoint sleeps so that the sidecar stays up between backups;
//! the one-shot containers replace the entrypoint with `restic`.

use crate::ImageRecipe;

/// Image crashlab builds for `backup-restic`.
pub const IMAGE: &str = "crashlab/restic:latest";

/// Debian's restic, with an entrypoint that waits to be told what to run.
pub const RECIPE: ImageRecipe = ImageRecipe {
    name: "restic",
    tag: IMAGE,
    suite: "bookworm",
    // restic talks TLS to remote backends; a local repository needs nothing.
    packages: &["restic", "ca-certificates"],
    files: &[],
    prune: &["var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/locale"],
    // `sleep infinity` is PID 1 and ignores SIGTERM, so removal (a forced
    // kill) is how the sidecar ends, as the host's loss would end it.
    changes: &[r#"ENTRYPOINT ["sleep", "infinity"]"#, "ENV LANG=C.UTF-8"],
};
