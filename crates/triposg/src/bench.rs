//! `triposg bench`: runs each model stage on given inputs, records outputs for comparison with
//! the upstream reference, and times each stage (median of repeats, device synchronised).
//!
//! The device-side script `tools/gpu/compare.py` writes full-size random weights and inputs,
//! runs upstream PyTorch on them, then this command, and prints both side by side.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use triposg_model::checkpoint::Checkpoint;
use triposg_model::denoise::denoise;
use triposg_model::rmbg::BriaRmbg;
use triposg_model::vae::TripoSGVae;

/// Times stages on one device. With `profile` on, each timed stage runs once more inside a CUDA
/// profiler range, so `ncu --profile-from-start off` traces exactly one call of each stage.
struct Timer<'a> {
    device: &'a Device,
    profile: bool,
}

impl Timer<'_> {
    fn median_ms(&self, reps: usize, mut f: impl FnMut() -> Result<Tensor>) -> Result<f64> {
        f()?;
        self.device.synchronize()?;
        let mut times = Vec::with_capacity(reps);
        for _ in 0..reps {
            let start = Instant::now();
            f()?;
            self.device.synchronize()?;
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
        if self.profile {
            profiler_range(self.device, f)?;
        }
        times.sort_by(f64::total_cmp);
        Ok(times[reps / 2])
    }
}

#[cfg(feature = "cuda")]
fn profiler_range(device: &Device, mut f: impl FnMut() -> Result<Tensor>) -> Result<()> {
    use candle_core::cuda_backend::cudarc::driver::sys;
    device.synchronize()?;
    // SAFETY: plain driver calls without arguments; the context is current (candle made it).
    unsafe { sys::cuProfilerStart() }.result()?;
    f()?;
    device.synchronize()?;
    unsafe { sys::cuProfilerStop() }.result()?;
    Ok(())
}

#[cfg(not(feature = "cuda"))]
fn profiler_range(_: &Device, _: impl FnMut() -> Result<Tensor>) -> Result<()> {
    anyhow::bail!("--profile needs a CUDA build (cargo build --features cuda)")
}

/// Stages `triposg bench` can run; a subset keeps a profiler's trace to the part of interest.
pub const STAGES: [&str; 5] = ["dino", "dit", "denoise", "vae", "rmbg"];

