//! The built binary's `io` contract, as `crashlab bench` calls it. Having
//! an integration test also makes `cargo test --workspace` build the
//! binary itself, which the harness's agent-workload tests upload.

use std::process::Command;

#[test]
fn io_prints_one_json_line_and_fails_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_crashlab-agent");
    let out = Command::new(bin)
        .args(["io", "--profile", "fsync-4k", "--size", "1M", "--seconds", "0.1", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let line = String::from_utf8(out.stdout).unwrap();
    assert!(line.starts_with(r#"{"profile":"fsync-4k","ops":"#) && line.ends_with("}}\n"), "{line}");
    let out = Command::new(bin).args(["io", "--profile", "fsync-4k", "--dir", "/nonexistent/dir"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("crashlab-agent: failed to create"));
}
