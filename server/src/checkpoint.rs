//! Audit checkpoints of this server: the `[audit]` key and where checkpoints
//! go (a folder, a webhook), the writer `serve` runs every
//! `checkpoint_interval` and once more at shutdown, and what `tollgate audit
//! checkpoint` calls. The model (what a checkpoint proves, how it is signed
//! and checked) is `gateway_core::audit::checkpoint`.
//!
//! Invariants: a writer never signs a head it has not checked (its first
//! checkpoint verifies the whole chain, each later one that the events since
//! the previous one chain onto it); a checkpoint file is either absent or
//! complete and durable (temp file, fsync, rename, fsync of the folder); the
//! key and the webhook URL appear in no error or log line.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use gateway_core::audit::checkpoint::{
    ChainHead, Checkpoint, CheckpointError, CheckpointKey, SigningKey, extend,
};
use gateway_core::audit::{AuditStore, StoreError};
use gateway_core::secret::{self, Secret};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// How long one webhook POST may take.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// The configured checkpoint key, if `[audit]` names one (resolved and
/// parsed; a relative `${file:}` is read from the config's folder).
pub fn key(config: &Config) -> anyhow::Result<Option<CheckpointKey>> {
    let Some(raw) = &config.audit.checkpoint_key else {
        return Ok(None);
    };
    let pem = secret::resolve_in(raw, config.folder())
        .map_err(|e| anyhow!("audit.checkpoint_key: {e}"))?;
    let key = CheckpointKey::from_pem(pem.expose()).map_err(|e| anyhow!("audit.{e}"))?;
    Ok(Some(key))
}

/// Where a writer sends its checkpoints.
#[derive(Debug)]
pub struct Outputs {
    /// Folder of checkpoint files.
    pub dir: Option<PathBuf>,
    /// URL each checkpoint is POSTed to.
    pub webhook: Option<Secret>,
}

/// The signing key and outputs of a config; `None` when it asks for no
/// checkpoints (no key, or only a public key and nowhere to write). What
/// `check` validates and `serve` starts from.
pub fn settings(config: &Config) -> anyhow::Result<Option<(SigningKey, Outputs)>> {
    let Some(key) = key(config)? else {
        return Ok(None);
    };
    let a = &config.audit;
    let outputs = Outputs {
        dir: a.checkpoint_dir.as_ref().map(|d| config.resolve_path(d)),
        webhook: a
            .checkpoint_webhook
            .as_deref()
            .map(|raw| secret::resolve_in(raw, config.folder()))
            .transpose()
            .map_err(|e| anyhow!("audit.checkpoint_webhook: {e}"))?,
    };
    let writes = outputs.dir.is_some() || outputs.webhook.is_some();
    match key {
        CheckpointKey::Signing(k) if writes => Ok(Some((k, outputs))),
        CheckpointKey::Signing(_) => Err(anyhow!(
            "audit.checkpoint_key is set but checkpoints go nowhere: set audit.checkpoint_dir \
             (a folder, best on another host), audit.checkpoint_webhook, or both"
        )),
        // An auditor's config: verifies checkpoints, writes none.
        CheckpointKey::Public(_) if !writes => Ok(None),
        CheckpointKey::Public(p) => Err(anyhow!(
            "audit.checkpoint_key is a public key (id {}): it verifies checkpoints but cannot \
             sign them; give the server the private key, or remove checkpoint_dir and \
             checkpoint_webhook from this config",
            p.id()
        )),
    }
}

/// Why no checkpoint was written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The chain is broken: nothing is signed over it.
    #[error("not signing a checkpoint: {0} (run `tollgate audit verify`)")]
    Broken(String),
    /// Signing failed.
    #[error(transparent)]
    Sign(#[from] CheckpointError),
    /// The file could not be written.
    #[error("cannot write a checkpoint file in {dir}: {source}")]
    File {
        /// The checkpoint folder.
        dir: String,
        /// Why.
        source: std::io::Error,
    },
}

/// A checkpoint signed and sent.
#[derive(Debug)]
pub struct Written {
    /// What was signed.
    pub checkpoint: Checkpoint,
    /// The file, when a folder is configured.
    pub path: Option<PathBuf>,
    /// Why the webhook did not take it, when one is configured and failed.
    pub webhook_error: Option<String>,
}

/// Signs the store's head and sends it to the outputs. Remembers the last
/// head it signed, which the next one must extend.
pub struct Writer {
    key: SigningKey,
    outputs: Outputs,
    store: Arc<dyn AuditStore>,
    client: reqwest::Client,
    last: Mutex<Option<ChainHead>>,
}

// === impl Writer ===

impl Writer {
    /// A writer over `store`.
    pub fn new(key: SigningKey, outputs: Outputs, store: Arc<dyn AuditStore>) -> Self {
        Writer {
            key,
            outputs,
            store,
            client: crate::approvals::http_client(WEBHOOK_TIMEOUT),
            last: Mutex::new(None),
        }
    }

