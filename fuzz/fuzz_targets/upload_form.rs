//! The job form as `POST /api/jobs` reads it (multipart parsing, then the parameters): any body
//! gives parameters within the bounds or a 4xx with a sentence, never a panic or a 5xx.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    triposg_fuzz::check_job_form(data);
});
