//! Reading a Debian archive over HTTP as debootstrap does: the suite's
//! `InRelease`, checked against the Debian archive keyring; the `Packages`
//! index it names, checked against the hash it gives; the package set a
//! minimal system plus a recipe's packages needs; and the `.deb` files,
//! each checked against its index entry and kept in a cache between
//! builds.
//!
//! The mirror is read with reqwest: `http://` or `https://` (rustls, the
//! system's certificate roots), redirects followed, the proxy variables
//! (`http_proxy`, `https_proxy`, `no_proxy` and their upper-case forms)
//! honoured, and a request that fails on the way (no connection, a
//! timeout, a 5xx or 429 answer) tried again after a growing pause. Over
//! plain HTTP the signatures protect the archive, as they do for apt.

use super::signature::{self, Keyring, PgpError};
use bytes::Bytes;
use sha2::Digest;
use std::collections::{BTreeSet, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How long a connection to the mirror may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the mirror may stay silent in the middle of an answer.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// How many times a request is made before a transient failure is final.
const ATTEMPTS: u32 = 5;
/// The pause before the second attempt; it doubles after each (0.5, 1, 2
/// and 4 s: 7.5 s in all).
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("use mirror {0}: only http:// and https:// mirrors are supported")]
    Scheme(String),
    #[error("set up the HTTP client")]
    Client(#[source] reqwest::Error),
    #[error("fetch {url} (tried {})", times(*attempts))]
    Fetch {
        url: String,
        attempts: u32,
        #[source]
        source: reqwest::Error,
    },
    #[error("fetch {url}: the mirror answered {status} (tried {})", times(*attempts))]
    Status { url: String, status: u16, attempts: u32 },
    #[error("check the signature of {url}")]
    Signature {
        url: String,
        #[source]
        source: PgpError,
    },
    #[error("read {url}: {what}")]
    Release { url: String, what: String },
    #[error("check {what}: its SHA-256 is {actual}, the signed index says {expected} (corrupt or tampered)")]
    Hash { what: String, expected: String, actual: String },
    #[error("decompress {what}")]
    Decompress {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("find package {0} in the archive: no such package")]
    UnknownPackage(String),
    #[error("use the package cache at {}", path.display())]
    Cache {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn times(n: u32) -> String {
    if n == 1 { "once".to_owned() } else { format!("{n} times") }
}

/// An HTTP client for one mirror.
#[derive(Clone)]
pub struct Mirror {
    base: String,
    client: reqwest::Client,
}

/// Why one attempt at a request failed.
enum Failure {
    Http(reqwest::Error),
    Status(u16),
}

impl Failure {
    /// Whether trying again may help: the connection or the answer broke
    /// off, or the mirror said it is overloaded or failing for now.
    fn transient(&self) -> bool {
        match self {
            Failure::Http(e) => e.is_connect() || e.is_timeout() || e.is_request() || e.is_body(),
            Failure::Status(status) => *status == 429 || (500..600).contains(status),
        }
    }

    fn into_error(self, url: String, attempts: u32) -> ArchiveError {
        match self {
            // The error names the URL again; the message names it once.
            Failure::Http(source) => ArchiveError::Fetch { url, attempts, source: source.without_url() },
            Failure::Status(status) => ArchiveError::Status { url, status, attempts },
        }
    }
}

impl Mirror {
    pub fn new(url: &str) -> Result<Mirror, ArchiveError> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ArchiveError::Scheme(url.to_owned()));
        }
        // rustls's own choice of cryptography (aws-lc-rs) is a C library
        // that takes minutes to build; ring is enough for a client. This
        // is the process's default from here on, unless one was set.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .user_agent(concat!("crashlab/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .build()
            .map_err(ArchiveError::Client)?;
        Ok(Mirror { base: url.trim_end_matches('/').to_owned(), client })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }

    /// The whole body of `path` under the mirror, trying again after a
    /// transient failure.
    pub async fn get(&self, path: &str) -> Result<Bytes, ArchiveError> {
        let url = self.url(path);
        let mut pause = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            match self.get_once(&url).await {
                Ok(body) => return Ok(body),
                Err(failure) if failure.transient() && attempt < ATTEMPTS => {
                    tracing::debug!(url, attempt, "transient failure; trying again in {pause:?}");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                    attempt += 1;
                }
                Err(failure) => return Err(failure.into_error(url, attempt)),
            }
        }
    }

    async fn get_once(&self, url: &str) -> Result<Bytes, Failure> {
        let response = self.client.get(url).send().await.map_err(Failure::Http)?;
        if !response.status().is_success() {
            return Err(Failure::Status(response.status().as_u16()));
        }
        response.bytes().await.map_err(Failure::Http)
    }
}

