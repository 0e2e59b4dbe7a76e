//! Builds the audit record of one call as it moves through the pipeline.
//! Everything recorded is masked: arguments as the masker sees them, the
//! result only as a bounded, masked preview.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::Value;
use tracing::Instrument;

use crate::audit::{ApprovalRecord, AuditRecord, OutcomeRecord, RequestRecord};
use crate::identity::Principal;
use crate::mask::Masker;
use crate::policy::RequestDecision;

/// Entries kept of the result's item list (the connector's
/// [`ToolOutput::item_list`](crate::connector::ToolOutput::item_list)).
const PREVIEW_ITEMS: usize = 5;
/// Entries kept of every other array.
const PREVIEW_ENTRIES: usize = 20;
/// Characters kept per preview string.
const PREVIEW_CHARS: usize = 200;

/// The record under construction.
pub struct Trace {
    started: Instant,
    record: AuditRecord,
}

impl Trace {
    /// Start a record; `arguments` are masked here, before anything else.
    pub fn start(principal: &Principal, tool: &str, arguments: &Value, masker: &Masker) -> Self {
        let mut args = arguments.clone();
        let masked = masker.mask_value("", &mut args, &[]);
        let connection = arguments
            .get("connection")
            .and_then(Value::as_str)
            .map(str::to_string);
        Trace {
            started: Instant::now(),
            record: AuditRecord {
                principal: principal.clone(),
                tool: tool.to_string(),
                connection,
                arguments: args,
                requests: vec![],
                decision: "error".into(),
                approval: None,
                outcome: OutcomeRecord {
                    status: "error".into(),
                    duration_ms: 0,
                    rows: None,
                    error: None,
                },
                result_preview: Value::Null,
                masked,
                recording: None,
                intent: None,
            },
        }
    }

    /// The call's write-ahead intent entry: the record so far (who, what,
    /// the decisions, the approval) with `outcome.status` = `intent`.
    pub fn intent(&self) -> AuditRecord {
        let mut record = self.record.clone();
        record.decision = "allow".into();
        record.outcome = OutcomeRecord {
            status: crate::audit::intent::INTENT_STATUS.into(),
            duration_ms: self.started.elapsed().as_millis() as u64,
            rows: None,
            error: None,
        };
        record.result_preview = Value::Null;
        record
    }

    /// The intent entry `id` is durable: the call's event names it.
    pub fn intent_recorded(&mut self, id: String) {
        self.record.intent = Some(id);
    }

    /// Record `arguments` (the family's rendering, see
    /// [`crate::connector::Connector::recorded_arguments`]) in place of the
    /// arguments as given, masked the same way.
    pub fn replace_arguments(&mut self, mut arguments: Value, masker: &Masker) {
        self.record.masked = masker.mask_value("", &mut arguments, &[]);
        self.record.arguments = arguments;
    }

    /// Who called.
    pub fn principal(&self) -> &Principal {
        &self.record.principal
    }

    /// The tool called.
    pub fn tool(&self) -> &str {
        &self.record.tool
    }

    /// The masked arguments (what reviewers and the record show).
    pub fn arguments(&self) -> &Value {
        &self.record.arguments
    }

    /// Record the policy decisions.
    pub fn requests(&mut self, decisions: &[RequestDecision]) {
        self.record.requests = decisions
            .iter()
            .map(|d| RequestRecord {
                action: d.action.clone(),
                resource: d.resource.clone(),
                decision: if d.allowed { "allow" } else { "deny" }.into(),
                policies: d.policies.clone(),
            })
            .collect();
    }

    /// Record the approval the call waited on.
    pub fn approval(&mut self, id: &str, state: &str, approvers: &[String]) {
        self.record.approval = Some(ApprovalRecord {
            id: id.into(),
            state: state.into(),
            approvers: approvers.to_vec(),
        });
    }

    /// The approval recorded so far, if any.
    pub fn approval_id(&self) -> Option<String> {
        self.record.approval.as_ref().map(|a| a.id.clone())
    }

    /// Add masked counts.
    pub fn masked(&mut self, counts: &BTreeMap<String, u64>) {
        for (k, v) in counts {
            *self.record.masked.entry(k.clone()).or_default() += v;
        }
    }

    /// Finish with a decision and outcome.
    pub fn finish(
        mut self,
        decision: &str,
        status: &str,
        items: Option<u64>,
        error: Option<String>,
        preview: Value,
    ) -> AuditRecord {
        self.record.decision = decision.into();
        self.record.outcome = OutcomeRecord {
            status: status.into(),
            duration_ms: self.started.elapsed().as_millis() as u64,
            // The contract names the count `rows` whatever the items are.
            rows: items,
            error,
        };
        self.record.result_preview = preview;
        self.record
    }
}

