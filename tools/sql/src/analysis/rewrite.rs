//! The executed text qualifies every name with exactly what policy saw.
//!
//! The walk records, by node address, how names and literals must change
//! ([`Rewrites`]); [`Rewrites::apply`] makes those changes on the same AST
//! with sqlparser's mutable visitor and fails when a recorded node was not
//! reached (so a name the rewrite missed can never run unqualified).
//! `analyse` then prints the result and proves it parses back to the same AST.

use std::ops::ControlFlow;

use sqlparser::ast::{
    CopySource, Expr, GrantObjects, Ident, ObjectName, Query, SetExpr, Statement, Table,
    TableFactor, Value, ValueWithSpan, VisitMut, VisitorMut,
};
use sqlparser::tokenizer::Span;

use super::TableRef;

/// Changes to make, keyed by the address of the node in the parsed statement.
#[derive(Debug, Default)]
pub(crate) struct Rewrites {
    names: Vec<(*const ObjectName, ObjectName, bool)>,
    literals: Vec<(*const Expr, String, bool)>,
    tables: Vec<(*const Table, TableRef, bool)>,
}

impl Rewrites {
    /// `name` executes as `to`.
    pub fn name(&mut self, name: &ObjectName, to: ObjectName) {
        let at = name as *const ObjectName;
        if !self.names.iter().any(|(p, _, _)| *p == at) {
            self.names.push((at, to, false));
        }
    }

    /// The string literal `expr` executes as `text`.
    pub fn literal(&mut self, expr: &Expr, text: String) {
        self.literals.push((expr as *const Expr, text, false));
    }

    /// `TABLE t` executes as `TABLE schema.t`.
    pub fn table_command(&mut self, table: &Table, to: &TableRef) {
        self.tables.push((table as *const Table, to.clone(), false));
    }

    /// Apply every change to `statement` (the same statement the walk saw,
    /// not moved since). `Err` names a change that found no node.
    pub fn apply(mut self, statement: &mut Statement) -> Result<(), String> {
        let mut apply = Apply { r: &mut self };
        let _ = statement.visit(&mut apply);
        if let Some((_, to, _)) = self.names.iter().find(|(_, _, done)| !done) {
            return Err(format!(
                "cannot qualify the name {to} in the executed statement; write it schema-qualified"
            ));
        }
        if self.literals.iter().any(|(_, _, done)| !done)
            || self.tables.iter().any(|(_, _, done)| !done)
        {
            return Err(
                "cannot qualify a table name in the executed statement; write it schema-qualified"
                    .into(),
            );
        }
        Ok(())
    }
}

struct Apply<'a> {
    r: &'a mut Rewrites,
}

impl Apply<'_> {
    fn name(&mut self, name: &mut ObjectName) {
        let at = name as *const ObjectName;
        if let Some((_, to, done)) = self.r.names.iter_mut().find(|(p, _, _)| *p == at) {
            *name = to.clone();
            *done = true;
        }
    }

    fn set_expr(&mut self, body: &mut SetExpr) {
        match body {
            SetExpr::SetOperation { left, right, .. } => {
                self.set_expr(left);
                self.set_expr(right);
            }
            SetExpr::Table(t) => {
                let at = &**t as *const Table;
                if let Some((_, to, done)) = self.r.tables.iter_mut().find(|(p, _, _)| *p == at) {
                    t.schema_name = Some(Ident::with_quote('"', to.schema.clone()));
                    t.table_name = Some(Ident::with_quote('"', to.table.clone()));
                    *done = true;
                }
            }
            _ => {}
        }
    }
}

impl VisitorMut for Apply<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        self.set_expr(&mut query.body);
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &mut ObjectName) -> ControlFlow<()> {
        self.name(relation);
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        if let TableFactor::Function { name, .. } | TableFactor::Table { name, .. } = factor {
            self.name(name);
        }
        ControlFlow::Continue(())
    }

    /// Names that sqlparser's visitor does not present as relations.
    fn pre_visit_statement(&mut self, statement: &mut Statement) -> ControlFlow<()> {
        match statement {
            Statement::Call(f) => self.name(&mut f.name),
            Statement::Drop { names, table, .. } => names
                .iter_mut()
                .chain(table.iter_mut())
                .for_each(|n| self.name(n)),
            Statement::Comment { object_name, .. } => self.name(object_name),
            Statement::Grant(g) => grant_names(g.objects.as_mut(), |n| self.name(n)),
            Statement::Revoke(r) => grant_names(r.objects.as_mut(), |n| self.name(n)),
            Statement::Copy {
                source: CopySource::Table { table_name, .. },
                ..
            } => self.name(table_name),
            Statement::Vacuum(v) => v.table_name.iter_mut().for_each(|n| self.name(n)),
            Statement::Analyze(a) => a.table_name.iter_mut().for_each(|n| self.name(n)),
            Statement::CreateTrigger(t) => self.name(&mut t.table_name),
            Statement::CreateIndex(i) => self.name(&mut i.table_name),
            Statement::Truncate(t) => t
                .table_names
                .iter_mut()
                .for_each(|t| self.name(&mut t.name)),
            Statement::Lock(l) => l.tables.iter_mut().for_each(|t| self.name(&mut t.name)),
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let at = expr as *const Expr;
        if let Some((_, text, done)) = self.r.literals.iter_mut().find(|(p, _, _)| *p == at) {
            *expr = Expr::Value(ValueWithSpan {
                value: Value::SingleQuotedString(text.clone()),
                span: Span::empty(),
            });
            *done = true;
        } else if let Expr::Function(f) = expr {
            self.name(&mut f.name);
        }
        ControlFlow::Continue(())
    }
}

fn grant_names(objects: Option<&mut GrantObjects>, mut f: impl FnMut(&mut ObjectName)) {
    if let Some(GrantObjects::Tables(names) | GrantObjects::Views(names)) = objects {
        names.iter_mut().for_each(&mut f);
    }
}
