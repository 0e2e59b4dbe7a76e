//! Acting as the caller (`impersonate = true`): every tool request carries
//! `Impersonate-User: <caller sub>` and one `Impersonate-Group` per caller
//! group, so the cluster's own RBAC decides as well as Tollgate's policy.
//! The connection's own identity needs RBAC's `impersonate` verb on users
//! and groups; the API server adds `system:authenticated` itself.
//!
//! Invariants: a value a header cannot carry exactly (control or non-ASCII
//! characters, surrounding spaces, an empty sub; a comma in a group, which
//! a proxy could split) refuses the call, never a panic and never a silent
//! rewrite; a sub or group in Kubernetes' reserved `system:` namespace is
//! refused, so an identity provider's claim cannot name `system:masters`;
//! no caller at all refuses the call rather than running as the connection.
//! Discovery is not a tool request: it runs as the connection itself.

use gateway_core::Principal;
use http::{HeaderName, HeaderValue};

/// `Impersonate-User`.
const USER: HeaderName = HeaderName::from_static("impersonate-user");
/// `Impersonate-Group`.
const GROUP: HeaderName = HeaderName::from_static("impersonate-group");

/// Why a call cannot be made as its caller.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImpersonationError {
    /// The gateway passed no caller.
    #[error(
        "connection `{0}` acts as its caller (`impersonate = true`), but the call has no caller"
    )]
    NoCaller(String),
    /// A sub or group a header cannot carry exactly.
    #[error(
        "the caller cannot be impersonated: its {what} {value:?} is empty, has surrounding spaces, or holds characters an HTTP header cannot carry{extra}"
    )]
    Unsendable {
        /// `sub` or `group`.
        what: &'static str,
        /// The value, quoted with escapes.
        value: String,
        /// A note for groups (commas).
        extra: &'static str,
    },
    /// A sub or group in Kubernetes' reserved `system:` namespace.
    #[error(
        "the caller cannot be impersonated: its {what} {value:?} is in Kubernetes' reserved `system:` namespace"
    )]
    Reserved {
        /// `sub` or `group`.
        what: &'static str,
        /// The value.
        value: String,
    },
}

/// The headers one value becomes, checked.
fn value(what: &'static str, v: &str) -> Result<HeaderValue, ImpersonationError> {
    let unsendable = |extra| ImpersonationError::Unsendable {
        what,
        value: v.to_string(),
        extra,
    };
    if v.is_empty() || v.trim() != v || !v.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(unsendable(""));
    }
    if what == "group" && v.contains(',') {
        return Err(unsendable(" (a comma in a group)"));
    }
    if v.starts_with("system:") {
        return Err(ImpersonationError::Reserved {
            what,
            value: v.to_string(),
        });
    }
    HeaderValue::from_str(v).map_err(|_| unsendable(""))
}

/// The impersonation headers for `caller` (a caller with no groups sends
/// none).
pub fn headers(caller: &Principal) -> Result<Vec<(HeaderName, HeaderValue)>, ImpersonationError> {
    let mut out = vec![(USER, value("sub", &caller.sub)?)];
    for g in &caller.groups {
        out.push((GROUP, value("group", g)?));
    }
    Ok(out)
}

/// Add `headers` to `req` (any impersonation header already there is
/// replaced: only the caller's identity is ever sent).
pub fn apply<B>(req: &mut http::Request<B>, headers: &[(HeaderName, HeaderValue)]) {
    let h = req.headers_mut();
    h.remove(&USER);
    h.remove(&GROUP);
    for (name, value) in headers {
        h.append(name.clone(), value.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(sub: &str, groups: &[&str]) -> Principal {
        Principal {
            sub: sub.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    #[test]
    fn headers_carry_the_caller_or_refuse() {
        let h = headers(&p("alice", &["devs", "ops"])).unwrap();
        let mut req = http::Request::new(Vec::<u8>::new());
        req.headers_mut()
            .insert(USER, HeaderValue::from_static("someone-else"));
        apply(&mut req, &h);
        assert_eq!(req.headers()[&USER], "alice");
        let groups: Vec<_> = req.headers().get_all(&GROUP).iter().collect();
        assert_eq!(groups, ["devs", "ops"]);
        let none = headers(&p("bob@example.com", &[])).unwrap();
        assert_eq!(none.len(), 1);
        for (who, needle) in [
            (p("", &[]), "sub \"\""),
            (p(" alice", &[]), "surrounding spaces"),
            (p("al\nice", &[]), "al\\nice"),
            (p("jösé", &[]), "sub \"jösé\""),
            (p("a\u{7f}", &[]), "characters"),
            (p("alice", &["a,b"]), "comma"),
            (p("alice", &["ok", "x\r\nImpersonate-User: root"]), "group"),
            (p("system:admin", &[]), "reserved"),
            (p("alice", &["system:masters"]), "reserved"),
        ] {
            let e = headers(&who).unwrap_err().to_string();
            assert!(e.contains(needle), "{who:?}: {e}");
        }
    }
}
