//! A local stand-in for the Hugging Face hub, serving the tiny fixture checkpoint over the
//! hub's HTTP protocol (the blob listing, `resolve` URLs with Range requests, commit and etag
//! headers), for tests that point HF_ENDPOINT (or the server's hub endpoint) at it. Shared by
//! the weights library's, the CLI's and the server's tests through `#[path]`.

#![allow(dead_code)] // each test binary uses a different part

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

pub const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

pub fn sha256(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// The repositories' files: TripoSG from the tiny fixture, RMBG as a small stand-in file.
pub fn repos() -> BTreeMap<&'static str, BTreeMap<String, Vec<u8>>> {
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
pub struct Behaviour {
    /// Cut the connection halfway through the first full transfer of this file.
    pub truncate_once: Option<String>,
    /// Serve this file with its bytes flipped (the listing keeps the true hash).
    pub corrupt: Option<String>,
    /// (file, first byte requested) of every content request.
    pub ranges: Vec<(String, u64)>,
    /// Promise the whole body of this file, send half, then keep the connection open and send
    /// nothing more (a hub that stalls mid-transfer).
    pub stall: Option<String>,
}

pub struct Hub {
    pub endpoint: String,
    pub state: Arc<Mutex<Behaviour>>,
}

pub fn start_hub(behaviour: Behaviour) -> Hub {
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
    let stall = st.stall.as_deref() == Some(file.as_str());
    if is_transfer
        && range_start == 0
        && (stall || st.truncate_once.as_deref() == Some(file.as_str()))
    {
        st.truncate_once = None;
        drop(st);
        // Promise the whole body, deliver half, hang up (or stall).
        let head = format!(
            "HTTP/1.1 206 Partial Content\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.write_all(&body[..body.len() / 2]);
        let _ = stream.flush();
        if stall {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
        return;
    }
    drop(st);
    respond(&mut stream, "206 Partial Content", &headers, body);
}
