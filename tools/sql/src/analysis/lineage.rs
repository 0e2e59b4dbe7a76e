//! Column lineage: for every output column of a statement, the source
//! columns its values are computed from, and every column the statement reads
//! anywhere (WHERE, JOIN, GROUP BY, ORDER BY... included).
//!
//! Masking by origin needs this: `hex(email)` or `substr(ssn,1,3)||...`
//! carries a masked column's value in a form no detector recognises, so the
//! rule must follow the data through the expression, not the cell's text.
//!
//! How: scopes of relations (tables, CTEs, derived tables) are built from
//! each FROM; an expression depends on every column reference it contains,
//! through any function, operator, CASE, cast or aggregate (sqlparser's
//! derived visitor reaches every node, so a new expression form is still
//! seen), and on the outputs of any subquery inside it.
//!
//! Invariant — doubt widens, never narrows: a name that could mean several
//! columns depends on all of them; a relation whose columns are unknown, a
//! table function or an unresolvable name makes the output depend on every
//! column of the tables involved ([`Source::AnyOf`]); a `*` whose width is
//! unknown makes output positions unknown ([`Lineage::exact`] false), and a
//! statement this module does not model yields no per-column lineage at all.
//! Predicates (WHERE, JOIN ON, HAVING) are reads, not lineage: what they
//! reveal is for policy to judge through [`Lineage::reads`].
//!
//! Views the catalog can define ([`ColumnCatalog::view`]) are followed like
//! derived tables: a view column depends on what its defining expression
//! reads (and on itself, so rules naming the view's columns still apply).
//! A definition that does not parse, or views nested deeper than
//! [`MAX_VIEW_DEPTH`], make the view opaque (every table involved).

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::sync::LazyLock;

use sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, JoinConstraint, JoinOperator,
    ObjectName, Query, SelectItem, SelectItemQualifiedWildcardKind, SetExpr, Statement, TableAlias,
    TableFactor, TableWithJoins, Value, Visit, Visitor,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

use super::names::{Resolver, idents, parse_table_literal};
use super::{Dialect, TableRef, functions};

/// Where an output value can come from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// One column of a table (folded as the database resolves it).
    Column(TableRef, String),
    /// Some column of this table that cannot be named: counts as every one.
    AnyOf(TableRef),
}

/// One output column of a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputColumn {
    /// The name the database would probably give it (informational).
    pub name: String,
    /// Every source its values depend on.
    pub sources: BTreeSet<Source>,
    /// The output is exactly one source column, unchanged (so a strategy
    /// that keeps part of the value, like `partial`, still fits it).
    pub bare: bool,
    /// The output is `count(...)`: a number of rows, which reveals no value.
    pub count_only: bool,
}

/// The lineage of one statement. The default knows nothing (not exact, no
/// reads): every result column then depends on nothing it can name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lineage {
    /// Output columns in order (empty for statements that return nothing, or
    /// when `exact` is false and the statement is not modelled).
    pub outputs: Vec<OutputColumn>,
    /// True when `outputs` lines up with the result's columns one to one.
    /// False: positions are unknown (a `*` over a relation of unknown width,
    /// `* EXCEPT`, a statement not modelled); every result column must then
    /// be treated as depending on [`Lineage::all_sources`].
    pub exact: bool,
    /// Every column read anywhere in the statement, predicates included.
    pub reads: BTreeSet<Source>,
    /// What earlier statements of the same call read and may have left
    /// behind for this one (a temporary table, a session variable): every
    /// output depends on it too (see [`Lineage::carry`]).
    pub carried: BTreeSet<Source>,
}

impl Source {
    /// `schema.table.column`, or `schema.table.*` for [`Source::AnyOf`], as
    /// policy's `columns` context and column rules name it.
    pub fn qualified(&self) -> String {
        match self {
            Source::Column(t, c) => format!("{}.{}.{c}", t.schema, t.table),
            Source::AnyOf(t) => format!("{}.{}.*", t.schema, t.table),
        }
    }
}

impl Lineage {
    /// Every column read, as policy's `columns` context holds them.
    pub fn read_columns(&self) -> BTreeSet<String> {
        self.reads.iter().map(Source::qualified).collect()
    }

    /// The union of every output's sources (and, when nothing is modelled,
    /// every table read): what a result column depends on when positions
    /// are unknown.
    pub fn all_sources(&self) -> BTreeSet<Source> {
        let mut all: BTreeSet<Source> = self
            .outputs
            .iter()
            .flat_map(|o| o.sources.clone())
            .collect();
        if !self.exact {
            all.extend(self.reads.iter().cloned());
        }
        all.extend(self.carried.iter().cloned());
        all
    }

    /// Make every output depend on `earlier`: what the statements before
    /// this one in the same call read, when one of them could leave data
    /// behind (wrote, or touched the session). A value computed there can
    /// come back here through a table or variable lineage cannot follow.
    /// A count still reveals no value.
    pub fn carry(&mut self, earlier: &BTreeSet<Source>) {
        if earlier.is_empty() {
            return;
        }
        for o in &mut self.outputs {
            o.sources.extend(earlier.iter().cloned());
            o.bare = false;
        }
        self.carried.extend(earlier.iter().cloned());
    }
}

/// The columns of a table, when the connection knows them (from its schema).
pub trait ColumnCatalog {
    /// Column names in table order, folded; None when unknown.
    fn columns(&self, table: &TableRef) -> Option<Vec<String>>;

    /// When `table` is a view: its defining query as the database reports it
    /// (`SELECT ...`, or the whole `CREATE VIEW ... AS SELECT ...`), so that
    /// lineage follows its columns to the tables under it. None for a table,
    /// or a view whose definition is unknown (its columns are then sources
    /// of their own, as a table's are).
    fn view(&self, _table: &TableRef) -> Option<String> {
        None
    }
}

/// No catalog: every table's columns are unknown.
impl ColumnCatalog for () {
    fn columns(&self, _: &TableRef) -> Option<Vec<String>> {
        None
    }
}

