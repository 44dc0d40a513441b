//! The bench container: Debian's `fio` on a minimal bookworm, idling until
//! `crashlab bench` runs fio and crashlab's own agent in it with `exec`, so
//! both measure the same mount from the same container.
//!
//! It is not a workload: it stores nothing and has no driver. Its entrypoint
//! sleeps so that the container stays up between the benchmark's commands.

use crate::ImageRecipe;

/// Image crashlab builds for `crashlab bench`.
pub const IMAGE: &str = "crashlab/fio:latest";

/// Debian's fio, with an entrypoint that waits to be told what to run.
pub const RECIPE: ImageRecipe = ImageRecipe {
    name: "fio",
    tag: IMAGE,
    suite: "bookworm",
    packages: &["fio"],
    files: &[],
    prune: &["var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/locale"],
    // `sleep infinity` is PID 1 and ignores SIGTERM, so removal (a forced
    // kill) is how the container ends; nothing in it needs a graceful stop.
    changes: &[r#"ENTRYPOINT ["sleep", "infinity"]"#, "ENV LANG=C.UTF-8"],
};
