use triposg_model::ModelError;

/// What went wrong with a user's image, worded for the user; the input is never modified.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("image file too large ({bytes} bytes, limit {limit}): upload a smaller file")]
    FileTooLarge { bytes: u64, limit: u64 },

    #[error("image too large ({pixels} px, limit {limit}): downscale it and try again")]
    TooLarge { pixels: u64, limit: u64 },

    #[error("image too large ({width}x{height}, limit {limit} px per side): crop or downscale it and try again")]
    TooLong { width: u32, height: u32, limit: u32 },

    #[error("unsupported format: {0}; use PNG, JPEG, WebP, BMP, TIFF or GIF")]
    UnsupportedFormat(String),

    #[error("cannot decode image: {0}; the file is damaged or incomplete")]
    Malformed(String),

    #[error("image is all black: there is nothing to cut out")]
    AllBlack,

    #[error("no foreground found: use a photo of one object on a plain background, or a cut-out with transparency")]
    NoForeground,

    #[error(transparent)]
    Model(#[from] ModelError),
}

impl From<candle_core::Error> for ImageError {
    fn from(e: candle_core::Error) -> Self {
        Self::Model(e.into())
    }
}

pub type Result<T> = std::result::Result<T, ImageError>;