impl ColumnCatalog for std::collections::BTreeMap<TableRef, Vec<String>> {
    fn columns(&self, table: &TableRef) -> Option<Vec<String>> {
        self.get(table).cloned()
    }
}

/// The lineage of `statement` (names as the analysis resolves them).
pub(crate) fn lineage(
    statement: &Statement,
    resolver: Resolver<'_>,
    catalog: &dyn ColumnCatalog,
) -> Lineage {
    let mut l = Lineager {
        resolver,
        catalog,
        tables: BTreeSet::new(),
        reads: Deps::default(),
        view_depth: 0,
    };
    let (outputs, exact) = match l.statement(statement, None) {
        Some(Shape { columns, exact }) => (columns, exact),
        None => (vec![], false),
    };
    let tables = std::mem::take(&mut l.tables);
    let widen = |d: Deps| -> BTreeSet<Source> {
        let mut s = d.sources;
        if d.opaque {
            s.extend(tables.iter().cloned().map(Source::AnyOf));
        }
        s
    };
    let mut reads = widen(std::mem::take(&mut l.reads));
    let outputs: Vec<OutputColumn> = outputs
        .into_iter()
        .map(|c| {
            let sources = widen(c.deps);
            reads.extend(sources.iter().cloned());
            OutputColumn {
                name: c.name,
                bare: c.bare
                    && sources.len() == 1
                    && matches!(sources.first(), Some(Source::Column(..))),
                count_only: c.count_only,
                sources,
            }
        })
        .collect();
    if !exact && outputs.is_empty() {
        // Not modelled: every table involved may show up in the result.
        reads.extend(tables.iter().cloned().map(Source::AnyOf));
    }
    Lineage {
        outputs,
        exact,
        reads,
        carried: BTreeSet::new(),
    }
}

/// Sources while walking; `opaque` stands for every table of the statement.
#[derive(Debug, Clone, Default)]
struct Deps {
    sources: BTreeSet<Source>,
    opaque: bool,
}

impl Deps {
    fn add(&mut self, other: &Deps) {
        self.sources.extend(other.sources.iter().cloned());
        self.opaque |= other.opaque;
    }
    fn opaque() -> Self {
        Deps {
            sources: BTreeSet::new(),
            opaque: true,
        }
    }
}

/// An output column while walking.
#[derive(Debug, Clone)]
struct Column {
    name: String,
    deps: Deps,
    bare: bool,
    count_only: bool,
}

/// The columns a query or relation yields.
#[derive(Debug, Clone)]
struct Shape {
    columns: Vec<Column>,
    exact: bool,
}

/// A relation in a FROM scope.
#[derive(Debug, Clone)]
struct Relation {
    /// Names it can be referred to by (alias, or table and schema.table).
    names: Vec<String>,
    body: Body,
}

#[derive(Debug, Clone)]
enum Body {
    /// A base table; `columns` when the catalog knows them.
    Table {
        table: TableRef,
        columns: Option<Vec<String>>,
    },
    /// A CTE or derived table with known columns.
    Derived(Shape),
    /// A table function or anything whose columns cannot be known.
    Opaque,
}

#[derive(Debug, Default)]
struct Scope<'p> {
    relations: Vec<Relation>,
    ctes: Vec<(String, Option<Shape>)>,
    /// What a bare `*` yields when the FROM merges columns (`JOIN ... USING`,
    /// `NATURAL JOIN`: the shared columns once, first); None: every
    /// relation's columns in order.
    star: Option<Shape>,
    /// Output columns of the SELECT, for ORDER BY / HAVING aliases.
    aliases: Vec<Column>,
    parent: Option<&'p Scope<'p>>,
}

impl Scope<'_> {
    fn cte(&self, name: &str) -> Option<&Option<Shape>> {
        self.ctes
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s)
            .or_else(|| self.parent.and_then(|p| p.cte(name)))
    }
}

struct Lineager<'a> {
    resolver: Resolver<'a>,
    catalog: &'a dyn ColumnCatalog,
    /// Every base table met.
    tables: BTreeSet<TableRef>,
    /// Every column read anywhere.
    reads: Deps,
    /// Views being expanded around the current point (their nesting).
    view_depth: usize,
}

/// Views inside views followed at most this deep; deeper ones are opaque.
pub const MAX_VIEW_DEPTH: usize = 8;

/// The relation of `SELECT 1 FROM _`: it replaces FROM entries already in
/// scope, so the generic read visit does not walk them twice.
static PLACEHOLDER: LazyLock<TableFactor> = LazyLock::new(|| {
    let parsed =
        Parser::parse_sql(&GenericDialect {}, "SELECT 1 FROM _").expect("placeholder parses");
    let Some(Statement::Query(q)) = parsed.into_iter().next() else {
        unreachable!("placeholder is a query")
    };
    let SetExpr::Select(s) = q.body.as_ref() else {
        unreachable!("placeholder is a select")
    };
    s.from[0].relation.clone()
});

