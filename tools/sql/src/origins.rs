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

use std::collections::{BTreeMap, BTreeSet};

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
    /// Views whose definition could not be read or parsed: every masking
    /// rule of the connection meets their columns.
    opaque: BTreeSet<TableRef>,
}

impl ColumnLists {
    /// From a `sql_schema` result (`{tables: [{schema, name, columns: [{name}]}]}`).
    pub fn from_schema(schema: &Value, fold: bool) -> Self {
        let tables = crate::listing::tables(schema)
            .map(|t| {
                let columns = t.columns.iter().map(|(c, _)| fold_name(c, fold)).collect();
                (table_ref(&t, fold), columns)
            })
            .collect();
        ColumnLists {
            tables,
            views: BTreeMap::new(),
            opaque: BTreeSet::new(),
        }
    }

    /// The views among the tables of a `sql_schema` result (`kind: "view"`),
    /// keyed as [`ColumnLists::from_schema`] keys them.
    pub fn views_in(schema: &Value, fold: bool) -> Vec<TableRef> {
        crate::listing::tables(schema)
            .filter(|t| t.kind == "view")
            .map(|t| table_ref(&t, fold))
            .collect()
    }

    /// Add view definitions (keys folded as in [`ColumnLists::from_schema`]),
    /// so lineage follows the views to their tables.
    pub fn with_views(mut self, views: Vec<crate::engine::ViewDefinition>, fold: bool) -> Self {
        for v in views {
            let view = TableRef {
                schema: fold_name(&v.schema, fold),
                table: fold_name(&v.name, fold),
            };
            self.views.insert(view, v.sql);
        }
        self
    }

    /// Record as opaque each of `views` (from [`ColumnLists::views_in`])
    /// whose definition is missing or does not parse in `dialect`.
    pub fn mark_opaque_views(&mut self, views: Vec<TableRef>, dialect: crate::analysis::Dialect) {
        for v in views {
            let parses = self
                .views
                .get(&v)
                .is_some_and(|d| crate::analysis::parse(dialect, d).is_ok_and(|p| p.len() == 1));
            if !parses {
                self.opaque.insert(v);
            }
        }
    }

