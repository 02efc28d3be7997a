//! The CUDA fast path for f16: attention straight from packed q/k/v projections (no head-split
//! copies) by a flash-attention kernel on sm_80+ or through cuBLAS with an f32 softmax in one
//! pass on older cards; linear layers as cuBLASLt GEMMs with the bias and residual inside;
//! in-place bias-GELU and q/k RMS-norm kernels; and layer norm. candle's generic broadcast and
//! strided-copy kernels were 40% of a DiT step on the H200; this removes them.
//!
//! Every entry point here is only called for f16 tensors on a CUDA device; other dtypes and
//! devices (CPU, Metal) take the plain candle path in `layers`/`attention`, which is also what
//! the fused path is tested against.

mod attention;
mod elementwise;
mod gemm;
mod layer_norm;

pub use attention::{packed_attention, PackedLayout, MAX_KEYS};
pub use elementwise::{
    bias_add_inplace, bias_gelu_inplace, bias_residual_inplace, rms_norm_part_inplace,
};
pub use gemm::{linear_applies, lt_linear, lt_skip_linear, skip_linear_applies};
pub use layer_norm::{applies_to as layer_norm_applies, layer_norm};

use std::sync::OnceLock;

use candle_core::cuda_backend::cudarc::driver::CudaFunction;
use candle_core::cuda_backend::cudarc::nvrtc;
use candle_core::cuda_backend::WrapErr;
use candle_core::{CudaDevice, DType, Result, Tensor};

const MODULE: &str = "triposg_fused";
const SOURCE: &str = include_str!("kernels.cu");
const FLASH_MODULE: &str = "triposg_flash";
const FLASH_SOURCE: &str = include_str!("flash_attention.cu");

/// Whether `xs` takes the fast path.
pub fn applies(xs: &Tensor) -> bool {
    xs.device().is_cuda() && xs.dtype() == DType::F16
}

/// PTX compiled once per process from `source`, for the virtual architecture `arch` (NVRTC's
/// default when `None`), which the driver JIT-compiles for whatever GPU runs it.
fn compile(
    cell: &'static OnceLock<std::result::Result<String, String>>,
    source: &str,
    arch: Option<&'static str>,
) -> Result<&'static str> {
    cell.get_or_init(|| {
        let options = nvrtc::CompileOptions {
            arch,
            ..Default::default()
        };
        nvrtc::compile_ptx_with_opts(source, options)
            .map(|p| p.to_src())
            .map_err(|e| format!("compiling the fused CUDA kernels with NVRTC failed: {e}"))
    })
    .as_deref()
    .map_err(|e| candle_core::Error::Msg(e.clone()))
}

fn kernel(dev: &CudaDevice, name: &str) -> Result<CudaFunction> {
    static PTX: OnceLock<std::result::Result<String, String>> = OnceLock::new();
    let ptx = compile(&PTX, SOURCE, None)?;
    Ok(dev
        .get_or_load_custom_func(name, MODULE, ptx)?
        .into_cuda_function())
}

/// The flash-attention kernels use sm_80 instructions (mma.sync m16n8k16, ldmatrix, cp.async).
fn flash_kernel(dev: &CudaDevice, name: &str) -> Result<CudaFunction> {
    static PTX: OnceLock<std::result::Result<String, String>> = OnceLock::new();
    let ptx = compile(&PTX, FLASH_SOURCE, Some("compute_80"))?;
    Ok(dev
        .get_or_load_custom_func(name, FLASH_MODULE, ptx)?
        .into_cuda_function())
}

/// Whether this GPU runs the flash-attention kernels (compute capability 8.0 or newer).
/// `TRIPOSG_NO_FLASH` set forces the sm_70 path, so that it can be tested and measured on the
/// cards we have.
fn has_flash(dev: &CudaDevice) -> Result<bool> {
    static DISABLED: OnceLock<bool> = OnceLock::new();
    if *DISABLED.get_or_init(|| std::env::var_os("TRIPOSG_NO_FLASH").is_some()) {
        return Ok(false);
    }
    let (major, _) = dev.cuda_stream().context().compute_capability().w()?;
    Ok(major >= 8)
}
