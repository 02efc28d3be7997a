//! Weight loading from the Hugging Face folder layout through memory-mapped safetensors.
//!
//! candle's own safetensors backend loads a tensor before comparing its shape and reports a bare
//! "cannot find tensor"; a user with a half-downloaded checkpoint needs the file, the tensor and
//! the fix, so this backend checks names and shapes against the header first.

use std::path::{Path, PathBuf};

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};
use serde::de::DeserializeOwned;

use crate::error::{ModelError, Result};

/// One memory-mapped safetensors file that explains what is wrong with it.
pub struct CheckedSafetensors {
    inner: MmapedSafetensors,
    path: PathBuf,
}

impl CheckedSafetensors {
    pub fn open(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(ModelError::MissingFile {
                path: path.to_path_buf(),
            });
        }
        // SAFETY: the mapping is only read. The file must not be truncated or rewritten while
        // the model is loaded (a downloader replaces files by rename, which leaves this mapping
        // intact); safetensors checks the header against the file size before any access.
        let inner =
            unsafe { MmapedSafetensors::new(path) }.map_err(|e| ModelError::UnreadableFile {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            inner,
            path: path.to_path_buf(),
        })
    }

    /// Names, shapes and dtypes of every tensor in the file, sorted by name.
    pub fn header(&self) -> Vec<(String, Vec<usize>, safetensors::Dtype)> {
        let mut out: Vec<_> = self
            .inner
            .tensors()
            .into_iter()
            .map(|(name, view)| (name, view.shape().to_vec(), view.dtype()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    fn missing(&self, name: &str) -> candle_core::Error {
        candle_core::Error::Msg(format!(
            "weights file {} has no tensor `{name}`: it is incomplete or belongs to another model; \
             run `triposg download` to fetch the right checkpoint",
            self.path.display()
        ))
    }

    pub fn into_var_builder(self, dtype: DType, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self), dtype, device.clone())
    }
}

impl SimpleBackend for CheckedSafetensors {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        _: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let view = self.inner.get(name).map_err(|_| self.missing(name))?;
        if view.shape() != shape.dims() {
            return Err(candle_core::Error::Msg(format!(
                "tensor `{name}` in {} has shape {:?}, the model config expects {:?}: \
                 the config.json and the weights do not belong together",
                self.path.display(),
                view.shape(),
                shape.dims()
            )));
        }
        self.inner.load(name, dev)?.to_dtype(dtype)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        if self.inner.get(name).is_err() {
            return Err(self.missing(name));
        }
        self.inner.load(name, dev)?.to_dtype(dtype)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.inner.get(name).is_ok()
    }
}

/// Reads a component's `config.json` (or any serde config) with the path in the error.
pub fn read_config<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            ModelError::MissingFile {
                path: path.to_path_buf(),
            }
        } else {
            ModelError::BadConfig {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }
        }
    })?;
    serde_json::from_str(&text).map_err(|e| ModelError::BadConfig {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// A tensor's name and shape.
pub type TensorSpec = (String, Vec<usize>);

/// A backend that hands out zero-cost placeholders and records every tensor the model asks
/// for. Building a model on it yields the exact manifest (names and shapes) a checkpoint must
/// satisfy, without reading or allocating weights: used to validate a folder before loading
/// gigabytes, and to prove that the real hub checkpoints match what the port requests.
/// Clones share one record, so a clone can go into the `VarBuilder` and the original be read.
#[derive(Default, Clone)]
pub struct ShapeRecorder {
    requested: std::sync::Arc<std::sync::Mutex<Vec<TensorSpec>>>,
}

impl ShapeRecorder {
    pub fn new() -> Self {
        Self::default()
    }

    /// The recorded requests, sorted by name.
    pub fn requested(&self) -> Vec<TensorSpec> {
        let mut out = self.requested.lock().expect("recorder poisoned").clone();
        out.sort();
        out
    }
}

impl SimpleBackend for ShapeRecorder {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        _: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        self.requested
            .lock()
            .expect("recorder poisoned")
            .push((name.to_string(), shape.dims().to_vec()));
        // A broadcast scalar has the right shape and no storage behind it.
        Tensor::zeros((), dtype, dev)?.broadcast_as(shape)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        Err(candle_core::Error::Msg(format!(
            "tensor `{name}` requested without a shape; the manifest needs shapes"
        )))
    }

    fn contains_tensor(&self, _: &str) -> bool {
        true
    }
}
