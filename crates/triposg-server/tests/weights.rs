//! The page's weights download over real HTTP: a server started without weights fetches them
//! from the local hub stand-in through `triposg download`'s code, reports its progress, and is
//! ready afterwards.

mod common;
#[path = "../../triposg-weights/tests/hub_standin/mod.rs"]
mod hub_standin;

use std::time::Duration;

use common::{config, start, Browser};
use hub_standin::{start_hub, Behaviour};
use reqwest::StatusCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_weights_downloads_them_and_becomes_ready() {
    let hub = start_hub(Behaviour::default());
    let outputs = tempfile::tempdir().unwrap();
    let weights = tempfile::tempdir().unwrap();
    let mut c = config(outputs.path());
    c.weights = weights.path().join("pretrained_weights");
    c.hub_endpoint = Some(hub.endpoint.clone());
    let server = start(c).await;
    let me = Browser::new(&server);

    let (status, before) = me.json("/api/weights").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(before["ready"], false, "{before}");
    assert_eq!(before["download"]["status"], "idle");
    assert_eq!(me.json("/readyz").await.0, StatusCode::SERVICE_UNAVAILABLE);

    let r = me
        .post("/api/weights/download?skip_rmbg=true")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let after = loop {
        let (_, w) = me.json("/api/weights").await;
        match w["download"]["status"].as_str().unwrap() {
            "running" => tokio::time::sleep(Duration::from_millis(50)).await,
            "done" => break w,
            other => panic!("download {other}: {w}"),
        }
    };
    assert_eq!(after["ready"], true, "{after}");
    let d = &after["download"];
    assert_eq!(d["repo"], "VAST-AI/TripoSG");
    assert_eq!(d["repo_done"], d["repo_bytes"], "{d}");
    assert!(d["repo_bytes"].as_u64().unwrap() > 0, "{d}");
    assert!(!weights.path().join("pretrained_weights/RMBG-1.4").exists());
    assert_eq!(me.json("/readyz").await.0, StatusCode::OK);
    let (_, info) = me.json("/api/info").await;
    assert_eq!(info["ready"], true, "{info}");
    server.shutdown().await.unwrap();
}
