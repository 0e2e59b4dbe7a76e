//! `tollgate audit list|show|replay|verify|checkpoint|export`: read the store directly (no
//! server needed), e.g. on an auditor's copy of the data dir. Everything
//! printed from the store goes through `gateway_core::text` escaping, so a
//! stored value can never put raw control characters (terminal escapes,
//! forged lines) or bidi tricks on the auditor's terminal. The one exact
//! copy: `replay` into a pipe or file writes the stored recording byte for
//! byte (after checking it against its event), so it hashes as recorded.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use futures::StreamExt;
use gateway_core::audit::chain::recording_problem;
use gateway_core::audit::{AuditEvent, AuditFilter, AuditStore, ListOrder};
use gateway_core::text::{escape_for_terminal as esc, json_for_terminal};

use super::load_config;
use crate::cli::{AuditCommand, ConfigArg};
use crate::config::Config;
use crate::store;

async fn open(config: &ConfigArg) -> Result<(Config, Arc<dyn AuditStore>), ExitCode> {
    let config = load_config(&config.config)?;
    let dir = config.resolve_path(&config.server.data_dir);
    let store = store::open_existing_store(&dir).await.map_err(|e| {
        eprintln!("cannot open the audit store in {}: {e:#}", dir.display());
        ExitCode::from(1)
    })?;
    Ok((config, store))
}

mod anchored;

/// Characters of the arguments summary in `audit list`.
const SUMMARY_CHARS: usize = 60;

/// The header line of `audit list`, aligned with [`list_line`].
fn list_header() -> String {
    format!(
        "{:>6}  {:<20}  {:<16} {:<16} {:<12} {:<8} {:<8} {:>6}  {}",
        "SEQ", "TIME", "PRINCIPAL", "TOOL", "CONNECTION", "DECISION", "OUTCOME", "ROWS", "SUMMARY"
    )
}

/// One event as a line of `audit list`: every stored text escaped.
fn list_line(e: &AuditEvent) -> String {
    let r = &e.record;
    let rows = r.outcome.rows.map_or("-".to_string(), |n| n.to_string());
    let line = format!(
        "{:>6}  {:<20}  {:<16} {:<16} {:<12} {:<8} {:<8} {:>6}  {}",
        e.seq,
        esc(&short_time(&e.time)),
        esc(&r.principal.sub),
        esc(&r.tool),
        esc(r.connection.as_deref().unwrap_or("-")),
        esc(&r.decision),
        esc(&r.outcome.status),
        rows,
        esc(&summary(&r.arguments))
    );
    line.trim_end().to_string()
}

/// `2026-01-01T00:00:00.123456Z` → `2026-01-01T00:00:00Z` (the full time is in `show`).
fn short_time(time: &str) -> String {
    match time.get(..19) {
        Some(secs) if time.ends_with('Z') => format!("{secs}Z"),
        _ => time.to_string(),
    }
}

/// What the call asked, from its recorded (already masked) arguments,
/// whatever its tool family: the one text argument besides `connection`
/// (a statement, a command line) when there is exactly one, else the other
/// arguments as compact JSON; on one line (whitespace runs collapsed), cut
/// with `…`.
fn summary(arguments: &serde_json::Value) -> String {
    let mut rest = arguments.clone();
    if let Some(obj) = rest.as_object_mut() {
        // Keeps the order of the other arguments.
        obj.shift_remove("connection");
    }
    let texts: Vec<&str> = rest
        .as_object()
        .map(|o| o.values().filter_map(serde_json::Value::as_str).collect())
        .unwrap_or_default();
    let text = match (texts.as_slice(), &rest) {
        ([one], _) => one.to_string(),
        (_, serde_json::Value::Null) => String::new(),
        (_, serde_json::Value::Object(o)) if o.is_empty() => String::new(),
        (_, v) => v.to_string(),
    };
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > SUMMARY_CHARS {
        let cut: String = one_line.chars().take(SUMMARY_CHARS - 1).collect();
        format!("{cut}…")
    } else {
        one_line
    }
}

/// An event by id, or by the seq number `audit list` prints.
async fn find(store: &dyn AuditStore, key: &str) -> anyhow::Result<Option<AuditEvent>> {
    let Ok(seq) = key.parse::<u64>() else {
        return Ok(store.get(key).await?);
    };
    let filter = AuditFilter {
        after_seq: seq.checked_sub(1),
        limit: Some(1),
        order: ListOrder::OldestFirst,
        intents: true,
        ..Default::default()
    };
    Ok(store
        .list(&filter)
        .await?
        .into_iter()
        .find(|e| e.seq == seq))
}

