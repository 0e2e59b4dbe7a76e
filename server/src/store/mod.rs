//! Audit storage backends behind [`gateway_core::audit::AuditStore`].
//!
//! Today: the embedded SQLite store ([`SqliteAuditStore`], `<data_dir>/tollgate.db`)
//! with group commit. A shared PostgreSQL store (`server.store_url`) will sit
//! beside it behind the same trait; nothing outside this module names SQLite.
//!
//! Invariant: `append` returns `Ok` only after the event is durable, and a
//! failed write never advances the hash chain.

mod approvals;
mod migrations;
mod sqlite;
mod writer;

#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::Arc;

use gateway_core::audit::{AuditStore, StoreError};

pub use approvals::SqliteApprovalStore;
pub use migrations::{MIGRATIONS, Migration};
pub use sqlite::{DB_FILE, SqliteAuditStore, SqliteOptions, WriterStats};

/// Open the embedded store in `data_dir` (created if missing). Must run
/// inside a tokio runtime (it spawns the writer task).
pub async fn open_store(data_dir: &Path) -> Result<Arc<dyn AuditStore>, StoreError> {
    Ok(Arc::new(SqliteAuditStore::open(data_dir).await?))
}

/// Open the embedded store in `data_dir`, which must already hold one
/// (`tollgate audit list|show|verify|export`).
pub async fn open_existing_store(data_dir: &Path) -> Result<Arc<dyn AuditStore>, StoreError> {
    Ok(Arc::new(SqliteAuditStore::open_existing(data_dir).await?))
}

/// Open the embedded store and the approvals kept in the same database.
pub async fn open_stores(
    data_dir: &Path,
) -> Result<(Arc<dyn AuditStore>, Arc<SqliteApprovalStore>), StoreError> {
    let audit = SqliteAuditStore::open(data_dir).await?;
    let approvals = Arc::new(SqliteApprovalStore::new(audit.pool().clone()));
    Ok((Arc::new(audit), approvals))
}
