//! Statement classification: for each statement the walk meets (top-level or
//! nested), its kind, its own actions and their targets, and the flags that
//! feed `has_where` and `read_only`.
//!
//! Reads are not decided here: every table name the walk meets that is not a
//! claimed target becomes a `sql:select`. Here we only claim write/DDL/admin
//! targets. An action on no named table goes on the connection.
//!
//! Invariant: the `match` has no permissive default. A statement type not
//! listed is denied with its name, so a new sqlparser variant cannot slip
//! through as "probably a read".

use sqlparser::ast::{
    BinaryOperator, CommentObject, CopySource, CopyTarget, Expr, FromTable, GrantObjects,
    MergeAction, ObjectName, ObjectType, OnConflictAction, OnInsert, Set, SqliteOnConflict,
    Statement, TableFactor, TableObject, TableWithJoins, Visit, Visitor,
};
use std::ops::ControlFlow;

use super::walk::{Action, Kind, Walk, first_words};

impl Walk<'_> {
    /// Classify one statement (see module doc).
    pub(super) fn classify(&mut self, statement: &Statement) -> Result<(), String> {
        use Action::*;
        let (kind, detail, writes) = match statement {
            Statement::Query(_) => (Kind::Select, "select", false),
            Statement::Explain { analyze, .. } => {
                // Transparent: the explained statement is classified on its own
                // visit, with its full actions, ANALYZE or not (fail closed).
                self.details.push(if *analyze {
                    "explain analyze"
                } else {
                    "explain"
                });
                return Ok(());
            }
            Statement::ExplainTable { table_name, .. } => {
                self.on_table(Select, table_name)?;
                (Kind::Select, "describe table", false)
            }
            Statement::Insert(insert) => {
                if !insert.optimizer_hints.is_empty() {
                    return Err(hint_reason());
                }
                if insert.multi_table_insert_type.is_some()
                    || !insert.multi_table_into_clauses.is_empty()
                {
                    return Err(
                        "multi-table INSERT is not supported; insert into one table per statement"
                            .into(),
                    );
                }
                let TableObject::TableName(name) = &insert.table else {
                    return Err("INSERT INTO a table function or subquery is not supported; insert into a table".into());
                };
                self.on_table(Insert, name)?;
                // REPLACE / INSERT OR REPLACE delete conflicting rows; upserts update them.
                if insert.replace_into
                    || insert.overwrite
                    || matches!(insert.or, Some(SqliteOnConflict::Replace))
                {
                    self.on_table(Delete, name)?;
                }
                match &insert.on {
                    Some(OnInsert::DuplicateKeyUpdate(_)) => self.on_table(Update, name)?,
                    Some(OnInsert::OnConflict(c))
                        if matches!(c.action, OnConflictAction::DoUpdate(_)) =>
                    {
                        self.on_table(Update, name)?
                    }
                    _ => {}
                }
                (
                    Kind::Insert,
                    if insert.replace_into {
                        "replace"
                    } else {
                        "insert"
                    },
                    true,
                )
            }
            Statement::Update(update) => {
                if !update.optimizer_hints.is_empty() {
                    return Err(hint_reason());
                }
                // Every table of the UPDATE's own table list may be written
                // (MySQL multi-table UPDATE); FROM tables are only read.
                self.write_targets(Update, std::slice::from_ref(&update.table))?;
                if !filters_rows(update.selection.as_ref()) {
                    self.unfiltered = true;
                }
                (Kind::Update, "update", true)
            }
            Statement::Delete(delete) => {
                if !delete.optimizer_hints.is_empty() {
                    return Err(hint_reason());
                }
                let from = match &delete.from {
                    FromTable::WithFromKeyword(v) | FromTable::WithoutKeyword(v) => v,
                };
                if delete.tables.is_empty() {
                    self.write_targets(Delete, from)?;
                } else {
                    // MySQL `DELETE a, b FROM t1 a JOIN t2 b ...`: targets may be aliases.
                    for target in &delete.tables {
                        match alias_target(from, target) {
                            Some(real) => {
                                let table = self.resolver.object(real)?;
                                self.claim(target);
                                self.access(Delete, Some(table));
                            }
                            None => self.on_table(Delete, target)?,
                        }
                    }
                }
                if !filters_rows(delete.selection.as_ref()) {
                    self.unfiltered = true;
                }
                (Kind::Delete, "delete", true)
            }
            Statement::Merge(merge) => {
                if !merge.optimizer_hints.is_empty() {
                    return Err(hint_reason());
                }
                let TableFactor::Table {
                    name, args: None, ..
                } = &merge.table
                else {
                    return Err("MERGE into something other than a table is not supported".into());
                };
                for clause in &merge.clauses {
                    match clause.action {
                        MergeAction::Insert(_) => self.on_table(Insert, name)?,
                        MergeAction::Update(_) => self.on_table(Update, name)?,
                        MergeAction::Delete { .. } => self.on_table(Delete, name)?,
                        MergeAction::DoNothing { .. } => {}
                    }
                }
                // Claim the target even when all clauses DO NOTHING.
                self.claim(name);
                (Kind::Merge, "merge", true)
            }

            // === DDL on tables ===
            Statement::CreateTable(ct) => {
                if ct.temporary {
                    // Created in the session's temporary schema, not the default one.
                    self.on_temporary_table(&ct.name)?;
                } else {
                    self.on_table(Ddl, &ct.name)?;
                }
                (
                    Kind::Ddl,
                    if ct.query.is_some() {
                        "create table as"
                    } else {
                        "create table"
                    },
                    true,
                )
            }
            Statement::CreateVirtualTable { name, .. } => {
                self.on_table(Ddl, name)?;
                (Kind::Ddl, "create virtual table", true)
            }
            Statement::CreateView(cv) => {
                self.on_table(Ddl, &cv.name)?;
                (
                    Kind::Ddl,
                    if cv.materialized {
                        "create materialized view"
                    } else {
                        "create view"
                    },
                    true,
                )
            }
            Statement::CreateIndex(ci) => {
                self.on_table(Ddl, &ci.table_name)?;
                (Kind::Ddl, "create index", true)
            }
            Statement::CreateTrigger(ct) => {
                self.on_table(Ddl, &ct.table_name)?;
                (Kind::Ddl, "create trigger (body not analysed)", true)
            }
            Statement::AlterTable(at) => {
                self.on_table(Ddl, &at.name)?;
                (Kind::Ddl, "alter table", true)
            }
            Statement::AlterView(av) => {
                self.on_table(Ddl, &av.name)?;
                (Kind::Ddl, "alter view", true)
            }
            Statement::RefreshMaterializedView(r) => {
                self.on_table(Ddl, &r.name)?;
                (Kind::Ddl, "refresh materialized view", true)
            }
            Statement::Truncate(t) => {
                self.on_tables_or_connection(Ddl, t.table_names.iter().map(|t| &t.name))?;
                self.unfiltered = true;
                (Kind::Ddl, "truncate", true)
            }
            Statement::RenameTable(renames) => {
                for r in renames {
                    self.on_table(Ddl, &r.old_name)?;
                    self.on_table(Ddl, &r.new_name)?;
                }
                (Kind::Ddl, "rename table", true)
            }
            Statement::Drop {
                object_type,
                names,
                table,
                ..
            } => match object_type {
                ObjectType::Table
                | ObjectType::View
                | ObjectType::MaterializedView
                | ObjectType::ForeignTable => {
                    self.on_tables_or_connection(Ddl, names)?;
                    (Kind::Ddl, "drop table", true)
                }
                ObjectType::Role | ObjectType::User | ObjectType::Group => {
                    self.claim_all(names);
                    self.access(Admin, None);
                    (Kind::Admin, "drop role", true)
                }
                _ => {
                    // DROP INDEX/SCHEMA/DATABASE/SEQUENCE/TYPE...: MySQL names the index's table.
                    self.claim_all(names);
                    self.on_tables_or_connection(Ddl, table.iter())?;
                    (Kind::Ddl, "drop", true)
                }
            },
            Statement::Comment {
                object_type,
                object_name,
                ..
            } => {
                match object_type {
                    CommentObject::Table
                    | CommentObject::View
                    | CommentObject::MaterializedView => self.on_table(Ddl, object_name)?,
                    _ => {
                        self.claim(object_name);
                        self.access(Ddl, None);
                    }
                }
                (Kind::Ddl, "comment", true)
            }

            // === DDL on the connection ===
            Statement::CreateSchema { .. }
            | Statement::CreateDatabase { .. }
            | Statement::CreateSequence { .. }
            | Statement::CreateType { .. }
            | Statement::CreateDomain(_)
            | Statement::DropDomain(_)
            | Statement::AlterSchema(_)
            | Statement::AlterIndex { .. }
            | Statement::AlterType(_)
            | Statement::DropTrigger(_)
            | Statement::DropFunction(_)
            | Statement::DropProcedure { .. }
            | Statement::AlterFunction(_)
            | Statement::CreatePolicy(_)
            | Statement::AlterPolicy(_)
            | Statement::DropPolicy(_)
            | Statement::CreateCollation(_)
            | Statement::CreateAggregate(_)
            | Statement::CreateRule(_)
            | Statement::DropRule(_) => {
                self.access(Ddl, None);
                (Kind::Ddl, "ddl", true)
            }
            Statement::CreateFunction(_) | Statement::CreateProcedure { .. } => {
                self.access(Ddl, None);
                (
                    Kind::Ddl,
                    "create function (body not visible to Tollgate)",
                    true,
                )
            }

            // === admin ===
            Statement::Set(set) => {
                if set_changes_resolution(set) {
                    self.changes_resolution = true;
                }
                self.access(Admin, None);
                (
                    Kind::Admin,
                    if matches!(set, Set::SetRole { .. }) {
                        "set role"
                    } else {
                        "set"
                    },
                    true,
                )
            }
            Statement::Reset(_) | Statement::Discard { .. } => {
                self.access(Admin, None);
                (Kind::Admin, "reset", true)
            }
            Statement::Use(_) => {
                self.changes_resolution = true;
                self.access(Admin, None);
                (Kind::Admin, "use", true)
            }
            Statement::StartTransaction { .. }
            | Statement::Commit { .. }
            | Statement::Rollback { .. }
            | Statement::Savepoint { .. }
            | Statement::ReleaseSavepoint { .. } => {
                self.access(Admin, None);
                (Kind::Admin, "transaction control", true)
            }
            Statement::Copy {
                source, to, target, ..
            } => {
                match source {
                    CopySource::Table { table_name, .. } => {
                        self.on_table(Admin, table_name)?;
                        self.on_table(if *to { Select } else { Insert }, table_name)?;
                    }
                    CopySource::Query(_) => self.access(Admin, None),
                }
                let detail = match target {
                    CopyTarget::Program { .. } => {
                        "copy program (runs a shell command on the server)"
                    }
                    CopyTarget::File { .. } => "copy file (server file system)",
                    _ => "copy",
                };
                (Kind::Admin, detail, true)
            }
            Statement::Call(f) => {
                let args: &[sqlparser::ast::FunctionArg] = match &f.args {
                    sqlparser::ast::FunctionArguments::List(l) => &l.args,
                    _ => &[],
                };
                self.function(&f.name, args, true)?;
                self.access(Admin, None);
                (Kind::Admin, "call", true)
            }
            Statement::Prepare { .. } => {
                self.access(Admin, None);
                (Kind::Admin, "prepare", true)
            }
            Statement::Execute { name, .. } => {
                if let Some(n) = name {
                    self.claim(n);
                }
                self.access(Admin, None);
                (
                    Kind::Admin,
                    "execute (prepared statement not visible)",
                    true,
                )
            }
            Statement::Deallocate { .. } => {
                self.access(Admin, None);
                (Kind::Admin, "deallocate", true)
            }
            Statement::Declare { .. } | Statement::Fetch { .. } | Statement::Close { .. } => {
                self.access(Admin, None);
                (Kind::Admin, "cursor", true)
            }
            Statement::Lock(lock) => {
                self.on_tables_or_connection(Admin, lock.tables.iter().map(|t| &t.name))?;
                (Kind::Admin, "lock", true)
            }
            Statement::LockTables { .. } | Statement::UnlockTables => {
                self.access(Admin, None);
                (Kind::Admin, "lock tables", true)
            }
            Statement::Vacuum(v) => {
                self.on_tables_or_connection(Admin, v.table_name.iter())?;
                (Kind::Admin, "vacuum", true)
            }
            Statement::Analyze(a) => {
                self.on_tables_or_connection(Admin, a.table_name.iter())?;
                (Kind::Admin, "analyze", true)
            }
            Statement::OptimizeTable { name, .. } => {
                self.on_table(Admin, name)?;
                (Kind::Admin, "optimize table", true)
            }
            Statement::Pragma { .. } => {
                self.access(Admin, None);
                (Kind::Admin, "pragma", true)
            }
            Statement::AttachDatabase { .. } | Statement::DetachDuckDBDatabase { .. } => {
                self.changes_resolution = true;
                self.access(Admin, None);
                (
                    Kind::Admin,
                    "attach database (opens a file on the server)",
                    true,
                )
            }
            Statement::Grant(g) => {
                self.grant_objects(g.objects.as_ref())?;
                (Kind::Admin, "grant", true)
            }
            Statement::Revoke(r) => {
                self.grant_objects(r.objects.as_ref())?;
                (Kind::Admin, "revoke", true)
            }
            Statement::CreateRole(_)
            | Statement::AlterRole { .. }
            | Statement::CreateUser(_)
            | Statement::AlterUser(_)
            | Statement::AlterDefaultPrivileges(_)
            | Statement::CreateExtension(_)
            | Statement::DropExtension(_)
            | Statement::CreateServer(_)
            | Statement::CreateForeignDataWrapper(_)
            | Statement::CreateUserMapping(_)
            | Statement::CreateForeignTable(_)
            | Statement::Kill { .. }
            | Statement::Flush { .. }
            | Statement::LISTEN { .. }
            | Statement::UNLISTEN { .. }
            | Statement::NOTIFY { .. }
            | Statement::LoadData { .. }
            | Statement::Load { .. }
            | Statement::Install { .. } => {
                self.access(Admin, None);
                (Kind::Admin, "admin", true)
            }
            Statement::ShowFunctions { .. }
            | Statement::ShowVariable { .. }
            | Statement::ShowStatus { .. }
            | Statement::ShowVariables { .. }
            | Statement::ShowCreate { .. }
            | Statement::ShowColumns { .. }
            | Statement::ShowDatabases { .. }
            | Statement::ShowSchemas { .. }
            | Statement::ShowTables { .. }
            | Statement::ShowViews { .. }
            | Statement::ShowCollation { .. }
            | Statement::ShowCharset(_)
            | Statement::ShowProcessList { .. } => {
                self.access(Admin, None);
                (Kind::Admin, "show", false)
            }
            other => {
                return Err(format!(
                    "statement {} ... is not supported by Tollgate's SQL analysis; use plain SELECT/INSERT/UPDATE/DELETE or DDL",
                    first_words(&other.to_string())
                ));
            }
        };
        self.kinds.push(kind);
        self.details.push(detail);
        self.writes |= writes;
        Ok(())
    }

    fn claim_all(&mut self, names: &[ObjectName]) {
        for n in names {
            self.claim(n);
        }
    }

    /// Every plain table in these FROM items is a write target of `action`.
    fn write_targets(&mut self, action: Action, items: &[TableWithJoins]) -> Result<(), String> {
        let mut any = false;
        for item in items {
            for factor in
                std::iter::once(&item.relation).chain(item.joins.iter().map(|j| &j.relation))
            {
                match factor {
                    TableFactor::Table {
                        name, args: None, ..
                    } => {
                        self.on_table(action, name)?;
                        any = true;
                    }
                    TableFactor::Derived { .. } | TableFactor::NestedJoin { .. } if any => {}
                    other => {
                        return Err(format!(
                            "{} target {} is not a plain table; Tollgate cannot tell what it writes",
                            action.id(),
                            first_words(&other.to_string())
                        ));
                    }
                }
            }
        }
        if !any {
            return Err(format!(
                "{} without a target table cannot be analysed",
                action.id()
            ));
        }
        Ok(())
    }

    fn grant_objects(&mut self, objects: Option<&GrantObjects>) -> Result<(), String> {
        match objects {
            Some(GrantObjects::Tables(names)) | Some(GrantObjects::Views(names)) => {
                self.on_tables_or_connection(Action::Admin, names)
            }
            _ => {
                self.access(Action::Admin, None);
                Ok(())
            }
        }
    }
}

