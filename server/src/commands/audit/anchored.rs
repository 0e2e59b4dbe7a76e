//! The anchored side of `tollgate audit`: `checkpoint` (sign the chain head
//! now, write it out) and `verify --checkpoint CP` (prove the store still
//! holds, unchanged, everything a signed checkpoint covers). The model is
//! `gateway_core::audit::checkpoint`; the writer is [`crate::checkpoint`].

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use gateway_core::audit::checkpoint::{Checkpoint, CheckpointKey, check_store};
use gateway_core::audit::{AuditStore, VerifyReport};
use gateway_core::text::escape_for_terminal as esc;

use crate::checkpoint::{self, Writer};
use crate::config::Config;

/// `audit checkpoint`: verify the whole chain, sign its head, write it to
/// the configured folder (printing the path) and webhook.
pub async fn checkpoint(
    config: &Config,
    store: Arc<dyn AuditStore>,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let (key, outputs) = match checkpoint::settings(config) {
        Ok(Some(s)) => s,
        Ok(None) => {
            eprintln!(
                "nothing to sign with: `tollgate audit checkpoint` needs [audit] checkpoint_key \
                 (an Ed25519 private key: `openssl genpkey -algorithm ed25519 -out audit.pem`) \
                 and checkpoint_dir or checkpoint_webhook"
            );
            return Ok(ExitCode::from(1));
        }
        Err(e) => {
            eprintln!("{e:#}");
            return Ok(ExitCode::from(1));
        }
    };
    let written = match Writer::new(key, outputs, store).write(false).await {
        Ok(Some(w)) => w,
        Ok(None) => return Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("{}", esc(&e.to_string()));
            return Ok(ExitCode::from(1));
        }
    };
    match &written.path {
        Some(path) => writeln!(out, "{}", path.display())?,
        // Webhook only: the operator still sees what was signed.
        None => writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&written.checkpoint)?
        )?,
    }
    eprintln!(
        "signed the chain head: seq {} with key {}",
        written.checkpoint.seq, written.checkpoint.key_id
    );
    if let Some(e) = written.webhook_error {
        eprintln!("{e}");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// `audit verify --checkpoint CP...`: one line per checkpoint; `false` when
/// any is refused or not covered by the store whose chain check is `report`.
pub async fn verify(
    config: &Config,
    store: &dyn AuditStore,
    report: &VerifyReport,
    paths: &[PathBuf],
    out: &mut impl Write,
) -> anyhow::Result<bool> {
    let key = match checkpoint::key(config) {
        Ok(Some(k)) => k,
        Ok(None) => {
            writeln!(
                out,
                "cannot check a checkpoint: the config sets no audit.checkpoint_key. A checkpoint \
                 proves something only under a key you trust: set checkpoint_key to the signing \
                 key, or to its public key (`openssl pkey -in audit.pem -pubout`)"
            )?;
            return Ok(false);
        }
        Err(e) => {
            writeln!(out, "cannot check a checkpoint: {e:#}")?;
            return Ok(false);
        }
    };
    let mut all = true;
    for path in paths {
        let line = one(&key, store, report, path).await?;
        all &= line.is_ok();
        let (Ok(text) | Err(text)) = line;
        writeln!(
            out,
            "checkpoint {}: {}",
            esc(&path.display().to_string()),
            esc(&text)
        )?;
    }
    Ok(all)
}

/// What to say about one checkpoint file: `Ok` when the store covers it.
async fn one(
    key: &CheckpointKey,
    store: &dyn AuditStore,
    report: &VerifyReport,
    path: &PathBuf,
) -> anyhow::Result<Result<String, String>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return Ok(Err(format!("cannot read it: {e}"))),
    };
    let cp = match Checkpoint::parse(&text).and_then(|cp| {
        cp.verify_signature(key.public())?;
        Ok(cp)
    }) {
        Ok(cp) => cp,
        Err(e) => return Ok(Err(format!("REFUSED: {e}"))),
    };
    Ok(match check_store(store, &cp, report).await? {
        Ok(()) => Ok(format!(
            "covered: the store still holds, unchanged, every event up to seq {} (signed {} by key {})",
            cp.seq, cp.time, cp.key_id
        )),
        Err(u) => Err(format!("NOT COVERED: {u}")),
    })
}
