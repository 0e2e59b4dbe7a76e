//! `/api/approvals`: the reviewers' REST API (bearer JWT, like `/mcp`).
//!
//! - `GET /api/approvals?state=pending|approved|...|all&limit=N` → `{approvals: [approval]}`:
//!   the approvals the caller may decide (every one for `audit:read`).
//! - `GET /api/approvals/{id}` → approval (the requester, a member of a
//!   required group, or an auditor; 404 otherwise).
//! - `POST /api/approvals/{id}/approve {reason?}` / `.../deny {reason}` → approval.
//!
//! Errors: `{error, message}` with 400 (no reason to deny), 403 (own call,
//! not a reviewer), 404, 409 (not pending, already decided), 503 (store or
//! audit unavailable).

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use gateway_core::Principal;
use gateway_core::approval::{ApprovalService, ApprovalState, DecideError, ReviewError};
use serde::Deserialize;
use serde_json::json;

use crate::auth::authenticate;
use crate::errors::error;
use crate::state::AppState;

/// Routes under `/api/approvals`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(list))
        .route("/{id}", get(show))
        .route("/{id}/approve", post(approve))
        .route("/{id}/deny", post(deny))
}

/// Query of the list.
#[derive(Debug, Deserialize, Default)]
pub struct ListQuery {
    state: Option<String>,
    limit: Option<u32>,
}

/// Body of approve/deny.
#[derive(Debug, Deserialize, Default)]
pub struct DecisionBody {
    reason: Option<String>,
}

/// Map a review error to HTTP.
pub fn review_error(e: &ReviewError) -> Response {
    let status = match e {
        ReviewError::NotFound(_) => StatusCode::NOT_FOUND,
        ReviewError::Refused(DecideError::OwnCall | DecideError::NotReviewer(_)) => {
            StatusCode::FORBIDDEN
        }
        ReviewError::Refused(DecideError::ReasonRequired) => StatusCode::BAD_REQUEST,
        ReviewError::Refused(_) => StatusCode::CONFLICT,
        ReviewError::Store(_) | ReviewError::AuditUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    error(status, e.to_string())
}

/// The authenticated caller and the approval service, or the response that
/// says why not (401 without a valid token, 503 without approvals).
async fn caller_and_service<'s>(
    state: &'s AppState,
    headers: &HeaderMap,
) -> Result<(Principal, &'s ApprovalService), Response> {
    let who = authenticate(state, headers).await?;
    let service = super::service(state).ok_or_else(unavailable)?;
    Ok((who, service))
}

fn unavailable() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "this server has no approval service",
    )
}

/// Parse `state` (`all` or absent: every state).
pub fn parse_state(s: Option<&str>) -> Result<Option<ApprovalState>, String> {
    match s {
        None | Some("all") | Some("") => Ok(None),
        Some(s) => ApprovalState::parse(s).map(Some).ok_or_else(|| {
            format!("unknown state {s:?}: pending, approved, denied, expired, cancelled, executed, failed or all")
        }),
    }
}

async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let (who, service) = match caller_and_service(&state, &headers).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let Query(q) = match query {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let filter = match parse_state(q.state.as_deref()) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let all = super::sees_all(&state, &who);
    match service
        .list_for(&who, filter, all, q.limit.unwrap_or(100).min(1000))
        .await
    {
        Ok(list) => axum::Json(json!({
            "approvals": list.iter().map(|a| service.view(a)).collect::<Vec<_>>()
        }))
        .into_response(),
        Err(e) => review_error(&e),
    }
}

async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let (who, service) = match caller_and_service(&state, &headers).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let all = super::sees_all(&state, &who);
    match service.get_for(&id, &who, all).await {
        Ok(a) => axum::Json(service.view(&a)).into_response(),
        Err(e) => review_error(&e),
    }
}

type DecisionJson = Result<axum::Json<DecisionBody>, axum::extract::rejection::JsonRejection>;

/// Approve or deny for the authenticated reviewer; an empty body is fine
/// (approve needs no reason; deny then answers 400 for the missing reason).
async fn decide(
    state: AppState,
    headers: HeaderMap,
    id: String,
    body: DecisionJson,
    approve: bool,
) -> Response {
    let reason = match body {
        Ok(axum::Json(b)) => b.reason,
        Err(axum::extract::rejection::JsonRejection::MissingJsonContentType(_)) => None,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let (who, service) = match caller_and_service(&state, &headers).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let result = if approve {
        service.approve(&id, &who, reason).await
    } else {
        service.deny(&id, &who, reason).await
    };
    match result {
        Ok(a) => axum::Json(service.view(&a)).into_response(),
        Err(e) => review_error(&e),
    }
}

async fn approve(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    b: DecisionJson,
) -> Response {
    decide(state, headers, id, b, true).await
}

async fn deny(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    b: DecisionJson,
) -> Response {
    decide(state, headers, id, b, false).await
}
