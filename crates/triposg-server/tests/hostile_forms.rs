//! Hostile uploads: mutated upload forms (a bounded, seeded mutational fuzz over the committed
//! corpus fuzz/corpus/upload_form and the reproducers in fuzz/regressions/upload_form) sent to a
//! real server, and random parameter values checked against the server-side bounds.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use common::{config, start};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use triposg_server::params::{JobParams, FORMATS, MAX_CANDIDATES};

fn seeds() -> Vec<Vec<u8>> {
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut seeds = Vec::new();
    for folder in ["corpus", "regressions"] {
        if let Ok(entries) = std::fs::read_dir(fuzz.join(folder).join("upload_form")) {
            for entry in entries {
                seeds.push(std::fs::read(entry.unwrap().path()).unwrap());
            }
        }
    }
    assert!(seeds.len() >= 3, "no upload_form corpus");
    seeds
}

/// One random edit of the kinds that break parsers: flipped, inserted, deleted and repeated
/// bytes, truncation, and splices of two forms.
fn mutate(rng: &mut StdRng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut data = seeds[rng.random_range(0..seeds.len())].clone();
    for _ in 0..rng.random_range(1..=4) {
        let len = data.len().max(1);
        let at = rng.random_range(0..len).min(data.len());
        match rng.random_range(0..7) {
            0 => {
                if at < data.len() {
                    data[at] ^= 1 << rng.random_range(0..8);
                }
            }
            1 => {
                let junk: Vec<u8> = (0..rng.random_range(1..16)).map(|_| rng.random()).collect();
                data.splice(at..at, junk);
            }
            2 => {
                let end = (at + rng.random_range(1..64)).min(data.len());
                data.drain(at..end);
            }
            3 => {
                let end = (at + rng.random_range(1..64)).min(data.len());
                let piece = data[at..end].to_vec();
                data.splice(at..at, piece);
            }
            4 => data.truncate(at),
            5 => {
                let other = &seeds[rng.random_range(0..seeds.len())];
                let from = rng.random_range(0..other.len());
                data.truncate(at);
                data.extend_from_slice(&other[from..]);
            }
            _ => {
                // Parser-significant bytes where they hurt most.
                let tokens: [&[u8]; 6] = [b"\r\n", b"--b0undary", b"\"", b";", b"\r\n\r\n", b"\0"];
                let t = tokens[rng.random_range(0..tokens.len())];
                data.splice(at..at, t.iter().copied());
            }
        }
    }
    data
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_upload_forms_get_a_4xx_or_are_accepted_never_a_5xx() {
    let outputs = tempfile::tempdir().unwrap();
    // No weights: whatever gets accepted fails at once instead of keeping the CPU busy.
    let no_weights = tempfile::tempdir().unwrap();
    let mut c = config(outputs.path());
    c.weights = no_weights.path().to_path_buf();
    c.queue_limit = 10_000;
    let server = start(c).await;
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let seeds = seeds();
    let mut rng = StdRng::seed_from_u64(10);
    let mut by_status: HashMap<u16, usize> = HashMap::new();
    let inputs = seeds
        .iter()
        .cloned()
        .chain((0..400).map(|_| mutate(&mut rng, &seeds)));
    for (i, body) in inputs.enumerate() {
        let path = ["/api/jobs", "/api/prepare"][i % 2];
        let boundary = if i % 7 == 3 { "b0undar" } else { "b0undary" };
        let r = http
            .post(format!("{base}{path}"))
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("input {i} to {path}: no answer: {e}"));
        let status = r.status();
        *by_status.entry(status.as_u16()).or_default() += 1;
        let text = r.text().await.unwrap();
        assert!(
            status.is_success() || status.is_client_error(),
            "input {i} to {path}: {status} {text}\n{}",
            String::from_utf8_lossy(&body)
        );
        if status.is_client_error() {
            let error: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert!(!error["error"].as_str().unwrap().is_empty(), "{text}");
        }
    }
    eprintln!("answers by status: {by_status:?}");
    assert!(
        by_status.len() >= 2,
        "the mutations never changed the outcome: {by_status:?}"
    );
    let r = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    server.shutdown().await.unwrap();
}

/// Whatever text arrives in the fields, an accepted job is within the bounds the model and the
/// disk can take.
#[test]
fn random_parameter_values_are_refused_or_within_bounds() {
    let names = [
        "steps",
        "guidance",
        "seed",
        "candidates",
        "max_faces",
        "faces",
        "octree_depth",
        "num_tokens",
        "margin",
        "formats",
    ];
    let values = [
        "0",
        "1",
        "-1",
        "7",
        "10",
        "11",
        "200",
        "201",
        "8192",
        "8193",
        "1e3",
        "1e40",
        "NaN",
        "inf",
        "-inf",
        "-0",
        "0.5",
        "30.0001",
        "18446744073709551615",
        "18446744073709551616",
        "",
        " 5 ",
        "0x10",
        "glb",
        "glb,stl",
        "exe",
        ",,,",
        "GLB, PLY ",
        "../x",
    ];
    let mut rng = StdRng::seed_from_u64(7);
    let mut accepted = 0;
    for _ in 0..20_000 {
        let mut fields = HashMap::new();
        for _ in 0..rng.random_range(0..5) {
            let name = names[rng.random_range(0..names.len())];
            let value = values[rng.random_range(0..values.len())];
            fields.insert(name.to_string(), value.to_string());
        }
        let Ok(p) = JobParams::from_fields(&fields) else {
            continue;
        };
        accepted += 1;
        assert!((1..=200).contains(&p.steps), "{fields:?}");
        assert!(
            p.guidance.is_finite() && (1.0..=30.0).contains(&p.guidance),
            "{fields:?}"
        );
        assert!((7..=10).contains(&p.octree_depth), "{fields:?}");
        assert!((16..=8192).contains(&p.num_tokens), "{fields:?}");
        assert!((1..=MAX_CANDIDATES).contains(&p.candidates), "{fields:?}");
        assert!(p.seed.checked_add(p.candidates).is_some(), "{fields:?}");
        assert!((0.0..=1.0).contains(&p.margin), "{fields:?}");
        assert!(p.max_faces.is_none_or(|f| f >= 4), "{fields:?}");
        // No raw format is fine when print files are made.
        assert!(!p.formats.is_empty() || p.print.is_some(), "{fields:?}");
        assert!(
            p.formats.iter().all(|f| FORMATS.contains(&f.as_str())),
            "{fields:?}"
        );
    }
    assert!(accepted > 100, "only {accepted} accepted");
}
