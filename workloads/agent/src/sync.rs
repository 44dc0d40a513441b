//! The `sync-agent` strategy's sidecar: `sync` archives a live data
//! directory every interval and uploads it to an object store, keeping one
//! archive per application; `restore` unpacks that archive into a (fresh)
//! directory when the application moves.
//!
//! ```text
//! crashlab-agent sync    --dir DIR --store URL --key KEY --interval 2s
//! crashlab-agent restore --dir DIR --store URL --key KEY
//! ```
//!
//! # What a backup copies
//! One gzip-compressed tar archive (GNU format, compression level 1) of
//! everything under DIR, stored as the object `KEY.tar.gz`:
//! - DIR itself (as `./`), every directory, regular file and symbolic link
//!   under it, with numeric uid and gid (no user or group names), the
//!   permission bits including setuid, setgid and sticky, and the
//!   modification time in whole seconds;
//! - a regular file's contents as read, up to the size it had when it was
//!   opened: bytes appended after that are left for the next backup, and a
//!   file that shrank while it was read is padded with zeros to that size,
//!   as GNU tar does, so that the archive stays well formed;
//! - a hard-linked file once per name, as separate copies.
//!
//! It does not copy sockets, FIFOs or device nodes, extended attributes,
//! ACLs, sub-second times or access times, and a sparse file comes back
//! dense. An entry that vanishes between being listed and being read is
//! left out; one created after its directory was listed waits for the
//! next backup. Neither fails the backup; any other error (an unreadable
//! file, a failed upload) fails that backup, and the agent goes on to the
//! next one.
//!
//! # What it cannot promise
//! The directory is live: the application writes it while the agent reads
//! it, and files are read one after another, each from start to end over
//! some time. Nothing makes that a point in time. A file that is written in
//! place during its read can come out with old and new blocks mixed, which
//! no crash could have produced; two files (a database's data and its log)
//! are read at different moments, so they need not agree with each other.
//! A live copy is therefore crash-consistent at best, and only for files
//! written append-only; a database may fail to start from it, or start
//! without writes it acknowledged. The writes made since the last backup
//! that completed (up to one interval plus that backup's duration) are not
//! in the store at all. crashlab runs this strategy to measure exactly
//! these losses.
//!
//! # The store
//! - `file:///abs/path`: a directory (for the harness, a host directory
//!   bind-mounted at `/store`); it must exist. object_store's
//!   `LocalFileSystem` writes the archive to a staging file
//!   `KEY.tar.gz#N` beside the object, fsyncs it, renames it over
//!   `KEY.tar.gz` and fsyncs the directory, so a reader sees the previous
//!   archive or the new one, whole, and a `backup` event means the new one
//!   is on disk.
//! - `s3://bucket/prefix` (S3 and S3-compatible servers): object_store's
//!   `parse_url_opts`, configured by the environment variables whose names
//!   start with `AWS_`: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (and
//!   `AWS_SESSION_TOKEN`), `AWS_REGION`, and for a server other than AWS
//!   `AWS_ENDPOINT=http://host:9000` with `AWS_ALLOW_HTTP=true` when it is
//!   plain HTTP, as MinIO often is. The multipart upload publishes the
//!   object only when it completes; a missing bucket fails the start
//!   (`sync`) or the restore, rather than reading as "no backup".
//!
//!   S3 needs the agent built with the crate's `s3` feature
//!   (`cargo build --release -p crashlab-agent --features s3`, which turns
//!   on object_store's `aws`); without it `sync` and `restore` exit 1
//!   saying so. It is off by default because it is heavy next to the rest
//!   of the agent: reqwest, hyper, rustls and aws-lc-rs, whose C library
//!   cc compiles, take the stripped binary from 4.4 MB to 12.1 MB and add
//!   about four minutes to a release build on two cores, where the
//!   workspace otherwise has no TLS at all. Over https the certificate
//!   roots come from the system, so the image needs `ca-certificates`,
//!   which the crashlab/agent recipe does not install.
//!
//! A backup that fails or is abandoned leaves the previous archive in
//! place. When the agent is stopped mid-backup it aborts the upload, which
//! removes the staging file or the S3 multipart upload; only when that
//! takes longer than [`STOP_GRACE`] does it exit without, and the leftover
//! (a `#N` file, or an incomplete multipart upload for a bucket lifecycle
//! rule to expire) is never read as the archive.
//!
//! # Schedule, events and exit codes
//! The first backup starts one interval after `sync` starts, and then one
//! every interval on a fixed schedule; the ticks a long backup overran are
//! skipped. Each event is one JSON line on stdout, flushed at once:
//! ```text
//! {"event":"ready"}      once, after the store answered
//! {"event":"backup","seq":1,"started_unix_ms":..,"finished_unix_ms":..,"bytes":..,"files":..}
//! {"event":"backup-failed","seq":2,"started_unix_ms":..,"finished_unix_ms":..,"error":".."}
//! {"event":"restored","bytes":..,"files":..,"duration_ms":..}
//! {"event":"no-backup","key":"..","store":".."}
//! ```
//! `bytes` is the compressed size, `files` the number of regular files.
//! `sync` runs until SIGTERM or SIGINT and then exits 0, abandoning a
//! backup in progress (its `backup-failed` says so); it exits 1 before
//! `ready` when DIR is not a directory or the store cannot be opened or
//! listed. `restore` exits 0 after `restored`, 3 after `no-backup` (the
//! store answered, and holds no `KEY.tar.gz`), and 1 on any other failure,
//! with one line on stderr; a signal ends it at once, leaving DIR partly
//! restored.
//!
//! # Restore
//! `restore` creates DIR if needed and unpacks the archive into it as
//! `tar -x` as root would: numeric ownership, permission bits and file
//! modification times are applied (directories are applied last, deepest
//! first, so that a read-only directory can still be filled), files of the
//! same name are replaced, and files not in the archive are left alone
//! (the harness restores into an empty volume). An entry whose path is
//! absolute or has a `..` component, or that would be written through a
//! symbolic link pointing outside DIR, fails the restore. The restored
//! files and directories are fsynced before `restored` is printed. The
//! agent runs as root in its container, which both reading another user's
//! files and restoring their ownership need.

