//! `crashlab-agent`: the program crashlab copies into a container to run
//! work there rather than through a server of its own.
//!
//! - `io` runs one storage measurement (see [`io`]) and prints it as one
//!   JSON line, for `crashlab bench`;
//! - `sqlite` and `fsync-log` host an engine (see [`sqlite`],
//!   [`fsync_log`]) behind the line protocol of [`serve`], as a container's
//!   main process: SIGTERM or SIGINT makes everything acknowledged durable
//!   and exits 0, as a graceful stop should;
//! - `sync` and `restore` are the `sync-agent` strategy's backup sidecar
//!   (see [`sync`]): archive a live directory to an object store every
//!   interval, and unpack the last archive into a fresh one.
//!
//! Exit codes: 0 success, 1 the work failed (one line on stderr says
//! what), 2 bad usage, 3 `restore` found no backup.

#![deny(unsafe_code)]

mod fsync_log;
mod io;
mod serve;
mod sqlite;
mod sync;

use clap::{Parser, Subcommand};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// The version line names the object stores this build can use, so that
/// the harness can refuse an `s3://` store before a run rather than have
/// every sidecar fail.
const VERSION: &str = if cfg!(feature = "s3") {
    concat!(env!("CARGO_PKG_VERSION"), " (stores: file, s3)")
} else {
    concat!(env!("CARGO_PKG_VERSION"), " (stores: file)")
};

#[derive(Debug, Parser)]
#[command(name = "crashlab-agent", version = VERSION, about = "crashlab's in-container agent")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one IO profile in DIR and print its figures as one JSON line.
    Io {
        #[arg(long, value_enum)]
        profile: io::Profile,
        /// Directory the profile's file is created in (and removed from).
        #[arg(long)]
        dir: PathBuf,
        /// File size (bytes, or with K/M/G); default 64M, 256M for seq-write-1m, 22M for etcd-fdatasync.
        #[arg(long, value_parser = io::parse_size)]
        size: Option<u64>,
        /// How long the random profiles run.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// Seed for the random offsets.
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Serve bank transfers on a SQLite database in DATA_DIR.
    Sqlite {
        #[command(flatten)]
        serve: ServeArgs,
        #[arg(long, default_value = "wal", value_parser = ["delete", "truncate", "persist", "memory", "wal", "off"], ignore_case = true)]
        journal_mode: String,
        #[arg(long, default_value = "full", value_parser = ["off", "normal", "full", "extra"], ignore_case = true)]
        synchronous: String,
    },
    /// Serve transfers as records of a checksummed log in DATA_DIR.
    FsyncLog {
        #[command(flatten)]
        serve: ServeArgs,
        /// Fsync after this many records; 0: never.
        #[arg(long, default_value_t = 1)]
        fsync_every: u32,
    },
    /// Every INTERVAL, archive DIR and upload it to the store as KEY.tar.gz, until SIGTERM.
    Sync(sync::SyncArgs),
    /// Download KEY.tar.gz from the store and unpack it into DIR.
    Restore(sync::StoreArgs),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// TCP port to listen on (all addresses).
    #[arg(long, default_value_t = 7878)]
    port: u16,
    /// Where the engine keeps its data; created if missing.
    #[arg(long)]
    data_dir: PathBuf,
}

type BoxError = Box<dyn std::error::Error>;

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Io { profile, dir, size, seconds, seed } => run_io(profile, dir, size, seconds, seed),
        Command::Sqlite { serve, journal_mode, synchronous } => {
            host(serve, "sqlite", |dir| Ok(Arc::new(sqlite::Sqlite::open(dir, &journal_mode, &synchronous)?)))
        }
        Command::FsyncLog { serve, fsync_every } => {
            host(serve, "fsync-log", |dir| Ok(Arc::new(fsync_log::FsyncLog::open(dir, fsync_every)?)))
        }
        Command::Sync(args) => sync::sync(&args).map_err(BoxError::from),
        Command::Restore(args) => match sync::restore(&args) {
            Ok(sync::Restored::Unpacked) => Ok(()),
            Ok(sync::Restored::NoBackup) => return ExitCode::from(sync::EXIT_NO_BACKUP),
            Err(e) => Err(e.into()),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut line = format!("crashlab-agent: failed to {e}");
            let mut source = e.source();
            while let Some(s) = source {
                line.push_str(&format!(": {s}"));
                source = s.source();
            }
            eprintln!("{line}");
            ExitCode::FAILURE
        }
    }
}

fn run_io(profile: io::Profile, dir: PathBuf, size: Option<u64>, seconds: f64, seed: u64) -> Result<(), BoxError> {
    let duration = Duration::try_from_secs_f64(seconds)
        .map_err(|_| format!("use --seconds {seconds}: it must be a non-negative number"))?;
    let config = io::IoConfig { profile, dir, size: size.unwrap_or(profile.default_size()), duration, seed };
    let result = io::run(&config)?;
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}

/// Opens the engine, serves it until SIGTERM or SIGINT, then shuts it down.
fn host(
    args: ServeArgs,
    name: &str,
    open: impl FnOnce(&std::path::Path) -> Result<Arc<dyn serve::Engine>, BoxError>,
) -> Result<(), BoxError> {
    // Blocked before any thread exists, so that every thread inherits the
    // mask and the signals wait for `sigwait` below instead of killing the
    // process (as PID 1 in a container it would ignore them otherwise).
    let signals = signals::block_term()?;
    std::fs::create_dir_all(&args.data_dir).map_err(|e| format!("create {}: {e}", args.data_dir.display()))?;
    let engine = open(&args.data_dir)?;
    let listener =
        TcpListener::bind(("0.0.0.0", args.port)).map_err(|e| format!("listen on port {}: {e}", args.port))?;
    eprintln!("crashlab-agent: {name} on {} ready on port {}", args.data_dir.display(), args.port);
    let served = engine.clone();
    std::thread::spawn(move || serve::serve(listener, served));
    let signal = signals::wait(&signals)?;
    eprintln!("crashlab-agent: signal {signal}, shutting down");
    engine.shutdown();
    Ok(())
}

mod signals {
    //! The one place the agent needs the C library directly: waiting for
    //! termination signals synchronously.
    #![expect(unsafe_code, reason = "sigprocmask and sigwait have no safe wrapper in std")]

    pub struct Set(libc::sigset_t);

    /// Blocks SIGTERM and SIGINT in the calling thread (and the threads it
    /// spawns later) and returns the set for [`wait`].
    pub fn block_term() -> Result<Set, String> {
        // SAFETY: sigset_t is plain data that sigemptyset initialises; the
        // calls only read and write the set passed to them.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigaddset(&mut set, libc::SIGINT);
            match libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) {
                0 => Ok(Set(set)),
                e => Err(format!("block termination signals: error {e}")),
            }
        }
    }

    /// Waits for one of the blocked signals and returns its number.
    pub fn wait(set: &Set) -> Result<i32, String> {
        let mut signal = 0;
        // SAFETY: the set was initialised by `block_term`, and `signal`
        // outlives the call.
        match unsafe { libc::sigwait(&set.0, &mut signal) } {
            0 => Ok(signal),
            e => Err(format!("wait for a termination signal: error {e}")),
        }
    }
}