    /// Sign the head now and send it; with `only_if_moved`, nothing (`None`)
    /// when it is the head this writer signed last.
    pub async fn write(&self, only_if_moved: bool) -> Result<Option<Written>, WriteError> {
        let mut last = self.last.lock().await;
        // Never sign a head the disk may not have yet (see
        // `AuditStore::append_written`): a power loss would then look like
        // a truncation.
        self.store.sync().await?;
        let head = match last.as_ref() {
            None => {
                let report = self.store.verify().await?;
                ChainHead::of_report(&report)
                    .ok_or_else(|| WriteError::Broken(report.to_string()))?
            }
            Some(prev) => extend(self.store.as_ref(), prev)
                .await?
                .map_err(|e| WriteError::Broken(e.to_string()))?,
        };
        if only_if_moved && last.as_ref() == Some(&head) {
            return Ok(None);
        }
        let checkpoint = self.key.sign(&head, chrono::Utc::now())?;
        let path = match &self.outputs.dir {
            Some(dir) => Some(
                write_file(dir, &checkpoint).map_err(|source| WriteError::File {
                    dir: dir.display().to_string(),
                    source,
                })?,
            ),
            None => None,
        };
        let webhook_error = match &self.outputs.webhook {
            Some(url) => self.post(url, &checkpoint).await.err(),
            None => None,
        };
        // Delivered somewhere: the next one extends it. A webhook-only
        // writer whose POST failed tries the same head again next time.
        if path.is_some() || webhook_error.is_none() {
            *last = Some(head);
        }
        Ok(Some(Written {
            checkpoint,
            path,
            webhook_error,
        }))
    }

    async fn post(&self, url: &Secret, checkpoint: &Checkpoint) -> Result<(), String> {
        match self.client.post(url.expose()).json(checkpoint).send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("the checkpoint webhook answered {}", r.status())),
            // Without the URL: reqwest errors carry it, and it may hold a token.
            Err(e) if e.is_timeout() => Err("the checkpoint webhook timed out".into()),
            Err(_) => Err("the checkpoint webhook is unreachable".into()),
        }
    }

    /// Write one every `every` when the head moved, and one more when
    /// `stop` is cancelled (then the task ends).
    pub fn spawn(self: Arc<Self>, every: Duration, stop: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                let at_shutdown = tokio::select! {
                    _ = tokio::time::sleep(every) => false,
                    _ = stop.cancelled() => true,
                };
                log(self.write(!at_shutdown).await, at_shutdown);
                if at_shutdown {
                    return;
                }
            }
        })
    }
}

fn log(result: Result<Option<Written>, WriteError>, at_shutdown: bool) {
    let when = if at_shutdown { "shutdown" } else { "interval" };
    match result {
        Ok(None) => {}
        Ok(Some(w)) => {
            let path = w.path.as_ref().map(|p| p.display().to_string());
            tracing::info!(
                seq = w.checkpoint.seq,
                key_id = %w.checkpoint.key_id,
                path = path.as_deref().unwrap_or("-"),
                when,
                "audit checkpoint written"
            );
            if let Some(e) = w.webhook_error {
                tracing::warn!(seq = w.checkpoint.seq, error = %e, "audit checkpoint not delivered");
            }
        }
        Err(e) => tracing::error!(error = %e, when, "audit checkpoint NOT written"),
    }
}

/// The checkpoint writer of a running server: stop it to write the
/// shutdown checkpoint.
pub struct Running {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// How long shutdown waits for the last checkpoint.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(30);

impl Running {
    /// Write the shutdown checkpoint and end the writer.
    pub async fn finish(self) {
        self.stop.cancel();
        if tokio::time::timeout(SHUTDOWN_WAIT, self.task)
            .await
            .is_err()
        {
            tracing::error!(
                wait_s = SHUTDOWN_WAIT.as_secs(),
                "the shutdown audit checkpoint did not finish in time"
            );
        }
    }
}

/// Start the interval writer of a config over `store`, if `[audit]` asks
/// for checkpoints.
pub fn start(config: &Config, store: Arc<dyn AuditStore>) -> anyhow::Result<Option<Running>> {
    let Some((key, outputs)) = settings(config)? else {
        return Ok(None);
    };
    tracing::info!(
        key_id = %key.public().id(),
        dir = outputs.dir.as_ref().map(|d| d.display().to_string()).as_deref().unwrap_or("-"),
        webhook = outputs.webhook.is_some(),
        interval_s = config.checkpoint_interval().as_secs_f64(),
        "audit checkpoints on"
    );
    let stop = CancellationToken::new();
    let writer = Arc::new(Writer::new(key, outputs, store));
    let task = writer.spawn(config.checkpoint_interval(), stop.clone());
    Ok(Some(Running { stop, task }))
}

/// `checkpoint-<seq, 20 digits>-<time, compact>.json`: sorts by seq, then time.
pub fn file_name(checkpoint: &Checkpoint) -> String {
    let time: String = checkpoint
        .time
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
        .collect();
    format!("checkpoint-{:020}-{time}.json", checkpoint.seq)
}

/// Write `checkpoint` into `dir` (created if missing) atomically and durably.
pub fn write_file(dir: &Path, checkpoint: &Checkpoint) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let name = file_name(checkpoint);
    let path = dir.join(&name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut body = serde_json::to_vec_pretty(checkpoint).map_err(std::io::Error::other)?;
    body.push(b'\n');
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(&body)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, &path)?;
    // The rename itself is durable once the folder is.
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    Ok(path)
}

#[cfg(test)]
mod tests;