#![forbid(unsafe_code)]

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{MultipartUpload, ObjectStore, ObjectStoreExt, PutPayload};
use serde::Serialize;
use std::ffi::OsString;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tar::{EntryType, Header};
use tokio::runtime::Runtime;

/// Exit code of `restore` when the store holds no archive for the key.
pub const EXIT_NO_BACKUP: u8 = 3;

/// How long `sync` waits, after SIGTERM or SIGINT, for a backup in
/// progress to abort its upload before it exits regardless.
pub const STOP_GRACE: Duration = Duration::from_secs(2);

/// Multipart upload part size: above S3's 5 MiB minimum for all parts but
/// the last, and what one backup holds in memory besides the read buffer.
const PART_SIZE: usize = 8 << 20;

/// Read buffer for a file being archived; also how often (in bytes read)
/// a backup notices that the agent is stopping.
const READ_BUFFER: usize = 256 << 10;

/// Where the archive is and which one.
#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// The data directory (read by `sync`, written by `restore`).
    #[arg(long)]
    pub dir: PathBuf,
    /// Object store URL: file:///abs/path, or s3://bucket/prefix configured by AWS_* variables.
    #[arg(long)]
    pub store: String,
    /// The application's name; its archive is KEY.tar.gz.
    #[arg(long, value_parser = parse_key)]
    pub key: String,
}

/// `sync`'s arguments.
#[derive(Debug, clap::Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Time between backups, such as 500ms, 2s or 1m; the first comes one interval after start.
    #[arg(long, value_parser = parse_interval)]
    pub interval: Duration,
}

/// How a `restore` ended without an error.
#[derive(Debug, PartialEq, Eq)]
pub enum Restored {
    Unpacked,
    NoBackup,
}

