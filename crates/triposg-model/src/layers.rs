//! Building blocks shared by the ported models, named after the diffusers / transformers
//! modules they mirror so that `VarBuilder` paths match checkpoint keys.

use candle_core::{DType, Module, Result, Tensor, D};
use candle_nn::{Linear, VarBuilder};

pub fn linear(in_dim: usize, out_dim: usize, bias: bool, vb: VarBuilder) -> Result<Linear> {
    if bias {
        candle_nn::linear(in_dim, out_dim, vb)
    } else {
        candle_nn::linear_no_bias(in_dim, out_dim, vb)
    }
}

/// `nn.LayerNorm` computed in f32 whatever the model dtype, as diffusers' `FP32LayerNorm`.
/// Upstream's plain `LayerNorm`s run in the model dtype with f32 accumulation on CUDA; using
/// f32 for them too only removes rounding, so one type serves both.
#[derive(Debug, Clone)]
pub struct Fp32LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl Fp32LayerNorm {
    pub fn new(dim: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get(dim, "weight")?.to_dtype(DType::F32)?,
            bias: vb.get(dim, "bias")?.to_dtype(DType::F32)?,
            eps,
        })
    }
}

impl Module for Fp32LayerNorm {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let dtype = xs.dtype();
        let xs = xs.to_dtype(DType::F32)?;
        candle_nn::ops::layer_norm(&xs, &self.weight, &self.bias, self.eps as f32)?.to_dtype(dtype)
    }
}

/// diffusers' `RMSNorm` with an affine weight: statistics in f32, result in the model dtype.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    pub fn new(dim: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get(dim, "weight")?.to_dtype(DType::F32)?,
            eps,
        })
    }
}

impl Module for RmsNorm {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let dtype = xs.dtype();
        let xs = xs.to_dtype(DType::F32)?;
        candle_nn::ops::rms_norm(&xs.contiguous()?, &self.weight, self.eps as f32)?.to_dtype(dtype)
    }
}

/// diffusers' `FeedForward` with `activation_fn="gelu"`: `net.0.proj`, exact (erf) GELU, `net.2`.
#[derive(Debug, Clone)]
pub struct FeedForward {
    proj: Linear,
    out: Linear,
}

impl FeedForward {
    pub fn new(dim: usize, inner_dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            proj: candle_nn::linear(dim, inner_dim, vb.pp("net.0.proj"))?,
            out: candle_nn::linear(inner_dim, dim, vb.pp("net.2"))?,
        })
    }
}

impl Module for FeedForward {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.out.forward(&self.proj.forward(xs)?.gelu_erf()?)
    }
}

/// Scaled dot-product attention over `[batch, heads, tokens, head_dim]` tensors, softmax in f32
/// as the fused PyTorch kernels accumulate.
pub fn scaled_dot_product_attention(q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
    let dtype = q.dtype();
    let scale = 1.0 / (q.dim(D::Minus1)? as f64).sqrt();
    let scores = (q.contiguous()?.matmul(&k.t()?.contiguous()?)? * scale)?;
    let probs = candle_nn::ops::softmax_last_dim(&scores.to_dtype(DType::F32)?)?.to_dtype(dtype)?;
    probs.matmul(&v.contiguous()?)
}
