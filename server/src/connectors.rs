//! The one list of enabled connector kinds, and the only place of the
//! server that names a family. Each family sits behind a cargo feature of
//! this crate (`sql`, `kubernetes` and `ssh`, on by default); adding a family is one feature in
//! Cargo.toml plus one line here, and touches no core file. A build without
//! a family's feature refuses its kinds as unknown.

use std::sync::{Arc, Mutex};

use gateway_core::connector::{Connector, ConnectorFactory};

use crate::config::{Config, ConfigError};

/// Kinds added at run time by [`register`].
static REGISTERED: Mutex<Vec<Arc<dyn ConnectorFactory>>> = Mutex::new(Vec::new());

/// Every connector kind this process knows: the families compiled in, then
/// any added with [`register`].
pub fn factories() -> Vec<Arc<dyn ConnectorFactory>> {
    #[allow(unused_mut, reason = "empty without the family features")]
    let mut all: Vec<Arc<dyn ConnectorFactory>> = vec![];
    #[cfg(feature = "sql")]
    {
        use tollgate_sql::SqlConnectorFactory as Sql;
        all.push(Arc::new(Sql::postgres()));
        all.push(Arc::new(Sql::mysql()));
        all.push(Arc::new(Sql::sqlite()));
    }
    #[cfg(feature = "kubernetes")]
    all.push(Arc::new(tollgate_k8s::K8sConnectorFactory));
    #[cfg(feature = "ssh")]
    all.push(Arc::new(tollgate_ssh::SshConnectorFactory));
    all.extend(
        REGISTERED
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned(),
    );
    all
}

/// Add a connector kind to this process, for a program that embeds the
/// server with a family of its own (the tests crate's test-only family does
/// this). Call it before a config is loaded: the policy schema, `check` and
/// the gateway all see the kind from then on. A kind already known is not
/// added twice.
pub fn register(factory: Arc<dyn ConnectorFactory>) {
    let mut registered = REGISTERED.lock().unwrap_or_else(|p| p.into_inner());
    if !registered.iter().any(|f| f.kind() == factory.kind()) {
        registered.push(factory);
    }
}

/// "this build knows a, b" or, for a build without families, says so.
fn known_kinds(factories: &[Arc<dyn ConnectorFactory>]) -> String {
    if factories.is_empty() {
        return "this build has no connector families (it was built without their cargo features, \
                e.g. --no-default-features)"
            .into();
    }
    let known: Vec<_> = factories.iter().map(|f| f.kind()).collect();
    format!("this build knows {}", known.join(", "))
}

/// Build every `[[connection]]`; each error points at its table in the file.
pub fn build(config: &Config) -> Result<Vec<Arc<dyn Connector>>, Vec<ConfigError>> {
    let factories = factories();
    let limits = gateway_core::connector::GatewayLimits {
        max_result_bytes: config.server.max_result_bytes,
    };
    let mut out = vec![];
    let mut errs = vec![];
    for table in &config.connections {
        let at = table.span().start;
        let Some(kind) = table.get_ref().get("kind").and_then(|k| k.as_str()) else {
            errs.push(config.error_at(
                at,
                format!(
                    "[[connection]] needs a `kind` (string); {}",
                    known_kinds(&factories)
                ),
            ));
            continue;
        };
        let Some(factory) = factories.iter().find(|f| f.kind() == kind) else {
            errs.push(config.error_at(
                at,
                format!(
                    "unknown connection kind {kind:?}; {}",
                    known_kinds(&factories)
                ),
            ));
            continue;
        };
        let name = table
            .get_ref()
            .get("name")
            .and_then(|k| k.as_str())
            .unwrap_or_default();
        match factory.build_within(name, &config.connection_json(table.get_ref()), &limits) {
            Ok(c) => out.push(c),
            Err(e) => {
                let message = if e.contains(&format!("connection `{name}`")) {
                    e
                } else {
                    format!("connection `{name}`: {e}")
                };
                let body = table_extent(&config.text, table.span().start);
                let at = key_offset(&config.text, body, &message).unwrap_or(at);
                errs.push(config.error_at(at, message));
            }
        }
    }
    if errs.is_empty() { Ok(out) } else { Err(errs) }
}

/// The bytes of the `[[connection]]` table whose header starts at `start`:
/// up to the next table header (a line starting with `[`) or the end.
fn table_extent(text: &str, start: usize) -> std::ops::Range<usize> {
    let Some(rest) = text.get(start..) else {
        return start..start;
    };
    let mut offset = 0;
    for (i, line) in rest.split_inclusive('\n').enumerate() {
        if i > 0 && line.trim_start().starts_with('[') {
            return start..start + offset;
        }
        offset += line.len();
    }
    start..text.len()
}

