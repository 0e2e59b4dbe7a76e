//! SQL analysis: what will this SQL really do?
//!
//! [`analyse`] parses the `sql` argument with sqlparser in the connection's
//! dialect and walks every statement the database would run — nested ones
//! included: CTE bodies (also data-modifying ones), subqueries anywhere,
//! `INSERT ... SELECT`, `EXPLAIN` targets, `PREPARE` bodies — into Cedar
//! access requests, one per (statement, table, action).
//!
//! Modules: [`guard`] checks the raw text (what the parser would not see),
//! `walk` is the single AST pass, `classify` maps statement types to
//! actions, `names` folds identifiers into `schema.table` (through a
//! [`catalog`] snapshot on PostgreSQL when there is one), `functions` holds
//! the vetted built-ins, `rewrite` qualifies every name in the executed text.
//!
//! Invariants:
//! * Fail closed: anything not understood is an [`AnalysisError::Unanalysable`]
//!   whose reason tells the agent what to change.
//! * What was analysed is what runs: [`AnalysedStatement::sql`] is the
//!   printed text of the parsed statement with every name qualified as policy
//!   saw it, proven to parse back to that same single statement (comments,
//!   hidden or not, are gone from it).
//! * Nothing here performs I/O.

pub mod catalog;
mod classify;
mod functions;
pub mod guard;
pub mod lineage;
mod names;
mod rewrite;
mod walk;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use gateway_core::access::{AccessRequest, ContextValue, Resource};
use gateway_core::connector::AnalysisError;
use sqlparser::ast::Statement;
use sqlparser::dialect::{MySqlDialect, PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;

use crate::vocabulary;
use names::Resolver;
use walk::{Action, Kind, Walk};

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
    /// update, delete, merge, ddl, admin. A SELECT whose CTE writes takes the
    /// kind of that write; `EXPLAIN x` takes the kind of `x`; `SELECT INTO` is ddl.
    pub kind: String,
    /// More specific description, e.g. `create table as`, `explain analyze`,
    /// `copy program (runs a shell command on the server)`.
    pub detail: String,
    /// Every table the statement reads or writes (nested ones included).
    pub tables: BTreeSet<TableRef>,
    /// Whether the writing part has a WHERE clause (true for plain SELECT and
    /// INSERT). False when some UPDATE/DELETE has no WHERE or one that does
    /// not depend on the row (`WHERE 1=1`, `WHERE true OR ...`), and for TRUNCATE.
    pub has_where: bool,
    /// Every function called anywhere, lower-cased, schema-qualified names as written.
    pub functions: BTreeSet<String>,
    /// True when nothing in the statement writes (no data-modifying CTE, no
    /// `FOR UPDATE`/`FOR SHARE`, no `SELECT INTO`, no DDL, no admin except SHOW).
    pub read_only: bool,
    /// Running it may leave state in the database session beyond its
    /// transaction (settings, locks, temporary objects, user variables...):
    /// the executor must not hand the session to another call unchanged.
    pub touches_session: bool,
    /// The SQL that will be executed: the canonical text of the parsed
    /// statement with every name qualified as policy saw it.
    pub sql: String,
    /// Which source columns each output column is computed from, and every
    /// column read (see [`lineage`]); a `*` expands from the connection's
    /// column lists when it has them (else its width is unknown).
    pub lineage: lineage::Lineage,
}

/// The analysis of a whole `sql` argument.
#[derive(Debug, Clone)]
pub struct SqlAnalysis {
    /// Some unqualified name was not in the catalog snapshot (it took the
    /// static rule): the snapshot may be stale.
    pub missed_catalog: bool,
    /// Statements in order.
    pub statements: Vec<AnalysedStatement>,
    /// Access requests, one per (statement, table, action); for a statement
    /// with no table, one on the Connection.
    pub requests: Vec<AccessRequest>,
}

/// Analyse `sql` for connection `connection` whose unqualified tables live in
/// `default_schema` (the static rule, without a catalog snapshot).
pub fn analyse(
    dialect: Dialect,
    connection: &str,
    default_schema: &str,
    sql: &str,
) -> Result<SqlAnalysis, AnalysisError> {
    analyse_with(dialect, connection, default_schema, None, &(), sql)
}

