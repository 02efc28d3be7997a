//! Image preparation for TripoSG, ported from upstream's `scripts/image_process.py` and proven
//! against it by golden tests: [`decode()`] untrusted uploads within [`DecodeLimits`], then
//! [`prepare`] them (alpha cut-out or BriaRMBG mask, framing on white, DINOv2 input).

pub mod decode;
pub mod dinov2;
pub mod error;
mod mask;
pub mod prep;
mod resample;

pub use decode::{decode, DecodeLimits};
pub use error::{ImageError, Result};
pub use mask::BoundingBox;
pub use prep::{prepare, PrepOptions, PreparedImage, Rmbg, Segmenter};
