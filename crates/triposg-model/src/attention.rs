//! diffusers `Attention` as TripoSG drives it through `TripoSGAttnProcessor2_0`.
//!
//! The checkpoints were trained with heads split *before* q/k/v: the concatenated projections
//! `[q | k | v]` are viewed as `[tokens, heads, 3 * head_dim]` and each head's slice is cut into
//! its q, k and v parts (for cross-attention the same with `[k | v]`). Splitting the usual way
//! runs without error and silently gives wrong results, so this mirrors the upstream view.

use candle_core::{Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use crate::layers::{linear, scaled_dot_product_attention, Fp32LayerNorm, RmsNorm};

#[derive(Debug, Clone)]
pub struct AttentionConfig {
    pub query_dim: usize,
    /// `Some` for cross-attention (diffusers' `is_cross_attention`).
    pub cross_attention_dim: Option<usize>,
    pub heads: usize,
    pub head_dim: usize,
    /// RMS norm of q and k over each head (`qk_norm="rms_norm"`, eps 1e-6).
    pub qk_norm: bool,
    /// `cross_attention_norm="layer_norm"`: a LayerNorm (`norm_cross`) on the context.
    pub norm_cross: bool,
    pub qkv_bias: bool,
}

#[derive(Debug, Clone)]
pub struct Attention {
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    to_out: Linear,
    norm_q: Option<RmsNorm>,
    norm_k: Option<RmsNorm>,
    norm_cross: Option<Fp32LayerNorm>,
    heads: usize,
    head_dim: usize,
    is_cross: bool,
}

impl Attention {
    pub fn new(cfg: &AttentionConfig, vb: VarBuilder) -> Result<Self> {
        let inner = cfg.heads * cfg.head_dim;
        let kv_dim = cfg.cross_attention_dim.unwrap_or(cfg.query_dim);
        let qk_norm = |name: &str| -> Result<Option<RmsNorm>> {
            cfg.qk_norm
                .then(|| RmsNorm::new(cfg.head_dim, 1e-6, vb.pp(name)))
                .transpose()
        };
        Ok(Self {
            to_q: linear(cfg.query_dim, inner, cfg.qkv_bias, vb.pp("to_q"))?,
            to_k: linear(kv_dim, inner, cfg.qkv_bias, vb.pp("to_k"))?,
            to_v: linear(kv_dim, inner, cfg.qkv_bias, vb.pp("to_v"))?,
            to_out: linear(inner, cfg.query_dim, true, vb.pp("to_out.0"))?,
            norm_q: qk_norm("norm_q")?,
            norm_k: qk_norm("norm_k")?,
            norm_cross: cfg
                .norm_cross
                .then(|| Fp32LayerNorm::new(kv_dim, 1e-5, vb.pp("norm_cross")))
                .transpose()?,
            heads: cfg.heads,
            head_dim: cfg.head_dim,
            is_cross: cfg.cross_attention_dim.is_some(),
        })
    }

    /// Self-attention when `context` is `None`, else cross-attention over `context`.
    pub fn forward(&self, xs: &Tensor, context: Option<&Tensor>) -> Result<Tensor> {
        let (b, n, _) = xs.dims3()?;
        let context = match (context, &self.norm_cross) {
            (Some(c), Some(norm)) => norm.forward(c)?,
            (Some(c), None) => c.clone(),
            (None, _) => xs.clone(),
        };
        let m = context.dim(1)?;
        let (h, d) = (self.heads, self.head_dim);
        let q = self.to_q.forward(xs)?;
        let k = self.to_k.forward(&context)?;
        let v = self.to_v.forward(&context)?;
        let (q, k, v) = if self.is_cross {
            let kv = Tensor::cat(&[k, v], 2)?.reshape((b, m, h, 2, d))?;
            (
                q.reshape((b, n, h, d))?,
                kv.narrow(3, 0, 1)?,
                kv.narrow(3, 1, 1)?,
            )
        } else {
            let qkv = Tensor::cat(&[q, k, v], 2)?.reshape((b, n, h, 3, d))?;
            (
                qkv.narrow(3, 0, 1)?,
                qkv.narrow(3, 1, 1)?,
                qkv.narrow(3, 2, 1)?,
            )
        };
        // -> [batch, heads, tokens, head_dim]
        let heads_first = |t: Tensor, len: usize| t.reshape((b, len, h, d))?.transpose(1, 2);
        let mut q = heads_first(q, n)?;
        let mut k = heads_first(k, m)?;
        let v = heads_first(v, m)?;
        if let Some(norm) = &self.norm_q {
            q = norm.forward(&q)?;
        }
        if let Some(norm) = &self.norm_k {
            k = norm.forward(&k)?;
        }
        let out = scaled_dot_product_attention(&q, &k, &v)?
            .transpose(1, 2)?
            .reshape((b, n, h * d))?;
        self.to_out.forward(&out)
    }
}
