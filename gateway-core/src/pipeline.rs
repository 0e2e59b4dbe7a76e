//! The pipeline, top to bottom: every tool call runs these stages in this
//! order, and this file holds the order and nothing else.
//!
//! identity → limits → route → analysis → policy → approval → intent
//! (write-ahead audit) → execute → hide unpermitted items → mask → audit
//!
//! Identity is resolved by the transport before [`Gateway::call`] (a
//! [`Principal`] is the proof). Every path out of here, allowed or not, ends
//! in [`Gateway::finish`], which writes the audit event durably before the
//! result is returned.

use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use serde_json::Value;
use tracing::Instrument;

use crate::approval::{ApprovalStatus, CallContext};
use crate::connector::{AffectedLimit, ExecLimits, FieldOrigin, IntentGate, IntentOrder};
use crate::disclosure::{self, disclose};
use crate::gateway::{Gateway, connect_request};
use crate::identity::Principal;
use crate::limits::Refusal;
use crate::outcome::{CallError, CallResult};
use crate::policy::{Mode, Verdict};
use crate::record::{Recorded, Trace};
use crate::recording::{ProgressSender, Recording, RenderedRecording};
use crate::stages::Stage;
use crate::{gate, guards, route};

impl Gateway {
    /// Run one tool call through every stage. A panic in any stage (a bug)
    /// does not reach the transport: it ends as an `internal_error` result
    /// with its own audit event.
    pub async fn call(
        &self,
        principal: &Principal,
        tool: &str,
        args: Value,
        ctx: &CallContext<'_>,
    ) -> CallResult {
        // Abuse limits first: an oversized or over-limit call costs no
        // analysis and runs nothing. Its concurrency slots are held until
        // the call ends.
        let _admission = match self.limits.admit(principal, tool, &args) {
            Ok(a) => a,
            Err(refusal) => return self.refuse_early(principal, tool, &args, refusal).await,
        };
        let span = tracing::trace_span!(
            target: crate::stages::SPAN_TARGET,
            "tool_call",
            otel.name = "tool_call",
            tool = tool,
            principal = %principal.sub,
        );
        let run = AssertUnwindSafe(self.run_stages(principal, tool, &args, ctx))
            .catch_unwind()
            .instrument(span);
        match run.await {
            Ok(result) => result,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".into());
                tracing::error!(tool, error = %what, "a pipeline stage panicked");
                let trace = Trace::start(principal, tool, &args, &self.masker);
                self.finish(trace, Err(CallError::Internal("a stage panicked".into())))
                    .await
            }
        }
    }

    /// Record and answer a call refused by [`crate::limits`].
    async fn refuse_early(
        &self,
        principal: &Principal,
        tool: &str,
        args: &Value,
        refusal: Refusal,
    ) -> CallResult {
        match refusal {
            Refusal::TooLarge { bytes, max } => {
                // The oversized arguments are not recorded, only their size
                // and the connection they named.
                let mut shown =
                    serde_json::json!({"omitted": format!("{bytes} bytes of arguments")});
                if let Some(c) = args.get("connection").and_then(Value::as_str)
                    && c.len() <= 200
                {
                    shown["connection"] = Value::String(c.to_string());
                }
                let trace = Trace::start(principal, tool, &shown, &self.masker);
                let e = CallError::InvalidArguments(format!(
                    "the arguments are {bytes} bytes of JSON, more than the {max} bytes this server accepts \
                     (server.max_argument_bytes); nothing was run: send less per call"
                ));
                self.finish(trace, Err(e)).await
            }
            Refusal::Limited {
                kind,
                limit,
                retry_after_s,
            } => {
                // The first refusal of this principal and limit in the
                // window is the call's own event; the rest are counted into
                // the window's one `rate_limited` event, so a caller hammering
                // a limit cannot flood the store.
                let first = self.rate_refusals.note(&principal.sub, &limit);
                let e = CallError::RateLimited {
                    kind,
                    limit,
                    retry_after_s,
                };
                if first {
                    let trace = Trace::start(principal, tool, args, &self.masker);
                    return self.finish(trace, Err(e)).await;
                }
                crate::metrics::call_recorded(
                    self.tool_label(tool),
                    "deny",
                    std::time::Duration::ZERO,
                );
                CallResult::error(&e, e.to_string())
            }
        }
    }

    async fn run_stages(
        &self,
        principal: &Principal,
        tool: &str,
        args: &Value,
        ctx: &CallContext<'_>,
    ) -> CallResult {
        // Built-in tools (list_connections, approval_wait) need no connector.
        if let Some(served) = self.serve_builtin(principal, tool, args, ctx).await {
            return served;
        }
        let mut trace = Trace::start(principal, tool, args, &self.masker);
        // Route: which connection serves this call.
        let connector = match self
            .stages
            .time(Stage::Route, || route::connection(self, tool, args))
        {
            Ok(c) => c,
            Err(e) => return self.finish(trace, Err(e)).await,
        };
        let connection = connector.info().name.clone();
        // What the family knows must not be recorded as given.
        if let Some(shown) = connector.recorded_arguments(tool, args) {
            trace.replace_arguments(shown, &self.masker);
        }
        // Analysis: what will this really do? Unanalysable input never runs.
        connector.prepare(tool, args).await;
        let plan = match self
            .stages
            .time(Stage::Analysis, || connector.analyse(tool, args))
        {
            Ok(p) => p,
            Err(e) => return self.finish(trace, Err(e.into())).await,
        };
        // Policy: `connect` first, then every request the analysis produced.
        let policy = self.policy();
        let requests: Vec<_> = std::iter::once(connect_request(&connection))
            .chain(plan.requests.iter().cloned())
            .collect();
        let decision = self
            .stages
            .time(Stage::Policy, || policy.decide(principal, &requests));
        trace.requests(&decision.requests);
        match gate::bind_resumed(decision.verdict, ctx) {
            Verdict::Allow => {}
            // Shadow mode records the would-be denial (in the requests) and goes on.
            Verdict::Deny { .. } if self.mode == Mode::Shadow => {}
            Verdict::Deny { message, policies } => {
                return self
                    .finish(trace, Err(CallError::Denied { message, policies }))
                    .await;
            }
            // Approval: pause until humans decide; the gate re-checks nothing, so
            // the policy above ran on exactly these arguments for this requester.
            Verdict::NeedsApproval(requirements) => {
                let ticket =
                    gate::ticket(self, args, &trace, &plan, &decision.requests, requirements);
                let waited = gate::await_approval(self, ticket, ctx)
                    .instrument(crate::stage_span!("approval"))
                    .await;
                match waited {
                    ApprovalStatus::Approved { id, approvers } => {
                        trace.approval(&id, "approved", &approvers)
                    }
                    ApprovalStatus::Pending { id, pending } => {
                        trace.approval(&id, "pending", &[]);
                        return self.finish_pending(trace, pending).await;
                    }
                    ApprovalStatus::Refused { id, state, message } => {
                        trace.approval(&id, &state, &[]);
                        // Used up (it ran) is not the same answer as denied.
                        let refused = match state.as_str() {
                            "executed" | "failed" | "approved" => CallError::ApprovalUsed(message),
                            _ => CallError::ApprovalRefused(message),
                        };
                        return self.finish(trace, Err(refused)).await;
                    }
                }
            }
        }
        // Fail closed: never execute what the audit store could not record.
        if let Err(e) = self.audit.healthy() {
            return self
                .finish(trace, Err(CallError::AuditUnavailable(e.to_string())))
                .await;
        }
        // Execute with the credentials the connector holds, within the
        // gateway's caps; the caller's cancellation stops the target's work.
        let limits = ExecLimits {
            max_items: None,
            max_bytes: self.max_bytes,
            max_affected: decision.max_affected.map(|cap| AffectedLimit {
                max: cap.rows,
                set_by: format!("policy `{}`", cap.policy),
            }),
            timeout: None,
            cancel: ctx
                .cancellation
                .map_or_else(Default::default, |c| c.child_token()),
            caller: Some(principal.clone()),
            progress: None,
            intent: IntentGate::default(),
        };
        // A caller that already went away gets nothing run on its behalf.
        if let Err(e) = limits.check() {
            return self.finish(trace, Err(e.into())).await;
        }
        // Write-ahead: the call's intent is durable before it can take
        // effect — before execute, or (when the connector can undo every
        // effect of the plan) before it commits, the append overlapping the
        // work.
        let overlap = connector.intent_order(&plan) == IntentOrder::BeforeCommit;
        let (limits, signal) = if overlap {
            let (gate, signal) = IntentGate::pending();
            let limits = ExecLimits {
                intent: gate,
                ..limits
            };
            (limits, Some(signal))
        } else {
            (limits, None)
        };
        let intent = trace.intent();
        let append_intent = async {
            let appended = self
                .append_intent(intent)
                .instrument(crate::stage_span!("intent"))
                .await;
            if let Some(signal) = signal {
                signal.resolve(appended.as_ref().map(|_| ()).map_err(Clone::clone));
            }
            appended
        };
        let execution = async {
            let started = std::time::Instant::now();
            let executed = self
                .execute(connector.as_ref(), &plan, limits, ctx)
                .instrument(crate::stage_span!(Stage::Execute.name()))
                .await;
            self.stages.add(Stage::Execute, started.elapsed());
            executed
        };
        let (intent, executed) = if overlap {
            tokio::join!(append_intent, execution)
        } else {
            match append_intent.await {
                Ok(id) => (Ok(id), execution.await),
                Err(e) => {
                    return self
                        .finish(trace, Err(CallError::AuditUnavailable(e)))
                        .await;
                }
            }
        };
        match intent {
            Ok(id) => trace.intent_recorded(id),
            // Whatever the connector did was undone (or only read): nothing
            // is returned that the record does not hold.
            Err(e) => {
                return self
                    .finish(trace, Err(CallError::AuditUnavailable(e)))
                    .await;
            }
        }
        gate::mark_executed(self, &trace, &executed).await;
        let mut output = match executed {
            Ok(o) => o,
            Err(e) => return self.finish(trace, Err(e.into())).await,
        };
        // Items the caller may not see leave before masking and audit.
        let guarded = self.stages.time(Stage::Mask, || {
            guards::hide_unpermitted(&policy, principal, self.mode, &mut output)
        });
        let hidden = match guarded {
            Ok(h) => h,
            Err(e) => return self.finish(trace, Err(e.into())).await,
        };
        // Mask before anything leaves or is recorded; a recording is masked
        // as the record is, event by event.
        let recording = output.recording.take().map(|r| {
            self.stages.time(Stage::Mask, || {
                mask_recording(&self.masker, connector.info(), r)
            })
        });
        let resources: Vec<_> = plan.requests.iter().map(|r| r.resource.clone()).collect();
        let (items, truncated) = (output.items, output.truncated);
        let item_list = output.item_list.clone();
        let shown = self.stages.time(Stage::Mask, || {
            disclose(
                &self.masker,
                &policy,
                principal,
                connector.info(),
                &resources,
                output,
            )
        });
        trace.masked(&shown.counts);
        let caller =
            disclosure::with_masked_counts(shown.caller, &shown.counts, &shown.fields, truncated);
        let recorded = guards::record_hidden(shown.recorded, hidden);
        let recorded = Recorded {
            value: recorded,
            items,
            item_list,
            recording,
        };
        self.finish(trace, Ok((caller, Some(recorded)))).await
    }
}

