//! Every supported encoding decodes to the same pixels; every bad input is refused with an
//! error a user understands, before any large allocation.

mod common;

use common::{read, Constant, FakeRmbg};
use image::{DynamicImage, RgbImage};
use proptest::prelude::*;
use triposg_image::{decode, prepare, DecodeLimits, ImageError, PrepOptions};

fn decoded(file: &str) -> DynamicImage {
    decode(
        &read(&format!("images/formats/{file}")),
        &DecodeLimits::default(),
    )
    .unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn mean_abs_diff(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let sum: u64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    sum as f64 / a.as_raw().len() as f64
}

#[test]
fn every_format_decodes_to_the_source_pixels() {
    let reference = decoded("rgb.png").to_rgb8();
    assert_eq!(reference.dimensions(), (64, 48));
    // Lossless encodings (16-bit scaled by 257 converts back exactly) match bit for bit; lossy
    // and palette ones within what their encoding loses.
    for (file, tolerance) in [
        ("rgb.bmp", 0.0),
        ("rgb.tiff", 0.0),
        ("rgb.webp", 0.0),
        ("rgb16.png", 0.0),
        ("palette.png", 6.0),
        ("first_frame.gif", 6.0),
        ("rgb.jpg", 3.0),
        ("cmyk.jpg", 4.0),
    ] {
        let err = mean_abs_diff(&decoded(file).to_rgb8(), &reference);
        eprintln!("{file}: mean abs difference {err:.3}");
        assert!(err <= tolerance, "{file}: {err}");
    }
    let gray = decoded("gray.png");
    assert_eq!(gray.color(), image::ColorType::L8);
    assert_eq!((gray.width(), gray.height()), (64, 48));
    assert_eq!(decoded("rgb16.png").color(), image::ColorType::Rgb16);
}

/// The upstream examples are JPEG. zune-jpeg and libjpeg-turbo (OpenCV, Pillow) round their
/// IDCTs and upsample chroma differently: a level or two on average, more on sharp colour edges.
#[test]
fn jpeg_decoding_is_close_to_libjpeg_turbo() {
    for name in ["jkghed", "qwvfsd", "yywdsd"] {
        let ours = decode(
            &read(&format!("images/{name}.jpg")),
            &DecodeLimits::default(),
        )
        .unwrap();
        let theirs = image::open(common::fixtures().join(format!("images/{name}.png"))).unwrap();
        let (ours, theirs) = (ours.to_rgb8(), theirs.to_rgb8());
        let max = ours
            .as_raw()
            .iter()
            .zip(theirs.as_raw())
            .map(|(a, b)| a.abs_diff(*b))
            .max();
        let mean = mean_abs_diff(&ours, &theirs);
        eprintln!("{name}: JPEG decoders differ by {mean:.3} levels on average, at most {max:?}");
        assert!(mean < 1.5, "{name}: {mean}");
    }
}

#[test]
fn exif_orientation_is_applied() {
    let upright = decoded("rgb.jpg").rotate90().to_rgb8();
    let rotated = decoded("rotated.jpg").to_rgb8();
    assert_eq!(rotated.dimensions(), (48, 64));
    assert!(mean_abs_diff(&rotated, &upright) < 1.0);
}

fn decode_error(file: &str, limits: &DecodeLimits) -> ImageError {
    match decode(&read(file), limits) {
        Ok(_) => panic!("{file} decoded"),
        Err(e) => e,
    }
}

#[test]
fn malformed_files_are_rejected() {
    let limits = DecodeLimits::default();
    for file in ["images/bad/truncated.png", "images/bad/empty.png"] {
        let e = decode_error(file, &limits);
        assert!(matches!(e, ImageError::Malformed(_)), "{file}: {e:?}");
        assert!(e.to_string().starts_with("cannot decode image"), "{e}");
    }
    let e = decode_error("images/bad/text.jpg", &limits);
    assert!(matches!(e, ImageError::UnsupportedFormat(_)), "{e:?}");
    assert!(e.to_string().starts_with("unsupported format"), "{e}");
}

#[test]
fn decompression_bombs_are_rejected_from_the_header() {
    let limits = DecodeLimits::default();
    let e = decode_error("images/bad/huge_100000x100000.png", &limits);
    assert_eq!(
        e.to_string(),
        "image too large (10000000000 px, limit 64000000): downscale it and try again"
    );
    let e = decode_error("images/bad/long_60000x10.png", &limits);
    assert!(
        matches!(
            e,
            ImageError::TooLong {
                width: 60000,
                height: 10,
                limit: 16384
            }
        ),
        "{e:?}"
    );
    // The limits are the caller's.
    let small = DecodeLimits {
        max_pixels: 64 * 47,
        ..limits
    };
    let e = decode_error("images/formats/rgb.png", &small);
    assert!(
        matches!(
            e,
            ImageError::TooLarge {
                pixels: 3072,
                limit: 3008
            }
        ),
        "{e:?}"
    );
    let small = DecodeLimits {
        max_bytes: 100,
        ..limits
    };
    let e = decode_error("images/formats/rgb.png", &small);
    assert!(e.to_string().starts_with("image file too large"), "{e}");
}

#[test]
fn an_all_black_image_is_refused() {
    let image = decode(&read("images/bad/black.png"), &DecodeLimits::default()).unwrap();
    let e = prepare(&image, &FakeRmbg, &PrepOptions::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "image is all black: there is nothing to cut out"
    );
}

#[test]
fn no_foreground_is_refused() {
    let image = decode(&read("images/formats/rgb.png"), &DecodeLimits::default()).unwrap();
    // A flat mask, and a mask whose only object is a speck under 200 px.
    let flat = Constant(Box::new(|_| 0.5));
    let speck = Constant(Box::new(|i| {
        if i % 1024 < 20 && i / 1024 < 20 {
            1.0
        } else {
            0.0
        }
    }));
    for segmenter in [flat, speck] {
        let e = prepare(&image, &segmenter, &PrepOptions::default()).unwrap_err();
        assert!(e.to_string().starts_with("no foreground found"), "{e}");
    }
}

// 256 cases each by default; PROPTEST_CASES=100000 for a longer fuzzing run.
proptest! {
    /// The decoder is total: any bytes, including damaged real files, give an image or an error.
    #[test]
    fn decoder_never_panics(
        file in prop::sample::select(vec!["rgb.png", "rgb.jpg", "rgb.webp", "rgb.tiff", "rgb.bmp", "first_frame.gif", "rgb16.png"]),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = read(&format!("images/formats/{file}"));
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        bytes.truncate(cut.index(bytes.len()) + 1);
        let limits = DecodeLimits { max_pixels: 1 << 22, max_dimension: 4096, ..Default::default() };
        let _ = decode(&bytes, &limits);
    }

    #[test]
    fn random_bytes_are_rejected(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&bytes, &DecodeLimits::default());
    }
}