/// Why `sync` or `restore` could not do its work. Messages read well after
/// "failed to". An object_store error is kept as its text (`detail`): its
/// message already repeats its sources, which `main` would print again.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("parse store URL {url:?}")]
    StoreUrl {
        url: String,
        #[source]
        source: url::ParseError,
    },
    #[error("use store {url:?}: a file store URL is file:// and an absolute path, such as file:///store")]
    FileUrl { url: String },
    #[error("use store {url:?}: {} is not a directory", path.display())]
    NotADirectory { url: String, path: PathBuf },
    #[cfg(not(feature = "s3"))]
    #[error("use store {url:?}: this crashlab-agent only has file:// stores (build it with `--features s3` for s3://)")]
    NoCloud { url: String },
    #[error("open store {url}: {detail}")]
    Open { url: String, detail: String },
    #[error("reach store {url}: {detail}")]
    Reach { url: String, detail: String },
    #[error("download {location} from {url}: {detail}")]
    Download { url: String, location: ObjectPath, detail: String },
    #[error("back up {}: it is not a directory", dir.display())]
    DataDir { dir: PathBuf },
    #[error("create {}", dir.display())]
    CreateDir {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("unpack the archive into {}", dir.display())]
    Unpack {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("make the restored files in {} durable", dir.display())]
    Durable {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("start the async runtime")]
    Runtime(#[source] io::Error),
    #[error("{0}")]
    Signals(String),
}

/// One line of `sync`'s or `restore`'s output.
#[derive(Debug, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
enum Event<'a> {
    Ready,
    Backup { seq: u64, started_unix_ms: u64, finished_unix_ms: u64, bytes: u64, files: u64 },
    BackupFailed { seq: u64, started_unix_ms: u64, finished_unix_ms: u64, error: String },
    Restored { bytes: u64, files: u64, duration_ms: u64 },
    NoBackup { key: &'a str, store: &'a str },
}

fn emit(event: &Event<'_>) {
    let line = serde_json::to_string(event).expect("events serialise");
    let mut out = io::stdout().lock();
    // A harness that stopped reading cannot be told; the backups go on.
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

/// Backs `args.store.dir` up every `args.interval` until SIGTERM or SIGINT.
pub fn sync(args: &SyncArgs) -> Result<(), SyncError> {
    // Blocked before any thread exists (the runtime starts blocking-pool
    // threads lazily), so that every thread inherits the mask and the
    // signals wait for the watcher below.
    let signals = crate::signals::block_term().map_err(SyncError::Signals)?;
    let stop = Arc::new(Stop::default());
    let watcher = stop.clone();
    std::thread::spawn(move || {
        if let Ok(signal) = crate::signals::wait(&signals) {
            watcher.raise();
            // Not eprintln!, which panics when stderr is closed: this
            // thread must live on to enforce the grace period.
            let _ = writeln!(io::stderr(), "crashlab-agent: signal {signal}, stopping");
            std::thread::sleep(STOP_GRACE);
            let _ = writeln!(
                io::stderr(),
                "crashlab-agent: the backup in progress did not stop within {STOP_GRACE:?}; exiting without it"
            );
            std::process::exit(0);
        }
    });

    let args_store = &args.store;
    // A missing directory is a wrong --dir or a missing mount, not a
    // moment to wait out: fail before `ready`.
    if !args_store.dir.is_dir() {
        return Err(SyncError::DataDir { dir: args_store.dir.clone() });
    }
    let rt = runtime()?;
    let store = Store::open(&args_store.store, &args_store.key)?;
    rt.block_on(store.check())?;
    emit(&Event::Ready);

    let mut next = Instant::now() + args.interval;
    let mut seq = 0;
    while stop.sleep_until(next) {
        seq += 1;
        let started_unix_ms = unix_ms();
        let result = backup(&rt, &store, &args_store.dir, &stop.raised);
        let finished_unix_ms = unix_ms();
        emit(&match result {
            Ok(Backed { bytes, files }) => Event::Backup { seq, started_unix_ms, finished_unix_ms, bytes, files },
            Err(_) if stop.is_raised() => Event::BackupFailed {
                seq,
                started_unix_ms,
                finished_unix_ms,
                error: "abandoned: the agent is stopping".into(),
            },
            Err(error) => Event::BackupFailed { seq, started_unix_ms, finished_unix_ms, error },
        });
        let now = Instant::now();
        while next <= now {
            next += args.interval;
        }
    }
    Ok(())
}

/// Downloads the key's archive and unpacks it into `args.dir`.
pub fn restore(args: &StoreArgs) -> Result<Restored, SyncError> {
    let started = Instant::now();
    let rt = runtime()?;
    let store = Store::open(&args.store, &args.key)?;
    let got = match rt.block_on(store.inner.get(&store.location)) {
        Ok(got) => got,
        Err(object_store::Error::NotFound { .. }) => {
            rt.block_on(store.check())?;
            emit(&Event::NoBackup { key: &args.key, store: &args.store });
            eprintln!("crashlab-agent: no backup: {} holds no {}", args.store, store.location);
            return Ok(Restored::NoBackup);
        }
        Err(e) => return Err(SyncError::Download { url: store.url, location: store.location, detail: chain(&e) }),
    };
    fs::create_dir_all(&args.dir).map_err(|source| SyncError::CreateDir { dir: args.dir.clone(), source })?;
    let mut download = Download { rt: &rt, stream: got.into_stream(), chunk: bytes::Bytes::new(), bytes: 0 };
    let files =
        unpack(&mut download, &args.dir).map_err(|source| SyncError::Unpack { dir: args.dir.clone(), source })?;
    make_durable(&args.dir).map_err(|source| SyncError::Durable { dir: args.dir.clone(), source })?;
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    emit(&Event::Restored { bytes: download.bytes, files, duration_ms });
    Ok(Restored::Unpacked)
}

/// A key names one archive, `KEY.tar.gz`, and must stay one path segment
/// in every store.
pub fn parse_key(key: &str) -> Result<String, String> {
    let ok = !key.is_empty()
        && key.len() <= 200
        && !key.starts_with('.')
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(key.to_owned())
    } else {
        Err("a key is 1 to 200 ASCII letters, digits, '.', '_' or '-', not starting with '.'".into())
    }
}

