//! Embedded approval store: table `approvals` in the same SQLite database as
//! the audit log (migration 2), written through the shared pool.
//!
//! One row per approval: the full record as JSON plus the columns that are
//! queried (state, requester, tool, arguments hash, version). Updates are a
//! compare-and-swap on `version` ([`ApprovalStore::update`]), so a claim or a
//! vote racing another one, in this process or another, loses cleanly.

use async_trait::async_trait;
use gateway_core::approval::{Approval, ApprovalState, ApprovalStore, ApprovalStoreError};
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
    let mut a: Approval = serde_json::from_str(&text).map_err(|e| ApprovalStoreError::Corrupt {
        id,
        reason: e.to_string(),
    })?;
    a.version = version as u64;
    Ok(a)
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
