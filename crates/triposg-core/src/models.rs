//! The models one job needs, loaded once and kept resident between jobs.

use std::path::Path;

use candle_core::{DType, Device};
use triposg_model::checkpoint::Checkpoint;
use triposg_model::dinov2::Dinov2;
use triposg_model::dit::TripoSGDiT;
use triposg_model::scheduler::SchedulerConfig;
use triposg_model::vae::TripoSGVae;

pub struct Models {
    pub dinov2: Dinov2,
    pub dit: TripoSGDiT,
    pub vae: TripoSGVae,
    pub scheduler: SchedulerConfig,
    pub device: Device,
    pub dtype: DType,
}

impl Models {
    /// Loads `<weights>/TripoSG` onto `device` in `dtype`.
    pub fn load(weights: &Path, device: &Device, dtype: DType) -> triposg_model::Result<Self> {
        let ckpt = Checkpoint::new(weights.join("TripoSG"));
        Ok(Self {
            scheduler: ckpt.scheduler_config()?,
            dinov2: ckpt.load_dinov2(dtype, device)?,
            dit: ckpt.load_dit(dtype, device)?,
            vae: ckpt.load_vae(dtype, device)?,
            device: device.clone(),
            dtype,
        })
    }
}
