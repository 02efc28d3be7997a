//! Replays the upload-form fuzzer's corpus and crash reproducers (fuzz/corpus/upload_form,
//! fuzz/regressions/upload_form; see docs/reliability.md) through the job form reader: each
//! gives parameters within the bounds or a 4xx with a sentence, never a panic or a 5xx.

use std::path::PathBuf;

/// The fuzz target's content type (fuzz/src/lib.rs).
const CONTENT_TYPE: &str = "multipart/form-data; boundary=b0undary";

#[tokio::test]
async fn every_upload_form_is_read_within_bounds_or_refused_with_a_4xx() {
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let (mut read, mut refused) = (0, 0);
    for folder in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(folder).join("upload_form")) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let body = std::fs::read(&path).unwrap();
            match triposg_server::read_job_form_body(CONTENT_TYPE, body).await {
                Ok(params) => {
                    assert_eq!(params.validate(), Ok(()), "{}", path.display());
                    read += 1;
                }
                Err((status, message)) => {
                    assert!(
                        status.is_client_error() && !message.is_empty(),
                        "{}: {status} {message}",
                        path.display()
                    );
                    refused += 1;
                }
            }
        }
    }
    assert!(read >= 1 && refused >= 1, "{read} read, {refused} refused");
}
