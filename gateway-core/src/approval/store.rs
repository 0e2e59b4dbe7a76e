//! The storage boundary of the approval stage: [`ApprovalStore`]. The
//! embedded SQLite implementation lives in `server/src/store/approvals.rs`
//! (same database as the audit log); an in-memory one is here for tests.
//!
//! Contract: [`ApprovalStore::update`] is a compare-and-swap on
//! [`Approval::version`]: it writes only if the stored version is the one
//! the caller read, and bumps it. Every transition (votes, claim, expiry,
//! cancel) goes through it, so two racing actors can never both win.

use async_trait::async_trait;

use super::record::{Approval, ApprovalState};

/// Why the approval store failed. Messages never contain credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalStoreError {
    /// Could not read or write.
    #[error("approval store: {0}")]
    Io(String),
    /// A stored record cannot be decoded.
    #[error("approval store: record {id} is unreadable: {reason}")]
    Corrupt {
        /// Approval id.
        id: String,
        /// Why.
        reason: String,
    },
}

/// Where approvals are kept.
#[async_trait]
pub trait ApprovalStore: Send + Sync {
    /// Store a new approval (version 0).
    async fn insert(&self, approval: &Approval) -> Result<(), ApprovalStoreError>;

    /// The approval with this id.
    async fn get(&self, id: &str) -> Result<Option<Approval>, ApprovalStoreError>;

    /// The open (pending, or approved and unclaimed) approval for exactly
    /// this requester, tool and arguments, if any: newest first.
    async fn find_open(
        &self,
        requester: &str,
        tool: &str,
        arguments_hash: &str,
    ) -> Result<Option<Approval>, ApprovalStoreError>;

    /// Approvals in `state` (all when None), newest first, at most `limit`.
    async fn list(
        &self,
        state: Option<ApprovalState>,
        limit: u32,
    ) -> Result<Vec<Approval>, ApprovalStoreError>;

    /// How many approvals are pending and expire after `now`. The default
    /// reads them all ([`ApprovalStore::list`]); stores with a query
    /// language count instead.
    async fn count_pending(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, ApprovalStoreError> {
        let pending = self.list(Some(ApprovalState::Pending), u32::MAX).await?;
        Ok(pending.iter().filter(|a| a.expires_at > now).count() as u64)
    }

    /// Replace the record if its stored version is `approval.version`; the
    /// stored version becomes `approval.version + 1`. False when someone
    /// else changed it first (nothing written).
    async fn update(&self, approval: &Approval) -> Result<bool, ApprovalStoreError>;
}

/// An in-memory store (tests).
#[cfg(any(test, feature = "test-util"))]
#[derive(Default)]
pub struct MemoryApprovalStore {
    rows: std::sync::Mutex<Vec<Approval>>,
}

#[cfg(any(test, feature = "test-util"))]
impl MemoryApprovalStore {
    fn rows(&self) -> Result<std::sync::MutexGuard<'_, Vec<Approval>>, ApprovalStoreError> {
        self.rows
            .lock()
            .map_err(|e| ApprovalStoreError::Io(e.to_string()))
    }
}

#[cfg(any(test, feature = "test-util"))]
#[async_trait]
impl ApprovalStore for MemoryApprovalStore {
    async fn insert(&self, approval: &Approval) -> Result<(), ApprovalStoreError> {
        self.rows()?.push(approval.clone());
        Ok(())
    }
    async fn get(&self, id: &str) -> Result<Option<Approval>, ApprovalStoreError> {
        let rows = self.rows()?;
        Ok(rows.iter().find(|a| a.id == id).cloned())
    }
    async fn find_open(
        &self,
        requester: &str,
        tool: &str,
        arguments_hash: &str,
    ) -> Result<Option<Approval>, ApprovalStoreError> {
        let rows = self.rows()?;
        Ok(rows
            .iter()
            .rev()
            .find(|a| {
                a.requester.sub == requester
                    && a.tool == tool
                    && a.arguments_hash == arguments_hash
                    && (a.state == ApprovalState::Pending
                        || (a.state == ApprovalState::Approved && a.claimed_at.is_none()))
            })
            .cloned())
    }
    async fn list(
        &self,
        state: Option<ApprovalState>,
        limit: u32,
    ) -> Result<Vec<Approval>, ApprovalStoreError> {
        let rows = self.rows()?;
        Ok(rows
            .iter()
            .rev()
            .filter(|a| state.is_none_or(|s| a.state == s))
            .take(limit as usize)
            .cloned()
            .collect())
    }
    async fn update(&self, approval: &Approval) -> Result<bool, ApprovalStoreError> {
        let mut rows = self.rows()?;
        match rows.iter_mut().find(|a| a.id == approval.id) {
            Some(row) if row.version == approval.version => {
                *row = approval.clone();
                row.version += 1;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}
