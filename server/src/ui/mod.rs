//! The web console under `/ui`: router assembly and the security headers
//! of every response. Pages: [`approvals`] (review, live list),
//! [`audit`] (search, event detail, export, replay), [`session`] (login,
//! logout, CSRF) over [`sessions`] (the server-side session table) and
//! [`oidc`] (the OpenID Connect relying party), built by [`login`], [`layout`] (the one page shell), [`assets`] (stylesheet
//! and scripts compiled into the binary).
//!
//! Every page is a maud template: each value is HTML-escaped where it is
//! written; no page uses `PreEscaped`.
//!
//! Security: every response carries a CSP allowing scripts, styles and
//! fetches from this origin only (no inline script or style, no `eval`),
//! `frame-ancestors 'none'`, `X-Frame-Options: DENY`, `nosniff` and
//! `Referrer-Policy: same-origin`; state-changing forms carry a CSRF token
//! and cross-origin posts are refused ([`session`]).

pub mod approvals;
pub mod assets;
pub mod audit;
pub mod layout;
pub mod login;
pub mod oidc;
pub mod session;
pub mod sessions;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::routing::{get, post};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::state::AppState;

/// What a URL part may hold raw (RFC 3986 unreserved); everything else is
/// percent-encoded.
const URL_PART: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `s` as one percent-encoded path segment or query value.
pub(crate) fn url_part(s: &str) -> String {
    utf8_percent_encode(s, URL_PART).to_string()
}

/// Routes under `/ui`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(approvals::index))
        .route("/approvals", get(approvals::index))
        .route("/approvals/events", get(approvals::events))
        .route("/audit", get(audit::search))
        .route("/audit/export.jsonl", get(audit::export))
        .route("/audit/{id}", get(audit::event))
        .route("/audit/{id}/recording", get(audit::recording))
        .route("/assets/{name}", get(assets::asset))
        .route("/login", get(session::login_page).post(session::login))
        .route("/login/start", get(session::login_start))
        .route("/login/callback", get(session::login_callback))
        .route("/logout", post(session::logout))
        .route("/approvals/{id}", get(approvals::page))
        .route("/approvals/{id}/decide", post(approvals::decide))
        .layer(axum::middleware::map_response(security_headers))
}

/// `Content-Security-Policy` of every UI response: scripts, styles and
/// fetches (the live list's event stream, the player's recording) only
/// from this origin, none inline; forms post only here; no framing.
pub(crate) fn csp() -> &'static HeaderValue {
    static CSP: HeaderValue = HeaderValue::from_static(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
         form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    );
    &CSP
}

/// Security headers on every UI response (CSP, no framing, no sniffing, no
/// referrer to other sites: page URLs carry approval ids). The referrer
/// policy is `same-origin`, not `no-referrer`: under `no-referrer` browsers
/// send `Origin: null` on the pages' own form posts (Fetch, "append a request
/// Origin header"), which the origin check must refuse.
async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, csp().clone());
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[cfg(test)]
mod tests;