impl Lineager<'_> {
    fn fold(&self, ident: &Ident) -> String {
        self.resolver.fold(ident)
    }

    /// The name the database probably gives an output without an alias,
    /// folded like a name so references to it resolve.
    fn derived_name(&self, e: &Expr) -> String {
        match e {
            Expr::Identifier(i) => self.fold(i),
            Expr::CompoundIdentifier(parts) => {
                parts.last().map(|i| self.fold(i)).unwrap_or_default()
            }
            Expr::Function(f) => f.name.0.last().map(|p| p.to_string()).unwrap_or_default(),
            Expr::Cast { expr, .. } => self.derived_name(expr),
            Expr::Nested(inner) => self.derived_name(inner),
            _ => "?column?".into(),
        }
    }

    /// Output shape of a statement; None when it is not modelled.
    fn statement(&mut self, statement: &Statement, scope: Option<&Scope<'_>>) -> Option<Shape> {
        match statement {
            Statement::Query(q) => Some(self.query(q, scope)),
            Statement::Insert(ins) => {
                if let Some(src) = &ins.source {
                    let shape = self.query(src, scope);
                    self.read_shape(&shape);
                }
                let mut s = Scope {
                    parent: scope,
                    ..Default::default()
                };
                if let sqlparser::ast::TableObject::TableName(name) = &ins.table {
                    let alias = ins.table_alias.as_ref().map(|a| a.alias.clone());
                    let rel = self.table_relation(name, alias.as_ref(), scope);
                    s.relations.push(rel);
                }
                let mut rest = ins.clone();
                rest.source = None;
                let returning = rest.returning.take();
                self.read_visit(&rest, &s);
                Some(self.returning(returning.as_deref(), &s))
            }
            Statement::Update(up) => {
                let mut s = Scope {
                    parent: scope,
                    ..Default::default()
                };
                self.from(std::slice::from_ref(&up.table), &mut s);
                if let Some(from) = &up.from {
                    let (sqlparser::ast::UpdateTableFromKind::BeforeSet(f)
                    | sqlparser::ast::UpdateTableFromKind::AfterSet(f)) = from;
                    self.from(f, &mut s);
                }
                let mut rest = up.clone();
                let returning = rest.returning.take();
                blank_factors(std::slice::from_mut(&mut rest.table));
                if let Some(
                    sqlparser::ast::UpdateTableFromKind::BeforeSet(f)
                    | sqlparser::ast::UpdateTableFromKind::AfterSet(f),
                ) = &mut rest.from
                {
                    blank_factors(f);
                }
                self.read_visit(&rest, &s);
                Some(self.returning(returning.as_deref(), &s))
            }
            Statement::Delete(del) => {
                let mut s = Scope {
                    parent: scope,
                    ..Default::default()
                };
                let (sqlparser::ast::FromTable::WithFromKeyword(from)
                | sqlparser::ast::FromTable::WithoutKeyword(from)) = &del.from;
                self.from(from, &mut s);
                if let Some(using) = &del.using {
                    self.from(using, &mut s);
                }
                for name in &del.tables {
                    let rel = self.table_relation(name, None, scope);
                    s.relations.push(rel);
                }
                let mut rest = del.clone();
                let returning = rest.returning.take();
                let (sqlparser::ast::FromTable::WithFromKeyword(from)
                | sqlparser::ast::FromTable::WithoutKeyword(from)) = &mut rest.from;
                blank_factors(from);
                if let Some(using) = &mut rest.using {
                    blank_factors(using);
                }
                rest.tables.clear();
                self.read_visit(&rest, &s);
                Some(self.returning(returning.as_deref(), &s))
            }
            _ => {
                // Not modelled (DDL, SET, CALL...), but what it reads is read:
                // `CREATE TABLE t AS SELECT ...`, `SET @x = (SELECT ...)` read
                // their queries (and may hand the values to a later statement).
                let s = Scope {
                    parent: scope,
                    ..Default::default()
                };
                self.read_visit(statement, &s);
                None
            }
        }
    }

    /// The output of a RETURNING list (empty when there is none).
    fn returning(&mut self, items: Option<&[SelectItem]>, scope: &Scope<'_>) -> Shape {
        match items {
            None => Shape {
                columns: vec![],
                exact: true,
            },
            Some(items) => self.projection(items, scope),
        }
    }

    fn query(&mut self, q: &Query, parent: Option<&Scope<'_>>) -> Shape {
        let mut scope = Scope {
            parent,
            ..Default::default()
        };
        if let Some(with) = &q.with {
            for cte in &with.cte_tables {
                let name = self.fold(&cte.alias.name);
                if with.recursive {
                    // Its own rows feed it: what they hold cannot be followed.
                    scope.ctes.push((name.clone(), None));
                }
                let shape = self.query(&cte.query, Some(&scope));
                let shape = renamed(shape, &cte.alias, self);
                let shape = if with.recursive { None } else { Some(shape) };
                scope.ctes.push((name, shape));
            }
        }
        let shape = self.set_expr(&q.body, &scope, q);
        if !matches!(q.body.as_ref(), SetExpr::Select(_)) {
            // ORDER BY / LIMIT of a set operation name its outputs.
            let mut s = Scope {
                parent: Some(&scope),
                aliases: shape.columns.clone(),
                ..Default::default()
            };
            s.relations.push(Relation {
                names: vec![],
                body: Body::Derived(shape.clone()),
            });
            self.read_tail(q, &s);
        }
        shape
    }

    fn set_expr(&mut self, body: &SetExpr, scope: &Scope<'_>, query: &Query) -> Shape {
        match body {
            SetExpr::Select(select) => {
                let mut s = Scope {
                    parent: Some(scope),
                    ..Default::default()
                };
                self.from(&select.from, &mut s);
                let shape = self.projection(&select.projection, &s);
                s.aliases = shape.columns.clone();
                // Everything else the SELECT evaluates is a read.
                let mut rest = (**select).clone();
                rest.projection.clear();
                blank_factors(&mut rest.from);
                self.read_visit(&rest, &s);
                self.read_tail(query, &s);
                shape
            }
            SetExpr::Query(q) => self.query(q, Some(scope)),
            SetExpr::SetOperation { left, right, .. } => {
                let l = self.set_expr(left, scope, query);
                let r = self.set_expr(right, scope, query);
                let exact = l.exact && r.exact && l.columns.len() == r.columns.len();
                let mut columns = l.columns;
                for (i, c) in columns.iter_mut().enumerate() {
                    match r.columns.get(i) {
                        Some(rc) => {
                            c.deps.add(&rc.deps);
                            c.bare = false;
                            c.count_only &= rc.count_only;
                        }
                        None => c.deps.opaque = true,
                    }
                }
                if !exact {
                    for c in &r.columns {
                        for mine in columns.iter_mut() {
                            mine.deps.add(&c.deps);
                        }
                    }
                }
                Shape { columns, exact }
            }
            SetExpr::Values(values) => {
                let width = values.rows.iter().map(|r| r.len()).max().unwrap_or(0);
                let mut columns: Vec<Column> = (0..width)
                    .map(|i| Column {
                        name: format!("column{}", i + 1),
                        deps: Deps::default(),
                        bare: false,
                        count_only: false,
                    })
                    .collect();
                for row in &values.rows {
                    for (i, e) in row.iter().enumerate() {
                        let d = self.expr(e, scope);
                        columns[i].deps.add(&d);
                    }
                }
                Shape {
                    columns,
                    exact: true,
                }
            }
            SetExpr::Table(t) => {
                let name = t.table_name.as_ref().map(|n| {
                    let mut parts = vec![];
                    if let Some(s) = &t.schema_name {
                        parts.push(s.clone());
                    }
                    parts.push(n.clone());
                    ObjectName::from(parts)
                });
                match name {
                    Some(name) => {
                        let rel = self.table_relation(&name, None, Some(scope));
                        self.relation_shape(&rel)
                    }
                    None => opaque_shape(),
                }
            }
            SetExpr::Insert(st)
            | SetExpr::Update(st)
            | SetExpr::Delete(st)
            | SetExpr::Merge(st) => self.statement(st, Some(scope)).unwrap_or_else(opaque_shape),
            #[allow(unreachable_patterns, reason = "sqlparser may add set expressions")]
            _ => opaque_shape(),
        }
    }

    /// Add the relations of a FROM list (and read their join constraints
    /// later, through the SELECT's generic visit).
    fn from(&mut self, from: &[TableWithJoins], scope: &mut Scope<'_>) {
        let mut star = Shape {
            columns: vec![],
            exact: true,
        };
        let mut merged = false;
        for twj in from {
            let start = scope.relations.len();
            let mut left = match self.factor(&twj.relation, scope) {
                Some((shape, inner_merged)) => {
                    merged |= inner_merged;
                    shape
                }
                None => self.added_shape(scope, start),
            };
            for join in &twj.joins {
                let start = scope.relations.len();
                let right = match self.factor(&join.relation, scope) {
                    Some((shape, inner_merged)) => {
                        merged |= inner_merged;
                        shape
                    }
                    None => self.added_shape(scope, start),
                };
                let right_join = matches!(
                    join.join_operator,
                    JoinOperator::Right(_) | JoinOperator::RightOuter(_)
                );
                left = match join_constraint(&join.join_operator) {
                    Some(JoinConstraint::Using(names) | JoinConstraint::UsingAlias(names, _)) => {
                        merged = true;
                        let names: Vec<String> = names
                            .iter()
                            .filter_map(|n| idents(n).ok()?.last().map(|i| self.fold(i)))
                            .collect();
                        merge_shared(left, right, &names, self.resolver.dialect, right_join)
                    }
                    Some(JoinConstraint::Natural) => {
                        merged = true;
                        let names: Vec<String> = left
                            .columns
                            .iter()
                            .filter(|c| right.columns.iter().any(|r| r.name == c.name))
                            .map(|c| c.name.clone())
                            .collect();
                        let exact = left.exact && right.exact;
                        let mut shape =
                            merge_shared(left, right, &names, self.resolver.dialect, right_join);
                        shape.exact &= exact;
                        shape
                    }
                    _ => {
                        left.exact &= right.exact;
                        left.columns.extend(right.columns);
                        left
                    }
                };
            }
            star.exact &= left.exact;
            star.columns.extend(left.columns);
        }
        if merged {
            scope.star = Some(star);
        }
    }

    /// The columns `*` yields from what one FROM item added to `scope`
    /// (relations from `start` on).
    fn added_shape(&self, scope: &Scope<'_>, start: usize) -> Shape {
        let mut shape = Shape {
            columns: vec![],
            exact: true,
        };
        for rel in &scope.relations[start..] {
            let s = self.relation_shape(rel);
            shape.exact &= s.exact;
            shape.columns.extend(s.columns);
        }
        shape
    }

    /// Add the relations of one FROM item to `scope`. For a parenthesised
    /// join: what its `*` yields, and whether it merges columns (`USING`).
    fn factor(&mut self, factor: &TableFactor, scope: &mut Scope<'_>) -> Option<(Shape, bool)> {
        let mut nested = None;
        match factor {
            TableFactor::Table {
                name,
                alias,
                args: None,
                ..
            } => {
                let rel = self.table_relation(name, alias.as_ref().map(|a| &a.name), Some(scope));
                let rel = match alias {
                    Some(a) if !a.columns.is_empty() => Relation {
                        body: Body::Derived(renamed(self.relation_shape(&rel), a, self)),
                        ..rel
                    },
                    _ => rel,
                };
                scope.relations.push(rel);
            }
            TableFactor::Derived {
                subquery, alias, ..
            } => {
                // LATERAL or not, the subquery may refer to what is left of it.
                let shape = self.query(subquery, Some(scope));
                let (names, shape) = match alias {
                    Some(a) => (vec![self.fold(&a.name)], renamed(shape, a, self)),
                    None => (vec![], shape),
                };
                scope.relations.push(Relation {
                    names,
                    body: Body::Derived(shape),
                });
            }
            TableFactor::NestedJoin {
                table_with_joins,
                alias,
            } => {
                let mut inner = Scope {
                    parent: Some(scope),
                    ..Default::default()
                };
                self.from(std::slice::from_ref(table_with_joins), &mut inner);
                let merged = inner.star.take();
                let relations = inner.relations;
                nested = Some(match merged {
                    Some(star) => (star, true),
                    None => {
                        let mut shape = Shape {
                            columns: vec![],
                            exact: true,
                        };
                        for r in &relations {
                            let s = self.relation_shape(r);
                            shape.exact &= s.exact;
                            shape.columns.extend(s.columns);
                        }
                        (shape, false)
                    }
                });
                if let Some(a) = alias {
                    let columns: Vec<Column> = relations
                        .iter()
                        .flat_map(|r| self.relation_shape(r).columns)
                        .collect();
                    scope.relations.push(Relation {
                        names: vec![self.fold(&a.name)],
                        body: Body::Derived(Shape {
                            columns,
                            exact: false,
                        }),
                    });
                }
                scope.relations.extend(relations);
            }
            other => {
                // Table functions, UNNEST, JSON_TABLE, PIVOT...: their rows
                // cannot be followed. Whatever they read is a read.
                self.read_visit(other, scope);
                let names = factor_alias(other)
                    .map(|a| vec![self.fold(&a.name)])
                    .unwrap_or_default();
                scope.relations.push(Relation {
                    names,
                    body: Body::Opaque,
                });
            }
        }
        nested
    }

    /// A named relation: a CTE in scope, or a base table.
    fn table_relation(
        &mut self,
        name: &ObjectName,
        alias: Option<&Ident>,
        scope: Option<&Scope<'_>>,
    ) -> Relation {
        let parts = idents(name).unwrap_or_default();
        let alias_names = alias.map(|a| vec![self.fold(a)]);
        if let [one] = parts.as_slice() {
            let folded = self.fold(one);
            let cte = scope.and_then(|s| s.cte(&folded)).cloned();
            if let Some(cte) = cte {
                let body = match cte {
                    Some(shape) => Body::Derived(shape),
                    None => Body::Opaque,
                };
                return Relation {
                    names: alias_names.unwrap_or(vec![folded]),
                    body,
                };
            }
        }
        match self.resolver.table(&parts) {
            Ok(table) => {
                self.tables.insert(table.clone());
                let columns = self.catalog.columns(&table);
                let names = alias_names.unwrap_or_else(|| {
                    vec![
                        table.table.clone(),
                        format!("{}.{}", table.schema, table.table),
                    ]
                });
                let body = match self.catalog.view(&table) {
                    Some(definition) => self.view_body(&table, &definition, columns.as_deref()),
                    None => Body::Table { table, columns },
                };
                Relation { names, body }
            }
            Err(_) => Relation {
                names: alias_names.unwrap_or_default(),
                body: Body::Opaque,
            },
        }
    }

    /// A `*` over a table reads every column it has, including any added
    /// since the column lists were read: policy's `columns` gets
    /// `schema.table.*` besides the columns named, so a column guard that
    /// also checks `schema.table.*` never depends on the lists being fresh.
    fn read_whole(&mut self, rel: &Relation) {
        if let Body::Table { table, .. } = &rel.body {
            self.reads.sources.insert(Source::AnyOf(table.clone()));
        }
    }

    /// A view, followed through its definition: each column depends on
    /// what its defining expression reads, and on the view's own column.
    /// `columns` are the view's column names as the catalog lists them.
    fn view_body(&mut self, view: &TableRef, definition: &str, columns: Option<&[String]>) -> Body {
        if self.view_depth >= MAX_VIEW_DEPTH {
            return Body::Opaque;
        }
        let parsed = super::parse(self.resolver.dialect, definition).ok();
        let (query, listed) = match parsed.and_then(|p| p.into_iter().next()) {
            Some(Statement::Query(q)) => (q, vec![]),
            Some(Statement::CreateView(cv)) => {
                let listed = cv.columns.iter().map(|c| self.fold(&c.name)).collect();
                (cv.query, listed)
            }
            _ => return Body::Opaque,
        };
        self.view_depth += 1;
        // The definition's names are the view's own: no scope of the statement.
        let shape = self.query(&query, None);
        self.view_depth -= 1;
        let names: Option<Vec<String>> = match columns {
            Some(c) => Some(c.to_vec()),
            None if !listed.is_empty() => Some(listed),
            None if shape.exact => Some(shape.columns.iter().map(|c| c.name.clone()).collect()),
            None => None,
        };
        let Some(names) = names else {
            // Neither the width nor the names are known.
            return Body::Derived(shape);
        };
        let mut out = if shape.exact && shape.columns.len() == names.len() {
            shape.columns
        } else {
            // Positions unknown: every view column may be any output.
            let mut all = Deps::default();
            for c in &shape.columns {
                all.add(&c.deps);
            }
            names
                .iter()
                .map(|_| Column {
                    name: String::new(),
                    deps: all.clone(),
                    bare: false,
                    count_only: false,
                })
                .collect()
        };
        for (c, name) in out.iter_mut().zip(names) {
            c.deps
                .sources
                .insert(Source::Column(view.clone(), name.clone()));
            c.name = name;
            c.bare = false;
        }
        Body::Derived(Shape {
            columns: out,
            exact: true,
        })
    }

    /// The columns a relation yields to `*`.
    fn relation_shape(&self, rel: &Relation) -> Shape {
        match &rel.body {
            Body::Table {
                table,
                columns: Some(cols),
            } => Shape {
                columns: cols
                    .iter()
                    .map(|c| Column {
                        name: c.clone(),
                        deps: Deps {
                            sources: [Source::Column(table.clone(), c.clone())].into(),
                            opaque: false,
                        },
                        bare: true,
                        count_only: false,
                    })
                    .collect(),
                exact: true,
            },
            Body::Table {
                table,
                columns: None,
            } => Shape {
                columns: vec![Column {
                    name: "*".into(),
                    deps: Deps {
                        sources: [Source::AnyOf(table.clone())].into(),
                        opaque: false,
                    },
                    bare: false,
                    count_only: false,
                }],
                exact: false,
            },
            Body::Derived(shape) => shape.clone(),
            Body::Opaque => opaque_shape(),
        }
    }

    fn projection(&mut self, items: &[SelectItem], scope: &Scope<'_>) -> Shape {
        let mut out = Shape {
            columns: vec![],
            exact: true,
        };
        for item in items {
            match item {
                SelectItem::UnnamedExpr(e) => out.columns.push(self.output(e, None, scope)),
                SelectItem::ExprWithAlias { expr, alias } => {
                    out.columns.push(self.output(expr, Some(alias), scope))
                }
                SelectItem::ExprWithAliases { expr, aliases } => {
                    for a in aliases {
                        out.columns.push(self.output(expr, Some(a), scope));
                    }
                }
                SelectItem::Wildcard(opts) => {
                    let mut cols = vec![];
                    let mut exact = true;
                    for rel in visible(scope) {
                        self.read_whole(rel);
                    }
                    if let Some(star) = &scope.star {
                        exact = star.exact;
                        cols.extend(star.columns.iter().cloned());
                    } else {
                        for rel in visible(scope) {
                            let s = self.relation_shape(rel);
                            exact &= s.exact;
                            cols.extend(s.columns);
                        }
                    }
                    out.exact &= exact && wildcard_plain(opts);
                    out.columns.extend(cols);
                    self.wildcard_options(opts, scope, &mut out);
                }
                SelectItem::QualifiedWildcard(kind, opts) => {
                    let shape = match kind {
                        SelectItemQualifiedWildcardKind::ObjectName(name) => {
                            let rels = self.named(name, scope);
                            if rels.is_empty() {
                                opaque_shape()
                            } else {
                                let mut cols = vec![];
                                let mut exact = rels.len() == 1;
                                for r in rels {
                                    self.read_whole(&r);
                                    let s = self.relation_shape(&r);
                                    exact &= s.exact;
                                    cols.extend(s.columns);
                                }
                                Shape {
                                    columns: cols,
                                    exact,
                                }
                            }
                        }
                        SelectItemQualifiedWildcardKind::Expr(e) => Shape {
                            columns: vec![Column {
                                name: "*".into(),
                                deps: self.expr(e, scope),
                                bare: false,
                                count_only: false,
                            }],
                            exact: false,
                        },
                    };
                    out.exact &= shape.exact && wildcard_plain(opts);
                    out.columns.extend(shape.columns);
                    self.wildcard_options(opts, scope, &mut out);
                }
            }
        }
        out
    }

    /// `* REPLACE (expr AS c)`: the replacing expressions feed the outputs.
    fn wildcard_options(
        &mut self,
        opts: &sqlparser::ast::WildcardAdditionalOptions,
        scope: &Scope<'_>,
        out: &mut Shape,
    ) {
        if let Some(replace) = &opts.opt_replace {
            for r in &replace.items {
                let d = self.expr(&r.expr, scope);
                for c in out.columns.iter_mut() {
                    c.deps.add(&d);
                }
            }
        }
    }

    fn output(&mut self, e: &Expr, alias: Option<&Ident>, scope: &Scope<'_>) -> Column {
        let deps = self.expr(e, scope);
        let inner = strip_nested(e);
        Column {
            // Folded as the database folds names, so references find it.
            name: alias
                .map(|a| self.fold(a))
                .unwrap_or_else(|| self.derived_name(inner)),
            bare: matches!(inner, Expr::Identifier(_) | Expr::CompoundIdentifier(_))
                && !deps.opaque,
            count_only: is_count(inner),
            deps,
        }
    }

    /// What an expression's value depends on (its reads are recorded too).
    fn expr(&mut self, e: &Expr, scope: &Scope<'_>) -> Deps {
        let mut v = ExprDeps {
            l: self,
            scope,
            deps: Deps::default(),
            nested: 0,
        };
        let _ = e.visit(&mut v);
        let deps = v.deps;
        self.reads.add(&deps);
        deps
    }

    /// Record as reads every column reference in `node` (resolved in `scope`).
    fn read_visit<T: Visit>(&mut self, node: &T, scope: &Scope<'_>) {
        let mut v = ExprDeps {
            l: self,
            scope,
            deps: Deps::default(),
            nested: 0,
        };
        let _ = node.visit(&mut v);
        let deps = v.deps;
        self.reads.add(&deps);
    }

    /// ORDER BY, LIMIT, OFFSET, FETCH of a query are reads.
    fn read_tail(&mut self, q: &Query, scope: &Scope<'_>) {
        self.read_visit(&q.order_by, scope);
        self.read_visit(&q.limit_clause, scope);
        self.read_visit(&q.fetch, scope);
    }

    fn read_shape(&mut self, shape: &Shape) {
        for c in &shape.columns {
            self.reads.add(&c.deps);
        }
    }

    /// Relations a qualifier names (`t`, `s.t`), innermost scope first.
    fn named(&self, name: &ObjectName, scope: &Scope<'_>) -> Vec<Relation> {
        let Ok(parts) = idents(name) else {
            return vec![];
        };
        let key = parts
            .iter()
            .map(|i| self.fold(i))
            .collect::<Vec<_>>()
            .join(".");
        let mut s = Some(scope);
        while let Some(sc) = s {
            let found: Vec<Relation> = sc
                .relations
                .iter()
                .filter(|r| r.names.contains(&key))
                .cloned()
                .collect();
            if !found.is_empty() {
                return found;
            }
            s = sc.parent;
        }
        vec![]
    }

    /// What a column reference (1 to 4 parts) depends on.
    fn column(&self, parts: &[Ident], scope: &Scope<'_>) -> Deps {
        match parts {
            [] => Deps::opaque(),
            [one] => {
                let col = self.fold(one);
                let mut s = Some(scope);
                while let Some(sc) = s {
                    let mut found = Deps::default();
                    let mut any = false;
                    for rel in &sc.relations {
                        if let Some(d) = self.in_relation(rel, &col, false) {
                            found.add(&d);
                            any = true;
                        }
                    }
                    if !any && let Some(c) = sc.aliases.iter().find(|c| c.name == col) {
                        // An output alias (ORDER BY, HAVING, GROUP BY on MySQL).
                        found.add(&c.deps);
                        any = true;
                    }
                    if !any {
                        // A whole row by its relation name (`row_to_json(t)`).
                        for rel in sc.relations.iter().filter(|r| r.names.contains(&col)) {
                            for c in self.relation_shape(rel).columns {
                                found.add(&c.deps);
                            }
                            any = true;
                        }
                    }
                    if any {
                        return found;
                    }
                    s = sc.parent;
                }
                // Unresolvable: it could be anything in the statement.
                Deps::opaque()
            }
            [qual @ .., col] => {
                let qual = ObjectName::from(qual.to_vec());
                let rels = self.named(&qual, scope);
                let col = self.fold(col);
                if rels.is_empty() {
                    // `a.b` may also be a composite field of column `a`.
                    let mut d = self.column(&parts[..1], scope);
                    if d.sources.is_empty() {
                        d.opaque = true;
                    }
                    return d;
                }
                let mut found = Deps::default();
                for rel in &rels {
                    match self.in_relation(rel, &col, true) {
                        Some(d) => found.add(&d),
                        None => found.opaque = true,
                    }
                }
                found
            }
        }
    }

    /// A column of one relation: None when the relation surely lacks it
    /// (unless `must`, then the whole relation).
    fn in_relation(&self, rel: &Relation, col: &str, must: bool) -> Option<Deps> {
        match &rel.body {
            Body::Table {
                table,
                columns: Some(cols),
            } => {
                if cols.iter().any(|c| c == col) {
                    Some(Deps {
                        sources: [Source::Column(table.clone(), col.to_string())].into(),
                        opaque: false,
                    })
                } else if must {
                    Some(Deps {
                        sources: [Source::AnyOf(table.clone())].into(),
                        opaque: false,
                    })
                } else {
                    None
                }
            }
            Body::Table {
                table,
                columns: None,
            } => Some(Deps {
                sources: [Source::Column(table.clone(), col.to_string())].into(),
                opaque: false,
            }),
            Body::Derived(shape) => {
                let mut d = Deps::default();
                let mut any = false;
                for c in shape
                    .columns
                    .iter()
                    .filter(|c| c.name == col || c.name == "*")
                {
                    d.add(&c.deps);
                    any = true;
                }
                if any || !shape.exact || must {
                    if !any {
                        for c in &shape.columns {
                            d.add(&c.deps);
                        }
                        if shape.columns.is_empty() {
                            d.opaque = true;
                        }
                    }
                    Some(d)
                } else {
                    None
                }
            }
            Body::Opaque => Some(Deps::opaque()),
        }
    }
}

