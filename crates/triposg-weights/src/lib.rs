//! The weights folder (`TripoSG/` and `RMBG-1.4/`, the Python app's `pretrained_weights`
//! layout): getting it from the Hugging Face hub, and checking it without loading it. Shared by
//! `triposg download` / `check-weights` and the web app's "download the weights" button.

pub mod check;
pub mod download;

pub use check::{check, problems, ComponentStatus};
pub use download::{download, human_bytes, Options, Progress};
