//! `tollgate audit list|show|verify|export`: read the store directly (no
//! server needed), e.g. on an auditor's copy of the data dir. Everything
//! printed from the store goes through `gateway_core::text` escaping, so a
//! stored value can never put raw control characters (terminal escapes,
//! forged lines) or bidi tricks on the auditor's terminal.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use futures::StreamExt;
use gateway_core::audit::{AuditFilter, AuditStore};
use gateway_core::text::{escape_for_terminal as esc, json_for_terminal};

use super::load_config;
use crate::cli::{AuditCommand, ConfigArg};
use crate::store;

async fn open(config: &ConfigArg) -> Result<Arc<dyn AuditStore>, ExitCode> {
    let config = load_config(&config.config)?;
    let dir = config.resolve_path(&config.server.data_dir);
    store::open_existing_store(&dir).await.map_err(|e| {
        eprintln!("cannot open the audit store in {}: {e:#}", dir.display());
        ExitCode::from(1)
    })
}

/// Run an audit command.
pub async fn run(command: AuditCommand) -> anyhow::Result<ExitCode> {
    let config = match &command {
        AuditCommand::List { config, .. }
        | AuditCommand::Show { config, .. }
        | AuditCommand::Verify { config }
        | AuditCommand::Export { config, .. } => config.clone(),
    };
    let store = match open(&config).await {
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
                decision,
                limit: Some(limit),
                ..Default::default()
            };
            for e in store.list(&filter).await? {
                let conn = e.record.connection.as_deref().unwrap_or("-");
                writeln!(
                    out,
                    "{:>6}  {}  {}  {:<8} {:<16} {:<12} {}",
                    e.seq,
                    esc(&e.time),
                    esc(&e.id),
                    esc(&e.record.decision),
                    esc(&e.record.principal.sub),
                    esc(conn),
                    esc(&e.record.tool)
                )?;
            }
        }
        AuditCommand::Show { id, .. } => match store.get(&id).await? {
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
        AuditCommand::Verify { .. } => {
            let report = store.verify().await.context("verifying the chain")?;
            writeln!(out, "{}", esc(&report.to_string()))?;
            return Ok(if report.is_intact() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
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
