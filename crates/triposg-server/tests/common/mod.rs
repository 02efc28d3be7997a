//! A real server on a free port, with the tiny fixture weights on the CPU, and a client that
//! plays one browser session.

#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::multipart::{Form, Part};
use reqwest::{Response, StatusCode};
use triposg_core::residency::ResidencyPolicy;
use triposg_server::{Config, RunningServer};

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// A photo with its own transparent background, so background removal is not needed.
pub fn cutout_photo() -> Vec<u8> {
    std::fs::read(fixtures().join("images/qwvfsd_rgba.png")).unwrap()
}

/// Parameters that make a tiny-model job take a moment on the CPU.
pub const FAST: [(&str, &str); 3] = [("num_tokens", "16"), ("steps", "2"), ("octree_depth", "7")];

/// Parameters of a job that still runs while a test acts on it (depth 10 decodes millions of
/// points).
pub const LONG: [(&str, &str); 3] = [
    ("num_tokens", "16"),
    ("steps", "200"),
    ("octree_depth", "10"),
];

pub fn config(outputs: &Path) -> Config {
    let mut c = Config::new(fixtures().join("tiny-surface"), outputs.to_path_buf());
    c.host = "127.0.0.1".into();
    c.port = 0;
    c.devices = vec!["cpu".into()];
    c.residency = ResidencyPolicy::Keep;
    c
}

pub async fn start(config: Config) -> RunningServer {
    triposg_server::start(config).await.unwrap()
}

/// One browser: every request carries its session cookie.
#[derive(Clone)]
pub struct Browser {
    pub base: String,
    pub cookie: String,
    pub http: reqwest::Client,
}

impl Browser {
    pub fn new(server: &RunningServer) -> Self {
        Self {
            base: format!("http://{}", server.addr),
            cookie: format!("triposg_session={:032x}", rand::random::<u128>()),
            http: reqwest::Client::new(),
        }
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
    }

    pub fn delete(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .delete(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
    }

    pub async fn upload(&self, path: &str, image: Vec<u8>, fields: &[(&str, &str)]) -> Response {
        self.upload_image_request(path, image, fields)
            .send()
            .await
            .unwrap()
    }

    /// The upload of the cut-out photo, to add headers to before sending.
    pub fn upload_request(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::RequestBuilder {
        self.upload_image_request(path, cutout_photo(), fields)
    }

    fn upload_image_request(
        &self,
        path: &str,
        image: Vec<u8>,
        fields: &[(&str, &str)],
    ) -> reqwest::RequestBuilder {
        let mut form = Form::new().part("image", Part::bytes(image).file_name("photo.png"));
        for (k, v) in fields {
            form = form.text(k.to_string(), v.to_string());
        }
        self.post(path).multipart(form)
    }

    /// Submits a job and returns its id (asserting it was accepted).
    pub async fn submit(&self, fields: &[(&str, &str)]) -> String {
        let r = self.upload("/api/jobs", cutout_photo(), fields).await;
        let status = r.status();
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        body["id"].as_str().unwrap().to_string()
    }

    /// Submits a job and returns its id and event stream once it runs (its first denoise step
    /// shows), failing if it ends first.
    pub async fn submit_running(&self, fields: &[(&str, &str)]) -> (String, Events) {
        let id = self.submit(fields).await;
        let mut events = self.events(&id).await;
        loop {
            let (name, data) = events.next().await.expect("stream ended early");
            assert!(
                !matches!(name.as_str(), "done" | "failed" | "cancelled"),
                "{name} {data}"
            );
            if name == "step" && data["stage"] == "denoise" {
                return (id, events);
            }
        }
    }

    /// Cancels a queued or running job, follows `events` (its open stream) to the end and
    /// asserts it ended cancelled.
    pub async fn cancel(&self, id: &str, mut events: Events) {
        let r = self
            .post(&format!("/api/jobs/{id}/cancel"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        let (names, last) = events.until_final().await;
        assert_eq!(names.last().unwrap(), "cancelled", "{last}");
    }

    /// Opens the job's SSE stream.
    pub async fn events(&self, id: &str) -> Events {
        let r = self
            .get(&format!("/api/jobs/{id}/events"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Events {
            response: r,
            buffer: String::new(),
        }
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        self.get("/metrics")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn json(&self, path: &str) -> (StatusCode, serde_json::Value) {
        let r = self.get(path).send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }
}

/// A server-sent event stream, read event by event.
pub struct Events {
    response: Response,
    buffer: String,
}

impl Events {
    /// The next `(event name, data)`, or `None` when the stream ends.
    pub async fn next(&mut self) -> Option<(String, serde_json::Value)> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut name = String::new();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim());
                    }
                }
                if name.is_empty() {
                    continue; // keep-alive comment
                }
                return Some((name, serde_json::from_str(&data).unwrap()));
            }
            let chunk = tokio::time::timeout(Duration::from_secs(300), self.response.chunk())
                .await
                .expect("no event for 5 minutes")
                .unwrap()?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Reads until the final event; returns every event name seen and the final data.
    pub async fn until_final(&mut self) -> (Vec<String>, serde_json::Value) {
        let mut names = Vec::new();
        while let Some((name, data)) = self.next().await {
            names.push(name.clone());
            if matches!(name.as_str(), "done" | "failed" | "cancelled") {
                return (names, data);
            }
        }
        panic!("stream ended without a final event: {names:?}");
    }
}
