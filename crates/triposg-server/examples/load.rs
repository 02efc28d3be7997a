//! Bounded load test of `triposg serve` on the loopback interface only (docs/reliability.md).
//!
//! Starts the server binary with the tiny fixture weights, keeps its worker busy, then for a
//! fixed time runs SSE subscribers, status pollers, uploaders at the queue limit and garbage
//! uploaders at once. Prints throughput, latency percentiles, answers by kind and the server's
//! peak memory, then stops the server.
//!
//! cargo run --release -p triposg-server --example load -- target/release/triposg [SECONDS] [SSE]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::multipart::{Form, Part};

/// Latencies and outcomes of one kind of request.
#[derive(Default)]
struct Tally {
    millis: Vec<f64>,
    outcomes: BTreeMap<String, usize>,
}

type Tallies = Arc<Mutex<BTreeMap<&'static str, Tally>>>;

fn record(t: &Tallies, kind: &'static str, started: Instant, outcome: String) {
    let mut all = t.lock().unwrap();
    let tally = all.entry(kind).or_default();
    tally.millis.push(started.elapsed().as_secs_f64() * 1000.0);
    *tally.outcomes.entry(outcome).or_default() += 1;
}

fn outcome(r: &Result<reqwest::Response, reqwest::Error>) -> String {
    match r {
        Ok(r) => r.status().as_u16().to_string(),
        Err(e) if e.is_timeout() => "timeout".into(),
        Err(e) if e.is_connect() => "connect error".into(),
        Err(_) => "transport error".into(),
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn kib_field(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn upload(photo: &[u8], fields: &[(&str, &str)]) -> Form {
    let mut form = Form::new().part("image", Part::bytes(photo.to_vec()).file_name("p.png"));
    for (k, v) in fields {
        form = form.text(k.to_string(), v.to_string());
    }
    form
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let bin = args
        .next()
        .unwrap_or_else(|| "target/release/triposg".into());
    let seconds: u64 = args.next().map_or(60, |s| s.parse().expect("SECONDS"));
    let subscribers: usize = args.next().map_or(200, |s| s.parse().expect("SSE"));
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let fixtures = root.join("tests/fixtures");
    let outputs = tempfile::tempdir().unwrap();
    let queue_limit = 8;

    let mut server = Command::new(&bin)
        .args([
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--devices",
            "cpu",
        ])
        .args([
            "--residency",
            "keep",
            "--queue-limit",
            &queue_limit.to_string(),
        ])
        .arg("--weights")
        .arg(fixtures.join("tiny-surface"))
        .arg("--outputs")
        .arg(outputs.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{bin}: {e}"));
    let mut lines = BufReader::new(server.stderr.take().unwrap()).lines();
    let base = loop {
        let line = lines.next().expect("server exited").unwrap();
        if let Some(addr) = line.split("serving on ").nth(1) {
            break addr.trim().to_string();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    let pid = server.id();
    let photo = std::fs::read(fixtures.join("images/qwvfsd_rgba.png")).unwrap();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .timeout(Duration::from_secs(seconds + 30))
        .build()
        .unwrap();
    let session = "triposg_session=10adfeed10adfeed10adfeed10adfeed";

    // A job long enough to run through the whole test, so every figure is "while a job runs".
    let long = [
        ("num_tokens", "64"),
        ("steps", "200"),
        ("octree_depth", "10"),
    ];
    let r = http
        .post(format!("{base}/api/jobs"))
        .header("cookie", session)
        .multipart(upload(&photo, &long))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let long_id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    let tallies: Tallies = Arc::default();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..subscribers {
        let (http, base, id, t) = (http.clone(), base.clone(), long_id.clone(), tallies.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let started = Instant::now();
                let r = http
                    .get(format!("{base}/api/jobs/{id}/events"))
                    .header("cookie", session)
                    .send()
                    .await;
                let kind = outcome(&r);
                let Ok(mut r) = r else {
                    record(&t, "sse connect", started, kind);
                    continue;
                };
                // Time to the first event (the job's current state).
                let first = tokio::time::timeout_at(deadline.into(), r.chunk()).await;
                let kind = match first {
                    Ok(Ok(Some(_))) => kind,
                    Ok(_) => "stream ended".into(),
                    Err(_) => break,
                };
                record(&t, "sse first event", started, kind);
                let _ = tokio::time::timeout_at(deadline.into(), async {
                    while let Ok(Some(_)) = r.chunk().await {}
                })
                .await;
            }
        }));
    }
    for i in 0..8 {
        let (http, base, id, t) = (http.clone(), base.clone(), long_id.clone(), tallies.clone());
        tasks.push(tokio::spawn(async move {
            let paths = [
                format!("/api/jobs/{id}"),
                "/api/jobs".into(),
                "/api/info".into(),
            ];
            let mut n = i;
            while Instant::now() < deadline {
                let path = &paths[n % paths.len()];
                n += 1;
                let started = Instant::now();
                let r = http
                    .get(format!("{base}{path}"))
                    .header("cookie", session)
                    .send()
                    .await;
                let kind = outcome(&r);
                if let Ok(r) = r {
                    let _ = r.bytes().await;
                }
                record(&t, "poll", started, kind);
            }
        }));
    }
    let fast = [("num_tokens", "16"), ("steps", "2"), ("octree_depth", "7")];
    for _ in 0..2 {
        let (http, base, photo, t) = (http.clone(), base.clone(), photo.clone(), tallies.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let started = Instant::now();
                let r = http
                    .post(format!("{base}/api/jobs"))
                    .header("cookie", session)
                    .multipart(upload(&photo, &fast))
                    .send()
                    .await;
                record(&t, "upload", started, outcome(&r));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }));
    }
    for i in 0..2u64 {
        let (http, base, t) = (http.clone(), base.clone(), tallies.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = i;
            while Instant::now() < deadline {
                n += 1;
                let started = Instant::now();
                let request = http
                    .post(format!("{base}/api/jobs"))
                    .header("cookie", session);
                let r = match n % 3 {
                    0 => {
                        let junk: Vec<u8> = (0..4096).map(|_| rand::random()).collect();
                        request.multipart(upload(&junk, &[])).send().await
                    }
                    1 => {
                        request
                            .header("content-type", "multipart/form-data; boundary=x")
                            .body("--x\r\nContent-Disposition: form-da")
                            .send()
                            .await
                    }
                    _ => {
                        request
                            .multipart(upload(b"GIF89a", &[("steps", "100000")]))
                            .send()
                            .await
                    }
                };
                record(&t, "garbage upload", started, outcome(&r));
            }
        }));
    }

    let mut peak_rss_kib = 0;
    while Instant::now() < deadline {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            peak_rss_kib = peak_rss_kib.max(kib_field(&status, "VmHWM:").unwrap_or(0));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for task in tasks {
        let _ = task.await;
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    peak_rss_kib = peak_rss_kib.max(kib_field(&status, "VmHWM:").unwrap_or(0));
    let long_status = http
        .get(format!("{base}/api/jobs/{long_id}"))
        .header("cookie", session)
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap()["status"]
        .clone();
    let _ = Command::new("kill").arg(pid.to_string()).status();
    let _ = server.wait();

    println!(
        "{seconds} s, {subscribers} SSE subscribers, 8 pollers, 2 uploaders (queue limit {queue_limit}), 2 garbage uploaders; long job {long_status} at the end\n"
    );
    println!("| requests | count | per s | p50 ms | p99 ms | max ms | answers |");
    println!("|---|---|---|---|---|---|---|");
    for (kind, tally) in tallies.lock().unwrap().iter_mut() {
        tally.millis.sort_by(f64::total_cmp);
        let n = tally.millis.len();
        println!(
            "| {kind} | {n} | {:.1} | {:.1} | {:.1} | {:.1} | {:?} |",
            n as f64 / seconds as f64,
            percentile(&tally.millis, 0.5),
            percentile(&tally.millis, 0.99),
            tally.millis.last().copied().unwrap_or(f64::NAN),
            tally.outcomes
        );
    }
    println!(
        "\nserver peak RSS (VmHWM): {:.1} MiB",
        peak_rss_kib as f64 / 1024.0
    );
}
