//! The whole shape job on the tiny upstream-made checkpoint, on CPU.

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use triposg_core::{
    generate_shape, Cancel, Event, JobError, Models, Placement, ShapeParams, Stage,
};

fn tiny() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny")
}

/// The tiny checkpoint with its VAE output layer shifted and sharpened so the SDF has a
/// surface (see tools/golden/make_fixtures.py, `tiny_with_a_surface`).
fn models_with_a_surface() -> Models {
    let weights = tiny().join("../tiny-surface");
    Models::load(&weights, &Device::Cpu, DType::F32, Placement::Device).unwrap()
}

fn models() -> Models {
    Models::load(&tiny(), &Device::Cpu, DType::F32, Placement::Device).unwrap()
}

fn pixels() -> Tensor {
    Tensor::randn(0f32, 1.0, (1, 3, 224, 224), &Device::Cpu).unwrap()
}

fn params(seed: u64) -> ShapeParams {
    ShapeParams {
        steps: 3,
        seed,
        num_tokens: 16,
        octree_depth: 7,
        ..Default::default()
    }
}

#[test]
fn a_job_runs_every_stage_in_order_is_reproducible_and_decimates() {
    let (models, pixels) = (models_with_a_surface(), pixels());
    let mut events = Vec::new();
    let mesh = generate_shape(&models, &pixels, &params(7), &Cancel::new(), |e| {
        events.push(e)
    })
    .expect("the shifted tiny model yields a surface");
    let started: Vec<Stage> = events
        .iter()
        .filter_map(|e| match e {
            Event::StageStarted(s) => Some(*s),
            _ => None,
        })
        .collect();
    assert_eq!(
        started,
        [Stage::Encode, Stage::Denoise, Stage::Decode, Stage::Surface]
    );
    let steps: Vec<(usize, usize)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Progress {
                stage: Stage::Denoise,
                done,
                total,
            } => Some((*done, *total)),
            _ => None,
        })
        .collect();
    assert_eq!(steps, [(1, 3), (2, 3), (3, 3)]);
    let decoded = events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::Progress {
                    stage: Stage::Decode,
                    ..
                }
            )
        })
        .count();
    assert!(
        decoded >= 3,
        "coarse grid and both refinements decode in batches"
    );

    assert!(!mesh.faces.is_empty());
    let bbox = mesh.bbox().unwrap();
    assert!(bbox.min.iter().chain(&bbox.max).all(|c| c.abs() <= 1.005));
    let again = generate_shape(&models, &pixels, &params(7), &Cancel::new(), |_| {}).unwrap();
    assert_eq!(mesh.vertices, again.vertices, "same seed, same mesh");
    let other = generate_shape(&models, &pixels, &params(8), &Cancel::new(), |_| {}).unwrap();
    assert_ne!(mesh.vertices, other.vertices, "another seed, another mesh");

    let target = mesh.faces.len() / 4;
    let p = ShapeParams {
        max_faces: Some(target),
        ..params(7)
    };
    let small = generate_shape(&models, &pixels, &p, &Cancel::new(), |_| {}).unwrap();
    assert!(
        small.faces.len() <= target,
        "{} > {target}",
        small.faces.len()
    );
}

#[test]
fn cancelling_during_sampling_stops_before_decoding() {
    let (models, pixels) = (models(), pixels());
    let cancel = Cancel::new();
    let mut stages = Vec::new();
    let r = generate_shape(&models, &pixels, &params(7), &cancel, |e| {
        if let Event::Progress {
            stage: Stage::Denoise,
            done: 1,
            ..
        } = e
        {
            cancel.cancel();
        }
        if let Event::StageStarted(s) = e {
            stages.push(s);
        }
    });
    assert!(matches!(r, Err(JobError::Cancelled)), "{r:?}");
    assert_eq!(stages, [Stage::Encode, Stage::Denoise]);
}

#[test]
fn a_model_without_a_surface_says_so() {
    let r = generate_shape(&models(), &pixels(), &params(7), &Cancel::new(), |_| {});
    assert!(matches!(r, Err(JobError::NoSurface)), "{r:?}");
}

#[test]
fn out_of_range_parameters_are_refused_before_any_work() {
    let (models, pixels) = (models(), pixels());
    for bad in [
        ShapeParams {
            steps: 0,
            ..params(1)
        },
        ShapeParams {
            guidance: f32::NAN,
            ..params(1)
        },
        ShapeParams {
            octree_depth: 12,
            ..params(1)
        },
        ShapeParams {
            max_faces: Some(0),
            ..params(1)
        },
    ] {
        let mut events = 0;
        let r = generate_shape(&models, &pixels, &bad, &Cancel::new(), |_| events += 1);
        assert!(
            matches!(r, Err(JobError::InvalidParams(_))),
            "{bad:?}: {r:?}"
        );
        assert_eq!(events, 0);
    }
}

/// Models offloaded to host memory are rebuilt on the device for each stage from the tensors
/// read at load: every tensor must be there, with the same values, so the mesh is the same.
#[test]
fn offloaded_models_make_the_same_mesh_as_resident_ones() {
    let weights = tiny().join("../tiny-surface");
    let pixels = pixels();
    let mesh = |placement| {
        let models = Models::load(&weights, &Device::Cpu, DType::F32, placement).unwrap();
        generate_shape(&models, &pixels, &params(3), &Cancel::new(), |_| {}).unwrap()
    };
    let (resident, offloaded) = (mesh(Placement::Device), mesh(Placement::Offload));
    assert!(!resident.faces.is_empty());
    assert_eq!(resident.faces, offloaded.faces);
    assert_eq!(resident.vertices, offloaded.vertices);
}
