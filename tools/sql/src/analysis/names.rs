//! Name resolution: turns the identifiers sqlparser gives us into the
//! normalised [`TableRef`]s and function names that policies match on.
//!
//! Folding follows what each database does when it resolves a name:
//! PostgreSQL folds unquoted identifiers to lower case (ASCII only, as the
//! server does for UTF-8 databases) and keeps quoted ones as written; MySQL
//! and SQLite compare table names case-insensitively on common setups, so
//! both quoted and unquoted names are folded. Function names are always
//! lower-cased (Unicode), so a policy on `pg_read_file` also matches
//! `"PG_READ_FILE"` or `Pg_Read_File` — erring towards matching more.
//!
//! Invariant: a name either resolves to exactly one `schema.table` or is an
//! error; nothing is silently dropped.

use sqlparser::ast::{Ident, ObjectName, ObjectNamePart};

use super::catalog::Lookup;
use super::{Dialect, TableRef};

/// Resolves names for one connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Resolver<'a> {
    pub dialect: Dialect,
    pub default_schema: &'a str,
    /// PostgreSQL: how the database resolves unqualified names, when known.
    pub lookup: Lookup<'a>,
}

impl<'a> Resolver<'a> {
    /// A resolver for `dialect` whose unqualified tables live in
    /// `default_schema`; a name `catalog` (PostgreSQL only) resolves them
    /// as the database would, recording a miss in `missed`.
    pub fn new(
        dialect: Dialect,
        default_schema: &'a str,
        catalog: Option<&'a super::catalog::NameCatalog>,
        missed: &'a std::cell::Cell<bool>,
    ) -> Self {
        Resolver {
            dialect,
            default_schema,
            lookup: super::catalog::Lookup {
                catalog: catalog.filter(|_| dialect == Dialect::Postgres),
                missed,
            },
        }
    }
}

impl Resolver<'_> {
    /// Fold one identifier the way the database resolves table names.
    pub fn fold(&self, ident: &Ident) -> String {
        match self.dialect {
            Dialect::Postgres if ident.quote_style.is_some() => ident.value.clone(),
            Dialect::Postgres | Dialect::Sqlite => ident.value.to_ascii_lowercase(),
            Dialect::MySql => ident.value.to_lowercase(),
        }
    }

    /// Resolve a table name of 1 to 3 parts.
    ///
    /// * `t` → on PostgreSQL with a catalog snapshot, the first schema of the
    ///   database's search path that holds `t` (see `catalog`); otherwise
    ///   `(default_schema, t)`, with an unqualified `pg_*` name in
    ///   `pg_catalog`, which the server searches first.
    /// * `s.t` → `(s, t)` (for SQLite `s` is the attached database name).
    /// * `db.s.t` → `(s, t)` on PostgreSQL only: one connection cannot reach
    ///   another database, the server rejects a different `db`. MySQL and
    ///   SQLite have no three-part names: denied.
    pub fn table(&self, parts: &[&Ident]) -> Result<TableRef, String> {
        let shown = || {
            parts
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(".")
        };
        let (schema, table) = match (parts, self.dialect) {
            ([t], Dialect::Postgres) => {
                let t = self.fold(t);
                let schema = self
                    .lookup
                    .resolve(|c| c.relation_schema(&t))
                    .unwrap_or_else(|| {
                        if t.starts_with("pg_") {
                            "pg_catalog".to_string()
                        } else {
                            self.default_schema.to_string()
                        }
                    });
                (schema, t)
            }
            ([t], _) => (self.default_schema.to_string(), self.fold(t)),
            ([s, t], _) => (self.fold(s), self.fold(t)),
            ([_db, s, t], Dialect::Postgres) => (self.fold(s), self.fold(t)),
            _ => {
                return Err(format!(
                    "table name {} has {} parts; use table or schema.table",
                    shown(),
                    parts.len()
                ));
            }
        };
        if table.is_empty() || schema.is_empty() {
            return Err(format!(
                "empty identifier in table name {}; name the table explicitly",
                shown()
            ));
        }
        Ok(TableRef { schema, table })
    }

    /// Resolve an [`ObjectName`] used as a table.
    pub fn object(&self, name: &ObjectName) -> Result<TableRef, String> {
        self.table(&idents(name)?)
    }

    /// The name `name` must execute as so that the database resolves exactly
    /// `table` whatever the session's search path (or SQLite's temp schema)
    /// holds. `None`: the name already resolves only to `table`.
    ///
    /// * PostgreSQL: always `"schema"."table"` (quoted, as folded).
    /// * SQLite: a one-part name gets `"main".` (the temp schema and attached
    ///   databases are searched before/after main for unqualified names).
    /// * MySQL: unchanged; the current database is pinned (`USE` runs alone
    ///   and closes its session) and temporary tables never outlive a call.
    pub fn qualified(&self, name: &ObjectName, table: &TableRef) -> Option<ObjectName> {
        match self.dialect {
            Dialect::Postgres => Some(ObjectName::from(vec![
                Ident::with_quote('"', table.schema.clone()),
                Ident::with_quote('"', table.table.clone()),
            ])),
            Dialect::Sqlite => match idents(name).ok()?.as_slice() {
                [only] => Some(ObjectName::from(vec![
                    Ident::with_quote('"', table.schema.clone()),
                    (*only).clone(),
                ])),
                _ => None,
            },
            Dialect::MySql => None,
        }
    }
}

/// The identifier parts of a name; dynamic parts (`IDENTIFIER(...)`) are refused.
pub(crate) fn idents(name: &ObjectName) -> Result<Vec<&Ident>, String> {
    name.0
        .iter()
        .map(|part| match part {
            ObjectNamePart::Identifier(i) => Ok(i),
            ObjectNamePart::Function(_) => Err(format!(
                "dynamic object name {name} cannot be analysed; write the name literally"
            )),
        })
        .collect()
}

/// Function names as policies see them: the name as written (lower-cased,
/// qualification kept, e.g. `pg_catalog.pg_read_file`) and, when qualified,
/// also the bare name (`pg_read_file`).
pub(crate) fn function_names(name: &ObjectName) -> Result<Vec<String>, String> {
    let parts = idents(name)?;
    let lower: Vec<String> = parts.iter().map(|i| i.value.to_lowercase()).collect();
    let mut out = vec![lower.join(".")];
    if lower.len() > 1
        && let Some(last) = lower.last()
    {
        out.push(last.clone());
    }
    Ok(out)
}

/// A table named inside a string literal (`'app.salaries'`, `'"Mixed".t'`),
/// as PostgreSQL's regclass input reads it: identifier syntax, folded.
pub(crate) fn parse_table_literal(resolver: Resolver<'_>, text: &str) -> Result<TableRef, String> {
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;
    use sqlparser::tokenizer::Token;
    let dialect = PostgreSqlDialect {};
    let mut parser = Parser::new(&dialect)
        .try_with_sql(text)
        .map_err(|e| e.to_string())?;
    let name = parser.parse_object_name(false).map_err(|e| e.to_string())?;
    if parser.peek_token().token != Token::EOF {
        return Err("it is not a plain table name".into());
    }
    resolver.object(&name)
}

/// `"schema"."table"` as text for a regclass literal.
pub(crate) fn regclass_text(table: &TableRef) -> String {
    format!(
        "\"{}\".\"{}\"",
        table.schema.replace('"', "\"\""),
        table.table.replace('"', "\"\"")
    )
}