/// Analyse `sql`, resolving unqualified PostgreSQL names through `catalog`
/// when given (see [`catalog`]) and expanding `*` in column lineage from
/// `columns`.
///
/// Statements are analysed in order. Any statement that cannot be analysed
/// denies the whole call.
///
/// Runs on a stack of [`ANALYSIS_STACK`] bytes, allocated when the caller's
/// has less left than the text could need (a 2 MiB tokio worker, text over a
/// few hundred bytes; about 20 µs): the walk refuses nesting deeper
/// than its limit, but the parsed tree up to that limit is still cloned,
/// compared and dropped recursively — and a refused one can be far deeper
/// (a 256 KiB `1+1+...` chain), only dropped.
pub fn analyse_with(
    dialect: Dialect,
    connection: &str,
    default_schema: &str,
    catalog: Option<&catalog::NameCatalog>,
    columns: &dyn lineage::ColumnCatalog,
    sql: &str,
) -> Result<SqlAnalysis, AnalysisError> {
    // A tree is at most one level deeper per byte of text (`1!!!...`): short
    // text runs on the caller's stack when it has room, longer text on its own.
    let need = sql
        .len()
        .saturating_mul(STACK_PER_BYTE)
        .saturating_add(256 * 1024)
        .min(ANALYSIS_STACK);
    stacker::maybe_grow(need, ANALYSIS_STACK, || {
        analyse_on_stack(dialect, connection, default_schema, catalog, columns, sql)
    })
}

/// Stack one level of the tree may take (a debug build's frames; release
/// ones are smaller).
const STACK_PER_BYTE: usize = 8 * 1024;

/// Stack that analysis runs on: twice what the deepest input the limits let
/// through needs in a debug build (16 MiB; release frames are smaller).
/// Pages of it that are not touched cost no memory.
pub const ANALYSIS_STACK: usize = 32 * 1024 * 1024;

fn analyse_on_stack(
    dialect: Dialect,
    connection: &str,
    default_schema: &str,
    catalog: Option<&catalog::NameCatalog>,
    columns: &dyn lineage::ColumnCatalog,
    sql: &str,
) -> Result<SqlAnalysis, AnalysisError> {
    let deny = AnalysisError::Unanalysable;
    guard::check(dialect, sql).map_err(deny)?;
    let mut parsed =
        parse(dialect, sql).map_err(|e| deny(guard::explain_parse_error(dialect, sql, &e)))?;
    if parsed.is_empty() {
        return Err(deny(
            "no SQL statement found (only comments or semicolons?); send at least one statement"
                .into(),
        ));
    }
    let missed = std::cell::Cell::new(false);
    let resolver = Resolver::new(dialect, default_schema, catalog, &missed);
    let many = parsed.len() > 1;
    let mut analysis = SqlAnalysis {
        missed_catalog: false,
        statements: Vec::with_capacity(parsed.len()),
        requests: Vec::new(),
    };
    let count = parsed.len();
    // What earlier statements that may leave data behind (writes, session
    // state) read: later results may carry it (see `Lineage::carry`).
    let mut carried = std::collections::BTreeSet::new();
    for (i, statement) in parsed.iter_mut().enumerate() {
        let at = |reason: String| {
            if many {
                deny(format!("statement {} of {count}: {reason}", i + 1))
            } else {
                deny(reason)
            }
        };
        let mut walk = Walk::new(resolver).run(statement).map_err(at)?;
        if walk.changes_resolution && i + 1 < count {
            return Err(at(
                "this statement changes how later table names resolve (USE, SET search_path, ATTACH, set_config); send it in a call of its own"
                    .into(),
            ));
        }
        std::mem::take(&mut walk.rewrites)
            .apply(statement)
            .map_err(at)?;
        let executed = canonical(dialect, statement).map_err(at)?;
        guard::check_executed(&executed).map_err(at)?;
        let mut lineage = lineage::lineage(statement, resolver, columns);
        lineage.carry(&carried);
        let analysed = summarise(&walk, executed, lineage);
        if !analysed.read_only || analysed.touches_session {
            carried.extend(analysed.lineage.reads.iter().cloned());
        }
        push_requests(&mut analysis.requests, connection, &analysed, walk.accesses);
        analysis.statements.push(analysed);
    }
    analysis.missed_catalog = missed.get();
    Ok(analysis)
}

