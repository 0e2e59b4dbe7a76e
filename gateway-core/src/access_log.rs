//! Audit events for what is not a tool call: reads of the audit log,
//! policy reloads and refused authentication. Each is an [`AuditRecord`]
//! in the same chain as the calls, with a `tool` naming the access
//! ([`AUDIT_READ`], [`POLICY_RELOAD`], [`AUTH_REFUSED`]) and minimal
//! arguments (a filter, an id, a hash, counts; never a token).
//!
//! Refused authentication is aggregated ([`AuthRefusals`]): counted in
//! memory per (reason, source) and written as one event per window, so a
//! flood of bad tokens cannot flood the store. Calls over a rate or
//! concurrency limit are aggregated the same way ([`RateRefusals`], per
//! principal and limit), past the first of each in a window, which is
//! recorded as the call's own `deny` event.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::audit::{AuditRecord, OutcomeRecord};
use crate::identity::Principal;

/// `tool` of a read of the audit log (`/api/audit`, an event, a recording).
pub const AUDIT_READ: &str = "audit_read";
/// `tool` of a policy reload (accepted or refused).
pub const POLICY_RELOAD: &str = "policy_reload";
/// `tool` of a window of refused authentications.
pub const AUTH_REFUSED: &str = "auth_refused";
/// `tool` of a window of calls refused by a rate or concurrency limit (the
/// first refusal of each principal and limit in a window is also recorded
/// as its own `deny` event of the tool called).
pub const RATE_LIMITED: &str = "rate_limited";
/// Distinct (reason, source) keys kept per window; the rest are summed
/// under [`OTHER`].
pub const MAX_KEYS: usize = 100;
/// Key of the refusals beyond [`MAX_KEYS`].
pub const OTHER: &str = "other";

/// The principal of events nobody authenticated for.
pub fn anonymous() -> Principal {
    Principal {
        sub: "anonymous".into(),
        groups: vec![],
    }
}

/// The principal of events the server itself causes (a reload on SIGHUP).
pub fn system() -> Principal {
    Principal {
        sub: "system".into(),
        groups: vec![],
    }
}

/// An access event: `who` did `tool` with `arguments`; `decision` is
/// `allow`/`deny`, `status` the outcome.
pub fn access_record(
    who: &Principal,
    tool: &str,
    arguments: Value,
    decision: &str,
    status: &str,
) -> AuditRecord {
    AuditRecord {
        principal: who.clone(),
        tool: tool.into(),
        connection: None,
        arguments,
        requests: vec![],
        decision: decision.into(),
        approval: None,
        outcome: OutcomeRecord {
            status: status.into(),
            duration_ms: 0,
            rows: None,
            error: None,
        },
        result_preview: Value::Null,
        masked: Default::default(),
        recording: None,
        intent: None,
    }
}

/// sha256 (hex) of a policy set: over its files sorted by name, each as
/// name, NUL, length, NUL, contents, so no two sets share a hash by
/// moving text between files.
pub fn policy_set_hash<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut files: Vec<_> = files.into_iter().collect();
    files.sort();
    let mut h = Sha256::new();
    for (name, text) in files {
        h.update(name.as_bytes());
        h.update([0]);
        h.update(text.len().to_string().as_bytes());
        h.update([0]);
        h.update(text.as_bytes());
    }
    hex::encode(h.finalize())
}

/// The record of a policy reload: accepted (`allow`) or refused (`deny`,
/// the last good set stays in force), with the set's hash and, when
/// refused, the first problem.
pub fn policy_reload_record(hash: Option<&str>, refused: Option<&str>) -> AuditRecord {
    let mut r = access_record(
        &system(),
        POLICY_RELOAD,
        json!({"sha256": hash, "accepted": refused.is_none()}),
        if refused.is_none() { "allow" } else { "deny" },
        if refused.is_none() { "ok" } else { "refused" },
    );
    r.outcome.error = refused.map(|e| e.chars().take(500).collect());
    r
}

/// Refusals counted per pair of keys since the last [`RefusalWindow::take`],
/// written as one event per window: refused authentications
/// ([`AuthRefusals`], per reason and source address) and calls over a rate
/// or concurrency limit ([`RateRefusals`], per principal and limit).
#[derive(Debug)]
pub struct RefusalWindow {
    /// `tool` of the window's event.
    tool: &'static str,
    /// Names of the two keys in the event's entries.
    keys: (&'static str, &'static str),
    counts: Mutex<BTreeMap<(String, String), u64>>,
}

/// Refused authentications, counted per (reason, source address).
pub type AuthRefusals = RefusalWindow;
/// Calls refused by a `[[limits.rule]]`, counted per (principal, limit).
pub type RateRefusals = RefusalWindow;

