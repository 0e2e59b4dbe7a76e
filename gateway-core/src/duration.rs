//! The one duration grammar of every config key and CLI flag: humantime's
//! (`500ms`, `30s`, `1m30s`, `2h`, `1day`). `approval.ttl`, `auth.leeway`,
//! a connection's `statement_timeout` and `tollgate token --ttl` all read
//! durations through [`parse`], so a value valid for one is valid for all;
//! a key may still bound the value (a statement timeout of at most a day).

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A text that is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a duration like 500ms, 30s, 1m30s or 2h: {reason}")]
pub struct DurationError {
    /// The text as given (trimmed).
    pub text: String,
    /// What humantime found wrong.
    pub reason: String,
}

/// Parse a duration such as `"500ms"`, `"10s"`, `"1m30s"`, `"1h"`.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    humantime::parse_duration(text).map_err(|e| DurationError {
        text: text.to_string(),
        reason: e.to_string(),
    })
}

/// A duration config value: deserialises from a string in the grammar of
/// [`parse`] (anything else is an error that echoes no value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => parse(&s)
                .map(HumanDuration)
                .map_err(serde::de::Error::custom),
            _ => Err(serde::de::Error::custom(
                "must be a duration string like \"30s\" or \"1m30s\"",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_grammar_for_every_key() {
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse(" 500ms "), Ok(Duration::from_millis(500)));
        assert_eq!(parse("2h"), Ok(Duration::from_secs(7200)));
        let e = parse("10 parsecs").unwrap_err();
        assert_eq!(e.text, "10 parsecs");
        assert!(
            e.to_string().contains("`10 parsecs` is not a duration"),
            "{e}"
        );
        assert!(e.reason.contains("parsecs"), "{e}");
        assert!(parse("soon").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn deserialises_from_strings_only() {
        let d: HumanDuration = serde_json::from_value(serde_json::json!("1m30s")).unwrap();
        assert_eq!(d.0, Duration::from_secs(90));
        let e = serde_json::from_value::<HumanDuration>(serde_json::json!(30)).unwrap_err();
        assert!(e.to_string().contains("must be a duration string"), "{e}");
    }
}
