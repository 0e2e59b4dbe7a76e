//! The blast-radius guard of a writing call: each engine tallies the rows its
//! statements changed and asks [`Tally::check`] right before COMMIT; past
//! the cap (`@max_affected_rows` on a permit, `max_affected_rows` on the
//! connection, the smaller wins) the engine returns the error instead of
//! committing, so its usual error path rolls the transaction back.
//!
//! What counts, per call (the sum over its statements): the rows an INSERT,
//! UPDATE, DELETE or MERGE reports as affected (MySQL/MariaDB: rows matched,
//! not only changed), the rows a writing statement returns (RETURNING, or a
//! SELECT whose CTE writes), and where the database keeps a per-transaction
//! count of changed rows, that count when it is higher (PostgreSQL:
//! `pg_stat_xact_user_tables`, which also sees writes done by functions and
//! triggers; SQLite: `total_changes()`, which sees trigger writes). DDL
//! (TRUNCATE, DROP) changes no counted row: guard it with `sql:ddl` policy.

use gateway_core::connector::{AffectedLimit, ExecuteError};

use crate::prepared::QueryCall;
use crate::result::RowSet;

/// Statement kinds that change rows.
fn writes(kind: &str) -> bool {
    matches!(kind, "insert" | "update" | "delete" | "merge")
}

/// Rows changed so far by one call, against its cap.
#[derive(Debug, Clone)]
pub struct Tally {
    limit: Option<AffectedLimit>,
    rows: u64,
    at_least: bool,
}

impl Tally {
    /// A tally for `call` (a no-op when the call has no cap or is read-only).
    /// A capped call of several statements is refused before anything runs
    /// when one of them may commit on its own (transaction control is an
    /// `admin` statement; on MySQL/MariaDB, `ddl_commits`, DDL commits
    /// implicitly too): the rollback could not undo what came before it.
    pub fn new(call: &QueryCall, ddl_commits: bool) -> Result<Self, ExecuteError> {
        let tally = Tally {
            limit: call.max_affected.clone().filter(|_| !call.read_only),
            rows: 0,
            at_least: false,
        };
        if let Some(limit) = &tally.limit
            && call.statements.len() > 1
            && let Some(st) = call
                .statements
                .iter()
                .find(|s| s.kind == "admin" || (ddl_commits && s.kind == "ddl"))
        {
            return Err(ExecuteError::Other(format!(
                "this call may change at most {} rows (set by {}) and mixes a {} statement, which \
                 can commit on its own, with other statements, so the cap could not undo it; run \
                 it in a call of its own; nothing was changed",
                limit.max, limit.set_by, st.kind
            )));
        }
        Ok(tally)
    }

    /// True when a cap applies (engines skip their extra counting query otherwise).
    pub fn active(&self) -> bool {
        self.limit.is_some()
    }

    /// A statement of `kind` reported `affected` rows.
    pub fn statement(&mut self, kind: &str, affected: u64) {
        if writes(kind) {
            self.rows = self.rows.saturating_add(affected);
        }
    }

    /// A statement of `kind` returned `set`: a writing one changed at least
    /// its rows (all of them unless a cap cut the set).
    pub fn returned(&mut self, kind: &str, set: &RowSet) {
        if writes(kind) {
            self.rows = self.rows.saturating_add(set.rows.len() as u64);
            self.at_least |= set.truncated;
        }
    }

    /// The database's own count of rows the transaction changed.
    pub fn observed(&mut self, total: u64) {
        if total >= self.rows {
            self.rows = total;
            self.at_least = false;
        }
    }