impl Default for RefusalWindow {
    /// The window of refused authentications.
    fn default() -> Self {
        Self::new(AUTH_REFUSED, ("reason", "source"))
    }
}

impl RefusalWindow {
    fn new(tool: &'static str, keys: (&'static str, &'static str)) -> Self {
        RefusalWindow {
            tool,
            keys,
            counts: Mutex::default(),
        }
    }

    /// The window of calls refused by a rate or concurrency limit.
    pub fn rate_limits() -> Self {
        Self::new(RATE_LIMITED, ("principal", "limit"))
    }

    /// Count one refusal under (`a`, `b`): for authentication a reason (a
    /// fixed word, never the token) and a source (an address, or
    /// `unknown`); for limits the principal and the limit. Beyond
    /// [`MAX_KEYS`] distinct keys the refusal counts under ([`OTHER`],
    /// [`OTHER`]). True when it is the first of its key in this window.
    pub fn note(&self, a: &str, b: &str) -> bool {
        self.add(a, b, 1)
    }

    fn add(&self, a: &str, b: &str, n: u64) -> bool {
        let Ok(mut counts) = self.counts.lock() else {
            return false;
        };
        let key = (a.to_string(), b.to_string());
        let key = if counts.contains_key(&key) || counts.len() < MAX_KEYS {
            key
        } else {
            (OTHER.to_string(), OTHER.to_string())
        };
        let c = counts.entry(key).or_default();
        *c = c.saturating_add(n);
        *c == n
    }

    /// The window's event, if anything was refused since the last call;
    /// the counts start again from zero.
    pub fn take(&self) -> Option<AuditRecord> {
        let counts = std::mem::take(&mut *self.counts.lock().ok()?);
        if counts.is_empty() {
            return None;
        }
        let total: u64 = counts.values().sum();
        let (ka, kb) = self.keys;
        let entries: Vec<Value> = counts
            .into_iter()
            .map(|((a, b), count)| json!({ka: a, kb: b, "count": count}))
            .collect();
        let who = if self.tool == AUTH_REFUSED {
            anonymous()
        } else {
            system()
        };
        let mut r = access_record(
            &who,
            self.tool,
            json!({"total": total, "refusals": entries}),
            "deny",
            "refused",
        );
        r.outcome.rows = Some(total);
        Some(r)
    }

    /// Put back a window that could not be written, so its counts are
    /// not lost (merged into the current window).
    pub fn restore(&self, record: &AuditRecord) {
        let Some(entries) = record.arguments["refusals"].as_array() else {
            return;
        };
        let (ka, kb) = self.keys;
        for e in entries {
            let (Some(a), Some(b), Some(n)) = (e[ka].as_str(), e[kb].as_str(), e["count"].as_u64())
            else {
                continue;
            };
            self.add(a, b, n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_one_bounded_event_and_never_the_token() {
        let r = AuthRefusals::default();
        assert!(r.take().is_none(), "nothing refused: no event");
        for i in 0..1000 {
            r.note("invalid_token", &format!("10.0.{}.{}", i / 256, i % 256));
        }
        let rec = r.take().expect("one event");
        assert!(r.take().is_none(), "the window starts again");
        assert_eq!(rec.tool, AUTH_REFUSED);
        assert_eq!(rec.principal.sub, "anonymous");
        assert_eq!(rec.arguments["total"], 1000);
        let entries = rec.arguments["refusals"].as_array().unwrap();
        assert_eq!(entries.len(), MAX_KEYS + 1, "bounded keys plus `other`");
        let other = entries
            .iter()
            .find(|e| e["reason"] == OTHER)
            .expect("the rest summed");
        assert_eq!(other["count"], 1000 - MAX_KEYS as u64);
    }

    #[test]
    fn restore_keeps_the_counts() {
        let r = AuthRefusals::default();
        for _ in 0..5 {
            r.note("expired", "unknown");
        }
        let rec = r.take().unwrap();
        r.restore(&rec);
        r.note("expired", "unknown");
        assert_eq!(r.take().unwrap().arguments["total"], 6);
    }

    #[test]
    fn the_policy_hash_depends_on_names_and_contents_not_order() {
        let a = policy_set_hash([("a.cedar", "x"), ("b.cedar", "y")]);
        assert_eq!(a, policy_set_hash([("b.cedar", "y"), ("a.cedar", "x")]));
        assert_ne!(a, policy_set_hash([("a.cedar", "xy"), ("b.cedar", "")]));
        assert_ne!(a, policy_set_hash([("a.cedar", "y"), ("b.cedar", "x")]));
        assert_eq!(a.len(), 64);
    }
}
