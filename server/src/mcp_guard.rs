//! Guards in front of `/mcp`, beside the Host allow-list and bearer auth:
//!
//! - **Origin**: a request whose `Origin` header is present and not an
//!   allowed origin is refused with 403 (the MCP transport's security
//!   guidance against browser cross-origin requests and DNS rebinding).
//!   Allowed: the origin of `public_url`, loopback origins (any port), and
//!   the allowed hosts (the listen address, the public host,
//!   `server.allowed_hosts`). Requests without `Origin` (non-browser
//!   clients) pass.
//! - **Session binding**: an MCP session (`Mcp-Session-Id`) belongs to the
//!   principal (`sub`) whose `initialize` opened it. A request carrying
//!   another principal's session id, or one this server never handed out, is
//!   refused with 404 (the answer for an unknown session: the client starts
//!   its own with `initialize`), so a leaked session id is useless without
//!   its owner's token.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use gateway_core::Principal;
use serde_json::json;

const SESSION_HEADER: &str = "mcp-session-id";

/// Origins a browser may send to `/mcp`.
#[derive(Debug, Clone)]
pub struct AllowedOrigins {
    /// `scheme://host[:port]` of `public_url`, lowercased.
    public: Option<String>,
    /// Host allow-list entries (`host` or `host:port`), lowercased.
    hosts: Vec<String>,
}

/// `scheme://authority` of a URL or origin, lowercased, with the scheme's
/// default port dropped; `None` unless http(s) with a non-empty authority.
pub(crate) fn origin_of(url: &str) -> Option<(String, String)> {
    let (scheme, rest) = url.trim().split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next()?.to_ascii_lowercase();
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let default = if scheme == "https" { ":443" } else { ":80" };
    let authority = authority
        .strip_suffix(default)
        .map(str::to_string)
        .unwrap_or(authority);
    Some((scheme, authority))
}

/// The host of an authority (`[::1]:8080` → `[::1]`, `a.b:1` → `a.b`).
fn host_of(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority.find(']').map_or(authority, |i| &authority[..=i]);
    }
    authority.split(':').next().unwrap_or(authority)
}

fn is_loopback(host: &str) -> bool {
    matches!(host, "localhost" | "[::1]") || host.starts_with("127.")
}

impl AllowedOrigins {
    /// From the public URL and the Host allow-list of `/mcp`.
    pub fn new(public_url: &str, allowed_hosts: &[String]) -> Self {
        AllowedOrigins {
            public: origin_of(public_url).map(|(s, a)| format!("{s}://{a}")),
            hosts: allowed_hosts
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .collect(),
        }
    }

    /// Is `origin` (an `Origin` header value) allowed?
    pub fn allows(&self, origin: &str) -> bool {
        // An origin is `scheme://host[:port]`, nothing more.
        let bare = origin
            .split_once("://")
            .is_some_and(|(_, rest)| !rest.contains(['/', '?', '#']));
        let Some((scheme, authority)) = origin_of(origin).filter(|_| bare) else {
            return false; // `null`, other schemes, paths, garbage
        };
        if self.public.as_deref() == Some(format!("{scheme}://{authority}").as_str()) {
            return true;
        }
        let host = host_of(&authority);
        is_loopback(host)
            || self.hosts.iter().any(|h| {
                let has_port = if h.starts_with('[') {
                    h.contains("]:")
                } else {
                    h.contains(':')
                };
                if has_port { *h == authority } else { h == host }
            })
    }
}

fn refuse(status: StatusCode, message: String) -> Response {
    (
        status,
        axum::Json(json!({"error": status.canonical_reason().unwrap_or("refused").to_lowercase(), "message": message})),
    )
        .into_response()
}

/// Middleware: refuse a present, not-allowed `Origin` with 403.
pub async fn check_origin(
    State(allowed): State<Arc<AllowedOrigins>>,
    req: Request,
    next: Next,
) -> Response {
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let ok = origin.to_str().is_ok_and(|o| allowed.allows(o));
        if !ok {
            let shown: String = String::from_utf8_lossy(origin.as_bytes())
                .chars()
                .filter(|c| !gateway_core::text::is_unsafe_char(*c))
                .take(200)
                .collect();
            tracing::warn!(origin = %shown, "refused /mcp request from a disallowed Origin");
            return refuse(
                StatusCode::FORBIDDEN,
                format!(
                    "Origin {shown:?} is not allowed on /mcp: browser requests must come from this server's public URL or a loopback origin \
                     (add the host to server.allowed_hosts to trust another web client)"
                ),
            );
        }
    }
    next.run(req).await
}

