//! The auditors' pages: `/ui/audit` (search with the `/api/audit` filters,
//! free text over tool and arguments, a time range; keyset pagination on
//! the event sequence), `/ui/audit/export.jsonl` (the whole search as
//! JSONL), `/ui/audit/{id}` (every field of one event, its approval, the
//! policies that decided it, its place in the hash chain, the SSH
//! recording's player) and `/ui/audit/{id}/recording` (the asciicast the
//! player fetches, checked against the event first).
//!
//! Only principals permitted `audit:read` get anything but a 403, and every
//! read, refused or not, is first recorded in the chain as an `audit_read`
//! event like the REST reads (`path` names the console page); when that
//! record cannot be written the read fails closed (503).

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use chrono::{DateTime, NaiveDateTime, Utc};
use gateway_core::Principal;
use gateway_core::audit::chain::recording_problem;
use gateway_core::audit::{AuditEvent, AuditFilter, GENESIS_HASH, ListOrder};
use maud::{Markup, html};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::layout::{Section, Viewer, badge, layout, page};
use super::session::{csrf_for, login_redirect, session};
use super::url_part;
use crate::state::AppState;

/// Events per page.
pub(crate) const PAGE: u32 = 50;
/// Events read per store query while exporting.
const EXPORT_BATCH: u32 = 1000;

/// The search form (every field optional). `before`: show events with a
/// smaller seq (the next page, newest first).
#[derive(Deserialize, Serialize, Default, Debug, Clone)]
pub(crate) struct SearchQuery {
    #[serde(default, skip_serializing_if = "is_blank")]
    pub(crate) q: Option<String>,
    #[serde(default, skip_serializing_if = "is_blank")]
    pub(crate) principal: Option<String>,
    #[serde(default, skip_serializing_if = "is_blank")]
    pub(crate) tool: Option<String>,
    #[serde(default, skip_serializing_if = "is_blank")]
    pub(crate) connection: Option<String>,
    #[serde(default, skip_serializing_if = "is_blank")]
    pub(crate) decision: Option<String>,
    #[serde(default, skip_serializing_if = "is_blank")]
    pub(crate) since: Option<String>,
    #[serde(default, skip_serializing_if = "is_blank")]
    pub(crate) until: Option<String>,
    #[serde(default, skip_serializing_if = "is_blank")]
    pub(crate) intents: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) before: Option<u64>,
}

fn is_blank(s: &Option<String>) -> bool {
    s.as_deref().is_none_or(|s| s.trim().is_empty())
}

fn nonblank(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
}

/// A time from the form: RFC 3339, or `YYYY-MM-DDTHH:MM[:SS]` (what a
/// `datetime-local` field sends) read as UTC.
pub(crate) fn parse_when(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Ok(t.and_utc());
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    }
    Err(format!(
        "“{s}” is not a time: use 2026-11-25T10:00:00Z or 2026-11-25T10:00 (UTC)"
    ))
}

impl SearchQuery {
    /// The store filter of this search (without paging), or what is wrong
    /// with it.
    pub(crate) fn filter(&self) -> Result<AuditFilter, String> {
        let when = |s: &Option<String>| nonblank(s).map(|s| parse_when(&s)).transpose();
        Ok(AuditFilter {
            principal: nonblank(&self.principal),
            tool: nonblank(&self.tool),
            connection: nonblank(&self.connection),
            decision: nonblank(&self.decision),
            since: when(&self.since)?,
            until: when(&self.until)?,
            text: nonblank(&self.q),
            intents: self.intents.as_deref() == Some("on"),
            ..Default::default()
        })
    }

