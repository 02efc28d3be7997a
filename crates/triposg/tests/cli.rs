//! The `triposg` binary as a user runs it.

use std::path::{Path, PathBuf};
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

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// `generate` on the tiny weights with a sharp surface, fast settings, into `out`.
fn generate_tiny(weights: &Path, out: &Path) -> Command {
    let mut cmd = triposg();
    cmd.args([
        "generate",
        "--num-tokens",
        "16",
        "--device",
        "cpu",
        "--steps",
        "2",
    ])
    .arg("--out")
    .arg(out)
    .arg("--weights")
    .arg(weights);
    cmd
}

/// Every file under `dir`, for "nothing half-written" checks.
/// A run that must fail having written nothing into `out`; returns its stderr.
fn refused(run: &std::process::Output, out: &Path) -> String {
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(!run.status.success(), "{stderr}");
    assert_eq!(files_in(out), Vec::<String>::new(), "{stderr}");
    stderr
}

fn files_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn generate_turns_a_cut_out_photo_into_print_files_and_meshes() {
    let out = tempfile::tempdir().unwrap();
    let summary = out.path().join("summary.json");
    let run = generate_tiny(&fixtures().join("tiny-surface"), out.path())
        .args([
            "--octree-depth",
            "7",
            "--formats",
            "glb,stl,3mf",
            "--candidates",
            "2",
        ])
        .args(["--size", "height:40", "--summary-json"])
        .arg(&summary)
        .arg(fixtures().join("images/qwvfsd_rgba.png"))
        .arg(fixtures().join("images/bad/does-not-exist.png"))
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
        // The print files: one closed solid, 40 mm tall, standing on Z = 0, and its report.
        let stem = out.path().join(format!("qwvfsd_rgba_seed{seed}_print"));
        let stl = triposg_mesh::load(&stem.with_extension("stl")).unwrap();
        assert!(stl.topology().is_closed_manifold(), "seed {seed}");
        let bbox = stl.bbox().unwrap();
        assert!((bbox.max[2] - bbox.min[2] - 40.0).abs() < 0.01, "{bbox:?}");
        assert!(bbox.min[2].abs() < 1e-4, "{bbox:?}");
        let printed = triposg_mesh::load(&stem.with_extension("3mf")).unwrap();
        assert_eq!(
            printed.faces.len(),
            stl.faces.len(),
            "3MF and STL: the same mesh"
        );
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(stem.with_extension("report.json")).unwrap())
                .unwrap();
        assert_eq!(report["watertight"], true, "{report}");
        assert!((report["bbox_mm"][2].as_f64().unwrap() - 40.0).abs() < 0.01);
    }
    let preview = image::open(out.path().join("qwvfsd_rgba_prepared.png")).unwrap();
    assert_eq!(preview.width(), preview.height(), "framed on a square");
    let rows: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 3, "{rows:?}");
    let stages: Vec<&str> = rows[0]["done"]["stage_seconds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s[0].as_str().unwrap())
        .collect();
    assert_eq!(
        stages,
        ["prepare", "encode", "denoise", "decode", "surface", "save", "print"]
    );
    assert!(rows[2]["failed"].as_str().unwrap().contains("cannot read"));
}

#[test]
fn generate_with_broken_weights_says_what_to_do_and_writes_nothing() {
    let image = fixtures().join("images/qwvfsd_rgba.png");
    let broken = tempfile::tempdir().unwrap();
    let copy = |name: &str| {
        let dir = broken.path().join(name);
        for part in std::fs::read_dir(fixtures().join("tiny-surface/TripoSG")).unwrap() {
            let from = part.unwrap().path();
            if from.is_file() {
                continue;
            }
            let to = dir.join("TripoSG").join(from.file_name().unwrap());
            std::fs::create_dir_all(&to).unwrap();
            for file in std::fs::read_dir(&from).unwrap() {
                let file = file.unwrap();
                std::fs::copy(file.path(), to.join(file.file_name())).unwrap();
            }
        }
        dir
    };
    let missing = copy("missing");
    std::fs::remove_file(missing.join("TripoSG/vae/diffusion_pytorch_model.safetensors")).unwrap();
    let corrupt = copy("corrupt");
    let weights = corrupt.join("TripoSG/transformer/diffusion_pytorch_model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    for (weights, expect) in [
        (broken.path().join("nowhere"), "triposg download"),
        (missing, "diffusion_pytorch_model.safetensors"),
        (corrupt, "transformer"),
    ] {
        let out = tempfile::tempdir().unwrap();
        let run = generate_tiny(&weights, out.path())
            .arg(&image)
            .output()
            .unwrap();
        let stderr = refused(&run, out.path());
        assert!(stderr.contains("check-weights"), "{stderr}");
        assert!(stderr.contains(expect), "{expect}: {stderr}");
    }
}

#[test]
fn generate_past_its_memory_limit_stops_before_loading_and_says_what_to_lower() {
    let out = tempfile::tempdir().unwrap();
    let run = generate_tiny(&fixtures().join("tiny-surface"), out.path())
        .args(["--octree-depth", "10", "--memory-limit", "300MiB"])
        .arg(fixtures().join("images/qwvfsd_rgba.png"))
        .output()
        .unwrap();
    let stderr = refused(&run, out.path());
    assert!(
        stderr.contains("--memory-limit is 300.0 MiB") && stderr.contains("lower the octree depth"),
        "{stderr}"
    );
}

#[test]
fn generate_on_an_unknown_device_lists_the_choices() {
    let out = tempfile::tempdir().unwrap();
    let run = triposg()
        .args(["generate", "--device", "tpu:0", "--out"])
        .arg(out.path())
        .arg("--weights")
        .arg(fixtures().join("tiny-surface"))
        .arg(fixtures().join("images/qwvfsd_rgba.png"))
        .output()
        .unwrap();
    let stderr = refused(&run, out.path());
    assert!(
        stderr.contains("cuda:N") && stderr.contains("cpu"),
        "{stderr}"
    );
}

/// Ctrl-C while a shape is being decoded stops the job at its next batch of points: the run
/// fails with "cancelled" and leaves no mesh and no temporary file behind.
#[cfg(unix)]
#[test]
fn generate_stops_cleanly_on_ctrl_c() {
    use std::io::Read;
    use std::process::Stdio;
    let out = tempfile::tempdir().unwrap();
    let mut child = generate_tiny(&fixtures().join("tiny-surface"), out.path())
        .args(["--octree-depth", "10"])
        .arg(fixtures().join("images/qwvfsd_rgba.png"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&seen).contains("Decode") {
        let n = stderr.read(&mut buf).unwrap();
        assert!(n > 0, "{}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    stderr.read_to_end(&mut seen).unwrap();
    let status = child.wait().unwrap();
    let seen = String::from_utf8_lossy(&seen);
    assert!(!status.success(), "{seen}");
    assert!(seen.contains("cancelled"), "{seen}");
    // Only the framed photo (written whole before the job) is left.
    assert_eq!(files_in(out.path()), ["qwvfsd_rgba_prepared.png"], "{seen}");
}