/// Most session bindings kept; beyond it the oldest are forgotten (their
/// owners get 404 and start a new session, as after a server restart).
const MAX_SESSIONS: usize = 100_000;

/// Session id → `sub` of the principal that opened it.
#[derive(Debug, Default, Clone)]
pub struct SessionOwners(Arc<Mutex<Owners>>);

#[derive(Debug, Default)]
struct Owners {
    by_id: HashMap<String, String>,
    /// Ids in binding order (may hold ids already forgotten).
    order: VecDeque<String>,
}

impl SessionOwners {
    fn lock(&self) -> std::sync::MutexGuard<'_, Owners> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn owner(&self, id: &str) -> Option<String> {
        self.lock().by_id.get(id).cloned()
    }
    fn bind(&self, id: String, sub: String) {
        let mut o = self.lock();
        o.order.push_back(id.clone());
        o.by_id.insert(id, sub);
        while o.by_id.len() > MAX_SESSIONS {
            let Some(oldest) = o.order.pop_front() else {
                break;
            };
            o.by_id.remove(&oldest);
        }
        if o.order.len() > 2 * MAX_SESSIONS {
            let Owners { by_id, order } = &mut *o;
            order.retain(|id| by_id.contains_key(id));
        }
    }
    fn forget(&self, id: &str) {
        self.lock().by_id.remove(id);
    }
}

/// Middleware (inside bearer auth): a session id must be the caller's own;
/// a new session id in a response is bound to the caller.
pub async fn bind_session(
    State(owners): State<SessionOwners>,
    req: Request,
    next: Next,
) -> Response {
    let Some(sub) = req.extensions().get::<Principal>().map(|p| p.sub.clone()) else {
        // Bearer auth runs first; without a principal nothing may pass.
        return refuse(StatusCode::UNAUTHORIZED, "missing bearer token".into());
    };
    let presented = req
        .headers()
        .get(SESSION_HEADER)
        .map(|v| v.to_str().unwrap_or_default().to_string());
    if let Some(id) = &presented
        && owners.owner(id).as_deref() != Some(sub.as_str())
    {
        tracing::warn!(%sub, "refused an MCP session id not opened by this caller");
        return refuse(
            StatusCode::NOT_FOUND,
            "no such MCP session for this caller: the Mcp-Session-Id was not opened with your identity (or has ended); \
             send initialize without it to start your own session"
                .into(),
        );
    }
    let is_delete = req.method() == Method::DELETE;
    let resp = next.run(req).await;
    match presented {
        Some(id) if is_delete && resp.status().is_success() => owners.forget(&id),
        Some(_) => {}
        None => {
            if let Some(id) = resp
                .headers()
                .get(SESSION_HEADER)
                .and_then(|v: &HeaderValue| v.to_str().ok())
            {
                owners.bind(id.to_string(), sub);
            }
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::{AllowedOrigins, MAX_SESSIONS, SessionOwners};

    #[test]
    fn session_bindings_are_bounded_oldest_first() {
        let s = SessionOwners::default();
        for i in 0..=MAX_SESSIONS {
            s.bind(format!("s{i}"), "alice".into());
        }
        s.forget("s5");
        assert_eq!(s.owner("s0"), None, "the oldest is forgotten");
        assert_eq!(s.owner("s5"), None, "forgotten");
        assert_eq!(s.owner("s1").as_deref(), Some("alice"));
        assert_eq!(
            s.owner(&format!("s{MAX_SESSIONS}")).as_deref(),
            Some("alice")
        );
        assert!(s.lock().by_id.len() <= MAX_SESSIONS);
    }

    #[test]
    fn origins() {
        let hosts: Vec<String> = [
            "localhost",
            "127.0.0.1",
            "::1",
            "[::1]",
            "0.0.0.0:8080",
            "tollgate.example",
            "partner.example:8443",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let a = AllowedOrigins::new("https://tollgate.example/base", &hosts);
        for ok in [
            "https://tollgate.example",
            "https://tollgate.example:443",
            "HTTPS://Tollgate.Example",
            "http://localhost:6274",
            "http://127.0.0.1:3000",
            "http://[::1]:9",
            "https://partner.example:8443",
            "http://tollgate.example:8080",
        ] {
            assert!(a.allows(ok), "{ok}");
        }
        for bad in [
            "https://evil.example",
            "null",
            "file://",
            "https://tollgate.example.evil.example",
            "https://partner.example",
            "https://user@tollgate.example",
            "chrome-extension://abc",
            "",
        ] {
            assert!(!a.allows(bad), "{bad}");
        }
    }
}