/// Parses an interval such as `500ms`, `2s`, `1.5s`, `1m` or `1h`; it must
/// be above zero.
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let scale = match unit {
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("{text:?} needs a unit: ms, s, m or h (as in 2s)")),
    };
    let value: f64 = number.parse().map_err(|_| format!("{text:?} does not start with a number"))?;
    match Duration::try_from_secs_f64(value * scale) {
        Ok(d) if d >= Duration::from_millis(1) => Ok(d),
        _ => Err(format!("{text:?} must be at least 1ms")),
    }
}

/// Set once by the signal watcher; the backup loop sleeps on it and a
/// backup in progress polls it.
#[derive(Default)]
struct Stop {
    raised: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
}

impl Stop {
    fn raise(&self) {
        self.raised.store(true, Ordering::SeqCst);
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.wake.notify_all();
    }

    fn is_raised(&self) -> bool {
        self.raised.load(Ordering::SeqCst)
    }

    /// Sleeps until `deadline`; false when the agent is stopping instead.
    fn sleep_until(&self, deadline: Instant) -> bool {
        let mut guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        while !self.is_raised() {
            let Some(left) = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) else {
                return true;
            };
            guard = self.wake.wait_timeout(guard, left).unwrap_or_else(|e| e.into_inner()).0;
        }
        false
    }
}

fn runtime() -> Result<Runtime, SyncError> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(SyncError::Runtime)
}

fn unix_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

/// An opened store and the key's object in it.
struct Store {
    inner: Arc<dyn ObjectStore>,
    /// Where the archives are.
    prefix: ObjectPath,
    /// `prefix/KEY.tar.gz`
    location: ObjectPath,
    url: String,
}

impl Store {
    fn open(url: &str, key: &str) -> Result<Self, SyncError> {
        let parsed = url::Url::parse(url).map_err(|source| SyncError::StoreUrl { url: url.into(), source })?;
        let name = format!("{key}.tar.gz");
        if parsed.scheme() == "file" {
            let root = match parsed.to_file_path() {
                Ok(root) if parsed.host().is_none() => root,
                _ => return Err(SyncError::FileUrl { url: url.into() }),
            };
            // A missing directory means the store is not mounted; creating
            // it would put the backups in the container's own layer.
            if !root.is_dir() {
                return Err(SyncError::NotADirectory { url: url.into(), path: root });
            }
            let local = LocalFileSystem::new_with_prefix(&root)
                .map_err(|e| SyncError::Open { url: url.into(), detail: chain(&e) })?
                .with_fsync(true);
            let location = ObjectPath::from(name);
            return Ok(Self { inner: Arc::new(local), prefix: ObjectPath::default(), location, url: url.into() });
        }
        Self::cloud(url, &parsed, &name)
    }

