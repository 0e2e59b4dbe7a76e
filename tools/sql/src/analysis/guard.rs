//! Checks on the raw SQL text, before and after a failed parse: things the
//! database would see but the parser would not, or would see differently.
//!
//! * Before parsing: size cap, empty input, NUL and control characters,
//!   invisible/bidirectional format characters (they can hide code from the
//!   reviewer who approves the statement), and MySQL/MariaDB executable
//!   comments `/*! ... */` / `/*M! ... */`, which the server runs but other
//!   readers treat as comments.
//! * After a parse failure: a reason that tells the agent what to do, with
//!   specific advice for client-side commands (`DELIMITER`, psql `\copy`),
//!   opaque procedural code (`DO $$ ... $$`) and file I/O statements the
//!   parser does not know (`LOAD DATA`, `INTO OUTFILE`).
//!
//! These checks only ever deny; they never make SQL acceptable.

use super::Dialect;

/// Largest SQL text accepted, in bytes. Bounds parse time and AST depth.
pub(crate) const MAX_SQL_BYTES: usize = 256 * 1024;

/// Deny input that must not reach the parser. `Err` holds the reason.
pub(crate) fn check(dialect: Dialect, sql: &str) -> Result<(), String> {
    if sql.len() > MAX_SQL_BYTES {
        return Err(format!(
            "SQL is {} bytes, more than the {MAX_SQL_BYTES}-byte limit; send smaller statements",
            sql.len()
        ));
    }
    if sql.trim().is_empty() {
        return Err("empty SQL: send at least one statement".into());
    }
    for (at, c) in sql.char_indices() {
        if c == '\0' {
            return Err(format!("NUL byte at byte {at}; remove it"));
        }
        if !matches!(c, '\t' | '\n' | '\r') && gateway_core::text::is_unsafe_char(c) {
            return Err(format!(
                "invisible or control character U+{:04X} at byte {at}; remove it (it can hide what the SQL does from reviewers)",
                c as u32
            ));
        }
    }
    if dialect == Dialect::MySql
        && let Some(at) = sql.find("/*!").or_else(|| sql.find("/*M!"))
    {
        return Err(format!(
            "MySQL executable comment /*! ... */ at byte {at}; remove it and write its contents as plain SQL (Tollgate does not run SQL hidden in comments)"
        ));
    }
    Ok(())
}

/// Deny an executed text (the canonical print of a parsed statement) that
/// holds a character [`check`] would refuse in the input: an escape such as
/// PostgreSQL's `E'\x04'` or `E'\u202E'` decodes to it, and reviewers read
/// the executed text (a bidirectional override there reorders what they see).
pub(crate) fn check_executed(sql: &str) -> Result<(), String> {
    for c in sql.chars() {
        if c == '\0' || (!matches!(c, '\t' | '\n' | '\r') && gateway_core::text::is_unsafe_char(c))
        {
            return Err(format!(
                "an escape in a string decodes to the invisible or control character U+{:04X}; remove it or build it with chr({}) (it can hide what the SQL does from reviewers)",
                c as u32, c as u32
            ));
        }
    }
    Ok(())
}

/// A reason for a parse failure that says what to do.
pub(crate) fn explain_parse_error(dialect: Dialect, sql: &str, error: &str) -> String {
    let upper = sql.to_uppercase();
    let first_words = |prefix: &str| {
        upper.lines().any(|l| {
            let l = l.trim_start();
            l.starts_with(prefix) || l.trim_start_matches(';').trim_start().starts_with(prefix)
        })
    };
    let name = match dialect {
        Dialect::Postgres => "PostgreSQL",
        Dialect::MySql => "MySQL",
        Dialect::Sqlite => "SQLite",
    };
    let advice = if sql.lines().any(|l| l.trim_start().starts_with('\\')) {
        "a line starts with a backslash: psql meta-commands (\\copy, \\!, \\i ...) are client commands, not SQL; send plain SQL only"
    } else if first_words("DELIMITER") {
        "DELIMITER is a mysql client command, not SQL; send plain statements separated by ;"
    } else if first_words("DO ") || first_words("DO$") || first_words("DO\t") {
        "DO blocks run procedural code whose body Tollgate cannot see (it would be sql:admin); run the statements inside it directly"
    } else if upper.contains("LOAD DATA") || upper.contains("LOAD XML") {
        "LOAD DATA reads files on the database server or client; it is not supported"
    } else if upper.contains("OUTFILE") || upper.contains("DUMPFILE") {
        "SELECT ... INTO OUTFILE/DUMPFILE writes files on the database server; it is not supported"
    } else if sql.chars().any(|c| c.is_whitespace() && !c.is_ascii()) {
        "the SQL contains non-ASCII whitespace (e.g. U+00A0); use plain spaces"
    } else {
        "Tollgate only runs SQL it can analyse; fix the syntax or split the statement into simpler ones"
    };
    format!("could not parse the SQL as {name}: {error}; {advice}")
}