/// What a verified `InRelease` says about one suite.
#[derive(Debug, Clone)]
pub struct Release {
    /// `path → (sha256, size)` from its `SHA256` field.
    pub sha256: HashMap<String, (String, u64)>,
}

/// Fetches and verifies `dists/SUITE/InRelease`.
pub async fn release(mirror: &Mirror, suite: &str) -> Result<Release, ArchiveError> {
    let path = format!("dists/{suite}/InRelease");
    let body = mirror.get(&path).await?;
    parse_release(&String::from_utf8_lossy(&body), &mirror.url(&path), suite)
}

/// Verifies an `InRelease` and reads its hash list, from the signed text
/// only.
pub fn parse_release(in_release: &str, url: &str, suite: &str) -> Result<Release, ArchiveError> {
    let signature = |source| ArchiveError::Signature { url: url.to_owned(), source };
    let keyring = Keyring::debian().map_err(signature)?;
    let text = signature::verify_cleartext(in_release, &keyring, SystemTime::now()).map_err(signature)?;
    let bad = |what: String| ArchiveError::Release { url: url.to_owned(), what };
    let fields = stanza_fields(&text);
    // A signed release of another suite (an old one, say) must not pass
    // for the one asked for.
    let names: Vec<&str> = ["Codename", "Suite"].iter().filter_map(|f| fields.get(f).map(|v| v.trim())).collect();
    if !names.contains(&suite) {
        return Err(bad(format!("it is for {}, not {suite}", names.join("/"))));
    }
    let list = fields.get("SHA256").ok_or_else(|| bad("it has no SHA256 field".into()))?;
    let mut sha256 = HashMap::new();
    for line in list.lines().filter(|l| !l.trim().is_empty()) {
        let mut parts = line.split_whitespace();
        let (Some(hash), Some(size), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad(format!("a malformed SHA256 line `{line}`")));
        };
        let size = size.parse().map_err(|_| bad(format!("a malformed size in `{line}`")))?;
        sha256.insert(path.to_owned(), (hash.to_owned(), size));
    }
    Ok(Release { sha256 })
}

/// One binary package of a `Packages` index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub required: bool,
    pub essential: bool,
    /// Each entry is a list of alternatives (`a | b`), names only.
    pub depends: Vec<Vec<String>>,
    pub pre_depends: Vec<Vec<String>>,
    pub provides: Vec<String>,
    pub filename: String,
    pub sha256: String,
    /// The package's stanza in the index text, for dpkg's `available`.
    pub stanza: Range<usize>,
}

/// A parsed `Packages` index.
#[derive(Debug)]
pub struct Packages {
    pub text: String,
    pub by_name: HashMap<String, Package>,
    /// Virtual package → the real packages providing it, in index order.
    pub providers: HashMap<String, Vec<String>>,
}

