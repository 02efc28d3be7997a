//! transformers' `BitImageProcessor` with TripoSG's `feature_extractor_dinov2` config: Pillow
//! bicubic resize of the shortest edge to 256, centre crop 224, x/255, ImageNet mean/std.

use image::RgbImage;

use crate::resample::{resize_pil_u8, Filter, Planar};

pub const SHORTEST_EDGE: usize = 256;
pub const CROP: usize = 224;
pub const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// transformers' `get_resize_output_image_size(default_to_square=False)`: `(height, width)`.
fn resized_size(height: usize, width: usize) -> (usize, usize) {
    let (short, long) = (width.min(height), width.max(height));
    let new_long = ((SHORTEST_EDGE * long) as f64 / short as f64) as usize;
    if width <= height {
        (new_long, SHORTEST_EDGE)
    } else {
        (SHORTEST_EDGE, new_long)
    }
}

/// The model input `[3, 224, 224]` (channel-major) for an RGB image.
pub fn pixel_values(image: &RgbImage) -> Vec<f32> {
    let (width, height) = (image.width() as usize, image.height() as usize);
    let planar = Planar::from_interleaved(3, height, width, image.as_raw());
    let (h, w) = resized_size(height, width);
    let resized = resize_pil_u8(&planar, h, w, Filter::Bicubic);
    let (top, left) = ((h - CROP) / 2, (w - CROP) / 2);
    let mut out = Vec::with_capacity(3 * CROP * CROP);
    for c in 0..3 {
        let plane = resized.plane(c);
        for y in top..top + CROP {
            for &v in &plane[y * w + left..y * w + left + CROP] {
                // transformers rescales in f64, then normalises in f32.
                let x = (f64::from(v) * (1.0 / 255.0)) as f32;
                out.push((x - MEAN[c]) / STD[c]);
            }
        }
    }
    out
}
