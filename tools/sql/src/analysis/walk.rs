//! The AST walk: one pass of sqlparser's derived [`Visitor`] over a top-level
//! statement, collecting every table read or written, every function called
//! and every nested statement (CTE bodies, subqueries in any position,
//! `EXPLAIN`/`PREPARE` targets...).
//!
//! Why the derived visitor: it reaches every node sqlparser has, so a new
//! place where a subquery or function can hide is still seen. On top of it
//! this module keeps just enough structure:
//!
//! * CTE scopes: a one-part name that matches a CTE visible at that point is
//!   not a table. Visibility follows PostgreSQL: a non-recursive CTE sees only
//!   the CTEs before it (so `WITH t AS (SELECT * FROM t)` reads the real `t`),
//!   `WITH RECURSIVE` sees all of them. On MySQL/SQLite CTE names are matched
//!   case-sensitively, so a doubt makes a read of a real table, never hides one.
//! * Claimed names: write targets and table-function names found by
//!   [`classify`](super::classify) or the table-factor hook are claimed (by
//!   address) so the relation hook does not also count them as reads.
//!
//! Anything the walk does not understand breaks the visit with a reason.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, ObjectName,
    ObjectNamePart, Query, Select, SetExpr, Statement, TableFactor, Value, Visitor,
};

use super::names::{Resolver, function_names, idents};
use super::rewrite::Rewrites;
use super::{Dialect, TableRef, functions};

/// A Cedar action of the SQL connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Action {
    Select,
    Insert,
    Update,
    Delete,
    Ddl,
    Admin,
    /// A function that is not a vetted built-in (resource: a Function).
    Call,
}

impl Action {
    /// The action id inside `Tollgate::Action`.
    pub fn id(self) -> &'static str {
        match self {
            Action::Select => "sql:select",
            Action::Insert => "sql:insert",
            Action::Update => "sql:update",
            Action::Delete => "sql:delete",
            Action::Ddl => "sql:ddl",
            Action::Admin => "sql:admin",
            Action::Call => "sql:call",
        }
    }
}

/// Statement kind for the result summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Select,
    Insert,
    Update,
    Delete,
    Merge,
    Ddl,
    Admin,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Select => "select",
            Kind::Insert => "insert",
            Kind::Update => "update",
            Kind::Delete => "delete",
            Kind::Merge => "merge",
            Kind::Ddl => "ddl",
            Kind::Admin => "admin",
        }
    }
}

/// Deepest expression nesting analysed (a left-deep `a+a+...` chain counts
/// one level per operator); deeper ones are refused, which also bounds the
/// recursion of the executed-text proof.
const MAX_EXPR_DEPTH: usize = 1000;

/// CTEs declared by one query, and how many of them are visible right now.
struct Frame {
    ctes: Vec<(String, *const Query)>,
    recursive: bool,
    visible: usize,
    /// Set operations of this query's body, counted in `Walk::depth`.
    set_depth: usize,
}

/// State of the walk over one top-level statement.
pub(crate) struct Walk<'r> {
    pub(super) resolver: Resolver<'r>,
    frames: Vec<Frame>,
    claimed: Vec<*const ObjectName>,
    /// (action, table) in discovery order, no duplicates; `None` = the connection.
    pub accesses: Vec<(Action, Option<TableRef>)>,
    /// Every table of the statement.
    pub tables: BTreeSet<TableRef>,
    /// Every function called anywhere.
    pub functions: BTreeSet<String>,
    /// Some function call is not a vetted built-in (`sql:call`).
    pub calls: bool,
    /// A MySQL user variable (`@name`) is read or assigned: session state.
    pub user_variables: bool,
    /// Expressions open around the node being visited.
    depth: usize,
    /// How the executed text differs from the parsed one: every name
    /// qualified with exactly what policy saw.
    pub rewrites: Rewrites,
    /// Some UPDATE/DELETE/TRUNCATE changes rows without a real WHERE.
    pub unfiltered: bool,
    /// Something writes (data, schema, session or server state).
    pub writes: bool,
    /// A row-locking clause (`FOR UPDATE`, `FOR SHARE`...) was seen.
    pub locking: bool,
    /// The statement changes how later names resolve (USE, SET search_path, ATTACH, set_config).
    pub changes_resolution: bool,
    /// Kinds of the statements seen, outermost first (`EXPLAIN` itself not recorded).
    pub kinds: Vec<Kind>,
    /// Human-readable details, outermost first, e.g. `explain analyze`, `create table`.
    pub details: Vec<&'static str>,
}