/// The one log line per call (target `tollgate::call`, INFO): who, which
/// tool and connection, the decision and outcome, how long, how many items
/// and masked values, and the audit event that holds the rest. Names and
/// counts only: a call's arguments, results and error texts never reach the
/// log (the audit record keeps them, masked).
struct CallLine {
    principal: String,
    tool: String,
    connection: String,
    decision: String,
    status: String,
    duration_ms: u64,
    rows: Option<u64>,
    masked: u64,
    approval: Option<String>,
}

impl CallLine {
    fn of(record: &AuditRecord) -> Self {
        CallLine {
            principal: record.principal.sub.clone(),
            tool: record.tool.clone(),
            connection: record.connection.clone().unwrap_or_default(),
            decision: record.decision.clone(),
            status: record.outcome.status.clone(),
            duration_ms: record.outcome.duration_ms,
            rows: record.outcome.rows,
            masked: record.masked.values().sum(),
            approval: record.approval.as_ref().map(|a| a.id.clone()),
        }
    }

    fn log(self, event: Option<&crate::audit::AuditEvent>) {
        let (id, seq) = event.map_or((None, None), |e| (Some(e.id.as_str()), Some(e.seq)));
        tracing::info!(
            target: "tollgate::call",
            principal = %self.principal,
            tool = %self.tool,
            connection = %self.connection,
            decision = %self.decision,
            status = %self.status,
            duration_ms = self.duration_ms,
            rows = self.rows,
            masked = self.masked,
            approval = self.approval,
            audit_id = id,
            audit_seq = seq,
            recorded = event.is_some(),
            "call"
        );
    }
}

/// A bounded preview of a (masked) result: the first entries of its item
/// list (`item_list`, a JSON pointer), the first [`PREVIEW_ENTRIES`] of any
/// other array, long strings cut.
pub fn preview(value: &Value, item_list: Option<&str>) -> Value {
    fn cut(v: &Value, path: &mut String, list: Option<&str>) -> Value {
        match v {
            Value::String(s) if s.chars().count() > PREVIEW_CHARS => {
                Value::String(s.chars().take(PREVIEW_CHARS).chain("…".chars()).collect())
            }
            Value::Array(a) => {
                let keep = if list == Some(path.as_str()) {
                    PREVIEW_ITEMS
                } else {
                    PREVIEW_ENTRIES
                };
                let at = path.len();
                let out = a
                    .iter()
                    .take(keep)
                    .enumerate()
                    .map(|(i, x)| {
                        path.truncate(at);
                        path.push('/');
                        path.push_str(&i.to_string());
                        cut(x, path, list)
                    })
                    .collect();
                path.truncate(at);
                Value::Array(out)
            }
            Value::Object(o) => {
                let at = path.len();
                let out = o
                    .iter()
                    .map(|(k, x)| {
                        path.truncate(at);
                        path.push('/');
                        path.push_str(&k.replace('~', "~0").replace('/', "~1"));
                        (k.clone(), cut(x, path, list))
                    })
                    .collect();
                path.truncate(at);
                Value::Object(out)
            }
            other => other.clone(),
        }
    }
    cut(value, &mut String::new(), item_list)
}

// === impl Gateway: the audit stage ===

use crate::gateway::Gateway;
use crate::outcome::{CallError, CallResult, PendingApproval};

/// What the audit record gets of a successful connector call.
pub(crate) struct Recorded {
    /// The result as recorded (masked).
    pub value: Value,
    /// Items returned (the outcome's `rows`).
    pub items: Option<u64>,
    /// Pointer to the result's item list, for the preview.
    pub item_list: Option<String>,
    /// The call's recording, masked and rendered: stored before the event
    /// that names it.
    pub recording: Option<crate::recording::RenderedRecording>,
}

/// A successful call's payload: what the caller gets, and optionally what
/// the record gets (None: the caller's value, counting no items).
pub(crate) type Finished = Result<(Value, Option<Recorded>), CallError>;

