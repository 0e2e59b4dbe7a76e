//! The server-rendered review UI: `/ui` and `/ui/approvals` (approvals you
//! may decide), `/ui/approvals/{id}` (the family's review of exactly what
//! will run, with approve/deny forms), `/ui/login` (paste a token).
//!
//! Every page is a maud template: each value is HTML-escaped where it is
//! written, and writing one unescaped would take a `PreEscaped` in this
//! file (used only for the constant stylesheet). Pages know no tool family:
//! they show the approval's [`ReviewSummary`] (title, what runs, resources,
//! diff) and the arguments key by key.
//!
//! Security: the token lives in an `HttpOnly; SameSite=Strict` cookie scoped
//! to `/ui` (and `Secure` behind https), set and read through axum-extra's
//! `CookieJar`; every form carries a CSRF token (HMAC of the session under a
//! per-process key) and a cross-origin `Origin` (or, without one, `Referer`)
//! is refused on every POST, the login included (login CSRF); the page
//! shows only fixed messages chosen by key (`?done=`), never query text;
//! redirects go only to `/ui` paths, their parts percent-encoded; every
//! response carries a CSP without scripts, `frame-ancestors 'none'`,
//! `X-Frame-Options: DENY`, `nosniff` and `Referrer-Policy: same-origin`.
//! Pages never show raw arguments (unless policy permits the reviewer
//! `unmask`) or the token.

use std::sync::OnceLock;

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use gateway_core::Principal;
use gateway_core::approval::record::fmt as rfc3339;
use gateway_core::approval::{Approval, ApprovalState};
use gateway_core::review::{ReviewSummary, ReviewText};
use hmac::{Hmac, Mac};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;

use crate::state::AppState;

const COOKIE: &str = "tollgate_session";

/// What a URL part may hold raw (RFC 3986 unreserved); everything else is
/// percent-encoded.
const URL_PART: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `s` as one percent-encoded path segment or query value.
fn url_part(s: &str) -> String {
    utf8_percent_encode(s, URL_PART).to_string()
}

/// Routes under `/ui`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/approvals", get(index))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/approvals/{id}", get(page))
        .route("/approvals/{id}/decide", post(decide))
        .layer(axum::middleware::map_response(security_headers))
}

fn csrf_key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(rand::random)
}

/// The CSRF token bound to a session.
fn csrf_for(session: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(csrf_key()).expect("HMAC takes any key length");
    mac.update(session.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn csrf_ok(session: &str, given: &str) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(csrf_key()).expect("HMAC takes any key length");
    mac.update(session.as_bytes());
    match hex::decode(given) {
        Ok(bytes) => mac.verify_slice(&bytes).is_ok(),
        Err(_) => false,
    }
}

/// The session token of the request's cookie, if any.
fn session_token(jar: &CookieJar) -> Option<String> {
    jar.get(COOKIE)
        .map(|c| c.value().to_string())
        .filter(|v| !v.is_empty())
}

/// The logged-in reviewer and their session, if any.
async fn session(state: &AppState, jar: &CookieJar) -> Option<(Principal, String)> {
    let token = session_token(jar)?;
    match state.auth.resolve(&token).await {
        Ok(p) => {
            crate::listener::note_authenticated();
            Some((p, token))
        }
        Err(e) => {
            // A session cookie that no longer verifies is a refusal too.
            state
                .gateway
                .auth_refusals()
                .note(e.reason(), &crate::auth::peer());
            None
        }
    }
}

/// The session cookie: HttpOnly, SameSite=Strict, only under `/ui`, and
/// Secure behind https.
fn session_cookie(token: String, secure: bool) -> Cookie<'static> {
    Cookie::build((COOKIE, token))
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/ui")
        .secure(secure)
        .build()
}

