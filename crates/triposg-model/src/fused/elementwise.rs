//! In-place f16 kernels applied to a fresh GEMM output: the bias epilogue (plus GELU or a
//! residual, each one pass instead of two or three), and RMS norm of the q or k heads inside a
//! packed projection.

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::WrapErr;
use candle_core::{bail, CpuStorage, CudaStorage, InplaceOp2, InplaceOp3, Layout, Result, Tensor};
use half::f16;

use super::kernel;

/// What the epilogue kernel does after adding the bias (its `mode` argument).
#[derive(Debug, Clone, Copy)]
enum Epilogue {
    Bias = 0,
    BiasGelu = 1,
    BiasResidual = 2,
}

/// Launches `bias_epilogue_f16` on `dst` (a fresh contiguous GEMM output), or for bias + GELU
/// on rows of a multiple of 8 values `bias_gelu_f16x8`; `residual` has the shape of `dst` and is
/// read only by [`Epilogue::BiasResidual`].
fn launch_epilogue(
    mode: Epilogue,
    dst: &mut CudaStorage,
    dst_l: &Layout,
    bias: &CudaStorage,
    bias_l: &Layout,
    residual: Option<(&CudaStorage, &Layout)>,
) -> Result<()> {
    let cols = bias_l.shape().elem_count();
    let n = dst_l.shape().elem_count();
    if !dst_l.is_contiguous()
        || !bias_l.is_contiguous()
        || !cols.is_multiple_of(2)
        || !n.is_multiple_of(cols)
        || residual.is_some_and(|(_, l)| !l.is_contiguous() || l.shape() != dst_l.shape())
    {
        bail!("fused bias epilogue needs contiguous tensors with an even row length");
    }
    if n == 0 {
        // A launch of no blocks is an error.
        return Ok(());
    }
    let dev = dst.device().clone();
    let start = dst_l.start_offset();
    if matches!(mode, Epilogue::BiasGelu)
        && cols.is_multiple_of(8)
        && start.is_multiple_of(8)
        && bias_l.start_offset().is_multiple_of(8)
    {
        return launch_bias_gelu_x8(dst, start, n, bias, bias_l.start_offset(), cols);
    }
    let func = kernel(&dev, "bias_epilogue_f16")?;
    let bias = bias.as_cuda_slice::<f16>()?.slice(bias_l.start_offset()..);
    let residual = match residual {
        Some((r, l)) => Some(r.as_cuda_slice::<f16>()?.slice(l.start_offset()..)),
        None => None,
    };
    let mut x = dst.as_cuda_slice_mut::<f16>()?.slice_mut(start..start + n);
    let (rows, pairs, mode) = ((n / cols) as u32, (cols / 2) as u32, mode as u32);
    let cfg = LaunchConfig {
        grid_dim: (pairs.div_ceil(256), rows.min(65_535), 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    };
    let stream = dev.cuda_stream();
    let mut b = stream.launch_builder(&func);
    b.arg(&mut x).arg(&bias);
    // Without a residual the kernel gets the bias pointer, which it never reads as one.
    match &residual {
        Some(r) => b.arg(r),
        None => b.arg(&bias),
    };
    b.arg(&rows).arg(&pairs).arg(&mode);
    // SAFETY: x (and the residual) hold rows * 2 * pairs elements and bias 2 * pairs, as the
    // kernel reads.
    unsafe { b.launch(cfg) }.w()?;
    Ok(())
}

/// `bias_gelu_f16x8` on the `n` values of `dst` from `start`, rows of `cols` (a multiple of 8,
/// as are both offsets, so that every thread moves 16-byte words).
fn launch_bias_gelu_x8(
    dst: &mut CudaStorage,
    start: usize,
    n: usize,
    bias: &CudaStorage,
    bias_start: usize,
    cols: usize,
) -> Result<()> {
    let dev = dst.device().clone();
    let func = kernel(&dev, "bias_gelu_f16x8")?;
    let bias = bias
        .as_cuda_slice::<f16>()?
        .slice(bias_start..bias_start + cols);
    let mut x = dst.as_cuda_slice_mut::<f16>()?.slice_mut(start..start + n);
    let (rows, octs) = ((n / cols) as u32, (cols / 8) as u32);
    let cfg = LaunchConfig {
        grid_dim: (octs.div_ceil(128), rows.min(65_535), 1),
        block_dim: (128, 1, 1),
        shared_mem_bytes: 0,
    };
    let stream = dev.cuda_stream();
    let mut b = stream.launch_builder(&func);
    b.arg(&mut x).arg(&bias).arg(&rows).arg(&octs);
    // SAFETY: x holds rows * 8 * octs elements and bias 8 * octs, 16-byte aligned (candle's
    // allocations are, and both offsets are multiples of 8 elements), as the kernel reads.
    unsafe { b.launch(cfg) }.w()?;
    Ok(())
}

struct BiasEpilogue(Epilogue);

impl InplaceOp2 for BiasEpilogue {
    fn name(&self) -> &'static str {
        "fused-bias-epilogue"
    }

    fn cpu_fwd(&self, _: &mut CpuStorage, _: &Layout, _: &CpuStorage, _: &Layout) -> Result<()> {
        bail!("{} runs on CUDA only", self.name())
    }

    fn cuda_fwd(
        &self,
        dst: &mut CudaStorage,
        dst_l: &Layout,
        bias: &CudaStorage,
        bias_l: &Layout,
    ) -> Result<()> {
        launch_epilogue(self.0, dst, dst_l, bias, bias_l, None)
    }
}

