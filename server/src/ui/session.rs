//! The console session: login (through the OpenID Connect provider named
//! in `[ui]`, or a pasted bearer token where none is), the server-side
//! session behind the cookie ([`session`]), logout, the CSRF token (HMAC of
//! the session id under a per-process key) and the same-origin check of
//! every POST.
//!
//! The cookie holds only a random session id; the server keeps who it is
//! and until when ([`crate::ui::sessions`]). It is `HttpOnly`,
//! `SameSite=Lax` (`Strict` would drop it on the redirect back from the
//! provider), scoped to `/ui`, and `Secure` behind https; logout deletes the
//! session server-side, so the old cookie stops working at once. An expired
//! or unknown session sends the browser to `/ui/login`.
//!
//! The OpenID Connect login: `/ui/login` links to `/ui/login/start`, which
//! remembers a login request ([`crate::ui::oidc`]), binds it to this browser
//! with a short-lived `tollgate_login` cookie (`HttpOnly`, `SameSite=Lax`,
//! path `/ui/login`) and redirects to the provider; the provider sends the
//! browser back to `/ui/login/callback`. Every refused login (bad token,
//! wrong or replayed state, refused code, bad ID token) is counted for the
//! `auth_refused` audit window with a fixed reason, never a token, and
//! answered with a page saying what to do.
//!
//! A cross-origin `Origin` (or, without one, `Referer`) is refused on every
//! POST, the token login included (login CSRF); redirects go only to `/ui`
//! paths, their parts percent-encoded. No token, code or secret ever
//! appears in a page.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use gateway_core::Principal;
use hmac::{Hmac, Mac};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;

use super::layout::layout;
use super::oidc::Callback;
use super::sessions::Lookup;
use super::url_part;
use crate::state::AppState;

const COOKIE: &str = "tollgate_session";
/// The browser binding of an OpenID Connect login in progress.
const LOGIN_COOKIE: &str = "tollgate_login";

fn csrf_key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(rand::random)
}

/// The CSRF token bound to a session.
pub(crate) fn csrf_for(session: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(csrf_key()).expect("HMAC takes any key length");
    mac.update(session.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

pub(crate) fn csrf_ok(session: &str, given: &str) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(csrf_key()).expect("HMAC takes any key length");
    mac.update(session.as_bytes());
    match hex::decode(given) {
        Ok(bytes) => mac.verify_slice(&bytes).is_ok(),
        Err(_) => false,
    }
}

/// The session id of the request's cookie, if any.
pub(crate) fn session_token(jar: &CookieJar) -> Option<String> {
    jar.get(COOKIE)
        .map(|c| c.value().to_string())
        .filter(|v| !v.is_empty())
}

/// The logged-in reviewer and their session id, if any.
pub(crate) async fn session(state: &AppState, jar: &CookieJar) -> Option<(Principal, String)> {
    let id = session_token(jar)?;
    let reason = match state.login.sessions.get(&id) {
        Lookup::Valid(p) => {
            crate::listener::note_authenticated();
            return Some((p, id));
        }
        Lookup::Expired => "session_expired",
        Lookup::Unknown => "session_unknown",
    };
    // A session cookie that no longer names a session is a refusal too.
    state
        .gateway
        .auth_refusals()
        .note(reason, &crate::auth::peer());
    None
}

fn secure(state: &AppState) -> bool {
    state.public_url.starts_with("https://")
}

/// The session cookie: HttpOnly, SameSite=Lax, only under `/ui`, and Secure
/// behind https. It holds a random session id, nothing else.
pub(crate) fn session_cookie(id: String, secure: bool) -> Cookie<'static> {
    Cookie::build((COOKIE, id))
        .http_only(true)
        .same_site(SameSite::Lax)
        .path("/ui")
        .secure(secure)
        .build()
}

/// The login binding cookie: only sent back to `/ui/login/...`; dropped by
/// the callback, and worthless after [`super::oidc::LOGIN_TTL`] (the server forgets the
/// login request it binds).
fn login_cookie(value: String, secure: bool) -> Cookie<'static> {
    Cookie::build((LOGIN_COOKIE, value))
        .http_only(true)
        .same_site(SameSite::Lax)
        .path("/ui/login")
        .secure(secure)
        .build()
}

/// A form post from another origin is refused (SameSite already keeps the
/// cookie off cross-site posts; this is the second wall, and the only one
/// on the login form, which has no session yet). The `Origin` header
/// decides; without one, the `Referer`; a request with neither (not a
/// browser form post) passes. Same origin: this server's public URL, or the
/// `Host` the request was sent to.
pub(crate) fn same_origin(state: &AppState, headers: &HeaderMap) -> bool {
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

pub(crate) fn login_redirect(next: &str) -> Response {
    Redirect::to(&format!("/ui/login?next={}", url_part(next))).into_response()
}

/// Only local `/ui` paths (no `//host`, no scheme).
pub(crate) fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/ui") && !n.contains("//") && !n.contains('\\') => n.to_string(),
        _ => "/ui".into(),
    }
}

#[derive(Deserialize)]
pub(crate) struct NextQuery {
    next: Option<String>,
}

