//! The `[[connection]]` table of a SQL connection, validated: which keys exist
//! (a typed section with `deny_unknown_fields`, read by
//! [`gateway_core::section`]), their types and defaults. Unknown keys are
//! rejected by name so a typo never silently weakens a limit. The URL stays a
//! [`Secret`] from here on.

use std::path::PathBuf;
use std::time::Duration;

use gateway_core::duration::{self, HumanDuration};
use gateway_core::secret::{self, Secret};
use gateway_core::section::{self, Flag, PositiveInt};
use serde::Deserialize;
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

/// The `[[connection]]` table of a SQL connection as written: every key a
/// SQL connection takes, and no other (`deny_unknown_fields`). Not `Debug`:
/// `url` may hold a literal password.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlSection {
    /// Checked by the server (present, unique).
    #[allow(dead_code)]
    name: Option<String>,
    kind: Option<String>,
    url: Option<String>,
    path: Option<PathBuf>,
    description: Option<String>,
    statement_timeout: Option<HumanDuration>,
    max_rows: Option<PositiveInt>,
    max_bytes: Option<PositiveInt>,
    max_affected_rows: Option<PositiveInt>,
    read_only: Option<Flag>,
    pool_size: Option<PositiveInt>,
    create_if_missing: Option<Flag>,
}

impl SqlConfig {
    /// Validate a `[[connection]]` table for `dialect`.
    pub fn parse(dialect: Dialect, name: &str, config: &Value) -> Result<Self, String> {
        let kind = kind_name(dialect);
        let ctx = |m: String| format!("connection `{name}` ({kind}): {m}");
        if !config.is_object() {
            return Err(ctx("config must be a table".into()));
        }
        let section: SqlSection = section::deserialize(config).map_err(|e| ctx(e.to_string()))?;
        if let Some(k) = &section.kind
            && k != kind
        {
            return Err(ctx(format!("`kind` is `{k}`, expected `{kind}`")));
        }
        let target = match dialect {
            Dialect::Sqlite => {
                if section.url.is_some() {
                    return Err(ctx("a sqlite connection takes `path`, not `url`".into()));
                }
                let path = section.path.ok_or_else(|| ctx("missing `path`".into()))?;
                Target::Path(path)
            }
            _ => {
                if section.path.is_some() {
                    return Err(ctx("takes `url`, not `path`".into()));
                }
                let raw = section.url.ok_or_else(|| ctx("missing `url`".into()))?;
                let url = secret::resolve(&raw).map_err(|e| ctx(format!("`url`: {e}")))?;
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
        if dialect != Dialect::Sqlite && section.create_if_missing.is_some() {
            return Err(ctx("`create_if_missing` applies to sqlite only".into()));
        }
        let statement_timeout = match section.statement_timeout {
            None => DEFAULT_STATEMENT_TIMEOUT,
            Some(HumanDuration(d)) => {
                bounded_timeout(d).map_err(|e| ctx(format!("`statement_timeout`: {e}")))?
            }
        };
        Ok(SqlConfig {
            name: name.to_string(),
            dialect,
            target,
            description: section.description.unwrap_or_default(),
            statement_timeout,
            max_rows: section.max_rows.map_or(DEFAULT_MAX_ROWS, |n| n.0),
            max_bytes: section.max_bytes.map_or(DEFAULT_MAX_BYTES, |n| {
                usize::try_from(n.0).unwrap_or(usize::MAX)
            }),
            max_affected_rows: section.max_affected_rows.map(|n| n.0),
            read_only: section.read_only.is_some_and(|f| f.0),
            pool_size: section
                .pool_size
                .map_or(4, |n| usize::try_from(n.0.min(64)).unwrap_or(64)),
            create_if_missing: section.create_if_missing.is_some_and(|f| f.0),
        })
    }
}

/// Longest duration a connection setting takes (timeouts are added to
/// instants: an absurd value must be refused, not overflow).
const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// A statement timeout must be above zero and at most a day.
fn bounded_timeout(d: Duration) -> Result<Duration, String> {
    if d.is_zero() {
        return Err("must be greater than zero".into());
    }
    if d > MAX_DURATION {
        return Err("must be at most a day (24h); use a shorter duration".into());
    }
    Ok(d)
}

/// Parse a statement timeout: the one duration grammar of every config key
/// ([`gateway_core::duration`]: `500ms`, `10s`, `1m30s`, `1h`), above zero
/// and at most a day.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    bounded_timeout(duration::parse(s).map_err(|e| e.to_string())?)
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
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert!(
            parse_duration("10 parsecs")
                .unwrap_err()
                .contains("parsecs")
        );
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
        assert!(e.contains("unknown field `max_row`"), "{e}");
        assert!(
            e.contains("`max_rows`") && e.contains("`statement_timeout`"),
            "known keys: {e}"
        );
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
