//! Volumes of any Docker volume driver as strategies: `volume:DRIVER[,KEY=VALUE...]`
//! in a scenario's `[matrix] strategies` (or a `[[strategy]]` table with
//! `driver` and `driver-opts`), and the same backends in `crashlab bench`.
//! One parser ([`DriverVolume::parse`], [`DriverVolume::new`]) and one
//! provisioning path (`Storage::provision`) serve both commands.
//!
//! A driver volume is created once per cell, labelled with the run, and
//! mounted like a named volume; Docker asks the driver to mount it when a
//! container using it starts and to unmount it when the last one stops, so
//! what the driver keeps across that is what the strategy keeps (the
//! `local` driver's `type=tmpfs` keeps nothing). Before a run, [`probe`]
//! creates and removes one volume of each driver volume strategy: a driver
//! that is not installed, or refuses the options, stops the run with
//! Docker's own words; the probe also reads the driver's scope (`local` or
//! `global`, from the volume's inspection, which a plugin's
//! `VolumeDriver.Capabilities` decides), which the report carries.
//!
//! `device=loop` (or `device=loop:SIZE`) with the `local` driver and
//! `type=btrfs`, `xfs` or `ext4` asks crashlab for the device: a sparse
//! image under the run directory, formatted with that file system and
//! attached to a free loop device, whose path becomes the volume's
//! `device`. Docker mounts it at each container start, as a user's
//! `docker volume create -o type=xfs -o device=/dev/sdb1` would be. The
//! image is journaled before it exists, so that `crashlab clean` detaches
//! the loop device after a killed run.
//!
//! Strategies are `Copy` values compared by identity, so each distinct
//! driver volume is interned once per process ([`DriverVolume::intern`]):
//! a scenario names a handful, and the interned values live as long as the
//! program does.

use crate::run::journal::{Entry, Journal};
use crate::storage::btrfs::{self, BtrfsError};
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The prefix of a driver volume's name in scenarios.
pub const PREFIX: &str = "volume:";

/// Size of a loop device's image when `device=loop` gives none: room for
/// a small workload's dataset, sparse on the host.
pub const LOOP_DEFAULT_SIZE: u64 = 1 << 30;

/// File systems crashlab makes on a loop device, with the command that
/// makes each and the Debian package that has it.
const LOOP_FILE_SYSTEMS: [(&str, &str, &str); 3] =
    [("btrfs", "mkfs.btrfs", "btrfs-progs"), ("xfs", "mkfs.xfs", "xfsprogs"), ("ext4", "mkfs.ext4", "e2fsprogs")];

/// A volume of a Docker volume driver with its options, as a strategy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DriverVolume {
    /// What scenarios and reports call it: the `volume:` text as written
    /// (options in the order given), or a `[[strategy]]` table's name.
    pub name: String,
    pub driver: String,
    /// The driver's options, keys distinct, in the order given.
    pub options: Vec<(String, String)>,
}

/// A file system crashlab makes on a loop device for a `local` volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoopFs {
    /// `btrfs`, `xfs` or `ext4`.
    pub fstype: &'static str,
    /// The image's size in bytes.
    pub size: u64,
}

/// Every interned driver volume; see [`DriverVolume::intern`].
static INTERNED: Mutex<Vec<&'static DriverVolume>> = Mutex::new(Vec::new());

thread_local! {
    /// The `[[strategy]]` tables of the scenario being read on this
    /// thread, by name (see [`with_tables`]).
    static TABLES: RefCell<Vec<&'static DriverVolume>> = const { RefCell::new(Vec::new()) };
}

impl DriverVolume {
    /// Parses `volume:DRIVER[,KEY=VALUE...]`; the error says what is
    /// wrong in a line.
    pub fn parse(text: &str) -> Result<DriverVolume, String> {
        let rest = text.strip_prefix(PREFIX).ok_or_else(|| format!("`{text}` does not start with `{PREFIX}`"))?;
        let mut parts = rest.split(',');
        let driver = parts.next().unwrap_or_default();
        let mut options = Vec::new();
        for part in parts {
            let (k, v) =
                part.split_once('=').ok_or_else(|| format!("driver option `{part}` of `{text}` is not KEY=VALUE"))?;
            options.push((k.to_owned(), v.to_owned()));
        }
        DriverVolume::new(text, driver, options)
    }

