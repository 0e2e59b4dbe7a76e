//! The reviewers' side of approvals: the gate's assembly from `[approval]`,
//! the REST API under `/api/approvals` ([`api`]) and the Slack-compatible
//! webhook ([`webhook`]); the review pages are in [`crate::ui`].
//!
//! The rules themselves (who may decide, distinct approvers, expiry, one
//! execution) live in `gateway_core::approval`; this module only
//! authenticates, maps errors to HTTP and renders.

pub mod api;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use gateway_core::Principal;
use gateway_core::approval::{ApprovalConfig, ApprovalService, ApprovalStore};
use gateway_core::audit::AuditStore;

use crate::config::Config;
use crate::state::AppState;

/// How often expired approvals are swept (expiry also applies lazily).
const SWEEP_EVERY: Duration = Duration::from_secs(15);

/// Build the approval gate of a config, with its webhook and expiry sweeper.
/// Must run inside a tokio runtime.
pub fn gate(
    config: &Config,
    store: Arc<dyn ApprovalStore>,
    audit: Arc<dyn AuditStore>,
) -> anyhow::Result<Arc<ApprovalService>> {
    let settings = ApprovalConfig {
        wait: Duration::from_secs(config.approval.wait_seconds),
        ttl: config.approval_ttl(),
        public_url: config.public_url(),
        ..Default::default()
    };
    let mut service = ApprovalService::new(store, audit.clone(), settings);
    if let Some(raw) = &config.approval.webhook_url {
        let url = config
            .secret(raw)
            .map_err(|e| anyhow!("approval.webhook_url: {e}"))?;
        service = service.with_notifier(Arc::new(webhook::Webhook::new(
            url.expose().to_string(),
            audit,
        )));
    }
    let service = Arc::new(service);
    let sweeper = Arc::downgrade(&service);
    tokio::spawn(async move {
        loop {
            let Some(s) = sweeper.upgrade() else { return };
            match s.sweep_expired().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(expired = n, "approvals expired"),
                Err(e) => tracing::warn!(error = %e, "approval expiry sweep failed"),
            }
            drop(s);
            tokio::time::sleep(SWEEP_EVERY).await;
        }
    });
    Ok(service)
}

/// An HTTP client for the webhook and the reviewer CLI. reqwest is built
/// without a default TLS crypto provider: install aws-lc-rs (the one
/// provider of the workspace) first, or building the client panics.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot build an HTTP client");
            reqwest::Client::new()
        })
}

/// The reviewers' service of the running gateway.
pub(crate) fn service(state: &AppState) -> Option<&ApprovalService> {
    state.approval_service()
}

/// May `who` see every approval (`audit:read`)?
pub(crate) fn sees_all(state: &AppState, who: &Principal) -> bool {
    state.sees_all(who)
}
