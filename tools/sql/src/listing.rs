//! Reading a `sql_schema` result (`{tables: [{schema, name, kind, columns:
//! [{name, type}]}]}`), the one listing of tables and views the connection
//! reads back for column lists and classification.

use serde_json::Value;

/// One table or view of a listing, borrowed from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedTable<'a> {
    /// Schema, as the database spells it.
    pub schema: &'a str,
    /// Table or view name.
    pub name: &'a str,
    /// `table` or `view` (empty when absent).
    pub kind: &'a str,
    /// Column names and database type names, in table order.
    pub columns: Vec<(&'a str, &'a str)>,
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// The tables of a listing, in order; entries without a schema or name are skipped.
pub fn tables(listing: &Value) -> impl Iterator<Item = ListedTable<'_>> {
    listing
        .get("tables")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| {
            Some(ListedTable {
                schema: str_of(t, "schema")?,
                name: str_of(t, "name")?,
                kind: str_of(t, "kind").unwrap_or_default(),
                columns: t
                    .get("columns")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|c| {
                        Some((str_of(c, "name")?, str_of(c, "type").unwrap_or_default()))
                    })
                    .collect(),
            })
        })
}