    #[cfg(feature = "s3")]
    fn cloud(url: &str, parsed: &url::Url, name: &str) -> Result<Self, SyncError> {
        let (inner, prefix) = object_store::parse_url_opts(parsed, cloud_env())
            .map_err(|e| SyncError::Open { url: url.into(), detail: chain(&e) })?;
        let location = prefix.clone().join(name);
        Ok(Self { inner: inner.into(), prefix, location, url: url.into() })
    }

    #[cfg(not(feature = "s3"))]
    fn cloud(url: &str, _: &url::Url, _: &str) -> Result<Self, SyncError> {
        Err(SyncError::NoCloud { url: url.into() })
    }

    /// The store answers a listing of the key's prefix. A missing object
    /// is no proof of that: S3 reports a missing bucket as not found too.
    async fn check(&self) -> Result<(), SyncError> {
        match self.inner.list_with_delimiter(Some(&self.prefix)).await {
            Ok(_) => Ok(()),
            Err(e) => Err(SyncError::Reach { url: self.url.clone(), detail: chain(&e) }),
        }
    }
}

/// The environment variables object_store's S3 builder reads, and no
/// others: a stray variable such as `REGION` must not configure the store.
#[cfg(feature = "s3")]
fn cloud_env() -> impl Iterator<Item = (String, String)> {
    std::env::vars().filter(|(k, _)| k.starts_with("AWS_"))
}

struct Backed {
    bytes: u64,
    files: u64,
}

/// Archives `dir` straight into a multipart upload of the key's object,
/// which is published only if everything succeeds.
fn backup(rt: &Runtime, store: &Store, dir: &Path, stop: &AtomicBool) -> Result<Backed, String> {
    let upload = rt.block_on(store.inner.put_multipart(&store.location)).map_err(|e| chain(&e))?;
    let mut upload = Upload { rt, upload, buffer: Vec::with_capacity(PART_SIZE), parts: 0, bytes: 0 };
    let archived = (|| {
        let mut archiver =
            Archiver { builder: tar::Builder::new(GzEncoder::new(&mut upload, Compression::fast())), stop, files: 0 };
        archiver.archive(dir)?;
        let files = archiver.files;
        archiver.builder.into_inner()?.finish()?;
        io::Result::Ok(files)
    })();
    match archived {
        Ok(files) => {
            let bytes = upload.complete().map_err(|e| format!("upload {}: {}", store.location, chain(&e)))?;
            Ok(Backed { bytes, files })
        }
        Err(e) => {
            upload.abort();
            Err(format!("archive {}: {}", dir.display(), chain(&e)))
        }
    }
}

/// An error and its sources on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut line = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        // object_store's messages often repeat their source already.
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = s.source();
    }
    // A server's error body (S3's XML) spans lines.
    line.replace('\n', " ")
}

/// Writes the archive tree of a live directory.
struct Archiver<'a, W: Write> {
    builder: tar::Builder<W>,
    stop: &'a AtomicBool,
    files: u64,
}

impl<W: Write> Archiver<'_, W> {
    fn archive(&mut self, dir: &Path) -> io::Result<()> {
        let meta = fs::metadata(dir)?;
        if !meta.is_dir() {
            return Err(io::Error::new(io::ErrorKind::NotADirectory, "not a directory"));
        }
        self.builder.append_data(&mut header(EntryType::Directory, &meta, 0), "./", io::empty())?;
        self.add_children(dir, Path::new(""))
    }

    fn add_children(&mut self, abs: &Path, rel: &Path) -> io::Result<()> {
        let mut names = match fs::read_dir(abs) {
            Err(e) if vanished(&e) => return Ok(()),
            entries => entries?.map(|e| e.map(|e| e.file_name())).collect::<io::Result<Vec<OsString>>>()?,
        };
        // Sorted, so that two backups of the same tree are the same archive.
        names.sort();
        for name in names {
            self.add(&abs.join(&name), &rel.join(&name))?;
        }
        Ok(())
    }

    fn add(&mut self, abs: &Path, rel: &Path) -> io::Result<()> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(stopping());
        }
        let meta = match fs::symlink_metadata(abs) {
            Err(e) if vanished(&e) => return Ok(()),
            meta => meta?,
        };
        let kind = meta.file_type();
        if kind.is_dir() {
            self.builder.append_data(&mut header(EntryType::Directory, &meta, 0), rel, io::empty())?;
            self.add_children(abs, rel)
        } else if kind.is_file() {
            self.add_file(abs, rel)
        } else if kind.is_symlink() {
            let target = match fs::read_link(abs) {
                Err(e) if vanished(&e) => return Ok(()),
                target => target?,
            };
            self.builder.append_link(&mut header(EntryType::Symlink, &meta, 0), rel, target)
        } else {
            // Sockets, FIFOs and device nodes: nothing a restore could use.
            Ok(())
        }
    }

    fn add_file(&mut self, abs: &Path, rel: &Path) -> io::Result<()> {
        // O_NOFOLLOW and O_NONBLOCK: if the name became a symbolic link or
        // a FIFO since it was listed, fail the open (or do not block on
        // it) and find out from the opened file's own metadata.
        let opened = OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(abs);
        let file = match opened {
            Err(e) if vanished(&e) || e.raw_os_error() == Some(libc::ELOOP) => return Ok(()),
            file => file?,
        };
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Ok(());
        }
        let size = meta.len();
        let data = BufReader::with_capacity(READ_BUFFER, LiveFile { file, left: size, shrank: false, stop: self.stop });
        self.builder.append_data(&mut header(EntryType::Regular, &meta, size), rel, data)?;
        self.files += 1;
        Ok(())
    }
}

