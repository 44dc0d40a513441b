//! Volumes of Docker volume drivers as strategies (`volume:DRIVER,KEY=VALUE`):
//! what the driver keeps across a kill, a restart and a redeploy is what the
//! verdict says, the driver's scope is in the report, crashlab's loop
//! devices come and go with the volumes, and a driver Docker cannot find
//! stops the run with exit 2 naming it.

mod common;

use crashlab_reports::{CellReport, Report, Verdict};
use std::process::Command;

const TMPFS: &str = "volume:local,type=tmpfs,device=tmpfs";
const LOCAL: &str = "volume:local";
const BTRFS: &str = "volume:local,type=btrfs,device=loop";

fn cell<'a>(report: &'a Report, strategy: &str, fault: &str) -> &'a CellReport {
    report
        .cells
        .iter()
        .find(|c| c.strategy == strategy && c.fault == fault)
        .unwrap_or_else(|| panic!("no cell {strategy}/{fault} in {:?}", report.cells))
}

/// Loop devices whose backing file lies under `dir`.
fn loops_under(dir: &std::path::Path) -> Vec<String> {
    let out = Command::new("losetup").args(["--list", "--noheadings", "--output", "NAME,BACK-FILE"]).output();
    let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    text.lines().filter(|l| l.contains(&*dir.to_string_lossy())).map(str::to_owned).collect()
}

/// The local driver's `type=tmpfs` mounts memory at each container start:
/// a restart and a redeploy find nothing, as Docker's own tmpfs mounts do,
/// while a plain local volume keeps what was acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tmpfs_driver_volume_loses_everything_and_a_local_one_nothing() {
    if common::skip_docker() {
        return;
    }
    let args = r#""--innodb-flush-log-at-trx-commit=1""#;
    let expect = format!("[[expect]]\nstrategy = \"{TMPFS}\"\nverdict = \"data-gone\"\n");
    let strategies = format!("\"{TMPFS}\", \"{LOCAL}\"");
    let text = common::mariadb_scenario(args, &strategies, r#""restart", "recreate""#, 1, &expect);
    let (outcome, _state) = common::run(&text).await;
    let report = &outcome.report;
    for fault in ["restart", "recreate"] {
        let c = cell(report, TMPFS, fault);
        assert_eq!(c.verdict, Verdict::DataGone, "{c:#?}");
        assert!(c.acked_writes > 0, "writes were at stake: {c:#?}");
        let driver = c.volume_driver.as_ref().expect("the driver is reported");
        assert_eq!((driver.driver.as_str(), driver.scope.as_str()), ("local", "local"));
        assert_eq!(driver.options, ["type=tmpfs", "device=tmpfs"]);
        let c = cell(report, LOCAL, fault);
        assert_eq!(c.verdict, Verdict::Intact, "{c:#?}");
        assert!(c.acked_writes > 0 && c.lost_acked_writes == 0, "{c:#?}");
        assert_eq!(c.volume_driver.as_ref().map(|d| d.scope.as_str()), Some("local"));
    }
    assert!(report.passed());
    let markdown = crashlab_reports::markdown::render(report);
    assert!(markdown.contains("## Volume drivers") && markdown.contains("| `type=tmpfs,device=tmpfs` | local |"));
}

/// A btrfs file system on a loop device crashlab makes, through the local
/// driver's `type`/`device` options: it keeps every acknowledged commit
/// across a kill, a restart and a redeploy, and the loop device is gone
/// with the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_btrfs_volume_on_a_loop_device_keeps_acknowledged_commits() {
    if common::skip_docker() {
        return;
    }
    let args = r#""--innodb-flush-log-at-trx-commit=1""#;
    let faults = r#""process-kill", "restart", "recreate""#;
    let text = common::mariadb_scenario(args, &format!("\"{BTRFS}\""), faults, 1, "");
    let (outcome, state) = common::run(&text).await;
    let report = &outcome.report;
    for fault in ["process-kill", "restart", "recreate"] {
        let c = cell(report, BTRFS, fault);
        assert_eq!(c.verdict, Verdict::Intact, "{c:#?}");
        assert!(c.acked_writes > 0 && c.lost_acked_writes == 0, "{c:#?}");
        let driver = c.volume_driver.as_ref().expect("the driver is reported");
        assert_eq!(driver.loop_device.as_deref(), Some("btrfs 1073741824"));
    }
    assert!(loops_under(state.path()).is_empty(), "loop devices left: {:?}", loops_under(state.path()));
}

