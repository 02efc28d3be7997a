//! `triposg download` against a local stand-in for the Hugging Face hub (HF_ENDPOINT, as
//! mirrors are used), serving the tiny fixture checkpoint over the hub's HTTP protocol: the
//! blob listing, `resolve` URLs with Range requests, commit and etag headers. Checks the files
//! land in the old app's layout byte for byte, the commit is pinned, interrupted transfers
//! are retried, corrupt ones are rejected, and offline mode explains itself.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn sha256(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// The repositories' files: TripoSG from the tiny fixture, RMBG as a small stand-in file.
fn repos() -> BTreeMap<&'static str, BTreeMap<String, Vec<u8>>> {
    let tiny = fixtures().join("tiny/TripoSG");
    let mut triposg = BTreeMap::new();
    for entry in walk(&tiny) {
        let name = entry
            .strip_prefix(&tiny)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        triposg.insert(name, std::fs::read(&entry).unwrap());
    }
    // A file of the hub repository the app does not need: must not be fetched.
    triposg.insert("README.md".into(), b"# TripoSG".to_vec());
    let rmbg = BTreeMap::from([
        (
            "config.json".to_string(),
            br#"{"in_ch": 3, "out_ch": 1}"#.to_vec(),
        ),
        (
            "model.safetensors".to_string(),
            std::fs::read(fixtures().join("golden/rmbg.safetensors")).unwrap(),
        ),
        ("pytorch_model.bin".to_string(), b"not needed".to_vec()),
    ]);
    BTreeMap::from([("VAST-AI/TripoSG", triposg), ("briaai/RMBG-1.4", rmbg)])
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[derive(Default)]
struct Behaviour {
    /// Cut the connection halfway through the first full transfer of this file.
    truncate_once: Option<String>,
    /// Serve this file with its bytes flipped (the listing keeps the true hash).
    corrupt: Option<String>,
    /// (file, first byte requested) of every content request.
    ranges: Vec<(String, u64)>,
}

struct Hub {
    endpoint: String,
    state: Arc<Mutex<Behaviour>>,
}

fn start_hub(behaviour: Behaviour) -> Hub {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let state = Arc::new(Mutex::new(behaviour));
    let shared = state.clone();
    let repos = repos();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            serve(stream, &repos, &shared);
        }
    });
    Hub { endpoint, state }
}

