//! REST API under `/api`: the audit log for principals permitted
//! `audit:read` (events, and each event's terminal recording, checked
//! against the event before it is served), and, with the approvals work,
//! the reviewers' endpoints.
//! Every endpoint authenticates with the same bearer tokens as `/mcp`, and
//! every read of the audit log is itself an `audit_read` event in the chain.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use gateway_core::audit::AuditFilter;
use gateway_core::audit::chain::recording_problem;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::authenticate;
use crate::errors::error;
use crate::state::AppState;

/// The audit routes under `/api` (the approvals' routes are nested beside
/// them by [`crate::http::router`]).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/audit", get(list_audit))
        .route("/audit/{id}", get(get_audit))
        .route("/audit/{id}/recording", get(get_recording))
}

/// Media type of an asciicast file.
pub const ASCIICAST: &str = "application/x-asciicast";

/// Query of `GET /api/audit`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    principal: Option<String>,
    tool: Option<String>,
    connection: Option<String>,
    decision: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<u32>,
    /// `true`: also the write-ahead intent entries (see
    /// `gateway_core::audit::intent`); default: the one event per call.
    intents: Option<bool>,
}

/// Authenticate and authorize a read of the audit log, and record it in
/// the chain (`audit_read`: who, which path, which filter or id) before
/// anything is answered. A refused read is recorded too (`deny`). If the
/// record cannot be written the read fails closed (503).
async fn may_read(state: &AppState, headers: &HeaderMap, what: Value) -> Result<(), Response> {
    let principal = authenticate(state, headers).await?;
    let allowed = match state.record_audit_read(&principal, what).await {
        Ok(allowed) => allowed,
        Err(e) => {
            tracing::error!(error = %e, "audit read NOT recorded; refusing it");
            return Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the audit log cannot record this read; try again later",
            ));
        }
    };
    if allowed {
        Ok(())
    } else {
        Err(error(
            StatusCode::FORBIDDEN,
            "no policy permits audit:read for you",
        ))
    }
}

async fn list_audit(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(q) = match query {
        Ok(q) => q,
        Err(e) => {
            // Authenticate (and record) before saying what is wrong with it.
            let asked = json!({"path": "/api/audit", "filter": "invalid"});
            if let Err(r) = may_read(&state, &headers, asked).await {
                return r;
            }
            return error(StatusCode::BAD_REQUEST, e.body_text());
        }
    };
    let asked = json!({"path": "/api/audit", "filter": {
        "principal": q.principal, "tool": q.tool, "connection": q.connection,
        "decision": q.decision, "since": q.since, "until": q.until, "limit": q.limit,
        "intents": q.intents,
    }});
    if let Err(r) = may_read(&state, &headers, asked).await {
        return r;
    }
    let (since, until) = match (
        parse_time(q.since.as_deref()),
        parse_time(q.until.as_deref()),
    ) {
        (Ok(s), Ok(u)) => (s, u),
        (Err(e), _) | (_, Err(e)) => return error(StatusCode::BAD_REQUEST, e),
    };
    let filter = AuditFilter {
        principal: q.principal,
        tool: q.tool,
        connection: q.connection,
        decision: q.decision,
        since,
        until,
        limit: Some(q.limit.unwrap_or(100).min(1000)),
        intents: q.intents.unwrap_or(false),
        ..Default::default()
    };
    match state.gateway.audit().list(&filter).await {
        Ok(events) => axum::Json(json!({"events": events})).into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

fn parse_time(s: Option<&str>) -> Result<Option<chrono::DateTime<chrono::Utc>>, String> {
    s.map(|s| {
        chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&chrono::Utc))
            .map_err(|e| {
                format!("since/until must be RFC 3339 times like 2026-11-25T10:00:00Z: {e}")
            })
    })
    .transpose()
}

async fn get_audit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let asked = json!({"path": "/api/audit/{id}", "id": id});
    if let Err(r) = may_read(&state, &headers, asked).await {
        return r;
    }
    match state.gateway.audit().get(&id).await {
        Ok(Some(e)) => axum::Json(e).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no audit event {id}")),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// `GET /api/audit/{id}/recording`: the event's terminal recording
/// (asciicast v2), for whoever may read the audit. Checked against the
/// sha256 and size the event records before a byte is sent: a missing or
/// changed file is a 500 naming the problem, never the file. 404: no such
/// event, or an event without a recording.
async fn get_recording(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let asked = json!({"path": "/api/audit/{id}/recording", "id": id});
    if let Err(r) = may_read(&state, &headers, asked).await {
        return r;
    }
    let audit = state.gateway.audit();
    let event = match audit.get(&id).await {
        Ok(Some(e)) => e,
        Ok(None) => return error(StatusCode::NOT_FOUND, format!("no audit event {id}")),
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    let Some(reference) = &event.record.recording else {
        return error(
            StatusCode::NOT_FOUND,
            format!("audit event {id} has no recording"),
        );
    };
    let body = match audit.recording(&reference.sha256).await {
        Ok(b) => b,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    match (recording_problem(reference, body.as_deref()), body) {
        (None, Some(body)) => (
            [
                (header::CONTENT_TYPE, ASCIICAST),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response(),
        (problem, _) => {
            let problem = problem.unwrap_or_else(|| "is missing from the store".into());
            tracing::error!(event = %id, sha256 = %reference.sha256, "audit recording {problem}");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "the recording of audit event {id} ({}) {problem}; the audit log fails \
                     `tollgate audit verify`",
                    reference.sha256
                ),
            )
        }
    }
}
