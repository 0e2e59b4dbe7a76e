//! Token plumbing that does not verify anything: peeking at the JOSE header
//! (to pick a key and refuse bad algorithms before any crypto) and reading
//! groups from verified claims. Nothing here decides whether a token is valid.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use super::IdentityError;

/// The two header fields we route on.
pub(super) struct PeekedHeader {
    pub alg: String,
    pub kid: Option<String>,
}

/// Decode the header of a compact JWS without verifying it.
pub(super) fn peek_header(token: &str) -> Result<PeekedHeader, IdentityError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_payload), Some(_sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(IdentityError::Malformed);
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .map_err(|_| IdentityError::Malformed)?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| IdentityError::Malformed)?;
    let alg = value
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(IdentityError::Malformed)?
        .to_string();
    // RFC 7515 §4.1.11: a recipient must reject a token whose `crit` names
    // an extension it does not understand, and `crit` must not be empty nor
    // list standard headers. Tollgate understands no extension, so any
    // `crit` at all is one of those cases.
    if value.get("crit").is_some() {
        return Err(IdentityError::CriticalHeader);
    }
    let kid = match value.get("kid") {
        None | Some(Value::Null) => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(IdentityError::Malformed),
    };
    Ok(PeekedHeader { alg, kid })
}

/// An attacker-supplied header value made safe to echo in an error: at most
/// 16 ASCII alphanumerics.
pub(super) fn printable(raw: &str) -> String {
    let s: String = raw
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(16)
        .collect();
    if s.is_empty() { "(empty)".into() } else { s }
}

/// Groups at `claim`: the claim name itself if present at top level (names
/// like `https://example.com/groups` contain dots), else the dotted path.
/// A JSON array of strings (other entries ignored) or a space-separated
/// string; anything else, or nothing, is no groups. Order kept, duplicates
/// dropped.
pub(super) fn groups(claims: &Map<String, Value>, claim: &str) -> Vec<String> {
    let value = claims.get(claim).or_else(|| {
        let mut parts = claim.split('.');
        let first = claims.get(parts.next()?)?;
        parts.try_fold(first, |v, p| v.get(p))
    });
    let raw: Vec<&str> = match value {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(s)) => s.split_whitespace().collect(),
        _ => Vec::new(),
    };
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for g in raw {
        let g = g.trim();
        if !g.is_empty() && !out.iter().any(|o| o == g) {
            out.push(g.to_string());
        }
    }
    out
}

/// Place `groups` at `claim` (a dotted path creates nested objects), the
/// inverse of [`groups`] for tokens Tollgate mints itself.
pub(super) fn set_groups(claims: &mut Map<String, Value>, claim: &str, groups: &[String]) {
    let value = Value::from(groups.to_vec());
    let parts: Vec<&str> = claim.split('.').collect();
    let Some((last, path)) = parts.split_last() else {
        return;
    };
    let mut map = claims;
    for p in path {
        let entry = map
            .entry(p.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        map = entry.as_object_mut().expect("just made an object");
    }
    map.insert(last.to_string(), value);
}