    /// A driver volume named `name`, checked: a driver, distinct non-empty
    /// option keys, and a loop device only where crashlab can make one.
    pub fn new(name: &str, driver: &str, options: Vec<(String, String)>) -> Result<DriverVolume, String> {
        if driver.is_empty() {
            return Err(format!("`{name}` names no volume driver (like `{PREFIX}local,type=tmpfs,device=tmpfs`)"));
        }
        if driver.contains(|c: char| c.is_whitespace() || c.is_control()) {
            return Err(format!("volume driver `{}` is not a plugin name", driver.escape_debug()));
        }
        for (i, (key, _)) in options.iter().enumerate() {
            if key.is_empty() {
                return Err(format!("`{name}` has a driver option with an empty key"));
            }
            if options[..i].iter().any(|(k, _)| k == key) {
                return Err(format!("driver option `{key}` is given twice in `{name}`"));
            }
        }
        let volume = DriverVolume { name: name.to_owned(), driver: driver.to_owned(), options };
        volume.loop_fs()?;
        Ok(volume)
    }

    /// The interned copy: the same value for the same name, driver and
    /// options for the rest of the process.
    pub fn intern(self) -> &'static DriverVolume {
        let mut interned = INTERNED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(v) = interned.iter().find(|v| ***v == self) {
            return v;
        }
        let v: &'static DriverVolume = Box::leak(Box::new(self));
        interned.push(v);
        v
    }

    /// The value of option `key`.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The file system crashlab makes on a loop device for this volume,
    /// when its `device` is `loop` or `loop:SIZE`.
    pub fn loop_fs(&self) -> Result<Option<LoopFs>, String> {
        let Some(spec) = self.option("device").filter(|d| *d == "loop" || d.starts_with("loop:")) else {
            return Ok(None);
        };
        if self.driver != "local" {
            return Err(format!("`device={spec}` is crashlab's loop device, for the `local` driver only"));
        }
        let fstype = self.option("type").unwrap_or_default();
        let Some((fstype, _, _)) = LOOP_FILE_SYSTEMS.iter().find(|(t, _, _)| *t == fstype) else {
            let known: Vec<&str> = LOOP_FILE_SYSTEMS.iter().map(|(t, _, _)| *t).collect();
            return Err(format!("`device={spec}` needs `type` to be one of {} (got `{fstype}`)", known.join(", ")));
        };
        let size = match spec.strip_prefix("loop:") {
            None => LOOP_DEFAULT_SIZE,
            Some(size) => crate::settings::parse_size(size).map_err(|e| format!("`device={spec}`: {e}"))?,
        };
        if size < 300 << 20 {
            return Err(format!("`device={spec}`: a loop device needs at least 300MiB (xfs's minimum)"));
        }
        Ok(Some(LoopFs { fstype, size }))
    }

    /// A name fit for Docker objects and file names: `volume-DRIVER` (the
    /// cell's index keeps it distinct from others).
    pub fn object_part(&self) -> String {
        let driver: String =
            self.driver.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect();
        format!("volume-{driver}")
    }

    /// The options as `KEY=VALUE`, in order.
    pub fn option_texts(&self) -> Vec<String> {
        self.options.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }
}

/// Runs `f` with `tables` resolvable by name (`Strategy::from_name`) on
/// this thread: the `[[strategy]]` tables of the scenario `f` reads.
pub fn with_tables<T>(tables: &[&'static DriverVolume], f: impl FnOnce() -> T) -> T {
    let previous = TABLES.with(|t| std::mem::replace(&mut *t.borrow_mut(), tables.to_vec()));
    let result = f();
    TABLES.with(|t| *t.borrow_mut() = previous);
    result
}

/// The `[[strategy]]` table named `name` of the scenario being read.
pub fn table(name: &str) -> Option<&'static DriverVolume> {
    TABLES.with(|t| t.borrow().iter().copied().find(|v| v.name == name))
}

/// A formatted image attached to a loop device, for a `local` volume's
/// `device`. Call [`LoopDevice::teardown`] once the volume is removed;
/// dropping it detaches the device, which the kernel defers while Docker
/// still has it mounted.
#[derive(Debug)]
pub struct LoopDevice {
    dir: PathBuf,
    image: PathBuf,
    device: Option<PathBuf>,
}