/// Fetches `COMPONENT/binary-ARCH/Packages.xz`, checks it against the
/// release, and parses it. The decompressed index is cached under
/// `cache` by its hash, as it changes only with a point release.
pub async fn packages(
    mirror: &Mirror,
    suite: &str,
    release: &Release,
    arch: &str,
    cache: &Path,
) -> Result<Packages, ArchiveError> {
    let name = format!("main/binary-{arch}/Packages.xz");
    let url = mirror.url(&format!("dists/{suite}/{name}"));
    let (expected, _) = release
        .sha256
        .get(&name)
        .ok_or_else(|| ArchiveError::Release { url: url.clone(), what: format!("it does not list {name}") })?;
    let prefix = format!("Packages-{suite}-{arch}-");
    let cached = cache.join(format!("{prefix}{expected}"));
    if let Ok(text) = std::fs::read_to_string(&cached) {
        return Ok(Packages::parse(text));
    }
    let compressed = mirror.get(&format!("dists/{suite}/{name}")).await?;
    check_sha256(&url, &compressed, expected)?;
    let text = tokio::task::spawn_blocking(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut liblzma::read::XzDecoder::new(&compressed[..]), &mut text).map(|_| text)
    })
    .await
    .map_err(|e| ArchiveError::Decompress { what: url.clone(), source: std::io::Error::other(e) })?
    .map_err(|source| ArchiveError::Decompress { what: url.clone(), source })?;
    let cache_err = |source| ArchiveError::Cache { path: cached.clone(), source };
    std::fs::create_dir_all(cache).map_err(cache_err)?;
    let partial = partial_of(&cached);
    std::fs::write(&partial, &text).and_then(|()| std::fs::rename(&partial, &cached)).map_err(cache_err)?;
    // An index a newer point release replaced is never read again.
    for entry in std::fs::read_dir(cache).into_iter().flatten().flatten() {
        if entry.path() != cached && entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(Packages::parse(text))
}

pub fn check_sha256(what: &str, data: &[u8], expected: &str) -> Result<(), ArchiveError> {
    let actual = hex::encode(sha2::Sha256::digest(data));
    if actual.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(ArchiveError::Hash { what: what.to_owned(), expected: expected.to_owned(), actual })
    }
}

/// The fields of a deb822 stanza; continuation lines are joined with
/// newlines.
fn stanza_fields(stanza: &str) -> HashMap<&str, String> {
    let mut fields: HashMap<&str, String> = HashMap::new();
    let mut current: Option<&str> = None;
    for line in stanza.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(field) = current {
                let value = fields.entry(field).or_default();
                value.push('\n');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            fields.insert(name, value.trim().to_owned());
            current = Some(name);
        }
    }
    fields
}

/// `a (>= 1), b:any | c` → `[[a], [b, c]]`.
fn relations(value: &str) -> Vec<Vec<String>> {
    value
        .split(',')
        .map(|group| {
            group
                .split('|')
                .filter_map(|alt| {
                    // A name is what policy allows in one (letters, digits,
                    // `+-.`); a version, `:any` or `[arch]` ends it.
                    let alt = alt.trim();
                    let end =
                        alt.find(|c: char| !(c.is_ascii_alphanumeric() || "+-.".contains(c))).unwrap_or(alt.len());
                    (end > 0).then(|| alt[..end].to_owned())
                })
                .collect::<Vec<_>>()
        })
        .filter(|alts| !alts.is_empty())
        .collect()
}

