//! The review pages: `/ui` and `/ui/approvals` (approvals you may decide),
//! `/ui/approvals/{id}` (the family's review of exactly what will run, with
//! approve/deny forms).
//!
//! Pages know no tool family: they show the approval's [`ReviewSummary`]
//! (title, what runs, resources, diff) and the arguments key by key. The
//! page shows only fixed messages chosen by key (`?done=`), never query
//! text. Pages never show raw arguments (unless policy permits the reviewer
//! `unmask`) or the token.

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use gateway_core::Principal;
use gateway_core::approval::record::fmt as rfc3339;
use gateway_core::approval::{Approval, ApprovalState};
use gateway_core::review::{ReviewSummary, ReviewText};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use super::layout::{Viewer, layout, state_badge};
use super::session::{csrf_for, csrf_ok, login_redirect, same_origin, session};
use super::url_part;
use crate::approvals as approval;
use crate::state::AppState;

pub(crate) async fn index(State(state): State<AppState>, jar: CookieJar) -> Response {
    let Some((who, token)) = session(&state, &jar).await else {
        return login_redirect("/ui");
    };
    let Some(service) = approval::service(&state) else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no approval service").into_response();
    };
    let all = approval::sees_all(&state, &who);
    let list = match service.list_for(&who, None, all, 200).await {
        Ok(l) => l,
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    };
    let csrf = csrf_for(&token);
    list_page(
        Viewer {
            who: &who,
            csrf: &csrf,
        },
        &list,
        all,
    )
    .into_response()
}

/// The list of approvals: pending first, then the rest, newest first
/// within each.
pub(crate) fn list_page(viewer: Viewer<'_>, list: &[Approval], all: bool) -> Markup {
    let (pending, rest): (Vec<&Approval>, Vec<&Approval>) =
        list.iter().partition(|a| a.state == ApprovalState::Pending);
    let body = html! {
        p {
            @if all { "Every approval (you may read the audit log)." }
            @else { "Approvals you may decide." }
        }
        table {
            tr { th { "id" } th { "state" } th { "requester" } th { "connection" } th { "call" } th { "expires" } }
            @for a in pending.iter().chain(rest.iter()) {
                tr {
                    td { a href={ "/ui/approvals/" (url_part(&a.id)) } { (a.id) } }
                    td { (state_badge(a.state)) }
                    td { (a.requester.sub) }
                    td { (a.connection.as_deref().unwrap_or("-")) }
                    td { (a.review.title) br; code { (a.summary_text()) } }
                    td { (rfc3339(a.expires_at)) }
                }
            }
            @if list.is_empty() {
                tr { td colspan="6" { "Nothing for you to review." } }
            }
        }
    };
    layout("Approvals", Some(viewer), body)
}

/// Whether the arguments a reviewer sees are masked, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Masking {
    /// Nothing in the arguments is masked.
    Nothing,
    /// Values of these types are masked.
    Masked {
        /// `[TYPE]` labels.
        types: Vec<String>,
        /// The approval's connection (`-` when none).
        connection: String,
    },
    /// Policy permits this reviewer `unmask`: shown raw.
    Unmasked {
        /// `[TYPE]` labels.
        types: Vec<String>,
        /// The approval's connection.
        connection: String,
    },
}

/// The arguments this reviewer may see, and whether they are masked: raw
/// only when policy permits the reviewer `unmask` on the approval's
/// connection for every type the masker finds in them.
pub(crate) fn reviewer_view(state: &AppState, who: &Principal, a: &Approval) -> (Value, Masking) {
    let mut masked = a.arguments.clone();
    let found = state.gateway.masker().mask_value("", &mut masked, &[]);
    if found.is_empty() {
        return (a.arguments_masked.clone(), Masking::Nothing);
    }
    let types: Vec<String> = found.keys().map(|t| format!("[{t}]")).collect();
    let connection = a.connection.as_deref().unwrap_or_default();
    let policy = state.gateway.policy();
    if !connection.is_empty()
        && gateway_core::disclosure::may_unmask(&policy, who, connection, &[], &found, &[])
    {
        (
            a.arguments.clone(),
            Masking::Unmasked {
                types,
                connection: connection.to_string(),
            },
        )
    } else {
        let connection = if connection.is_empty() {
            "-"
        } else {
            connection
        };
        (
            a.arguments_masked.clone(),
            Masking::Masked {
                types,
                connection: connection.to_string(),
            },
        )
    }
}

pub(crate) fn masking_note(m: &Masking) -> Markup {
    html! {
        @match m {
            Masking::Nothing => {}
            Masking::Unmasked { types, connection } => p.msg {
                "Shown unmasked: policy permits you " code { "unmask" } " for " (types.join(", "))
                " on " code { (connection) } "."
            },
            Masking::Masked { types, connection } => p.msg {
                "Values shown as " (types.join(", ")) " are masked; a policy permitting you "
                code { "unmask" } " on " code { (connection) } " would show them. "
                "What runs keeps its structure (names, every predicate): each literal value is masked on its own."
            },
        }
    }
}