/// The generic expression visit (read-only: nothing is copied): column
/// references resolve in `scope`; a subquery is walked on its own (its
/// outputs feed the value) and the visit then passes through it without
/// reading its expressions again (`nested`).
struct ExprDeps<'x, 'a, 's> {
    l: &'x mut Lineager<'a>,
    scope: &'x Scope<'s>,
    deps: Deps,
    /// Depth inside subqueries already accounted for.
    nested: usize,
}

impl Visitor for ExprDeps<'_, '_, '_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if self.nested == 0 {
            let shape = self.l.query(query, Some(self.scope));
            for c in &shape.columns {
                self.deps.add(&c.deps);
            }
            if !shape.exact {
                self.deps.opaque = true;
            }
        }
        self.nested += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
        self.nested -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        if self.nested > 0 {
            return ControlFlow::Continue(());
        }
        match expr {
            Expr::Identifier(i) => {
                let d = self.l.column(std::slice::from_ref(i), self.scope);
                self.deps.add(&d);
            }
            Expr::CompoundIdentifier(parts) => {
                let d = self.l.column(parts, self.scope);
                self.deps.add(&d);
            }
            Expr::Function(f) => self.function(f),
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

impl ExprDeps<'_, '_, '_> {
    /// `f(*)`, `f(t.*)`, and built-ins that read the relation a literal names.
    fn function(&mut self, f: &sqlparser::ast::Function) {
        let name = super::names::function_names(&f.name)
            .ok()
            .and_then(|n| n.last().cloned())
            .unwrap_or_default();
        let FunctionArguments::List(list) = &f.args else {
            return;
        };
        for (i, arg) in list.args.iter().enumerate() {
            let arg_expr = match arg {
                FunctionArg::Named { arg, .. }
                | FunctionArg::ExprNamed { arg, .. }
                | FunctionArg::Unnamed(arg) => arg,
            };
            match arg_expr {
                FunctionArgExpr::Wildcard | FunctionArgExpr::WildcardWithOptions(_) => {
                    if name != "count" {
                        for rel in visible(self.scope) {
                            for c in self.l.relation_shape(rel).columns {
                                self.deps.add(&c.deps);
                            }
                        }
                    }
                }
                FunctionArgExpr::QualifiedWildcard(q) => {
                    let rels = self.l.named(q, self.scope);
                    if rels.is_empty() {
                        self.deps.opaque = true;
                    }
                    for rel in rels {
                        for c in self.l.relation_shape(&rel).columns {
                            self.deps.add(&c.deps);
                        }
                    }
                }
                FunctionArgExpr::Expr(e) => {
                    if functions::relation_argument(self.l.resolver.dialect, &name) == Some(i) {
                        let table = match e {
                            Expr::Value(v) => match &v.value {
                                Value::SingleQuotedString(s) => {
                                    parse_table_literal(self.l.resolver, s).ok()
                                }
                                _ => None,
                            },
                            _ => None,
                        };
                        match table {
                            Some(t) => {
                                self.l.tables.insert(t.clone());
                                self.deps.sources.insert(Source::AnyOf(t));
                            }
                            None => self.deps.opaque = true,
                        }
                    }
                }
            }
        }
    }
}