/// A driver Docker cannot find stops `crashlab run` before any cell, with
/// exit 2, its name and Docker's own words; nothing is left behind.
#[test]
fn a_missing_volume_driver_exits_2_naming_it() {
    if common::skip_docker() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.toml");
    let text = common::mariadb_scenario("", r#""volume:crashlab-no-such-driver,size=1g""#, r#""restart""#, 1, "");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_crashlab"))
        .args(["run", path.to_str().unwrap(), "--quiet"])
        .env("CRASHLAB_STATE_DIR", dir.path().join("state"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("volume driver `crashlab-no-such-driver`"), "{stderr}");
    // Docker's own words, as the daemon put them.
    assert!(stderr.contains("plugin \"crashlab-no-such-driver\" not found"), "{stderr}");
    let runs: Vec<std::path::PathBuf> = std::fs::read_dir(dir.path().join("state/runs"))
        .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect())
        .unwrap_or_default();
    assert!(runs.is_empty(), "the run was cleaned up: {runs:?}");
}

/// The same `volume:` text and `[[strategy]]` table are one strategy to
/// `crashlab validate`; a bad one names its line.
#[test]
fn a_strategy_table_defines_a_driver_volume_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("table.toml");
    let table = "[[strategy]]\nname = \"ram\"\ndriver = \"local\"\ndriver-opts = { type = \"tmpfs\", device = \"tmpfs\" }\n\
                 [[expect]]\nstrategy = \"ram\"\nverdict = \"data-gone\"\n";
    std::fs::write(&path, common::mariadb_scenario("", r#""ram", "volume:local""#, r#""restart""#, 1, table)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_crashlab")).args(["validate", path.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let bad = table.replace("device = \"tmpfs\"", "device = \"loop\"");
    std::fs::write(&path, common::mariadb_scenario("", r#""ram""#, r#""restart""#, 1, &bad)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_crashlab")).args(["validate", path.to_str().unwrap()]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("table.toml:14:8: strategy: `device=loop` needs `type` to be one of"), "{stderr}");
}

/// `docker` with `args`; its stdout, or a panic with its stderr.
fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("run docker");
    assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `crashlab ARGS`, off the async workers (the driver under test serves
/// on them).
async fn off_thread(args: &[&str]) -> std::process::Output {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || Command::new(env!("CARGO_BIN_EXE_crashlab")).args(args).output().unwrap())
        .await
        .unwrap()
}

/// `docker ARGS`, off the async workers.
async fn off_thread_docker(args: &[&str]) -> std::process::Output {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || Command::new("docker").args(args).output().unwrap()).await.unwrap()
}

/// Removes a test's container and volume however the test ends.
struct Removes {
    container: String,
    volume: String,
}

impl Drop for Removes {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.container]).output();
        let _ = Command::new("docker").args(["volume", "rm", "-f", &self.volume]).output();
    }
}

/// The socket Docker finds crashlab's driver on.
const SOCKET: &str = crashlab::plugin::SOCKET;