impl Gateway {
    /// Run the plan, forwarding what the connector reports as progress to
    /// a transport that listens.
    async fn execute(
        &self,
        connector: &dyn crate::connector::Connector,
        plan: &crate::connector::Plan,
        limits: ExecLimits,
        ctx: &CallContext<'_>,
    ) -> Result<crate::connector::ToolOutput, crate::connector::ExecuteError> {
        let Some(sink) = ctx.progress else {
            return connector.execute(plan, limits).await;
        };
        let (tx, mut reports) = ProgressSender::channel();
        let limits = ExecLimits {
            progress: Some(tx),
            ..limits
        };
        let execution = connector.execute(plan, limits);
        tokio::pin!(execution);
        let r = loop {
            tokio::select! {
                r = &mut execution => break r,
                Some(message) = reports.recv() => sink.progress(&message),
            }
        };
        // What was reported just before the end still goes out.
        while let Ok(message) = reports.try_recv() {
            sink.progress(&message);
        }
        r
    }
}

/// The recording with its command and every output event masked as the
/// audit record is (the detectors and the field rules of each event's
/// stream), rendered as asciicast v2 and hashed. Connectors emit events on
/// line boundaries, so a value is never split between two events.
fn mask_recording(
    masker: &crate::mask::Masker,
    connection: &crate::connector::ConnectionInfo,
    mut recording: Recording,
) -> RenderedRecording {
    let origins: Vec<FieldOrigin> = recording
        .events
        .iter()
        .enumerate()
        .map(|(i, e)| FieldOrigin::new(format!("/{i}"), e.field.clone()))
        .collect();
    let mut texts = Value::Array(
        recording
            .events
            .iter_mut()
            .map(|e| Value::String(std::mem::take(&mut e.text)))
            .collect(),
    );
    // Counts come from the result; the recording holds the same output.
    let _ = masker.mask_value(connection, &mut texts, &origins);
    for (event, text) in recording
        .events
        .iter_mut()
        .zip(texts.as_array().into_iter().flatten())
    {
        event.text = match text {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
    }
    recording.command = masker.mask_text(&recording.command).0;
    recording.title = masker.mask_text(&recording.title).0;
    RenderedRecording::new(&recording)
}
