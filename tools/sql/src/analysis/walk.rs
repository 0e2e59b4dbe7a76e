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
    Expr, Ident, ObjectName, ObjectNamePart, Query, Select, SetExpr, Statement, TableFactor,
    Visitor,
};

use super::TableRef;
use super::names::{Resolver, function_names};

/// A Cedar action of the SQL connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Action {
    Select,
    Insert,
    Update,
    Delete,
    Ddl,
    Admin,
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

/// CTEs declared by one query, and how many of them are visible right now.
struct Frame {
    ctes: Vec<(String, *const Query)>,
    recursive: bool,
    visible: usize,
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

    /// Record one access, once.
    pub fn access(&mut self, action: Action, table: Option<TableRef>) {
        if let Some(t) = &table {
            self.tables.insert(t.clone());
        }
        if !self
            .accesses
            .iter()
            .any(|(a, t)| *a == action && *t == table)
        {
            self.accesses.push((action, table));
        }
    }

    /// `action` on a named table; the name is claimed so it is not also a read.
    pub fn on_table(&mut self, action: Action, name: &ObjectName) -> Result<(), String> {
        let table = self.resolver.object(name)?;
        self.claimed.push(name as *const ObjectName);
        self.access(action, Some(table));
        Ok(())
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

    /// Add a called function (qualified and bare names).
    pub fn function(&mut self, name: &ObjectName) -> Result<(), String> {
        for f in function_names(name)? {
            if matches!(f.as_str(), "set_config" | "pg_catalog.set_config") {
                self.changes_resolution = true;
            }
            self.functions.insert(f);
        }
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

    /// `TABLE t` inside a set expression (not inside nested queries, which get their own visit).
    fn table_commands(&mut self, body: &SetExpr) -> Result<(), String> {
        match body {
            SetExpr::SetOperation { left, right, .. } => {
                self.table_commands(left)?;
                self.table_commands(right)
            }
            SetExpr::Table(t) => {
                let Some(name) = &t.table_name else {
                    return Err("TABLE without a table name cannot be analysed".into());
                };
                if t.schema_name.is_none() && self.is_cte(&self.cte_key(name)) {
                    return Ok(());
                }
                let parts: Vec<&Ident> = match &t.schema_name {
                    Some(s) => vec![s, name],
                    None => vec![name],
                };
                let table = self.resolver.table(&parts)?;
                self.access(Action::Select, Some(table));
                Ok(())
            }
            _ => Ok(()),
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
        brk(self.table_commands(&query.body))
    }

    fn post_visit_query(&mut self, query: &Query) -> ControlFlow<String> {
        self.frames.pop();
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
                    Ok(t) => self.access(super::walk::Action::Ddl, Some(t)),
                    Err(e) => return ControlFlow::Break(e),
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
                self.access(Action::Select, Some(t));
                ControlFlow::Continue(())
            }
            Err(e) => ControlFlow::Break(e),
        }
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<String> {
        match factor {
            TableFactor::Table {
                name,
                args: Some(_),
                ..
            } => {
                // FROM pg_read_file(...): a table function, not a table.
                self.claimed.push(name as *const ObjectName);
                brk(self.function(name))
            }
            TableFactor::Table { .. }
            | TableFactor::Derived { .. }
            | TableFactor::NestedJoin { .. } => ControlFlow::Continue(()),
            TableFactor::TableFunction { .. } => ControlFlow::Continue(()),
            TableFactor::Function { name, .. } => brk(self.function(name)),
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

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<String> {
        match expr {
            Expr::Function(f) => return brk(self.function(&f.name)),
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