    /// Ok when within the cap. A count that stopped early (a RETURNING
    /// result cut by the row/byte cap) is only a lower bound: over the cap
    /// is over, anything else cannot be vouched for and fails closed too.
    pub fn check(&self) -> Result<(), ExecuteError> {
        let Some(limit) = &self.limit else {
            return Ok(());
        };
        if !self.at_least {
            return limit.check(self.rows, false);
        }
        // The cut set held `rows`; at least one more row was there.
        let lower = self.rows.saturating_add(1);
        limit.check(lower, true)?;
        Err(ExecuteError::Other(format!(
            "cannot count the rows this call affects: a writing statement returned more rows than \
             the result cap, so at least {lower} rows changed and the limit of {} set by {} cannot \
             be checked; nothing was changed (lower the rows the write returns, or raise `max_rows`)",
            limit.max, limit.set_by
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prepared::PreparedStatement;
    use crate::result::Caps;

    fn call(max: Option<u64>, read_only: bool) -> QueryCall {
        with_kinds(max, read_only, &["delete"])
    }

    fn with_kinds(max: Option<u64>, read_only: bool, kinds: &[&str]) -> QueryCall {
        QueryCall {
            statements: kinds
                .iter()
                .map(|k| PreparedStatement {
                    kind: k.to_string(),
                    tables: vec![],
                    sql: String::new(),
                    touches_session: false,
                    lineage: Default::default(),
                })
                .collect(),
            params: vec![],
            max_rows: None,
            read_only,
            max_affected: max.map(|max| AffectedLimit {
                max,
                set_by: "policy `p`".into(),
            }),
        }
    }

    #[test]
    fn sums_writes_only_and_names_who_set_the_cap() {
        let mut t = Tally::new(&call(Some(2), false), false).unwrap();
        t.statement("delete", 2);
        t.statement("select", 50);
        t.statement("ddl", 9);
        assert!(t.check().is_ok());
        t.statement("update", 1);
        let e = t.check().unwrap_err().to_string();
        assert_eq!(
            e,
            "this call would affect 3 rows, more than the 2 allowed by policy `p`; nothing was changed"
        );
    }

    #[test]
    fn database_count_wins_when_higher_and_capped_returning_is_over() {
        let mut t = Tally::new(&call(Some(5), false), false).unwrap();
        t.statement("select", 0);
        t.observed(6);
        assert!(t.check().is_err());
        let mut t = Tally::new(&call(Some(5), false), false).unwrap();
        let mut set = RowSet::new(
            vec![],
            Caps {
                max_rows: 2,
                max_bytes: 1000,
            },
        );
        for _ in 0..3 {
            set.push(vec![]);
        }
        assert!(set.truncated);
        t.returned("delete", &set);
        let e = t.check().unwrap_err().to_string();
        assert!(
            e.contains("cannot count") && e.contains("nothing was changed"),
            "{e}"
        );
        let mut t = Tally::new(&call(Some(1), false), false).unwrap();
        t.returned("delete", &set);
        let e = t.check().unwrap_err().to_string();
        assert!(e.contains("at least 3 rows, more than the 1"), "{e}");
    }

    #[test]
    fn capped_calls_that_could_commit_midway_are_refused_up_front() {
        let e = Tally::new(&with_kinds(Some(5), false, &["delete", "admin"]), false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("admin statement") && e.contains("nothing was changed"),
            "{e}"
        );
        assert!(Tally::new(&with_kinds(Some(5), false, &["delete", "ddl"]), true).is_err());
        // DDL is transactional where `ddl_commits` is false; uncapped calls are not refused.
        assert!(Tally::new(&with_kinds(Some(5), false, &["delete", "ddl"]), false).is_ok());
        assert!(Tally::new(&with_kinds(None, false, &["delete", "admin"]), true).is_ok());
        assert!(Tally::new(&with_kinds(Some(5), false, &["admin"]), true).is_ok());
    }

    #[test]
    fn no_cap_or_read_only_never_fails() {
        let mut t = Tally::new(&call(None, false), false).unwrap();
        t.statement("delete", 1_000_000);
        assert!(t.check().is_ok() && !t.active());
        let t = Tally::new(&call(Some(1), true), false).unwrap();
        assert!(!t.active());
    }
}
