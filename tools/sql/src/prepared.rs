//! The connector-private prepared form of a call ([`gateway_core::Plan::prepared`]):
//! exactly what `execute` runs, fixed at analysis time so the SQL that policy
//! saw is the SQL that executes.

use serde_json::Value;

/// One statement to run: its canonical SQL as the analysis printed it.
#[derive(Debug, Clone)]
pub struct PreparedStatement {
    /// Statement kind (select, insert, ddl...).
    pub kind: String,
    /// `schema.table` of every table it touches.
    pub tables: Vec<String>,
    /// Canonical SQL text, every name qualified as policy saw it.
    pub sql: String,
    /// Running it may leave state in the database session beyond its
    /// transaction (settings, locks, temporary objects, user variables, a
    /// function Tollgate cannot see into): the engine resets or closes the
    /// session afterwards instead of handing it to the next call as it is.
    pub touches_session: bool,
    /// Which source columns each output column is computed from (masking
    /// follows it through every expression).
    pub lineage: std::sync::Arc<crate::analysis::lineage::Lineage>,
}

impl QueryCall {
    /// Some statement of the call may leave state in the session.
    pub fn touches_session(&self) -> bool {
        self.statements.iter().any(|s| s.touches_session)
    }
}

/// A prepared `sql_query` call.
#[derive(Debug, Clone)]
pub struct QueryCall {
    /// Statements, run in order inside one transaction.
    pub statements: Vec<PreparedStatement>,
    /// Positional parameters, bound (never interpolated). Every statement
    /// binds the first N of them, N being its own placeholder count.
    pub params: Vec<Value>,
    /// Per-call row cap; only ever lowers the configured one.
    pub max_rows: Option<u64>,
    /// Run behind the database's read-only wall.
    pub read_only: bool,
    /// Cap on the rows the call may change (set at execution from policy and
    /// the connection's `max_affected_rows`); see [`crate::affected`].
    pub max_affected: Option<gateway_core::connector::AffectedLimit>,
}

/// A prepared `sql_schema` call.
#[derive(Debug, Clone, Default)]
pub struct SchemaCall {
    /// Only this schema (default: the connection's default schema).
    pub schema: Option<String>,
    /// Only this table.
    pub table: Option<String>,
}

/// What [`gateway_core::Plan::prepared`] holds for SQL connections.
#[derive(Debug, Clone)]
pub enum SqlCall {
    /// `sql_query`.
    Query(QueryCall),
    /// `sql_schema`.
    Schema(SchemaCall),
}
