//! The layout of a backing directory shared by the filesystem and the
//! explorer: the staging directory the filesystem hides at its root, and
//! the copy of a tree that keeps its links, modes and owners.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// Name of the hidden directory, in the backing root, that holds backing
/// objects. It is hidden from the mount and rebuilt at every mount.
pub(crate) const STAGING: &str = ".crashlab-faultfs";

/// Copies the tree at `src` to `dst` (which must not exist): directories
/// with their permissions, symlinks, regular files by `copy_file_range`,
/// files that share an inode linked again in the copy. Owners are kept when
/// the caller may set them.
pub(crate) fn copy_tree(src: &Path, dst: &Path) -> io::Result<()> {
    let mut linked: HashMap<u64, PathBuf> = HashMap::new();
    let mut stack = vec![PathBuf::new()];
    fs::create_dir(dst)?;
    while let Some(rel) = stack.pop() {
        for entry in fs::read_dir(src.join(&rel))? {
            let entry = entry?;
            let name = rel.join(entry.file_name());
            let (from, to) = (entry.path(), dst.join(&name));
            let meta = fs::symlink_metadata(&from)?;
            let ft = meta.file_type();
            if ft.is_dir() {
                fs::create_dir(&to)?;
                fs::set_permissions(&to, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
                stack.push(name);
            } else if ft.is_symlink() {
                std::os::unix::fs::symlink(fs::read_link(&from)?, &to)?;
            } else if ft.is_file() {
                if let Some(first) = linked.get(&meta.ino()) {
                    fs::hard_link(first, &to)?;
                    continue;
                }
                fs::copy(&from, &to)?;
                if meta.nlink() > 1 {
                    linked.insert(meta.ino(), to.clone());
                }
            } else {
                continue;
            }
            match std::os::unix::fs::lchown(&to, Some(meta.uid()), Some(meta.gid())) {
                Err(e) if e.raw_os_error() == Some(libc::EPERM) => {}
                r => r?,
            }
        }
    }
    Ok(())
}
