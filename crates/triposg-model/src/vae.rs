//! The decoder half of `TripoSGVAEModel` (`vae/` in the checkpoint): latents -> key/value
//! tokens (16 self-attention blocks, computed once per shape) -> signed distance at any
//! number of query points (one cross-attention block). The encoder is not needed to generate.

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::layers::Linear;
use serde::Deserialize;

use crate::dit_block::{Context, DiTBlock, DiTBlockConfig};
use crate::layers::Fp32LayerNorm;

#[derive(Debug, Clone, Deserialize)]
pub struct VaeConfig {
    #[serde(default = "three")]
    pub in_channels: usize,
    pub latent_channels: usize,
    pub num_attention_heads: usize,
    pub width_decoder: usize,
    pub num_layers_decoder: usize,
    #[serde(default = "frequency")]
    pub embedding_type: String,
    pub embed_frequency: usize,
    #[serde(default)]
    pub embed_include_pi: bool,
}

fn three() -> usize {
    3
}

fn frequency() -> String {
    "frequency".into()
}

impl VaeConfig {
    /// The released checkpoint's config.
    pub fn triposg() -> Self {
        Self {
            in_channels: 3,
            latent_channels: 64,
            num_attention_heads: 8,
            width_decoder: 1024,
            num_layers_decoder: 16,
            embedding_type: frequency(),
            embed_frequency: 8,
            embed_include_pi: false,
        }
    }

    fn embed_dim(&self) -> usize {
        self.in_channels * (2 * self.embed_frequency + 1)
    }
}

/// `FrequencyPositionalEmbedding(logspace=True, include_input=True)`: for each coordinate `x`,
/// `[x..., sin(x*f)..., cos(x*f)...]` with `f = 2^i` (times pi if configured), frequencies
/// varying fastest within each coordinate as in upstream's `view(*x.shape[:-1], -1)`.
fn frequency_embedding(points: &Tensor, num_freqs: usize, include_pi: bool) -> Result<Tensor> {
    let scale = if include_pi {
        std::f32::consts::PI
    } else {
        1.0
    };
    let freqs: Vec<f32> = (0..num_freqs)
        .map(|i| 2f32.powi(i as i32) * scale)
        .collect();
    let freqs = Tensor::new(freqs.as_slice(), points.device())?;
    let points = points.to_dtype(DType::F32)?;
    let (b, p, c) = points.dims3()?;
    let angles = points
        .unsqueeze(3)?
        .broadcast_mul(&freqs.reshape((1, 1, 1, num_freqs))?)?
        .reshape((b, p, c * num_freqs))?;
    Tensor::cat(&[points, angles.sin()?, angles.cos()?], 2)
}

#[derive(Debug, Clone)]
pub struct TripoSGVae {
    post_quant: Linear,
    self_attn_blocks: Vec<DiTBlock>,
    cross_attn_block: DiTBlock,
    proj_query: Linear,
    norm_out: Fp32LayerNorm,
    proj_out: Linear,
    cfg: VaeConfig,
}

impl TripoSGVae {
    pub fn new(cfg: &VaeConfig, vb: VarBuilder) -> Result<Self> {
        if cfg.embedding_type != "frequency" {
            candle_core::bail!(
                "VAE embedding type `{}` is not supported",
                cfg.embedding_type
            );
        }
        let w = cfg.width_decoder;
        let block = |cross: bool| DiTBlockConfig {
            dim: w,
            heads: cfg.num_attention_heads,
            self_attention: !cross,
            cross_attention_dim: cross.then_some(w),
            cross_attention_norm: true,
            qk_norm: false,
            ff_inner_dim: 4 * w,
            skip: false,
        };
        let dec = vb.pp("decoder");
        let self_attn_blocks = (0..cfg.num_layers_decoder)
            .map(|i| DiTBlock::new(&block(false), dec.pp(format!("blocks.{i}"))))
            .collect::<Result<_>>()?;
        let cross_attn_block = DiTBlock::new(
            &block(true),
            dec.pp(format!("blocks.{}", cfg.num_layers_decoder)),
        )?;
        Ok(Self {
            post_quant: crate::layers::linear(cfg.latent_channels, w, true, vb.pp("post_quant"))?,
            self_attn_blocks,
            cross_attn_block,
            proj_query: crate::layers::linear(cfg.embed_dim(), w, true, dec.pp("proj_query"))?,
            norm_out: Fp32LayerNorm::new(w, 1e-5, dec.pp("norm_out"))?,
            proj_out: crate::layers::linear(w, 1, true, dec.pp("proj_out"))?,
            cfg: cfg.clone(),
        })
    }

    pub fn config(&self) -> &VaeConfig {
        &self.cfg
    }

    pub fn device(&self) -> &Device {
        self.proj_out.weight().device()
    }

    pub fn dtype(&self) -> DType {
        self.proj_out.weight().dtype()
    }

    /// Key/value tokens of a shape: `[batch, tokens, width]` from latents `[batch, tokens, C]`.
    /// Upstream recomputes this on every decode call; it depends only on the latents.
    pub fn kv_tokens(&self, latents: &Tensor) -> Result<Tensor> {
        let mut xs = self.post_quant.forward(&latents.to_dtype(self.dtype())?)?;
        for block in &self.self_attn_blocks {
            xs = block.forward(&xs, None, None)?;
        }
        Ok(xs)
    }

    /// Signed-distance logits `[batch, points, 1]` (upstream's sign: positive inside) at `points`
    /// `[batch, points, 3]`, attending to `kv` from [`Self::kv_tokens`].
    pub fn query(&self, kv: &Tensor, points: &Tensor) -> Result<Tensor> {
        let embed =
            frequency_embedding(points, self.cfg.embed_frequency, self.cfg.embed_include_pi)?
                .to_dtype(self.dtype())?;
        let q = self.proj_query.forward(&embed)?;
        let xs = self
            .cross_attn_block
            .forward(&q, Some(Context::new(kv)), None)?;
        self.proj_out.forward(&self.norm_out.forward(&xs)?)?.neg()
    }
}
