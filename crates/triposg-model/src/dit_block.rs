//! TripoSG's `DiTBlock` (from HunyuanDiT): optional long-skip fusion, self-attention,
//! cross-attention and a GELU feed-forward, each pre-normed with an fp32 LayerNorm.
//! The same block builds the DiT and the VAE's transformer stacks.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use crate::layers::Linear;

use crate::attention::{Attention, AttentionConfig};
use crate::layers::{FeedForward, Fp32LayerNorm};

/// What a block's cross-attention attends to: `tokens` for the batch items after the first
/// `zero_rows`; those first items attend to all-zero tokens (the unconditional branch of
/// classifier-free guidance, whose image tokens upstream sets to zeros).
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub tokens: &'a Tensor,
    pub zero_rows: usize,
}

impl<'a> Context<'a> {
    /// Every batch item attends to its own row of `tokens`.
    pub fn new(tokens: &'a Tensor) -> Self {
        Self {
            tokens,
            zero_rows: 0,
        }
    }
}

/// `xs + attn(norm(xs), context)`. Items attending to zeros skip the layer where zeros give
/// just its output bias (`Attention::zero_context_residual`); elsewhere they attend to zeros.
fn cross_attention(
    norm: &Fp32LayerNorm,
    attn: &Attention,
    xs: &Tensor,
    context: Context,
) -> Result<Tensor> {
    let attend =
        |xs: &Tensor, tokens: &Tensor| attn.forward_residual(&norm.forward(xs)?, Some(tokens), xs);
    let zero_rows = context.zero_rows;
    if zero_rows == 0 {
        return attend(xs, context.tokens);
    }
    let rest = xs.narrow(0, zero_rows, xs.dim(0)? - zero_rows)?;
    match attn.zero_context_residual(&xs.narrow(0, 0, zero_rows)?)? {
        Some(unconditional) => Tensor::cat(&[unconditional, attend(&rest, context.tokens)?], 0),
        None => {
            let (_, tokens, dim) = context.tokens.dims3()?;
            let zeros = Tensor::zeros(
                (zero_rows, tokens, dim),
                context.tokens.dtype(),
                context.tokens.device(),
            )?;
            attend(xs, &Tensor::cat(&[&zeros, context.tokens], 0)?)
        }
    }
}

#[derive(Debug, Clone)]
pub struct DiTBlockConfig {
    pub dim: usize,
    pub heads: usize,
    pub self_attention: bool,
    /// Context width for cross-attention, `None` for none.
    pub cross_attention_dim: Option<usize>,
    /// `cross_attention_norm_type="layer_norm"` (VAE) vs `None` (DiT).
    pub cross_attention_norm: bool,
    pub qk_norm: bool,
    pub ff_inner_dim: usize,
    /// Has `skip_norm` / `skip_linear` (DiT blocks after the middle one).
    pub skip: bool,
}

#[derive(Debug, Clone)]
pub struct DiTBlock {
    self_attn: Option<(Fp32LayerNorm, Attention)>,
    cross_attn: Option<(Fp32LayerNorm, Attention)>,
    norm3: Fp32LayerNorm,
    ff: FeedForward,
    skip: Option<(Linear, Fp32LayerNorm)>,
}

const NORM_EPS: f64 = 1e-5;

impl DiTBlock {
    pub fn new(cfg: &DiTBlockConfig, vb: VarBuilder) -> Result<Self> {
        let attention = |cross_attention_dim: Option<usize>| AttentionConfig {
            query_dim: cfg.dim,
            cross_attention_dim,
            heads: cfg.heads,
            head_dim: cfg.dim / cfg.heads,
            qk_norm: cfg.qk_norm,
            norm_cross: cross_attention_dim.is_some() && cfg.cross_attention_norm,
            qkv_bias: false,
        };
        let self_attn = cfg
            .self_attention
            .then(|| -> Result<_> {
                Ok((
                    Fp32LayerNorm::new(cfg.dim, NORM_EPS, vb.pp("norm1"))?,
                    Attention::new(&attention(None), vb.pp("attn1"))?,
                ))
            })
            .transpose()?;
        let cross_attn = cfg
            .cross_attention_dim
            .map(|ctx| -> Result<_> {
                Ok((
                    Fp32LayerNorm::new(cfg.dim, NORM_EPS, vb.pp("norm2"))?,
                    Attention::new(&attention(Some(ctx)), vb.pp("attn2"))?,
                ))
            })
            .transpose()?;
        let skip = cfg
            .skip
            .then(|| -> Result<_> {
                Ok((
                    crate::layers::linear(2 * cfg.dim, cfg.dim, true, vb.pp("skip_linear"))?,
                    Fp32LayerNorm::new(cfg.dim, NORM_EPS, vb.pp("skip_norm"))?,
                ))
            })
            .transpose()?;
        Ok(Self {
            self_attn,
            cross_attn,
            norm3: Fp32LayerNorm::new(cfg.dim, NORM_EPS, vb.pp("norm3"))?,
            ff: FeedForward::new(cfg.dim, cfg.ff_inner_dim, vb.pp("ff"))?,
            skip,
        })
    }

    pub fn forward(
        &self,
        xs: &Tensor,
        context: Option<Context>,
        skip: Option<&Tensor>,
    ) -> Result<Tensor> {
        let mut xs = match (&self.skip, skip) {
            // Upstream builds these blocks with `skip_concat_front=True` and
            // `skip_norm_last=True` ("this is an error", its comment says, but the weights
            // were trained that way): [skip, x] -> linear -> norm.
            (Some((linear, norm)), Some(skip)) => norm.forward(&linear.forward_cat(skip, xs)?)?,
            (None, None) => xs.clone(),
            (Some(_), None) => candle_core::bail!("DiT block with a skip layer needs a skip input"),
            (None, Some(_)) => {
                candle_core::bail!("DiT block without a skip layer got a skip input")
            }
        };
        if let Some((norm, attn)) = &self.self_attn {
            xs = attn.forward_residual(&norm.forward(&xs)?, None, &xs)?;
        }
        if let Some((norm, attn)) = &self.cross_attn {
            let context = context
                .ok_or_else(|| candle_core::Error::Msg("cross-attention needs a context".into()))?;
            xs = cross_attention(norm, attn, &xs, context)?;
        }
        self.ff.forward_residual(&self.norm3.forward(&xs)?, &xs)
    }
}
