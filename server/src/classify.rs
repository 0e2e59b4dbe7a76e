//! Classification runs (`[masking.classification]`): every connection
//! samples its fields and marks the sensitive ones (see
//! [`gateway_core::classify`]) at start, then every `interval`; `tollgate
//! masking classify` runs it once. Each connection's run is one audit event
//! (tool `masking.classify`, principal `tollgate`) holding counts, field
//! names and types, never a sampled value. A failed run logs a warning and
//! leaves that connection's previous classification in force.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway_core::Gateway;
use gateway_core::audit::{AuditRecord, OutcomeRecord};
use gateway_core::classify::{ClassificationReport, Classifier};
use gateway_core::connector::Connector;
use gateway_core::identity::Principal;
use serde_json::{Value, json};

use crate::config::Config;

/// Tool name of the audit events of classification runs.
pub const AUDIT_TOOL: &str = "masking.classify";

/// The classifier of a config, judging with the gateway's masker.
pub fn classifier(config: &Config, gateway: &Gateway) -> anyhow::Result<Classifier> {
    Classifier::new(&config.masking.classification, gateway.masker().clone())
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// One connection's run.
#[derive(Debug)]
pub struct ConnectionRun {
    /// Connection name.
    pub connection: String,
    /// Connector kind.
    pub kind: String,
    /// The report; `Ok(None)` when the family classifies nothing.
    pub result: Result<Option<ClassificationReport>, String>,
    /// Wall time.
    pub duration: Duration,
}

/// Classify every connection once (concurrently), record each run in the
/// audit log, and return the runs. Nothing runs when classification is off
/// and nothing is pinned, or when masking itself is off (`[masking]
/// enabled = false`: nothing would be masked, so nothing is read).
pub async fn run_once(gateway: &Gateway, classifier: &Classifier) -> Vec<ConnectionRun> {
    if !gateway.masker().is_enabled() || (!classifier.enabled() && !classifier.has_pins()) {
        return Vec::new();
    }
    let runs = futures::future::join_all(
        gateway
            .connections()
            .map(|c| run_connection(gateway, c.as_ref(), classifier)),
    )
    .await;
    for run in &runs {
        match &run.result {
            Ok(None) => continue,
            Ok(Some(r)) => {
                if !r.complete {
                    tracing::warn!(
                        connection = %run.connection,
                        timeout_ms = classifier.timeout().as_millis() as u64,
                        "classification ran out of time before sampling every column; \
                         columns not reached keep their earlier classification \
                         (raise [masking.classification] timeout)"
                    );
                }
                tracing::info!(
                    connection = %run.connection,
                    classified = r.classified.len(),
                    sampled_fields = r.sampled_fields,
                    ms = run.duration.as_millis() as u64,
                    "classification done"
                );
            }
            Err(e) => tracing::warn!(
                connection = %run.connection,
                error = %e,
                "classification failed; the connection keeps its previous classification"
            ),
        }
        if let Err(e) = gateway.audit().append(record(run, classifier)).await {
            tracing::error!(connection = %run.connection, error = %e, "classification run NOT recorded in the audit log");
        }
    }
    runs
}

async fn run_connection(
    gateway: &Gateway,
    c: &dyn Connector,
    classifier: &Classifier,
) -> ConnectionRun {
    let started = Instant::now();
    // Connector errors come without credentials or quoted values; masked
    // once more, as every text that reaches the audit log.
    let result = c
        .classify(classifier)
        .await
        .map_err(|e| gateway.masker().mask_text(&e.to_string()).0);
    ConnectionRun {
        connection: c.info().name.clone(),
        kind: c.info().kind.clone(),
        result,
        duration: started.elapsed(),
    }
}

/// The audit record of a run: settings, counts, classified field names and
/// types. No sampled value is ever in it.
pub fn record(run: &ConnectionRun, classifier: &Classifier) -> AuditRecord {
    let (decision, status, error, preview) = match &run.result {
        Ok(Some(r)) => ("allow", "ok", None, report_json(r)),
        Ok(None) => ("allow", "ok", None, Value::Null),
        Err(e) => ("error", "error", Some(e.clone()), Value::Null),
    };
    AuditRecord {
        principal: Principal {
            sub: "tollgate".into(),
            groups: vec![],
        },
        tool: AUDIT_TOOL.into(),
        connection: Some(run.connection.clone()),
        arguments: json!({
            "sample_rows": classifier.sample_rows(),
            "threshold": classifier.threshold(),
            "min_hits": classifier.min_hits(),
            "timeout_ms": classifier.timeout().as_millis() as u64,
        }),
        requests: vec![],
        decision: decision.into(),
        approval: None,
        outcome: OutcomeRecord {
            status: status.into(),
            duration_ms: run.duration.as_millis() as u64,
            rows: match &run.result {
                Ok(Some(r)) => Some(r.sampled_values),
                _ => None,
            },
            error,
        },
        result_preview: preview,
        masked: Default::default(),
        recording: None,
        intent: None,
    }
}

fn report_json(r: &ClassificationReport) -> Value {
    serde_json::to_value(r).unwrap_or(Value::Null)
}

/// Classify at start and then every `interval`, in the background. The
/// returned receiver fires once the first run is done (and recorded).
pub fn spawn(gateway: Arc<Gateway>, classifier: Classifier) -> tokio::sync::oneshot::Receiver<()> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut first = Some(tx);
        loop {
            run_once(&gateway, &classifier).await;
            if let Some(tx) = first.take() {
                let _ = tx.send(());
            }
            tokio::time::sleep(classifier.interval()).await;
        }
    });
    rx
}
