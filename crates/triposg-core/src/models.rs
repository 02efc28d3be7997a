//! The models one job needs, loaded once and kept between jobs: on the device, or (offloaded)
//! in host memory, each moved onto the device only for its own stage.

use std::collections::HashMap;
use std::ops::Deref;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use triposg_model::checkpoint::{Checkpoint, Component};
use triposg_model::dinov2::Dinov2;
use triposg_model::dit::TripoSGDiT;
use triposg_model::scheduler::SchedulerConfig;
use triposg_model::vae::TripoSGVae;

/// Where the models wait while another stage runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// All three on the device: fastest; the device holds every model's weights at once.
    Device,
    /// In host memory; each stage copies its model onto the device and frees it after, so the
    /// device holds one model at a time (the transformer, the largest) at the cost of the copies.
    Offload,
}

impl Placement {
    /// What the `--offload` flag asks for.
    pub fn from_offload(offload: bool) -> Self {
        if offload {
            Self::Offload
        } else {
            Self::Device
        }
    }
}

/// Builds a model from its weights with the config read at load (an offloaded model is rebuilt
/// for every stage: the checkpoint's files are not read again).
type Build<T> = Box<dyn Fn(VarBuilder) -> triposg_model::Result<T> + Send + Sync>;

/// One model, either built on the device or kept as host tensors to build from.
enum Kept<T> {
    OnDevice(T),
    OnHost {
        tensors: HashMap<String, Tensor>,
        build: Build<T>,
    },
}

/// A model ready to run: borrowed when it stays on the device, built for this stage (and freed
/// when dropped) when offloaded.
pub enum InStage<'a, T> {
    Resident(&'a T),
    Moved(T),
}

impl<T> Deref for InStage<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        match self {
            Self::Resident(m) => m,
            Self::Moved(m) => m,
        }
    }
}

pub struct Models {
    dinov2: Kept<Dinov2>,
    dit: Kept<TripoSGDiT>,
    vae: Kept<TripoSGVae>,
    pub scheduler: SchedulerConfig,
    pub device: Device,
    pub dtype: DType,
}

impl Models {
    /// Loads `<weights>/TripoSG` in `dtype`, onto `device` or into host memory for it.
    pub fn load(
        weights: &Path,
        device: &Device,
        dtype: DType,
        placement: Placement,
    ) -> triposg_model::Result<Self> {
        let checkpoint = Checkpoint::new(weights.join("TripoSG"));
        let keep = Keep {
            checkpoint: &checkpoint,
            dtype,
            device,
            placement,
        };
        let (dinov2, dit, vae) = (
            checkpoint.dinov2_config()?,
            checkpoint.dit_config()?,
            checkpoint.vae_config()?,
        );
        Ok(Self {
            scheduler: checkpoint.scheduler_config()?,
            dinov2: keep.model(Component::ImageEncoder, move |vb| {
                Ok(Dinov2::new(&dinov2, vb)?)
            })?,
            dit: keep.model(Component::Transformer, move |vb| {
                Ok(TripoSGDiT::new(&dit, vb)?)
            })?,
            vae: keep.model(Component::Vae, move |vb| Ok(TripoSGVae::new(&vae, vb)?))?,
            device: device.clone(),
            dtype,
        })
    }

    pub fn dinov2(&self) -> triposg_model::Result<InStage<'_, Dinov2>> {
        self.in_stage(&self.dinov2)
    }

    pub fn dit(&self) -> triposg_model::Result<InStage<'_, TripoSGDiT>> {
        self.in_stage(&self.dit)
    }

    pub fn vae(&self) -> triposg_model::Result<InStage<'_, TripoSGVae>> {
        self.in_stage(&self.vae)
    }

    fn in_stage<'a, T>(&'a self, kept: &'a Kept<T>) -> triposg_model::Result<InStage<'a, T>> {
        Ok(match kept {
            Kept::OnDevice(m) => InStage::Resident(m),
            Kept::OnHost { tensors, build } => {
                let vb = VarBuilder::from_tensors(tensors.clone(), self.dtype, &self.device);
                InStage::Moved(build(vb)?)
            }
        })
    }
}

/// Where and how `Models::load` keeps each model.
struct Keep<'a> {
    checkpoint: &'a Checkpoint,
    dtype: DType,
    device: &'a Device,
    placement: Placement,
}

impl Keep<'_> {
    fn model<T>(
        &self,
        c: Component,
        build: impl Fn(VarBuilder) -> triposg_model::Result<T> + Send + Sync + 'static,
    ) -> triposg_model::Result<Kept<T>> {
        Ok(match self.placement {
            Placement::Device => Kept::OnDevice(build(self.checkpoint.var_builder(
                c,
                self.dtype,
                self.device,
            )?)?),
            Placement::Offload => Kept::OnHost {
                tensors: self.checkpoint.host_tensors(c, self.dtype)?,
                build: Box::new(build),
            },
        })
    }
}
