//! The `[[connection]]` table of a SQL connection, validated: which keys exist,
//! their types and defaults. Unknown keys are rejected by name so a typo never
//! silently weakens a limit. The URL stays a [`Secret`] from here on.

use std::path::PathBuf;
use std::time::Duration;

use gateway_core::secret::{self, Secret};
use serde_json::Value;

use crate::analysis::Dialect;

/// Default row cap when `max_rows` is not set.
pub const DEFAULT_MAX_ROWS: u64 = 1000;
/// Default byte cap (approximate JSON size of the returned rows).
pub const DEFAULT_MAX_BYTES: usize = 4 * 1024 * 1024;
/// Default statement timeout.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting to a target may take before the call is `Unavailable`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

const KEYS: &[&str] = &[
    "name",
    "kind",
    "url",
    "path",
    "description",
    "statement_timeout",
    "max_rows",
    "max_bytes",
    "max_affected_rows",
    "read_only",
    "pool_size",
    "create_if_missing",
];

/// Where the connection's database lives.
#[derive(Debug, Clone)]
pub enum Target {
    /// A server URL (postgres/mysql), resolved from its secret reference.
    Url(Secret),
    /// A SQLite file.
    Path(PathBuf),
}

/// A validated SQL connection config.
#[derive(Debug, Clone)]
pub struct SqlConfig {
    /// Connection name.
    pub name: String,
    /// Dialect (from `kind`).
    pub dialect: Dialect,
    /// URL or file.
    pub target: Target,
    /// Free text.
    pub description: String,
    /// Per-statement timeout enforced by the database (and a backstop here).
    pub statement_timeout: Duration,
    /// Row cap of one result.
    pub max_rows: u64,
    /// Byte cap of one result.
    pub max_bytes: usize,
    /// At most this many rows one call may change (None: no cap here;
    /// policy may still set one with `@max_affected_rows`, the smaller wins).
    pub max_affected_rows: Option<u64>,
    /// Every call runs read-only, whatever policy allows.
    pub read_only: bool,
    /// Pool size (default 4).
    pub pool_size: usize,
    /// SQLite only: create the file when missing (default false).
    pub create_if_missing: bool,
}

/// The kind name of a dialect, as written in config.
pub fn kind_name(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Postgres => "postgres",
        Dialect::MySql => "mysql",
        Dialect::Sqlite => "sqlite",
    }
}

impl SqlConfig {
    /// Validate a `[[connection]]` table for `dialect`.
    pub fn parse(dialect: Dialect, name: &str, config: &Value) -> Result<Self, String> {
        let kind = kind_name(dialect);
        let ctx = |m: String| format!("connection `{name}` ({kind}): {m}");
        let obj = config
            .as_object()
            .ok_or_else(|| ctx("config must be a table".into()))?;
        for key in obj.keys() {
            if !KEYS.contains(&key.as_str()) {
                return Err(ctx(format!(
                    "unknown key `{key}` (known keys: {})",
                    KEYS.join(", ")
                )));
            }
        }
        let string = |key: &str| -> Result<Option<&str>, String> {
            match obj.get(key) {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.as_str())),
                Some(_) => Err(ctx(format!("`{key}` must be a string"))),
            }
        };
        let uint = |key: &str| -> Result<Option<u64>, String> {
            match obj.get(key) {
                None => Ok(None),
                Some(v) => v
                    .as_u64()
                    .filter(|n| *n > 0)
                    .map(Some)
                    .ok_or_else(|| ctx(format!("`{key}` must be a positive integer"))),
            }
        };
        let boolean = |key: &str| -> Result<Option<bool>, String> {
            match obj.get(key) {
                None => Ok(None),
                Some(Value::Bool(b)) => Ok(Some(*b)),
                Some(_) => Err(ctx(format!("`{key}` must be true or false"))),
            }
        };
        if let Some(k) = string("kind")?
            && k != kind
        {
            return Err(ctx(format!("`kind` is `{k}`, expected `{kind}`")));
        }
        let target = match dialect {
            Dialect::Sqlite => {
                if obj.contains_key("url") {
                    return Err(ctx("a sqlite connection takes `path`, not `url`".into()));
                }
                let path = string("path")?.ok_or_else(|| ctx("missing `path`".into()))?;
                Target::Path(PathBuf::from(path))
            }
            _ => {
                if obj.contains_key("path") {
                    return Err(ctx("takes `url`, not `path`".into()));
                }
                let raw = string("url")?.ok_or_else(|| ctx("missing `url`".into()))?;
                let url = secret::resolve(raw).map_err(|e| ctx(format!("`url`: {e}")))?;
                let scheme_ok = match dialect {
                    Dialect::Postgres => {
                        url.expose().starts_with("postgres://")
                            || url.expose().starts_with("postgresql://")
                    }
                    _ => {
                        url.expose().starts_with("mysql://")
                            || url.expose().starts_with("mariadb://")
                    }
                };
                if !scheme_ok {
                    // Never echo the URL: it may hold a password.
                    return Err(ctx(format!(
                        "`url` must start with {}://",
                        if dialect == Dialect::Postgres {
                            "postgres"
                        } else {
                            "mysql"
                        }
                    )));
                }
                Target::Url(url)
            }
        };
        if dialect != Dialect::Sqlite && obj.contains_key("create_if_missing") {
            return Err(ctx("`create_if_missing` applies to sqlite only".into()));
        }
        let statement_timeout = match string("statement_timeout")? {
            None => DEFAULT_STATEMENT_TIMEOUT,
            Some(s) => parse_duration(s).map_err(|e| ctx(format!("`statement_timeout`: {e}")))?,
        };
        Ok(SqlConfig {
            name: name.to_string(),
            dialect,
            target,
            description: string("description")?.unwrap_or_default().to_string(),
            statement_timeout,
            max_rows: uint("max_rows")?.unwrap_or(DEFAULT_MAX_ROWS),
            max_bytes: uint("max_bytes")?
                .map(|n| n as usize)
                .unwrap_or(DEFAULT_MAX_BYTES),
            max_affected_rows: uint("max_affected_rows")?,
            read_only: boolean("read_only")?.unwrap_or(false),
            pool_size: uint("pool_size")?.map(|n| n.min(64) as usize).unwrap_or(4),
            create_if_missing: boolean("create_if_missing")?.unwrap_or(false),
        })
    }
}

