//! What the fault filesystem costs.
//!
//! 1. Cycle time: MariaDB (durable settings, bind mount) under `host-kill`
//!    (data on faultfs: freeze, power cut, kill, remount, start) and under
//!    `process-kill` (plain bind mount: kill, start), several cycles each,
//!    through the real runner. Prints every `cycle_ms` from the report and
//!    the ratio of the medians, leaving out each cell's first cycle (it also
//!    deploys and initialises the server). Target: host-kill ≤ 1.5×.
//! 2. I/O overhead: fio on the host, against a faultfs mountpoint and
//!    against the same backing directory without faultfs, three alternating
//!    runs each. fio is not in the workload image and no registry is
//!    reachable, so it runs on the host; a container's bind mount of the
//!    mountpoint reaches the same FUSE filesystem through the same kernel
//!    path. Prints medians of 4 KiB write + fsync IOPS (target ≥ 1.5× native:
//!    an fsync on faultfs need not reach the disk, see
//!    `[faults] fsync-reaches-disk`) and of 1 MiB sequential write MiB/s
//!    (target ≥ 70 % of native).
//!
//! Run: `cargo bench -p crashlab-benches --bench power_loss` (needs Docker,
//! root, /dev/fuse and `fio`). `POWER_LOSS_BENCH=cycles` or `=fio` runs one
//! half only.

use crashlab::app::{self, RunSettings};
use crashlab::scenario::Scenario;
use crashlab_faultfs::{FaultConfig, FaultFs};
use std::path::Path;
use std::process::Command;

const CYCLES: u32 = 6;
const FIO_ROUNDS: usize = 3;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn cycle_times() {
    let text = format!(
        r#"
name = "power-loss-bench"
seed = 1
[workload]
kind = "mariadb"
server-args = ["--innodb-flush-log-at-trx-commit=1"]
clients = 4
load = "2s"
[matrix]
strategies = ["bind-mount"]
faults = ["process-kill", "host-kill"]
cycles = {CYCLES}
"#
    );
    let scenario = Scenario::parse(&text, "bench").expect("valid scenario");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let report = runtime.block_on(async {
        let docker = app::connect().await.expect("docker daemon");
        app::ensure_image(&docker, crashlab_workloads::mariadb::IMAGE, crashlab::images::DEFAULT_MIRROR, true)
            .await
            .expect("image");
        let state = tempfile::tempdir().expect("tempdir");
        let settings = RunSettings { quiet: true, ..RunSettings::new(state.path().to_owned()) };
        let (_cancel_tx, cancel_rx) = tokio::sync::watch::channel(false);
        app::execute(&docker, &scenario, &settings, cancel_rx).await.expect("run").report
    });
    let mut medians = Vec::new();
    for cell in &report.cells {
        let times: Vec<f64> = cell.cycle_details.iter().map(|c| c.cycle_ms).collect();
        let recoveries: Vec<f64> = cell.cycle_details.iter().filter_map(|c| c.recovery_ms).collect();
        let steady = median(times[1..].to_vec());
        println!(
            "{:12} verdicts {:?}\n  cycle_ms {:?}\n  median of cycles 2..{CYCLES}: {steady:.0} ms (recovery median {:.0} ms)",
            cell.fault,
            cell.verdicts.iter().map(ToString::to_string).collect::<Vec<_>>(),
            times.iter().map(|t| t.round()).collect::<Vec<_>>(),
            median(recoveries),
        );
        medians.push(steady);
    }
    println!("host-kill / process-kill cycle time: {:.2}× (target ≤ 1.5×)", medians[1] / medians[0]);
}

/// One fio job; returns (write IOPS, write MiB/s).
fn fio(dir: &Path, name: &str, args: &[&str]) -> (f64, f64) {
    let out = Command::new("fio")
        .arg(format!("--name={name}"))
        .arg(format!("--directory={}", dir.display()))
        .args(["--ioengine=psync", "--rw=write", "--output-format=json"])
        .args(args)
        .output()
        .expect("fio is installed (apt-get install fio)");
    assert!(out.status.success(), "fio failed: {}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("fio json");
    let write = &json["jobs"][0]["write"];
    let file = dir.join(format!("{name}.0.0"));
    let _ = std::fs::remove_file(file);
    (write["iops"].as_f64().unwrap_or(0.0), write["bw_bytes"].as_f64().unwrap_or(0.0) / (1 << 20) as f64)
}

fn fio_overhead() {
    let root = tempfile::tempdir_in(crashlab::run::state_dir().parent().unwrap_or(Path::new("/var/tmp")))
        .or_else(|_| tempfile::tempdir())
        .expect("tempdir");
    let backing = root.path().join("backing");
    let mnt = root.path().join("mnt");
    std::fs::create_dir_all(&backing).unwrap();
    std::fs::create_dir_all(&mnt).unwrap();
    let fs = FaultFs::mount(&backing, &mnt, FaultConfig::default()).expect("mount faultfs (root, /dev/fuse)");
    let small: &[&str] = &["--bs=4k", "--size=32m", "--fsync=1"];
    let large: &[&str] = &["--bs=1m", "--size=1g", "--end_fsync=1"];
    let (mut small_native, mut small_faultfs, mut large_native, mut large_faultfs) = (vec![], vec![], vec![], vec![]);
    for round in 0..FIO_ROUNDS {
        // Alternate which goes first, so neither always meets a warmer cache.
        let order: [(&Path, bool); 2] =
            if round % 2 == 0 { [(&backing, false), (&mnt, true)] } else { [(&mnt, true), (&backing, false)] };
        for (dir, on_faultfs) in order {
            let (iops, _) = fio(dir, "w4k", small);
            let (_, mibs) = fio(dir, "w1m", large);
            println!(
                "round {} {:8}: 4k write+fsync {iops:>9.0} IOPS, 1m write {mibs:>6.0} MiB/s",
                round + 1,
                if on_faultfs { "faultfs" } else { "native" }
            );
            if on_faultfs {
                small_faultfs.push(iops);
                large_faultfs.push(mibs);
            } else {
                small_native.push(iops);
                large_native.push(mibs);
            }
        }
    }
    fs.unmount().expect("unmount");
    let (sn, sf, ln, lf) = (median(small_native), median(small_faultfs), median(large_native), median(large_faultfs));
    println!("median 4k write+fsync: native {sn:.0} IOPS, faultfs {sf:.0} IOPS: {:.2}× (target ≥ 1.5×)", sf / sn);
    println!("median 1m write: native {ln:.0} MiB/s, faultfs {lf:.0} MiB/s: {:.0}% (target ≥ 70%)", lf / ln * 100.0);
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is expected.
    let which = std::env::var("POWER_LOSS_BENCH").unwrap_or_default();
    if which != "fio" {
        cycle_times();
    }
    if which != "cycles" {
        fio_overhead();
    }
}
