//! The review pages: `/ui` and `/ui/approvals` (tabs: waiting for me, all I
//! may see, decided; filters by tool, connection, requester; refreshed live
//! from `/ui/approvals/events`), `/ui/approvals/{id}` (the family's review of
//! exactly what will run, approvals so far, expiry countdown, approve/deny
//! with a reason, or why this viewer may not).
//!
//! Pages know no tool family: they show the approval's [`ReviewSummary`]
//! (title, what runs, resources, diff) and the arguments key by key. The
//! page shows only fixed messages chosen by key (`?done=`), never query
//! text. Pages never show raw arguments (unless policy permits the reviewer
//! `unmask`) or the token.

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use gateway_core::Principal;
use gateway_core::approval::record::fmt as rfc3339;
use gateway_core::approval::{Approval, ApprovalState};
use gateway_core::review::{ReviewSummary, ReviewText};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::broadcast;

use super::layout::{Section, Viewer, badge, layout, state_badge};
use super::session::{csrf_for, csrf_ok, login_redirect, same_origin, session};
use super::url_part;
use crate::approvals as approval;
use crate::state::AppState;

/// Which approvals a list shows.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Tab {
    /// Pending approvals this viewer may decide and has not decided yet.
    Mine,
    /// Every approval this viewer may see.
    All,
    /// Decided (no longer pending) approvals this viewer may see.
    Decided,
}

impl Tab {
    fn parse(s: Option<&str>) -> Tab {
        match s {
            Some("all") => Tab::All,
            Some("decided") => Tab::Decided,
            _ => Tab::Mine,
        }
    }

    fn key(self) -> &'static str {
        match self {
            Tab::Mine => "pending",
            Tab::All => "all",
            Tab::Decided => "decided",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Tab::Mine => "Waiting for me",
            Tab::All => "All I may see",
            Tab::Decided => "Decided",
        }
    }
}

/// The list's query: tab and filters (substring, case-insensitive).
#[derive(Deserialize, Default, Debug)]
pub(crate) struct ListQuery {
    pub(crate) view: Option<String>,
    pub(crate) tool: Option<String>,
    pub(crate) connection: Option<String>,
    pub(crate) requester: Option<String>,
}

impl ListQuery {
    fn filter(s: &Option<String>) -> Option<String> {
        s.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_lowercase)
    }

    /// The query string of this list with `view` replaced.
    fn with_view(&self, tab: Tab) -> String {
        let mut q = format!("?view={}", tab.key());
        for (k, v) in [
            ("tool", &self.tool),
            ("connection", &self.connection),
            ("requester", &self.requester),
        ] {
            if let Some(v) = Self::filter(v) {
                q.push_str(&format!("&{k}={}", url_part(&v)));
            }
        }
        q
    }
}

/// May `who` see `a` at all: its requester, a member of a required group,
/// or an auditor (the rule of `ApprovalService::get_for`).
fn visible(a: &Approval, who: &Principal, all: bool) -> bool {
    all || a.requester.sub == who.sub || a.required.iter().any(|r| who.groups.contains(&r.group))
}

/// Waiting for `who`: pending, theirs to decide, not decided by them yet.
fn waiting_for(a: &Approval, who: &Principal) -> bool {
    a.state == ApprovalState::Pending
        && a.may_decide(who).is_ok()
        && !a.reviews.iter().any(|r| r.sub == who.sub)
}

/// The approvals of `tab` matching the filters, newest first.
pub(crate) fn select<'a>(
    list: &'a [Approval],
    who: &Principal,
    all: bool,
    tab: Tab,
    q: &ListQuery,
) -> Vec<&'a Approval> {
    let (tool, conn, req) = (
        ListQuery::filter(&q.tool),
        ListQuery::filter(&q.connection),
        ListQuery::filter(&q.requester),
    );
    let has = |hay: &str, needle: &Option<String>| {
        needle
            .as_deref()
            .is_none_or(|n| hay.to_lowercase().contains(n))
    };
    list.iter()
        .filter(|a| visible(a, who, all))
        .filter(|a| match tab {
            Tab::Mine => waiting_for(a, who),
            Tab::All => true,
            Tab::Decided => a.state != ApprovalState::Pending,
        })
        .filter(|a| {
            has(&a.tool, &tool)
                && has(a.connection.as_deref().unwrap_or(""), &conn)
                && has(&a.requester.sub, &req)
        })
        .collect()
}

/// How many approvals an approval has of how many it needs (the
/// requester's own never counts).
fn approvals_so_far(a: &Approval) -> (usize, u32) {
    let needed: u32 = a.required.iter().map(|r| r.count).sum();
    let got = a
        .reviews
        .iter()
        .filter(|r| r.verdict == "approve" && r.sub != a.requester.sub)
        .count();
    (got, needed)
}