impl Packages {
    pub fn parse(text: String) -> Packages {
        let mut by_name = HashMap::new();
        let mut providers: HashMap<String, Vec<String>> = HashMap::new();
        let mut start = 0;
        while start < text.len() {
            let end = text[start..].find("\n\n").map_or(text.len(), |i| start + i + 1);
            let stanza = &text[start..end];
            let range = start..end;
            start = end + 1;
            // Only the fields resolution needs; a stanza carries a dozen.
            let mut p = Package {
                name: String::new(),
                version: String::new(),
                required: false,
                essential: false,
                depends: vec![],
                pre_depends: vec![],
                provides: vec![],
                filename: String::new(),
                sha256: String::new(),
                stanza: range,
            };
            const WANTED: [&str; 9] = [
                "Package",
                "Version",
                "Priority",
                "Essential",
                "Depends",
                "Pre-Depends",
                "Provides",
                "Filename",
                "SHA256",
            ];
            let mut fields: Vec<(&str, String)> = Vec::new();
            let mut continuing = false;
            for line in stanza.lines() {
                if line.starts_with([' ', '\t']) {
                    if let Some((_, value)) = fields.last_mut().filter(|_| continuing) {
                        value.push(' ');
                        value.push_str(line.trim());
                    }
                } else if let Some((field, value)) = line.split_once(':') {
                    continuing = WANTED.contains(&field);
                    if continuing {
                        fields.push((field, value.trim().to_owned()));
                    }
                }
            }
            for (field, value) in fields {
                let value = value.as_str();
                match field {
                    "Package" => p.name = value.to_owned(),
                    "Version" => p.version = value.to_owned(),
                    "Priority" => p.required = value == "required",
                    "Essential" => p.essential = value == "yes",
                    "Depends" => p.depends = relations(value),
                    "Pre-Depends" => p.pre_depends = relations(value),
                    "Provides" => p.provides = relations(value).into_iter().flatten().collect(),
                    "Filename" => p.filename = value.to_owned(),
                    "SHA256" => p.sha256 = value.to_owned(),
                    _ => {}
                }
            }
            if p.name.is_empty() || p.filename.is_empty() || by_name.contains_key(&p.name) {
                continue;
            }
            for virt in &p.provides {
                providers.entry(virt.clone()).or_default().push(p.name.clone());
            }
            by_name.insert(p.name.clone(), p);
        }
        Packages { text, by_name, providers }
    }

    /// `Priority: required` and `Essential: yes` packages, sorted.
    pub fn required(&self) -> BTreeSet<String> {
        self.by_name.values().filter(|p| p.required || p.essential).map(|p| p.name.clone()).collect()
    }

    /// The package that satisfies one dependency: the first alternative
    /// that is a real package, else a provider of the first alternative
    /// that has one, a required provider first (`awk` is mawk, not gawk).
    /// debootstrap takes the first alternative only and drops virtual
    /// ones; looking further finds fewer unmet dependencies.
    fn satisfy(&self, alternatives: &[String]) -> Option<&str> {
        alternatives.iter().find_map(|a| self.by_name.get(a).map(|p| p.name.as_str())).or_else(|| {
            alternatives.iter().find_map(|a| {
                let providers = self.providers.get(a)?;
                providers.iter().find(|p| self.by_name[*p].required).or(providers.first()).map(String::as_str)
            })
        })
    }

    /// `roots` and everything they depend on (Depends and Pre-Depends),
    /// leaving out `exclude` and what depends only through it.
    pub fn resolve<'a>(
        &self,
        roots: impl IntoIterator<Item = &'a str>,
        exclude: &[&str],
    ) -> Result<BTreeSet<String>, ArchiveError> {
        let mut seen = BTreeSet::new();
        let mut queue: Vec<String> = Vec::new();
        for root in roots {
            if !self.by_name.contains_key(root) {
                return Err(ArchiveError::UnknownPackage(root.to_owned()));
            }
            queue.push(root.to_owned());
        }
        while let Some(name) = queue.pop() {
            if exclude.contains(&name.as_str()) || !seen.insert(name.clone()) {
                continue;
            }
            let package = &self.by_name[&name];
            for alternatives in package.pre_depends.iter().chain(&package.depends) {
                if let Some(dep) = self.satisfy(alternatives)
                    && !seen.contains(dep)
                {
                    queue.push(dep.to_owned());
                }
            }
        }
        Ok(seen)
    }

    pub fn stanza(&self, name: &str) -> &str {
        &self.text[self.by_name[name].stanza.clone()]
    }
}