impl<'r> Walk<'r> {
    pub fn new(resolver: Resolver<'r>) -> Self {
        Walk {
            resolver,
            frames: Vec::new(),
            claimed: Vec::new(),
            accesses: Vec::new(),
            tables: BTreeSet::new(),
            functions: BTreeSet::new(),
            calls: false,
            user_variables: false,
            depth: 0,
            rewrites: Rewrites::default(),
            unfiltered: false,
            writes: false,
            locking: false,
            changes_resolution: false,
            kinds: Vec::new(),
            details: Vec::new(),
        }
    }

    /// Walk one top-level statement.
    pub fn run(mut self, statement: &Statement) -> Result<Self, String> {
        use sqlparser::ast::Visit;
        if let ControlFlow::Break(reason) = statement.visit(&mut self) {
            return Err(reason);
        }
        if self.locking {
            // Row locks need UPDATE privilege on PostgreSQL; ask for it here too.
            let locked: Vec<TableRef> = self
                .accesses
                .iter()
                .filter(|(a, t)| *a == Action::Select && t.is_some())
                .filter_map(|(_, t)| t.clone())
                .collect();
            for t in locked {
                self.access(Action::Update, Some(t));
            }
        }
        Ok(self)
    }

    /// Record one access on a table (or the connection), once.
    pub fn access(&mut self, action: Action, table: Option<TableRef>) {
        if let Some(t) = &table {
            self.tables.insert(t.clone());
        }
        self.push_access(action, table);
    }

    /// Add `(action, target)` to the accesses unless it is there already.
    fn push_access(&mut self, action: Action, target: Option<TableRef>) {
        if !self
            .accesses
            .iter()
            .any(|(a, t)| *a == action && *t == target)
        {
            self.accesses.push((action, target));
        }
    }

    /// `action` on a named table; the name is claimed so it is not also a read.
    pub fn on_table(&mut self, action: Action, name: &ObjectName) -> Result<(), String> {
        let table = self.resolver.object(name)?;
        self.claimed.push(name as *const ObjectName);
        self.qualify(name, &table);
        if matches!(action, Action::Insert | Action::Update | Action::Delete)
            && self.resolver.dialect == Dialect::Postgres
            && table.schema == "pg_catalog"
        {
            // UPDATE pg_settings changes settings; other catalogs are the server's.
            self.access(Action::Admin, Some(table.clone()));
        }
        self.access(action, Some(table));
        Ok(())
    }

    /// `CREATE TEMPORARY TABLE t`: DDL on `t` in the temporary schema
    /// (`pg_temp` on PostgreSQL, `temp` on SQLite; MySQL has none: the
    /// default schema, and the session is closed after the call).
    pub fn on_temporary_table(&mut self, name: &ObjectName) -> Result<(), String> {
        let temp_schema = match self.resolver.dialect {
            Dialect::Postgres => "pg_temp",
            Dialect::Sqlite => "temp",
            Dialect::MySql => return self.on_table(Action::Ddl, name),
        };
        let parts = idents(name)?;
        let table = match parts.as_slice() {
            [t] => TableRef {
                schema: temp_schema.into(),
                table: self.resolver.fold(t),
            },
            _ => self.resolver.object(name)?,
        };
        self.claimed.push(name as *const ObjectName);
        self.qualify(name, &table);
        self.access(Action::Ddl, Some(table));
        Ok(())
    }

    /// A table read: `sql:select`, plus `sql:admin` for statistics that
    /// reveal other tables' values.
    fn read(&mut self, name: Option<&ObjectName>, table: TableRef) {
        if let Some(name) = name {
            self.qualify(name, &table);
        }
        if functions::is_statistics_relation(self.resolver.dialect, &table.schema, &table.table) {
            self.access(Action::Admin, Some(table.clone()));
        }
        self.access(Action::Select, Some(table));
    }

    /// Record that `name` executes as the qualified name of `table`.
    fn qualify(&mut self, name: &ObjectName, table: &TableRef) {
        if let Some(q) = self.resolver.qualified(name, table) {
            self.rewrites.name(name, q);
        }
    }

    /// Mark a name as not-a-table-read, without an access (e.g. a role or index name).
    pub fn claim(&mut self, name: &ObjectName) {
        self.claimed.push(name as *const ObjectName);
    }

