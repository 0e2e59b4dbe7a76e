//! SQL analysis: what will this SQL really do? Parses with sqlparser in the
//! connection's dialect and walks every statement the database would run,
//! nested ones included, into Cedar access requests. (Stub API.)

use std::collections::BTreeSet;

use gateway_core::access::AccessRequest;
use gateway_core::connector::AnalysisError;

/// SQL dialect of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// PostgreSQL.
    Postgres,
    /// MySQL / MariaDB.
    MySql,
    /// SQLite.
    Sqlite,
}

impl Dialect {
    /// Default schema name when a table is not qualified (`public`, the
    /// database name for MySQL, `main` for SQLite).
    pub fn default_schema(self, database: &str) -> String {
        match self {
            Dialect::Postgres => "public".into(),
            Dialect::MySql => database.to_lowercase(),
            Dialect::Sqlite => "main".into(),
        }
    }
}

/// A table a statement touches, normalised: unquoted names folded to lower case.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableRef {
    /// Schema (default filled in).
    pub schema: String,
    /// Table name.
    pub table: String,
}

/// One top-level statement of a call, analysed.
#[derive(Debug, Clone)]
pub struct AnalysedStatement {
    /// Statement kind for the result's `statements` list: select, insert,
    /// update, delete, merge, ddl, admin ...
    pub kind: String,
    /// Every table the statement reads or writes (nested ones included).
    pub tables: BTreeSet<TableRef>,
    /// Whether the writing part has a WHERE clause (true for plain SELECT).
    pub has_where: bool,
    /// Every function called anywhere, lower-cased, schema-qualified names as written.
    pub functions: BTreeSet<String>,
    /// True when nothing in the statement writes.
    pub read_only: bool,
    /// The SQL that will be executed: the canonical text of the parsed statement.
    pub sql: String,
}

/// The analysis of a whole `sql` argument.
#[derive(Debug, Clone)]
pub struct SqlAnalysis {
    /// Statements in order.
    pub statements: Vec<AnalysedStatement>,
    /// Access requests, one per (statement, table, action); for a statement
    /// with no table, one on the Connection.
    pub requests: Vec<AccessRequest>,
}

/// Analyse `sql` for connection `connection` whose unqualified tables live in `default_schema`.
pub fn analyse(
    dialect: Dialect,
    connection: &str,
    default_schema: &str,
    sql: &str,
) -> Result<SqlAnalysis, AnalysisError> {
    let _ = (dialect, connection, default_schema, sql);
    Err(AnalysisError::Unanalysable(
        "SQL analysis not built yet".into(),
    ))
}
