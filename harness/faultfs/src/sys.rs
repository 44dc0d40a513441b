//! The only two system calls std does not wrap: lazy unmount and `statvfs`.
//! Each `unsafe` block is a single FFI call on a NUL-terminated path this
//! module owns for the duration of the call.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| io::ErrorKind::InvalidInput.into())
}

/// `umount2(path, MNT_DETACH)`: detaches the mount now and lets the kernel
/// finish tearing it down once the last user is gone.
pub(crate) fn umount_plain(path: &Path) -> io::Result<()> {
    let c = c_path(path)?;
    // SAFETY: as in `umount_detach`.
    #[expect(unsafe_code, reason = "std has no umount2")]
    let rc = unsafe { libc::umount2(c.as_ptr(), 0) };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

pub(crate) fn umount_detach(path: &Path) -> io::Result<()> {
    let c = c_path(path)?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call,
    // and umount2 does not retain the pointer.
    #[expect(unsafe_code, reason = "std has no umount2")]
    let rc = unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// Free space of the filesystem holding `path`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Statfs {
    pub(crate) blocks: u64,
    pub(crate) bfree: u64,
    pub(crate) bavail: u64,
    pub(crate) files: u64,
    pub(crate) ffree: u64,
    pub(crate) bsize: u32,
    pub(crate) namelen: u32,
    pub(crate) frsize: u32,
}

/// `statvfs(path)`.
pub(crate) fn statvfs(path: &Path) -> io::Result<Statfs> {
    let c = c_path(path)?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c` is a valid NUL-terminated string and `st` points to a
    // writable statvfs; both outlive the call.
    #[expect(unsafe_code, reason = "std has no statvfs")]
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it filled the struct (and it started
    // zeroed, which is a valid value for this plain-integer struct anyway).
    #[expect(unsafe_code, reason = "reading the struct statvfs filled in")]
    let st = unsafe { st.assume_init() };
    Ok(Statfs {
        blocks: st.f_blocks,
        bfree: st.f_bfree,
        bavail: st.f_bavail,
        files: st.f_files,
        ffree: st.f_ffree,
        bsize: u32::try_from(st.f_bsize).unwrap_or(4096),
        namelen: u32::try_from(st.f_namemax).unwrap_or(255),
        frsize: u32::try_from(st.f_frsize).unwrap_or(4096),
    })
}
