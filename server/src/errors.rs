//! The JSON error body of the REST API (`{error, message}`), shared by
//! `/api/audit`, `/api/approvals` and the bearer check. A leaf module.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An API error as JSON: `{"error": <reason phrase>, "message": ...}`.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(json!({
            "error": status.canonical_reason().unwrap_or("error"),
            "message": message.into(),
        })),
    )
        .into_response()
}
