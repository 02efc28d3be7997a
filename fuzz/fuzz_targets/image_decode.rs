//! The upload decoder as the server calls it: any bytes must give an image or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use triposg_image::DecodeLimits;

fuzz_target!(|data: &[u8]| {
    // Smaller than the server's limits so that each run stays fast; the checks are the same.
    let limits = DecodeLimits {
        max_bytes: 1 << 20,
        max_pixels: 1 << 20,
        max_dimension: 2048,
    };
    let _ = triposg_image::decode(data, &limits);
});