    /// `action` on each named table, or on the connection when none is named.
    pub fn on_tables_or_connection<'n>(
        &mut self,
        action: Action,
        names: impl IntoIterator<Item = &'n ObjectName>,
    ) -> Result<(), String> {
        let mut any = false;
        for name in names {
            self.on_table(action, name)?;
            any = true;
        }
        if !any {
            self.access(action, None);
        }
        Ok(())
    }

    /// A called function: its names go into the `functions` context; a
    /// function that is not a vetted built-in is a `sql:call` on its
    /// resolved `schema.name` (see [`functions`]); a built-in that reads the
    /// relation named by a literal argument is a read of that table.
    pub fn function(
        &mut self,
        name: &ObjectName,
        args: &[FunctionArg],
        parenthesized: bool,
    ) -> Result<(), String> {
        let names = function_names(name)?;
        let parts = idents(name)?;
        let dialect = self.resolver.dialect;
        let Some(last) = parts.last() else {
            return Err(format!("empty function name {name}"));
        };
        let fname = match dialect {
            Dialect::Postgres => self.resolver.fold(last),
            _ => last.value.to_lowercase(),
        };
        let schema = match parts.as_slice() {
            [_] => None,
            [s, _] | [_, s, _] if dialect == Dialect::Postgres || parts.len() == 2 => {
                Some(self.resolver.fold(s))
            }
            _ => {
                return Err(format!(
                    "function name {name} has {} parts; use name or schema.name",
                    parts.len()
                ));
            }
        };
        self.functions.extend(names);
        let builtin_scope = match &schema {
            None => true,
            Some(s) => dialect == Dialect::Postgres && s == "pg_catalog",
        };
        if builtin_scope && functions::is_vetted(dialect, &fname) {
            if dialect == Dialect::Postgres
                && parts.len() == 1
                && parenthesized
                && !functions::is_syntax(&fname)
            {
                // A user function of the same name with a better-matching
                // signature in a later search-path schema would win: name the
                // built-in itself.
                let builtin = TableRef {
                    schema: "pg_catalog".into(),
                    table: fname.clone(),
                };
                self.functions.insert(format!("pg_catalog.{fname}"));
                if let Some(q) = self.resolver.qualified(name, &builtin) {
                    self.rewrites.name(name, q);
                }
            }
            return Ok(());
        }
        if builtin_scope && let Some(i) = functions::relation_argument(dialect, &fname) {
            return self.relation_by_literal(&fname, args.get(i));
        }
        let schema = schema.unwrap_or_else(|| {
            let lookup = self.resolver.lookup;
            let found = if dialect == Dialect::Postgres {
                lookup.resolve(|c| c.function_schema(&fname))
            } else {
                None
            };
            found.unwrap_or_else(|| {
                functions::default_function_schema(dialect, &fname, self.resolver.default_schema)
            })
        });
        self.functions
            .insert(format!("{schema}.{fname}").to_lowercase());
        if functions::changes_settings(dialect, &fname) {
            self.changes_resolution = true;
            self.access(Action::Admin, None);
        }
        let function = TableRef {
            schema,
            table: fname,
        };
        if dialect == Dialect::Postgres && parts.len() == 1 {
            // Run exactly the function policy saw, whatever the search path finds.
            if let Some(q) = self.resolver.qualified(name, &function) {
                self.rewrites.name(name, q);
            }
        }
        self.calls = true;
        // A function is no table: not in `tables`.
        self.push_access(Action::Call, Some(function));
        Ok(())
    }

    /// `table_to_xml('app.salaries', ...)`: a read of the named table. The
    /// literal is rewritten to the qualified name policy saw; any other
    /// argument is denied (Tollgate cannot know which table it names).
    fn relation_by_literal(
        &mut self,
        fname: &str,
        arg: Option<&FunctionArg>,
    ) -> Result<(), String> {
        let deny = || {
            format!(
                "{fname}() reads the table named by its first argument; write that name as a string literal (e.g. 'orders'::regclass or 'schema.table')"
            )
        };
        let Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(expr))) = arg else {
            return Err(deny());
        };
        let literal = match expr {
            Expr::Cast { expr: inner, .. } => inner.as_ref(),
            other => other,
        };
        let Expr::Value(v) = literal else {
            return Err(deny());
        };
        let Value::SingleQuotedString(text) = &v.value else {
            return Err(deny());
        };
        let table = super::names::parse_table_literal(self.resolver, text)
            .map_err(|e| format!("{fname}(): the table name {text:?} cannot be read: {e}"))?;
        self.rewrites
            .literal(literal, super::names::regclass_text(&table));
        self.read(None, table);
        Ok(())
    }

    fn builtin(&mut self, name: &str) {
        self.functions.insert(name.to_string());
    }

    /// The key a CTE name is compared by (see module doc).
    fn cte_key(&self, ident: &Ident) -> String {
        match self.resolver.dialect {
            super::Dialect::Postgres => self.resolver.fold(ident),
            _ => ident.value.clone(),
        }
    }

    fn is_cte(&self, key: &str) -> bool {
        self.frames
            .iter()
            .any(|f| f.ctes[..f.visible].iter().any(|(n, _)| n == key))
    }

    /// `TABLE t` inside a set expression (not inside nested queries, which
    /// get their own visit). `depth` counts the set operations around `body`;
    /// they count as nesting (later stages recurse over them): returns the
    /// deepest, refuses more than [`MAX_EXPR_DEPTH`] levels with the
    /// expressions around.
    fn table_commands(&mut self, body: &SetExpr, depth: usize) -> Result<usize, String> {
        match body {
            SetExpr::SetOperation { left, right, .. } => {
                if self.depth + depth >= MAX_EXPR_DEPTH {
                    return Err(format!(
                        "query nested more than {MAX_EXPR_DEPTH} levels deep (set operations UNION, INTERSECT, EXCEPT count too); split it into several statements"
                    ));
                }
                let left = self.table_commands(left, depth + 1)?;
                Ok(left.max(self.table_commands(right, depth + 1)?))
            }
            SetExpr::Table(t) => {
                let Some(name) = &t.table_name else {
                    return Err("TABLE without a table name cannot be analysed".into());
                };
                if t.schema_name.is_none() && self.is_cte(&self.cte_key(name)) {
                    return Ok(depth);
                }
                let parts: Vec<&Ident> = match &t.schema_name {
                    Some(s) => vec![s, name],
                    None => vec![name],
                };
                let table = self.resolver.table(&parts)?;
                if self.resolver.dialect == Dialect::Postgres {
                    self.rewrites.table_command(t, &table);
                }
                self.read(None, table);
                Ok(depth)
            }
            _ => Ok(depth),
        }
    }
}

