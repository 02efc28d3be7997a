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

#[test]
fn generate_turns_a_cut_out_photo_into_mesh_files() {
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    let out = tempfile::tempdir().unwrap();
    let run = triposg()
        .args([
            "generate",
            "--num-tokens",
            "16",
            "--device",
            "cpu",
            "--steps",
            "2",
            "--octree-depth",
            "7",
        ])
        .args(["--formats", "glb,stl,3mf", "--candidates", "2", "--out"])
        .arg(out.path())
        .arg("--weights")
        .arg(fixtures.join("tiny-surface"))
        .arg(fixtures.join("images/qwvfsd_rgba.png"))
        .arg(fixtures.join("images/bad/does-not-exist.png"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    // One image is missing: the run reports it and fails, after finishing the others.
    assert!(!run.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("does-not-exist.png") && stdout.contains("FAILED"),
        "{stdout}"
    );
    for seed in [42, 43] {
        for ext in ["glb", "stl", "3mf"] {
            let path = out.path().join(format!("qwvfsd_rgba_seed{seed}.{ext}"));
            let mesh =
                triposg_mesh::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(!mesh.faces.is_empty(), "{}", path.display());
        }
    }
    let preview = image::open(out.path().join("qwvfsd_rgba_prepared.png")).unwrap();
    assert_eq!(preview.width(), preview.height(), "framed on a square");
}
