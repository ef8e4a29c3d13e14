//! The web console: the built single-page app (`ui/dist`, see `server.console_dir`) served at
//! `/`. Files are served as they are; any other path that is not the API's falls back to
//! `index.html`, so the app's own routes (`/approvals`, `/audit?…`) survive a reload. When the
//! console has not been built, `/` says so and how to build it instead of a bare 404.
//!
//! Architecture invariant: the console is a client of the public API like any other; this module
//! serves files and nothing else.

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use tower_http::services::{ServeDir, ServeFile};

use super::api;
use crate::gateway::Gateway;

/// Paths that belong to the API and its neighbours: unknown ones stay JSON 404s.
fn is_api_path(path: &str) -> bool {
    ["/api", "/auth", "/events", "/metrics", "/healthz", "/mcp"]
        .iter()
        .any(|p| path == *p || path.strip_prefix(p).is_some_and(|r| r.starts_with('/')))
}

/// The router's fallback: console files, the app shell for its routes, or the API's 404.
pub async fn serve(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    if is_api_path(&path) {
        return api::not_found().await.into_response();
    }
    let dir = gw.config.console_dir();
    let index = dir.join("index.html");
    if !index.is_file() {
        return not_built(&dir);
    }
    let mut served = match ServeDir::new(&dir)
        .fallback(ServeFile::new(&index))
        .try_call(req)
        .await
    {
        Ok(r) => r.map(Body::new),
        Err(e) => {
            tracing::error!(error = %e, dir = %dir.display(), "serving the web console failed");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot read the web console files",
            )
                .into_response();
        }
    };
    let h = served.headers_mut();
    // Vite names the files under assets/ by their content hash: they never change. The app
    // shell must be re-read so a new build is picked up.
    let cache = if path.starts_with("/assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    security_headers(h);
    served
}

/// The console approves statements and grants access: it must never be framed by another site
/// (clickjacking), and only runs its own scripts.
fn security_headers(h: &mut axum::http::HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

fn not_built(dir: &Path) -> Response {
    let dir = dir.display().to_string();
    let dir = dir
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Gatehouse</title></head>\
         <body style=\"font-family:sans-serif;max-width:40em;margin:3em auto\">\
         <h1>The web console has not been built</h1>\
         <p>The gateway is running and its API is at <a href=\"/api/v1/openapi.json\">/api/v1/openapi.json</a>, \
         but there is no <code>index.html</code> in <code>{dir}</code>.</p>\
         <p>Build it from the repository with <code>npm ci &amp;&amp; npm run build</code> \
         (<code>scripts/setup.sh</code> does this), or point <code>[server] console_dir</code> at a built console.</p>\
         </body></html>"
    );
    let mut r = (StatusCode::SERVICE_UNAVAILABLE, Html(body)).into_response();
    security_headers(r.headers_mut());
    r
}

#[cfg(test)]
mod tests {
    use super::is_api_path;

    #[test]
    fn api_paths_are_not_the_consoles() {
        for p in [
            "/api/v1/nope",
            "/auth/oidc/x",
            "/events",
            "/metrics",
            "/healthz",
        ] {
            assert!(is_api_path(p), "{p}");
        }
        for p in [
            "/",
            "/approvals",
            "/audit",
            "/assets/index-abc.js",
            "/eventsx",
        ] {
            assert!(!is_api_path(p), "{p}");
        }
    }
}