/// Makes sure every package's `.deb` is in `cache` with the hash the
/// index gives, downloading those that are not (a few at a time), and
/// returns their paths by package name.
pub async fn fetch_debs(
    mirror: &Mirror,
    index: &Packages,
    names: &BTreeSet<String>,
    cache: &Path,
    mut progress: impl FnMut(usize, usize),
) -> Result<HashMap<String, PathBuf>, ArchiveError> {
    use futures_util::StreamExt;
    std::fs::create_dir_all(cache).map_err(|source| ArchiveError::Cache { path: cache.to_owned(), source })?;
    let jobs = names.iter().map(|name| {
        let package = &index.by_name[name];
        let file_name = package.filename.rsplit('/').next().unwrap_or(&package.filename);
        let path = cache.join(file_name);
        async move {
            // Hashing is CPU work: off the runtime's threads, in parallel.
            let cached = {
                let (path, sha256) = (path.clone(), package.sha256.clone());
                tokio::task::spawn_blocking(move || {
                    std::fs::read(&path).is_ok_and(|data| check_sha256("", &data, &sha256).is_ok())
                })
            };
            if cached.await.unwrap_or(false) {
                return Ok((package.name.clone(), path));
            }
            let data = mirror.get(&package.filename).await?;
            check_sha256(&mirror.url(&package.filename), &data, &package.sha256)?;
            let partial = partial_of(&path);
            let cache_err = |source| ArchiveError::Cache { path: path.clone(), source };
            tokio::fs::write(&partial, &data).await.map_err(cache_err)?;
            tokio::fs::rename(&partial, &path).await.map_err(cache_err)?;
            Ok((package.name.clone(), path))
        }
    });
    let mut stream = futures_util::stream::iter(jobs).buffer_unordered(8);
    let mut debs = HashMap::new();
    while let Some(result) = stream.next().await {
        let (name, path) = result?;
        debs.insert(name, path);
        progress(debs.len(), names.len());
    }
    Ok(debs)
}

/// Where a download to `path` is written before it is renamed into place:
/// a name of this process's and this download's own, so that builds
/// running at once (`images build --jobs`, or two crashlab processes)
/// never write into one another's file, whatever they fetch.
fn partial_of(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    path.with_extension(format!("partial.{}.{n}", std::process::id()))
}

/// Debian's name for the architecture crashlab runs on.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "i386",
        "powerpc64" => "ppc64el",
        "s390x" => "s390x",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INDEX: &str = "\
Package: libc6
Version: 2.36-9
Priority: optional
Depends: libgcc-s1
Filename: pool/main/g/glibc/libc6_2.36-9_amd64.deb
SHA256: aa

Package: libgcc-s1
Version: 12.2.0-14
Priority: optional
Depends: gcc-12-base (= 12.2.0-14), libc6 (>= 2.35)
Filename: pool/main/g/gcc-12/libgcc-s1_12.2.0-14_amd64.deb
SHA256: bb

Package: gcc-12-base
Version: 12.2.0-14
Priority: required
Filename: pool/main/g/gcc-12/gcc-12-base_12.2.0-14_amd64.deb
SHA256: cc

Package: dash
Version: 0.5.12-2
Essential: yes
Priority: optional
Pre-Depends: libc6 (>= 2.34)
Filename: pool/main/d/dash/dash_0.5.12-2_amd64.deb
SHA256: dd

Package: gawk
Version: 5.2.1
Priority: optional
Provides: awk
Filename: pool/main/g/gawk/gawk_5.2.1_amd64.deb
SHA256: 99

Package: mawk
Version: 1.3.4
Priority: required
Provides: awk
Filename: pool/main/m/mawk/mawk_1.3.4_amd64.deb
SHA256: ee

Package: server
Version: 1
Priority: optional
Depends: missing-thing | awk, default-mta | mail-transport-agent, usrmerge,
 libc6:any
Filename: pool/main/s/server/server_1_amd64.deb
SHA256: ff