fn brk<T>(r: Result<T, String>) -> ControlFlow<String> {
    match r {
        Ok(_) => ControlFlow::Continue(()),
        Err(e) => ControlFlow::Break(e),
    }
}

impl Visitor for Walk<'_> {
    type Break = String;

    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<String> {
        brk(self.classify(statement))
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<String> {
        let ptr = query as *const Query;
        if let Some(top) = self.frames.last_mut()
            && let Some(i) = top.ctes.iter().position(|(_, p)| *p == ptr)
        {
            top.visible = if top.recursive { top.ctes.len() } else { i };
        }
        let (ctes, recursive) = match &query.with {
            Some(with) => (
                with.cte_tables
                    .iter()
                    .map(|c| (self.cte_key(&c.alias.name), &*c.query as *const Query))
                    .collect::<Vec<_>>(),
                with.recursive,
            ),
            None => (Vec::new(), false),
        };
        let visible = ctes.len();
        self.frames.push(Frame {
            ctes,
            recursive,
            visible,
            set_depth: 0,
        });
        if !query.locks.is_empty() {
            self.locking = true;
            self.writes = true;
        }
        if !query.pipe_operators.is_empty() {
            return ControlFlow::Break(
                "pipe operators (|>) are not supported; use plain SQL".into(),
            );
        }
        match self.table_commands(&query.body, 0) {
            Ok(set_depth) => {
                self.depth += set_depth;
                if let Some(frame) = self.frames.last_mut() {
                    frame.set_depth = set_depth;
                }
                ControlFlow::Continue(())
            }
            Err(reason) => ControlFlow::Break(reason),
        }
    }

    fn post_visit_query(&mut self, query: &Query) -> ControlFlow<String> {
        if let Some(frame) = self.frames.pop() {
            self.depth -= frame.set_depth;
        }
        let ptr = query as *const Query;
        if let Some(top) = self.frames.last_mut()
            && top.ctes.iter().any(|(_, p)| *p == ptr)
        {
            top.visible = top.ctes.len();
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<String> {
        if !select.optimizer_hints.is_empty() {
            return ControlFlow::Break(
                "optimizer hint comment /*+ ... */ found; remove it (hints can change session settings Tollgate does not analyse)"
                    .into(),
            );
        }
        if let Some(into) = &select.into {
            // SELECT ... INTO new_table creates a table.
            self.writes = true;
            self.kinds.push(Kind::Ddl);
            self.details.push("select into (creates a table)");
            for target in &into.targets {
                let parts: Vec<&Ident> = match target {
                    Expr::Identifier(i) => vec![i],
                    Expr::CompoundIdentifier(v) => v.iter().collect(),
                    other => {
                        return ControlFlow::Break(format!(
                            "SELECT ... INTO {other} is not supported; only SELECT ... INTO table"
                        ));
                    }
                };
                match self.resolver.table(&parts) {
                    Ok(t) => self.access(Action::Ddl, Some(t)),
                    Err(e) => return ControlFlow::Break(e),
                }
                if self.resolver.dialect == Dialect::Postgres {
                    // The target would resolve through search_path = pg_catalog.
                    return ControlFlow::Break(
                        "SELECT ... INTO a table is not supported; use CREATE TABLE ... AS SELECT"
                            .into(),
                    );
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<String> {
        if self.claimed.contains(&(relation as *const ObjectName)) {
            return ControlFlow::Continue(());
        }
        if let [ObjectNamePart::Identifier(i)] = relation.0.as_slice()
            && self.is_cte(&self.cte_key(i))
        {
            return ControlFlow::Continue(());
        }
        match self.resolver.object(relation) {
            Ok(t) => {
                self.read(Some(relation), t);
                ControlFlow::Continue(())
            }
            Err(e) => ControlFlow::Break(e),
        }
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<String> {
        match factor {
            TableFactor::Table {
                name,
                args: Some(args),
                ..
            } => {
                // FROM pg_read_file(...): a table function, not a table.
                self.claimed.push(name as *const ObjectName);
                brk(self.function(name, &args.args, true))
            }
            TableFactor::Table { .. }
            | TableFactor::Derived { .. }
            | TableFactor::NestedJoin { .. } => ControlFlow::Continue(()),
            TableFactor::TableFunction { .. } => ControlFlow::Continue(()),
            TableFactor::Function { name, args, .. } => brk(self.function(name, args, true)),
            TableFactor::UNNEST { .. } => {
                self.builtin("unnest");
                ControlFlow::Continue(())
            }
            TableFactor::JsonTable { .. } => {
                self.builtin("json_table");
                ControlFlow::Continue(())
            }
            TableFactor::XmlTable { .. } => {
                self.builtin("xmltable");
                ControlFlow::Continue(())
            }
            other => ControlFlow::Break(format!(
                "table expression {} is not supported by Tollgate's analysis; rewrite it with plain tables, joins or subqueries",
                first_words(&other.to_string())
            )),
        }
    }

    fn post_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<String> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<String> {
        self.depth += 1;
        if self.depth > MAX_EXPR_DEPTH {
            return ControlFlow::Break(format!(
                "expression nested more than {MAX_EXPR_DEPTH} levels deep; simplify it"
            ));
        }
        match expr {
            Expr::Function(f) => {
                let args: &[FunctionArg] = match &f.args {
                    FunctionArguments::List(l) => &l.args,
                    _ => &[],
                };
                let parenthesized = !matches!(f.args, FunctionArguments::None);
                return brk(self.function(&f.name, args, parenthesized));
            }
            Expr::BinaryOp {
                op: BinaryOperator::PGCustomBinaryOperator(parts),
                ..
            } if parts.len() > 1 && !parts[0].eq_ignore_ascii_case("pg_catalog") => {
                return ControlFlow::Break(format!(
                    "operator OPERATOR({}) runs a user-defined function Tollgate cannot see; use built-in operators",
                    parts.join(".")
                ));
            }
            Expr::Identifier(i) if i.value.starts_with('@') => self.user_variables = true,
            Expr::CompoundIdentifier(v) if v.iter().any(|i| i.value.starts_with('@')) => {
                self.user_variables = true
            }
            Expr::Extract { .. } => self.builtin("extract"),
            Expr::Substring { .. } => self.builtin("substring"),
            Expr::Trim { .. } => self.builtin("trim"),
            Expr::Position { .. } => self.builtin("position"),
            Expr::Overlay { .. } => self.builtin("overlay"),
            Expr::Ceil { .. } => self.builtin("ceil"),
            Expr::Floor { .. } => self.builtin("floor"),
            Expr::Convert { .. } => self.builtin("convert"),
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// The first few words of a rendering, for error messages.
pub(crate) fn first_words(s: &str) -> String {
    let mut out: String = s.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
    if out.len() > 60 {
        let mut cut = 60;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}
