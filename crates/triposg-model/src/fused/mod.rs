//! The CUDA fast path for f16: attention straight from packed q/k/v projections through cuBLAS
//! (no head-split copies, aligned leading dimensions, f32 softmax in one pass), and in-place
//! bias-add and q/k RMS-norm kernels. candle's generic broadcast and strided-copy kernels were
//! 40% of a DiT step on the H200; this removes them.
//!
//! Every entry point here is only called for f16 tensors on a CUDA device; other dtypes and
//! devices (CPU, Metal) take the plain candle path in `layers`/`attention`, which is also what
//! the fused path is tested against.

mod attention;
mod elementwise;

pub use attention::{packed_attention, PackedLayout, MAX_KEYS};
pub use elementwise::{bias_add_inplace, rms_norm_part_inplace};

use std::sync::OnceLock;

use candle_core::cuda_backend::cudarc::driver::CudaFunction;
use candle_core::cuda_backend::cudarc::nvrtc;
use candle_core::{CudaDevice, DType, Result, Tensor};

const MODULE: &str = "triposg_fused";
const SOURCE: &str = include_str!("kernels.cu");

/// Whether `xs` takes the fast path.
pub fn applies(xs: &Tensor) -> bool {
    xs.device().is_cuda() && xs.dtype() == DType::F16
}

/// PTX for the kernels, compiled once per process. NVRTC targets its default virtual
/// architecture, which the driver JIT-compiles for whatever GPU runs it.
fn ptx() -> Result<&'static str> {
    static PTX: OnceLock<std::result::Result<String, String>> = OnceLock::new();
    PTX.get_or_init(|| {
        nvrtc::compile_ptx(SOURCE)
            .map(|p| p.to_src())
            .map_err(|e| format!("compiling the fused CUDA kernels with NVRTC failed: {e}"))
    })
    .as_deref()
    .map_err(|e| candle_core::Error::Msg(e.clone()))
}

fn kernel(dev: &CudaDevice, name: &str) -> Result<CudaFunction> {
    Ok(dev
        .get_or_load_custom_func(name, MODULE, ptx()?)?
        .into_cuda_function())
}