/// A form post from another origin is refused (SameSite=Strict already
/// keeps the cookie off it; this is the second wall, and the only one on
/// the login form, which has no session yet). The `Origin` header decides;
/// without one, the `Referer`; a request with neither (not a browser form
/// post) passes. Same origin: this server's public URL, or the `Host` the
/// request was sent to.
fn same_origin(state: &AppState, headers: &HeaderMap) -> bool {
    let get = |name| headers.get(name).map(|v| v.to_str().unwrap_or("\u{0}"));
    let Some(from) = get(header::ORIGIN).or_else(|| get(header::REFERER)) else {
        return true;
    };
    let Some((scheme, authority)) = crate::mcp_guard::origin_of(from) else {
        return false; // `null`, garbage
    };
    let public = crate::mcp_guard::origin_of(&state.public_url);
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_ascii_lowercase);
    public.as_ref() == Some(&(scheme, authority.clone())) || host.as_deref() == Some(&authority)
}

/// The one stylesheet of every page, allowed by hash in the CSP.
const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
pre{background:#f5f5f5;padding:.75rem;overflow:auto;white-space:pre-wrap}table{border-collapse:collapse;width:100%}
td,th{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #ddd;vertical-align:top}.who{float:right}
.state{font-weight:bold}.pending{color:#b60}.approved,.executed{color:#070}.denied,.failed,.expired,.cancelled{color:#a00}
textarea{width:100%}button{padding:.4rem 1rem;margin-right:.5rem}.msg{background:#eef;padding:.5rem}";

/// `Content-Security-Policy` of every UI response: nothing loads but the
/// inline stylesheet above (by hash), forms post only here, no framing.
fn csp() -> &'static HeaderValue {
    static CSP: OnceLock<HeaderValue> = OnceLock::new();
    CSP.get_or_init(|| {
        use base64::Engine;
        use sha2::Digest;
        let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(STYLE));
        HeaderValue::from_str(&format!(
            "default-src 'none'; style-src 'sha256-{hash}'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
        ))
        .expect("CSP is ASCII")
    })
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

/// The logged-in reviewer of a page and their CSRF token (for log out).
#[derive(Clone, Copy)]
struct Viewer<'a> {
    who: &'a Principal,
    csrf: &'a str,
}

/// Every page: head with the stylesheet, who is logged in, the title.
fn layout(title: &str, viewer: Option<Viewer<'_>>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width";
                title { (title) " · Tollgate" }
                // A constant of this file, allowed by hash in the CSP.
                style { (PreEscaped(STYLE)) }
            }
            body {
                @if let Some(v) = viewer {
                    form method="post" action="/ui/logout" class="who" {
                        (v.who.sub) " (" (v.who.groups.join(", ")) ") "
                        input type="hidden" name="csrf" value=(v.csrf);
                        button { "Log out" }
                    }
                }
                h1 { (title) }
                (body)
            }
        }
    }
}

fn login_redirect(next: &str) -> Response {
    Redirect::to(&format!("/ui/login?next={}", url_part(next))).into_response()
}

/// Only local `/ui` paths (no `//host`, no scheme).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/ui") && !n.contains("//") && !n.contains('\\') => n.to_string(),
        _ => "/ui".into(),
    }
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

async fn login_page(Query(q): Query<NextQuery>) -> Markup {
    let next = safe_next(q.next.as_deref());
    layout(
        "Log in",
        None,
        html! {
            p {
                "Paste your reviewer token (a bearer JWT, e.g. from " code { "tollgate token" }
                " or " code { "tollgate demo" } "). It is kept in an HttpOnly cookie for this site only."
            }
            form method="post" action="/ui/login" {
                input type="hidden" name="next" value=(next);
                textarea name="token" rows="4" required autocomplete="off" aria-label="Token" {}
                p { button { "Log in" } }
            }
        },
    )
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
    next: Option<String>,
}

