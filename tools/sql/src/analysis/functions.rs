//! Functions are default-deny: what a function call turns into for policy.
//!
//! Each dialect has a vetted list of side-effect-free built-ins (`vetted/*.txt`,
//! one name per line with the reason for the list at the top). A call of one of
//! them, unqualified (or qualified with `pg_catalog` on PostgreSQL), needs no
//! request of its own: it computes a value from its arguments. Every other
//! function — user-defined, extension, procedural, and built-ins that write,
//! lock, notify, sleep, read files or change settings — yields a `sql:call`
//! request on `Tollgate::Function::"<connection>/<schema>.<name>"`.
//!
//! Built-ins that read a relation named by an argument are a third kind
//! ([`relation_argument`]): with a string literal there, the call is a
//! `sql:select` on that table (and the literal is rewritten to the qualified
//! name policy saw); with anything else the call is denied.
//!
//! Resolution of an unqualified function that is not vetted: PostgreSQL
//! `pg_*` names (and the few other built-ins listed here) live in
//! `pg_catalog`, everything else in the connection's default schema. On
//! PostgreSQL every executed call is qualified with the schema policy saw —
//! vetted built-ins as `pg_catalog.name` (except grammar forms such as
//! `coalesce`), since a user function with a better-matching signature
//! elsewhere on the search path would otherwise win. MySQL and SQLite calls are
//! not rewritten: MySQL resolves built-in names to the built-in and other
//! names in the current database (pinned: `USE` runs alone and closes its
//! session); SQLite functions have no schema.

use std::collections::HashSet;
use std::sync::OnceLock;

use super::Dialect;

const POSTGRES: &str = include_str!("vetted/postgres.txt");
const MYSQL: &str = include_str!("vetted/mysql.txt");
const SQLITE: &str = include_str!("vetted/sqlite.txt");

fn parse_list(text: &'static str) -> HashSet<&'static str> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .flat_map(str::split_whitespace)
        .collect()
}

fn list(dialect: Dialect) -> &'static HashSet<&'static str> {
    static PG: OnceLock<HashSet<&'static str>> = OnceLock::new();
    static MY: OnceLock<HashSet<&'static str>> = OnceLock::new();
    static LITE: OnceLock<HashSet<&'static str>> = OnceLock::new();
    match dialect {
        Dialect::Postgres => PG.get_or_init(|| parse_list(POSTGRES)),
        Dialect::MySql => MY.get_or_init(|| parse_list(MYSQL)),
        Dialect::Sqlite => LITE.get_or_init(|| parse_list(SQLITE)),
    }
}

/// Is `name` (lower case, unqualified) a vetted side-effect-free built-in?
pub(crate) fn is_vetted(dialect: Dialect, name: &str) -> bool {
    list(dialect).contains(name)
}

/// PostgreSQL forms that look like calls but are grammar (`coalesce(...)`,
/// `json_array(...)`): they cannot be schema-qualified, and no user function
/// can take their place.
pub(crate) fn is_syntax(name: &str) -> bool {
    matches!(
        name,
        "coalesce"
            | "nullif"
            | "greatest"
            | "least"
            | "grouping"
            | "array"
            | "row"
            | "json_array"
            | "json_arrayagg"
            | "json_objectagg"
            | "json_object"
            | "json_scalar"
            | "json_serialize"
            | "current_date"
            | "current_time"
            | "current_timestamp"
            | "localtime"
            | "localtimestamp"
            | "current_user"
            | "session_user"
            | "user"
            | "current_role"
            | "current_catalog"
            | "current_schema"
    )
}

/// For a built-in that reads the relation named by one of its arguments:
/// the index of that argument (PostgreSQL only).
pub(crate) fn relation_argument(dialect: Dialect, name: &str) -> Option<usize> {
    match (dialect, name) {
        (
            Dialect::Postgres,
            "table_to_xml"
            | "table_to_xmlschema"
            | "table_to_xml_and_xmlschema"
            | "pg_relation_size"
            | "pg_total_relation_size"
            | "pg_table_size"
            | "pg_indexes_size",
        ) => Some(0),
        _ => None,
    }
}

/// Functions whose call also changes how later names resolve or what later
/// statements run under (settings): `sql:admin` on the connection as well.
pub(crate) fn changes_settings(dialect: Dialect, name: &str) -> bool {
    dialect == Dialect::Postgres && name == "set_config"
}

