//! Where each result column comes from, for masking: the connection's column
//! lists (so `*` and `t.*` expand to named columns) and the field origins of
//! a result, built from the statement's column lineage.
//!
//! Lineage first: an output computed from a masked column (`hex(email)`,
//! `substr(ssn,1,3)||...`) is masked whole because the analysis knows it
//! depends on that column, whatever its values look like. The driver's own
//! origin of a bare column is added after the lineage's, so the two can only
//! widen what is masked. Where positions are unknown (a `*` over a relation
//! of unknown width, a statement lineage does not model, a result wider or
//! narrower than the lineage), every result column counts as derived from
//! every source of the statement.

use std::collections::BTreeMap;

use gateway_core::connector::{FieldOrigin, FieldPath};
use serde_json::Value;

use crate::analysis::TableRef;
use crate::analysis::lineage::{ColumnCatalog, Lineage, Source};

/// Column names of every table and view the connection can describe, keyed
/// as the analysis names tables (PostgreSQL exactly; MySQL and SQLite folded
/// to lower case, as they compare names).
#[derive(Debug, Clone, Default)]
pub struct ColumnLists {
    tables: BTreeMap<TableRef, Vec<String>>,
    /// Definitions of the views among them, keyed alike.
    views: BTreeMap<TableRef, String>,
}

impl ColumnLists {
    /// From a `sql_schema` result (`{tables: [{schema, name, columns: [{name}]}]}`).
    pub fn from_schema(schema: &Value, fold: bool) -> Self {
        let f = |s: &str| {
            if fold {
                s.to_lowercase()
            } else {
                s.to_string()
            }
        };
        let mut tables = BTreeMap::new();
        for t in schema
            .get("tables")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let (Some(s), Some(n)) = (
                t.get("schema").and_then(Value::as_str),
                t.get("name").and_then(Value::as_str),
            ) else {
                continue;
            };
            let columns = t
                .get("columns")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|c| c.get("name").and_then(Value::as_str).map(f))
                .collect();
            tables.insert(
                TableRef {
                    schema: f(s),
                    table: f(n),
                },
                columns,
            );
        }
        ColumnLists {
            tables,
            views: BTreeMap::new(),
        }
    }

    /// Add view definitions (keys folded as in [`ColumnLists::from_schema`]),
    /// so lineage follows the views to their tables.
    pub fn with_views(mut self, views: Vec<crate::engine::ViewDefinition>, fold: bool) -> Self {
        let f = |s: String| if fold { s.to_lowercase() } else { s };
        for v in views {
            self.views.insert(
                TableRef {
                    schema: f(v.schema),
                    table: f(v.name),
                },
                v.sql,
            );
        }
        self
    }

    /// True when the lists hold `table`.
    pub fn knows(&self, table: &TableRef) -> bool {
        self.tables.contains_key(table)
    }

    /// Number of tables described.
    pub fn len(&self) -> usize {
        self.tables.len()
    }

    /// True when no table is described.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }
}

impl ColumnCatalog for ColumnLists {
    fn columns(&self, table: &TableRef) -> Option<Vec<String>> {
        self.tables.get(table).cloned()
    }
    fn view(&self, table: &TableRef) -> Option<String> {
        self.views.get(table).cloned()
    }
}

/// What the connection knows about a source column beyond its name: the
/// type it was classified as holding (see the connector's classification).
pub trait Sensitivity {
    /// The type `schema.table.column` holds, when classified.
    fn classified(&self, schema: &str, table: &str, column: &str) -> Option<String>;
}

impl Sensitivity for () {
    fn classified(&self, _: &str, _: &str, _: &str) -> Option<String> {
        None
    }
}

/// The field origins of a result of `width` columns at `/rows/*/<i>`
/// returned by a statement with `lineage`; `driver` holds the driver's
/// `schema.table.column` per column where it knows one.
pub fn result_origins(
    lineage: &Lineage,
    width: usize,
    driver: &[Option<String>],
    columns: &dyn ColumnCatalog,
    sensitivity: &dyn Sensitivity,
) -> Vec<FieldOrigin> {
    let mut out = Vec::new();
    let exact = lineage.exact && lineage.outputs.len() == width;
    let everything = if exact {
        Default::default()
    } else {
        lineage.all_sources()
    };
    for i in 0..width {
        let pointer = format!("/rows/*/{i}");
        if exact {
            let o = &lineage.outputs[i];
            if o.count_only {
                // A number of rows reveals no value of the column counted.
            } else if o.bare
                && let [Source::Column(t, c)] = o.sources.iter().collect::<Vec<_>>()[..]
            {
                out.push(origin(&pointer, t, c, false, sensitivity));
            } else {
                for s in &o.sources {
                    derived(&mut out, &pointer, s, columns, sensitivity);
                }
            }
        } else {
            for s in &everything {
                derived(&mut out, &pointer, s, columns, sensitivity);
            }
        }
        if let Some(Some(d)) = driver.get(i) {
            let field = column_field(d);
            if !out.iter().any(|o| o.pointer == pointer && o.field == field) {
                out.push(FieldOrigin::new(pointer, field));
            }
        }
    }
    out
}

fn origin(
    pointer: &str,
    t: &TableRef,
    column: &str,
    derived: bool,
    sensitivity: &dyn Sensitivity,
) -> FieldOrigin {
    let field = FieldPath::new([t.schema.as_str(), t.table.as_str(), column]);
    let o = if derived {
        FieldOrigin::derived_from(pointer, field)
    } else {
        FieldOrigin::new(pointer, field)
    };
    match sensitivity.classified(&t.schema, &t.table, column) {
        Some(ty) => o.sensitive_as(ty),
        None => o,
    }
}

/// Origins of a value derived from `source`: one per column; some column of
/// a table that cannot be named is every column of it (from the lists), or
/// the table itself, which meets every rule on any of its columns.
fn derived(
    out: &mut Vec<FieldOrigin>,
    pointer: &str,
    source: &Source,
    columns: &dyn ColumnCatalog,
    sensitivity: &dyn Sensitivity,
) {
    match source {
        Source::Column(t, c) => out.push(origin(pointer, t, c, true, sensitivity)),
        Source::AnyOf(t) => match columns.columns(t) {
            Some(cols) => {
                for c in cols {
                    out.push(origin(pointer, t, &c, true, sensitivity));
                }
            }
            None => out.push(FieldOrigin::derived_from(
                pointer,
                FieldPath::new([t.schema.as_str(), t.table.as_str()]),
            )),
        },
    }
}

/// The masking field of a result column the driver names: `schema.table.column`
/// (schema up to the first dot, column after the last, the table in
/// between), as the three segments rules match. Anything shorter is split
/// at its dots (name rules still see the last part).
pub fn column_field(origin: &str) -> FieldPath {
    match (origin.split_once('.'), origin.rsplit_once('.')) {
        (Some((schema, _)), Some((_, column)))
            if schema.len() + column.len() + 2 <= origin.len() =>
        {
            let table = &origin[schema.len() + 1..origin.len() - column.len() - 1];
            FieldPath::new([schema, table, column])
        }
        _ => FieldPath::new(origin.split('.')),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_fields_are_schema_table_column() {
        let f = |o: &str| column_field(o).segments().to_vec();
        assert_eq!(
            f("public.customers.email"),
            ["public", "customers", "email"]
        );
        // A table name holding a dot stays one segment.
        assert_eq!(f("main.odd.name.note"), ["main", "odd.name", "note"]);
        assert_eq!(f("lonely"), ["lonely"]);
        assert_eq!(f("two.parts"), ["two", "parts"]);
    }
}