    /// This search as a query string (`?` included), `before` replaced.
    fn query_string(&self, before: Option<u64>) -> String {
        let mut parts: Vec<String> = [
            ("q", &self.q),
            ("principal", &self.principal),
            ("tool", &self.tool),
            ("connection", &self.connection),
            ("decision", &self.decision),
            ("since", &self.since),
            ("until", &self.until),
            ("intents", &self.intents),
        ]
        .into_iter()
        .filter_map(|(k, v)| nonblank(v).map(|v| format!("{k}={}", url_part(&v))))
        .collect();
        if let Some(b) = before {
            parts.push(format!("before={b}"));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("?{}", parts.join("&"))
        }
    }

    /// What the search asked, as recorded in the `audit_read` event.
    fn recorded(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// Record the read, then allow it only with `audit:read`. `Err` is the
/// response to send (403 page, or 503 when the read cannot be recorded).
async fn may_read(
    state: &AppState,
    who: &Principal,
    viewer: Viewer<'_>,
    what: Value,
) -> Result<(), Response> {
    let recorded = state.record_audit_read(who, what).await;
    let allowed = match recorded {
        Ok(allowed) => allowed,
        Err(e) => {
            tracing::error!(error = %e, "console audit read NOT recorded; refusing it");
            return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            layout(
                "Audit",
                Some(viewer),
                html! { p.msg.bad { "The audit log cannot record this read, so it is refused. Try again later." } },
            ),
        )
            .into_response());
        }
    };
    if allowed {
        Ok(())
    } else {
        Err((
            StatusCode::FORBIDDEN,
            layout(
                "Audit",
                Some(viewer),
                html! {
                    p.msg.bad { "No policy permits you " code { "audit:read" } ", so the audit log is not shown to you." }
                    p { a href="/ui/approvals" { "Back to approvals" } }
                },
            ),
        )
            .into_response())
    }
}

/// `GET /ui/audit`: the search page.
pub(crate) async fn search(
    State(state): State<AppState>,
    jar: CookieJar,
    query: Result<Query<SearchQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Some((who, token)) = session(&state, &jar).await else {
        return login_redirect("/ui/audit");
    };
    let csrf = csrf_for(&token);
    let viewer = Viewer {
        who: &who,
        csrf: &csrf,
    };
    let (q, bad_query) = match query {
        Ok(Query(q)) => (q, None),
        Err(e) => (SearchQuery::default(), Some(e.body_text())),
    };
    let asked = json!({"path": "/ui/audit", "filter": q.recorded()});
    if let Err(r) = may_read(&state, &who, viewer, asked).await {
        return r;
    }
    let mut problem = bad_query;
    let mut events = vec![];
    let mut more = false;
    match q.filter() {
        Err(e) => problem = Some(e),
        Ok(mut f) => {
            f.before_seq = q.before;
            f.limit = Some(PAGE + 1);
            f.order = ListOrder::NewestFirst;
            match state.gateway.audit().list(&f).await {
                Ok(mut list) => {
                    more = list.len() > PAGE as usize;
                    list.truncate(PAGE as usize);
                    events = list;
                }
                Err(e) => problem = Some(e.to_string()),
            }
        }
    }
    search_page(viewer, &q, &events, more, problem.as_deref()).into_response()
}

/// `2026-01-02T03:04:05.123456Z` as `2026-01-02 03:04:05` (the full time
/// is the cell's title and on the event's page).
fn short_time(t: &str) -> String {
    t.get(..19)
        .map_or_else(|| t.to_string(), |s| s.replacen('T', " ", 1))
}

/// A short line of what an event did, from its arguments.
fn gist(e: &AuditEvent) -> String {
    let args = &e.record.arguments;
    let text = ["sql", "command", "manifest", "path", "event", "name"]
        .iter()
        .find_map(|k| args.get(*k).and_then(Value::as_str).map(String::from))
        .unwrap_or_else(|| {
            let s = serde_json::to_string(args).unwrap_or_default();
            if s == "null" || s == "{}" {
                String::new()
            } else {
                s
            }
        });
    let mut out: String = text.chars().take(140).collect();
    if text.chars().count() > 140 {
        out.push('…');
    }
    out
}

