//! BriaRMBG against upstream `briarmbg.py` (fixtures by `tools/golden/make_image_fixtures.py`).

mod common;

use std::collections::{BTreeMap, HashMap};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use common::{assert_close, fixtures, golden};
use serde::Deserialize;
use triposg_model::rmbg::{BriaRmbg, RmbgConfig};
use triposg_model::weights::ShapeRecorder;
use triposg_model::ModelError;

fn requested() -> Vec<(String, Vec<usize>)> {
    let recorder = ShapeRecorder::new();
    let vb = VarBuilder::from_backend(Box::new(recorder.clone()), DType::F32, Device::Cpu);
    BriaRmbg::new(&RmbgConfig::default(), vb).unwrap();
    recorder.requested()
}

#[derive(Deserialize)]
struct Entry {
    shape: Vec<usize>,
}

#[derive(Deserialize)]
struct Manifest {
    tensors: BTreeMap<String, Entry>,
}

#[test]
fn requests_exactly_the_upstream_state_dict() {
    let path = fixtures().join("manifests/rmbg.json");
    let manifest: Manifest = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    // BatchNorm's step counter is training state the eval-mode network never reads.
    let expected: Vec<_> = manifest
        .tensors
        .into_iter()
        .filter(|(k, _)| !k.ends_with("num_batches_tracked"))
        .map(|(k, e)| (k, e.shape))
        .collect();
    assert_eq!(requested(), expected);
}

/// The same formula as `formula_weight` in make_image_fixtures.py.
fn formula_weights() -> HashMap<String, Tensor> {
    requested()
        .into_iter()
        .enumerate()
        .map(|(index, (name, shape))| {
            let n: usize = shape.iter().product();
            let fan_in: usize = shape[1..].iter().product();
            let (scale, offset) = if name.ends_with("running_var") {
                (0.5, 0.75)
            } else if name.ends_with("bn_s1.weight") {
                (0.2, 1.0)
            } else if name.ends_with("weight") {
                ((4.0 / fan_in as f64).sqrt(), 0.0)
            } else {
                (0.1, 0.0)
            };
            let values: Vec<f32> = (0..n)
                .map(|i| {
                    let v = (i as f64 * 12.9898 + index as f64 * 78.233).sin();
                    (offset + scale * v) as f32
                })
                .collect();
            (name, Tensor::from_vec(values, shape, &Device::Cpu).unwrap())
        })
        .collect()
}

/// Random-weight side maps sit near sigmoid(0) = 0.5, where a relative error of the
/// probabilities would hide any difference: compare the distance from 0.5 (unlike logits,
/// well-conditioned where f32 probabilities saturate near 1).
fn centred(p: &Tensor) -> Tensor {
    (p - 0.5).unwrap()
}

/// ~100 conv layers of random weights amplify rounding: upstream's own fp32 output differs from
/// its fp64 output by up to 7.2e-5 (side1 at 72x100), and the port by 7.8e-5, both under the
/// 1e-4 bound; a wrong pooling, upsampling or concat order gives errors of order 1.
#[test]
fn side_outputs_match_upstream() {
    let vb = VarBuilder::from_tensors(formula_weights(), DType::F32, &Device::Cpu);
    let net = BriaRmbg::new(&RmbgConfig::default(), vb).unwrap();
    let golden = golden("rmbg");
    for size in ["72x100", "64x64"] {
        let sides = net.forward(&golden[&format!("input_{size}")]).unwrap();
        assert_eq!(sides.len(), 6);
        for (i, ours) in sides.iter().enumerate() {
            let name = format!("side{}_{size}", i + 1);
            assert_close(&name, &centred(ours), &centred(&golden[&name]));
        }
    }
}

#[test]
fn missing_weights_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"in_ch": 3, "out_ch": 1}"#,
    )
    .unwrap();
    match BriaRmbg::load(dir.path(), DType::F32, &Device::Cpu) {
        Err(ModelError::MissingFile { path }) => assert!(path.ends_with("model.safetensors")),
        other => panic!("expected MissingFile, got {:?}", other.map(|_| ())),
    }
}
