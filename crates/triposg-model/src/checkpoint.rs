//! The `VAST-AI/TripoSG` folder as `save_pretrained` writes it (and as the Python app's
//! `pretrained_weights/TripoSG` volume holds it).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;

use crate::dinov2::{Dinov2, Dinov2Config};
use crate::dit::{DiTConfig, TripoSGDiT};
use crate::error::{ModelError, Result};
use crate::scheduler::SchedulerConfig;
use crate::vae::{TripoSGVae, VaeConfig};
use crate::weights::{read_config, CheckedSafetensors, ShapeRecorder, TensorSpec};

/// One model of the checkpoint: its sub-folder, config file and weights file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Transformer,
    Vae,
    ImageEncoder,
}

impl Component {
    pub const ALL: [Component; 3] = [Self::Transformer, Self::Vae, Self::ImageEncoder];

    pub fn folder(self) -> &'static str {
        match self {
            Self::Transformer => "transformer",
            Self::Vae => "vae",
            Self::ImageEncoder => "image_encoder_dinov2",
        }
    }

    pub fn weights_file(self) -> &'static str {
        match self {
            Self::Transformer | Self::Vae => "diffusion_pytorch_model.safetensors",
            Self::ImageEncoder => "model.safetensors",
        }
    }

    pub fn config_file(self) -> &'static str {
        "config.json"
    }
}

/// A TripoSG checkpoint folder (`<weights>/TripoSG`).
#[derive(Debug, Clone)]
pub struct Checkpoint {
    root: PathBuf,
}

/// The `_class_name`s a folder may declare; anything else is another model.
#[derive(Deserialize)]
struct ClassName {
    #[serde(rename = "_class_name")]
    class_name: Option<String>,
}

impl Checkpoint {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn config_path(&self, c: Component) -> PathBuf {
        self.root.join(c.folder()).join(c.config_file())
    }

    pub fn weights_path(&self, c: Component) -> PathBuf {
        self.root.join(c.folder()).join(c.weights_file())
    }

    fn check_class(&self, c: Component, accepted: &[&str]) -> Result<()> {
        let path = self.config_path(c);
        let ClassName { class_name } = read_config(&path)?;
        match class_name {
            Some(name) if !accepted.contains(&name.as_str()) => Err(ModelError::BadConfig {
                path,
                reason: format!("declares `{name}`, expected one of {accepted:?}: this folder holds another model"),
            }),
            _ => Ok(()),
        }
    }

    pub fn dit_config(&self) -> Result<DiTConfig> {
        self.check_class(Component::Transformer, &["TripoSGDiTModel"])?;
        read_config(&self.config_path(Component::Transformer))
    }

    pub fn vae_config(&self) -> Result<VaeConfig> {
        self.check_class(Component::Vae, &["TripoSGVAEModel", "Tripo2VAEModel"])?;
        read_config(&self.config_path(Component::Vae))
    }

    pub fn dinov2_config(&self) -> Result<Dinov2Config> {
        read_config(&self.config_path(Component::ImageEncoder))
    }

    pub fn scheduler_config(&self) -> Result<SchedulerConfig> {
        read_config(&self.root.join("scheduler/scheduler_config.json"))
    }

    /// The weights of `c` as candle loads them onto `device`, after the file's checks.
    pub fn var_builder(
        &self,
        c: Component,
        dtype: DType,
        device: &Device,
    ) -> Result<VarBuilder<'static>> {
        Ok(CheckedSafetensors::open(&self.weights_path(c))?.into_var_builder(dtype, device))
    }

    pub fn load_dit(&self, dtype: DType, device: &Device) -> Result<TripoSGDiT> {
        let cfg = self.dit_config()?;
        Ok(TripoSGDiT::new(
            &cfg,
            self.var_builder(Component::Transformer, dtype, device)?,
        )?)
    }

    pub fn load_vae(&self, dtype: DType, device: &Device) -> Result<TripoSGVae> {
        let cfg = self.vae_config()?;
        Ok(TripoSGVae::new(
            &cfg,
            self.var_builder(Component::Vae, dtype, device)?,
        )?)
    }

    pub fn load_dinov2(&self, dtype: DType, device: &Device) -> Result<Dinov2> {
        let cfg = self.dinov2_config()?;
        Ok(Dinov2::new(
            &cfg,
            self.var_builder(Component::ImageEncoder, dtype, device)?,
        )?)
    }
}

/// What `verify` found in one component's weights file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentCheck {
    pub component: Component,
    /// Tensors the model needs, all present with the right shape and a float dtype.
    pub tensors: usize,
    /// Parameters in those tensors.
    pub parameters: usize,
    /// Every problem found, each naming the tensor; empty when the component loads.
    pub problems: Vec<String>,
}

impl Checkpoint {
    /// The tensors (name, shape) the port will request for `c`, from its config alone.
    pub fn required_tensors(&self, c: Component) -> Result<Vec<TensorSpec>> {
        let recorder = ShapeRecorder::new();
        let vb = VarBuilder::from_backend(Box::new(recorder.clone()), DType::F32, Device::Cpu);
        match c {
            Component::Transformer => drop(TripoSGDiT::new(&self.dit_config()?, vb)?),
            Component::Vae => drop(TripoSGVae::new(&self.vae_config()?, vb)?),
            Component::ImageEncoder => drop(Dinov2::new(&self.dinov2_config()?, vb)?),
        }
        Ok(recorder.requested())
    }

    /// Every tensor `c` needs, read into host memory in `dtype`: the copy a model that waits in
    /// host memory between jobs' stages is rebuilt from (`VarBuilder::from_tensors`).
    pub fn host_tensors(&self, c: Component, dtype: DType) -> Result<HashMap<String, Tensor>> {
        let vb = self.var_builder(c, dtype, &Device::Cpu)?;
        self.required_tensors(c)?
            .into_iter()
            .map(|(name, shape)| {
                let tensor = vb.get(shape, &name)?;
                Ok((name, tensor))
            })
            .collect()
    }

    /// Checks a component's files without loading weights: config, header, and every required
    /// tensor's presence, shape and dtype.
    pub fn verify(&self, c: Component) -> Result<ComponentCheck> {
        let required = self.required_tensors(c)?;
        let file = CheckedSafetensors::open(&self.weights_path(c))?;
        let header: std::collections::HashMap<_, _> = file
            .header()
            .into_iter()
            .map(|(name, shape, dtype)| (name, (shape, dtype)))
            .collect();
        let mut problems = Vec::new();
        for (name, shape) in &required {
            use safetensors::Dtype::{BF16, F16, F32};
            match header.get(name) {
                None => problems.push(format!("missing tensor `{name}`")),
                Some((got, _)) if got != shape => {
                    problems.push(format!("`{name}` has shape {got:?}, expected {shape:?}"))
                }
                Some((_, dtype)) if !matches!(dtype, F32 | F16 | BF16) => {
                    problems.push(format!("`{name}` has dtype {dtype:?}, expected a float"))
                }
                Some(_) => {}
            }
        }
        Ok(ComponentCheck {
            component: c,
            tensors: required.len(),
            parameters: required
                .iter()
                .map(|(_, s)| s.iter().product::<usize>())
                .sum(),
            problems,
        })
    }
}
