//! The mariabackup container: Debian's `mariadb-backup` on a minimal
//! bookworm, for the `backup-mariabackup` strategy. A long-lived sidecar
//! mounts the server's volume at the server's data directory, shares the
//! server's network namespace (the tool talks to the server for its backup
//! locks and its redo log position) and is told to back up with `exec`
//! every interval; a one-shot container of the same image prepares the
//! backups in a new volume after a host loss.
//!
//! It is not a workload: it stores nothing of its own and has no driver.
//! The tool must be the server's own release: bookworm's `mariadb-backup`
//! is the same MariaDB 10.11 as bookworm's `mariadb-server` in
//! [`crate::mariadb::RECIPE`], so both images come from the same suite.

use crate::ImageRecipe;

/// Image crashlab builds for `backup-mariabackup`.
pub const IMAGE: &str = "crashlab/mariabackup:latest";

/// Debian's mariadb-backup, with an entrypoint that waits to be told what
/// to run.
pub const RECIPE: ImageRecipe = ImageRecipe {
    name: "mariabackup",
    tag: IMAGE,
    suite: crate::mariadb::RECIPE.suite,
    packages: &["mariadb-backup"],
    files: &[],
    prune: &["var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/locale"],
    // `sleep infinity` is PID 1 and ignores SIGTERM, so removal (a forced
    // kill) is how the sidecar ends, as the host's loss would end it.
    changes: &[r#"ENTRYPOINT ["sleep", "infinity"]"#, "ENV LANG=C.UTF-8"],
};