impl LoopDevice {
    /// Makes a sparse image of `fs.size` bytes at `dir/image`, formats it
    /// with `fs.fstype` and attaches it to a free loop device; `dir` is the
    /// device's from then on. The image is journaled first.
    pub fn create(dir: &Path, fs: LoopFs, journal: &Journal) -> Result<LoopDevice, BtrfsError> {
        btrfs::check_available()?;
        journal.record(&Entry::LoopImage(dir.join("image")))?;
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| BtrfsError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        // The kernel names backing files by their canonical paths.
        let dir = std::fs::canonicalize(dir).map_err(io(dir))?;
        let image = dir.join("image");
        let mut device = LoopDevice { image: image.clone(), dir, device: None };
        let made = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&image)
            .and_then(|f| f.set_len(fs.size))
            .map_err(io(&image))
            .and_then(|()| device.format_and_attach(fs.fstype));
        match made {
            Ok(()) => Ok(device),
            Err(e) => {
                if let Err(cleanup) = device.teardown() {
                    tracing::warn!("could not release a half-made loop device: {cleanup}");
                }
                Err(e)
            }
        }
    }

    fn format_and_attach(&mut self, fstype: &str) -> Result<(), BtrfsError> {
        let (mkfs, package) = LOOP_FILE_SYSTEMS
            .iter()
            .find(|(t, _, _)| *t == fstype)
            .map(|(_, mkfs, package)| (*mkfs, *package))
            .expect("checked when parsed");
        let image = self.image.as_os_str();
        // Each mkfs wants its own word for "quiet" and "this is a file".
        let args: Vec<&std::ffi::OsStr> = match fstype {
            "ext4" => vec!["-q".as_ref(), "-F".as_ref(), image],
            _ => vec!["-q".as_ref(), image],
        };
        btrfs::run_tool(mkfs, package, &args)?;
        let device = btrfs::run_tool("losetup", "mount", &["--find".as_ref(), "--show".as_ref(), image])?;
        self.device = Some(PathBuf::from(device.trim()));
        Ok(())
    }

    /// The loop device, e.g. `/dev/loop3`.
    pub fn device(&self) -> Option<&Path> {
        self.device.as_deref()
    }

    /// Detaches the loop device, waits until it lets go of the image, and
    /// removes the directory. The volume must be gone (Docker unmounts it
    /// when its last container stops).
    pub fn teardown(mut self) -> Result<(), BtrfsError> {
        let mut result = Ok(());
        if let Some(device) = self.device.take() {
            result = btrfs::release_loop(&device, &self.image);
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            result = result.and(Err(BtrfsError::Io { path: self.dir.clone(), source: e }));
        }
        result
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        if let Some(device) = self.device.take()
            && let Err(e) = btrfs::release_loop(&device, &self.image)
        {
            tracing::warn!("dropping a loop device: {e}");
        }
    }
}

/// What a driver said of a volume made with its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverFacts {
    /// `local` or `global`, as Docker's volume inspection says.
    pub scope: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_names_its_driver_and_options_in_order() {
        let v = DriverVolume::parse("volume:local,type=tmpfs,device=tmpfs,o=size=64m").unwrap();
        assert_eq!(v.driver, "local");
        assert_eq!(v.option_texts(), ["type=tmpfs", "device=tmpfs", "o=size=64m"]);
        assert_eq!(v.name, "volume:local,type=tmpfs,device=tmpfs,o=size=64m");
        assert_eq!(v.loop_fs(), Ok(None));
        assert_eq!(DriverVolume::parse("volume:local").unwrap().options, vec![]);
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        let cases = [
            ("volume:", "names no volume driver"),
            ("volume:local,type", "driver option `type` of `volume:local,type` is not KEY=VALUE"),
            ("volume:local,type=a,type=b", "driver option `type` is given twice"),
            ("volume:local,=x", "empty key"),
            ("volume:rclone,type=xfs,device=loop", "for the `local` driver only"),
            ("volume:local,device=loop", "needs `type` to be one of btrfs, xfs, ext4 (got ``)"),
            ("volume:local,type=xfs,device=loop:1MiB", "at least 300MiB"),
            ("volume:local,type=xfs,device=loop:lots", "`device=loop:lots`"),
        ];
        for (text, wanted) in cases {
            let e = DriverVolume::parse(text).unwrap_err();
            assert!(e.contains(wanted), "{text}: {e}");
        }
    }

    #[test]
    fn a_loop_device_takes_its_type_and_size() {
        let v = DriverVolume::parse("volume:local,type=btrfs,device=loop").unwrap();
        assert_eq!(v.loop_fs(), Ok(Some(LoopFs { fstype: "btrfs", size: LOOP_DEFAULT_SIZE })));
        let v = DriverVolume::parse("volume:local,type=xfs,device=loop:2GiB").unwrap();
        assert_eq!(v.loop_fs(), Ok(Some(LoopFs { fstype: "xfs", size: 2 << 30 })));
        assert_eq!(v.object_part(), "volume-local");
    }

    #[test]
    fn interning_gives_one_value_per_volume() {
        let a = DriverVolume::parse("volume:local,type=tmpfs,device=tmpfs").unwrap().intern();
        let b = DriverVolume::parse("volume:local,type=tmpfs,device=tmpfs").unwrap().intern();
        assert!(std::ptr::eq(a, b));
        let c = DriverVolume::parse("volume:local").unwrap().intern();
        assert!(!std::ptr::eq(a, c));
    }
}
