//! Embedded approval store: table `approvals` in the same SQLite database as
//! the audit log (migration 2), written through the shared pool.
//!
//! One row per approval: the full record as JSON plus the columns that are
//! queried (state, requester, tool, arguments hash, version). Updates are a
//! compare-and-swap on `version` ([`ApprovalStore::update`]), so a claim or a
//! vote racing another one, in this process or another, loses cleanly.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use gateway_core::approval::{Approval, ApprovalState, ApprovalStore, ApprovalStoreError};
use serde_json::{Value, json};
use sqlx::SqlitePool;

/// Approvals in the embedded database.
#[derive(Clone)]
pub struct SqliteApprovalStore {
    pool: SqlitePool,
}

impl SqliteApprovalStore {
    /// Over the audit store's pool (the schema is already migrated).
    pub fn new(pool: SqlitePool) -> Self {
        SqliteApprovalStore { pool }
    }
}

fn io(e: sqlx::Error) -> ApprovalStoreError {
    ApprovalStoreError::Io(e.to_string())
}

fn encode(a: &Approval) -> Result<String, ApprovalStoreError> {
    serde_json::to_string(a).map_err(|e| ApprovalStoreError::Io(e.to_string()))
}

fn decode((id, version, text): (String, i64, String)) -> Result<Approval, ApprovalStoreError> {
    let corrupt = |e: serde_json::Error| ApprovalStoreError::Corrupt {
        id: id.clone(),
        reason: e.to_string(),
    };
    let mut record: Value = serde_json::from_str(&text).map_err(corrupt)?;
    upgrade_legacy_summary(&mut record);
    let mut a: Approval = serde_json::from_value(record).map_err(corrupt)?;
    a.version = version as u64;
    Ok(a)
}

/// Records written before the typed review hold `summary`, the one shape
/// SQL connections ever stored there: `[{kind, tables, sql?}]`, already
/// masked. Read as a review (each statement one code part, as it was
/// masked whole then), so old approvals keep showing what they ran; the
/// next update writes the record back in the new form.
fn upgrade_legacy_summary(record: &mut Value) {
    let Some(obj) = record.as_object_mut() else {
        return;
    };
    if obj.contains_key("review") {
        return;
    }
    let Some(Value::Array(statements)) = obj.remove("summary") else {
        return;
    };
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let (mut kinds, mut resources, mut runs) = (Vec::<String>::new(), Vec::<String>::new(), vec![]);
    for s in &statements {
        let kind = s.get("kind").and_then(Value::as_str).unwrap_or("?");
        let tables = strings(s.get("tables"));
        if !kinds.contains(&kind.to_uppercase()) {
            kinds.push(kind.to_uppercase());
        }
        for t in &tables {
            if !resources.contains(t) {
                resources.push(t.clone());
            }
        }
        if let Some(sql) = s.get("sql").and_then(Value::as_str) {
            runs.push(json!({"label": kind, "resources": tables, "text": [{"code": sql}]}));
        }
    }
    let mut title = kinds.join(", ");
    if !resources.is_empty() {
        title = format!("{title} on {}", resources.join(", "));
    }
    obj.insert(
        "review".into(),
        json!({"title": title, "runs": runs, "resources": resources}),
    );
}

