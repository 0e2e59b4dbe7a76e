//! Typed config sections of connector families. Each family derives
//! `Deserialize` with `#[serde(deny_unknown_fields)]` on its own struct for
//! its `[[connection]]` table and reads it with [`deserialize`]: a typo'd key
//! is an error naming the known keys, and every error names the key it is
//! about (`` `max_rows` must be a positive integer ``) so the server can
//! point at that key's line. Value types shared by families' sections
//! ([`PositiveInt`], [`Flag`], [`crate::duration::HumanDuration`]) refuse a
//! wrong value with a fixed text: a config value may be a secret, and errors
//! never echo one.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use serde_path_to_error::Segment;

/// Why a section did not deserialise.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SectionError {
    /// The key the error is about (dotted for nested keys), when known.
    pub key: Option<String>,
    /// What is wrong with it.
    pub message: String,
}

impl std::fmt::Display for SectionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.key {
            // serde's own texts may name the key already (`unknown field `x``).
            Some(k) if self.message.contains(&format!("`{k}`")) => f.write_str(&self.message),
            Some(k) if self.message.starts_with("must ") => write!(f, "`{k}` {}", self.message),
            Some(k) => write!(f, "`{k}`: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Deserialise a family's typed section from its table.
pub fn deserialize<T: DeserializeOwned>(table: &Value) -> Result<T, SectionError> {
    serde_path_to_error::deserialize(table).map_err(|e| {
        let key = e
            .path()
            .iter()
            .map(|s| match s {
                Segment::Map { key } => key.clone(),
                Segment::Seq { index } => index.to_string(),
                Segment::Enum { variant } => variant.clone(),
                Segment::Unknown => "?".into(),
            })
            .collect::<Vec<_>>()
            .join(".");
        SectionError {
            key: (!key.is_empty()).then_some(key),
            message: e.inner().to_string(),
        }
    })
}

/// A whole number greater than zero (a cap, a pool size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PositiveInt(pub u64);

impl<'de> Deserialize<'de> for PositiveInt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Value::deserialize(d)?
            .as_u64()
            .filter(|n| *n > 0)
            .map(PositiveInt)
            .ok_or_else(|| serde::de::Error::custom("must be a positive integer"))
    }
}

/// `true` or `false`, nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flag(pub bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Value::deserialize(d)?
            .as_bool()
            .map(Flag)
            .ok_or_else(|| serde::de::Error::custom("must be true or false"))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        #[allow(dead_code)]
        name: Option<String>,
        cap: Option<PositiveInt>,
        on: Option<Flag>,
    }

    #[test]
    fn errors_name_the_key_and_never_echo_values() {
        let e = deserialize::<Sample>(&json!({"cap": "hunter2"})).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("cap"));
        assert_eq!(e.to_string(), "`cap` must be a positive integer");
        let e = deserialize::<Sample>(&json!({"on": "hunter2"})).unwrap_err();
        assert_eq!(e.to_string(), "`on` must be true or false");
        for bad in [json!(0), json!(-1), json!(1.5)] {
            assert!(deserialize::<Sample>(&json!({ "cap": bad })).is_err());
        }
    }

    #[test]
    fn unknown_keys_name_the_known_ones() {
        let e = deserialize::<Sample>(&json!({"capp": 3})).unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("unknown field `capp`"), "{text}");
        assert!(text.contains("`cap`") && text.contains("`on`"), "{text}");
        let ok = deserialize::<Sample>(&json!({"cap": 3, "on": true})).unwrap();
        assert_eq!((ok.cap, ok.on), (Some(PositiveInt(3)), Some(Flag(true))));
    }
}
