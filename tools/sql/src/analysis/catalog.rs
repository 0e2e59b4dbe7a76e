//! A snapshot of how the database resolves unqualified names (PostgreSQL):
//! the effective search path of a fresh session of the connection's role
//! (`current_schemas(true)`: `pg_catalog` first unless placed elsewhere, the
//! role's `"$user"` schema when it exists, then `public`...) and the relations
//! and functions of those schemas.
//!
//! With a snapshot, an unqualified name resolves the way the database would:
//! the first schema of the path that holds it. A name found nowhere is a
//! *miss*: it takes the static rule (the default schema; `pg_*` in
//! `pg_catalog`) and the connector refreshes the snapshot before it analyses
//! again. Either way the executed text names the schema policy saw, so a stale
//! snapshot can only make a call read what policy decided on, or fail.

use std::cell::Cell;
use std::collections::HashSet;

/// Names visible to unqualified references, from one catalog read.
#[derive(Debug, Clone, Default)]
pub struct NameCatalog {
    /// Schemas searched for unqualified names, in order (temporary schemas excluded).
    pub path: Vec<String>,
    /// `(schema, relation)` of every table, view, sequence... in `path`.
    pub relations: HashSet<(String, String)>,
    /// `(schema, function)` of every function in `path`.
    pub functions: HashSet<(String, String)>,
}

impl NameCatalog {
    fn first(&self, set: &HashSet<(String, String)>, name: &str) -> Option<String> {
        self.path
            .iter()
            .find(|s| set.contains(&((*s).clone(), name.to_string())))
            .cloned()
    }

    /// The schema an unqualified relation `name` resolves to, if any holds it.
    pub fn relation_schema(&self, name: &str) -> Option<String> {
        self.first(&self.relations, name)
    }

    /// The schema of the first function called `name` on the path, if any.
    pub fn function_schema(&self, name: &str) -> Option<String> {
        self.first(&self.functions, name)
    }
}

/// The catalog an analysis resolves with, and whether some name missed it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lookup<'a> {
    pub catalog: Option<&'a NameCatalog>,
    pub missed: &'a Cell<bool>,
}

impl Lookup<'_> {
    /// `found(catalog)` when there is a catalog; a miss is recorded.
    pub fn resolve(&self, found: impl FnOnce(&NameCatalog) -> Option<String>) -> Option<String> {
        let catalog = self.catalog?;
        let hit = found(catalog);
        if hit.is_none() {
            self.missed.set(true);
        }
        hit
    }
}
