//! The three resamplers upstream's preparation goes through, reproduced to the rounding step:
//! OpenCV's `INTER_AREA` (downscale to <= 2000 px), torch's antialiased bilinear
//! (`transforms.Resize(antialias=True)` around RMBG) and Pillow's 8-bit bicubic
//! (transformers' DINOv2 preprocessing). Images are planar: `[channel][row][column]`.

use rayon::prelude::*;

#[derive(Debug, Clone, Copy)]
pub(crate) enum Filter {
    Bilinear,
    /// Pillow's and torch-antialias's cubic, a = -0.5.
    Bicubic,
}

impl Filter {
    fn support(self) -> f64 {
        match self {
            Filter::Bilinear => 1.0,
            Filter::Bicubic => 2.0,
        }
    }

    fn eval(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            Filter::Bilinear if x < 1.0 => 1.0 - x,
            Filter::Bicubic if x < 1.0 => (1.5 * x - 2.5) * x * x + 1.0,
            Filter::Bicubic if x < 2.0 => (((x - 5.0) * x + 8.0) * x - 4.0) * -0.5,
            _ => 0.0,
        }
    }
}

/// For each output index, the first input index and the weights from there on.
pub(crate) type Taps<W> = Vec<(usize, Vec<W>)>;

/// Pillow's `precompute_coeffs` (torch's antialiased kernels compute the same): the filter is
/// stretched by the downscale factor so every input pixel contributes, which is what separates
/// both libraries from plain interpolation.
pub(crate) fn filter_taps(in_size: usize, out_size: usize, filter: Filter) -> Taps<f64> {
    let scale = in_size as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    let support = filter.support() * filter_scale;
    (0..out_size)
        .map(|o| {
            let center = (o as f64 + 0.5) * scale;
            let min = ((center - support + 0.5) as isize).max(0) as usize;
            let max = ((center + support + 0.5) as usize).min(in_size);
            let mut w: Vec<f64> = (min..max)
                .map(|i| filter.eval((i as f64 - center + 0.5) / filter_scale))
                .collect();
            let total: f64 = w.iter().sum();
            if total != 0.0 {
                w.iter_mut().for_each(|w| *w /= total);
            }
            (min, w)
        })
        .collect()
}

/// OpenCV's `computeResizeAreaTab` for a downscale: each output pixel averages the input
/// pixels its footprint covers, partial ones by the covered fraction.
pub(crate) fn area_taps(in_size: usize, out_size: usize) -> Taps<f32> {
    // OpenCV derives the step from the inverse scale; keeping its rounding keeps its weights.
    let scale = 1.0 / (out_size as f64 / in_size as f64);
    (0..out_size)
        .map(|o| {
            let start = o as f64 * scale;
            let end = start + scale;
            let cell = scale.min(in_size as f64 - start);
            let last = (end.floor() as usize).min(in_size - 1);
            let first = (start.ceil() as usize).min(last);
            let mut w = Vec::new();
            let mut from = first;
            if first as f64 - start > 1e-3 {
                from = first - 1;
                w.push(((first as f64 - start) / cell) as f32);
            }
            w.extend((first..last).map(|_| (1.0 / cell) as f32));
            if end - last as f64 > 1e-3 {
                w.push(((end - last as f64).min(1.0).min(cell) / cell) as f32);
            }
            (from, w)
        })
        .collect()
}

/// Planar pixels: `data[(c * height + y) * width + x]`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Planar<T> {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub data: Vec<T>,
}

impl<T: Copy> Planar<T> {
    /// From pixels stored channel after channel (`[row][column][channel]`).
    pub fn from_interleaved(channels: usize, height: usize, width: usize, pixels: &[T]) -> Self {
        let mut data = Vec::with_capacity(pixels.len());
        for c in 0..channels {
            data.extend(pixels.chunks_exact(channels).map(|px| px[c]));
        }
        Planar {
            channels,
            height,
            width,
            data,
        }
    }

    pub fn map<U>(&self, f: impl Fn(T) -> U) -> Planar<U> {
        Planar {
            channels: self.channels,
            height: self.height,
            width: self.width,
            data: self.data.iter().map(|&v| f(v)).collect(),
        }
    }

    pub fn plane(&self, c: usize) -> &[T] {
        let n = self.height * self.width;
        &self.data[c * n..(c + 1) * n]
    }
}