/// A time as `<time>`: the RFC 3339 text, and a live countdown for open
/// approvals (the script rewrites the text; without it the time stays).
fn expiry(a: &Approval) -> Markup {
    let at = rfc3339(a.expires_at);
    html! {
        @if a.state == ApprovalState::Pending {
            time datetime=(at) data-countdown title=(at) { (at) }
        } @else {
            span.muted { "-" }
        }
    }
}

pub(crate) async fn index(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(q): Query<ListQuery>,
) -> Response {
    let Some((who, token)) = session(&state, &jar).await else {
        return login_redirect("/ui/approvals");
    };
    let Some(service) = approval::service(&state) else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no approval service").into_response();
    };
    let all = approval::sees_all(&state, &who);
    // Every approval of the store's newest 500, then what this viewer may see.
    let list = match service.list_for(&who, None, true, 500).await {
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
        &q,
    )
    .into_response()
}

/// The approvals list: tabs, filters, and a table the script refreshes
/// when the event stream says something changed.
pub(crate) fn list_page(viewer: Viewer<'_>, list: &[Approval], all: bool, q: &ListQuery) -> Markup {
    let tab = Tab::parse(q.view.as_deref());
    let shown = select(list, viewer.who, all, tab, q);
    let waiting = select(list, viewer.who, all, Tab::Mine, &ListQuery::default()).len();
    let body = html! {
        nav.tabs aria-label="Approval lists" {
            @for t in [Tab::Mine, Tab::All, Tab::Decided] {
                a href={ "/ui/approvals" (q.with_view(t)) }
                  aria-current=[(t == tab).then_some("page")] {
                    (t.label())
                    @if t == Tab::Mine { " (" (waiting) ")" }
                }
            }
        }
        form.filters method="get" action="/ui/approvals" role="search" {
            input type="hidden" name="view" value=(tab.key());
            label { "Tool" input type="text" name="tool" value=[q.tool.as_deref()] placeholder="sql_query"; }
            label { "Connection" input type="text" name="connection" value=[q.connection.as_deref()]; }
            label { "Requester" input type="text" name="requester" value=[q.requester.as_deref()]; }
            button { "Filter" }
            span.live #live-status role="status" aria-live="polite" {}
        }
        div #approvals data-events="/ui/approvals/events" {
            table.list {
                thead { tr { th { "Call" } th { "State" } th { "Requester" } th { "Connection" } th { "Approvals" } th { "Created" } th { "Expires" } } }
                tbody {
                    @for a in &shown {
                        @let (got, needed) = approvals_so_far(a);
                        tr.row {
                            td data-label="Call" {
                                a href={ "/ui/approvals/" (url_part(&a.id)) } { (a.review.title) }
                                div.small.muted { code { (a.tool) } " · " (a.id) }
                            }
                            td data-label="State" { (state_badge(a.state)) }
                            td data-label="Requester" { (a.requester.sub) }
                            td data-label="Connection" { (a.connection.as_deref().unwrap_or("-")) }
                            td data-label="Approvals" { (got) " of " (needed) }
                            td data-label="Created" { (rfc3339(a.created_at)) }
                            td data-label="Expires" { (expiry(a)) }
                        }
                    }
                    @if shown.is_empty() {
                        tr { td colspan="7" {
                            @match tab {
                                Tab::Mine => "Nothing is waiting for you.",
                                _ => "No approvals match.",
                            }
                        } }
                    }
                }
            }
        }
    };
    super::layout::page(
        "Approvals",
        Section::Approvals,
        Some(viewer),
        &["live.js"],
        body,
    )
}

/// `GET /ui/approvals/events`: server-sent events, one `changed` event
/// (no content) whenever an approval is created or changes state, and a
/// comment every 15 s to keep the connection open. The page then reloads
/// its list, filtered for its viewer: the stream itself says nothing about
/// any approval.
pub(crate) async fn events(State(state): State<AppState>, jar: CookieJar) -> Response {
    if session(&state, &jar).await.is_none() {
        return (StatusCode::UNAUTHORIZED, "log in first").into_response();
    }
    let Some(service) = approval::service(&state) else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no approval service").into_response();
    };
    let rx = service.subscribe();
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        match rx.recv().await {
            // Lagged: changes were missed; one reload covers them all.
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                // Browsers drop an event with empty data: carry a constant.
                let ev = Event::default().event("changed").data("changed");
                Some((Ok::<_, std::convert::Infallible>(ev), rx))
            }
            Err(broadcast::error::RecvError::Closed) => None,
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(15)))
        .into_response()
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
                form.decide method="post" action={ "/ui/approvals/" (url_part(&a.id)) "/decide" } {
                    input type="hidden" name="csrf" value=(csrf);
                    label for="reason" { "Reason (required to deny)" }
                    textarea #reason name="reason" rows="3" {}
                    div.buttons {
                        button.primary name="verdict" value="approve" { "Approve" }
                        button.danger name="verdict" value="deny" { "Deny" }
                    }
                }
            }
            Ok(()) if a.state == ApprovalState::Pending => {
                p.msg { "You have decided; waiting for other reviewers." }
            }
            Err(e) if a.state == ApprovalState::Pending => p.msg.warn #why-not { (e.to_string()) },
            _ => {}
        }
    }
}