fn vanished(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

fn stopping() -> io::Error {
    io::Error::other("the agent is stopping")
}

/// A header with the entry's numeric owner, permission bits and mtime.
fn header(kind: EntryType, meta: &Metadata, size: u64) -> Header {
    let mut header = Header::new_gnu();
    header.set_entry_type(kind);
    header.set_size(size);
    header.set_mode(meta.mode() & 0o7777);
    header.set_uid(meta.uid().into());
    header.set_gid(meta.gid().into());
    header.set_mtime(u64::try_from(meta.mtime()).unwrap_or(0));
    header
}

/// A file that someone else may be writing, read as exactly the `left`
/// bytes its header announced: what was appended after the open is not
/// read, and what was cut off reads as zeros.
struct LiveFile<'a> {
    file: File,
    left: u64,
    shrank: bool,
    stop: &'a AtomicBool,
}

impl Read for LiveFile<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(stopping());
        }
        let want = usize::try_from(self.left).unwrap_or(usize::MAX).min(buf.len());
        if want == 0 {
            return Ok(0);
        }
        let n = if self.shrank { 0 } else { self.file.read(&mut buf[..want])? };
        let n = if n == 0 {
            self.shrank = true;
            buf[..want].fill(0);
            want
        } else {
            n
        };
        self.left -= n as u64;
        Ok(n)
    }
}

/// The write side of a multipart upload, one part per [`PART_SIZE`],
/// each sent before the writer accepts more.
struct Upload<'rt> {
    rt: &'rt Runtime,
    upload: Box<dyn MultipartUpload>,
    buffer: Vec<u8>,
    parts: u64,
    bytes: u64,
}

impl Upload<'_> {
    fn send_part(&mut self) -> io::Result<()> {
        let part = std::mem::replace(&mut self.buffer, Vec::with_capacity(PART_SIZE));
        self.parts += 1;
        self.rt.block_on(self.upload.put_part(PutPayload::from(part))).map_err(io::Error::other)
    }

    /// Sends the last part and publishes the object; returns its size.
    fn complete(mut self) -> Result<u64, object_store::Error> {
        if !self.buffer.is_empty() || self.parts == 0 {
            self.send_part().map_err(|e| object_store::Error::Generic { store: "upload", source: e.into() })?;
        }
        self.rt.block_on(self.upload.complete())?;
        Ok(self.bytes)
    }

    /// Gives the upload up, leaving the previous object in place.
    fn abort(mut self) {
        // A failed abort leaves a staging file or incomplete multipart
        // upload behind, which is never read as the archive.
        let _ = self.rt.block_on(self.upload.abort());
    }
}

impl Write for Upload<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        self.bytes += buf.len() as u64;
        if self.buffer.len() >= PART_SIZE {
            self.send_part()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The read side of a download.
struct Download<'rt> {
    rt: &'rt Runtime,
    stream: BoxStream<'static, object_store::Result<bytes::Bytes>>,
    chunk: bytes::Bytes,
    bytes: u64,
}

