//! Headers on every response that keep other sites and injected content from using the app: a
//! content security policy that runs only the app's own script files, no MIME sniffing, no
//! framing, no referrer. Cross-origin requests get no CORS headers, so browsers keep other
//! sites from reading any answer.

use std::sync::LazyLock;

use axum::extract::Request;
use axum::http::{header, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use sha2::{Digest, Sha256};

/// An inline `<script>` of a page: only import maps are allowed (by hash), since a browser
/// cannot load one from a file.
#[derive(Debug, PartialEq)]
pub struct InlineScript<'a> {
    pub import_map: bool,
    pub body: &'a str,
}

/// The inline scripts of an HTML page (those without `src`).
pub fn inline_scripts(html: &str) -> Vec<InlineScript<'_>> {
    let mut found = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<script") {
        rest = &rest[start..];
        let Some(open_end) = rest.find('>') else {
            break;
        };
        let tag = &rest[..open_end];
        let body_and_more = &rest[open_end + 1..];
        let Some(close) = body_and_more.find("</script>") else {
            break;
        };
        if !tag.contains("src=") {
            found.push(InlineScript {
                import_map: tag.contains("importmap"),
                body: &body_and_more[..close],
            });
        }
        rest = &body_and_more[close..];
    }
    found
}

fn content_security_policy() -> String {
    let hashes: Vec<String> = crate::ui::html_pages()
        .flat_map(|page| {
            inline_scripts(&page)
                .into_iter()
                .filter(|s| s.import_map)
                .map(|s| {
                    let digest = Sha256::digest(s.body.as_bytes());
                    format!(
                        " 'sha256-{}'",
                        base64::engine::general_purpose::STANDARD.encode(digest)
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect();
    format!(
        "default-src 'self'; script-src 'self'{}; style-src 'self'; img-src 'self' data: blob:; \
         connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'",
        hashes.concat()
    )
}

static HEADERS: LazyLock<Vec<(HeaderName, HeaderValue)>> = LazyLock::new(|| {
    let csp = HeaderValue::from_str(&content_security_policy())
        .expect("the policy is built from ASCII only");
    vec![
        (header::CONTENT_SECURITY_POLICY, csp),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        // For browsers older than frame-ancestors.
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        // Addresses may carry ?token= or job ids.
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ),
        // Other sites cannot embed downloads (an <img> or <script> of a job's file) either.
        (
            HeaderName::from_static("cross-origin-resource-policy"),
            HeaderValue::from_static("same-origin"),
        ),
    ]
});

pub async fn headers_layer(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    for (name, value) in HEADERS.iter() {
        headers.entry(name).or_insert_with(|| value.clone());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_scripts_are_found_and_files_are_not() {
        let html = r#"<script type="importmap">{"a":1}</script><script src="/x.js"></script>
            <script type="module">alert(1)</script>"#;
        assert_eq!(
            inline_scripts(html),
            [
                InlineScript {
                    import_map: true,
                    body: r#"{"a":1}"#
                },
                InlineScript {
                    import_map: false,
                    body: "alert(1)"
                }
            ]
        );
    }

    /// The policy forbids inline code and styles, so the pages must have none, or the browser
    /// would silently drop them.
    #[test]
    fn the_embedded_pages_need_no_inline_script_or_style() {
        let mut pages = 0;
        for page in crate::ui::html_pages() {
            pages += 1;
            for script in inline_scripts(&page) {
                assert!(script.import_map, "inline script: {}", script.body);
            }
            let lower = page.to_ascii_lowercase();
            assert!(!lower.contains("<style"), "inline <style> in {page}");
            assert!(!lower.contains(" style="), "style attribute in {page}");
            assert!(!lower.contains("javascript:"), "javascript: URL in {page}");
            for handler in [
                " onclick=",
                " onload=",
                " onerror=",
                " onchange=",
                " onsubmit=",
            ] {
                assert!(!lower.contains(handler), "{handler} in {page}");
            }
        }
        assert!(pages >= 2);
        assert!(content_security_policy().contains("'sha256-"));
    }
}