/// Relations a bare `*` expands to: the innermost scope's.
fn visible<'s>(scope: &'s Scope<'_>) -> impl Iterator<Item = &'s Relation> {
    scope.relations.iter()
}

fn opaque_shape() -> Shape {
    Shape {
        columns: vec![Column {
            name: "*".into(),
            deps: Deps::opaque(),
            bare: false,
            count_only: false,
        }],
        exact: false,
    }
}

/// Apply `AS t(a, b)` column renames; a shape of unknown width stays so.
fn renamed(mut shape: Shape, alias: &TableAlias, l: &Lineager<'_>) -> Shape {
    if alias.columns.is_empty() {
        return shape;
    }
    if shape.exact {
        for (c, a) in shape.columns.iter_mut().zip(&alias.columns) {
            c.name = l.fold(&a.name);
        }
    } else {
        // Unknown positions: every renamed column may be any of them.
        let mut all = Deps::default();
        for c in &shape.columns {
            all.add(&c.deps);
        }
        shape.columns = alias
            .columns
            .iter()
            .map(|a| Column {
                name: l.fold(&a.name),
                deps: all.clone(),
                bare: false,
                count_only: false,
            })
            .collect();
    }
    shape
}

/// Replace every relation of a FROM list by a placeholder (already in scope),
/// keeping join constraints for the generic read visit.
fn blank_factors(from: &mut [TableWithJoins]) {
    for twj in from {
        blank(&mut twj.relation);
        for j in &mut twj.joins {
            blank(&mut j.relation);
        }
    }
}

