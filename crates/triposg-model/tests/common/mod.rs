//! Helpers for tests against the fixtures written by `tools/golden` (upstream PyTorch, fp32).

#![allow(dead_code)] // each test binary uses a different subset

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{Device, Tensor};
use triposg_model::checkpoint::Checkpoint;

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

pub fn tiny_checkpoint() -> Checkpoint {
    Checkpoint::new(fixtures().join("tiny/TripoSG"))
}

pub fn golden(name: &str) -> HashMap<String, Tensor> {
    let path = fixtures()
        .join("golden")
        .join(format!("{name}.safetensors"));
    candle_core::safetensors::load(&path, &Device::Cpu)
        .unwrap_or_else(|e| panic!("golden fixture {}: {e}", path.display()))
}

/// ||ours - theirs|| / ||theirs||: one number that is scale-free and catches any formula
/// change, unlike an element-wise tolerance that tiny values can slip under.
pub fn rel_l2(ours: &Tensor, theirs: &Tensor) -> f32 {
    assert_eq!(ours.dims(), theirs.dims(), "shape differs from upstream");
    let diff = (ours - theirs).unwrap().sqr().unwrap().sum_all().unwrap();
    let norm = theirs.sqr().unwrap().sum_all().unwrap();
    (diff.to_scalar::<f32>().unwrap() / norm.to_scalar::<f32>().unwrap()).sqrt()
}

/// fp32 on CPU differs from PyTorch only in summation order (~1e-7 per op); through a few
/// dozen layers that stays far below 1e-4, while any changed formula (a swapped concat, a
/// missing norm, another head split) moves the result by 1e-2 or more.
pub const TOL: f32 = 1e-4;

pub fn assert_close(what: &str, ours: &Tensor, theirs: &Tensor) {
    let err = rel_l2(ours, theirs);
    assert!(err < TOL, "{what}: relative L2 error {err:e} >= {TOL:e}");
    eprintln!("{what}: relative L2 error {err:e}");
}
