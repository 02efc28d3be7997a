//! GPU memory of a worker's device, for `/metrics` and `/api/info`.

use candle_core::Device;
use serde::Serialize;

#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct Memory {
    /// In use by every process on the card, not only this server.
    pub used_bytes: u64,
    pub total_bytes: u64,
}

/// The card's memory as its driver reports it; `None` on a CPU (or Metal) device.
#[cfg(feature = "cuda")]
pub fn memory(device: &Device) -> Option<Memory> {
    let Device::Cuda(cuda) = device else {
        return None;
    };
    // cuMemGetInfo on the worker's own context: the card the jobs run on.
    let (free, total) = cuda.cuda_stream().context().mem_get_info().ok()?;
    Some(Memory {
        used_bytes: (total - free) as u64,
        total_bytes: total as u64,
    })
}

/// Built without CUDA: no device has GPU memory to report.
#[cfg(not(feature = "cuda"))]
pub fn memory(_device: &Device) -> Option<Memory> {
    None
}
