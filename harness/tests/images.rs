//! Image builds need only a Docker daemon and a Debian mirror: the agent
//! image (the smallest recipe) is built by crashlab reading the archive
//! itself, under a test tag so the images other tests use stay as they
//! are, and a command runs in it. A mirror that serves a tampered archive
//! (here a tiny HTTP server on 127.0.0.1 in the test) makes `crashlab
//! images build` stop with exit code 2, one line and a hint.

mod common;

use bollard::models::ContainerCreateBody;
use crashlab::images::{self, BuildOptions, DEFAULT_MIRROR, Via};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_image_builds_from_the_archive_and_runs_a_command() {
    if common::skip_docker() {
        return;
    }
    let _exclusive = common::exclusive().await;
    let docker = crashlab::app::connect().await.expect("a Docker daemon");
    let recipe = &crashlab_workloads::agent::RECIPE;
    let id = std::process::id();
    let image = format!("crashlab-test/agent-build:{id}");
    let work = tempfile::tempdir().unwrap();
    let options = BuildOptions {
        mirror: std::env::var("CRASHLAB_DEBIAN_MIRROR").unwrap_or_else(|_| DEFAULT_MIRROR.to_owned()),
        // The package cache the CLI uses, so a rerun downloads nothing.
        cache_dir: crashlab::run::state_dir().join("packages"),
        work_dir: work.path().to_owned(),
        quiet: true,
        via: Via::Archive,
        bars: indicatif::MultiProgress::new(),
    };
    assert_eq!(images::build_as(&docker, recipe, &image, &options).await.unwrap(), images::Built::Now);

    let inspect = docker.image(&image).await.unwrap().expect("the image was imported");
    let config = inspect.config.unwrap();
    let env = config.env.unwrap_or_default();
    assert!(env.contains(&format!("CRASHLAB_RECIPE={}", recipe.fingerprint())), "{env:?}");
    assert_eq!(config.entrypoint.unwrap_or_default(), ["/usr/local/bin/crashlab-agent"]);
    assert_eq!(inspect.root_fs.and_then(|r| r.layers).map(|l| l.len()), Some(1), "one flattened layer");

    let name = format!("crashlab-test-agent-build-{id}");
    let container = docker
        .create_container(
            &name,
            ContainerCreateBody {
                image: Some(image.clone()),
                entrypoint: Some(vec!["/bin/sh".into(), "-c".into()]),
                cmd: Some(vec![
                    "sqlite3 :memory: 'select 40 + 2' && dpkg --audit && test -L /bin && ! test -e /crashlab-bootstrap"
                        .into(),
                ]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    docker.start(&container).await.unwrap();
    let code = docker.wait(&container).await.unwrap();
    let output = docker.logs_all(&container).await.unwrap();
    docker.remove_container(&container).await.unwrap();
    docker.remove_image(&image).await.unwrap();
    assert_eq!((code, output.trim()), (0, "42"));
    // The build removed its base image and its install container.
    assert!(docker.image(&format!("crashlab-build/agent:{id}")).await.unwrap().is_none());
}

/// bookworm's InRelease as deb.debian.org served it (dated 2026-07-11).
const IN_RELEASE: &str = include_str!("../src/images/testdata/InRelease");

/// A Debian mirror on 127.0.0.1 serving the files under a directory, or
/// answering every request with one status; it records the paths asked
/// for.
struct LocalMirror {
    url: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl LocalMirror {
    fn serve(root: PathBuf, status: Option<u16>) -> LocalMirror {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/debian", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                let _ = reader.read_line(&mut request);
                let mut header = String::new();
                while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                    header.clear();
                }
                let path = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
                log.lock().unwrap().push(path.clone());
                let file = root.join(path.trim_start_matches("/debian/"));
                let (code, body) = match (status, std::fs::read(file)) {
                    (Some(code), _) => (code, Vec::new()),
                    (None, Ok(body)) => (200, body),
                    (None, Err(_)) => (404, Vec::new()),
                };
                let head = format!("HTTP/1.1 {code} -\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
                let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(&body));
            }
        });
        LocalMirror { url, requests }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// Writes a bookworm archive under `root`: `in_release` and a
/// `Packages.xz` of `packages`.
fn archive(root: &Path, in_release: &str, packages: &[u8]) {
    let dists = root.join("dists/bookworm");
    std::fs::create_dir_all(dists.join("main/binary-amd64")).unwrap();
    std::fs::write(dists.join("InRelease"), in_release).unwrap();
    std::fs::write(dists.join("main/binary-amd64/Packages.xz"), packages).unwrap();
}

/// `crashlab images build redis` against `mirror`, with a state directory
/// (and so a package cache) of its own.
fn build_redis(mirror: &LocalMirror, state: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_crashlab"))
        .args(["images", "build", "redis", "-q", "--mirror", &mirror.url])
        .env("CRASHLAB_STATE_DIR", state)
        .env("CRASHLAB_IMAGE_REPO", "crashlab-test")
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .output()
        .expect("crashlab runs")
}

/// The error line and the hint of a build that failed with exit code 2.
fn rejection(out: &Output) -> (String, String) {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("crashlab:")).collect();
    assert_eq!(errors.len(), 1, "one error line: {stderr}");
    let hint = stderr.lines().find_map(|l| l.strip_prefix("hint: ")).unwrap_or_else(|| panic!("a hint: {stderr}"));
    (errors[0].to_owned(), hint.to_owned())
}

#[test]
fn a_tampered_archive_stops_the_build_with_exit_2_and_a_hint() {
    if common::skip_docker() {
        return;
    }
    let genuine_hash = "9e0b5aabb2465b3d";
    assert!(IN_RELEASE.contains(genuine_hash));
    let cases = [
        (
            IN_RELEASE.replacen(genuine_hash, "9e0b5aabb2465b3e", 1),
            "check the signature of {url}/dists/bookworm/InRelease: verify the signature by key ",
            "it does not match the signed text (tampered or corrupt)",
        ),
        (
            IN_RELEASE.to_owned(),
            "check {url}/dists/bookworm/main/binary-amd64/Packages.xz: its SHA-256 is ",
            ", the signed index says 9e0b5aabb2465b3d",
        ),
    ];
    for (in_release, expected, detail) in cases {
        let root = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        archive(root.path(), &in_release, b"not the index InRelease signs");
        let mirror = LocalMirror::serve(root.path().to_owned(), None);
        let (error, hint) = rejection(&build_redis(&mirror, state.path()));
        let expected = expected.replace("{url}", &mirror.url);
        assert!(
            error.starts_with("crashlab: failed to read the Debian archive for crashlab-test/redis:latest: "),
            "{error}"
        );
        assert!(error.contains(&expected) && error.contains(detail), "{error}\nwanted: {expected} ... {detail}");
        assert_eq!(hint, "the mirror served files Debian's archive keys do not vouch for; try another with --mirror");
        assert!(
            !std::fs::read_dir(state.path().join("packages/indexes")).is_ok_and(|mut d| d.next().is_some()),
            "nothing unverified is cached"
        );
    }
}

#[test]
fn a_failing_mirror_is_tried_again_and_then_named_with_a_hint() {
    if common::skip_docker() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let mirror = LocalMirror::serve(root.path().to_owned(), Some(503));
    let (error, hint) = rejection(&build_redis(&mirror, state.path()));
    assert_eq!(
        error,
        format!(
            "crashlab: failed to read the Debian archive for crashlab-test/redis:latest: fetch {}/dists/bookworm/InRelease: the mirror \
             answered 503 (tried 5 times)",
            mirror.url
        )
    );
    assert!(hint.starts_with("check that the Debian mirror is reachable"), "{hint}");
    assert_eq!(mirror.requests(), vec!["/debian/dists/bookworm/InRelease"; 5]);

    // A missing file is not transient: one request.
    let mirror = LocalMirror::serve(root.path().to_owned(), None);
    let (error, _) = rejection(&build_redis(&mirror, state.path()));
    assert!(error.ends_with("the mirror answered 404 (tried once)"), "{error}");
    assert_eq!(mirror.requests().len(), 1);
}

/// `run` runs crashlab's own image under `CRASHLAB_IMAGE_REPO` and builds
/// it when missing, as `images build` names it: with no such image and no
/// mirror, it is that tag it sets out to build, not `crashlab/mariadb`.
#[test]
fn run_builds_its_workload_image_under_the_image_repo() {
    if common::skip_docker() {
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_crashlab"))
        .args(["run", "--filter", "strategy=named-volume and fault=restart", "--mirror", "http://127.0.0.1:9/debian"])
        .env("CRASHLAB_STATE_DIR", state.path())
        .env("CRASHLAB_IMAGE_REPO", "crashlab-unbuilt-repo")
        .output()
        .expect("crashlab runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("crashlab-unbuilt-repo/mariadb:latest is missing; building it"), "{stderr}");
    assert!(stderr.contains("read the Debian archive for crashlab-unbuilt-repo/mariadb:latest"), "{stderr}");
}

/// A build of an image waits for another build of it that holds its lock
/// (another crashlab's: `.ci/run`'s background `images build` while the
/// tests that need the image start), then finds the image there and does
/// not build it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_image_build_waits_for_the_build_under_way_and_builds_nothing_twice() {
    if common::skip_docker() {
        return;
    }
    let docker = common::docker_with(crashlab_workloads::agent::IMAGE).await;
    let work = tempfile::tempdir().unwrap();
    let options = BuildOptions {
        mirror: "http://127.0.0.1:9/unreachable".into(),
        cache_dir: work.path().join("packages"),
        work_dir: work.path().to_owned(),
        quiet: true,
        via: Via::Archive,
        bars: indicatif::MultiProgress::new(),
    };
    // The other build: the lock held for a second, then released.
    let lock = std::fs::File::create(work.path().join("crashlab_agent_latest.lock")).unwrap();
    lock.lock().unwrap();
    let release = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(1));
        drop(lock);
    });
    let started = std::time::Instant::now();
    let recipe = &crashlab_workloads::agent::RECIPE;
    let built = images::build_missing(&docker, recipe, crashlab_workloads::agent::IMAGE, &options).await.unwrap();
    release.join().unwrap();
    assert!(!built, "the image is there once the lock is released: nothing to build (the mirror is unreachable)");
    assert!(started.elapsed() >= std::time::Duration::from_millis(900), "it waited for the lock");
}
