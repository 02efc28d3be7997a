//! The sign-in page for browsers when the server has an access token: a form instead of a bare
//! 401, so nobody needs to know about `?token=`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;

use crate::session::{same_secret, token_cookie};
use crate::AppState;

fn page(message: &str) -> Html<String> {
    Html(format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>TripoSG: sign in</title>
<link rel="stylesheet" href="/style.css">
</head>
<body>
<header><h1>TripoSG <span>sign in</span></h1></header>
<main>
<section class="panel">
<form method="post" action="/login">
<p>This server needs its access token (the one it was started with, <code>--auth-token</code> or <code>TRIPOSG_AUTH_TOKEN</code>).</p>
<p><label>Access token <input type="password" name="token" autocomplete="current-password" required autofocus></label></p>
<p><button type="submit">Sign in</button></p>
<p class="error">{message}</p>
</form>
</section>
</main>
</body>
</html>
"#
    ))
}

pub async fn show() -> Html<String> {
    page("")
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
}

pub async fn submit(
    State(state): State<Arc<AppState>>,
    jar: CookieJar,
    Form(form): Form<LoginForm>,
) -> Response {
    let Some(expected) = state.config.auth_token.as_deref() else {
        return Redirect::to("/").into_response();
    };
    if same_secret(form.token.trim(), expected) {
        return (jar.add(token_cookie(expected)), Redirect::to("/")).into_response();
    }
    // Slows down guessing from one connection.
    tokio::time::sleep(Duration::from_millis(500)).await;
    (
        StatusCode::UNAUTHORIZED,
        page(
            "That is not this server's token. Ask whoever runs it, or look at how it was started.",
        ),
    )
        .into_response()
}