type Timings = Vec<(&'static str, f64)>;

pub fn run(
    weights: &Path,
    inputs: &Path,
    out: &Path,
    device: &Device,
    dtype: DType,
    stages: &[String],
    profile: bool,
) -> Result<()> {
    let timer = Timer { device, profile };
    if let Some(bad) = stages.iter().find(|s| !STAGES.contains(&s.as_str())) {
        anyhow::bail!(
            "unknown bench stage `{bad}`: choose from {}",
            STAGES.join(", ")
        );
    }
    let wanted = |stage: &str| stages.iter().any(|s| s == stage);
    let ckpt = Checkpoint::new(weights.join("TripoSG"));
    let load_start = Instant::now();
    let dino = ckpt.load_dinov2(dtype, device)?;
    let dit = ckpt.load_dit(dtype, device)?;
    let vae = ckpt.load_vae(dtype, device)?;
    device.synchronize()?;
    let load_ms = load_start.elapsed().as_secs_f64() * 1e3;
    let io = candle_core::safetensors::load(inputs, device)
        .with_context(|| format!("reading bench inputs {}", inputs.display()))?;
    let get = |k: &str| -> Result<Tensor> {
        Ok(io
            .get(k)
            .with_context(|| format!("bench input `{k}` missing"))?
            .to_dtype(dtype)?)
    };

    let mut outputs: HashMap<String, Tensor> = HashMap::new();
    let mut timings: Timings = vec![("load_ms", load_ms)];

    let pixels = get("pixels")?;
    let cond = dino.forward(&pixels)?;
    if wanted("dino") {
        timings.push((
            "dino_ms",
            timer.median_ms(5, || Ok(dino.forward(&pixels)?))?,
        ));
        outputs.insert("dino".into(), cond.clone());
    }
    if wanted("dit") {
        let (lat2, cond2) = (get("latents2")?, get("cond2")?);
        let t2: Vec<f32> = io["timesteps2"].to_vec1()?;
        // compare.py's `cond2` is a guided batch, [zeros, image tokens]: step it as the loop
        // does, the first item attending to zeros.
        let guided = triposg_model::dit_block::Context {
            tokens: &cond2.narrow(0, 1, 1)?,
            zero_rows: 1,
        };
        let step = || Ok(dit.forward(&lat2, &t2, guided)?);
        outputs.insert("dit_step".into(), step()?);
        timings.push(("dit_step_ms_b2", timer.median_ms(5, step)?));
    }
    if wanted("denoise") {
        let schedule = ckpt
            .scheduler_config()?
            .schedule(50)
            .map_err(anyhow::Error::msg)?;
        let noise = get("noise")?;
        let loop_once = || -> Result<Tensor> {
            Ok(denoise(
                &dit,
                &schedule,
                &cond,
                noise.clone(),
                7.0,
                |_, _| ControlFlow::Continue(()),
            )?)
        };
        outputs.insert("denoise50".into(), loop_once()?);
        timings.push(("denoise50_ms", timer.median_ms(3, loop_once)?));
    }
    if wanted("vae") {
        let kv = vae_stage(&vae, &io, &get("vae_latents")?, &timer, &mut timings)?;
        outputs.extend(kv);
    }

    if wanted("rmbg") {
        // Upstream runs BriaRMBG in f32 whatever the rest uses; so do we.
        let rmbg = BriaRmbg::load(&weights.join("RMBG-1.4"), DType::F32, device)?;
        let pixels = io
            .get("rmbg_pixels")
            .context("bench input `rmbg_pixels` missing")?
            .to_dtype(DType::F32)?;
        let mask = || Ok(rmbg.forward(&pixels)?.swap_remove(0));
        outputs.insert("rmbg".into(), mask()?);
        timings.push(("rmbg_ms_fp32", timer.median_ms(5, mask)?));
    }

    let outputs: HashMap<String, Tensor> = outputs
        .into_iter()
        .map(|(k, v)| Ok((k, v.to_dtype(DType::F32)?.to_device(&Device::Cpu)?)))
        .collect::<Result<_>>()?;
    candle_core::safetensors::save(&outputs, out)?;
    let json: Vec<String> = timings
        .iter()
        .map(|(k, v)| format!("\"{k}\": {v:.3}"))
        .collect();
    println!("{{{}}}", json.join(", "));
    Ok(())
}

/// Key/values once, then SDF queries at the input points: 10k in one call, 200k in 50k chunks.
fn vae_stage(
    vae: &TripoSGVae,
    io: &HashMap<String, Tensor>,
    z: &Tensor,
    timer: &Timer,
    timings: &mut Timings,
) -> Result<HashMap<String, Tensor>> {
    let kv = vae.kv_tokens(z)?;
    timings.push(("vae_kv_ms", timer.median_ms(5, || Ok(vae.kv_tokens(z)?))?));
    let q10k = io["queries10k"].to_device(timer.device)?;
    let sdf10k = vae.query(&kv, &q10k)?;
    timings.push((
        "vae_query_only_10k_ms",
        timer.median_ms(5, || Ok(vae.query(&kv, &q10k)?))?,
    ));
    let q200k = io["queries200k"].to_device(timer.device)?;
    let chunked = || -> Result<Tensor> {
        let parts = (0..4)
            .map(|i| vae.query(&kv, &q200k.narrow(1, i * 50_000, 50_000)?))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Tensor::cat(&parts, 1)?)
    };
    timings.push((
        "vae_query_only_200k_ms_chunk50k",
        timer.median_ms(3, chunked)?,
    ));
    Ok(HashMap::from([
        ("vae_kv".to_string(), kv),
        ("sdf10k".to_string(), sdf10k),
    ]))
}