fn blank(factor: &mut TableFactor) {
    match factor {
        TableFactor::Table { args: None, .. } | TableFactor::Derived { .. } => {
            *factor = PLACEHOLDER.clone();
        }
        TableFactor::NestedJoin {
            table_with_joins, ..
        } => blank_factors(std::slice::from_mut(table_with_joins)),
        // Opaque factors were read where they were met.
        _ => *factor = PLACEHOLDER.clone(),
    }
}

fn factor_alias(factor: &TableFactor) -> Option<&TableAlias> {
    match factor {
        TableFactor::Table { alias, .. }
        | TableFactor::Derived { alias, .. }
        | TableFactor::TableFunction { alias, .. }
        | TableFactor::Function { alias, .. }
        | TableFactor::UNNEST { alias, .. }
        | TableFactor::JsonTable { alias, .. }
        | TableFactor::NestedJoin { alias, .. } => alias.as_ref(),
        _ => None,
    }
}

fn wildcard_plain(opts: &sqlparser::ast::WildcardAdditionalOptions) -> bool {
    opts.opt_exclude.is_none()
        && opts.opt_except.is_none()
        && opts.opt_rename.is_none()
        && opts.opt_ilike.is_none()
}

fn strip_nested(e: &Expr) -> &Expr {
    match e {
        Expr::Nested(inner) => strip_nested(inner),
        other => other,
    }
}