    /// True when the lists hold `table`.
    pub fn knows(&self, table: &TableRef) -> bool {
        self.tables.contains_key(table)
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

/// A name as the lists key it: folded to lower case where the database
/// compares names so (MySQL, SQLite).
fn fold_name(s: &str, fold: bool) -> String {
    if fold {
        s.to_lowercase()
    } else {
        s.to_string()
    }
}

fn table_ref(t: &crate::listing::ListedTable<'_>, fold: bool) -> TableRef {
    TableRef {
        schema: fold_name(t.schema, fold),
        table: fold_name(t.name, fold),
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
    columns: &ColumnLists,
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
                opaque_view(&mut out, &pointer, t, columns);
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
    columns: &ColumnLists,
    sensitivity: &dyn Sensitivity,
) {
    match source {
        Source::Column(t, c) => {
            out.push(origin(pointer, t, c, true, sensitivity));
            opaque_view(out, pointer, t, columns);
        }
        Source::AnyOf(t) => {
            match columns.columns(t) {
                Some(cols) => {
                    for c in cols {
                        out.push(origin(pointer, t, &c, true, sensitivity));
                    }
                }
                None => out.push(FieldOrigin::derived_from(
                    pointer,
                    FieldPath::new([t.schema.as_str(), t.table.as_str()]),
                )),
            }
            opaque_view(out, pointer, t, columns);
        }
    }
}

/// A view the lineage could not follow (its definition could not be read
/// or parsed) may hold any column of the connection: an empty field, below
/// which every rule of the connection lies. Views lineage follows need
/// nothing here: their columns' sources are the tables under them.
fn opaque_view(out: &mut Vec<FieldOrigin>, pointer: &str, t: &TableRef, columns: &ColumnLists) {
    if columns.opaque.contains(t) {
        out.push(FieldOrigin::derived_from(
            pointer,
            FieldPath::new(std::iter::empty::<&str>()),
        ));
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
    use serde_json::json;

    use super::*;
    use crate::analysis::{self, Dialect};

    fn lists() -> ColumnLists {
        ColumnLists::from_schema(
            &json!({"tables": [
                {"schema": "main", "name": "Customers", "columns": [
                    {"name": "id"}, {"name": "email"}, {"name": "ssn"}, {"name": "city"}]},
                {"schema": "main", "name": "orders", "columns": [{"name": "id"}, {"name": "amount"}]}
            ]}),
            true,
        )
    }

    /// `(pointer, field, derived)` of every origin of `sql`'s result.
    fn origins_of(sql: &str, width: usize, columns: &ColumnLists) -> Vec<(String, String, bool)> {
        let a = analysis::analyse_with(Dialect::Sqlite, "demo", "main", None, columns, sql)
            .expect("analyses");
        let lineage = &a.statements[0].lineage;
        result_origins(lineage, width, &vec![None; width], columns, &())
            .into_iter()
            .map(|o| (o.pointer, o.field.to_string(), o.derived))
            .collect()
    }

    fn o(i: usize, field: &str, derived: bool) -> (String, String, bool) {
        (format!("/rows/*/{i}"), field.to_string(), derived)
    }

    #[test]
    fn computed_columns_are_derived_from_what_they_read() {
        let got = origins_of(
            "SELECT replace(email,'@',' at '), hex(email), substr(ssn,1,3)||'+'||substr(ssn,5), city, count(ssn) FROM customers",
            5,
            &lists(),
        );
        assert_eq!(
            got,
            vec![
                o(0, "main.customers.email", true),
                o(1, "main.customers.email", true),
                o(2, "main.customers.ssn", true),
                o(3, "main.customers.city", false),
            ],
            "count(ssn) reveals no value and has no origin"
        );
    }

    #[test]
    fn star_expands_from_the_lists_and_unknown_width_widens() {
        let got = origins_of("SELECT * FROM customers", 4, &lists());
        assert_eq!(
            got,
            vec![
                o(0, "main.customers.id", false),
                o(1, "main.customers.email", false),
                o(2, "main.customers.ssn", false),
                o(3, "main.customers.city", false),
            ]
        );
        // Without lists, every column of the result is derived from the table.
        let got = origins_of("SELECT * FROM customers", 4, &ColumnLists::default());
        assert_eq!(got.len(), 4, "{got:?}");
        assert!(
            got.iter().all(|(_, f, d)| f == "main.customers" && *d),
            "{got:?}"
        );
        // A result wider than the lineage (a column added since the lists
        // were read): every column depends on every source.
        let got = origins_of("SELECT * FROM customers", 5, &lists());
        assert_eq!(got.len(), 5 * 4, "{got:?}");
        assert!(got.iter().all(|(_, _, d)| *d));
    }

    #[test]
    fn classification_marks_the_origin_and_the_driver_only_widens() {
        struct Classified;
        impl Sensitivity for Classified {
            fn classified(&self, _: &str, table: &str, column: &str) -> Option<String> {
                (table == "customers" && column == "email").then(|| "EMAIL".into())
            }
        }
        let a = analysis::analyse_with(
            Dialect::Sqlite,
            "demo",
            "main",
            None,
            &lists(),
            "SELECT upper(email) AS e, id FROM customers",
        )
        .unwrap();
        let driver = vec![None, Some("main.customers.id".to_string())];
        let got = result_origins(&a.statements[0].lineage, 2, &driver, &lists(), &Classified);
        assert_eq!(
            got.len(),
            2,
            "the driver's origin equal to the lineage's is not repeated: {got:?}"
        );
        assert_eq!(got[0].sensitive.as_deref(), Some("EMAIL"));
        assert!(got[0].derived && !got[1].derived);
    }

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

    #[test]
    fn views_resolve_to_the_columns_under_them_and_opaque_views_meet_every_rule() {
        let schema = json!({"tables": [
            {"schema": "main", "name": "customers", "kind": "table", "columns": [
                {"name": "id"}, {"name": "email"}, {"name": "ssn"}]},
            {"schema": "main", "name": "contacts", "kind": "view", "columns": [
                {"name": "who"}, {"name": "mail"}]},
            {"schema": "main", "name": "mailing", "kind": "view", "columns": [{"name": "m"}]},
            {"schema": "main", "name": "opaque", "kind": "view", "columns": [{"name": "x"}]},
            {"schema": "main", "name": "unread", "kind": "view", "columns": [{"name": "y"}]}
        ]});
        let def = |name: &str, sql: &str| crate::engine::ViewDefinition {
            schema: "main".into(),
            name: name.into(),
            sql: sql.into(),
        };
        let mut lists = ColumnLists::from_schema(&schema, true).with_views(
            vec![
                def(
                    "contacts",
                    "CREATE VIEW contacts AS SELECT id AS who, lower(email) AS mail FROM customers",
                ),
                def(
                    "mailing",
                    "CREATE VIEW mailing AS SELECT upper(mail) AS m FROM contacts",
                ),
                def("opaque", "this is not SQL"),
            ],
            true,
        );
        let views = ColumnLists::views_in(&schema, true);
        assert_eq!(views.len(), 4);
        lists.mark_opaque_views(views, Dialect::Sqlite);
        // A view over a view over the table: the email is found two levels down.
        let got = origins_of("SELECT m FROM mailing", 1, &lists);
        assert!(got.contains(&o(0, "main.customers.email", true)), "{got:?}");
        assert!(!got.contains(&o(0, "", true)), "{got:?}");
        let got = origins_of("SELECT * FROM contacts", 2, &lists);
        assert!(got.contains(&o(1, "main.customers.email", true)), "{got:?}");
        assert!(
            !got.iter()
                .any(|(p, f, _)| p == "/rows/*/0" && f.ends_with("email")),
            "{got:?}"
        );
        // A view whose definition does not parse, or could not be read:
        // an empty field, below which every rule lies.
        for sql in ["SELECT x FROM opaque", "SELECT upper(y) FROM unread"] {
            let got = origins_of(sql, 1, &lists);
            assert!(got.contains(&o(0, "", true)), "{sql}: {got:?}");
        }
    }
}
