//! Shared by the image tests: fixture paths and the stand-in for RMBG that
//! `tools/golden/make_image_fixtures.py` (`FakeRmbg`) also uses.

#![allow(dead_code)] // each test binary uses a different subset

use std::path::PathBuf;

use triposg_image::{Result, Segmenter};

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

pub fn read(relative: &str) -> Vec<u8> {
    let path = fixtures().join(relative);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `sigmoid(20 * (0.4 - min_c(x - 0.5)))`: high where the pixel is darker than white.
pub struct FakeRmbg;

impl Segmenter for FakeRmbg {
    fn segment(&self, rgb: &[f32]) -> Result<Vec<f32>> {
        let n = rgb.len() / 3;
        Ok((0..n)
            .map(|i| {
                let min = (0..3)
                    .map(|c| rgb[c * n + i] - 0.5)
                    .fold(f32::MAX, f32::min);
                1.0 / (1.0 + (-(20.0 * (0.4 - min))).exp())
            })
            .collect())
    }
}

/// A segmenter that returns a fixed map, for the error paths.
pub struct Constant(pub Box<dyn Fn(usize) -> f32>);

impl Segmenter for Constant {
    fn segment(&self, rgb: &[f32]) -> Result<Vec<f32>> {
        Ok((0..rgb.len() / 3).map(|i| (self.0)(i)).collect())
    }
}
