//! The `triposg` binary as a user runs it.

use std::path::PathBuf;
use std::process::Command;

fn triposg() -> Command {
    Command::new(env!("CARGO_BIN_EXE_triposg"))
}

fn tiny_weights() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny")
}

#[test]
fn check_weights_accepts_a_complete_folder() {
    let out = triposg()
        .args(["check-weights", "--weights"])
        .arg(tiny_weights())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert_eq!(stdout.matches("ok ").count(), 3, "{stdout}");
}

#[test]
fn check_weights_fails_on_an_empty_folder_and_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let out = triposg()
        .arg("check-weights")
        .env("TRIPOSG_WEIGHTS", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains("BROKEN  transformer"), "{stdout}");
    assert!(stdout.contains("triposg download"), "{stdout}");
}

#[test]
fn bench_on_a_build_without_cuda_explains_the_device_error() {
    if cfg!(feature = "cuda") {
        return;
    }
    let out = triposg()
        .args(["bench", "--inputs", "x", "--out", "y", "--device", "cuda"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("--features cuda"), "{stderr}");
}
