//! Choosing where and in which precision the models run.

use candle_core::{DType, Device};

use crate::error::{ModelError, Result};

/// `auto`, `cpu`, `cuda`, `cuda:N`, `metal` or `metal:N`. A build without the matching feature
/// says so.
pub fn select_device(spec: &str) -> Result<Device> {
    if spec == "auto" {
        return Ok(auto_device());
    }
    let (kind, ordinal) = match spec.split_once(':') {
        Some((kind, n)) => {
            let n = n.parse::<usize>().map_err(|_| {
                ModelError::InvalidInput(format!("device `{spec}`: `{n}` is not a device number"))
            })?;
            (kind, n)
        }
        None => (spec, 0),
    };
    let device = match kind {
        "cpu" => Device::Cpu,
        "cuda" => Device::new_cuda(ordinal).map_err(|e| {
            ModelError::InvalidInput(format!(
                "cannot use CUDA device {ordinal}: {e}. Check `nvidia-smi`, the driver, and that this binary was built with `--features cuda`"
            ))
        })?,
        "metal" => Device::new_metal(ordinal).map_err(|e| {
            ModelError::InvalidInput(format!(
                "cannot use Metal device {ordinal}: {e}. This binary must be built with `--features metal` on macOS"
            ))
        })?,
        other => {
            return Err(ModelError::InvalidInput(format!(
                "unknown device `{other}`: use auto, cpu, cuda, cuda:N or metal"
            )))
        }
    };
    Ok(device)
}

/// The first CUDA card (CUDA build, working driver), else the first Metal device (Metal build),
/// else the CPU: what a fresh install should use without being told.
fn auto_device() -> Device {
    if candle_core::utils::cuda_is_available() {
        if let Ok(device) = Device::new_cuda(0) {
            return device;
        }
    }
    if candle_core::utils::metal_is_available() {
        if let Ok(device) = Device::new_metal(0) {
            return device;
        }
    }
    Device::Cpu
}

/// Upstream runs fp16 on GPUs (norms in f32); CPUs have no fast half-precision matmul.
pub fn default_dtype(device: &Device) -> DType {
    if device.is_cpu() {
        DType::F32
    } else {
        DType::F16
    }
}

/// `f32`, `f16` or `bf16`.
pub fn parse_dtype(name: &str) -> Result<DType> {
    match name {
        "f32" | "fp32" | "float32" => Ok(DType::F32),
        "f16" | "fp16" | "float16" => Ok(DType::F16),
        "bf16" | "bfloat16" => Ok(DType::BF16),
        other => Err(ModelError::InvalidInput(format!(
            "unknown dtype `{other}`: use f32, f16 or bf16"
        ))),
    }
}