async fn login(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    // Login CSRF: another site must not log the reviewer in as someone else.
    if !same_origin(&state, &headers) {
        return (
            StatusCode::FORBIDDEN,
            "cross-site login refused: open the login page of this server and log in from there",
        )
            .into_response();
    }
    let token = f.token.trim();
    let refused = match state.auth.resolve(token).await {
        Err(e) => Some(e.reason()),
        Ok(_)
            if !token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) =>
        {
            Some("unsafe_token")
        }
        Ok(_) => None,
    };
    if let Some(reason) = refused {
        // Counted for the `auth_refused` window, never the token.
        state
            .gateway
            .auth_refusals()
            .note(reason, &crate::auth::peer());
        return (
            StatusCode::UNAUTHORIZED,
            layout(
                "Log in",
                None,
                html! {
                    p.msg { "That token is not valid here (expired, wrong signature or wrong audience)." }
                    p { a href="/ui/login" { "Try again" } }
                },
            ),
        )
            .into_response();
    }
    let secure = state.public_url.starts_with("https://");
    let jar = jar.add(session_cookie(token.to_string(), secure));
    (jar, Redirect::to(&safe_next(f.next.as_deref()))).into_response()
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: Option<String>,
}

async fn logout(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    let ok = session_token(&jar)
        .zip(f.csrf)
        .is_some_and(|(s, c)| csrf_ok(&s, &c));
    if !ok || !same_origin(&state, &headers) {
        return (StatusCode::FORBIDDEN, "bad CSRF token").into_response();
    }
    let secure = state.public_url.starts_with("https://");
    let jar = jar.remove(session_cookie(String::new(), secure));
    (jar, Redirect::to("/ui/login")).into_response()
}

fn state_badge(s: ApprovalState) -> Markup {
    html! { span class={ "state " (s.as_str()) } { (s.as_str()) } }
}

async fn index(State(state): State<AppState>, jar: CookieJar) -> Response {
    let Some((who, token)) = session(&state, &jar).await else {
        return login_redirect("/ui");
    };
    let Some(service) = super::service(&state) else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no approval service").into_response();
    };
    let all = super::sees_all(&state, &who);
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
fn list_page(viewer: Viewer<'_>, list: &[Approval], all: bool) -> Markup {
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
enum Masking {
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
fn reviewer_view(state: &AppState, who: &Principal, a: &Approval) -> (Value, Masking) {
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

fn masking_note(m: &Masking) -> Markup {
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
fn lifecycle(a: &Approval) -> String {
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
fn done_message(key: &str) -> Option<&'static str> {
    match key {
        "approved" => Some("Recorded. The approval is now approved."),
        "denied" => Some("Recorded. The approval is now denied."),
        "recorded" => Some("Recorded. The approval waits for more reviewers."),
        _ => None,
    }
}

/// A review text as it runs. Literal parts are already masked one by one.
fn review_text(t: &ReviewText) -> Markup {
    html! { pre { (t.joined()) } }
}

/// The family's review: title, each thing that runs with what it touches,
/// every resource, and the diff when there is one.
fn review_section(r: &ReviewSummary) -> Markup {
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
fn arguments_section(args: &Value) -> Markup {
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
fn decision_section(a: &Approval, who: &Principal, csrf: &str) -> Markup {
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
fn approval_page(
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
struct PageQuery {
    done: Option<String>,
}

async fn page(
    State(state): State<AppState>,
    jar: CookieJar,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    let Some((who, token)) = session(&state, &jar).await else {
        return login_redirect(&format!("/ui/approvals/{id}"));
    };
    let Some(service) = super::service(&state) else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no approval service").into_response();
    };
    let csrf = csrf_for(&token);
    let viewer = Viewer {
        who: &who,
        csrf: &csrf,
    };
    let all = super::sees_all(&state, &who);
    let a = match service.get_for(&id, &who, all).await {
        Ok(a) => a,
        Err(e) => {
            return (
                super::api::review_error(&e).status(),
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
struct DecideForm {
    csrf: Option<String>,
    verdict: String,
    reason: Option<String>,
}

async fn decide(
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
    let Some(service) = super::service(&state) else {
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
                super::api::review_error(&e).status(),
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

#[cfg(test)]
mod tests;