/// Where the key a connector error names (its first `` `key` ``) is set
/// inside the connection's table: errors point at that line, not the header.
fn key_offset(text: &str, table: std::ops::Range<usize>, message: &str) -> Option<usize> {
    let body = text.get(table.clone())?;
    let mut rest = message;
    while let Some(open) = rest.find('`') {
        let after = &rest[open + 1..];
        let close = after.find('`')?;
        let key = &after[..close];
        rest = &after[close + 1..];
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let mut line_start = 0;
        for line in body.split_inclusive('\n') {
            let trimmed = line.trim_start();
            if let Some(tail) = trimmed.strip_prefix(key)
                && tail.trim_start().starts_with('=')
            {
                return Some(table.start + line_start + (line.len() - trimmed.len()));
            }
            line_start += line.len();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{build, key_offset, known_kinds, table_extent};
    use crate::config::Config;

    #[test]
    fn errors_point_at_the_key_they_name() {
        let text =
            "[[connection]]\nname = \"shop\"\nkind = \"postgres\"\nstatement_timeout = \"soon\"\n";
        let at = key_offset(
            text,
            0..text.len(),
            "connection `shop` (postgres): `statement_timeout`: `soon` is not a duration",
        )
        .unwrap();
        assert!(text[at..].starts_with("statement_timeout"));
        assert_eq!(key_offset(text, 0..text.len(), "no key named"), None);
    }

    #[test]
    fn a_table_ends_at_the_next_header() {
        let text = "[server]\n[[connection]]\nname = \"a\"\n\n[[connection]]\nname = \"b\"\n";
        let first = text.find("[[connection]]").unwrap();
        let second = text.rfind("[[connection]]").unwrap();
        assert_eq!(table_extent(text, first), first..second);
        assert_eq!(table_extent(text, second), second..text.len());
    }

    #[test]
    fn a_build_without_families_says_so() {
        let text = known_kinds(&[]);
        assert!(text.contains("no connector families"), "{text}");
        assert!(text.contains("--no-default-features"), "{text}");
    }

    /// Build the connections of a config text; the errors as lines.
    fn errors(text: &str) -> Vec<String> {
        let config = Config::parse(Path::new("/etc/tollgate/t.toml"), text).unwrap();
        match build(&config) {
            Ok(_) => vec![],
            Err(e) => e.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[cfg(feature = "sql")]
    #[test]
    fn statement_timeout_takes_the_one_duration_grammar_with_positions() {
        let head = "[[connection]]\nname = \"shop\"\nkind = \"sqlite\"\npath = \"x.db\"\n";
        assert_eq!(
            errors(&format!("{head}statement_timeout = \"1m30s\"\n")),
            Vec::<String>::new()
        );
        let errs = errors(&format!("{head}statement_timeout = \"10 parsecs\"\n"));
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with(
                "/etc/tollgate/t.toml:5:1: connection `shop` (sqlite): `statement_timeout`: `10 parsecs` is not a duration"
            ),
            "{errs:?}"
        );
        assert_eq!(errs[0].matches("connection `shop`").count(), 1, "{errs:?}");
    }

    #[cfg(feature = "sql")]
    #[test]
    fn a_typo_is_an_error_at_its_key_naming_the_known_keys() {
        let errs = errors(
            "[[connection]]\nname = \"shop\"\nkind = \"postgres\"\nurl = \"postgres://u:hunter2@h/db\"\n  max_rowz = 3\n",
        );
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with(
                "/etc/tollgate/t.toml:5:3: connection `shop` (postgres): unknown field `max_rowz`"
            ),
            "{errs:?}"
        );
        assert!(
            errs[0].contains("`max_rows`") && errs[0].contains("`url`"),
            "{errs:?}"
        );
        assert!(!errs[0].contains("hunter2"), "{errs:?}");
        let errs = errors(
            "[[connection]]\nname = \"shop\"\nkind = \"postgres\"\nurl = \"postgres://u:hunter2@h/db\"\nread_only = \"hunter2\"\n",
        );
        assert!(
            errs[0].starts_with("/etc/tollgate/t.toml:5:1: connection `shop` (postgres): `read_only` must be true or false"),
            "{errs:?}"
        );
        assert!(!errs[0].contains("hunter2"), "{errs:?}");
    }

    #[test]
    fn a_connection_without_kind_is_refused_at_its_table() {
        let errs = errors("\n[[connection]]\nname = \"shop\"\n");
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with(
                "/etc/tollgate/t.toml:2:1: [[connection]] needs a `kind` (string); this build"
            ),
            "{errs:?}"
        );
    }
}