/// Parse in the connection's dialect; the error is sqlparser's message (with line and column).
pub(crate) fn parse(dialect: Dialect, sql: &str) -> Result<Vec<Statement>, String> {
    let result = match dialect {
        Dialect::Postgres => Parser::parse_sql(&PostgreSqlDialect {}, sql),
        Dialect::MySql => Parser::parse_sql(&MySqlDialect {}, sql),
        Dialect::Sqlite => Parser::parse_sql(&SQLiteDialect {}, sql),
    };
    result.map_err(|e| e.to_string())
}

/// The text the driver will run for `statement`, proven to mean the same:
/// it must parse back (in the same dialect) to exactly one statement equal to
/// `statement`. A printer that loses an escape (`[x]]` written back as
/// `[x]`, a quote in a name) would otherwise hand the database different SQL
/// than policy saw.
fn canonical(dialect: Dialect, statement: &Statement) -> Result<String, String> {
    let text = statement.to_string();
    match parse(dialect, &text) {
        Ok(again) if again.len() == 1 && again[0] == *statement => Ok(text),
        _ => Err("this statement cannot be written back unambiguously (a quoted name or string holds its own quote or bracket?); rewrite it with plain names and standard string literals".into()),
    }
}

fn summarise(walk: &Walk<'_>, sql: String, lineage: lineage::Lineage) -> AnalysedStatement {
    let base = walk.kinds.first().copied().unwrap_or(Kind::Select);
    let nested_write = walk
        .kinds
        .iter()
        .skip(1)
        .copied()
        .find(|k| *k != Kind::Select);
    let kind = match (base, nested_write) {
        (Kind::Select, Some(k)) => k,
        _ => base,
    };
    // "explain analyze" + "delete" -> "explain analyze delete"; otherwise the outermost detail.
    let mut detail = match walk.details.as_slice() {
        [first, second, ..] if first.starts_with("explain") => format!("{first} {second}"),
        [first, ..] => (*first).to_string(),
        [] => "select".to_string(),
    };
    if base == Kind::Select && nested_write.is_some() {
        detail = format!("{detail} with nested {}", kind.as_str());
    }
    let touches_session = walk.calls
        || walk.user_variables
        || walk
            .kinds
            .iter()
            .any(|k| matches!(k, Kind::Admin | Kind::Ddl));
    AnalysedStatement {
        kind: kind.as_str().to_string(),
        detail,
        tables: walk.tables.clone(),
        has_where: !walk.unfiltered,
        functions: walk.functions.clone(),
        read_only: !walk.writes,
        touches_session,
        sql,
        lineage,
    }
}

fn push_requests(
    out: &mut Vec<AccessRequest>,
    connection: &str,
    statement: &AnalysedStatement,
    mut accesses: Vec<(Action, Option<TableRef>)>,
) {
    if accesses.iter().all(|(a, _)| *a == Action::Call) {
        // A statement with no table (SELECT 1, SELECT pg_sleep(1)): the connection.
        accesses.insert(0, (Action::Select, None));
    }
    let mut context = BTreeMap::new();
    context.insert(
        "statement".to_string(),
        ContextValue::String(statement.sql.clone()),
    );
    context.insert(
        "has_where".to_string(),
        ContextValue::Bool(statement.has_where),
    );
    context.insert(
        "tables".to_string(),
        ContextValue::StringSet(statement.tables.iter().map(TableRef::qualified).collect()),
    );
    context.insert(
        "functions".to_string(),
        ContextValue::StringSet(statement.functions.clone()),
    );
    context.insert(
        "columns".to_string(),
        ContextValue::StringSet(statement.lineage.read_columns()),
    );
    for (action, table) in accesses {
        let resource = match (action, table) {
            (Action::Call, Some(f)) => vocabulary::function(connection, &f.schema, &f.table),
            (_, Some(t)) => vocabulary::table(connection, &t.schema, &t.table),
            (_, None) => Resource::connection(connection),
        };
        out.push(AccessRequest {
            action: action.id().to_string(),
            resource,
            context: context.clone(),
        });
    }
}

impl TableRef {
    /// `schema.table`, as in the `tables` context set.
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }
}
