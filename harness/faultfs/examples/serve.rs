//! Mounts faultfs over a backing directory until stdin closes, for poking at
//! it by hand or measuring it with fio:
//!
//! ```text
//! cargo run --release -p crashlab-faultfs --example serve -- BACKING MOUNTPOINT
//! ```

use std::io::Read;
use std::path::PathBuf;

use crashlab_faultfs::{FaultConfig, FaultFs};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1).map(PathBuf::from);
    let (Some(backing), Some(mnt)) = (args.next(), args.next()) else {
        return Err("usage: serve BACKING MOUNTPOINT".into());
    };
    let fs = FaultFs::mount(&backing, &mnt, FaultConfig::default())?;
    eprintln!("mounted {} over {}; close stdin to unmount", mnt.display(), backing.display());
    let mut sink = Vec::new();
    std::io::stdin().read_to_end(&mut sink)?;
    eprintln!("{:?}", fs.stats());
    fs.unmount()?;
    Ok(())
}
