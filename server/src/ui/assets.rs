//! The console's static files, compiled into the binary and served under
//! `/ui/assets/` (no CDN, nothing read from disk): one stylesheet, the live
//! list/countdown script, the recording player and the icon. The CSP allows
//! scripts and styles from `'self'` only, so these are the only ones that run.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// File name of the stylesheet.
pub(crate) const CSS: &str = "console.css";

/// `(name, content type, body)` of every asset.
const FILES: &[(&str, &str, &str)] = &[
    (
        CSS,
        "text/css; charset=utf-8",
        include_str!("assets/console.css"),
    ),
    (
        "live.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/live.js"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("assets/favicon.svg"),
    ),
    (
        "player.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/player.js"),
    ),
];

/// `GET /ui/assets/{name}`.
pub(crate) async fn asset(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, kind, body)) => (
            [
                (header::CONTENT_TYPE, *kind),
                (header::CACHE_CONTROL, "public, max-age=300"),
            ],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}
