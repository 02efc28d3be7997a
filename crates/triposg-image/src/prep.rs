//! Upstream's `load_image` + `prepare_image` (`scripts/image_process.py`): scale to <= 2000 px,
//! keep a usable alpha cut-out or segment with RMBG, frame the object on white with a margin.
//! Every arithmetic step keeps upstream's types (f32 tensors, uint8 truncation) so that, given
//! the same mask, the framed image is bit-identical.

use candle_core::{DType, Device, Tensor};
use image::{DynamicImage, RgbImage};
use triposg_model::rmbg::{BriaRmbg, RMBG_INPUT_SIZE};

use crate::dinov2;
use crate::error::{ImageError, Result};
use crate::mask::{
    largest_contour_box, otsu_threshold, remove_small_components, BoundingBox, Mask,
};
use crate::resample::{resize_area, resize_bilinear_aa, Planar};

/// Longer side upstream scales larger images down to.
pub const MAX_SIDE: usize = 2000;
/// Mask components smaller than this many pixels are dropped as specks.
pub const MIN_COMPONENT: usize = 200;

/// Background removal: foreground probability per pixel.
pub trait Segmenter {
    /// `rgb`: channel-major `[3, 1024, 1024]` in [0, 1]; returns `1024 * 1024` probabilities.
    fn segment(&self, rgb: &[f32]) -> Result<Vec<f32>>;
}

/// BriaRMBG-1.4 as upstream's `rmbg()` runs it: input minus 0.5, finest side output.
pub struct Rmbg {
    net: BriaRmbg,
    dtype: DType,
    device: Device,
}

impl Rmbg {
    pub fn new(net: BriaRmbg, dtype: DType, device: Device) -> Self {
        Self { net, dtype, device }
    }

    /// Loads `<weights>/RMBG-1.4/`.
    pub fn load(dir: &std::path::Path, dtype: DType, device: &Device) -> Result<Self> {
        Ok(Self::new(
            BriaRmbg::load(dir, dtype, device)?,
            dtype,
            device.clone(),
        ))
    }
}

