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
            Err(e) => errs.push(config.error_at(at, format!("connection {name:?}: {e}"))),
        }
    }
    if errs.is_empty() { Ok(out) } else { Err(errs) }
}
