//! The narrow interface each database driver implements for the connector:
//! run a prepared query under caps, describe the schema. Also the one place
//! every driver error passes on its way out: credentials are scrubbed here,
//! and data values the message quotes are hidden (see [`crate::scrub`]).

use async_trait::async_trait;
use gateway_core::connector::{ExecLimits, ExecuteError};
use serde_json::Value;

use crate::analysis::catalog::NameCatalog;
use crate::prepared::{QueryCall, SchemaCall};
use crate::result::{Caps, QueryOutcome};
use crate::scrub::hide_values;

/// A database driver behind a SQL connection.
#[async_trait]
pub trait Engine: Send + Sync + 'static {
    /// Run every statement of `call` in one transaction (all or nothing).
    /// When `stop` fires (the caller cancelled, or its time budget ran out)
    /// the database is told to stop the running statement and the call ends
    /// with [`ExecuteError::Cancelled`] or [`ExecuteError::Timeout`].
    async fn query(
        &self,
        call: &QueryCall,
        caps: Caps,
        stop: &ExecLimits,
    ) -> Result<QueryOutcome, ExecuteError>;
    /// Tables and columns, filtered by `call`; stops as [`Engine::query`] does.
    async fn schema(&self, call: &SchemaCall, stop: &ExecLimits) -> Result<Value, ExecuteError>;
    /// How the database resolves unqualified names (PostgreSQL); `None` where
    /// the static rule is exact.
    async fn name_catalog(&self) -> Result<Option<NameCatalog>, ExecuteError> {
        Ok(None)
    }
    /// The definition of every view [`Engine::schema`] lists (unfiltered),
    /// so that column lineage follows views to their tables; stops as
    /// [`Engine::query`] does. A view missing here keeps its own columns as
    /// sources.
    async fn view_definitions(
        &self,
        _stop: &ExecLimits,
    ) -> Result<Vec<ViewDefinition>, ExecuteError> {
        Ok(Vec::new())
    }
}

/// A view's definition as its database reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewDefinition {
    /// Schema of the view, as `sql_schema` names it.
    pub schema: String,
    /// Name of the view.
    pub name: String,
    /// Its defining `SELECT` (PostgreSQL, MariaDB) or whole `CREATE VIEW`
    /// statement (SQLite).
    pub sql: String,
}

/// Removes every credential-bearing string (the URL, its password, its
/// user-info) from text that is about to leave the connector.
#[derive(Clone, Default)]
pub struct Redactor {
    needles: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Redactor")
    }
}

impl Redactor {
    /// A redactor for a connection URL.
    pub fn for_url(url: &str) -> Self {
        let mut needles = vec![url.to_string()];
        if let Some(rest) = url.split_once("://").map(|(_, r)| r)
            && let Some((userinfo, _)) = rest.rsplit_once('@')
        {
            needles.push(userinfo.to_string());
            if let Some((_, pw)) = userinfo.split_once(':') {
                needles.push(pw.to_string());
                needles.push(percent_decode(pw));
            }
        }
        for (k, v) in query_pairs(url) {
            if k == "password" {
                needles.push(v.clone());
                needles.push(percent_decode(&v));
            }
        }
        needles.retain(|n| n.len() >= 3);
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        needles.dedup();
        Redactor { needles }
    }

    /// `text` with every credential replaced by `[redacted]`.
    pub fn clean(&self, text: String) -> String {
        let mut out = text;
        for n in &self.needles {
            if out.contains(n.as_str()) {
                out = out.replace(n.as_str(), "[redacted]");
            }
        }
        out
    }

    /// The same error with its message cleaned: credentials redacted and
    /// quoted data values hidden.
    pub fn error(&self, e: ExecuteError) -> ExecuteError {
        let clean = |m: String| self.clean(hide_values(&m));
        match e {
            ExecuteError::Unavailable(m) => ExecuteError::Unavailable(clean(m)),
            ExecuteError::Target(m) => ExecuteError::Target(clean(m)),
            ExecuteError::Other(m) => ExecuteError::Other(clean(m)),
            t @ (ExecuteError::Timeout(_)
            | ExecuteError::Cancelled
            | ExecuteError::TooManyAffected { .. }
            | ExecuteError::IntentNotRecorded(_)) => t,
        }
    }
}

/// `key=value` pairs of a URL's query string (raw, not decoded).
pub fn query_pairs(url: &str) -> Vec<(String, String)> {
    let Some((_, q)) = url.split_once('?') else {
        return Vec::new();
    };
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (p.to_string(), String::new()),
        })
        .collect()
}

/// Decode `%XX` escapes (invalid escapes are kept as they are).
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) =
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubs_url_and_password() {
        let r = Redactor::for_url("postgres://bob:s%40cret@db:5432/shop?sslmode=require");
        let m = r.clean("failed for postgres://bob:s%40cret@db:5432/shop?sslmode=require pw s@cret bob:s%40cret".into());
        assert!(!m.contains("s@cret") && !m.contains("s%40cret"), "{m}");
    }

    #[test]
    fn errors_leave_without_credentials_or_quoted_values() {
        let r = Redactor::for_url("postgres://bob:pw123@db/shop");
        let e = r.error(ExecuteError::Target(
            r#"invalid input syntax for type integer: "k4111111111111111" (SQLSTATE 22P02) pw123"#
                .into(),
        ));
        let m = e.to_string();
        assert!(!m.contains("4111") && !m.contains("pw123"), "{m}");
        assert!(m.contains("[value hidden]"), "{m}");
    }

    #[test]
    fn decodes() {
        assert_eq!(percent_decode("a%20b%"), "a b%");
    }
}