/// Relations that expose values of other tables (planner statistics): reading
/// them is `sql:admin`, since policy cannot see whose values they reveal.
pub(crate) fn is_statistics_relation(dialect: Dialect, schema: &str, table: &str) -> bool {
    match dialect {
        Dialect::Postgres => {
            schema == "pg_catalog"
                && matches!(
                    table,
                    "pg_stats"
                        | "pg_statistic"
                        | "pg_stats_ext"
                        | "pg_stats_ext_exprs"
                        | "pg_statistic_ext_data"
                )
        }
        Dialect::MySql => matches!(
            (schema, table),
            ("information_schema", "column_statistics")
                | ("mysql", "column_stats")
                | ("mysql", "index_stats")
        ),
        Dialect::Sqlite => matches!(table, "sqlite_stat3" | "sqlite_stat4"),
    }
}

/// PostgreSQL built-ins without the `pg_` prefix that are not vetted (they
/// write, read settings or sequences, or run SQL text): they live in
/// `pg_catalog`, not in the default schema.
const POSTGRES_CATALOG_CALLS: &[&str] = &[
    "set_config",
    "current_setting",
    "nextval",
    "currval",
    "setval",
    "lastval",
    "setseed",
    "lo_creat",
    "lo_create",
    "lo_open",
    "lo_close",
    "lo_import",
    "lo_export",
    "lo_unlink",
    "lo_get",
    "lo_put",
    "lo_from_bytea",
    "lo_truncate",
    "lo_truncate64",
    "lo_lseek",
    "lo_lseek64",
    "lo_tell",
    "lo_tell64",
    "lowrite",
    "loread",
    "query_to_xml",
    "query_to_xmlschema",
    "query_to_xml_and_xmlschema",
    "cursor_to_xml",
    "cursor_to_xmlschema",
    "schema_to_xml",
    "schema_to_xmlschema",
    "schema_to_xml_and_xmlschema",
    "database_to_xml",
    "database_to_xmlschema",
    "database_to_xml_and_xmlschema",
    "ts_stat",
    "txid_current",
    "txid_current_if_assigned",
    "to_regclass",
    "to_regproc",
    "to_regtype",
    "obj_description",
    "col_description",
    "shobj_description",
    "format_type",
    "has_table_privilege",
    "has_column_privilege",
    "has_schema_privilege",
    "has_function_privilege",
    "has_database_privilege",
    "inet_client_addr",
    "inet_server_addr",
    "xmlparse",
    "xpath",
    "xpath_exists",
    "xmlelement",
    "xmlforest",
    "xmlagg",
    "xmlconcat",
    "xmlcomment",
    "xml_is_well_formed",
    "json_populate_record_valid",
];

/// The schema an unqualified, non-vetted function resolves to: PostgreSQL
/// built-ins (`pg_*` and [`POSTGRES_CATALOG_CALLS`]) in `pg_catalog`, other
/// PostgreSQL and MySQL functions in the default schema; SQLite functions have
/// no schema (`main`, whatever the connection's default).
pub(crate) fn default_function_schema(dialect: Dialect, name: &str, default: &str) -> String {
    match dialect {
        Dialect::Postgres if name.starts_with("pg_") || POSTGRES_CATALOG_CALLS.contains(&name) => {
            "pg_catalog".into()
        }
        Dialect::Sqlite => "main".into(),
        _ => default.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_and_keep_dangerous_names_out() {
        for d in [Dialect::Postgres, Dialect::MySql, Dialect::Sqlite] {
            assert!(is_vetted(d, "count"), "{d:?}");
            assert!(!is_vetted(d, "#"), "comments are not names");
            for bad in [
                "pg_read_file",
                "pg_sleep",
                "set_config",
                "lo_creat",
                "lowrite",
                "pg_notify",
                "pg_advisory_lock",
                "table_to_xml",
                "schema_to_xml",
                "query_to_xml",
                "nextval",
                "setval",
                "current_setting",
                "load_file",
                "sleep",
                "benchmark",
                "get_lock",
                "load_extension",
                "readfile",
                "writefile",
                "dblink",
                "setseed",
            ] {
                assert!(!is_vetted(d, bad), "{bad} must not be vetted on {d:?}");
            }
        }
    }
}