/// For MySQL multi-table DELETE: the real table behind an alias named as target.
fn alias_target<'a>(from: &'a [TableWithJoins], target: &ObjectName) -> Option<&'a ObjectName> {
    let [sqlparser::ast::ObjectNamePart::Identifier(t)] = target.0.as_slice() else {
        return None;
    };
    from.iter()
        .flat_map(|item| {
            std::iter::once(&item.relation).chain(item.joins.iter().map(|j| &j.relation))
        })
        .find_map(|f| match f {
            TableFactor::Table {
                name,
                alias: Some(a),
                ..
            } if a.name.value.eq_ignore_ascii_case(&t.value) => Some(name),
            _ => None,
        })
}

fn hint_reason() -> String {
    "optimizer hint comment /*+ ... */ found; remove it (hints can change session settings Tollgate does not analyse)"
        .into()
}

/// SET search_path / SET SCHEMA change how later unqualified names resolve.
fn set_changes_resolution(set: &Set) -> bool {
    let s = set.to_string().to_ascii_lowercase();
    s.contains("search_path") || s.starts_with("set schema")
}

/// Does this WHERE really filter rows? `None`, and conditions that are the
/// same for every row (no column referenced: `1=1`, `true`, `'a'='a'`;
/// `x = x`; `... OR <such>`), count as no WHERE. A heuristic that errs
/// towards "no WHERE", so `forbid ... unless has_where` stays meaningful.
pub(crate) fn filters_rows(selection: Option<&Expr>) -> bool {
    match selection {
        None => false,
        Some(e) => !trivially_true(e),
    }
}

fn trivially_true(e: &Expr) -> bool {
    match e {
        Expr::Nested(inner) => trivially_true(inner),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Or,
            right,
        } => trivially_true(left) || trivially_true(right),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => trivially_true(left) && trivially_true(right),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq | BinaryOperator::GtEq | BinaryOperator::LtEq,
            right,
        } if left == right => true,
        Expr::IsNotNull(inner) | Expr::IsTrue(inner) => {
            trivially_true(inner) || !mentions_column(inner)
        }
        other => !mentions_column(other),
    }
}

/// Does the expression reference a column anywhere (subqueries included)?
fn mentions_column(e: &Expr) -> bool {
    struct Find;
    impl Visitor for Find {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            match e {
                Expr::Identifier(_) | Expr::CompoundIdentifier(_) => ControlFlow::Break(()),
                _ => ControlFlow::Continue(()),
            }
        }
    }
    e.visit(&mut Find).is_break()
}
