//! Policy hot reload: on SIGHUP and when a `.cedar` file under `policy.dir`
//! changes (created, written, renamed, removed; debounced, so an editor's
//! save is one reload). Each trigger runs [`app::reload_policies`]: the set
//! is validated first; a valid set replaces the live one, a bad set keeps
//! the last good one and the log and the `policy_reload` audit event say why.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use gateway_core::Gateway;
use tokio::sync::mpsc;

use crate::app;
use crate::config::Config;

/// Quiet time after the last change before reloading.
const DEBOUNCE: Duration = Duration::from_millis(300);

/// Start both triggers for the life of the process.
pub fn spawn(config: &Config, gateway: Arc<Gateway>) {
    let (tx, mut rx) = mpsc::channel::<&'static str>(1);
    spawn_sighup(tx.clone());
    let watcher = if config.policy.watch {
        watch_dir(&config.resolve_path(&config.policy.dir), tx)
    } else {
        None
    };
    let config_path = config.source.clone();
    tokio::spawn(async move {
        // Owned by the task: dropping it would stop the watch.
        let _watcher = watcher;
        while let Some(mut why) = rx.recv().await {
            if why == "file change" {
                // Coalesce a burst of events (write, rename, chmod...).
                loop {
                    match tokio::time::timeout(DEBOUNCE, rx.recv()).await {
                        Ok(Some(next)) => why = next,
                        Ok(None) => return,
                        Err(_) => break,
                    }
                }
            }
            tracing::info!(trigger = why, "reloading policies");
            if let Err(e) = app::reload_policies(&config_path, &gateway).await {
                tracing::error!(error = %e, "policy reload NOT recorded in the audit log");
            }
        }
    });
}

fn spawn_sighup(tx: mpsc::Sender<&'static str>) {
    #[cfg(unix)]
    {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::warn!("cannot handle SIGHUP; policies reload on file changes only");
            return;
        };
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                let _ = tx.send("SIGHUP").await;
            }
        });
    }
    #[cfg(not(unix))]
    let _ = tx;
}

/// Watch `dir` (recursively) for changes to `.cedar` files. `None` (and a
/// warning) when the platform cannot watch it: SIGHUP still works.
fn watch_dir(dir: &Path, tx: mpsc::Sender<&'static str>) -> Option<notify::RecommendedWatcher> {
    use notify::{RecursiveMode, Watcher};
    let handler = move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if event.kind.is_access() || !event.paths.iter().any(|p| is_policy_file(p)) {
            return;
        }
        // Full channel: a reload is already due; this change is in it.
        let _ = tx.try_send("file change");
    };
    let watched = notify::recommended_watcher(handler).and_then(|mut w| {
        w.watch(dir, RecursiveMode::Recursive)?;
        Ok(w)
    });
    match watched {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e,
                "cannot watch the policy folder; policies reload on SIGHUP only");
            None
        }
    }
}

fn is_policy_file(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "cedar")
}