/// Where the call stands, in the tense that fits its state.
pub(crate) fn lifecycle(a: &Approval) -> String {
    let at =
        |t: Option<chrono::DateTime<chrono::Utc>>| t.map(rfc3339).unwrap_or_else(|| "-".into());
    match a.state {
        ApprovalState::Pending => "When approved, the call runs once, with exactly these arguments, for this requester, and only if policy still allows it then. Approval does not start it: it runs when the agent's waiting call, task or approval_wait picks it up.".into(),
        ApprovalState::Approved => format!(
            "Approved at {}. The call runs once when the agent's waiting call, task or approval_wait picks it up, and only if policy still allows it then.",
            at(a.decided_at)
        ),
        ApprovalState::Executed => format!(
            "Ran once: started {}, finished {}{}. Its result is in the audit log (tool {}).",
            at(a.claimed_at),
            at(a.finished_at),
            a.items.map(|n| format!(", {n} items returned or changed")).unwrap_or_default(),
            a.tool
        ),
        ApprovalState::Failed => format!(
            "Ran once and failed: started {}, finished {}. The error is in the audit log.",
            at(a.claimed_at),
            at(a.finished_at)
        ),
        _ => "Did not run, and never will: a new call asks for a new approval.".into(),
    }
}

/// The message after a decision, by the key `decide` redirects with.
pub(crate) fn done_message(key: &str) -> Option<&'static str> {
    match key {
        "approved" => Some("Recorded. The approval is now approved."),
        "denied" => Some("Recorded. The approval is now denied."),
        "recorded" => Some("Recorded. The approval waits for more reviewers."),
        _ => None,
    }
}

/// A review text as it runs. Literal parts are already masked one by one.
pub(crate) fn review_text(t: &ReviewText) -> Markup {
    html! { pre { (t.joined()) } }
}

/// The family's review: title, each thing that runs with what it touches,
/// every resource, and the diff when there is one.
pub(crate) fn review_section(r: &ReviewSummary) -> Markup {
    html! {
        h2 { "What runs" }
        p { b { (r.title) } }
        @if !r.runs.is_empty() {
            p { "Exactly as Tollgate analysed it (the form policy saw; comments are not sent); literals masked one by one." }
            ol {
                @for item in &r.runs {
                    li {
                        b { (item.label) } " on "
                        @if item.resources.is_empty() { "(no resource)" }
                        @for (i, res) in item.resources.iter().enumerate() {
                            @if i > 0 { ", " }
                            code { (res) }
                        }
                        (review_text(&item.text))
                    }
                }
            }
        }
        @if !r.resources.is_empty() {
            p {
                "Touches: "
                @for (i, res) in r.resources.iter().enumerate() {
                    @if i > 0 { ", " }
                    code { (res) }
                }
            }
        }
        @if let Some(diff) = &r.diff {
            h2 { "Change" }
            (review_text(diff))
        }
    }
}

/// The arguments key by key: text as it was written, anything else as JSON.
pub(crate) fn arguments_section(args: &Value) -> Markup {
    html! {
        h2 { "Arguments" }
        @match args.as_object() {
            Some(map) => table {
                @for (k, v) in map {
                    tr {
                        th { code { (k) } }
                        td {
                            @match v {
                                Value::String(s) => pre { (s) },
                                other => pre { (serde_json::to_string_pretty(other).unwrap_or_default()) },
                            }
                        }
                    }
                }
            },
            None => pre { (serde_json::to_string_pretty(args).unwrap_or_default()) },
        }
    }
}

/// The decision form, or why there is none.
pub(crate) fn decision_section(a: &Approval, who: &Principal, csrf: &str) -> Markup {
    let decided = a.reviews.iter().any(|r| r.sub == who.sub);
    html! {
        @match a.may_decide(who) {
            Ok(()) if a.state == ApprovalState::Pending && !decided => {
                h2 { "Your decision" }
                form method="post" action={ "/ui/approvals/" (url_part(&a.id)) "/decide" } {
                    input type="hidden" name="csrf" value=(csrf);
                    p { label { "Reason (required to deny)" br; textarea name="reason" rows="2" {} } }
                    button name="verdict" value="approve" { "Approve" }
                    button name="verdict" value="deny" { "Deny" }
                }
            }
            Ok(()) if a.state == ApprovalState::Pending => {
                p { "You have decided; waiting for other reviewers." }
            }
            Err(e) if a.state == ApprovalState::Pending => p { (e.to_string()) },
            _ => {}
        }
    }
}

