//! The environment a run happened in, recorded in every report so that two
//! runs are compared only for what they share.

use crate::docker::Docker;
use crashlab_reports::Environment;
use std::path::Path;

/// Reads the daemon's version and storage driver, the kernel, and the
/// filesystem that holds `state_dir` (where bind mounts live).
pub async fn capture(docker: &Docker, state_dir: &Path) -> Environment {
    let version = docker.version().await.ok();
    let info = docker.info().await.ok();
    Environment {
        docker_version: version.as_ref().and_then(|v| v.version.clone()).unwrap_or_else(|| "unknown".into()),
        docker_api_version: docker.api_version(),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".into()),
        storage_driver: info.and_then(|i| i.driver).unwrap_or_else(|| "unknown".into()),
        host_filesystem: filesystem_of(state_dir).unwrap_or_else(|| "unknown".into()),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        crashlab_version: env!("CARGO_PKG_VERSION").to_owned(),
    }
}

/// The type of the filesystem mounted deepest above `path`.
pub fn filesystem_of(path: &Path) -> Option<String> {
    let path = path.canonicalize().ok()?;
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    deepest_mount(&mounts, &path)
}

fn deepest_mount(mounts: &str, path: &Path) -> Option<String> {
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_, point, fstype) = (fields.next()?, fields.next()?, fields.next()?);
            Some((point.replace("\\040", " "), fstype.to_owned()))
        })
        .filter(|(point, _)| path.starts_with(point))
        .max_by_key(|(point, _)| point.len())
        .map(|(_, fstype)| fstype)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deepest_mount_wins() {
        let mounts = "/dev/vda / ext4 rw 0 0\ntmpfs /tmp tmpfs rw 0 0\n/dev/vdb /var/lib xfs rw 0 0\n";
        assert_eq!(deepest_mount(mounts, Path::new("/var/lib/crashlab")), Some("xfs".into()));
        assert_eq!(deepest_mount(mounts, Path::new("/tmp/x")), Some("tmpfs".into()));
        assert_eq!(deepest_mount(mounts, Path::new("/home")), Some("ext4".into()));
    }
}
