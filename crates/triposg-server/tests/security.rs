//! Security over real HTTP: strict headers on every answer, no CORS grant, the access token on
//! every route the API document lists (and the pages), unguessable ids, nothing served from
//! outside the outputs folder and the embedded assets.

mod common;

use base64::Engine;
use common::{config, start, Browser, FAST};
use reqwest::{Method, StatusCode};
use sha2::{Digest, Sha256};

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_has_strict_headers_and_no_cors_grant() {
    let outputs = tempfile::tempdir().unwrap();
    let server = start(config(outputs.path())).await;
    let me = Browser::new(&server);
    let page = me.get("/").send().await.unwrap();
    let csp = header(&page, "content-security-policy");
    let html = page.text().await.unwrap();

    // The page's import map is the one inline script the policy lets run, by its hash.
    let start = html.find("<script type=\"importmap\">").unwrap();
    let body = &html[start + "<script type=\"importmap\">".len()..];
    let body = &body[..body.find("</script>").unwrap()];
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body));
    assert!(
        csp.contains(&format!("script-src 'self' 'sha256-{hash}'")),
        "{csp}"
    );
    for part in [
        "frame-ancestors 'none'",
        "object-src 'none'",
        "style-src 'self'",
    ] {
        assert!(csp.contains(part), "{part} not in {csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");

    let mut answers = Vec::new();
    for path in [
        "/",
        "/app.js",
        "/docs.html",
        "/api/jobs",
        "/api/info",
        "/api/jobs/0123/files/seed42.stl",
        "/no-such-page",
        "/healthz",
        "/metrics",
    ] {
        answers.push((path.to_string(), me.get(path).send().await.unwrap()));
    }
    let bad = me.upload("/api/jobs", b"not an image".to_vec(), &[]).await;
    answers.push(("a bad upload".into(), bad));
    let id = me.submit(&FAST).await;
    answers.push((
        "the job's events".into(),
        me.get(&format!("/api/jobs/{id}/events"))
            .send()
            .await
            .unwrap(),
    ));
    for (what, r) in &answers {
        assert_eq!(header(r, "content-security-policy"), csp, "{what}");
        assert_eq!(header(r, "x-content-type-options"), "nosniff", "{what}");
        assert_eq!(header(r, "x-frame-options"), "DENY", "{what}");
        assert_eq!(header(r, "referrer-policy"), "no-referrer", "{what}");
        assert_eq!(
            header(r, "cross-origin-resource-policy"),
            "same-origin",
            "{what}"
        );
    }

    // Another site's script asking, simply or after a preflight, is granted nothing.
    for method in [Method::GET, Method::OPTIONS, Method::DELETE] {
        let r = me
            .http
            .request(method.clone(), format!("{}/api/jobs/{id}", me.base))
            .header("cookie", &me.cookie)
            .header("origin", "http://evil.example")
            .header("access-control-request-method", "DELETE")
            .send()
            .await
            .unwrap();
        for grant in [
            "access-control-allow-origin",
            "access-control-allow-credentials",
            "access-control-allow-methods",
        ] {
            assert!(r.headers().get(grant).is_none(), "{method} {grant}");
        }
    }
    server.shutdown().await.unwrap();
}

