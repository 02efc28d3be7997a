//! The API over real HTTP against a real server running the tiny models on the CPU.

mod common;

use common::{config, cutout_photo, fixtures, start, Browser, FAST, LONG};
use reqwest::StatusCode;

fn faces_of(bytes: &[u8], ext: &str) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("m.{ext}"));
    std::fs::write(&path, bytes).unwrap();
    let mesh = triposg_mesh::load(&path).unwrap_or_else(|e| panic!("{ext}: {e}"));
    mesh.faces.len()
}

/// Submit, follow SSE to done, download every file, check isolation and deletion, then restart
/// on the same outputs folder and find the history again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_runs_to_done_and_stays_in_the_history() {
    let outputs = tempfile::tempdir().unwrap();
    let server = start(config(outputs.path())).await;
    let me = Browser::new(&server);
    let fields: Vec<_> = FAST
        .iter()
        .copied()
        .chain([
            ("candidates", "2"),
            ("formats", "glb,stl,3mf"),
            ("print", "false"),
        ])
        .collect();
    let id = me.submit(&fields).await;
    let (names, done) = me.events(&id).await.until_final().await;
    assert_eq!(names.last().unwrap(), "done", "{done}");
    for stage in ["stage", "step"] {
        assert!(names.iter().any(|n| n == stage), "{names:?}");
    }
    let job = &done["job"];
    assert_eq!(job["status"], "done");
    assert_eq!(job["device"], "cpu");
    let candidates = job["result"]["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 2);
    assert_eq!(candidates[0]["seed"], 42);
    assert_eq!(candidates[1]["seed"], 43);

    // Every listed file downloads, and the meshes parse with as many faces as reported.
    let files = job["files"].as_array().unwrap();
    assert_eq!(files.len(), 2 * 3 + 1, "{files:?}");
    for f in files {
        let r = me.get(f["url"].as_str().unwrap()).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{f}");
        let bytes = r.bytes().await.unwrap();
        let name = f["name"].as_str().unwrap();
        if let Some(seed) = name.strip_prefix("seed").and_then(|s| s.split('.').next()) {
            let c = candidates
                .iter()
                .find(|c| c["seed"].as_u64() == seed.parse().ok())
                .unwrap();
            let ext = f["format"].as_str().unwrap();
            assert_eq!(
                faces_of(&bytes, ext) as u64,
                c["faces"].as_u64().unwrap(),
                "{name}"
            );
        } else {
            let report: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(report["id"], id.as_str());
        }
    }
    for image in ["input_url", "prepared_url"] {
        let r = me.get(job[image].as_str().unwrap()).send().await.unwrap();
        let png = image::load_from_memory(&r.bytes().await.unwrap()).unwrap();
        assert!(png.width() > 0, "{image}");
    }

    // Another browser sees nothing of it.
    let stranger = Browser::new(&server);
    for path in [
        format!("/api/jobs/{id}"),
        format!("/api/jobs/{id}/events"),
        format!("/api/jobs/{id}/files/seed42.glb"),
    ] {
        let r = stranger.get(&path).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let (_, list) = stranger.json("/api/jobs").await;
    assert_eq!(list, serde_json::json!([]));
    let r = stranger
        .delete(&format!("/api/jobs/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Nor can the owner reach outside the job's folder.
    for path in [
        format!("/api/jobs/{id}/files/..%2F..%2Ftriposg.db"),
        format!("/api/jobs/{id}/files/%2E%2E"),
        format!("/api/jobs/{id}/files/../../triposg.db"),
        "/outputs/..%2Ftriposg.db".to_string(),
        format!("/outputs/{id}.glb"), // an API job, not a /generate one
    ] {
        let r = me.get(&path).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }

    // Metrics count the finished job and its stages.
    let metrics = me.metrics().await;
    for line in [
        "triposg_jobs_total{outcome=\"done\"} 1",
        "triposg_queue_depth 0",
        "triposg_stage_seconds_count{stage=\"denoise\"} 2",
        "triposg_models_loaded{device=\"cpu\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }

    // A second job to delete; the first survives a restart.
    let second = me.submit(&FAST).await;
    me.events(&second).await.until_final().await;
    let r = me
        .delete(&format!("/api/jobs/{second}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        me.json(&format!("/api/jobs/{second}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert!(!outputs.path().join("jobs").join(&second).exists());

    server.shutdown().await.unwrap();
    let server = start(config(outputs.path())).await;
    let me = Browser {
        base: format!("http://{}", server.addr),
        ..me
    };
    let (status, list) = me.json("/api/jobs").await;
    assert_eq!(status, StatusCode::OK);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["status"], "done");
    let r = me
        .get(&format!("/api/jobs/{id}/files/seed43.stl"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        faces_of(&r.bytes().await.unwrap(), "stl") as u64,
        candidates[1]["faces"].as_u64().unwrap()
    );
    server.shutdown().await.unwrap();
}

/// A long job holds the only worker: the next waits, the one after is refused with 429, and
/// both the waiting and the running job can be cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_refuses_with_retry_after_and_jobs_cancel() {
    let outputs = tempfile::tempdir().unwrap();
    let mut c = config(outputs.path());
    c.queue_limit = 1;
    let server = start(c).await;
    let me = Browser::new(&server);
    let (long, long_events) = me.submit_running(&LONG).await;
    assert_eq!(
        me.json(&format!("/api/jobs/{long}")).await.1["status"],
        "running"
    );
    let waiting = me.submit(&FAST).await;
    let (_, job) = me.json(&format!("/api/jobs/{waiting}")).await;
    assert_eq!(job["status"], "queued");
    assert_eq!(job["position"], 1);

    let r = me.upload("/api/jobs", cutout_photo(), &FAST).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("queue is full"),
        "{body}"
    );

    me.cancel(&waiting, me.events(&waiting).await).await;
    assert_eq!(
        me.json(&format!("/api/jobs/{waiting}")).await.1["status"],
        "cancelled"
    );

    me.cancel(&long, long_events).await;
    let (_, job) = me.json(&format!("/api/jobs/{long}")).await;
    assert_eq!(job["status"], "cancelled");
    let r = me
        .post(&format!("/api/jobs/{long}/cancel"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);

    let metrics = me.metrics().await;
    assert!(
        metrics.contains("triposg_jobs_total{outcome=\"cancelled\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("triposg_queue_rejections_total 1"),
        "{metrics}"
    );
    server.shutdown().await.unwrap();
}

fn error_of(body: &serde_json::Value) -> String {
    body["error"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_get_a_4xx_that_says_what_to_do() {
    let outputs = tempfile::tempdir().unwrap();
    let mut c = config(outputs.path());
    c.max_upload_bytes = 1 << 20;
    let server = start(c).await;
    let me = Browser::new(&server);
    let bad = fixtures().join("images/bad");
    let read = |name: &str| std::fs::read(bad.join(name)).unwrap();
    type Case<'a> = (Vec<u8>, Vec<(&'a str, &'a str)>, StatusCode, &'a str);
    let cases: Vec<Case> = vec![
        (
            read("text.jpg"),
            vec![],
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "use PNG, JPEG",
        ),
        (
            read("truncated.png"),
            vec![],
            StatusCode::BAD_REQUEST,
            "damaged or incomplete",
        ),
        (
            read("huge_100000x100000.png"),
            vec![],
            StatusCode::PAYLOAD_TOO_LARGE,
            "downscale",
        ),
        (
            read("long_60000x10.png"),
            vec![],
            StatusCode::PAYLOAD_TOO_LARGE,
            "crop or downscale",
        ),
        (Vec::new(), vec![], StatusCode::BAD_REQUEST, "empty"),
        (
            cutout_photo(),
            vec![],
            StatusCode::PAYLOAD_TOO_LARGE,
            "upload is too large",
        ),
        (
            read("black.png"),
            vec![("steps", "0")],
            StatusCode::BAD_REQUEST,
            "steps must be 1..=200",
        ),
        (
            read("black.png"),
            vec![("colour", "red")],
            StatusCode::BAD_REQUEST,
            "unknown parameter",
        ),
    ];
    for (image, fields, status, message) in cases {
        let r = me.upload("/api/jobs", image, &fields).await;
        let got = r.status();
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(got, status, "{body}");
        assert!(error_of(&body).contains(message), "{message}: {body}");
    }
    let r = me
        .post("/api/jobs")
        .multipart(reqwest::multipart::Form::new().text("steps", "5"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(error_of(&r.json().await.unwrap()).contains("form field `image`"));
    // Nothing was queued or stored by any of them.
    assert_eq!(me.json("/api/jobs").await.1, serde_json::json!([]));
    server.shutdown().await.unwrap();
}

/// The old app's form and answer, and its download addresses without a session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_old_generate_endpoint_answers_with_glb_and_stl_addresses() {
    let outputs = tempfile::tempdir().unwrap();
    let server = start(config(outputs.path())).await;
    let me = Browser::new(&server);
    let fields = [
        ("steps", "2"),
        ("guidance", "7.0"),
        ("seed", "42"),
        ("faces", "-1"),
        ("solidify_enabled", "true"),
        ("solidify_pitch", "0.01"),
        ("solidify_smooth", "0"),
        ("num_tokens", "16"),
        ("octree_depth", "7"),
    ];
    let r = me.upload("/generate", cutout_photo(), &fields).await;
    assert_eq!(r.status(), StatusCode::OK);
    let answer: serde_json::Value = r.json().await.unwrap();
    let client = reqwest::Client::new();
    for ext in ["glb", "stl"] {
        let url = answer[ext].as_str().unwrap();
        assert!(
            url.starts_with("/outputs/") && url.ends_with(ext),
            "{answer}"
        );
        let r = client
            .get(format!("{}{url}", me.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{url}");
        assert!(faces_of(&r.bytes().await.unwrap(), ext) > 0);
    }
    let r = me.upload("/generate", b"not an image".to_vec(), &[]).await;
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(!error_of(&r.json().await.unwrap()).is_empty());
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_info_docs_and_the_page() {
    let outputs = tempfile::tempdir().unwrap();
    let server = start(config(outputs.path())).await;
    let me = Browser::new(&server);
    let r = me.get("/healthz").send().await.unwrap();
    assert_eq!(
        (r.status(), r.text().await.unwrap().as_str()),
        (StatusCode::OK, "ok")
    );
    let (status, ready) = me.json("/readyz").await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    let (_, info) = me.json("/api/info").await;
    assert_eq!(info["devices"][0]["name"], "cpu");
    assert_eq!(info["residency"], "keep");
    assert_eq!(info["offload"], false);
    // A CPU has no GPU memory to report: none here, and no such series in the metrics.
    assert!(info["devices"][0]["memory"].is_null(), "{info}");
    let metrics = me.metrics().await;
    assert!(
        !metrics.contains("triposg_gpu_memory_used_bytes{"),
        "{metrics}"
    );
    assert!(
        metrics.contains("# TYPE triposg_gpu_memory_used_bytes gauge"),
        "{metrics}"
    );
    let (_, doc) = me.json("/api/openapi.json").await;
    for path in ["/api/jobs", "/api/jobs/{id}/events", "/generate", "/readyz"] {
        assert!(doc["paths"][path].is_object(), "{path}");
    }
    assert!(doc["components"]["schemas"]["JobParams"]["properties"]["steps"].is_object());
    let page = me.get("/").send().await.unwrap().text().await.unwrap();
    assert!(page.contains("importmap") && page.contains("/vendor/three/"));
    for asset in [
        "/app.js",
        "/viewer.js",
        "/style.css",
        "/docs.html",
        "/help.txt",
        "/vendor/three/build/three.module.min.js",
        "/vendor/three/examples/jsm/loaders/GLTFLoader.js",
    ] {
        let r = me.get(asset).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{asset}");
    }
    // The cut-out preview of a photo with transparency: square, framed on white.
    let r = me.upload("/api/prepare", cutout_photo(), &[]).await;
    assert_eq!(r.status(), StatusCode::OK);
    let png = image::load_from_memory(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(png.width(), png.height());
    server.shutdown().await.unwrap();

    // Weights missing: alive, not ready, and saying what to do.
    let empty = tempfile::tempdir().unwrap();
    let mut c = config(outputs.path());
    c.weights = empty.path().to_path_buf();
    let server = start(c).await;
    let me = Browser::new(&server);
    assert_eq!(
        me.get("/healthz").send().await.unwrap().status(),
        StatusCode::OK
    );
    let (status, ready) = me.json("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        ready["problems"].to_string().contains("triposg download"),
        "{ready}"
    );
    // A job fails with the same advice instead of hanging.
    let id = me.submit(&FAST).await;
    let (names, failed) = me.events(&id).await.until_final().await;
    assert_eq!(names.last().unwrap(), "failed");
    assert!(
        failed["error"].as_str().unwrap().contains("check-weights"),
        "{failed}"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auth_token_guards_everything_but_health() {
    let outputs = tempfile::tempdir().unwrap();
    let mut c = config(outputs.path());
    c.auth_token = Some("s3cret".into());
    let server = start(c).await;
    let me = Browser::new(&server);
    let r = me.get("/api/jobs").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(error_of(&r.json().await.unwrap()).contains("?token="));
    assert_eq!(
        me.get("/").send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        me.get("/healthz").send().await.unwrap().status(),
        StatusCode::OK
    );
    let r = me
        .get("/api/jobs")
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = me
        .get("/api/jobs")
        .bearer_auth("wrong!")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = me.get("/?token=s3cret").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let set = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect::<Vec<_>>();
    assert!(
        set.iter().any(|c| c.starts_with("triposg_token=s3cret")),
        "{set:?}"
    );
    server.shutdown().await.unwrap();
}