/// The tests against the real daemon use a `crashlab volume-driver` that
/// already serves the standard socket and never start one: dockerd (20.10)
/// keeps every legacy volume plugin it has talked to until it restarts,
/// and once a driver is gone it retries it for 15 s on every volume list
/// (45 s on every removal), for every user of the daemon.
fn require_a_serving_driver() {
    assert!(
        std::os::unix::net::UnixStream::connect(SOCKET).is_ok(),
        "this test needs `crashlab volume-driver` (of this build) serving {SOCKET}: start it and keep it running \
         (the test does not start one, since Docker would retry it after it stopped)"
    );
}

/// Where the driver keeps a volume: the directory above its mountpoint's
/// `fs/mnt`, as `docker volume inspect` reads it while the volume is
/// mounted (the driver names no mountpoint otherwise).
fn volume_dir(volume: &str) -> std::path::PathBuf {
    let mountpoint = docker(&["volume", "inspect", "-f", "{{.Mountpoint}}", volume]);
    std::path::Path::new(&mountpoint).ancestors().nth(2).expect("ROOT/volumes/NAME/fs/mnt").to_owned()
}

/// crashlab's own volume driver, serving Docker: `docker volume create
/// -d crashlab` and `docker run -v` put a container's data on the fault
/// filesystem; `crashlab volume fail` makes its fsync fail with EIO;
/// `crashlab volume cut` kills the container and drops what was not
/// durable (a file fsynced with its directory survives, one only written
/// does not); `docker volume rm` leaves no mount and no directory.
///
/// Not in the default suite: it needs a driver of this build serving the
/// standard socket (see [`require_a_serving_driver`]), which a test cannot
/// start and stop without leaving Docker retrying it:
/// `crashlab volume-driver & cargo test -p crashlab --test volume_drivers -- --ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs `crashlab volume-driver` serving /run/docker/plugins/crashlab.sock"]
async fn docker_volumes_of_crashlabs_driver_lose_what_was_not_durable_at_a_cut() {
    if common::skip_docker() {
        return;
    }
    require_a_serving_driver();
    let _guard = common::exclusive().await;
    let image = crashlab_workloads::mariadb::IMAGE;
    common::docker_with(image).await;
    let name = format!("crashlab-test-{}", std::process::id());
    let (volume, container) = (format!("{name}-v"), format!("{name}-c"));
    let _cleanup = Removes { container: container.clone(), volume: volume.clone() };
    let label = "crashlab.helper=volume-drivers-test";
    docker(&["volume", "create", "-d", crashlab::plugin::NAME, "--label", label, &volume]);
    let script =
        "echo durable > /data/a && sync /data/a /data && echo unsynced > /data/b && touch /data/ready && sleep 600";
    let mount = format!("{volume}:/data");
    docker(&[
        "run",
        "-d",
        "--name",
        &container,
        "--label",
        label,
        "-v",
        &mount,
        "--entrypoint",
        "sh",
        image,
        "-c",
        script,
    ]);
    let dir = volume_dir(&volume);
    let ready = dir.join("fs/mnt/ready");
    let started = std::time::Instant::now();
    while !ready.exists() {
        assert!(started.elapsed().as_secs() < 20, "the container never wrote its files");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // A rule of the io-error grammar on the live mount: the container's
    // fsync of /c fails with EIO, and the status counts it.
    let fail = off_thread(&["volume", "fail", &volume, "eio:fsync:1+:/c"]).await;
    assert_eq!(String::from_utf8_lossy(&fail.stdout).trim(), format!("fail volume={volume} rule=eio:fsync:1+:/c"));
    let fsync = off_thread_docker(&["exec", &container, "sh", "-c", "echo c > /data/c && sync /data/c"]).await;
    assert!(!fsync.status.success(), "the fsync of /c failed");
    assert!(String::from_utf8_lossy(&fsync.stderr).contains("Input/output error"), "{fsync:?}");
    let status = off_thread(&["volume", "status", &volume]).await;
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(status.contains("mounted=true") && status.contains("injected-errors=1 "), "{status}");
    let cut = off_thread(&["volume", "cut", &volume]).await;
    let line = String::from_utf8_lossy(&cut.stdout);
    assert!(cut.status.success(), "{line} {}", String::from_utf8_lossy(&cut.stderr));
    assert!(line.starts_with(&format!("cut volume={volume} killed=1 dropped-bytes=")), "{line}");
    assert!(!line.contains("dropped-bytes=0 "), "the unsynced file was dropped: {line}");
    let after = docker(&[
        "run",
        "--rm",
        "--label",
        label,
        "-v",
        &mount,
        "--entrypoint",
        "sh",
        image,
        "-c",
        "cat /data/a; ls /data",
    ]);
    docker(&["rm", "-f", &container]);
    assert_eq!(after.lines().collect::<Vec<_>>(), ["durable", "a"], "only the durable file is left");
    docker(&["volume", "rm", &volume]);
    assert!(!dir.exists(), "the volume's directory is gone");
    assert!(crashlab::images::mounts_under(&dir).is_empty(), "no mount is left");
}

/// `host-kill` and `crash-states` through crashlab's driver in a run
/// (`volume:crashlab`): with `--innodb-flush-log-at-trx-commit=1` the
/// cut and every explored crash state keep what was acknowledged; with
/// `=2` the cut loses acknowledged commits. The crash point was handed
/// over by the driver, and the run leaves no volume behind. Not in the
/// default suite, as above.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs `crashlab volume-driver` serving /run/docker/plugins/crashlab.sock"]
async fn power_cuts_and_crash_states_run_through_crashlabs_driver() {
    if common::skip_docker() {
        return;
    }
    require_a_serving_driver();
    let faults = r#""host-kill", "crash-states""#;
    let explore = "[explore]\nmax-states = 3\n";
    for (args, durable) in
        [(r#""--innodb-flush-log-at-trx-commit=1""#, true), (r#""--innodb-flush-log-at-trx-commit=2""#, false)]
    {
        let text = common::mariadb_scenario(args, r#""volume:crashlab""#, faults, 1, explore);
        let (outcome, _state) = common::run(&text).await;
        let report = &outcome.report;
        let states = cell(report, "volume:crashlab", "crash-states");
        let cycle = &states.cycle_details[0];
        let fired = cycle.fired.as_ref().expect("the fault said whether it fired");
        assert!(fired.fired && fired.what.contains("through crashlab's volume driver"), "{cycle:#?}");
        let point = &cycle.explore.as_ref().expect("explored").points[0];
        assert!(!point.states.is_empty() && point.error.is_none(), "{point:#?}");
        let killed = cell(report, "volume:crashlab", "host-kill");
        assert!(killed.cycle_details[0].fired.as_ref().is_some_and(|f| f.fired), "{killed:#?}");
        if durable {
            assert_eq!((states.verdict, killed.verdict), (Verdict::Intact, Verdict::Intact), "{report:#?}");
            assert!(point.states.iter().all(|s| s.verdict == Verdict::Intact), "{point:#?}");
        } else {
            assert_eq!(killed.verdict, Verdict::LostWrites, "{killed:#?}");
            assert!(point.states.iter().any(|s| s.verdict == Verdict::LostWrites), "{point:#?}");
        }
        let left = docker(&["volume", "ls", "-q", "--filter", &format!("label=crashlab.run={}", report.run_id)]);
        assert!(left.is_empty(), "the run's volumes are gone: {left}");
    }
}

/// A service of the user's own on crashlab's driver, under `host-kill`,
/// judged by its own check that knows what it acknowledged
/// (`scenarios/compose/own-app-driver`): the ledger that fsyncs its log
/// before acknowledging passes, the one that does not fails. Not in the
/// default suite, as above.
#[test]
#[ignore = "needs `crashlab volume-driver` serving /run/docker/plugins/crashlab.sock"]
fn your_own_service_on_crashlabs_driver_is_judged_by_its_check_after_a_power_cut() {
    if common::skip_docker() {
        return;
    }
    require_a_serving_driver();
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/compose/own-app-driver/docker-compose.yml");
    for (service, code, said) in [("ledger", 0, "acknowledged"), ("ledger-no-fsync", 1, "but the log ends at line")] {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_crashlab"))
            .args(["run", "--compose", file, "--service", service, "--quiet"])
            .env("CRASHLAB_STATE_DIR", dir.path().join("state"))
            .current_dir(dir.path())
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.status.code(), Some(code), "{service}: {text}");
        let reports = dir.path().join("crashlab-results");
        let run = std::fs::read_dir(&reports).unwrap().next().unwrap().unwrap().path();
        let report: Report = serde_json::from_slice(&std::fs::read(run.join("report.json")).unwrap()).unwrap();
        for cycle in &report.cells[0].cycle_details {
            let fired =
                cycle.fired.as_ref().is_some_and(|f| f.fired && f.what.contains("crashlab's volume driver cut"));
            assert!(fired, "{cycle:#?}");
            assert!(cycle.detail.contains(said), "{service}: {}", cycle.detail);
        }
    }
}

/// The pids of processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(needle) && pid != std::process::id() {
            pids.push(pid);
        }
    }
    pids
}