/// Longest duration a connection setting takes (timeouts are added to
/// instants: an absurd value must be refused, not overflow).
const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// Parse `"10s"`, `"500ms"`, `"2m"`, `"1h"` (a positive integer and a unit, at most a day).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 500ms, 10s, 2m, 1h"))?;
    let d = match unit.trim() {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" | "min" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(format!("`{s}` is not a duration like 500ms, 10s, 2m, 1h")),
    };
    if d.is_zero() {
        return Err("must be greater than zero".into());
    }
    if d > MAX_DURATION {
        return Err(format!(
            "`{s}` is longer than a day; use a shorter duration"
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("2 weeks").is_err());
        assert!(parse_duration("999999999999999999h").is_err());
        assert!(parse_duration("25h").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn rejects_unknown_key_by_name() {
        let e = SqlConfig::parse(Dialect::Sqlite, "d", &json!({"path": "x.db", "max_row": 5}))
            .unwrap_err();
        assert!(e.contains("unknown key `max_row`"), "{e}");
    }

    #[test]
    fn url_is_secret_and_never_echoed() {
        let e = SqlConfig::parse(
            Dialect::Postgres,
            "s",
            &json!({"url": "http://u:hunter2@h/db"}),
        )
        .unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
        let c = SqlConfig::parse(
            Dialect::Postgres,
            "s",
            &json!({"name": "s", "kind": "postgres", "url": "postgres://u:hunter2@h/db", "statement_timeout": "2s", "max_rows": 10}),
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(c.max_rows, 10);
        assert_eq!(c.statement_timeout, Duration::from_secs(2));
    }

    #[test]
    fn type_errors_name_the_key() {
        let e = SqlConfig::parse(
            Dialect::Sqlite,
            "d",
            &json!({"path": "x", "max_rows": "10"}),
        )
        .unwrap_err();
        assert!(e.contains("`max_rows`"), "{e}");
        let e = SqlConfig::parse(Dialect::MySql, "d", &json!({"path": "x"})).unwrap_err();
        assert!(e.contains("`url`"), "{e}");
    }

    #[test]
    fn max_affected_rows_is_a_positive_integer() {
        let ok = SqlConfig::parse(
            Dialect::Sqlite,
            "d",
            &json!({"path": "x", "max_affected_rows": 10}),
        )
        .unwrap();
        assert_eq!(ok.max_affected_rows, Some(10));
        let none = SqlConfig::parse(Dialect::Sqlite, "d", &json!({"path": "x"})).unwrap();
        assert_eq!(none.max_affected_rows, None);
        for bad in [json!(0), json!(-1), json!("10"), json!(1.5)] {
            let e = SqlConfig::parse(
                Dialect::Sqlite,
                "d",
                &json!({"path": "x", "max_affected_rows": bad}),
            )
            .unwrap_err();
            assert!(
                e.contains("`max_affected_rows` must be a positive integer"),
                "{e}"
            );
        }
    }
}
