//! The server-rendered review UI: `/ui` (approvals you may decide),
//! `/ui/approvals/{id}` (exactly what will run, with approve/deny forms),
//! `/ui/login` (paste a token).
//!
//! Security: the token lives in an `HttpOnly; SameSite=Strict` cookie scoped
//! to `/ui` (and `Secure` behind https); every form carries a CSRF token
//! (HMAC of the session under a per-process key) and a cross-origin
//! `Origin` (or, without one, `Referer`) is refused on every POST, the login
//! included (login CSRF); every recorded value is HTML-escaped; the page
//! shows only fixed messages chosen by key (`?done=`), never query text;
//! redirects go only to `/ui` paths; every response carries a CSP without
//! scripts, `frame-ancestors 'none'`, `X-Frame-Options: DENY`, `nosniff`
//! and `Referrer-Policy: same-origin`. Pages never show raw arguments or
//! the token.

use std::sync::OnceLock;

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use gateway_core::Principal;
use gateway_core::approval::{Approval, ApprovalState};
use hmac::{Hmac, Mac};
use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;

use crate::state::AppState;

const COOKIE: &str = "tollgate_session";

/// Routes under `/ui`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
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

fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty())
}

/// The logged-in reviewer and their session, if any.
async fn session(state: &AppState, headers: &HeaderMap) -> Option<(Principal, String)> {
    let token = session_token(headers)?;
    let p = state.auth.resolve(&token).await.ok()?;
    Some((p, token))
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

fn layout(title: &str, who: Option<&Principal>, csrf: Option<&str>, body: &str) -> Html<String> {
    let user = match (who, csrf) {
        (Some(p), Some(c)) => format!(
            r#"<form method="post" action="/ui/logout" class="who">{} ({}) <input type="hidden" name="csrf" value="{}"><button>Log out</button></form>"#,
            text(&p.sub),
            text(&p.groups.join(", ")),
            attr(c)
        ),
        _ => String::new(),
    };
    Html(format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title} · Tollgate</title>
<style>{STYLE}</style></head>
<body>{user}<h1>{title}</h1>{body}</body></html>"#,
        title = text(title),
    ))
}

fn login_redirect(next: &str) -> Response {
    let next: String = url_encode(next);
    Redirect::to(&format!("/ui/login?next={next}")).into_response()
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
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

async fn login_page(Query(q): Query<NextQuery>) -> Html<String> {
    let next = safe_next(q.next.as_deref());
    layout(
        "Log in",
        None,
        None,
        &format!(
            r#"<p>Paste your reviewer token (a bearer JWT, e.g. from <code>tollgate token</code> or <code>tollgate demo</code>).
It is kept in an HttpOnly cookie for this site only.</p>
<form method="post" action="/ui/login"><input type="hidden" name="next" value="{}">
<textarea name="token" rows="4" required autocomplete="off"></textarea><p><button>Log in</button></p></form>"#,
            attr(&next)
        ),
    )
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
    next: Option<String>,
}

async fn login(
    State(state): State<AppState>,
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
    if state.auth.resolve(token).await.is_err()
        || !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return (
            StatusCode::UNAUTHORIZED,
            layout(
                "Log in",
                None,
                None,
                r#"<p class="msg">That token is not valid here (expired, wrong signature or wrong audience).</p><p><a href="/ui/login">Try again</a></p>"#,
            ),
        )
            .into_response();
    }
    let secure = if state.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/ui{secure}");
    let mut resp = Redirect::to(&safe_next(f.next.as_deref())).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: Option<String>,
}

async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    let ok = session_token(&headers)
        .zip(f.csrf)
        .is_some_and(|(s, c)| csrf_ok(&s, &c));
    if !ok || !same_origin(&state, &headers) {
        return (StatusCode::FORBIDDEN, "bad CSRF token").into_response();
    }
    let mut resp = Redirect::to("/ui/login").into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "tollgate_session=; HttpOnly; SameSite=Strict; Path=/ui; Max-Age=0",
        ),
    );
    resp
}

