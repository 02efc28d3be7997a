use std::path::PathBuf;

/// Errors a user can act on: each names the file or tensor at fault and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("missing weights file {path}: the download looks incomplete; run `triposg download` (or copy the Hugging Face folder there)")]
    MissingFile { path: PathBuf },

    #[error("cannot read weights file {path}: {reason}. The file is probably truncated or not a safetensors file; delete it and run `triposg download` again")]
    UnreadableFile { path: PathBuf, reason: String },

    #[error("bad config {path}: {reason}")]
    BadConfig { path: PathBuf, reason: String },

    #[error("invalid input: {0}")]
    InvalidInput(String),

    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

pub type Result<T> = std::result::Result<T, ModelError>;