/// One approval's page as `viewer` sees it: the review in the main column,
/// the facts, progress and decision at the side.
pub(crate) fn approval_page(
    viewer: Viewer<'_>,
    a: &Approval,
    shown_args: &Value,
    masking: &Masking,
    done: Option<&str>,
) -> Markup {
    let ran = matches!(a.state, ApprovalState::Executed | ApprovalState::Failed);
    let (got, needed) = approvals_so_far(a);
    let pct = if needed == 0 {
        100
    } else {
        (got.min(needed as usize) * 100) / needed as usize
    };
    let body = html! {
        // Only fixed messages chosen by key: the parameter is never echoed.
        @if let Some(m) = done.and_then(done_message) { p.msg role="status" { (m) } }
        div.layout {
            div {
                p.summary { (state_badge(a.state)) " " b { (a.requester.sub) } " asked to run " code { (a.tool) }
                    " on " code { (a.connection.as_deref().unwrap_or("-")) } " at " (rfc3339(a.created_at)) "." }
                (masking_note(masking))
                (review_section(&a.review))
                (arguments_section(shown_args))
                h2 { "Decisions" }
                @if a.reviews.is_empty() { p.muted { "No decision yet." } }
                ul.plain {
                    @for r in &a.reviews {
                        li {
                            (badge(&r.verdict)) " " b { (r.sub) } span.muted { " (" (r.groups.join(", ")) ") at " (rfc3339(r.time)) } ": "
                            (r.reason.as_deref().unwrap_or("(no reason)"))
                        }
                    }
                }
                p.muted { (lifecycle(a)) }
            }
            aside.side aria-label="Approval" {
                (decision_section(a, viewer.who, viewer.csrf))
                h2 { "Approvals" }
                p { b { (got) " of " (needed) } " approvals" }
                progress value=(got.min(needed as usize)) max=(needed.max(1)) aria-label="Approvals so far" { (pct) "%" }
                ul.plain.small {
                    @for r in &a.required {
                        li {
                            (r.count) " from " b { (r.group) } br;
                            span.muted { "asked by " }
                            @for (i, p) in r.policies.iter().enumerate() {
                                @if i > 0 { ", " }
                                code { (p) }
                            }
                        }
                    }
                }
                h2 { "Facts" }
                table.facts.small {
                    tr { th { "State" } td { (state_badge(a.state)) } }
                    tr { th { "Requester" } td { (a.requester.sub) " " span.muted { "(" (a.requester.groups.join(", ")) ")" } } }
                    tr { th { "Tool" } td { code { (a.tool) } } }
                    tr { th { "Connection" } td { code { (a.connection.as_deref().unwrap_or("-")) } } }
                    tr { th { "Created" } td { (rfc3339(a.created_at)) } }
                    tr { th { "Expires" } td { (rfc3339(a.expires_at)) @if a.state == ApprovalState::Pending { br; (expiry(a)) } } }
                    @if ran {
                        tr { th { "Executed at" } td { (a.finished_at.map(rfc3339).unwrap_or_else(|| "-".into())) } }
                        tr { th { "Outcome" } td {
                            (a.state.as_str())
                            @if let Some(note) = &a.note { " (" (note) ")" }
                        } }
                        tr { th { "Items" } td {
                            @match a.items {
                                Some(n) => { (n) " returned or changed" }
                                None => "-",
                            }
                        } }
                    }
                    tr { th { "Id" } td { code { (a.id) } } }
                    tr { th { "Arguments hash" } td { code { (a.arguments_hash) } } }
                }
            }
        }
        p { a href="/ui/approvals" { "« All approvals" } }
    };
    super::layout::page(
        &format!("Approval: {}", a.review.title),
        Section::Approvals,
        Some(viewer),
        &["live.js"],
        body,
    )
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
        return login_redirect(&format!("/ui/approvals/{}", url_part(&id)));
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
        return login_redirect(&format!("/ui/approvals/{}", url_part(&id)));
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
