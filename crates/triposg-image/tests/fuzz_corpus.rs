//! Replays the decoder fuzzer's corpus and crash reproducers (fuzz/corpus/image_decode,
//! fuzz/regressions/image_decode; see docs/reliability.md): each file decodes within the limits
//! or fails with an error, never a panic.

use std::path::PathBuf;

use triposg_image::DecodeLimits;

#[test]
fn every_corpus_file_decodes_or_errs() {
    // The fuzz target's limits (fuzz/fuzz_targets/image_decode.rs).
    let limits = DecodeLimits {
        max_bytes: 1 << 20,
        max_pixels: 1 << 20,
        max_dimension: 2048,
    };
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut files = 0;
    for folder in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(folder).join("image_decode")) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            if let Ok(image) = triposg_image::decode(&bytes, &limits) {
                assert!(
                    u64::from(image.width()) * u64::from(image.height()) <= limits.max_pixels,
                    "{}",
                    path.display()
                );
            }
            files += 1;
        }
    }
    assert!(files >= 10, "only {files} corpus files");
}
