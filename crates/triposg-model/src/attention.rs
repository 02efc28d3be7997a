//! diffusers `Attention` as TripoSG drives it through `TripoSGAttnProcessor2_0`.
//!
//! The checkpoints were trained with heads split *before* q/k/v: the concatenated projections
//! `[q | k | v]` are viewed as `[tokens, heads, 3 * head_dim]` and each head's slice is cut into
//! its q, k and v parts (for cross-attention the same with `[k | v]`). Splitting the usual way
//! runs without error and silently gives wrong results, so this mirrors the upstream view.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::layers::{linear, scaled_dot_product_attention, Fp32LayerNorm, Linear, RmsNorm};

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

/// The q/k/v projections of one attention layer, fused into as few GEMMs as the inputs allow:
/// one `[q | k | v]` projection for self-attention, `q` plus one `[k | v]` for cross-attention.
/// The concatenated output is exactly the layout upstream's head-first split reads.
#[derive(Debug, Clone)]
enum Projections {
    SelfAttention { qkv: Linear },
    CrossAttention { q: Linear, kv: Linear },
}

/// `Linear` whose weight (and bias) are the row-wise concatenation of several checkpoint
/// linears, so one GEMM computes all of them.
fn fused_linear(in_dim: usize, out_dim: usize, bias: bool, vbs: &[VarBuilder]) -> Result<Linear> {
    let parts = vbs
        .iter()
        .map(|vb| linear(in_dim, out_dim, bias, vb.clone()))
        .collect::<Result<Vec<_>>>()?;
    let weights: Vec<&Tensor> = parts.iter().map(|l| l.weight()).collect();
    let biases: Option<Vec<&Tensor>> = parts.iter().map(|l| l.bias()).collect();
    Ok(Linear::new(
        Tensor::cat(&weights, 0)?,
        biases.map(|b| Tensor::cat(&b, 0)).transpose()?,
    ))
}

