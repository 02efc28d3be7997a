//! Each ported module and the sampling loop against the upstream code on the tiny fixtures.

mod common;

use std::ops::ControlFlow;

use candle_core::{DType, Device, IndexOp, Tensor};
use common::{assert_close, golden, tiny_checkpoint};
use triposg_model::denoise::{denoise, DenoiseError};
use triposg_model::dit_block::Context;

#[test]
fn dinov2_matches_transformers_at_every_input_size() {
    let dino = tiny_checkpoint()
        .load_dinov2(DType::F32, &Device::Cpu)
        .unwrap();
    let io = golden("dinov2");
    for size in ["224", "518", "98x154"] {
        let ours = dino.forward(&io[&format!("pixels_{size}")]).unwrap();
        assert_close(
            &format!("dinov2 {size}"),
            &ours,
            &io[&format!("hidden_{size}")],
        );
    }
}

#[test]
fn dit_matches_upstream() {
    let dit = tiny_checkpoint()
        .load_dit(DType::F32, &Device::Cpu)
        .unwrap();
    let io = golden("dit");
    let t = io["timesteps"].to_vec1::<f32>().unwrap();
    let ours = dit
        .forward(&io["latents"], &t, Context::new(&io["context"]))
        .unwrap();
    assert_close("dit", &ours, &io["output"]);
}

#[test]
fn scheduler_matches_upstream() {
    let io = golden("scheduler");
    for shift in [1.0, 3.0] {
        let cfg = triposg_model::scheduler::SchedulerConfig {
            shift,
            ..Default::default()
        };
        for steps in [1, 7, 50] {
            let s = cfg.schedule(steps).unwrap();
            let key = |what: &str| format!("{what}_shift{shift}_steps{steps}");
            // The schedule is a handful of scalars computed the same way: exact match.
            assert_eq!(s.timesteps, io[&key("timesteps")].to_vec1::<f32>().unwrap());
            assert_eq!(s.sigmas, io[&key("sigmas")].to_vec1::<f32>().unwrap());
        }
    }
    let cfg = tiny_checkpoint().scheduler_config().unwrap();
    assert!(cfg.schedule(0).is_err(), "zero steps must be refused");
}

#[test]
fn vae_kv_tokens_and_sdf_match_upstream() {
    let vae = tiny_checkpoint()
        .load_vae(DType::F32, &Device::Cpu)
        .unwrap();
    let io = golden("vae");
    let kv = vae.kv_tokens(&io["latents"]).unwrap();
    assert_close("vae kv tokens", &kv, &io["kv_tokens"]);
    let sdf = vae.query(&kv, &io["points"]).unwrap();
    assert_close("vae sdf", &sdf, &io["sdf"]);
    // Queries are independent of each other: any split of the points gives the same values.
    let split = Tensor::cat(
        &[
            vae.query(&kv, &io["points"].i((.., ..123)).unwrap())
                .unwrap(),
            vae.query(&kv, &io["points"].i((.., 123..)).unwrap())
                .unwrap(),
        ],
        1,
    )
    .unwrap();
    assert_close("vae sdf in two chunks", &split, &io["sdf"]);
}

fn run_loop(guidance: f32) {
    let ckpt = tiny_checkpoint();
    let (dev, dt) = (Device::Cpu, DType::F32);
    let dino = ckpt.load_dinov2(dt, &dev).unwrap();
    let dit = ckpt.load_dit(dt, &dev).unwrap();
    let io = golden("denoise");
    let cond = dino.forward(&io["pixels"]).unwrap();
    assert_close("loop condition tokens", &cond, &io["cond"]);
    let schedule = ckpt.scheduler_config().unwrap().schedule(4).unwrap();
    let trace = &io[&format!("trace_g{guidance}")];
    let mut steps = Vec::new();
    let out = denoise(
        &dit,
        &schedule,
        &cond,
        io["noise"].clone(),
        guidance,
        |p, latents| {
            let what = format!("loop g={guidance} step {}", p.step);
            assert_close(&what, latents, &trace.i(p.step - 1).unwrap());
            steps.push(p.step);
            ControlFlow::Continue(())
        },
    )
    .unwrap();
    assert_eq!(steps, vec![1, 2, 3, 4], "one callback per step");
    assert_close("loop final latents", &out, &trace.i(3).unwrap());
}

#[test]
fn denoise_loop_with_guidance_matches_upstream_pipeline_at_every_step() {
    run_loop(7.0);
}

#[test]
fn denoise_loop_without_guidance_matches_upstream_pipeline_at_every_step() {
    run_loop(1.0);
}

#[test]
fn the_step_callback_cancels_between_steps() {
    let ckpt = tiny_checkpoint();
    let dit = ckpt.load_dit(DType::F32, &Device::Cpu).unwrap();
    let io = golden("denoise");
    let schedule = ckpt.scheduler_config().unwrap().schedule(4).unwrap();
    let mut seen = Vec::new();
    let r = denoise(
        &dit,
        &schedule,
        &io["cond"],
        io["noise"].clone(),
        7.0,
        |p, _| {
            seen.push(p.step);
            if p.step == 2 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        },
    );
    assert!(matches!(r, Err(DenoiseError::Cancelled(2))), "got {r:?}");
    assert_eq!(seen, vec![1, 2], "no step runs after a cancel");
}

#[test]
fn initial_noise_is_reproducible_per_seed() {
    use triposg_model::denoise::initial_noise;
    let a = initial_noise(42, (1, 2048, 64), DType::F32, &Device::Cpu).unwrap();
    let b = initial_noise(42, (1, 2048, 64), DType::F32, &Device::Cpu).unwrap();
    let c = initial_noise(43, (1, 2048, 64), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(a.to_vec3::<f32>().unwrap(), b.to_vec3::<f32>().unwrap());
    assert!(
        common::rel_l2(&a, &c) > 1.0,
        "another seed gives other noise"
    );
    // Standard normal: mean ~0, variance ~1 over 131k samples.
    let mean = a.mean_all().unwrap().to_scalar::<f32>().unwrap();
    let var = a
        .sqr()
        .unwrap()
        .mean_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(
        mean.abs() < 0.02 && (var - 1.0).abs() < 0.02,
        "mean {mean}, var {var}"
    );
}