/// The recording of the event `key` (id or seq), checked against the
/// sha256 and size the event records; `Err` is what to tell the user.
async fn recording(store: &dyn AuditStore, key: &str) -> anyhow::Result<Result<Vec<u8>, String>> {
    let Some(event) = find(store, key).await? else {
        return Ok(Err(format!("no audit event {key}")));
    };
    let Some(reference) = &event.record.recording else {
        return Ok(Err(format!(
            "audit event {key} (seq {}, tool {}) has no recording: only calls whose output \
             a family records (ssh_exec) have one",
            event.seq, event.record.tool
        )));
    };
    let body = store
        .recording(&reference.sha256)
        .await
        .context("reading the recording")?;
    if let Some(problem) = recording_problem(reference, body.as_deref()) {
        return Ok(Err(format!(
            "audit event {key} (seq {}): its recording {} {problem}; nothing written \
             (run `tollgate audit verify`)",
            event.seq, reference.sha256
        )));
    }
    Ok(Ok(body.unwrap_or_default()))
}

/// Run an audit command.
pub async fn run(command: AuditCommand) -> anyhow::Result<ExitCode> {
    let config = match &command {
        AuditCommand::List { config, .. }
        | AuditCommand::Show { config, .. }
        | AuditCommand::Replay { config, .. }
        | AuditCommand::Verify { config, .. }
        | AuditCommand::Checkpoint { config }
        | AuditCommand::Export { config, .. } => config.clone(),
    };
    let (config, store) = match open(&config).await {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let mut out = std::io::stdout().lock();
    match command {
        AuditCommand::List {
            limit,
            principal,
            decision,
            ..
        } => {
            let filter = AuditFilter {
                principal,
                decision: decision.map(|d| d.as_str().to_string()),
                limit: Some(limit),
                ..Default::default()
            };
            let events = store.list(&filter).await?;
            if events.is_empty() {
                let filtered = filter.principal.is_some() || filter.decision.is_some();
                let what = if filtered { " match" } else { " yet" };
                writeln!(out, "no audit events{what}")?;
            } else {
                writeln!(out, "{}", list_header())?;
            }
            for e in &events {
                writeln!(out, "{}", list_line(e))?;
            }
        }
        AuditCommand::Show { id, .. } => match find(store.as_ref(), &id).await? {
            Some(e) => writeln!(
                out,
                "{}",
                json_for_terminal(&serde_json::to_string_pretty(&e)?)
            )?,
            None => {
                eprintln!("no audit event {}", esc(&id));
                return Ok(ExitCode::from(1));
            }
        },
        AuditCommand::Replay { id, .. } => {
            let body = match recording(store.as_ref(), &id).await? {
                Ok(body) => body,
                Err(message) => {
                    eprintln!("{}", esc(&message));
                    return Ok(ExitCode::from(1));
                }
            };
            if out.is_terminal() {
                // The file is UTF-8 JSON lines (checked above against the
                // event's sha256, which only such a file was stored under).
                let text = String::from_utf8_lossy(&body);
                out.write_all(json_for_terminal(&text).as_bytes())?;
            } else {
                out.write_all(&body)?;
            }
            out.flush()?;
        }
        AuditCommand::Verify { checkpoint, .. } => {
            let report = store.verify().await.context("verifying the chain")?;
            writeln!(out, "{}", esc(&report.to_string()))?;
            let mut intact = report.is_intact();
            if !checkpoint.is_empty() {
                intact &= anchored::verify(&config, store.as_ref(), &report, &checkpoint, &mut out)
                    .await?;
            }
            return Ok(if intact {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
        AuditCommand::Checkpoint { .. } => {
            return anchored::checkpoint(&config, store, &mut out).await;
        }
        AuditCommand::Export { .. } => {
            let mut events = store.export();
            while let Some(e) = events.next().await {
                writeln!(out, "{}", json_for_terminal(&serde_json::to_string(&e?)?))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::summary;

    #[test]
    fn the_summary_is_the_one_text_argument_whatever_the_family() {
        assert_eq!(
            summary(&json!({"connection": "shop", "sql": "SELECT  1\n FROM t", "params": [1]})),
            "SELECT 1 FROM t"
        );
        assert_eq!(
            summary(&json!({"connection": "box", "command": "uptime"})),
            "uptime"
        );
        // Two texts, or none: the arguments as JSON.
        assert_eq!(
            summary(&json!({"connection": "k", "kind": "Pod", "name": "web"})),
            r#"{"kind":"Pod","name":"web"}"#
        );
        assert_eq!(summary(&json!({"connection": "k"})), "");
        assert_eq!(summary(&json!(null)), "");
        let long = summary(&json!({"sql": "x".repeat(100)}));
        assert_eq!(long.chars().count(), super::SUMMARY_CHARS);
        assert!(long.ends_with('…'));
    }
}