fn is_count(e: &Expr) -> bool {
    match e {
        Expr::Function(f) => {
            f.over.is_none()
                && super::names::function_names(&f.name)
                    .ok()
                    .and_then(|n| n.last().cloned())
                    .is_some_and(|n| n == "count")
        }
        _ => false,
    }
}

/// The columns of a join that merges `names` (`USING`, `NATURAL`), as each
/// database orders them: each shared column once, depending on both sides.
/// PostgreSQL: the shared columns first in `names` order, then the rest of
/// the left, then the rest of the right. MySQL/MariaDB: the same with the
/// shared ones in the order of the first table, which is the right one for
/// a `RIGHT JOIN` (whose own columns then come before the left's). SQLite:
/// the left's columns where they are, then the right's not shared. A name
/// missing on a side makes the width unknown.
fn merge_shared(
    left: Shape,
    right: Shape,
    names: &[String],
    dialect: Dialect,
    right_join: bool,
) -> Shape {
    let mut exact = left.exact && right.exact;
    for n in names {
        let sides = [&left, &right]
            .iter()
            .filter(|side| side.columns.iter().any(|c| &c.name == n))
            .count();
        exact &= sides == 2;
    }
    let shared = |n: &str| {
        let mut c = Column {
            name: n.to_string(),
            deps: Deps::default(),
            bare: false,
            count_only: false,
        };
        for side in [&left, &right] {
            if let Some(x) = side.columns.iter().find(|x| x.name == n) {
                c.deps.add(&x.deps);
            }
        }
        c
    };
    let is_shared = |c: &Column| names.contains(&c.name);
    let unique = |side: &Shape| -> Vec<Column> {
        side.columns
            .iter()
            .filter(|c| !is_shared(c))
            .cloned()
            .collect()
    };
    let mut columns = Vec::with_capacity(left.columns.len() + right.columns.len());
    match dialect {
        Dialect::Sqlite => {
            for c in &left.columns {
                columns.push(if is_shared(c) {
                    shared(&c.name)
                } else {
                    c.clone()
                });
            }
            columns.extend(unique(&right));
        }
        Dialect::Postgres => {
            columns.extend(names.iter().map(|n| shared(n)));
            columns.extend(unique(&left));
            columns.extend(unique(&right));
        }
        Dialect::MySql => {
            let (first, second) = if right_join {
                (&right, &left)
            } else {
                (&left, &right)
            };
            let mut seen: Vec<&str> = vec![];
            for c in first.columns.iter().filter(|c| is_shared(c)) {
                if !seen.contains(&c.name.as_str()) {
                    seen.push(&c.name);
                    columns.push(shared(&c.name));
                }
            }
            columns.extend(unique(first));
            columns.extend(unique(second));
        }
    }
    Shape { columns, exact }
}

/// The constraint of a join, for the kinds that have one.
fn join_constraint(op: &JoinOperator) -> Option<&JoinConstraint> {
    match op {
        JoinOperator::Join(c)
        | JoinOperator::Inner(c)
        | JoinOperator::Left(c)
        | JoinOperator::LeftOuter(c)
        | JoinOperator::Right(c)
        | JoinOperator::RightOuter(c)
        | JoinOperator::FullOuter(c)
        | JoinOperator::CrossJoin(c)
        | JoinOperator::StraightJoin(c) => Some(c),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