/// A `crashlab volume-driver` on a socket of the test's own, which Docker
/// never hears of (no plugin is registered with the daemon).
struct DriverProcess {
    child: std::process::Child,
}

impl DriverProcess {
    async fn start(socket: &std::path::Path, root: &std::path::Path) -> DriverProcess {
        let child = Command::new(env!("CARGO_BIN_EXE_crashlab"))
            .args(["volume-driver", "--socket"])
            .arg(socket)
            .arg("--root")
            .arg(root)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        while std::os::unix::net::UnixStream::connect(socket).is_err() {
            assert!(started.elapsed().as_secs() < 20, "the driver never answered on {}", socket.display());
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        DriverProcess { child }
    }
}

impl Drop for DriverProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A driver of the test's own, serving a socket under a temporary root
/// (not registered with dockerd), with the guard that ends the holders and
/// mounts it leaves there. Bind them in this order, `let (root, _holders,
/// socket, driver) = …`, so that they drop in reverse: the driver first,
/// the root's directory last.
async fn own_driver() -> (tempfile::TempDir, Holders, std::path::PathBuf, DriverProcess) {
    let root = tempfile::tempdir().unwrap();
    let holders = Holders(root.path().to_owned());
    let socket = root.path().join("driver.sock");
    let driver = DriverProcess::start(&socket, root.path()).await;
    (root, holders, socket, driver)
}

/// Ends the holders and mounts a test leaves under `root`, however it ends.
struct Holders(std::path::PathBuf);

impl Drop for Holders {
    fn drop(&mut self) {
        for pid in processes_mentioning(&self.0.to_string_lossy()) {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
        crashlab::storage::faultmount::detach_mounts_under(&self.0);
    }
}

/// A write made durable: the file's data and its directory entry.
fn write_durable(path: &std::path::Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::File::open(path).unwrap().sync_all().unwrap();
    std::fs::File::open(path.parent().unwrap()).unwrap().sync_all().unwrap();
}

/// Each mounted volume of crashlab's driver is served by a holder process
/// of its own: the driver killed with SIGKILL leaves the mount serving
/// (what was written reads back), a new driver finds the volume and its
/// holder, reports and cuts it (what was not durable is gone at the next
/// mount), unmounts it when the last user goes (the holder ends), and
/// removes it leaving no mount, process or directory. No Docker plugin is
/// registered: the test speaks the plugin protocol to the driver's socket
/// itself, as dockerd would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mounted_volume_outlives_its_driver_and_a_new_driver_cuts_and_removes_it() {
    use crashlab::plugin::http::call;
    use serde_json::json;
    if common::skip_docker() {
        return;
    }
    let (root, _holders, socket, first) = own_driver().await;
    call(&socket, "/VolumeDriver.Create", json!({ "Name": "v" })).await.unwrap();
    let answer = call(&socket, "/VolumeDriver.Mount", json!({ "Name": "v", "ID": "m1" })).await.unwrap();
    let mnt = std::path::PathBuf::from(answer["Mountpoint"].as_str().unwrap());
    write_durable(&mnt.join("a"), "durable");
    std::fs::write(mnt.join("b"), "unsynced").unwrap();

