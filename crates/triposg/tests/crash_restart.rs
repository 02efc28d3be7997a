//! Crash safety of `triposg serve`: the process is killed with SIGKILL while a job runs and
//! others wait, then started again on the same outputs folder, twice.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// A running `triposg serve`; SIGKILLed when dropped.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(outputs: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_triposg"))
            .args([
                "serve",
                "--port",
                "0",
                "--devices",
                "cpu",
                "--residency",
                "keep",
            ])
            .arg("--weights")
            .arg(fixtures().join("tiny-surface"))
            .arg("--outputs")
            .arg(outputs)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("serving on ").nth(1) {
                    let _ = tx.send(Ok(addr.trim().to_string()));
                } else if line.contains("Error") || line.contains("ERROR") {
                    let _ = tx.send(Err(line));
                }
            }
        });
        let base = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the server printed no address")
            .unwrap_or_else(|e| panic!("the server did not start: {e}"));
        Self { child, base }
    }

    /// What a power cut or the kernel's OOM killer does: no shutdown code runs.
    fn kill_hard(mut self) {
        self.child.kill().unwrap(); // SIGKILL on Unix
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser session talking to whichever server is up.
struct Client {
    agent: ureq::Agent,
    cookie: String,
}

impl Client {
    fn new() -> Self {
        Self {
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(60)))
                .build()
                .new_agent(),
            cookie: "triposg_session=0123456789abcdef0123456789abcdef".into(),
        }
    }

    fn submit(&self, server: &Server, fields: &[(&str, &str)]) -> String {
        const BOUNDARY: &str = "crash-restart-test-boundary";
        let mut body = Vec::new();
        for (name, value) in fields {
            write!(
                body,
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .unwrap();
        }
        write!(body, "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"photo.png\"\r\nContent-Type: image/png\r\n\r\n").unwrap();
        body.extend(std::fs::read(fixtures().join("images/qwvfsd_rgba.png")).unwrap());
        write!(body, "\r\n--{BOUNDARY}--\r\n").unwrap();
        let mut r = self
            .agent
            .post(format!("{}/api/jobs", server.base))
            .header("cookie", &self.cookie)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .send(&body[..])
            .unwrap();
        let text = r.body_mut().read_to_string().unwrap();
        assert_eq!(r.status(), 202, "{text}");
        let job: Value = serde_json::from_str(&text).unwrap();
        job["id"].as_str().unwrap().to_string()
    }

    fn get(&self, server: &Server, path: &str) -> (u16, Vec<u8>) {
        let mut r = self
            .agent
            .get(format!("{}{path}", server.base))
            .header("cookie", &self.cookie)
            .call()
            .unwrap();
        let bytes = r
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_vec()
            .unwrap();
        (r.status().as_u16(), bytes)
    }

    fn job(&self, server: &Server, id: &str) -> Value {
        let (status, body) = self.get(server, &format!("/api/jobs/{id}"));
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).unwrap()
    }

    /// Polls the job until `pred` holds for it.
    fn wait_for(&self, server: &Server, id: &str, what: &str, pred: impl Fn(&Value) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let job = self.job(server, id);
            if pred(&job) {
                return;
            }
            assert!(Instant::now() < deadline, "job {id} never {what}: {job}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn integrity(outputs: &Path) -> Option<String> {
    let url = format!("sqlite://{}", outputs.join("triposg.db").display());
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = triposg_server::store::Store::connect(&url).await.unwrap();
        let report = store.integrity_check().await.unwrap();
        store.close().await;
        report
    })
}

/// Waits until the long job has really started working (its cut-out is written), then a moment
/// more, so that the kill lands inside the model run.
fn kill_mid_job(client: &Client, server: Server, long: &str) {
    client.wait_for(&server, long, "started", |j| j["status"] == "running");
    client.wait_for(&server, long, "prepared its photo", |j| {
        j["prepared_url"].is_string()
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(client.job(&server, long)["status"], "running");
    server.kill_hard();
}

/// Meshes that exist in the folder under their real names are complete files.
fn assert_no_partial_files(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(
            !name.starts_with(".tmp"),
            "{name} left behind in {}",
            dir.display()
        );
        if triposg_mesh::Format::from_path(Path::new(&name)).is_ok() {
            triposg_mesh::load(&entry.path()).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}

#[test]
fn a_killed_server_resumes_its_queue_and_retries_the_interrupted_job_once() {
    let outputs = tempfile::tempdir().unwrap();
    let jobs = outputs.path().join("jobs");
    let client = Client::new();
    let fast = [("num_tokens", "16"), ("steps", "2"), ("octree_depth", "7")];

    let server = Server::start(outputs.path());
    // 200 steps at octree depth 10: still running long after the kill lands.
    let long = client.submit(
        &server,
        &[
            ("num_tokens", "16"),
            ("steps", "200"),
            ("octree_depth", "10"),
        ],
    );
    let waiting: Vec<String> = (0..2).map(|_| client.submit(&server, &fast)).collect();
    kill_mid_job(&client, server, &long);
    assert_eq!(integrity(outputs.path()).as_deref(), Some("ok"));

    // What a write cut short and a submission cut short leave behind.
    std::fs::write(jobs.join(&long).join(".tmpA1b2C3"), b"half a mesh").unwrap();
    let orphan = jobs.join("0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f");
    std::fs::create_dir_all(&orphan).unwrap();
    std::fs::write(orphan.join("upload"), b"never recorded").unwrap();

    let server = Server::start(outputs.path());
    assert!(!orphan.exists(), "the unrecorded job folder was kept");
    assert_no_partial_files(&jobs.join(&long));
    // The queue is intact, in its order, with the interrupted job first in line: running again.
    client.wait_for(&server, &long, "ran again", |j| j["status"] == "running");
    assert_eq!(client.job(&server, &long)["error"], Value::Null);
    for (i, id) in waiting.iter().enumerate() {
        let job = client.job(&server, id);
        assert_eq!(job["status"], "queued", "{job}");
        assert_eq!(job["position"].as_u64().unwrap() as usize, i + 1, "{job}");
    }
    // Nothing of the unfinished job is offered or served but its input.
    let (status, _) = client.get(&server, &format!("/api/jobs/{long}/files/seed42.stl"));
    assert_eq!(status, 404);
    let (status, _) = client.get(&server, &format!("/api/jobs/{long}/files/.tmpA1b2C3"));
    assert_eq!(status, 404);

    // Killed again in the same job: it is failed with advice, not retried forever.
    kill_mid_job(&client, server, &long);
    assert_eq!(integrity(outputs.path()).as_deref(), Some("ok"));
    let server = Server::start(outputs.path());
    let job = client.job(&server, &long);
    assert_eq!(job["status"], "failed", "{job}");
    let error = job["error"].as_str().unwrap();
    assert!(
        error.contains("stopped unexpectedly 2 times") && error.contains("octree depth"),
        "{error}"
    );

    // The waiting jobs then run to the end, and their files are whole.
    for id in &waiting {
        client.wait_for(&server, id, "finished", |j| {
            j["status"] != "queued" && j["status"] != "running"
        });
        let job = client.job(&server, id);
        assert_eq!(job["status"], "done", "{job}");
        for file in job["files"].as_array().unwrap() {
            let (status, bytes) = client.get(&server, file["url"].as_str().unwrap());
            assert_eq!(status, 200, "{file}");
            assert!(!bytes.is_empty(), "{file}");
        }
        assert_no_partial_files(&jobs.join(id));
    }
    server.kill_hard();
    assert_eq!(integrity(outputs.path()).as_deref(), Some("ok"));
}
