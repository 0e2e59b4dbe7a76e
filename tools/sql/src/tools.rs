//! The two tools every SQL connection serves, as the agent sees them: names
//! and argument names fixed by the public contract, descriptions, and JSON
//! Schemas for input and output.

use gateway_core::connector::ToolSpec;
use serde_json::{Map, Value, json};

/// `sql_query`.
pub const SQL_QUERY: &str = "sql_query";
/// `sql_schema`.
pub const SQL_SCHEMA: &str = "sql_schema";

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Tool specs of a SQL connection.
pub fn specs() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: SQL_QUERY.into(),
            description: "Run SQL on a configured database connection, with the server's credentials, \
subject to policy (and possibly human approval). `sql` may hold several statements separated by `;`: \
they run in order in ONE transaction, all or nothing (any error rolls everything back). The result is \
the row set of the last statement that returned rows (SELECT, or INSERT/UPDATE/DELETE ... RETURNING); \
when no statement returns rows, `columns` and `rows` are empty and `row_count` is the number of rows \
affected by the last statement. `params` are bound, never interpolated: use $1, $2 ... (PostgreSQL) or \
? (MySQL, SQLite); each statement binds the first N params, N being its own placeholder count. Values \
come back typed: integers and floats as numbers, exact decimals as strings when a number would lose \
precision, timestamps as RFC 3339 (UTC with Z for time-zone-aware types), binary as base64, JSON as \
JSON, arrays as arrays. At most `max_rows` rows (default: the connection's cap, which this argument \
may only lower) and a byte cap are returned; `truncated` says when a cap cut the result. \
`statements` lists each statement's kind, tables and the canonical SQL that ran. Read-only calls run in a read-only transaction."
                .into(),
            input_schema: obj(json!({
                "type": "object",
                "properties": {
                    "connection": {"type": "string", "description": "Connection name (see list_connections)."},
                    "sql": {"type": "string", "minLength": 1, "description": "SQL text; one or more statements separated by `;`."},
                    "params": {
                        "type": "array",
                        "description": "Positional parameters for $1.. / ? placeholders. JSON null, booleans, numbers, strings (timestamps RFC 3339, dates YYYY-MM-DD, uuid, bytea as base64, numeric as string for exactness), arrays and objects (json/jsonb).",
                        "items": {}
                    },
                    "max_rows": {"type": "integer", "minimum": 1, "description": "Return at most this many rows; may only lower the connection's configured cap."}
                },
                "required": ["connection", "sql"],
                "additionalProperties": false
            })),
            output_schema: obj(json!({
                "type": "object",
                "properties": {
                    "columns": {"type": "array", "items": {
                        "type": "object",
                        "properties": {"name": {"type": "string"}, "type": {"type": "string", "description": "Database type name."}},
                        "required": ["name", "type"]
                    }},
                    "rows": {"type": "array", "items": {"type": "array"}},
                    "row_count": {"type": "integer", "minimum": 0, "description": "Rows returned; for a call with no row set, rows affected by the last statement."},
                    "truncated": {"type": "boolean", "description": "True when the row or byte cap cut the result."},
                    "statements": {"type": "array", "items": {
                        "type": "object",
                        "properties": {
                            "kind": {"type": "string"},
                            "tables": {"type": "array", "items": {"type": "string"}},
                            "sql": {"type": "string", "description": "The statement as Tollgate parsed and ran it (canonical text; comments are never sent)."}
                        },
                        "required": ["kind", "tables"]
                    }}
                },
                "required": ["columns", "rows", "row_count", "truncated", "statements"]
            })),
            read_only: false,
        },
        ToolSpec {
            name: SQL_SCHEMA.into(),
            description: "List the tables (and views) of a database connection with their columns: name, \
database type, nullability and primary-key membership, and `classified` (a type such as EMAIL) on columns found to hold sensitive values, which come back masked. Without `schema`, PostgreSQL lists every \
non-system schema, MySQL the connection's database and SQLite `main`. `table` narrows to one table. \
Needs permission to connect; it reads the catalog, never table data, and lists only the tables you may \
`sql:select` (others are left out as if they did not exist)."
                .into(),
            input_schema: obj(json!({
                "type": "object",
                "properties": {
                    "connection": {"type": "string", "description": "Connection name (see list_connections)."},
                    "schema": {"type": "string", "description": "Only this schema (PostgreSQL schema, MySQL database, SQLite `main`)."},
                    "table": {"type": "string", "description": "Only this table."}
                },
                "required": ["connection"],
                "additionalProperties": false
            })),
            output_schema: obj(json!({
                "type": "object",
                "properties": {
                    "tables": {"type": "array", "items": {
                        "type": "object",
                        "properties": {
                            "schema": {"type": "string"},
                            "name": {"type": "string"},
                            "kind": {"type": "string", "description": "table or view"},
                            "columns": {"type": "array", "items": {
                                "type": "object",
                                "properties": {
                                    "name": {"type": "string"},
                                    "type": {"type": "string"},
                                    "nullable": {"type": "boolean"},
                                    "primary_key": {"type": "boolean"},
                                    "classified": {"type": "string", "description": "Present when sampling found the column holds values of this sensitive type (EMAIL, US_SSN...): its values, and every value computed from it, come back masked."}
                                },
                                "required": ["name", "type", "nullable", "primary_key"]
                            }}
                        },
                        "required": ["schema", "name", "kind", "columns"]
                    }}
                },
                "required": ["tables"]
            })),
            read_only: true,
        },
    ]
}
