//! The loader against the full-size upstream manifests, and its errors on broken folders.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Device};
use common::{fixtures, tiny_checkpoint};
use serde::Deserialize;
use triposg_model::checkpoint::{Checkpoint, Component};
use triposg_model::dinov2::Dinov2Config;
use triposg_model::dit::DiTConfig;
use triposg_model::vae::VaeConfig;
use triposg_model::ModelError;

#[derive(Deserialize)]
struct Entry {
    shape: Vec<usize>,
    dtype: String,
}

#[derive(Deserialize)]
struct Manifest {
    class_name: String,
    config: serde_json::Value,
    tensors: BTreeMap<String, Entry>,
}

fn manifest(name: &str) -> Manifest {
    let path = fixtures().join("manifests").join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// What the production loader requests for a component whose config.json is the manifest's
/// real config, without reading or allocating any weights.
fn requested(c: Component, m: &Manifest) -> BTreeMap<String, Vec<usize>> {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = Checkpoint::new(dir.path());
    let mut config = m.config.clone();
    config["_class_name"] = m.class_name.clone().into();
    std::fs::create_dir_all(dir.path().join(c.folder())).unwrap();
    std::fs::write(ckpt.config_path(c), config.to_string()).unwrap();
    ckpt.required_tensors(c).unwrap().into_iter().collect()
}

fn expected(m: &Manifest, skip: &[&str]) -> BTreeMap<String, Vec<usize>> {
    assert!(
        m.tensors.values().all(|e| e.dtype == "F32"),
        "hub checkpoints are fp32"
    );
    m.tensors
        .iter()
        .filter(|(k, _)| !skip.iter().any(|s| k.starts_with(s)))
        .map(|(k, e)| (k.clone(), e.shape.clone()))
        .collect()
}

#[test]
fn dit_requests_exactly_the_full_size_checkpoint_tensors() {
    let m = manifest("transformer");
    let got = requested(Component::Transformer, &m);
    assert_eq!(got, expected(&m, &[]));
    assert_eq!(
        got.values()
            .map(|s| s.iter().product::<usize>())
            .sum::<usize>(),
        1_439_556_160
    );
}

#[test]
fn vae_decoder_requests_exactly_the_full_size_decoder_tensors() {
    let m = manifest("vae");
    let got = requested(Component::Vae, &m);
    // Generation never encodes a mesh: the encoder and its `quant` head stay on disk.
    assert_eq!(got, expected(&m, &["encoder.", "quant."]));
}

#[test]
fn dinov2_requests_exactly_the_dinov2_large_tensors() {
    let m = manifest("image_encoder_dinov2");
    let got = requested(Component::ImageEncoder, &m);
    assert_eq!(got, expected(&m, &[]));
}

#[test]
fn built_in_configs_are_the_released_ones() {
    let dit: DiTConfig = serde_json::from_value(manifest("transformer").config).unwrap();
    assert_eq!(format!("{dit:?}"), format!("{:?}", DiTConfig::triposg()));
    let vae: VaeConfig = serde_json::from_value(manifest("vae").config).unwrap();
    assert_eq!(format!("{vae:?}"), format!("{:?}", VaeConfig::triposg()));
    let dino: Dinov2Config =
        serde_json::from_value(manifest("image_encoder_dinov2").config).unwrap();
    assert_eq!(format!("{dino:?}"), format!("{:?}", Dinov2Config::large()));
}

/// A writable copy of the tiny checkpoint to break.
fn broken_copy() -> (tempfile::TempDir, Checkpoint) {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(tiny_checkpoint().root(), dir.path());
    let ckpt = Checkpoint::new(dir.path());
    (dir, ckpt)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn message(r: Result<impl std::fmt::Debug, ModelError>) -> String {
    r.expect_err("a broken checkpoint must not load")
        .to_string()
}

#[test]
fn a_missing_weights_file_is_named_with_the_fix() {
    let (_dir, ckpt) = broken_copy();
    std::fs::remove_file(ckpt.weights_path(Component::Vae)).unwrap();
    let msg = message(ckpt.load_vae(DType::F32, &Device::Cpu));
    assert!(
        msg.contains("vae/diffusion_pytorch_model.safetensors"),
        "{msg}"
    );
    assert!(msg.contains("triposg download"), "{msg}");
}

#[test]
fn a_truncated_weights_file_is_reported_not_a_panic() {
    let (_dir, ckpt) = broken_copy();
    let path = ckpt.weights_path(Component::Transformer);
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let msg = message(ckpt.load_dit(DType::F32, &Device::Cpu));
    assert!(
        msg.contains("truncated") && msg.contains("transformer"),
        "{msg}"
    );
}

#[test]
fn a_missing_tensor_is_named() {
    let (_dir, ckpt) = broken_copy();
    let path = ckpt.weights_path(Component::ImageEncoder);
    let mut tensors = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    tensors.remove("encoder.layer.1.mlp.fc2.weight").unwrap();
    candle_core::safetensors::save(&tensors, &path).unwrap();
    let msg = message(ckpt.load_dinov2(DType::F32, &Device::Cpu));
    assert!(msg.contains("encoder.layer.1.mlp.fc2.weight"), "{msg}");
    assert!(
        msg.contains("image_encoder_dinov2/model.safetensors"),
        "{msg}"
    );
}

#[test]
fn a_config_that_does_not_match_the_weights_says_so() {
    let (_dir, ckpt) = broken_copy();
    let path = ckpt.config_path(Component::Transformer);
    let cfg = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, cfg.replace("\"width\": 64", "\"width\": 128")).unwrap();
    let msg = message(ckpt.load_dit(DType::F32, &Device::Cpu));
    assert!(msg.contains("do not belong together"), "{msg}");
}

#[test]
fn another_model_in_the_folder_is_refused() {
    let (_dir, ckpt) = broken_copy();
    std::fs::copy(
        ckpt.config_path(Component::Transformer),
        ckpt.config_path(Component::Vae),
    )
    .unwrap();
    let msg = message(ckpt.load_vae(DType::F32, &Device::Cpu));
    assert!(
        msg.contains("TripoSGDiTModel") && msg.contains("another model"),
        "{msg}"
    );
    std::fs::write(ckpt.config_path(Component::Vae), "{ not json").unwrap();
    let msg = message(ckpt.load_vae(DType::F32, &Device::Cpu));
    assert!(msg.contains("bad config"), "{msg}");
}

#[test]
fn verify_passes_the_tiny_checkpoint_and_names_each_problem() {
    let ckpt = tiny_checkpoint();
    for c in Component::ALL {
        let check = ckpt.verify(c).unwrap();
        assert!(check.problems.is_empty(), "{c:?}: {:?}", check.problems);
        assert!(check.tensors > 10 && check.parameters > 1000);
    }
    let (_dir, ckpt) = broken_copy();
    let path = ckpt.weights_path(Component::Transformer);
    let mut tensors = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    tensors.remove("blocks.4.skip_linear.weight").unwrap();
    let wrong = tensors["proj_in.bias"].narrow(0, 0, 10).unwrap();
    tensors.insert("proj_in.bias".into(), wrong);
    candle_core::safetensors::save(&tensors, &path).unwrap();
    let check = ckpt.verify(Component::Transformer).unwrap();
    assert_eq!(
        check.problems,
        vec![
            "missing tensor `blocks.4.skip_linear.weight`".to_string(),
            "`proj_in.bias` has shape [10], expected [64]".to_string(),
        ]
    );
}
