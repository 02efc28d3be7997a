//! `TripoSGDiTModel`: the rectified-flow transformer that denoises 2048 latent tokens
//! conditioned on DINOv2 image tokens (`transformer/` in the checkpoint).

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::layers::Linear;
use serde::Deserialize;

use crate::dit_block::{Context, DiTBlock, DiTBlockConfig};
use crate::layers::Fp32LayerNorm;

#[derive(Debug, Clone, Deserialize)]
pub struct DiTConfig {
    pub num_attention_heads: usize,
    pub width: usize,
    pub in_channels: usize,
    pub num_layers: usize,
    pub cross_attention_dim: usize,
    #[serde(default)]
    pub use_cross_attention_2: bool,
}

impl DiTConfig {
    /// The released checkpoint's config.
    pub fn triposg() -> Self {
        Self {
            num_attention_heads: 16,
            width: 2048,
            in_channels: 64,
            num_layers: 21,
            cross_attention_dim: 1024,
            use_cross_attention_2: false,
        }
    }
}

/// diffusers `Timesteps(dim, flip_sin_to_cos=False, downscale_freq_shift=0)`: `[sin | cos]` of
/// `t * exp(-ln(10000) * i / (dim/2))`, in f32 as upstream computes it.
fn timestep_features(timesteps: &[f32], dim: usize, device: &Device) -> Result<Tensor> {
    let half = dim / 2;
    let neg_log_period = -(10000f32.ln());
    let freqs: Vec<f32> = (0..half)
        .map(|i| (neg_log_period * i as f32 / half as f32).exp())
        .collect();
    let mut data = Vec::with_capacity(timesteps.len() * dim);
    for &t in timesteps {
        data.extend(freqs.iter().map(|f| (t * f).sin()));
        data.extend(freqs.iter().map(|f| (t * f).cos()));
    }
    Tensor::from_vec(data, (timesteps.len(), dim), device)
}

#[derive(Debug, Clone)]
pub struct TripoSGDiT {
    time_linear_1: Linear,
    time_linear_2: Linear,
    proj_in: Linear,
    blocks: Vec<DiTBlock>,
    norm_out: Fp32LayerNorm,
    proj_out: Linear,
    cfg: DiTConfig,
}

impl TripoSGDiT {
    pub fn new(cfg: &DiTConfig, vb: VarBuilder) -> Result<Self> {
        if cfg.use_cross_attention_2 {
            candle_core::bail!(
                "TripoSG DiT with a second cross-attention (scribble model) is not supported"
            );
        }
        let w = cfg.width;
        let blocks = (0..cfg.num_layers)
            .map(|layer| {
                let block = DiTBlockConfig {
                    dim: w,
                    heads: cfg.num_attention_heads,
                    self_attention: true,
                    cross_attention_dim: Some(cfg.cross_attention_dim),
                    cross_attention_norm: false,
                    qk_norm: true,
                    ff_inner_dim: 4 * w,
                    skip: layer > cfg.num_layers / 2,
                };
                DiTBlock::new(&block, vb.pp(format!("blocks.{layer}")))
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            time_linear_1: crate::layers::linear(w, 4 * w, true, vb.pp("time_proj.linear_1"))?,
            time_linear_2: crate::layers::linear(4 * w, w, true, vb.pp("time_proj.linear_2"))?,
            proj_in: crate::layers::linear(cfg.in_channels, w, true, vb.pp("proj_in"))?,
            blocks,
            norm_out: Fp32LayerNorm::new(w, 1e-5, vb.pp("norm_out"))?,
            proj_out: crate::layers::linear(w, cfg.in_channels, true, vb.pp("proj_out"))?,
            cfg: cfg.clone(),
        })
    }

    pub fn config(&self) -> &DiTConfig {
        &self.cfg
    }

    /// Velocity prediction for `latents` `[batch, tokens, in_channels]` at one timestep per
    /// batch row (0..1000 scale), conditioned on image tokens `[ctx_tokens, ctx_dim]` per
    /// batch row (`context` says which rows' are zeros).
    pub fn forward(&self, latents: &Tensor, timesteps: &[f32], context: Context) -> Result<Tensor> {
        let (b, n, _) = latents.dims3()?;
        if timesteps.len() != b {
            candle_core::bail!("{} timesteps for a batch of {b}", timesteps.len());
        }
        let dtype = latents.dtype();
        let temb =
            timestep_features(timesteps, self.cfg.width, latents.device())?.to_dtype(dtype)?;
        let temb = self
            .time_linear_2
            .forward(&self.time_linear_1.forward(&temb)?.gelu_erf()?)?
            .unsqueeze(1)?;
        // The time embedding rides along as an extra first token.
        let mut xs = Tensor::cat(&[temb, self.proj_in.forward(latents)?], 1)?;
        let half = self.cfg.num_layers / 2;
        let mut skips = Vec::with_capacity(half);
        for (layer, block) in self.blocks.iter().enumerate() {
            let skip = if layer > half { skips.pop() } else { None };
            xs = block.forward(&xs, Some(context), skip.as_ref())?;
            if layer < half {
                skips.push(xs.clone());
            }
        }
        let xs = self.norm_out.forward(&xs)?.narrow(1, 1, n)?;
        self.proj_out.forward(&xs)
    }

    pub fn dtype(&self) -> DType {
        self.proj_in.weight().dtype()
    }
}
