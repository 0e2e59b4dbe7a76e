//! Versioned schema of the embedded database (`<data_dir>/tollgate.db`).
//!
//! One ordered list, applied at open inside one transaction per step, with
//! the applied version kept in `PRAGMA user_version`. To add tables (the
//! approvals store will), append a [`Migration`] with the next version; never
//! edit one that has shipped. A database newer than this binary is refused.

use sqlx::{Connection, SqliteConnection};

/// One schema step.
pub struct Migration {
    /// Strictly increasing from 1.
    pub version: i64,
    /// Short name for logs.
    pub name: &'static str,
    /// SQL run as one batch.
    pub sql: &'static str,
}

/// Every schema step, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "audit_events",
        sql: r#"
        -- One row per audit event. Every column is part of the hashed event:
        -- editing any of them breaks the chain (see gateway_core::audit::chain).
        CREATE TABLE audit_events (
            seq              INTEGER PRIMARY KEY,  -- 1, 2, 3, ... (rowid)
            id               TEXT NOT NULL UNIQUE, -- uuid v4
            time             TEXT NOT NULL,        -- RFC 3339 UTC, microseconds, Z
            principal_sub    TEXT NOT NULL,
            principal_groups TEXT NOT NULL,        -- JSON array
            tool             TEXT NOT NULL,
            connection       TEXT,
            arguments        TEXT NOT NULL,        -- JSON
            requests         TEXT NOT NULL,        -- JSON array
            decision         TEXT NOT NULL,
            approval         TEXT,                 -- JSON object or NULL
            outcome          TEXT NOT NULL,        -- JSON object
            result_preview   TEXT NOT NULL,        -- JSON
            masked           TEXT NOT NULL,        -- JSON object
            prev_hash        TEXT NOT NULL,
            hash             TEXT NOT NULL
        );
        CREATE INDEX audit_events_principal ON audit_events (principal_sub, seq);
        CREATE INDEX audit_events_tool ON audit_events (tool, seq);
        CREATE INDEX audit_events_connection ON audit_events (connection, seq);
        CREATE INDEX audit_events_decision ON audit_events (decision, seq);
        CREATE INDEX audit_events_time ON audit_events (time);
        -- The chain head, written in the same transaction as the events:
        -- catches deletion of the newest events, which the chain alone cannot.
        CREATE TABLE audit_head (
            id   INTEGER PRIMARY KEY CHECK (id = 1),
            seq  INTEGER NOT NULL,
            hash TEXT NOT NULL
        );
    "#,
    },
    Migration {
        version: 2,
        name: "approvals",
        sql: r#"
        -- One row per approval (gateway_core::approval::Approval). `record` is
        -- the whole record as JSON; the other columns are what is queried.
        -- Updates are compare-and-swap on `version`.
        CREATE TABLE approvals (
            id             TEXT PRIMARY KEY,     -- apr_ + 128 random bits
            state          TEXT NOT NULL,        -- pending|approved|denied|expired|cancelled|executed|failed
            requester      TEXT NOT NULL,        -- sub
            tool           TEXT NOT NULL,
            arguments_hash TEXT NOT NULL,        -- sha256 of canonical JSON arguments
            claimed        INTEGER NOT NULL,     -- 1 once claimed for its one execution
            created_at     TEXT NOT NULL,
            expires_at     TEXT NOT NULL,
            version        INTEGER NOT NULL,
            record         TEXT NOT NULL
        );
        CREATE INDEX approvals_binding ON approvals (requester, tool, arguments_hash, state);
        CREATE INDEX approvals_state ON approvals (state);
    "#,
    },
    Migration {
        version: 3,
        name: "recordings",
        sql: r#"
        -- The call's terminal recording, as the event names it: JSON
        -- {"sha256", "bytes"}, or NULL for calls without one (every event
        -- recorded before this step). Part of the hashed event when set.
        ALTER TABLE audit_events ADD COLUMN recording TEXT;
        -- Recordings (asciicast v2, masked), content-addressed: written
        -- before the event that names them, never updated; `audit verify`
        -- checks each named one is here with that sha256 and size.
        CREATE TABLE recordings (
            sha256 TEXT PRIMARY KEY,               -- lowercase hex of body
            bytes  INTEGER NOT NULL,               -- length of body
            body   BLOB NOT NULL
        );
    "#,
    },
    Migration {
        version: 4,
        name: "write_ahead_intents",
        sql: r#"
        -- Write-ahead audit (gateway_core::audit::intent). On a call's event:
        -- the id of the intent it closes (part of the hashed event when set).
        ALTER TABLE audit_events ADD COLUMN intent TEXT;
        -- 1 on intent entries (their outcome.status is 'intent'): derived,
        -- so listings can show the one event per call.
        ALTER TABLE audit_events ADD COLUMN is_intent INTEGER NOT NULL DEFAULT 0;
        -- Intents whose event is not written yet, with the store handle
        -- (process) that wrote them: rows are added and removed in the
        -- transactions of the entries themselves. Not part of the chain; a
        -- start closes the intents of writers no longer running.
        CREATE TABLE open_intents (
            id     TEXT PRIMARY KEY,
            seq    INTEGER NOT NULL,
            writer TEXT NOT NULL
        );
    "#,
    },
];

/// Bring the database to the latest version. Returns the version now applied.
pub async fn migrate(conn: &mut SqliteConnection) -> Result<i64, String> {
    let current: i64 = sqlx::query_scalar("PRAGMA user_version")
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| format!("cannot read schema version: {e}"))?;
    let latest = MIGRATIONS.last().map_or(0, |m| m.version);
    if current > latest {
        return Err(format!(
            "database schema version {current} is newer than this tollgate ({latest}); upgrade tollgate"
        ));
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        let mut tx = conn
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| format!("migration {} ({}): {e}", m.version, m.name))?;
        sqlx::raw_sql(m.sql)
            .execute(&mut *tx)
            .await
            .map_err(|e| format!("migration {} ({}): {e}", m.version, m.name))?;
        // PRAGMA takes no bind parameters; the version is a trusted integer.
        let set = format!("PRAGMA user_version = {}", m.version);
        sqlx::raw_sql(sqlx::AssertSqlSafe(set))
            .execute(&mut *tx)
            .await
            .map_err(|e| format!("migration {} ({}): {e}", m.version, m.name))?;
        tx.commit()
            .await
            .map_err(|e| format!("migration {} ({}): {e}", m.version, m.name))?;
        tracing::info!(version = m.version, name = m.name, "database migrated");
    }
    Ok(latest)
}

#[cfg(test)]
#[test]
fn versions_strictly_increase_from_one() {
    for (i, m) in MIGRATIONS.iter().enumerate() {
        assert_eq!(m.version, i as i64 + 1, "{}", m.name);
    }
}