struct BiasResidual;

impl InplaceOp3 for BiasResidual {
    fn name(&self) -> &'static str {
        "fused-bias-residual"
    }

    fn cpu_fwd(
        &self,
        _: &mut CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<()> {
        bail!("{} runs on CUDA only", self.name())
    }

    fn cuda_fwd(
        &self,
        dst: &mut CudaStorage,
        dst_l: &Layout,
        bias: &CudaStorage,
        bias_l: &Layout,
        residual: &CudaStorage,
        residual_l: &Layout,
    ) -> Result<()> {
        launch_epilogue(
            Epilogue::BiasResidual,
            dst,
            dst_l,
            bias,
            bias_l,
            Some((residual, residual_l)),
        )
    }
}

/// `xs[..., c] += bias[c]` in place; `xs` must be a fresh contiguous tensor nobody else holds.
pub fn bias_add_inplace(xs: &Tensor, bias: &Tensor) -> Result<()> {
    xs.inplace_op2(bias, &BiasEpilogue(Epilogue::Bias))
}

/// `xs = gelu_erf(xs + bias)` in place, one pass; `xs` as for [`bias_add_inplace`].
pub fn bias_gelu_inplace(xs: &Tensor, bias: &Tensor) -> Result<()> {
    xs.inplace_op2(bias, &BiasEpilogue(Epilogue::BiasGelu))
}

/// `xs = xs + bias + residual` in place, one pass; `xs` as for [`bias_add_inplace`].
pub fn bias_residual_inplace(xs: &Tensor, bias: &Tensor, residual: &Tensor) -> Result<()> {
    xs.inplace_op3(bias, residual, &BiasResidual)
}

struct RmsNormPart {
    head_dim: usize,
    parts: usize,
    part: usize,
    eps: f32,
}

impl InplaceOp2 for RmsNormPart {
    fn name(&self) -> &'static str {
        "fused-rms-norm-part"
    }

    fn cpu_fwd(&self, _: &mut CpuStorage, _: &Layout, _: &CpuStorage, _: &Layout) -> Result<()> {
        bail!("{} runs on CUDA only", self.name())
    }

    fn cuda_fwd(
        &self,
        dst: &mut CudaStorage,
        dst_l: &Layout,
        w: &CudaStorage,
        w_l: &Layout,
    ) -> Result<()> {
        let n = dst_l.shape().elem_count();
        let row = self.head_dim * self.parts;
        if !dst_l.is_contiguous()
            || !n.is_multiple_of(row)
            || w_l.shape().elem_count() != self.head_dim
        {
            bail!("fused RMS norm: unexpected layout");
        }
        let dev = dst.device().clone();
        let func = kernel(&dev, "rms_norm_part_f16")?;
        let w = w.as_cuda_slice::<f16>()?.slice(w_l.start_offset()..);
        let start = dst_l.start_offset();
        let mut x = dst.as_cuda_slice_mut::<f16>()?.slice_mut(start..start + n);
        let rows = (n / row) as u32;
        let (d, parts, part) = (self.head_dim as u32, self.parts as u32, self.part as u32);
        let cfg = LaunchConfig {
            grid_dim: (rows.div_ceil(8), 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        let stream = dev.cuda_stream();
        let mut b = stream.launch_builder(&func);
        b.arg(&mut x)
            .arg(&w)
            .arg(&rows)
            .arg(&d)
            .arg(&parts)
            .arg(&part)
            .arg(&self.eps);
        // SAFETY: x holds rows * parts * d elements, w holds d.
        unsafe { b.launch(cfg) }.w()?;
        Ok(())
    }
}

/// RMS-normalises, in place, the `part`-th of every `parts` consecutive `head_dim` chunks of
/// `xs` (a fresh contiguous projection output), scaled by `weight`.
pub fn rms_norm_part_inplace(
    xs: &Tensor,
    weight: &Tensor,
    head_dim: usize,
    parts: usize,
    part: usize,
    eps: f64,
) -> Result<()> {
    xs.inplace_op2(
        weight,
        &RmsNormPart {
            head_dim,
            parts,
            part,
            eps: eps as f32,
        },
    )
}