impl Read for Download<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rt.block_on(self.stream.next()) {
                None => return Ok(0),
                Some(chunk) => self.chunk = chunk.map_err(io::Error::other)?,
            }
            self.bytes += self.chunk.len() as u64;
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}

/// Unpacks a gzip-compressed tar archive into `dir`; returns the number of
/// regular files.
fn unpack(reader: impl Read, dir: &Path) -> io::Result<u64> {
    let dst = dir.canonicalize()?;
    let mut archive = tar::Archive::new(GzDecoder::new(reader));
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_preserve_mtime(true);
    archive.set_overwrite(true);
    archive.set_unpack_xattrs(false);
    let mut files = 0;
    let mut root = None;
    let mut directories = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        if !path.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir)) {
            return Err(escapes(&path));
        }
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            // Applied after the files, as tar::Archive::unpack does, so
            // that a directory's permissions cannot stop its own
            // contents from being written.
            if path.components().all(|c| c == Component::CurDir) {
                root = Some(entry);
            } else {
                directories.push(entry);
            }
            continue;
        }
        if kind.is_file() {
            files += 1;
        }
        if !entry.unpack_in(&dst)? {
            return Err(escapes(&path));
        }
    }
    directories.sort_by(|a, b| b.path_bytes().cmp(&a.path_bytes()));
    for mut directory in directories {
        directory.unpack_in(&dst)?;
    }
    // `unpack_in` skips an entry naming the destination itself.
    if let Some(mut root) = root {
        root.unpack(&dst)?;
    }
    // The tar reader stops at the end-of-archive blocks; reading on to the
    // end makes the decoder check the gzip trailer's CRC and length too.
    io::copy(&mut archive.into_inner(), &mut io::sink())?;
    Ok(files)
}

fn escapes(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("entry {} would land outside the directory", path.display()))
}

/// Fsyncs every regular file and directory under `dir`, children before
/// their directory.
fn make_durable(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            make_durable(&entry.path())?;
        } else if kind.is_file() {
            File::open(entry.path())?.sync_all()?;
        }
    }
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_parse_with_a_unit() {
        for (text, expected) in [
            ("2s", Duration::from_secs(2)),
            ("500ms", Duration::from_millis(500)),
            ("1.5s", Duration::from_millis(1500)),
            ("1m", Duration::from_secs(60)),
            ("1h", Duration::from_secs(3600)),
        ] {
            assert_eq!(parse_interval(text), Ok(expected), "{text}");
        }
        for bad in ["2", "", "s", "0s", "0.1ms", "-1s", "2 s", "2sec", "1e3s"] {
            assert!(parse_interval(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_are_one_plain_segment() {
        for good in ["mariadb", "app-1", "a.b_c", "A9"] {
            assert_eq!(parse_key(good).as_deref(), Ok(good));
        }
        for bad in ["", ".hidden", "a/b", "..", "a b", "a#1", "é", &"x".repeat(201)] {
            assert!(parse_key(bad).is_err(), "{bad:?}");
        }
    }

    /// Reads a [`LiveFile`] of `announced` bytes over a file whose size
    /// changes to `actual` after it was opened.
    fn read_live(announced: u64, actual: u64) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, vec![7u8; usize::try_from(announced).unwrap()]).unwrap();
        let file = File::open(&path).unwrap();
        OpenOptions::new().write(true).open(&path).unwrap().set_len(actual).unwrap();
        let stop = AtomicBool::new(false);
        let mut out = Vec::new();
        LiveFile { file, left: announced, shrank: false, stop: &stop }.read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn a_file_that_grew_is_read_to_its_announced_size() {
        let out = read_live(1000, 5000);
        assert_eq!(out, vec![7u8; 1000]);
    }

    #[test]
    fn a_file_that_shrank_is_padded_with_zeros() {
        let out = read_live(1000, 300);
        assert_eq!(out.len(), 1000);
        assert!(out[..300].iter().all(|&b| b == 7) && out[300..].iter().all(|&b| b == 0));
    }

    #[test]
    fn a_live_file_stops_when_the_agent_stops() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("f"), b"data").unwrap();
        let stop = AtomicBool::new(true);
        let file = File::open(dir.path().join("f")).unwrap();
        let err = LiveFile { file, left: 4, shrank: false, stop: &stop }.read(&mut [0; 4]).unwrap_err();
        assert_eq!(err.to_string(), "the agent is stopping");
    }
}
