//! Building blocks shared by the ported models, named after the diffusers / transformers
//! modules they mirror so that `VarBuilder` paths match checkpoint keys.

use candle_core::{Module, Result, Tensor, D};
use candle_nn::VarBuilder;

/// `nn.Linear`. On the CUDA f16 path the bias is added in place after the GEMM: candle's
/// broadcast add walks strided indices and cost a quarter of a DiT step on the H200.
#[derive(Debug, Clone)]
pub struct Linear {
    matmul: candle_nn::Linear,
    bias: Option<Tensor>,
}

impl Linear {
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self {
            matmul: candle_nn::Linear::new(weight, None),
            bias,
        }
    }

    pub fn weight(&self) -> &Tensor {
        self.matmul.weight()
    }

    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// The GEMM output when the CUDA f16 epilogue can finish it in place: its bias has an
    /// even length (the kernel works on f16 pairs).
    #[cfg(feature = "cuda")]
    fn fused_output(&self, xs: &Tensor) -> Result<Option<(Tensor, &Tensor)>> {
        match &self.bias {
            Some(bias) if crate::fused::applies(xs) && bias.elem_count().is_multiple_of(2) => {
                Ok(Some((self.matmul.forward(xs)?, bias)))
            }
            _ => Ok(None),
        }
    }

    /// Whether one cuBLASLt call computes `self(xs)` (+ `residual`), bias included.
    #[cfg(feature = "cuda")]
    fn in_one_gemm(&self, xs: &Tensor, residual: Option<&Tensor>) -> bool {
        crate::fused::linear_applies(xs, self.weight(), self.bias.as_ref(), residual)
    }

    /// `residual + self(xs)`: on the CUDA f16 path the bias and the residual are added inside
    /// the GEMM (or, where cuBLASLt does not apply, in one pass after it).
    pub fn forward_residual(&self, xs: &Tensor, residual: &Tensor) -> Result<Tensor> {
        #[cfg(feature = "cuda")]
        if self.in_one_gemm(xs, Some(residual)) {
            return crate::fused::lt_linear(xs, self.weight(), self.bias.as_ref(), Some(residual));
        }
        #[cfg(feature = "cuda")]
        if let Some((ys, bias)) = self.fused_output(xs)? {
            if ys.shape() == residual.shape() && residual.is_contiguous() {
                crate::fused::bias_residual_inplace(&ys, bias, residual)?;
                return Ok(ys);
            }
        }
        residual + self.forward(xs)?
    }

    /// `gelu_erf(self(xs))`, one pass over the output on the CUDA f16 path.
    pub fn forward_gelu(&self, xs: &Tensor) -> Result<Tensor> {
        #[cfg(feature = "cuda")]
        if let Some((ys, bias)) = self.fused_output(xs)? {
            crate::fused::bias_gelu_inplace(&ys, bias)?;
            return Ok(ys);
        }
        self.forward(xs)?.gelu_erf()
    }

    /// `self(cat([first, second], -1))`; on the CUDA f16 path two GEMMs over the halves of the
    /// weight, with no concatenated copy.
    pub fn forward_cat(&self, first: &Tensor, second: &Tensor) -> Result<Tensor> {
        #[cfg(feature = "cuda")]
        if let Some(bias) = &self.bias {
            if crate::fused::skip_linear_applies(first, second, self.weight(), bias) {
                return crate::fused::lt_skip_linear(first, second, self.weight(), bias);
            }
        }
        self.forward(&Tensor::cat(&[first, second], D::Minus1)?)
    }
}

impl Module for Linear {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        #[cfg(feature = "cuda")]
        if self.in_one_gemm(xs, None) {
            return crate::fused::lt_linear(xs, self.weight(), self.bias.as_ref(), None);
        }
        let ys = self.matmul.forward(xs)?;
        match &self.bias {
            #[cfg(feature = "cuda")]
            Some(bias) if crate::fused::applies(&ys) && bias.elem_count().is_multiple_of(2) => {
                crate::fused::bias_add_inplace(&ys, bias)?;
                Ok(ys)
            }
            Some(bias) => ys.broadcast_add(bias),
            None => Ok(ys),
        }
    }
}

pub fn linear(in_dim: usize, out_dim: usize, bias: bool, vb: VarBuilder) -> Result<Linear> {
    let weight = vb.get((out_dim, in_dim), "weight")?;
    let bias = bias.then(|| vb.get(out_dim, "bias")).transpose()?;
    Ok(Linear::new(weight, bias))
}

/// `nn.LayerNorm` as diffusers' `FP32LayerNorm`: statistics and the affine step in f32
/// whatever the model dtype. candle's layer-norm kernels read f16/bf16 inputs and accumulate and
/// apply the affine in f32 themselves, rounding once on output as upstream's cast back does, so
/// no f32 copy of the activations is made. Upstream's plain `LayerNorm`s differ only in rounding
/// the weights, which are stored in the model dtype anyway, so one type serves both.
#[derive(Debug, Clone)]
pub struct Fp32LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl Fp32LayerNorm {
    pub fn new(dim: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get(dim, "weight")?,
            bias: vb.get(dim, "bias")?,
            eps,
        })
    }
}

impl Module for Fp32LayerNorm {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let xs = xs.contiguous()?;
        #[cfg(feature = "cuda")]
        if crate::fused::applies(&xs)
            && xs.elem_count() > 0
            && crate::fused::layer_norm_applies(xs.dim(D::Minus1)?)
        {
            return crate::fused::layer_norm(&xs, &self.weight, &self.bias, self.eps);
        }
        candle_nn::ops::layer_norm(&xs, &self.weight, &self.bias, self.eps as f32)
    }
}

/// diffusers' `RMSNorm` with an affine weight: statistics in f32 (inside candle's kernel),
/// result in the model dtype.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    pub fn new(dim: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get(dim, "weight")?,
            eps,
        })
    }

    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    pub fn eps(&self) -> f64 {
        self.eps
    }
}

impl Module for RmsNorm {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        candle_nn::ops::rms_norm(&xs.contiguous()?, &self.weight, self.eps as f32)
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
            proj: linear(dim, inner_dim, true, vb.pp("net.0.proj"))?,
            out: linear(inner_dim, dim, true, vb.pp("net.2"))?,
        })
    }
}

impl FeedForward {
    /// `residual + self(xs)`, the residual added in the output GEMM's epilogue.
    pub fn forward_residual(&self, xs: &Tensor, residual: &Tensor) -> Result<Tensor> {
        self.out
            .forward_residual(&self.proj.forward_gelu(xs)?, residual)
    }
}

impl Module for FeedForward {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.out.forward(&self.proj.forward_gelu(xs)?)
    }
}

/// Scaled dot-product attention over `[batch, heads, tokens, head_dim]` tensors. The scale is
/// applied to `q` (tokens x head_dim) rather than to the much larger score matrix.
pub fn scaled_dot_product_attention(q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
    let scale = 1.0 / (q.dim(D::Minus1)? as f64).sqrt();
    let scores = (q * scale)?.matmul(&k.t()?.contiguous()?)?;
    candle_nn::ops::softmax_last_dim(&scores)?.matmul(&v.contiguous()?)
}
