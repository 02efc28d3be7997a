//! Native candle ports of the TripoSG image-to-3D models, proven against the upstream PyTorch
//! code by golden tests (`tests/`), loading the Hugging Face checkpoint layout.
//!
//! Data flow: [`dinov2`] turns the prepared image into condition tokens, [`denoise`] runs the
//! [`dit`] under the [`scheduler`] to produce latents, and [`vae`] turns latents into signed
//! distances at query points. [`checkpoint`] finds and loads the components.

pub mod attention;
pub mod checkpoint;
pub mod denoise;
pub mod device;
pub mod dinov2;
pub mod dit;
pub mod dit_block;
pub mod error;
#[cfg(feature = "cuda")]
mod fused;
pub mod layers;
pub mod read_back;
pub mod rmbg;
pub mod scheduler;
pub mod vae;
pub mod weights;

pub use error::{ModelError, Result};