pub(crate) fn search_page(
    viewer: Viewer<'_>,
    q: &SearchQuery,
    events: &[AuditEvent],
    more: bool,
    problem: Option<&str>,
) -> Markup {
    let v = |s: &Option<String>| s.clone().unwrap_or_default();
    let body = html! {
        form.filters method="get" action="/ui/audit" role="search" {
            label { "Text (tool, arguments)" input type="search" name="q" value=(v(&q.q)) placeholder="orders"; }
            label { "Principal" input type="text" name="principal" value=(v(&q.principal)); }
            label { "Tool" input type="text" name="tool" value=(v(&q.tool)); }
            label { "Connection" input type="text" name="connection" value=(v(&q.connection)); }
            label { "Decision"
                select name="decision" {
                    @for d in ["", "allow", "deny", "pending", "error"] {
                        option value=(d) selected[q.decision.as_deref().unwrap_or("") == d] {
                            @if d.is_empty() { "any" } @else { (d) }
                        }
                    }
                }
            }
            label { "Since (UTC)" input type="text" name="since" value=(v(&q.since)) placeholder="2026-11-25T10:00"; }
            label { "Until (UTC)" input type="text" name="until" value=(v(&q.until)) placeholder="2026-11-26"; }
            label.check { input type="checkbox" name="intents" value="on" checked[q.intents.as_deref() == Some("on")]; "Include intents" }
            button { "Search" }
            a.button href={ "/ui/audit/export.jsonl" (q.query_string(None)) } download { "Export JSONL" }
        }
        @if let Some(p) = problem { p.msg.bad { (p) } }
        table.list #events {
            thead { tr { th { "Seq" } th { "Time (UTC)" } th { "Principal" } th { "Tool" } th { "Connection" } th { "Decision" } th { "Outcome" } th { "What" } } }
            tbody {
                @for e in events {
                    tr.row {
                        td data-label="Seq" { a href={ "/ui/audit/" (url_part(&e.id)) } { (e.seq) } }
                        td.nowrap data-label="Time" { span title=(e.time) { (short_time(&e.time)) } }
                        td data-label="Principal" { (e.record.principal.sub) }
                        td data-label="Tool" { code { (e.record.tool) } }
                        td data-label="Connection" { (e.record.connection.as_deref().unwrap_or("-")) }
                        td data-label="Decision" { (badge(&e.record.decision)) }
                        td data-label="Outcome" { (e.record.outcome.status) }
                        td data-label="What" { code.small { (gist(e)) } }
                    }
                }
                @if events.is_empty() && problem.is_none() {
                    tr { td colspan="8" { "No events match." } }
                }
            }
        }
        nav.pager aria-label="Pages" {
            @if q.before.is_some() {
                a href={ "/ui/audit" (q.query_string(None)) } { "« Newest" }
            }
            @if more {
                @if let Some(last) = events.last() {
                    a href={ "/ui/audit" (q.query_string(Some(last.seq))) } rel="next" { "Older »" }
                }
            }
            span.muted.small { (events.len()) " events on this page" }
        }
    };
    page("Audit log", Section::Audit, Some(viewer), &[], body)
}

