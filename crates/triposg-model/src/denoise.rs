//! The classifier-free-guided rectified-flow sampling loop of `TripoSGPipeline.__call__`.

use std::ops::ControlFlow;

use candle_core::{DType, Device, Result, Tensor};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

use crate::dit::TripoSGDiT;
use crate::dit_block::Context;
use crate::scheduler::Schedule;

/// Reported after every step, before the next one starts.
#[derive(Debug, Clone, Copy)]
pub struct StepProgress {
    /// 1-based index of the step just finished.
    pub step: usize,
    pub total: usize,
    pub timestep: f32,
}

/// Why a loop ended early.
#[derive(Debug, thiserror::Error)]
pub enum DenoiseError {
    #[error("cancelled after step {0}")]
    Cancelled(usize),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Initial latents `[batch, tokens, channels]` from a seed: a ChaCha stream of standard normals
/// drawn on the host, so a seed gives the same shape on every device and build.
pub fn initial_noise(
    seed: u64,
    shape: (usize, usize, usize),
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n = shape.0 * shape.1 * shape.2;
    let data: Vec<f32> = (0..n).map(|_| StandardNormal.sample(&mut rng)).collect();
    Tensor::from_vec(data, shape, device)?.to_dtype(dtype)
}

/// Runs the sampling loop from `latents` (the initial noise) and returns the final latents.
///
/// `cond` holds the image tokens `[batch, ctx_tokens, ctx_dim]`; the unconditional branch's are
/// all zeros as upstream's (the DiT then skips what zeros make constant). With `guidance > 1`
/// both branches run as one batch of two and combine as `u + g * (c - u)`; otherwise only the
/// conditional pass runs. `on_step` may stop the loop
/// between steps by returning `ControlFlow::Break(())`; it sees the latents reached so far, as
/// upstream's `callback_on_step_end` does.
pub fn denoise(
    dit: &TripoSGDiT,
    schedule: &Schedule,
    cond: &Tensor,
    latents: Tensor,
    guidance: f32,
    mut on_step: impl FnMut(StepProgress, &Tensor) -> ControlFlow<()>,
) -> std::result::Result<Tensor, DenoiseError> {
    let dtype = latents.dtype();
    let cfg = guidance > 1.0;
    let cond = cond.to_dtype(dtype)?;
    let batch = latents.dim(0)?;
    // The unconditional half of a guided batch attends to zeros, as upstream's.
    let context = Context {
        tokens: &cond,
        zero_rows: if cfg { batch } else { 0 },
    };
    let total = schedule.timesteps.len();
    let mut latents = latents;
    for (i, &t) in schedule.timesteps.iter().enumerate() {
        let velocity = if cfg {
            let input = Tensor::cat(&[&latents, &latents], 0)?;
            let out = dit.forward(&input, &vec![t; 2 * batch], context)?;
            let uncond = out.narrow(0, 0, batch)?;
            let cond = out.narrow(0, batch, batch)?;
            (&uncond + ((cond - &uncond)? * guidance as f64)?)?
        } else {
            dit.forward(&latents, &vec![t; batch], context)?
        };
        // Upstream's scheduler upcasts the sample to f32 for the update, then casts back.
        let dt = (schedule.sigmas[i] - schedule.sigmas[i + 1]) as f64;
        latents = (latents.to_dtype(DType::F32)? + (velocity.to_dtype(DType::F32)? * dt)?)?
            .to_dtype(dtype)?;
        let progress = StepProgress {
            step: i + 1,
            total,
            timestep: t,
        };
        if on_step(progress, &latents).is_break() && i + 1 < total {
            return Err(DenoiseError::Cancelled(i + 1));
        }
    }
    Ok(latents)
}