/// `/ui/login`: a link to the provider where `[ui]` names one, else the
/// token form.
pub(crate) async fn login_page(
    State(state): State<AppState>,
    Query(q): Query<NextQuery>,
) -> Markup {
    let next = safe_next(q.next.as_deref());
    if let Some(oidc) = &state.login.oidc {
        // A link, not a form: the CSP's `form-action 'self'` would stop a
        // form's redirect to the provider.
        let start = format!("/ui/login/start?next={}", url_part(&next));
        return layout(
            "Log in",
            None,
            html! {
                p { "Reviewers and auditors log in through the organisation's identity provider." }
                p { a.button href=(start) { "Log in with " (oidc.issuer()) } }
            },
        );
    }
    layout(
        "Log in",
        None,
        html! {
            p {
                "Paste your reviewer token (a bearer JWT, e.g. from " code { "tollgate token" }
                " or " code { "tollgate demo" } "). It is checked once; the browser keeps only a session cookie for this site."
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
pub(crate) struct LoginForm {
    token: String,
    next: Option<String>,
}

/// A page that says a login was refused and how to start again.
fn refused_page(status: StatusCode, message: &str, next: &str) -> Response {
    (
        status,
        layout(
            "Log in",
            None,
            html! {
                p.msg { (message) }
                p { a href={ "/ui/login?next=" (url_part(next)) } { "Start again" } }
            },
        ),
    )
        .into_response()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Open a session for `who` (dropping the browser's previous one) and send
/// the browser to `next`.
fn logged_in(
    state: &AppState,
    jar: CookieJar,
    who: Principal,
    at_most: Option<Duration>,
    next: &str,
) -> Response {
    if let Some(old) = session_token(&jar) {
        state.login.sessions.remove(&old);
    }
    tracing::info!(sub = %who.sub, "console login");
    let id = state.login.sessions.create(who, at_most);
    let jar = jar.add(session_cookie(id, secure(state)));
    (jar, Redirect::to(&safe_next(Some(next)))).into_response()
}

/// POST `/ui/login`: the token form (only where no provider is configured).
pub(crate) async fn login(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    if state.login.oidc.is_some() {
        return refused_page(
            StatusCode::NOT_FOUND,
            "This console logs people in through its identity provider, not with a token.",
            "/ui",
        );
    }
    // Login CSRF: another site must not log the reviewer in as someone else.
    if !same_origin(&state, &headers) {
        return (
            StatusCode::FORBIDDEN,
            "cross-site login refused: open the login page of this server and log in from there",
        )
            .into_response();
    }
    let token = f.token.trim();
    let verified = match state.auth.verify(token).await {
        Err(e) => Err(e.reason()),
        Ok(_)
            if !token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) =>
        {
            Err("unsafe_token")
        }
        Ok(v) => Ok(v),
    };
    let next = safe_next(f.next.as_deref());
    match verified {
        Err(reason) => {
            // Counted for the `auth_refused` window, never the token.
            state
                .gateway
                .auth_refusals()
                .note(reason, &crate::auth::peer());
            refused_page(
                StatusCode::UNAUTHORIZED,
                "That token is not valid here (expired, wrong signature or wrong audience).",
                &next,
            )
        }
        Ok((who, claims)) => {
            // The session ends when the token would have.
            let left = claims
                .get("exp")
                .and_then(Value::as_f64)
                .map(|exp| Duration::from_secs((exp as u64).saturating_sub(unix_now())));
            logged_in(&state, jar, who, left, &next)
        }
    }
}

/// GET `/ui/login/start`: remember a login request and send the browser to
/// the provider.
pub(crate) async fn login_start(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(q): Query<NextQuery>,
) -> Response {
    let next = safe_next(q.next.as_deref());
    let Some(oidc) = &state.login.oidc else {
        return login_redirect(&next);
    };
    match oidc.start(next.clone()).await {
        Ok(started) => {
            let jar = jar.add(login_cookie(started.browser, secure(&state)));
            (jar, Redirect::to(&started.authorize_url)).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "OpenID Connect login could not start");
            refused_page(StatusCode::SERVICE_UNAVAILABLE, &e.to_string(), &next)
        }
    }
}

/// GET `/ui/login/callback`: the provider sends the browser back here with
/// the state and a code.
pub(crate) async fn login_callback(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(cb): Query<Callback>,
) -> Response {
    let Some(oidc) = &state.login.oidc else {
        return login_redirect("/ui");
    };
    let browser = jar.get(LOGIN_COOKIE).map(|c| c.value().to_string());
    // The binding is spent whatever the outcome.
    let jar = jar.remove(login_cookie(String::new(), secure(&state)));
    match oidc.finish(&cb, browser.as_deref()).await {
        Ok(done) => logged_in(&state, jar, done.principal, None, &done.next),
        Err(e) => {
            let reason = e.reason();
            tracing::info!(reason, "refused console login");
            state
                .gateway
                .auth_refusals()
                .note(&reason, &crate::auth::peer());
            let status = if e.is_unavailable() {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::BAD_REQUEST
            };
            (jar, refused_page(status, &e.to_string(), "/ui")).into_response()
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    csrf: Option<String>,
}

/// POST `/ui/logout`: the session ends server-side, the cookie is dropped.
pub(crate) async fn logout(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    let Some(id) = session_token(&jar) else {
        return (StatusCode::FORBIDDEN, "bad CSRF token").into_response();
    };
    let ok = f.csrf.is_some_and(|c| csrf_ok(&id, &c));
    if !ok || !same_origin(&state, &headers) {
        return (StatusCode::FORBIDDEN, "bad CSRF token").into_response();
    }
    state.login.sessions.remove(&id);
    let jar = jar.remove(session_cookie(String::new(), secure(&state)));
    (jar, Redirect::to("/ui/login")).into_response()
}