/// Every route of the OpenAPI document, the metrics, the page and its files need the token;
/// only health, readiness and the sign-in page do not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_guards_every_route_and_browsers_get_a_sign_in_page() {
    let outputs = tempfile::tempdir().unwrap();
    let mut c = config(outputs.path());
    c.auth_token = Some("correct-horse-battery".into());
    let server = start(c).await;
    let owner = Browser::new(&server);
    let bearer = |b: reqwest::RequestBuilder| b.bearer_auth("correct-horse-battery");
    let r = bearer(owner.upload_request("/api/jobs", &FAST))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let doc: serde_json::Value = bearer(owner.get("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    let open = ["/healthz", "/readyz", "/login", "/style.css"];
    let mut routes = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if open.contains(&path.as_str()) {
            continue;
        }
        let path = path
            .replace("{id}", &id)
            .replace("{name}", "input.png")
            .replace("{file}", &format!("{id}.glb"));
        for method in item.as_object().unwrap().keys() {
            routes.push((method.to_uppercase(), path.clone()));
        }
    }
    assert!(routes.len() >= 10, "{routes:?}");
    for path in [
        "/metrics",
        "/",
        "/app.js",
        "/docs.html",
        "/vendor/three/build/three.module.min.js",
    ] {
        routes.push(("GET".into(), path.into()));
    }
    let stranger = Browser::new(&server);
    for (method, path) in &routes {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let attempts = [
            stranger
                .http
                .request(method.clone(), format!("{}{path}", stranger.base)),
            stranger
                .http
                .request(method.clone(), format!("{}{path}", stranger.base))
                .bearer_auth("correct-horse-batterz"),
            stranger
                .http
                .request(method.clone(), format!("{}{path}", stranger.base))
                .header("cookie", "triposg_token=correct-horse"),
            stranger.http.request(
                method.clone(),
                format!("{}{path}?token=guess", stranger.base),
            ),
        ];
        for attempt in attempts {
            let r = attempt.send().await.unwrap();
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
        }
    }
    // The job survived all of that (the DELETE and cancel attempts were refused).
    let r = bearer(owner.get(&format!("/api/jobs/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    for open in open {
        let r = stranger.get(open).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{open}");
    }
    // A browser opening the page is sent to sign in; the wrong token is refused there.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirects
        .get(format!("{}/", stranger.base))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(header(&r, "location"), "/login");
    let sign_in = |token: &'static str| {
        no_redirects
            .post(format!("{}/login", stranger.base))
            .form(&[("token", token)])
            .send()
    };
    let r = sign_in("correct-horse").await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // A session cookie may come with any answer; the token cookie must not.
    assert!(r
        .headers()
        .get_all("set-cookie")
        .iter()
        .all(|c| !c.to_str().unwrap().starts_with("triposg_token=")));
    assert!(r.text().await.unwrap().contains("not this server's token"));
    let r = sign_in("correct-horse-battery").await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let cookie = header(&r, "set-cookie");
    assert!(
        cookie.starts_with("triposg_token=correct-horse-battery;"),
        "{cookie}"
    );
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    let token_cookie = cookie.split(';').next().unwrap();
    let r = stranger
        .get("/api/jobs")
        .header("cookie", format!("{}; {token_cookie}", stranger.cookie))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Signed in is not the same as owning: the owner's job stays out of reach.
    let r = stranger
        .get(&format!("/api/jobs/{id}"))
        .header("cookie", format!("{}; {token_cookie}", stranger.cookie))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_are_random_and_nothing_outside_the_assets_is_served() {
    let outputs = tempfile::tempdir().unwrap();
    std::fs::write(
        outputs.path().join("secret.txt"),
        "outputs folder, not a job",
    )
    .unwrap();
    let server = start(config(outputs.path())).await;
    let me = Browser::new(&server);

    // Job ids: 128-bit random (UUID v4), never sequential.
    let mut ids = Vec::new();
    for _ in 0..3 {
        let id = me.submit(&FAST).await;
        assert_eq!(id.len(), 32, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        assert_eq!(&id[12..13], "4", "not a v4 UUID: {id}");
        ids.push(id);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3);
    // A session cookie the server did not make is replaced, not adopted.
    for forged in ["1", "../../x", "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"] {
        let r = me
            .http
            .get(format!("{}/api/jobs", me.base))
            .header("cookie", format!("triposg_session={forged}"))
            .send()
            .await
            .unwrap();
        let set = header(&r, "set-cookie");
        let new = set
            .strip_prefix("triposg_session=")
            .and_then(|s| s.split(';').next())
            .unwrap_or_else(|| panic!("{forged}: {set}"));
        assert!(new.len() == 32 && new != forged, "{new}");
    }

    let id = &ids[0];
    for path in [
        "/../Cargo.toml",
        "/..%2F..%2FCargo.toml",
        "/%2e%2e/%2e%2e/Cargo.toml",
        "/vendor/..%2F..%2F..%2FCargo.toml",
        "/vendor/three/../../../README.md",
        "/%2Fetc%2Fpasswd",
        "//etc/passwd",
        "/tests/ui.mjs",
        "/package.json",
        "/node_modules/playwright-core/package.json",
        "/secret.txt",
        "/triposg.db",
        "/jobs/",
        &format!("/jobs/{id}/upload"),
        &format!("/api/jobs/{id}/files/..%2Fsecret.txt"),
        &format!("/api/jobs/{id}/files/..%2F..%2Fsecret.txt"),
        &format!("/api/jobs/{id}/files/%2Fetc%2Fpasswd"),
        &format!("/api/jobs/{id}/files/.."),
        "/api/jobs/..%2F..%2Fsecret.txt%23/files/x",
        "/api/jobs/%2E%2E/files/triposg.db",
        "/outputs/..%2Fsecret.txt",
        "/outputs/..%2F..%2Fsecret.txt",
    ] {
        let r = me.get(path).send().await.unwrap();
        let status = r.status();
        let body = r.text().await.unwrap();
        assert!(
            status == StatusCode::NOT_FOUND || status == StatusCode::BAD_REQUEST,
            "{path}: {status} {body}"
        );
        for leak in ["[workspace]", "root:", "outputs folder", "SQLite format"] {
            assert!(!body.contains(leak), "{path} leaked {leak}");
        }
    }
    server.shutdown().await.unwrap();
}