    drop(first); // SIGKILL
    assert_eq!(std::fs::read_to_string(mnt.join("a")).unwrap(), "durable", "the holder still serves the mount");
    let second = DriverProcess::start(&socket, root.path()).await;
    let listed = call(&socket, "/VolumeDriver.List", json!({})).await.unwrap();
    assert_eq!(listed["Volumes"][0]["Mountpoint"], json!(mnt), "{listed}");
    let socket_arg = socket.to_str().unwrap().to_owned();
    let status = off_thread(&["volume", "status", "v", "--socket", &socket_arg]).await;
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(status.starts_with("volume=v mounted=true unsynced=") && !status.contains("unsynced=0 "), "{status}");
    let cut = off_thread(&["volume", "cut", "v", "--socket", &socket_arg]).await;
    let line = String::from_utf8_lossy(&cut.stdout);
    let detail = format!("{line}{}", String::from_utf8_lossy(&cut.stderr));
    assert!(line.starts_with("cut volume=v killed=0 dropped-bytes=") && !line.contains("dropped-bytes=0 "), "{detail}");

    // Docker mounts again under an id in use (`docker cp` of a running
    // container does) and unmounts after: the mount stays for the first.
    call(&socket, "/VolumeDriver.Mount", json!({ "Name": "v", "ID": "m1" })).await.unwrap();
    call(&socket, "/VolumeDriver.Unmount", json!({ "Name": "v", "ID": "m1" })).await.unwrap();
    assert!(!crashlab::images::mounts_under(&mnt).is_empty(), "still mounted for the first mount");
    call(&socket, "/VolumeDriver.Unmount", json!({ "Name": "v", "ID": "m1" })).await.unwrap();
    assert!(crashlab::images::mounts_under(root.path()).is_empty(), "the last unmount unmounts");
    call(&socket, "/VolumeDriver.Mount", json!({ "Name": "v", "ID": "m2" })).await.unwrap();
    let mut names: Vec<String> =
        std::fs::read_dir(&mnt).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["a"], "the cut dropped the unsynced file");
    call(&socket, "/VolumeDriver.Unmount", json!({ "Name": "v", "ID": "m2" })).await.unwrap();
    call(&socket, "/VolumeDriver.Remove", json!({ "Name": "v" })).await.unwrap();
    assert!(!root.path().join("volumes/v").exists(), "the volume's directory is gone");
    assert!(crashlab::images::mounts_under(root.path()).is_empty(), "no mount is left");
    drop(second);
    let started = std::time::Instant::now();
    while !processes_mentioning(&root.path().join("volumes").to_string_lossy()).is_empty() {
        assert!(started.elapsed().as_secs() < 10, "a holder is still running");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// `crashlab volume states` on a volume that records its history: each
/// distinct crash state of what is unsynced at that instant is written
/// out as a directory; every state keeps the durable file, and the
/// unsynced one is there in some states and missing in others. A volume
/// without history says how to get one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volume_states_writes_out_the_crash_states_of_the_unsynced_writes() {
    use crashlab::plugin::http::call;
    use serde_json::json;
    if common::skip_docker() {
        return;
    }
    let (root, _holders, socket, _driver) = own_driver().await;
    let socket_arg = socket.to_str().unwrap().to_owned();
    for (name, history) in [("h", "true"), ("plain", "false")] {
        let opts = json!({ "history": history });
        call(&socket, "/VolumeDriver.Create", json!({ "Name": name, "Opts": opts })).await.unwrap();
    }
    let answer = call(&socket, "/VolumeDriver.Mount", json!({ "Name": "h", "ID": "m" })).await.unwrap();
    let mnt = std::path::PathBuf::from(answer["Mountpoint"].as_str().unwrap());
    write_durable(&mnt.join("a"), "durable");
    std::fs::write(mnt.join("b"), "unsynced").unwrap();
    let out = root.path().join("states");
    let states = off_thread(&["volume", "states", "h", "--out", out.to_str().unwrap(), "--socket", &socket_arg]).await;
    let line = String::from_utf8_lossy(&states.stdout).into_owned();
    assert!(line.starts_with("states volume=h states="), "{line}{}", String::from_utf8_lossy(&states.stderr));
    let index = std::fs::read_to_string(out.join("states.txt")).unwrap();
    let dirs: Vec<&str> = index.lines().filter_map(|l| l.split_whitespace().next()).collect();
    // One line a state after the summary, naming its id and directory.
    let listed: Vec<&str> = line.lines().skip(1).collect();
    assert_eq!(listed.len(), dirs.len(), "{line}");
    for (l, d) in listed.iter().zip(&dirs) {
        assert!(l.starts_with("state volume=h id=") && l.ends_with(&format!(" dir={}", out.join(d).display())), "{l}");
    }
    assert!(dirs.len() >= 2, "at least the state without and the one with the unsynced file: {index}");
    let with_b = dirs.iter().filter(|d| out.join(d).join("b").exists()).count();
    for d in &dirs {
        assert_eq!(std::fs::read_to_string(out.join(d).join("a")).unwrap(), "durable", "{d}");
    }
    assert!(with_b > 0 && with_b < dirs.len(), "b in some states only: {with_b} of {}", dirs.len());
    assert_eq!(std::fs::read_to_string(mnt.join("b")).unwrap(), "unsynced", "the live volume is untouched");

    call(&socket, "/VolumeDriver.Mount", json!({ "Name": "plain", "ID": "m" })).await.unwrap();
    let plain =
        off_thread(&["volume", "states", "plain", "--out", out.to_str().unwrap(), "--socket", &socket_arg]).await;
    assert_eq!(plain.status.code(), Some(2), "{plain:?}");
    assert!(String::from_utf8_lossy(&plain.stderr).contains("-o history=true"), "{plain:?}");
    for name in ["h", "plain"] {
        call(&socket, "/VolumeDriver.Unmount", json!({ "Name": name, "ID": "m" })).await.unwrap();
        call(&socket, "/VolumeDriver.Remove", json!({ "Name": name })).await.unwrap();
    }
    assert!(crashlab::images::mounts_under(root.path()).is_empty(), "no mount is left");
}

/// The crash point a `crash-states` cycle takes through the driver
/// (`/Crashlab.Capture`): the durable base's copy, which the cycle removes
/// after its exploration, holds the durable file and not the unsynced
/// one, and the unsynced history is written where the cycle asked; the
/// live volume is untouched. A volume without history hands over nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_point_is_handed_over_through_the_driver() {
    use crashlab::plugin::http::call;
    use serde_json::json;
    if common::skip_docker() {
        return;
    }
    let (root, _holders, socket, _driver) = own_driver().await;
    for (name, history) in [("h", "true"), ("plain", "false")] {
        let opts = json!({ "history": history });
        call(&socket, "/VolumeDriver.Create", json!({ "Name": name, "Opts": opts })).await.unwrap();
        let answer = call(&socket, "/VolumeDriver.Mount", json!({ "Name": name, "ID": "m" })).await.unwrap();
        let mnt = std::path::PathBuf::from(answer["Mountpoint"].as_str().unwrap());
        write_durable(&mnt.join("a"), "durable");
        std::fs::write(mnt.join("b"), "unsynced").unwrap();
        let out = root.path().join(format!("point-{name}"));
        let point = call(&socket, "/Crashlab.Capture", json!({ "Name": name, "Out": out })).await.unwrap();
        if history == "false" {
            assert_eq!(point["Complete"], json!(false), "{point}");
            assert!(!out.exists(), "no history is written");
        } else {
            assert_eq!(point["Complete"], json!(true), "{point}");
            assert!(point["Operations"].as_u64().unwrap() > 0, "{point}");
            let base = std::path::PathBuf::from(point["Base"].as_str().unwrap());
            assert_eq!(std::fs::read_to_string(base.join("a")).unwrap(), "durable");
            assert!(!base.join("b").exists(), "the base holds only what is durable");
            assert!(out.join("history.json").exists() && out.join("history.bin").exists(), "{}", out.display());
            std::fs::remove_dir_all(&base).unwrap();
        }
        assert_eq!(std::fs::read_to_string(mnt.join("b")).unwrap(), "unsynced", "the live volume is untouched");
        call(&socket, "/VolumeDriver.Unmount", json!({ "Name": name, "ID": "m" })).await.unwrap();
        call(&socket, "/VolumeDriver.Remove", json!({ "Name": name })).await.unwrap();
    }
    assert!(crashlab::images::mounts_under(root.path()).is_empty(), "no mount is left");
    assert!(!root.path().join("volumes/h").exists(), "the volume's directory is gone");
}