/// Rows first, then columns, as OpenCV, Pillow and torch all do; `dot` folds one output
/// sample from its (input, weight) pairs in input order, so each library's accumulation and
/// rounding can be reproduced. A pass whose size does not change is skipped, as Pillow does.
pub(crate) fn separable<T: Copy + Default + Send + Sync, W: Copy + Sync>(
    src: &Planar<T>,
    (width, columns): (usize, &Taps<W>),
    (height, rows): (usize, &Taps<W>),
    dot: impl Fn(&[T], &[W]) -> T + Sync,
) -> Planar<T> {
    // Output rows in parallel: each output sample is computed as before, so the result does
    // not depend on the thread count.
    let mut tmp = src.clone();
    if width != src.width {
        tmp.width = width;
        tmp.data = src
            .data
            .par_chunks_exact(src.width)
            .flat_map_iter(|line| {
                columns
                    .iter()
                    .map(|(first, w)| dot(&line[*first..*first + w.len()], w))
            })
            .collect();
    }
    if height == src.height {
        return tmp;
    }
    let mut out = vec![T::default(); src.channels * height * width];
    out.par_chunks_exact_mut(width)
        .enumerate()
        .for_each(|(row, out)| {
            let plane = tmp.plane(row / height);
            let (first, w) = &rows[row % height];
            let mut column = Vec::with_capacity(w.len());
            for (x, out) in out.iter_mut().enumerate() {
                column.clear();
                column.extend((0..w.len()).map(|j| plane[(first + j) * width + x]));
                *out = dot(&column, w);
            }
        });
    Planar {
        channels: src.channels,
        height,
        width,
        data: out,
    }
}

/// Sum of products in f32, in input order, as OpenCV's and torch's float kernels accumulate.
fn dot_f32(values: &[f32], weights: &[f32]) -> f32 {
    values
        .iter()
        .zip(weights)
        .fold(0.0, |acc, (v, w)| acc + v * w)
}

fn f32_taps(taps: Taps<f64>) -> Taps<f32> {
    taps.into_iter()
        .map(|(first, w)| (first, w.into_iter().map(|w| w as f32).collect()))
        .collect()
}

/// `cv2.resize(interpolation=INTER_AREA)` for a downscale of 8- or 16-bit samples (given as
/// f32): float accumulation, then rounding half to even and saturation to `max`.
pub(crate) fn resize_area(src: &Planar<f32>, height: usize, width: usize, max: f32) -> Planar<f32> {
    let out = separable(
        src,
        (width, &area_taps(src.width, width)),
        (height, &area_taps(src.height, height)),
        dot_f32,
    );
    out.map(|v| v.round_ties_even().clamp(0.0, max))
}

/// torchvision `Resize(antialias=True)` (bilinear) on float data.
pub(crate) fn resize_bilinear_aa(src: &Planar<f32>, height: usize, width: usize) -> Planar<f32> {
    separable(
        src,
        (
            width,
            &f32_taps(filter_taps(src.width, width, Filter::Bilinear)),
        ),
        (
            height,
            &f32_taps(filter_taps(src.height, height, Filter::Bilinear)),
        ),
        dot_f32,
    )
}

/// Pillow keeps 8-bit resampling in fixed point with 22 fraction bits and clips to 0..=255
/// after each pass; matching that is what makes the DINOv2 input bit-identical.
const PRECISION_BITS: u32 = 32 - 8 - 2;

fn fixed_taps(taps: Taps<f64>) -> Taps<i64> {
    let one = f64::from(1u32 << PRECISION_BITS);
    taps.into_iter()
        .map(|(first, w)| {
            let w = w
                .into_iter()
                .map(|w| {
                    if w < 0.0 {
                        (w * one - 0.5) as i64
                    } else {
                        (w * one + 0.5) as i64
                    }
                })
                .collect();
            (first, w)
        })
        .collect()
}

/// `PIL.Image.resize` of an 8-bit image.
pub(crate) fn resize_pil_u8(
    src: &Planar<u8>,
    height: usize,
    width: usize,
    filter: Filter,
) -> Planar<u8> {
    separable(
        src,
        (width, &fixed_taps(filter_taps(src.width, width, filter))),
        (height, &fixed_taps(filter_taps(src.height, height, filter))),
        |values, weights| {
            let acc = values
                .iter()
                .zip(weights)
                .fold(1i64 << (PRECISION_BITS - 1), |acc, (&v, w)| {
                    acc + i64::from(v) * w
                });
            (acc >> PRECISION_BITS).clamp(0, 255) as u8
        },
    )
}