fn serve(
    mut stream: TcpStream,
    repos: &BTreeMap<&'static str, BTreeMap<String, Vec<u8>>>,
    state: &Mutex<Behaviour>,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request = String::new();
    reader.read_line(&mut request).unwrap();
    let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut range_start = 0u64;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
            range_start = v
                .trim()
                .trim_end_matches('-')
                .split('-')
                .next()
                .unwrap()
                .parse()
                .unwrap();
        }
    }
    let respond = |stream: &mut TcpStream, status: &str, headers: &str, body: &[u8]| {
        let head = format!(
            "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.write_all(body);
    };
    // Listing: /api/models/{owner}/{name}/revision/{rev}?blobs=true
    if let Some(rest) = path.strip_prefix("/api/models/") {
        let repo = rest.split("/revision/").next().unwrap();
        let Some(files) = repos.get(repo) else {
            return respond(&mut stream, "404 Not Found", "", b"{}");
        };
        let siblings: Vec<serde_json::Value> = files
            .iter()
            .map(|(name, bytes)| {
                let mut s = serde_json::json!({"rfilename": name, "size": bytes.len()});
                if name.ends_with(".safetensors") {
                    s["lfs"] = serde_json::json!({"sha256": sha256(bytes), "size": bytes.len()});
                }
                s
            })
            .collect();
        let body = serde_json::json!({"sha": COMMIT, "siblings": siblings}).to_string();
        return respond(
            &mut stream,
            "200 OK",
            "Content-Type: application/json\r\n",
            body.as_bytes(),
        );
    }
    // Content: /{owner}/{name}/resolve/{rev}/{file}
    let Some((repo, file)) = path.trim_start_matches('/').split_once("/resolve/") else {
        return respond(&mut stream, "404 Not Found", "", b"");
    };
    let file = file.split_once('/').map_or("", |(_, f)| f).to_string();
    let Some(bytes) = repos.get(repo).and_then(|r| r.get(&file)) else {
        return respond(&mut stream, "404 Not Found", "", b"");
    };
    let mut bytes = bytes.clone();
    let total = bytes.len() as u64;
    let etag = sha256(&bytes);
    let mut st = state.lock().unwrap();
    if st.corrupt.as_deref() == Some(file.as_str()) {
        bytes.iter_mut().for_each(|b| *b ^= 0xff);
    }
    let body = &bytes[range_start as usize..];
    let headers = format!(
        "X-Repo-Commit: {COMMIT}\r\nX-Linked-Etag: \"{etag}\"\r\nContent-Range: bytes {range_start}-{}/{total}\r\n",
        total - 1
    );
    let is_transfer = body.len() > 1;
    if is_transfer {
        st.ranges.push((file.clone(), range_start));
    }
    if is_transfer && range_start == 0 && st.truncate_once.as_deref() == Some(file.as_str()) {
        st.truncate_once = None;
        drop(st);
        // Promise the whole body, deliver half, hang up.
        let head = format!(
            "HTTP/1.1 206 Partial Content\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.write_all(&body[..body.len() / 2]);
        let _ = stream.flush();
        return;
    }
    drop(st);
    respond(&mut stream, "206 Partial Content", &headers, body);
}

fn download(weights: &Path, hub: &Hub, extra: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_triposg"));
    cmd.args(["download", "--weights"])
        .arg(weights)
        .env("HF_ENDPOINT", &hub.endpoint)
        .env("HF_HOME", weights.join("hf-home"))
        .env_remove("HF_HUB_OFFLINE")
        .env_remove("HF_TOKEN");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_layout_matches_hub(weights: &Path) {
    for (repo, folder) in [
        ("VAST-AI/TripoSG", "TripoSG"),
        ("briaai/RMBG-1.4", "RMBG-1.4"),
    ] {
        for (name, bytes) in &repos()[repo] {
            let path = weights.join(folder).join(name);
            let needed = !(name == "README.md" || name == "pytorch_model.bin");
            assert_eq!(path.exists(), needed, "{}", path.display());
            if needed {
                assert_eq!(&std::fs::read(&path).unwrap(), bytes, "{}", path.display());
            }
        }
    }
}

#[test]
fn download_fetches_the_hub_layout_pins_the_commit_and_skips_what_it_has() {
    let hub = start_hub(Behaviour::default());
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("pretrained_weights");
    let out = download(&weights, &hub, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_layout_matches_hub(&weights);
    assert!(!weights.join(".download-cache").exists());
    let lock: serde_json::Value =
        serde_json::from_slice(&std::fs::read(weights.join("triposg-weights.lock.json")).unwrap())
            .unwrap();
    assert_eq!(lock["repos"]["VAST-AI/TripoSG"]["commit"], COMMIT);
    let check = Command::new(env!("CARGO_BIN_EXE_triposg"))
        .args(["check-weights", "--weights"])
        .arg(&weights)
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", text(&check));

    // A second run transfers nothing.
    let transfers = hub.state.lock().unwrap().ranges.len();
    let again = download(&weights, &hub, &[]);
    assert!(again.status.success(), "{}", text(&again));
    assert!(!text(&again).contains("downloading"), "{}", text(&again));
    assert_eq!(hub.state.lock().unwrap().ranges.len(), transfers);

    // Offline, a complete pinned folder is accepted without the network.
    let offline = download(&weights, &hub, &[("HF_HUB_OFFLINE", "1")]);
    assert!(offline.status.success(), "{}", text(&offline));
}

#[test]
fn an_interrupted_transfer_is_retried_and_verified() {
    let file = "transformer/diffusion_pytorch_model.safetensors";
    let hub = start_hub(Behaviour {
        truncate_once: Some(file.into()),
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let out = download(dir.path(), &hub, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_layout_matches_hub(dir.path());
    let ranges = hub.state.lock().unwrap().ranges.clone();
    let starts: Vec<u64> = ranges
        .iter()
        .filter(|(f, _)| f == file)
        .map(|r| r.1)
        .collect();
    // hf-hub retries within the run; the half-written first attempt must not leave a file
    // of the wrong size or hash in place (checked above byte for byte).
    assert_eq!(starts.len(), 2, "{ranges:?}");
}

#[test]
fn a_corrupt_transfer_is_rejected_and_never_put_in_place() {
    let file = "vae/diffusion_pytorch_model.safetensors";
    let hub = start_hub(Behaviour {
        corrupt: Some(file.into()),
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let out = download(dir.path(), &hub, &[]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("does not match"), "{}", text(&out));
    assert!(!dir.path().join("TripoSG").join(file).exists());
}

#[test]
fn offline_without_weights_says_how_to_get_them() {
    let hub = start_hub(Behaviour::default());
    let dir = tempfile::tempdir().unwrap();
    let out = download(dir.path(), &hub, &[("HF_HUB_OFFLINE", "1")]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("huggingface-cli download VAST-AI/TripoSG"),
        "{}",
        text(&out)
    );
    assert!(hub.state.lock().unwrap().ranges.is_empty());
}

#[test]
fn an_unreachable_hub_gives_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_triposg"))
        .args(["download", "--weights"])
        .arg(dir.path())
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .env("HF_HOME", dir.path().join("hf-home"))
        .env_remove("HF_HUB_OFFLINE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let msg = text(&out);
    assert!(msg.contains("cannot reach http://127.0.0.1:9"), "{msg}");
    assert!(msg.contains("HF_ENDPOINT"), "{msg}");
}