Package: usrmerge
Version: 35
Priority: optional
Depends: perl
Filename: pool/main/u/usrmerge/usrmerge_35_all.deb
SHA256: 11
";

    fn index() -> Packages {
        Packages::parse(INDEX.to_owned())
    }

    #[test]
    fn packages_index_fields_are_read() {
        let index = index();
        let libgcc = &index.by_name["libgcc-s1"];
        assert_eq!(libgcc.version, "12.2.0-14");
        assert_eq!(libgcc.depends, vec![vec!["gcc-12-base".to_owned()], vec!["libc6".to_owned()]]);
        assert_eq!(index.by_name["dash"].pre_depends, vec![vec!["libc6".to_owned()]]);
        assert!(index.by_name["dash"].essential);
        assert_eq!(index.providers["awk"], vec!["gawk".to_owned(), "mawk".to_owned()]);
        assert!(index.stanza("mawk").starts_with("Package: mawk\n"));
        assert!(index.stanza("mawk").ends_with("SHA256: ee\n"));
        assert_eq!(
            index.by_name["server"].depends[3],
            vec!["libc6".to_owned()],
            "continuation lines and :any qualifiers"
        );
    }

    #[test]
    fn required_means_priority_required_or_essential() {
        let names: Vec<String> = index().required().into_iter().collect();
        assert_eq!(names, ["dash", "gcc-12-base", "mawk"]);
    }

    #[test]
    fn resolution_follows_depends_pre_depends_and_providers() {
        let index = index();
        let required = index.resolve(["dash"], &[]).unwrap();
        assert_eq!(required.into_iter().collect::<Vec<_>>(), ["dash", "gcc-12-base", "libc6", "libgcc-s1"]);
        // `missing-thing | awk` falls to the required mawk rather than the
        // first provider, gawk, as debootstrap's set has it; no package
        // gives `default-mta` or `mail-transport-agent`, so that
        // dependency is left unmet, as debootstrap leaves it.
        let with_server = index.resolve(["server"], &["usrmerge"]).unwrap();
        assert_eq!(
            with_server.into_iter().collect::<Vec<_>>(),
            ["gcc-12-base", "libc6", "libgcc-s1", "mawk", "server"]
        );
    }

    proptest::proptest! {
        #[test]
        fn relation_names_carry_no_version_or_qualifier(value in "[a-z0-9:,|() <>=.~+-]{0,60}") {
            for alternatives in relations(&value) {
                for name in alternatives {
                    proptest::prop_assert!(!name.is_empty());
                    proptest::prop_assert!(!name.contains([' ', '(', ')', ':', ',', '|']), "{name}");
                }
            }
        }

        #[test]
        fn any_index_text_parses_without_panicking(text in "(Package|Depends|Provides|Filename|SHA256|\\n| |: |[a-z|,]){0,200}") {
            let index = Packages::parse(text);
            let names: Vec<String> = index.by_name.keys().cloned().collect();
            let _ = index.resolve(names.iter().map(String::as_str), &[]);
            let _ = index.required();
        }
    }

    #[test]
    fn an_unknown_package_is_an_error() {
        let err = index().resolve(["mariadb-server"], &[]).unwrap_err();
        assert_eq!(err.to_string(), "find package mariadb-server in the archive: no such package");
    }

    #[test]
    fn a_tampered_download_is_rejected() {
        let expected = hex::encode(sha2::Sha256::digest(b"Package: a\n"));
        check_sha256("Packages.xz", b"Package: a\n", &expected).unwrap();
        let err = check_sha256("Packages.xz", b"Package: b\n", &expected).unwrap_err();
        assert!(err.to_string().starts_with("check Packages.xz: its SHA-256 is "), "{err}");
        assert!(err.to_string().ends_with("(corrupt or tampered)"), "{err}");
    }

    #[test]
    fn the_release_hash_list_comes_from_the_signed_text() {
        let in_release = include_str!("testdata/InRelease");
        let release = parse_release(in_release, "InRelease", "bookworm").unwrap();
        let (hash, size) = &release.sha256["main/binary-amd64/Packages.xz"];
        assert!(hash.starts_with("9e0b5aab"));
        assert_eq!(*size, 8790396);
        let err = parse_release(in_release, "InRelease", "trixie").unwrap_err();
        assert!(err.to_string().contains("it is for bookworm/oldstable, not trixie"), "{err}");
    }

    #[test]
    fn a_tampered_release_is_rejected() {
        let tampered = include_str!("testdata/InRelease").replacen("Codename: bookworm", "Codename: bookwork", 1);
        let err = parse_release(&tampered, "InRelease", "bookworm").unwrap_err();
        assert!(matches!(err, ArchiveError::Signature { source: PgpError::BadSignature { .. }, .. }), "{err}");
    }
}
