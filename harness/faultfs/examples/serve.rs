//! Mounts faultfs over a backing directory until stdin closes, for poking at
//! it by hand or measuring it with fio:
//!
//! ```text
//! cargo run --release -p crashlab-faultfs --example serve -- BACKING MOUNTPOINT [--history]
//! ```
//!
//! It mounts as a `host-kill` cycle does: the unsynced history is not
//! recorded unless `--history` is given, which is what a `crash-states`
//! cycle's mount does (every write then keeps a copy of its data).

use std::io::Read;
use std::path::PathBuf;

use crashlab_faultfs::{FaultConfig, FaultFs};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1).map(PathBuf::from);
    let (Some(backing), Some(mnt)) = (args.next(), args.next()) else {
        return Err("usage: serve BACKING MOUNTPOINT [--history]".into());
    };
    let history = match args.next() {
        None => false,
        Some(flag) if flag.as_os_str() == "--history" => true,
        Some(other) => {
            return Err(
                format!("unknown argument {}; usage: serve BACKING MOUNTPOINT [--history]", other.display()).into()
            );
        }
    };
    let config =
        FaultConfig::builder().max_history_bytes(if history { FaultConfig::DEFAULT_MAX_HISTORY } else { 0 }).build()?;
    let fs = FaultFs::mount(&backing, &mnt, config)?;
    eprintln!("mounted {} over {}; close stdin to unmount", mnt.display(), backing.display());
    let mut sink = Vec::new();
    std::io::stdin().read_to_end(&mut sink)?;
    eprintln!("{:?}", fs.stats());
    fs.unmount()?;
    Ok(())
}
