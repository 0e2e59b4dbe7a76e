//! The one list of enabled connector kinds. Adding a connector is one line
//! here (behind a feature if it pulls heavy dependencies) and touches no
//! core file.

use std::sync::Arc;

use gateway_core::connector::{Connector, ConnectorFactory};

use crate::config::{Config, ConfigError};

/// Every connector kind this build knows.
pub fn factories() -> Vec<Box<dyn ConnectorFactory>> {
    use tollgate_sql::SqlConnectorFactory as Sql;
    vec![
        Box::new(Sql::postgres()),
        Box::new(Sql::mysql()),
        Box::new(Sql::sqlite()),
    ]
}

/// Build every `[[connection]]`; each error points at its table in the file.
pub fn build(config: &Config) -> Result<Vec<Arc<dyn Connector>>, Vec<ConfigError>> {
    let factories = factories();
    let mut out = vec![];
    let mut errs = vec![];
    for table in &config.connections {
        let at = table.span().start;
        let kind = table
            .get_ref()
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or_default();
        let Some(factory) = factories.iter().find(|f| f.kind() == kind) else {
            let known: Vec<_> = factories.iter().map(|f| f.kind()).collect();
            errs.push(config.error_at(
                at,
                format!(
                    "unknown connection kind {kind:?}; this build knows {}",
                    known.join(", ")
                ),
            ));
            continue;
        };
        let name = table
            .get_ref()
            .get("name")
            .and_then(|k| k.as_str())
            .unwrap_or_default();
        match factory.build(name, &config.connection_json(table.get_ref())) {
            Ok(c) => out.push(c),
            Err(e) => {
                let message = if e.contains(&format!("connection `{name}`")) {
                    e
                } else {
                    format!("connection `{name}`: {e}")
                };
                let span = table.span();
                let at = key_offset(&config.text, span.start..span.end, &message).unwrap_or(at);
                errs.push(config.error_at(at, message));
            }
        }
    }
    if errs.is_empty() { Ok(out) } else { Err(errs) }
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
    use super::key_offset;

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
}
