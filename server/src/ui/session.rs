//! The console session: the cookie holding the bearer token, resolving it
//! to a [`Principal`] ([`session`]), the token-form login, logout, the CSRF
//! token (HMAC of the session under a per-process key) and the same-origin
//! check of every POST.
//!
//! The token lives in an `HttpOnly; SameSite=Strict` cookie scoped to `/ui`
//! (and `Secure` behind https), set and read through axum-extra's
//! `CookieJar`; a cross-origin `Origin` (or, without one, `Referer`) is
//! refused on every POST, the login included (login CSRF); redirects go only
//! to `/ui` paths, their parts percent-encoded. The token never appears in a
//! page.

use std::sync::OnceLock;

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use gateway_core::Principal;
use hmac::{Hmac, Mac};
use maud::{Markup, html};
use serde::Deserialize;
use sha2::Sha256;

use super::layout::layout;
use super::url_part;
use crate::state::AppState;

const COOKIE: &str = "tollgate_session";

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

/// The session token of the request's cookie, if any.
pub(crate) fn session_token(jar: &CookieJar) -> Option<String> {
    jar.get(COOKIE)
        .map(|c| c.value().to_string())
        .filter(|v| !v.is_empty())
}

/// The logged-in reviewer and their session, if any.
pub(crate) async fn session(state: &AppState, jar: &CookieJar) -> Option<(Principal, String)> {
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
pub(crate) fn session_cookie(token: String, secure: bool) -> Cookie<'static> {
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

pub(crate) async fn login_page(Query(q): Query<NextQuery>) -> Markup {
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
pub(crate) struct LoginForm {
    token: String,
    next: Option<String>,
}

pub(crate) async fn login(
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
pub(crate) struct CsrfForm {
    csrf: Option<String>,
}

pub(crate) async fn logout(
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