impl Gateway {
    /// The audit stage: record the call durably, then hand back its result.
    /// A call whose record cannot be written does not return its result.
    pub(crate) async fn finish(&self, trace: Trace, result: Finished) -> CallResult {
        let started = trace.started;
        match result {
            Ok((caller, recorded)) => {
                let recorded = recorded.unwrap_or_else(|| Recorded {
                    value: caller.clone(),
                    items: None,
                    item_list: None,
                    recording: None,
                });
                let shown = preview(&recorded.value, recorded.item_list.as_deref());
                let mut record = trace.finish("allow", "ok", recorded.items, None, shown);
                // The recording is durable before the event that names it.
                let stored = match &recorded.recording {
                    Some(r) => self
                        .store_recording(r)
                        .await
                        .map(|()| Some(r.reference.clone())),
                    None => Ok(None),
                };
                let appended = match stored {
                    Ok(reference) => {
                        record.recording = reference;
                        self.record_call(record, started).await
                    }
                    // It ran: the record says so, without a recording, and
                    // the caller gets an error instead of the output.
                    Err(e) => {
                        record.outcome.status = "error".into();
                        record.outcome.error =
                            Some(format!("the call ran; its output is withheld: {e}"));
                        match self.record_call(record, started).await {
                            Ok(()) => Err(e),
                            Err(also) => Err(format!("{e}; and its event: {also}")),
                        }
                    }
                };
                match appended {
                    Ok(()) => CallResult::ok(caller),
                    Err(e) => {
                        let e = CallError::AuditFailedAfterExecution(e);
                        CallResult::error(&e, e.to_string())
                    }
                }
            }
            Err(e) => {
                // Error texts can carry target data (constraint values...): mask them.
                let (message, counts) = self.masker.mask_text(&e.to_string());
                let mut trace = trace;
                trace.masked(&counts);
                let status = if e.decision() == "deny" {
                    "denied"
                } else {
                    "error"
                };
                let record = trace.finish(
                    e.decision(),
                    status,
                    None,
                    Some(message.clone()),
                    Value::Null,
                );
                let message = match self.record_call(record, started).await {
                    Ok(()) => message,
                    Err(store) => {
                        format!("{message} (and the audit store could not record this: {store})")
                    }
                };
                CallResult::error(&e, message)
            }
        }
    }

    /// Record a call that is waiting on humans and return the pending object.
    pub(crate) async fn finish_pending(
        &self,
        trace: Trace,
        pending: PendingApproval,
    ) -> CallResult {
        let started = trace.started;
        let record = trace.finish("pending", "pending", None, None, pending.to_value());
        match self.record_call(record, started).await {
            Ok(()) => CallResult::pending(pending),
            Err(e) => {
                let e = CallError::AuditUnavailable(e);
                CallResult::error(&e, e.to_string())
            }
        }
    }

    async fn store_recording(
        &self,
        recording: &crate::recording::RenderedRecording,
    ) -> Result<(), String> {
        let started = Instant::now();
        let r = self
            .audit
            .put_recording(recording)
            .await
            .map_err(|e| format!("the call's recording could not be stored: {e}"));
        self.stages
            .add(crate::stages::Stage::Audit, started.elapsed());
        r
    }

    /// Append a call's event durably, then count the call (its decision,
    /// and its time since `started` with the append included): the one
    /// place calls are counted, as every call ends in exactly one event.
    async fn record_call(&self, record: AuditRecord, started: Instant) -> Result<(), String> {
        let tool = self.tool_label(&record.tool);
        let decision = record.decision.clone();
        let appended = self.append(record).await;
        crate::metrics::call_recorded(tool, &decision, started.elapsed());
        appended
    }

    /// Append a call's write-ahead intent durably; its id on success.
    pub(crate) async fn append_intent(&self, record: AuditRecord) -> Result<String, String> {
        let tool = record.tool.clone();
        let appended = self.timed_append(self.audit.append(record)).await;
        appended
            .map(|e| {
                tracing::debug!(tool = %tool, audit_id = %e.id, audit_seq = e.seq, "intent recorded");
                e.id
            })
            .map_err(|e| e.to_string())
    }

    async fn append(&self, record: AuditRecord) -> Result<(), String> {
        let line = CallLine::of(&record);
        // An executed call's event that cannot be written now is written
        // late, so its intent does not stay open until the next start.
        let late_copy = record.intent.is_some().then(|| record.clone());
        // A call whose intent is durable closes it without waiting for the
        // disk: a crash after this loses nothing, a power loss leaves the
        // intent, closed as `unknown` at the next start (`audit::intent`).
        let appended = self
            .timed_append(
                async {
                    if record.intent.is_some() {
                        self.audit.append_written(record).await
                    } else {
                        self.audit.append(record).await
                    }
                }
                .instrument(crate::stage_span!(crate::stages::Stage::Audit.name())),
            )
            .await;
        line.log(appended.as_ref().ok());
        match (&appended, late_copy) {
            (Err(e), Some(record)) => self.late.keep(record, &e.to_string()),
            (Ok(_), _) if !self.late.is_empty() => {
                self.late.write(self.audit.as_ref()).await;
            }
            _ => {}
        }
        appended.map(|_| ()).map_err(|e| e.to_string())
    }

    /// Run one audit append, charging its time to the append metric and
    /// the audit stage (intents and events alike).
    async fn timed_append<T>(&self, append: impl std::future::Future<Output = T>) -> T {
        let started = Instant::now();
        let out = append.await;
        let took = started.elapsed();
        crate::metrics::audit_appended(took);
        self.stages.add(crate::stages::Stage::Audit, took);
        out
    }
}
