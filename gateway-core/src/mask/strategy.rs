//! Strategies: what a detected value becomes.
//!
//! `redact` → `[EMAIL]`, `partial` → `****1111`, `hash` → `EMAIL_3f9a1c2b`
//! (HMAC-SHA256 under the configured key, so equal values give equal tokens
//! and nobody without the key can confirm a guess), `null` → JSON null (or
//! nothing inside longer text). Never returns any part of the value except
//! the `partial` tail the operator asked for.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::config::Strategy;
use crate::secret::Secret;

/// A type's resolved settings: its name, strategy and `partial` length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeRule {
    /// Type name as reported in counts.
    pub name: String,
    /// Replacement strategy.
    pub strategy: Strategy,
    /// Characters kept by `partial`.
    pub keep: usize,
}

/// The replacement for one value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replacement {
    /// Replace with this text.
    Text(String),
    /// Replace a whole JSON value with `null`; inside text, with nothing.
    Null,
}

/// Compute the replacement of `value` under `rule`. `key` is the hash key,
/// required (checked at config time) when `rule.strategy` is `Hash`.
pub fn apply(rule: &TypeRule, key: Option<&Secret>, value: &str) -> Replacement {
    match rule.strategy {
        Strategy::Redact => Replacement::Text(format!("[{}]", rule.name)),
        Strategy::Null => Replacement::Null,
        Strategy::Partial => {
            let n = value.chars().count();
            if rule.keep == 0 || n <= rule.keep {
                return Replacement::Text("****".to_string());
            }
            let tail: String = value.chars().skip(n - rule.keep).collect();
            Replacement::Text(format!("****{tail}"))
        }
        Strategy::Hash => Replacement::Text(format!("{}_{}", rule.name, hash_token(key, value))),
    }
}

/// First 8 hex digits of HMAC-SHA256(key, value). Without a key (a config
/// error caught by `Masker::new`) the token is all zeros rather than an
/// unkeyed hash anyone could recompute.
pub fn hash_token(key: Option<&Secret>, value: &str) -> String {
    let Some(key) = key else {
        return "00000000".to_string();
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key.expose().as_bytes()) else {
        return "00000000".to_string();
    };
    mac.update(value.as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..4])
}
