//! Who is asking: the browser session a job belongs to (a cookie), and the optional access token.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};

use crate::AppState;

const SESSION_COOKIE: &str = "triposg_session";
const TOKEN_COOKIE: &str = "triposg_token";

/// The browser session of a request (set by [`session_layer`]).
#[derive(Debug, Clone)]
pub struct Session(pub String);

fn new_session_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

fn valid_session_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn cookie(name: &'static str, value: String) -> Cookie<'static> {
    Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .permanent()
        .build()
}

/// The cookie that carries the access token once a browser has shown it.
pub fn token_cookie(token: &str) -> Cookie<'static> {
    cookie(TOKEN_COOKIE, token.to_string())
}

/// Gives every request a session, creating the cookie on the first visit.
pub async fn session_layer(mut req: Request, next: Next) -> Response {
    let jar = CookieJar::from_headers(req.headers());
    let existing = jar
        .get(SESSION_COOKIE)
        .map(|c| c.value().to_string())
        .filter(|s| valid_session_id(s));
    let id = existing.clone().unwrap_or_else(new_session_id);
    req.extensions_mut().insert(Session(id.clone()));
    let response = next.run(req).await;
    if existing.is_some() {
        response
    } else {
        (jar.add(cookie(SESSION_COOKIE, id)), response).into_response()
    }
}

/// Compares without stopping at the first difference, so timing does not leak the token.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// With `--auth-token`, every request but the health checks must carry the token: as
/// `Authorization: Bearer`, the cookie the UI gets, or once as `?token=` in the address.
pub async fn auth_layer(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let Some(expected) = state.config.auth_token.as_deref() else {
        return next.run(req).await;
    };
    // The sign-in page and its stylesheet are all a stranger gets.
    if matches!(
        req.uri().path(),
        "/healthz" | "/readyz" | "/login" | "/style.css"
    ) {
        return next.run(req).await;
    }
    let jar = CookieJar::from_headers(req.headers());
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let from_query = req.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("token="))
            .map(str::to_string)
    });
    let cookie_token = jar.get(TOKEN_COOKIE).map(|c| c.value().to_string());
    let ok = |t: Option<&str>| t.is_some_and(|t| same_secret(t, expected));
    if ok(bearer) || ok(cookie_token.as_deref()) {
        return next.run(req).await;
    }
    if ok(from_query.as_deref()) {
        let response = next.run(req).await;
        return (jar.add(token_cookie(expected)), response).into_response();
    }
    let page_visit = req.method() == Method::GET
        && req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html"));
    if page_visit {
        return Redirect::to("/login").into_response();
    }
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(serde_json::json!({
            "error": "this server needs its access token: sign in at /login, open it once as http://HOST:PORT/?token=YOUR_TOKEN, or send the header Authorization: Bearer YOUR_TOKEN"
        })),
    )
        .into_response()
}
