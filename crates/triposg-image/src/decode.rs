//! Decoding untrusted uploads: size limits are checked on the encoded bytes and on the header's
//! dimensions before any pixel buffer is allocated, so a small file that claims 100k x 100k
//! pixels is rejected without decoding it.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageReader};

use crate::error::{ImageError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Encoded file size in bytes.
    pub max_bytes: u64,
    /// Width x height.
    pub max_pixels: u64,
    /// Longest side.
    pub max_dimension: u32,
}

impl Default for DecodeLimits {
    /// Room for any camera photo (a 48 Mpx phone sensor is 8000 x 6000); preparation scales
    /// everything to <= 2000 px anyway, and 64 Mpx of 16-bit RGBA is already 512 MiB.
    fn default() -> Self {
        Self {
            max_bytes: 64 << 20,
            max_pixels: 64_000_000,
            max_dimension: 16_384,
        }
    }
}

fn decode_error(e: image::ImageError) -> ImageError {
    match e {
        image::ImageError::Unsupported(e) => ImageError::UnsupportedFormat(e.to_string()),
        e => ImageError::Malformed(e.to_string()),
    }
}

/// Decodes PNG, JPEG (including CMYK), WebP, BMP, TIFF or GIF (first frame) from memory at its
/// own bit depth and channel layout, with the EXIF orientation applied.
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<DynamicImage> {
    let size = bytes.len() as u64;
    if size > limits.max_bytes {
        return Err(ImageError::FileTooLarge {
            bytes: size,
            limit: limits.max_bytes,
        });
    }
    if bytes.is_empty() {
        return Err(ImageError::Malformed("the file is empty".into()));
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ImageError::Malformed(e.to_string()))?;
    if reader.format().is_none() {
        return Err(ImageError::UnsupportedFormat(
            "the file is not an image this app can read".into(),
        ));
    }
    // Only headers are parsed here; pixels are decoded after the checks below.
    let mut decoder = reader.into_decoder().map_err(decode_error)?;
    let (width, height) = decoder.dimensions();
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(ImageError::TooLarge {
            pixels,
            limit: limits.max_pixels,
        });
    }
    if width.max(height) > limits.max_dimension {
        return Err(ImageError::TooLong {
            width,
            height,
            limit: limits.max_dimension,
        });
    }
    // Broken EXIF must not cost the user the image: it then shows as stored.
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(decode_error)?;
    image.apply_orientation(orientation);
    Ok(image)
}