/// One approval's page as `viewer` sees it.
pub(crate) fn approval_page(
    viewer: Viewer<'_>,
    a: &Approval,
    shown_args: &Value,
    masking: &Masking,
    done: Option<&str>,
) -> Markup {
    let ran = matches!(a.state, ApprovalState::Executed | ApprovalState::Failed);
    let body = html! {
        // Only fixed messages chosen by key: the parameter is never echoed.
        @if let Some(m) = done.and_then(done_message) { p.msg { (m) } }
        table {
            tr { th { "state" } td { (state_badge(a.state)) } }
            tr { th { "requester" } td { (a.requester.sub) " (" (a.requester.groups.join(", ")) ")" } }
            tr { th { "tool" } td { code { (a.tool) } } }
            tr { th { "connection" } td { code { (a.connection.as_deref().unwrap_or("-")) } } }
            tr { th { "created" } td { (rfc3339(a.created_at)) } }
            tr { th { "expires" } td { (rfc3339(a.expires_at)) } }
            @if ran {
                tr { th { "executed at" } td { (a.finished_at.map(rfc3339).unwrap_or_else(|| "-".into())) } }
                tr { th { "outcome" } td {
                    (a.state.as_str())
                    @if let Some(note) = &a.note { " (" (note) ")" }
                } }
                tr { th { "items" } td {
                    @match a.items {
                        Some(n) => { (n) " returned or changed" }
                        None => "-",
                    }
                } }
            }
            tr { th { "arguments hash" } td { code { (a.arguments_hash) } } }
        }
        (masking_note(masking))
        (review_section(&a.review))
        h2 { "Approval required" }
        ul {
            @for r in &a.required {
                li {
                    (r.count) " from " b { (r.group) } " (asked by "
                    @for (i, p) in r.policies.iter().enumerate() {
                        @if i > 0 { ", " }
                        code { (p) }
                    }
                    ")"
                }
            }
        }
        h2 { "Decisions" }
        ul {
            @for r in &a.reviews {
                li {
                    (r.sub) " " b { (r.verdict) } " (" (r.groups.join(", ")) ") at " (rfc3339(r.time)) ": "
                    (r.reason.as_deref().unwrap_or("(no reason)"))
                }
            }
        }
        (arguments_section(shown_args))
        p { (lifecycle(a)) }
        (decision_section(a, viewer.who, viewer.csrf))
        p { a href="/ui" { "All approvals" } }
    };
    layout(&format!("Approval {}", a.id), Some(viewer), body)
}

#[derive(Deserialize)]
pub(crate) struct PageQuery {
    done: Option<String>,
}

pub(crate) async fn page(
    State(state): State<AppState>,
    jar: CookieJar,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    let Some((who, token)) = session(&state, &jar).await else {
        return login_redirect(&format!("/ui/approvals/{id}"));
    };
    let Some(service) = approval::service(&state) else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no approval service").into_response();
    };
    let csrf = csrf_for(&token);
    let viewer = Viewer {
        who: &who,
        csrf: &csrf,
    };
    let all = approval::sees_all(&state, &who);
    let a = match service.get_for(&id, &who, all).await {
        Ok(a) => a,
        Err(e) => {
            return (
                approval::api::review_error(&e).status(),
                layout("Approval", Some(viewer), html! { p { (e.to_string()) } }),
            )
                .into_response();
        }
    };
    // Masked values: policy decides whether this reviewer sees them raw
    // (`unmask` on the approval's connection for every type found), and the
    // page says which it is.
    let (shown_args, masking) = reviewer_view(&state, &who, &a);
    approval_page(viewer, &a, &shown_args, &masking, q.done.as_deref()).into_response()
}

#[derive(Deserialize)]
pub(crate) struct DecideForm {
    csrf: Option<String>,
    verdict: String,
    reason: Option<String>,
}

pub(crate) async fn decide(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<DecideForm>,
) -> Response {
    let Some((who, token)) = session(&state, &jar).await else {
        return login_redirect(&format!("/ui/approvals/{id}"));
    };
    if !f.csrf.as_deref().is_some_and(|c| csrf_ok(&token, c)) || !same_origin(&state, &headers) {
        return (
            StatusCode::FORBIDDEN,
            "bad CSRF token: reload the page and try again",
        )
            .into_response();
    }
    let Some(service) = approval::service(&state) else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no approval service").into_response();
    };
    let result = match f.verdict.as_str() {
        "approve" => service.approve(&id, &who, f.reason).await,
        "deny" => service.deny(&id, &who, f.reason).await,
        _ => return (StatusCode::BAD_REQUEST, "verdict must be approve or deny").into_response(),
    };
    let key = match result {
        Ok(a) if a.state == ApprovalState::Approved => "approved",
        Ok(a) if a.state == ApprovalState::Denied => "denied",
        Ok(_) => "recorded",
        // A refusal is shown here, never carried in the URL.
        Err(e) => {
            let csrf = csrf_for(&token);
            let body = html! {
                p.msg { (e.to_string()) }
                p { a href={ "/ui/approvals/" (url_part(&id)) } { "Back to the approval" } }
            };
            return (
                approval::api::review_error(&e).status(),
                layout(
                    "Approval",
                    Some(Viewer {
                        who: &who,
                        csrf: &csrf,
                    }),
                    body,
                ),
            )
                .into_response();
        }
    };
    Redirect::to(&format!("/ui/approvals/{}?done={key}", url_part(&id))).into_response()
}