/// A volume's `fsync-failure` option is the model its mounts follow when a
/// rule fails an fsync: an overwrite whose fsync failed once and then
/// succeeded is kept by `keep-dirty` (the retry wrote it), and lost at a
/// cut by `ext4` (the failed pages were marked clean, never written) and
/// by `btrfs` (the file went back to its durable contents at once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volumes_failed_fsync_model_decides_what_a_retried_fsync_keeps() {
    use crashlab::plugin::http::call;
    use serde_json::json;
    use std::io::Write as _;
    if common::skip_docker() {
        return;
    }
    let (root, _holders, socket, _driver) = own_driver().await;
    for (model, kept) in [("keep-dirty", "new!"), ("ext4", "old!"), ("btrfs", "old!")] {
        let opts = json!({ "fsync-failure": model });
        call(&socket, "/VolumeDriver.Create", json!({ "Name": model, "Opts": opts })).await.unwrap();
        let answer = call(&socket, "/VolumeDriver.Mount", json!({ "Name": model, "ID": "m" })).await.unwrap();
        let mnt = std::path::PathBuf::from(answer["Mountpoint"].as_str().unwrap());
        write_durable(&mnt.join("c"), "old!");
        call(&socket, "/Crashlab.Fail", json!({ "Name": model, "Rule": "eio:fsync:1:/c" })).await.unwrap();
        let mut file = std::fs::OpenOptions::new().write(true).open(mnt.join("c")).unwrap();
        file.write_all(b"new!").unwrap();
        assert!(file.sync_all().is_err(), "{model}: the first fsync fails");
        assert!(file.sync_all().is_ok(), "{model}: the retry succeeds");
        drop(file);
        call(&socket, "/Crashlab.Cut", json!({ "Name": model })).await.unwrap();
        call(&socket, "/VolumeDriver.Unmount", json!({ "Name": model, "ID": "m" })).await.unwrap();
        call(&socket, "/VolumeDriver.Mount", json!({ "Name": model, "ID": "m" })).await.unwrap();
        assert_eq!(std::fs::read_to_string(mnt.join("c")).unwrap(), kept, "{model}");
        call(&socket, "/VolumeDriver.Unmount", json!({ "Name": model, "ID": "m" })).await.unwrap();
        call(&socket, "/VolumeDriver.Remove", json!({ "Name": model })).await.unwrap();
    }
    assert!(crashlab::images::mounts_under(root.path()).is_empty(), "no mount is left");
}