#[async_trait]
impl ApprovalStore for SqliteApprovalStore {
    async fn insert(&self, a: &Approval) -> Result<(), ApprovalStoreError> {
        sqlx::query(
            "INSERT INTO approvals (id, state, requester, tool, arguments_hash, claimed, created_at, expires_at, version, record) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?)",
        )
        .bind(&a.id)
        .bind(a.state.as_str())
        .bind(&a.requester.sub)
        .bind(&a.tool)
        .bind(&a.arguments_hash)
        .bind(a.claimed_at.is_some())
        .bind(a.created_at.to_rfc3339())
        .bind(a.expires_at.to_rfc3339())
        .bind(encode(a)?)
        .execute(&self.pool)
        .await
        .map_err(io)?;
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<Approval>, ApprovalStoreError> {
        sqlx::query_as::<_, (String, i64, String)>(
            "SELECT id, version, record FROM approvals WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(io)?
        .map(decode)
        .transpose()
    }

    async fn find_open(
        &self,
        requester: &str,
        tool: &str,
        arguments_hash: &str,
    ) -> Result<Option<Approval>, ApprovalStoreError> {
        sqlx::query_as::<_, (String, i64, String)>(
            "SELECT id, version, record FROM approvals WHERE requester = ? AND tool = ? AND arguments_hash = ? \
             AND (state = 'pending' OR (state = 'approved' AND claimed = 0)) ORDER BY rowid DESC LIMIT 1",
        )
        .bind(requester)
        .bind(tool)
        .bind(arguments_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(io)?
        .map(decode)
        .transpose()
    }

    async fn list(
        &self,
        state: Option<ApprovalState>,
        limit: u32,
    ) -> Result<Vec<Approval>, ApprovalStoreError> {
        let rows = match state {
            Some(s) => {
                sqlx::query_as::<_, (String, i64, String)>(
                    "SELECT id, version, record FROM approvals WHERE state = ? ORDER BY rowid DESC LIMIT ?",
                )
                .bind(s.as_str())
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
            }
            None => {
                sqlx::query_as::<_, (String, i64, String)>(
                    "SELECT id, version, record FROM approvals ORDER BY rowid DESC LIMIT ?",
                )
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
            }
        }
        .map_err(io)?;
        rows.into_iter().map(decode).collect()
    }

    async fn count_pending(&self, now: DateTime<Utc>) -> Result<u64, ApprovalStoreError> {
        // `expires_at` is RFC 3339 in UTC as `to_rfc3339` writes it (fixed
        // `+00:00`, fraction digits in threes), which orders as text.
        let (n,) = sqlx::query_as::<_, (i64,)>(
            "SELECT COUNT(*) FROM approvals WHERE state = 'pending' AND expires_at > ?",
        )
        .bind(now.to_rfc3339())
        .fetch_one(&self.pool)
        .await
        .map_err(io)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn update(&self, a: &Approval) -> Result<bool, ApprovalStoreError> {
        let done = sqlx::query(
            "UPDATE approvals SET state = ?, claimed = ?, expires_at = ?, record = ?, version = version + 1 \
             WHERE id = ? AND version = ?",
        )
        .bind(a.state.as_str())
        .bind(a.claimed_at.is_some())
        .bind(a.expires_at.to_rfc3339())
        .bind(encode(a)?)
        .bind(&a.id)
        .bind(a.version as i64)
        .execute(&self.pool)
        .await
        .map_err(io)?;
        Ok(done.rows_affected() == 1)
    }
}

#[cfg(test)]
mod tests {
    use gateway_core::approval::ApprovalStore;
    use sqlx::sqlite::SqlitePoolOptions;

    use super::*;

    /// A record exactly as this store wrote it before the typed review
    /// (with `summary`, without `review` and `items`).
    const LEGACY: &str = r#"{"id":"apr_old","state":"executed","requester":{"sub":"bot","groups":["agents"]},
        "tool":"sql_query","connection":"shop","arguments":{"connection":"shop","sql":"DELETE FROM orders WHERE id = 1"},
        "arguments_masked":{"connection":"shop","sql":"DELETE FROM orders WHERE id = 1"},"arguments_hash":"sha256:ab",
        "summary":[{"kind":"delete","tables":["public.orders"],"sql":"DELETE FROM \"public\".\"orders\" WHERE id = 1"},
                   {"kind":"select","tables":["public.orders","public.items"],"sql":"SELECT 1"},{"kind":"schema","tables":[]}],
        "requests":[],"required":[{"group":"dba","count":1,"policies":["p"]}],"reviews":[],
        "created_at":"2026-01-01T00:00:00Z","expires_at":"2026-01-01T01:00:00Z","decided_at":null,
        "claimed_at":"2026-01-01T00:10:00Z","finished_at":"2026-01-01T00:10:01Z","note":null,"version":0}"#;

    async fn migrated() -> sqlx::SqlitePool {
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        {
            let mut conn = pool.acquire().await.unwrap();
            crate::store::migrations::migrate(&mut conn).await.unwrap();
        }
        pool
    }

    #[tokio::test]
    async fn pending_approvals_are_counted_in_the_database_until_they_expire() {
        let store = SqliteApprovalStore::new(migrated().await);
        let base = decode(("apr_old".into(), 0, LEGACY.into())).unwrap();
        // Sub-second expiries on both sides of `now`: the text comparison
        // must order them as instants.
        let now = chrono::DateTime::parse_from_rfc3339("2026-03-01T12:00:00.250+00:00")
            .unwrap()
            .with_timezone(&Utc);
        let ms = chrono::Duration::milliseconds;
        let rows = [
            (
                "apr_a",
                ApprovalState::Pending,
                now + chrono::Duration::hours(1),
            ),
            ("apr_b", ApprovalState::Pending, now + ms(1)),
            (
                "apr_c",
                ApprovalState::Pending,
                now + chrono::Duration::nanoseconds(1),
            ),
            ("apr_d", ApprovalState::Pending, now),
            ("apr_e", ApprovalState::Pending, now - ms(250)),
            (
                "apr_f",
                ApprovalState::Pending,
                now - chrono::Duration::nanoseconds(1),
            ),
            (
                "apr_g",
                ApprovalState::Approved,
                now + chrono::Duration::hours(1),
            ),
            (
                "apr_h",
                ApprovalState::Denied,
                now + chrono::Duration::hours(1),
            ),
        ];
        for (id, state, expires_at) in rows {
            let mut a = base.clone();
            a.id = id.into();
            a.state = state;
            a.claimed_at = None;
            a.expires_at = expires_at;
            store.insert(&a).await.unwrap();
        }
        assert_eq!(store.count_pending(now).await.unwrap(), 3, "a, b and c");
        // The default (reading every pending record) agrees.
        let listed = store.list(Some(ApprovalState::Pending), 100).await.unwrap();
        assert_eq!(listed.iter().filter(|a| a.expires_at > now).count(), 3);
        assert_eq!(store.count_pending(now + ms(2)).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn rows_written_before_the_typed_review_still_read() {
        let pool = migrated().await;
        sqlx::query(
            "INSERT INTO approvals (id, state, requester, tool, arguments_hash, claimed, created_at, expires_at, version, record) \
             VALUES ('apr_old', 'executed', 'bot', 'sql_query', 'sha256:ab', 1, '', '', 3, ?)",
        )
        .bind(LEGACY)
        .execute(&pool)
        .await
        .unwrap();
        let store = SqliteApprovalStore::new(pool);
        let a = store.get("apr_old").await.unwrap().expect("the old row");
        assert_eq!(a.version, 3);
        assert_eq!(a.state, ApprovalState::Executed);
        assert_eq!(a.items, None);
        let r = &a.review;
        assert_eq!(
            r.title,
            "DELETE, SELECT, SCHEMA on public.orders, public.items"
        );
        assert_eq!(r.resources, vec!["public.orders", "public.items"]);
        assert_eq!(r.runs.len(), 2, "the schema entry ran no text");
        assert_eq!(r.runs[0].label, "delete");
        assert_eq!(r.runs[0].resources, vec!["public.orders"]);
        assert_eq!(
            r.runs[0].text.joined(),
            "DELETE FROM \"public\".\"orders\" WHERE id = 1"
        );
        // Written back in the new form, it reads the same.
        assert!(store.update(&a).await.unwrap());
        let again = store.get("apr_old").await.unwrap().unwrap();
        assert_eq!(again.review, a.review);
        // A record in the new form is never rewritten from a stray `summary`.
        let mut v: Value = serde_json::from_str(&encode(&again).unwrap()).unwrap();
        v["summary"] = json!([{"kind": "drop", "tables": ["x.y"], "sql": "DROP"}]);
        upgrade_legacy_summary(&mut v);
        assert_eq!(v["review"]["title"], again.review.title);
    }
}