#[derive(Debug, Clone)]
pub struct Attention {
    projections: Projections,
    to_out: Linear,
    norm_q: Option<RmsNorm>,
    norm_k: Option<RmsNorm>,
    norm_cross: Option<Fp32LayerNorm>,
    heads: usize,
    head_dim: usize,
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
        let projections = if cfg.cross_attention_dim.is_some() {
            Projections::CrossAttention {
                q: linear(cfg.query_dim, inner, cfg.qkv_bias, vb.pp("to_q"))?,
                kv: fused_linear(kv_dim, inner, cfg.qkv_bias, &[vb.pp("to_k"), vb.pp("to_v")])?,
            }
        } else {
            Projections::SelfAttention {
                qkv: fused_linear(
                    kv_dim,
                    inner,
                    cfg.qkv_bias,
                    &[vb.pp("to_q"), vb.pp("to_k"), vb.pp("to_v")],
                )?,
            }
        };
        Ok(Self {
            projections,
            to_out: linear(inner, cfg.query_dim, true, vb.pp("to_out.0"))?,
            norm_q: qk_norm("norm_q")?,
            norm_k: qk_norm("norm_k")?,
            norm_cross: cfg
                .norm_cross
                .then(|| Fp32LayerNorm::new(kv_dim, 1e-5, vb.pp("norm_cross")))
                .transpose()?,
            heads: cfg.heads,
            head_dim: cfg.head_dim,
        })
    }

    /// `[batch, tokens, heads * parts * head_dim]` (head-first packing) ->
    /// `parts` contiguous `[batch, heads, tokens, head_dim]` tensors, with one copy.
    fn split_heads(&self, packed: &Tensor, parts: usize) -> Result<Vec<Tensor>> {
        let (b, n, _) = packed.dims3()?;
        let (h, d) = (self.heads, self.head_dim);
        let split = packed
            .reshape((b, n, h, parts, d))?
            .permute((3, 0, 2, 1, 4))?
            .contiguous()?;
        (0..parts).map(|i| split.get(i)).collect()
    }

    /// Self-attention when `context` is `None`, else cross-attention over `context`.
    pub fn forward(&self, xs: &Tensor, context: Option<&Tensor>) -> Result<Tensor> {
        self.to_out.forward(&self.attend(xs, context)?)
    }

    /// `residual + self.forward(xs, context)`, the residual added in the output projection's
    /// epilogue.
    pub fn forward_residual(
        &self,
        xs: &Tensor,
        context: Option<&Tensor>,
        residual: &Tensor,
    ) -> Result<Tensor> {
        self.to_out
            .forward_residual(&self.attend(xs, context)?, residual)
    }

    /// `residual + self.forward(xs, zeros)` for a context of all-zero tokens, without running
    /// the layer, or `None` where that shortcut does not hold. With no bias on the key/value
    /// projections and no norm of the context, every key and value is zero (the q/k RMS norm
    /// keeps zeros), so attention returns zeros whatever the queries, and the layer adds only
    /// its output bias: exactly, in any precision.
    pub fn zero_context_residual(&self, residual: &Tensor) -> Result<Option<Tensor>> {
        match &self.projections {
            Projections::CrossAttention { kv, .. }
                if kv.bias().is_none() && self.norm_cross.is_none() => {}
            _ => return Ok(None),
        }
        let Some(bias) = self.to_out.bias() else {
            return Ok(Some(residual.clone()));
        };
        #[cfg(feature = "cuda")]
        if crate::fused::applies(residual) && bias.elem_count().is_multiple_of(2) {
            let out = residual.force_contiguous()?;
            crate::fused::bias_add_inplace(&out, bias)?;
            return Ok(Some(out));
        }
        residual.broadcast_add(bias).map(Some)
    }

    /// Attention before the output projection: `[batch, tokens, heads * head_dim]`.
    fn attend(&self, xs: &Tensor, context: Option<&Tensor>) -> Result<Tensor> {
        #[cfg(feature = "cuda")]
        if crate::fused::applies(xs)
            && self.head_dim.is_multiple_of(2)
            && context.map_or(xs.dim(1)?, |c| c.dim(1).unwrap_or(usize::MAX))
                <= crate::fused::MAX_KEYS
        {
            return self.attend_fused(xs, context);
        }
        let (b, n, _) = xs.dims3()?;
        let (mut q, mut k, v) = match (&self.projections, context) {
            (Projections::SelfAttention { qkv }, None) => {
                let mut qkv = self.split_heads(&qkv.forward(xs)?, 3)?.into_iter();
                let mut next = || qkv.next().expect("three parts");
                (next(), next(), next())
            }
            (Projections::CrossAttention { q, kv }, Some(context)) => {
                let context = match &self.norm_cross {
                    Some(norm) => norm.forward(context)?,
                    None => context.clone(),
                };
                let q = self.split_heads(&q.forward(xs)?, 1)?.remove(0);
                let mut kv = self.split_heads(&kv.forward(&context)?, 2)?.into_iter();
                let mut next = || kv.next().expect("two parts");
                (q, next(), next())
            }
            (Projections::SelfAttention { .. }, Some(_)) => {
                candle_core::bail!("self-attention layer was given a context")
            }
            (Projections::CrossAttention { .. }, None) => {
                candle_core::bail!("cross-attention layer needs a context")
            }
        };
        if let Some(norm) = &self.norm_q {
            q = norm.forward(&q)?;
        }
        if let Some(norm) = &self.norm_k {
            k = norm.forward(&k)?;
        }
        scaled_dot_product_attention(&q, &k, &v)?
            .transpose(1, 2)?
            .reshape((b, n, self.heads * self.head_dim))
    }
}

#[cfg(feature = "cuda")]
impl Attention {
    /// The same computation on the CUDA f16 path: q/k norms in place on the projection outputs
    /// and attention addressed inside them by strides (see `fused::attention`).
    fn attend_fused(&self, xs: &Tensor, context: Option<&Tensor>) -> Result<Tensor> {
        use crate::fused::{packed_attention, rms_norm_part_inplace, PackedLayout};
        let (heads, head_dim) = (self.heads, self.head_dim);
        let packed = |q_parts, kv_parts, k_part, v_part| PackedLayout {
            heads,
            head_dim,
            q_parts,
            q_part: 0,
            kv_parts,
            k_part,
            v_part,
        };
        let (q, kv, layout) = match (&self.projections, context) {
            (Projections::SelfAttention { qkv }, None) => {
                let qkv = qkv.forward(xs)?;
                (qkv.clone(), qkv, packed(3, 3, 1, 2))
            }
            (Projections::CrossAttention { q, kv }, Some(context)) => {
                let context = match &self.norm_cross {
                    Some(norm) => norm.forward(context)?,
                    None => context.clone(),
                };
                (q.forward(xs)?, kv.forward(&context)?, packed(1, 2, 0, 1))
            }
            _ => candle_core::bail!("attention layer called with the wrong kind of context"),
        };
        if let Some(norm) = &self.norm_q {
            rms_norm_part_inplace(&q, norm.weight(), head_dim, layout.q_parts, 0, norm.eps())?;
        }
        if let Some(norm) = &self.norm_k {
            rms_norm_part_inplace(
                &kv,
                norm.weight(),
                head_dim,
                layout.kv_parts,
                layout.k_part,
                norm.eps(),
            )?;
        }
        let scale = 1.0 / (head_dim as f64).sqrt();
        packed_attention(&q, &kv, layout, scale)
    }
}
