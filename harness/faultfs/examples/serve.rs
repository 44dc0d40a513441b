//! Mounts faultfs over a backing directory until stdin closes, for poking at
//! it by hand or measuring it with fio:
//!
//! ```text
//! cargo run --release -p crashlab-faultfs --example serve -- BACKING MOUNTPOINT [--history] [--threads N]
//! ```
//!
//! It mounts as a `host-kill` cycle does: the unsynced history is not
//! recorded unless `--history` is given, which is what a `crash-states`
//! cycle's mount does (every write then keeps a copy of its data).
//! `--threads` sets how many threads serve requests (default
//! [`FaultConfig::DEFAULT_THREADS`]).

use std::io::Read;
use std::path::PathBuf;

use crashlab_faultfs::{FaultConfig, FaultFs};

const USAGE: &str = "usage: serve BACKING MOUNTPOINT [--history] [--threads N]";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1);
    let (Some(backing), Some(mnt)) = (args.next().map(PathBuf::from), args.next().map(PathBuf::from)) else {
        return Err(USAGE.into());
    };
    let mut history = false;
    let mut threads = FaultConfig::DEFAULT_THREADS;
    while let Some(flag) = args.next() {
        match flag.to_str() {
            Some("--history") => history = true,
            Some("--threads") => {
                let n = args.next().and_then(|n| n.to_str().and_then(|n| n.parse().ok()));
                threads = n.ok_or(format!("--threads needs a number; {USAGE}"))?;
            }
            _ => return Err(format!("unknown argument {}; {USAGE}", flag.to_string_lossy()).into()),
        }
    }
    let config = FaultConfig::builder()
        .max_history_bytes(if history { FaultConfig::DEFAULT_MAX_HISTORY } else { 0 })
        .threads(threads)
        .build()?;
    let fs = FaultFs::mount(&backing, &mnt, config)?;
    eprintln!("mounted {} over {}; close stdin to unmount", mnt.display(), backing.display());
    let mut sink = Vec::new();
    std::io::stdin().read_to_end(&mut sink)?;
    eprintln!("{:?}", fs.stats());
    fs.unmount()?;
    Ok(())
}
