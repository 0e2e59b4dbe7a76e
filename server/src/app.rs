//! Assembles a running gateway from a validated [`Config`]: policies,
//! masker, audit store, connections, identity. Shared by `serve`, `demo`,
//! `check` and `policy test`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use gateway_core::access_log::policy_reload_record;
use gateway_core::audit::{AuditEvent, StoreError};
use gateway_core::identity::{Authenticator, IdentityConfig, KeySource};
use gateway_core::mask::Masker;
use gateway_core::policy::{PolicyEngine, PolicyError, PolicySchema, load_dir};
use gateway_core::{Gateway, GatewayBuilder};

use crate::config::{Config, ConfigError, parse_duration};
use crate::{approvals, connectors, store};

/// The policy schema of this build: the core's Cedar fragment combined with
/// the fragment of every tool family compiled in (whatever a config
/// connects to, so one policy folder validates the same under any config).
pub fn policy_schema() -> Result<Arc<PolicySchema>, PolicyError> {
    let families: Vec<_> = connectors::factories()
        .iter()
        .map(|f| f.vocabulary())
        .collect();
    Ok(Arc::new(PolicySchema::combine(&families)?))
}

/// Load and validate the policies of a config.
pub fn policies(config: &Config) -> Result<PolicyEngine, Vec<String>> {
    let schema = policy_schema().map_err(|e| diagnostics(&e))?;
    let dir = config.resolve_path(&config.policy.dir);
    let sources = load_dir(&dir).map_err(|e| diagnostics(&e))?;
    PolicyEngine::new(schema, &sources).map_err(|e| diagnostics(&e))
}

/// sha256 of the policy set `config` names (see
/// [`gateway_core::access_log::policy_set_hash`]); `None` if the directory
/// cannot be read.
pub fn policy_set_hash(config: &Config) -> Option<String> {
    let sources = load_dir(&config.resolve_path(&config.policy.dir)).ok()?;
    Some(gateway_core::access_log::policy_set_hash(
        sources.iter().map(|s| (s.name.as_str(), s.text.as_str())),
    ))
}

/// Reload the policies of the config at `config_path` into `gateway`: a
/// valid set replaces the live one, an invalid one is refused and the last
/// good set stays in force. Either way the attempt is appended to the audit
/// chain as a `policy_reload` event (the set's sha256, accepted or not).
pub async fn reload_policies(
    config_path: &std::path::Path,
    gateway: &Gateway,
) -> Result<AuditEvent, StoreError> {
    let loaded = Config::load(config_path).map_err(|e| gateway_core::text::lines(&e));
    let hash = loaded.as_ref().ok().and_then(policy_set_hash);
    let record = match loaded.and_then(|c| policies(&c).map_err(|e| e.join("\n"))) {
        Ok(engine) => {
            tracing::info!(policies = engine.len(), "policies reloaded");
            gateway.set_policy(engine);
            policy_reload_record(hash.as_deref(), None)
        }
        Err(e) => {
            tracing::error!(errors = %e, "policy reload refused; the previous policies stay in force");
            policy_reload_record(hash.as_deref(), Some(&e))
        }
    };
    gateway.audit().append(record).await
}

fn diagnostics(e: &PolicyError) -> Vec<String> {
    match e {
        PolicyError::Invalid(d) => d.iter().map(|d| d.to_string()).collect(),
        other => vec![other.to_string()],
    }
}

/// Everything `check` validates, as `file:line:col: message` lines.
pub fn check(config: &Config) -> Vec<String> {
    let mut errs: Vec<String> = vec![];
    if let Err(e) = policies(config) {
        errs.extend(e);
    }
    if let Err(e) = connectors::build(config) {
        errs.extend(e.iter().map(ConfigError::to_string));
    }
    if let Err(e) = Masker::new(&config.masking) {
        // Point at the subsection a classification problem is in.
        let at = if e.0.starts_with("classification:") {
            "classification"
        } else {
            "[masking]"
        };
        errs.push(config.error_near(at, e.to_string()).to_string());
    }
    if let Err(e) = authenticator(config) {
        errs.push(config.error_near("[auth]", e.to_string()).to_string());
    }
    if let Err(e) = crate::checkpoint::settings(config) {
        errs.push(config.error_near("[audit]", e.to_string()).to_string());
    }
    errs
}

/// The bearer verifier of `[auth]`, or None when no key source is set
/// (then only stdio works).
pub fn authenticator(config: &Config) -> anyhow::Result<Option<Authenticator>> {
    let a = &config.auth;
    let keys = if let Some(s) = &a.hs256_secret {
        KeySource::Hs256(
            config
                .secret(s)
                .map_err(|e| anyhow!("auth.hs256_secret: {e}"))?,
        )
    } else if let Some(u) = &a.jwks_url {
        KeySource::JwksUrl(u.clone())
    } else if let Some(f) = &a.jwks_file {
        KeySource::JwksFile(config.resolve_path(f))
    } else {
        return Ok(None);
    };
    let mut ic = IdentityConfig::new(keys);
    ic.issuer = a.issuer.clone();
    ic.audience = a.audience.clone();
    if let Some(g) = &a.groups_claim {
        ic.groups_claim = g.clone();
    }
    if let Some(l) = &a.leeway {
        ic.leeway = parse_duration(l.get_ref()).map_err(|e| anyhow!("auth.leeway: {e}"))?;
    }
    Ok(Some(
        Authenticator::new(ic).map_err(|e| anyhow!("[auth]: {e}"))?,
    ))
}

/// Build the gateway (opens the store, builds connections lazily).
pub async fn gateway(config: &Config) -> anyhow::Result<Arc<Gateway>> {
    let policy = policies(config).map_err(|e| anyhow!("invalid policies:\n{}", e.join("\n")))?;
    let masker = Masker::new(&config.masking).map_err(|e| anyhow!("{e}"))?;
    let data_dir = config.resolve_path(&config.server.data_dir);
    let (audit, approval_store) = store::open_stores(&data_dir)
        .await
        .with_context(|| format!("opening the store in {}", data_dir.display()))?;
    // Calls a stopped server left between intent and outcome are closed as
    // `unknown` before any new call runs (gateway_core::audit::intent).
    if let Err(e) = gateway_core::audit::intent::close_unfinished(audit.as_ref()).await {
        tracing::error!(error = %e, "cannot close the intents a stopped server left open; retried at the next start");
    }
    let gate = approvals::gate(config, approval_store, audit.clone())?;
    let connections = connectors::build(config)
        .map_err(|e| anyhow!("invalid connections:\n{}", gateway_core::text::lines(&e)))?;
    let mut builder = GatewayBuilder::new(policy, audit)
        .approvals(gate)
        .mode(config.policy.mode)
        .masker(Arc::new(masker))
        .max_bytes(config.server.max_result_bytes)
        .limits(config.call_limits());
    for c in connections {
        builder = builder.connection(c);
    }
    Ok(Arc::new(builder.build()?))
}

/// Default time a call blocks for an approval.
pub fn approval_wait(config: &Config) -> Duration {
    Duration::from_secs(config.approval.wait_seconds)
}