/// `GET /ui/audit/export.jsonl`: every event of the search (not only one
/// page), oldest first, one JSON object per line, streamed in batches.
pub(crate) async fn export(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(q): Query<SearchQuery>,
) -> Response {
    let Some((who, token)) = session(&state, &jar).await else {
        return login_redirect("/ui/audit");
    };
    let csrf = csrf_for(&token);
    let viewer = Viewer {
        who: &who,
        csrf: &csrf,
    };
    let asked = json!({"path": "/ui/audit/export.jsonl", "filter": q.recorded()});
    if let Err(r) = may_read(&state, &who, viewer, asked).await {
        return r;
    }
    let mut filter = match q.filter() {
        Ok(f) => f,
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    filter.order = ListOrder::OldestFirst;
    filter.limit = Some(EXPORT_BATCH);
    filter.before_seq = q.before;
    let audit = state.gateway.audit().clone();
    let stream = futures::stream::unfold(Some(filter), move |f| {
        let audit = audit.clone();
        async move {
            let mut f = f?;
            match audit.list(&f).await {
                Ok(events) => {
                    let last = events.last().map(|e| e.seq)?;
                    let full = events.len() as u32 == EXPORT_BATCH;
                    let mut chunk = String::new();
                    for e in &events {
                        chunk.push_str(&serde_json::to_string(e).unwrap_or_default());
                        chunk.push('\n');
                    }
                    f.after_seq = Some(last);
                    Some((Ok::<_, std::io::Error>(chunk), full.then_some(f)))
                }
                Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
            }
        }
    });
    (
        [
            (header::CONTENT_TYPE, "application/x-ndjson; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"tollgate-audit.jsonl\"",
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

/// Where one event stands in the hash chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ChainStatus {
    /// Its hash matches its content, and it links to its neighbours.
    Verified {
        /// Seq of the next event, when there is one.
        next: Option<u64>,
    },
    /// It breaks here: what is wrong.
    Broken(Vec<String>),
}

/// Check `e` against its content and neighbours (`prev` = seq - 1,
/// `next` = seq + 1 as stored, if any).
pub(crate) fn chain_status(
    e: &AuditEvent,
    prev: Option<&AuditEvent>,
    next: Option<&AuditEvent>,
    recording: Option<String>,
) -> ChainStatus {
    let mut problems = vec![];
    let computed = e.compute_hash();
    if computed != e.hash {
        problems.push(format!(
            "its content does not match its hash (stored {}, computed {computed}): the event was modified",
            e.hash
        ));
    }
    match (e.seq, prev) {
        (1, _) if e.prev_hash != GENESIS_HASH => {
            problems.push("it is the first event but its prev_hash is not the genesis hash".into())
        }
        (1, _) => {}
        (_, None) => problems.push(format!(
            "seq {} (the event before it) is missing: events were deleted",
            e.seq - 1
        )),
        (_, Some(p)) if p.seq != e.seq - 1 => problems.push(format!(
            "the event before it is seq {}, not {}: events were deleted",
            p.seq,
            e.seq - 1
        )),
        (_, Some(p)) if p.hash != e.prev_hash => problems.push(format!(
            "its prev_hash is not the hash of seq {}: an earlier event was replaced",
            p.seq
        )),
        _ => {}
    }
    if let Some(n) = next {
        if n.seq != e.seq + 1 {
            problems.push(format!(
                "the event after it is seq {}, not {}: events were deleted",
                n.seq,
                e.seq + 1
            ));
        } else if n.prev_hash != e.hash {
            problems.push(format!(
                "seq {} does not chain to it (its prev_hash differs): this event or the next was replaced",
                n.seq
            ));
        }
    }
    if let Some(r) = recording {
        problems.push(format!("its recording {r}"));
    }
    if problems.is_empty() {
        ChainStatus::Verified {
            next: next.map(|n| n.seq),
        }
    } else {
        ChainStatus::Broken(problems)
    }
}

/// `GET /ui/audit/{id}`: one event.
pub(crate) async fn event(
    State(state): State<AppState>,
    jar: CookieJar,
    Path(id): Path<String>,
) -> Response {
    let Some((who, token)) = session(&state, &jar).await else {
        return login_redirect(&format!("/ui/audit/{id}"));
    };
    let csrf = csrf_for(&token);
    let viewer = Viewer {
        who: &who,
        csrf: &csrf,
    };
    let asked = json!({"path": "/ui/audit/{id}", "id": id});
    if let Err(r) = may_read(&state, &who, viewer, asked).await {
        return r;
    }
    let audit = state.gateway.audit();
    let e = match audit.get(&id).await {
        Ok(Some(e)) => e,
        Ok(None) => {
            return (
                StatusCode::NOT_FOUND,
                layout(
                    "Audit event",
                    Some(viewer),
                    html! { p.msg { "No audit event " code { (id) } "." } },
                ),
            )
                .into_response();
        }
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    };
    // Neighbours: seq - 1 and seq + 1, intents included (they are in the chain).
    let around = audit
        .list(&AuditFilter {
            after_seq: Some(e.seq.saturating_sub(2)),
            order: ListOrder::OldestFirst,
            limit: Some(3),
            intents: true,
            ..Default::default()
        })
        .await
        .unwrap_or_default();
    let prev = around.iter().rfind(|x| x.seq < e.seq);
    let next = around.iter().find(|x| x.seq > e.seq);
    let recording = match &e.record.recording {
        Some(r) => match audit.recording(&r.sha256).await {
            Ok(body) => recording_problem(r, body.as_deref()),
            Err(err) => Some(format!("cannot be read: {err}")),
        },
        None => None,
    };
    let status = chain_status(&e, prev, next, recording.clone());
    event_page(viewer, &e, &status, recording.is_none()).into_response()
}

fn json_pre(v: &Value) -> Markup {
    html! { pre { (serde_json::to_string_pretty(v).unwrap_or_default()) } }
}

pub(crate) fn event_page(
    viewer: Viewer<'_>,
    e: &AuditEvent,
    status: &ChainStatus,
    recording_ok: bool,
) -> Markup {
    let r = &e.record;
    let body = html! {
        section aria-label="Chain status" {
            @match status {
                ChainStatus::Verified { next } => p.msg #chain-status data-status="verified" {
                    (badge("verified")) " Its hash matches its content and it chains to seq "
                    (e.seq.saturating_sub(1))
                    @if let Some(n) = next { ", and seq " (n) " chains to it" } @else { " (it is the newest event)" }
                    ". " span.muted { "The whole chain: " code { "tollgate audit verify" } "." }
                },
                ChainStatus::Broken(problems) => div.msg.bad #chain-status data-status="broken" {
                    (badge("broken")) " The chain breaks at this event (seq " (e.seq) "):"
                    ul { @for p in problems { li { (p) } } }
                },
            }
        }
        table.facts {
            tr { th { "Id" } td { code { (e.id) } } }
            tr { th { "Seq" } td { (e.seq) } }
            tr { th { "Time" } td { (e.time) } }
            tr { th { "Principal" } td { (r.principal.sub) @if !r.principal.groups.is_empty() { span.muted { " (" (r.principal.groups.join(", ")) ")" } } } }
            tr { th { "Tool" } td { code { (r.tool) } } }
            tr { th { "Connection" } td { (r.connection.as_deref().unwrap_or("-")) } }
            tr { th { "Decision" } td { (badge(&r.decision)) } }
            tr { th { "Outcome" } td {
                (r.outcome.status) " · " (r.outcome.duration_ms) " ms"
                @if let Some(n) = r.outcome.rows { " · " (n) " rows" }
                @if let Some(err) = &r.outcome.error { pre { (err) } }
            } }
            tr { th { "Masked values" } td {
                @if r.masked.is_empty() { "none" }
                @for (i, (t, n)) in r.masked.iter().enumerate() {
                    @if i > 0 { ", " }
                    (n) " × " code { (t) }
                }
            } }
            tr { th { "Approval" } td {
                @match &r.approval {
                    Some(a) => {
                        a href={ "/ui/approvals/" (url_part(&a.id)) } { (a.id) } " " (badge(&a.state))
                        @if !a.approvers.is_empty() { " approved by " (a.approvers.join(", ")) }
                    }
                    None => "none",
                }
            } }
            @if let Some(i) = &r.intent {
                tr { th { "Intent" } td { a href={ "/ui/audit/" (url_part(i)) } { (i) } } }
            }
            tr { th { "Previous hash" } td { code.small { (e.prev_hash) } } }
            tr { th { "Hash" } td { code.small { (e.hash) } } }
        }
        h2 { "Policies that decided it" }
        @if r.requests.is_empty() { p.muted { "No policy request (not a tool call)." } }
        @else {
            table.list {
                thead { tr { th { "Action" } th { "Resource" } th { "Decision" } th { "Policies" } } }
                tbody {
                    @for q in &r.requests {
                        tr {
                            td data-label="Action" { code { (q.action) } }
                            td data-label="Resource" { code { (q.resource) } }
                            td data-label="Decision" { (badge(&q.decision)) }
                            td data-label="Policies" {
                                @if q.policies.is_empty() { span.muted { "none (default deny)" } }
                                @for (i, p) in q.policies.iter().enumerate() {
                                    @if i > 0 { ", " }
                                    code { (p) }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Arguments (as recorded, masked)" }
        (json_pre(&r.arguments))
        h2 { "Result preview (masked)" }
        (json_pre(&r.result_preview))
        @if let Some(rec) = &r.recording {
            h2 { "Terminal recording" }
            @if recording_ok {
                div.player #player data-src={ "/ui/audit/" (url_part(&e.id)) "/recording" } data-state="loading" {
                    div.controls {
                        button type="button" data-play disabled { "Play" }
                        label.sr for="seek" { "Position" }
                        input #seek type="range" min="0" max="0" value="0" step="10";
                        label { span.sr { "Speed" }
                            select aria-label="Speed" {
                                option value="1" selected { "1×" }
                                option value="2" { "2×" }
                                option value="4" { "4×" }
                            }
                        }
                        span.clock.small.muted { "" }
                    }
                    pre.term aria-live="off" { "Loading…" }
                }
                p.small.muted { "asciicast v2, " (rec.bytes) " bytes, sha256 " code { (rec.sha256) } " (checked against the event before it is served)." }
            } @else {
                p.msg.bad { "The recording cannot be replayed: it does not match the event (see the chain status above)." }
            }
        }
        p { a href="/ui/audit" { "« Audit log" } }
    };
    let scripts: &[&str] = if r.recording.is_some() && recording_ok {
        &["player.js"]
    } else {
        &[]
    };
    page(
        &format!("Audit event {}", e.seq),
        Section::Audit,
        Some(viewer),
        scripts,
        body,
    )
}

/// `GET /ui/audit/{id}/recording`: the asciicast for the player, served
/// only if it matches the sha256 and size the event records.
pub(crate) async fn recording(
    State(state): State<AppState>,
    jar: CookieJar,
    Path(id): Path<String>,
) -> Response {
    let Some((who, token)) = session(&state, &jar).await else {
        return (StatusCode::UNAUTHORIZED, "log in first").into_response();
    };
    let csrf = csrf_for(&token);
    let viewer = Viewer {
        who: &who,
        csrf: &csrf,
    };
    let asked = json!({"path": "/ui/audit/{id}/recording", "id": id});
    if let Err(r) = may_read(&state, &who, viewer, asked).await {
        return r;
    }
    let audit = state.gateway.audit();
    let Ok(Some(e)) = audit.get(&id).await else {
        return (StatusCode::NOT_FOUND, "no such event").into_response();
    };
    let Some(reference) = &e.record.recording else {
        return (StatusCode::NOT_FOUND, "this event has no recording").into_response();
    };
    let body = audit.recording(&reference.sha256).await.ok().flatten();
    match (recording_problem(reference, body.as_deref()), body) {
        (None, Some(body)) => {
            ([(header::CONTENT_TYPE, crate::api::ASCIICAST)], body).into_response()
        }
        (problem, _) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "the recording {}",
                problem.unwrap_or_else(|| "is missing from the store".into())
            ),
        )
            .into_response(),
    }
}