fn state_badge(s: ApprovalState) -> String {
    format!(r#"<span class="state {0}">{0}</span>"#, s.as_str())
}

async fn index(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some((who, token)) = session(&state, &headers).await else {
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
    let mut rows = String::new();
    // Pending first, then the rest, newest first within each.
    let (pending, rest): (Vec<&Approval>, Vec<&Approval>) =
        list.iter().partition(|a| a.state == ApprovalState::Pending);
    for a in pending.iter().chain(rest.iter()) {
        rows.push_str(&format!(
            r#"<tr><td><a href="/ui/approvals/{id}">{id_t}</a></td><td>{state}</td><td>{req}</td><td>{conn}</td><td><code>{sum}</code></td><td>{exp}</td></tr>"#,
            id = attr(&a.id),
            id_t = text(&a.id),
            state = state_badge(a.state),
            req = text(&a.requester.sub),
            conn = text(a.connection.as_deref().unwrap_or("-")),
            sum = text(&a.summary_text()),
            exp = text(&gateway_core::approval::record::fmt(a.expires_at)),
        ));
    }
    if rows.is_empty() {
        rows = r#"<tr><td colspan="6">Nothing for you to review.</td></tr>"#.into();
    }
    let csrf = csrf_for(&token);
    layout(
        "Approvals",
        Some(&who),
        Some(&csrf),
        &format!(
            "<p>{}</p><table><tr><th>id</th><th>state</th><th>requester</th><th>connection</th><th>call</th><th>expires</th></tr>{rows}</table>",
            if all {
                "Every approval (you may read the audit log)."
            } else {
                "Approvals you may decide."
            }
        ),
    )
    .into_response()
}

/// The statements and tables of the analysis summary, as list items.
fn statements(summary: &Value) -> String {
    let items: Vec<String> = summary
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|s| {
            let kind = s.get("kind").and_then(Value::as_str).unwrap_or("?");
            let tables: Vec<&str> = s
                .get("tables")
                .and_then(Value::as_array)
                .map(|t| t.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let sql = s
                .get("sql")
                .and_then(Value::as_str)
                .map(|q| format!("<pre>{}</pre>", text(q)))
                .unwrap_or_default();
            format!(
                "<li><b>{}</b> on {}{sql}</li>",
                text(kind),
                if tables.is_empty() {
                    "(no table)".to_string()
                } else {
                    tables
                        .iter()
                        .map(|t| format!("<code>{}</code>", text(t)))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            )
        })
        .collect();
    if items.is_empty() {
        format!("<pre>{}</pre>", text(&summary.to_string()))
    } else {
        format!("<ul>{}</ul>", items.join(""))
    }
}

/// The arguments this reviewer may see, and a note saying whether values are
/// masked: raw only when policy permits the reviewer `unmask` on the
/// approval's connection for every type the masker finds in them.
fn reviewer_view(
    state: &AppState,
    who: &gateway_core::Principal,
    a: &gateway_core::approval::record::Approval,
) -> (Value, String) {
    let mut masked = a.arguments.clone();
    let found = state.gateway.masker().mask_value("", &mut masked, &[]);
    if found.is_empty() {
        return (a.arguments_masked.clone(), String::new());
    }
    let types: Vec<String> = found.keys().map(|t| format!("[{t}]")).collect();
    let connection = a.connection.as_deref().unwrap_or_default();
    let policy = state.gateway.policy();
    if !connection.is_empty()
        && gateway_core::disclosure::may_unmask(&policy, who, connection, &[], &found)
    {
        (
            a.arguments.clone(),
            format!(
                r#"<p class="msg">Shown unmasked: policy permits you <code>unmask</code> for {} on <code>{}</code>.</p>"#,
                text(&types.join(", ")),
                text(connection)
            ),
        )
    } else {
        (
            a.arguments_masked.clone(),
            format!(
                r#"<p class="msg">Values shown as {} are masked; a policy permitting you <code>unmask</code> on <code>{}</code> would show them. The statement's structure (tables, every predicate) is never masked.</p>"#,
                text(&types.join(", ")),
                text(if connection.is_empty() {
                    "-"
                } else {
                    connection
                })
            ),
        )
    }
}

/// Where the call stands, in the tense that fits its state.
fn lifecycle(a: &gateway_core::approval::record::Approval) -> String {
    let at = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(gateway_core::approval::record::fmt)
            .unwrap_or_else(|| "-".into())
    };
    match a.state {
        ApprovalState::Pending => "When approved, the call runs once, with exactly these arguments, for this requester, and only if policy still allows it then. Approval does not start it: it runs when the agent's waiting call, task or approval_wait picks it up.".into(),
        ApprovalState::Approved => format!(
            "Approved at {}. The call runs once when the agent's waiting call, task or approval_wait picks it up, and only if policy still allows it then.",
            at(a.decided_at)
        ),
        ApprovalState::Executed => format!(
            "Ran once: started {}, finished {}. Its outcome (rows, errors) is in the audit log (tool {}).",
            at(a.claimed_at),
            at(a.finished_at),
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

#[derive(Deserialize)]
struct PageQuery {
    done: Option<String>,
}

async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    let Some((who, token)) = session(&state, &headers).await else {
        return login_redirect(&format!("/ui/approvals/{id}"));
    };
    let Some(service) = super::service(&state) else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no approval service").into_response();
    };
    let all = super::sees_all(&state, &who);
    let a = match service.get_for(&id, &who, all).await {
        Ok(a) => a,
        Err(e) => {
            return (
                super::api::review_error(&e).status(),
                layout(
                    "Approval",
                    Some(&who),
                    Some(&csrf_for(&token)),
                    &format!("<p>{}</p>", text(&e.to_string())),
                ),
            )
                .into_response();
        }
    };
    let csrf = csrf_for(&token);
    // Masked values: policy decides whether this reviewer sees them raw
    // (`unmask` on the approval's connection for every type found), and the
    // page says which it is.
    let (shown_args, masking_note) = reviewer_view(&state, &who, &a);
    let sql = shown_args
        .get("sql")
        .and_then(Value::as_str)
        .map(|s| format!("<h2>Statement as submitted</h2><pre>{}</pre>", text(s)))
        .unwrap_or_default();
    let decisions: String = a
        .reviews
        .iter()
        .map(|r| {
            format!(
                "<li>{} <b>{}</b> ({}) at {}: {}</li>",
                text(&r.sub),
                text(&r.verdict),
                text(&r.groups.join(", ")),
                text(&gateway_core::approval::record::fmt(r.time)),
                text(r.reason.as_deref().unwrap_or("(no reason)"))
            )
        })
        .collect();
    let required: String = a
        .required
        .iter()
        .map(|r| {
            format!(
                "<li>{} from <b>{}</b> (asked by {})</li>",
                r.count,
                text(&r.group),
                r.policies
                    .iter()
                    .map(|p| format!("<code>{}</code>", text(p)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
        .collect();
    let forms = match a.may_decide(&who) {
        Ok(())
            if a.state == ApprovalState::Pending && !a.reviews.iter().any(|r| r.sub == who.sub) =>
        {
            format!(
                r#"<h2>Your decision</h2><form method="post" action="/ui/approvals/{id}/decide">
<input type="hidden" name="csrf" value="{csrf}"><p><label>Reason (required to deny)<br><textarea name="reason" rows="2"></textarea></label></p>
<button name="verdict" value="approve">Approve</button><button name="verdict" value="deny">Deny</button></form>"#,
                id = attr(&a.id),
                csrf = attr(&csrf)
            )
        }
        Ok(()) if a.state == ApprovalState::Pending => {
            "<p>You have decided; waiting for other reviewers.</p>".into()
        }
        Err(e) if a.state == ApprovalState::Pending => format!("<p>{}</p>", text(&e.to_string())),
        _ => String::new(),
    };
    // Only fixed messages chosen by key: the parameter is never echoed.
    let done = q
        .done
        .as_deref()
        .and_then(done_message)
        .map(|m| format!(r#"<p class="msg">{m}</p>"#))
        .unwrap_or_default();
    let body = format!(
        r#"{done}<table>
<tr><th>state</th><td>{state}</td></tr>
<tr><th>requester</th><td>{req} ({groups})</td></tr>
<tr><th>tool</th><td><code>{tool}</code></td></tr>
<tr><th>connection</th><td><code>{conn}</code></td></tr>
<tr><th>created</th><td>{created}</td></tr><tr><th>expires</th><td>{expires}</td></tr>
<tr><th>arguments hash</th><td><code>{hash}</code></td></tr></table>
{masking_note}{sql}<h2>What runs (the statements as Tollgate parsed them; comments are not sent; literals masked one by one)</h2>{stmts}
<h2>Approval required</h2><ul>{required}</ul>
<h2>Decisions</h2><ul>{decisions}</ul>
<h2>Arguments</h2><pre>{args}</pre>
<p>{lifecycle}</p>
{forms}<p><a href="/ui">All approvals</a></p>"#,
        state = state_badge(a.state),
        req = text(&a.requester.sub),
        groups = text(&a.requester.groups.join(", ")),
        tool = text(&a.tool),
        conn = text(a.connection.as_deref().unwrap_or("-")),
        created = text(&gateway_core::approval::record::fmt(a.created_at)),
        expires = text(&gateway_core::approval::record::fmt(a.expires_at)),
        hash = text(&a.arguments_hash),
        stmts = statements(&a.summary),
        args = text(&serde_json::to_string_pretty(&shown_args).unwrap_or_default()),
        lifecycle = text(&lifecycle(&a)),
    );
    layout(
        &format!("Approval {}", a.id),
        Some(&who),
        Some(&csrf),
        &body,
    )
    .into_response()
}

#[derive(Deserialize)]
struct DecideForm {
    csrf: Option<String>,
    verdict: String,
    reason: Option<String>,
}

async fn decide(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<DecideForm>,
) -> Response {
    let Some((who, token)) = session(&state, &headers).await else {
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
            return (
                super::api::review_error(&e).status(),
                layout(
                    "Approval",
                    Some(&who),
                    Some(&csrf_for(&token)),
                    &format!(
                        r#"<p class="msg">{}</p><p><a href="/ui/approvals/{}">Back to the approval</a></p>"#,
                        text(&e.to_string()),
                        attr(&url_encode(&id))
                    ),
                ),
            )
                .into_response();
        }
    };
    Redirect::to(&format!("/ui/approvals/{}?done={key}", url_encode(&id))).into_response()
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use sha2::{Digest, Sha256};

    /// The CSP allows exactly the stylesheet the pages carry (by hash), so
    /// the pages keep their style and nothing else inline runs.
    #[test]
    fn csp_hash_matches_the_page_stylesheet() {
        let page = super::layout("t", None, None, "<p>x</p>").0;
        let style = page
            .split("<style>")
            .nth(1)
            .and_then(|s| s.split("</style>").next())
            .expect("a stylesheet");
        let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(style));
        let csp = super::csp().to_str().unwrap();
        assert!(csp.contains(&format!("style-src 'sha256-{hash}'")), "{csp}");
        assert!(!page.contains("<script"), "no scripts");
        assert_eq!(super::done_message("<b>x</b>"), None);
    }
}
