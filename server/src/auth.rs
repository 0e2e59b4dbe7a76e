//! Bearer authentication of HTTP requests: the one place a bearer token
//! becomes a [`Principal`]. Without a valid token the answer is a 401 whose
//! `WWW-Authenticate` points at the RFC 9728 metadata document. Used as a
//! layer in front of `/mcp` ([`require_bearer`]) and called by the REST
//! handlers ([`authenticate`]). Every refusal is counted for the audit
//! chain's `auth_refused` window ([`gateway_core::access_log`]).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use gateway_core::Principal;
use serde_json::json;

use crate::state::AppState;

tokio::task_local! {
    /// The peer address of the request being served, set by [`with_peer`].
    static PEER: String;
}

/// Middleware: remember the request's peer IP (from axum's `ConnectInfo`,
/// when the server is served with it) for the refusal counts. A forwarded
/// header is the client's word and is not used.
pub async fn with_peer(req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    match peer {
        Some(p) => PEER.scope(p, next.run(req)).await,
        None => next.run(req).await,
    }
}

/// Where the request being served comes from: its peer IP, or `unknown`
/// (a router served without `ConnectInfo`).
pub fn peer() -> String {
    PEER.try_with(Clone::clone)
        .unwrap_or_else(|_| "unknown".into())
}

/// The bearer token of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// A 401 that tells the client where to learn how to authenticate. Per
/// RFC 6750 §3.1, `error="invalid_token"` only when a token was presented.
pub fn unauthorized(state: &AppState, reason: &str, token_given: bool) -> Response {
    let mut challenge = format!(
        "Bearer resource_metadata=\"{}/.well-known/oauth-protected-resource\"",
        state.public_url
    );
    if token_given {
        challenge.push_str(&format!(
            ", error=\"invalid_token\", error_description=\"{}\"",
            reason.replace('"', "'")
        ));
    }
    let mut resp = (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({"error": "unauthorized", "message": reason})),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

/// Resolve the caller of an HTTP request.
pub async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Principal, Response> {
    let Some(token) = bearer(headers) else {
        state.gateway.auth_refusals().note("missing_token", &peer());
        return Err(unauthorized(state, "missing bearer token", false));
    };
    let resolved = state.auth.resolve(token).await;
    if resolved.is_ok() {
        crate::listener::note_authenticated();
    }
    resolved.map_err(|e| {
        tracing::info!(reason = e.reason(), "rejected bearer token");
        // Counted, never the token: one `auth_refused` event per window.
        state.gateway.auth_refusals().note(e.reason(), &peer());
        unauthorized(state, &e.to_string(), true)
    })
}

/// Middleware: put the caller's [`Principal`] in the request's extensions,
/// or answer 401.
pub async fn require_bearer(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    match authenticate(&state, req.headers()).await {
        Ok(principal) => {
            req.extensions_mut().insert(principal);
            next.run(req).await
        }
        Err(resp) => resp,
    }
}