impl Segmenter for Rmbg {
    fn segment(&self, rgb: &[f32]) -> Result<Vec<f32>> {
        let s = RMBG_INPUT_SIZE;
        let x = Tensor::from_slice(rgb, (1, 3, s, s), &Device::Cpu)?
            .to_device(&self.device)?
            .to_dtype(self.dtype)?;
        let sides = self.net.forward(&(x - 0.5)?)?;
        Ok(sides[0].to_dtype(DType::F32)?.flatten_all()?.to_vec1()?)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrepOptions {
    /// Space around the object, as a fraction of its longer side (upstream: 0.1).
    pub margin: f64,
}

impl Default for PrepOptions {
    fn default() -> Self {
        Self { margin: 0.1 }
    }
}

/// What the model will see.
#[derive(Debug, Clone)]
pub struct PreparedImage {
    /// The framed image, object on white with the margin (what the UI shows).
    pub image: RgbImage,
    /// DINOv2 input, channel-major `[3, 224, 224]`.
    pub pixel_values: Vec<f32>,
    /// Whether the image's own alpha channel was the cut-out (else RMBG's mask).
    pub used_alpha: bool,
    /// The object's `(x, y, w, h)` in the image after downscaling to <= 2000 px.
    pub bbox: BoundingBox,
}

impl PreparedImage {
    /// `[1, 3, 224, 224]` f32 for `Dinov2::forward`.
    pub fn pixel_tensor(&self, device: &Device) -> Result<Tensor> {
        let n = dinov2::CROP;
        Ok(Tensor::from_slice(
            &self.pixel_values,
            (1, 3, n, n),
            device,
        )?)
    }
}

/// Frames the object and computes the DINOv2 input. `segmenter` runs only when the image has
/// no usable alpha channel.
pub fn prepare(
    image: &DynamicImage,
    segmenter: &dyn Segmenter,
    options: &PrepOptions,
) -> Result<PreparedImage> {
    let (rgb, alpha) = to_upstream_pixels(image);
    let cutout = match alpha.filter(is_valid_alpha) {
        Some(a) => alpha_cutout(&a),
        None => segment_cutout(&rgb, segmenter)?,
    };
    let framed = frame(&rgb, &cutout, options.margin);
    Ok(PreparedImage {
        pixel_values: dinov2::pixel_values(&framed),
        image: framed,
        used_alpha: cutout.from_alpha,
        bbox: cutout.bbox,
    })
}

/// cv2's `IMREAD_UNCHANGED` view of the image after upstream's downscale and depth reduction:
/// 8-bit RGB planes plus the alpha plane if there is one.
fn to_upstream_pixels(image: &DynamicImage) -> (Planar<u8>, Option<Planar<u8>>) {
    let has_alpha = image.color().has_alpha();
    let channels = if has_alpha { 4 } else { 3 };
    let (width, height) = (image.width() as usize, image.height() as usize);
    let deep = image.color().bytes_per_pixel() / image.color().channel_count() > 1;
    fn floats<T: Into<f32>>(raw: Vec<T>) -> Vec<f32> {
        raw.into_iter().map(Into::into).collect()
    }
    let (samples, max) = match (deep, has_alpha) {
        (false, false) => (floats(image.to_rgb8().into_raw()), 255.0),
        (false, true) => (floats(image.to_rgba8().into_raw()), 255.0),
        (true, false) => (floats(image.to_rgb16().into_raw()), 65535.0),
        (true, true) => (floats(image.to_rgba16().into_raw()), 65535.0),
    };
    let mut planar = Planar::from_interleaved(channels, height, width, &samples);
    let scale = MAX_SIDE as f64 / height.max(width) as f64;
    if scale < 1.0 {
        let (w, h) = (
            (width as f64 * scale) as usize,
            (height as f64 * scale) as usize,
        );
        planar = resize_area(&planar, h, w, max);
    }
    // numpy: uint16 * (255 / 65535) in f64, truncated by astype(uint8).
    let to_u8 = |v: f32| (f64::from(v) * (255.0 / f64::from(max))) as u8;
    let planar = if max > 255.0 {
        planar.map(to_u8)
    } else {
        planar.map(|v| v as u8)
    };
    let n = planar.height * planar.width;
    let alpha = has_alpha.then(|| Planar {
        channels: 1,
        data: planar.data[3 * n..].to_vec(),
        ..planar.clone()
    });
    let rgb = Planar {
        channels: 3,
        data: planar.data[..3 * n].to_vec(),
        ..planar
    };
    (rgb, alpha)
}

/// Upstream's `is_valid_alpha`: at least 1% of pixels in the lowest and in the highest of 20
/// histogram bins, i.e. a real cut-out rather than an opaque or faded channel.
fn is_valid_alpha(alpha: &Planar<u8>) -> bool {
    let min_count = (alpha.data.len() as f64) * 0.01;
    // cv2.calcHist with 20 bins over [0, 256): bin 0 holds 0..=12, bin 19 holds 244..=255.
    let bin = |v: u8| usize::from(v) * 20 / 256;
    let count = |b: usize| alpha.data.iter().filter(|&&v| bin(v) == b).count() as f64;
    count(0) >= min_count && count(19) >= min_count
}

struct Cutout {
    /// Opacity per pixel in [0, 1].
    alpha: Vec<f32>,
    bbox: BoundingBox,
    from_alpha: bool,
}

/// A valid alpha channel is used as is; the box covers every pixel that is not fully clear.
fn alpha_cutout(alpha: &Planar<u8>) -> Cutout {
    let w = alpha.width;
    let on: Vec<usize> = (0..alpha.data.len())
        .filter(|&i| alpha.data[i] > 0)
        .collect();
    // is_valid_alpha guarantees opaque pixels.
    let (x0, x1) = (
        on.iter().map(|i| i % w).min().unwrap(),
        on.iter().map(|i| i % w).max().unwrap(),
    );
    let (y0, y1) = (on[0] / w, on[on.len() - 1] / w);
    Cutout {
        alpha: alpha.data.iter().map(|&a| f32::from(a) / 255.0).collect(),
        bbox: (x0, y0, x1 - x0 + 1, y1 - y0 + 1),
        from_alpha: true,
    }
}

/// RMBG at 1024x1024, mask back to size, min-max, Otsu, specks removed, largest contour.
fn segment_cutout(rgb: &Planar<u8>, segmenter: &dyn Segmenter) -> Result<Cutout> {
    let s = RMBG_INPUT_SIZE;
    let input = resize_bilinear_aa(&rgb.map(|v| f32::from(v) / 255.0), s, s);
    if input.data.iter().fold(0.0f32, |m, &v| m.max(v)) < 1e-3 {
        return Err(ImageError::AllBlack);
    }
    let probs = segmenter.segment(&input.data)?;
    let probs = Planar {
        channels: 1,
        height: s,
        width: s,
        data: probs,
    };
    let probs = resize_bilinear_aa(&probs, rgb.height, rgb.width);
    let (lo, hi) = probs
        .data
        .iter()
        .fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    // A flat mask has no object to find (upstream divides by zero here).
    if hi <= lo {
        return Err(ImageError::NoForeground);
    }
    let levels: Vec<u8> = probs
        .data
        .iter()
        .map(|&v| ((v - lo) / (hi - lo) * 255.0) as u8)
        .collect();
    let threshold = otsu_threshold(&levels);
    let mask = Mask {
        width: rgb.width,
        height: rgb.height,
        on: levels.iter().map(|&v| v > threshold).collect(),
    };
    let mask = remove_small_components(&mask, MIN_COMPONENT);
    let bbox = largest_contour_box(&mask).ok_or(ImageError::NoForeground)?;
    Ok(Cutout {
        alpha: mask
            .on
            .iter()
            .map(|&on| if on { 1.0 } else { 0.0 })
            .collect(),
        bbox,
        from_alpha: false,
    })
}

/// Composite on white, crop to the box, pad to (about) a square with the margin, to uint8.
fn frame(rgb: &Planar<u8>, cutout: &Cutout, margin: f64) -> RgbImage {
    let (x, y, w, h) = cutout.bbox;
    let (pad_x, pad_y) = if w > h {
        let pad_x = (w as f64 * margin) as usize;
        (pad_x, (pad_x as f64 + (w - h) as f64 / 2.0) as usize)
    } else {
        let pad_y = (h as f64 * margin) as usize;
        ((pad_y as f64 + (h - w) as f64 / 2.0) as usize, pad_y)
    };
    let (out_w, out_h) = (w + 2 * pad_x, h + 2 * pad_y);
    let n = rgb.width * rgb.height;
    // White everywhere the crop does not reach, as F.pad(value=1.0) then *255.
    let mut out = RgbImage::from_pixel(out_w as u32, out_h as u32, image::Rgb([255; 3]));
    for (oy, sy) in (pad_y..pad_y + h).zip(y..y + h) {
        for (ox, sx) in (pad_x..pad_x + w).zip(x..x + w) {
            let i = sy * rgb.width + sx;
            let a = cutout.alpha[i];
            let px = std::array::from_fn(|c| {
                let v = f32::from(rgb.data[c * n + i]) / 255.0 * a + 1.0 * (1.0 - a);
                (v * 255.0) as u8
            });
            out.put_pixel(ox as u32, oy as u32, image::Rgb(px));
        }
    }
    out
}
