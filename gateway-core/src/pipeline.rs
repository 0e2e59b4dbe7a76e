//! The pipeline, top to bottom: every tool call runs these stages in this
//! order, and this file holds the order and nothing else.
//!
//! identity → route → analysis → policy → approval → execute → mask → audit
//!
//! Identity is resolved by the transport before [`Gateway::call`] (a
//! [`Principal`] is the proof). Every path out of here, allowed or not, ends
//! in [`Gateway::finish`], which writes the audit event durably before the
//! result is returned.

use serde_json::{Value, json};

use crate::approval::{ApprovalStatus, CallContext};
use crate::builtin;
use crate::connector::ExecLimits;
use crate::disclosure::disclose;
use crate::gateway::{Gateway, connect_request};
use crate::identity::Principal;
use crate::outcome::{CallError, CallResult};
use crate::policy::{Mode, Verdict};
use crate::record::Trace;
use crate::routing;

impl Gateway {
    /// Run one tool call through every stage.
    pub async fn call(
        &self,
        principal: &Principal,
        tool: &str,
        args: Value,
        ctx: &CallContext<'_>,
    ) -> CallResult {
        let mut trace = Trace::start(principal, tool, &args, &self.masker);
        if tool == builtin::LIST_CONNECTIONS {
            let listed = json!({"connections": self.visible_connections(principal)});
            return self.finish(trace, Ok((listed, None))).await;
        }
        if tool == builtin::APPROVAL_WAIT {
            return routing::approval_wait(self, principal, &args, ctx).await;
        }
        // Route: which connection serves this call.
        let connector = match self
            .stages
            .time(0, || routing::connection(self, tool, &args))
        {
            Ok(c) => c,
            Err(e) => return self.finish(trace, Err(e)).await,
        };
        let connection = connector.info().name.clone();
        // Analysis: what will this really do? Unanalysable input never runs.
        connector.prepare(tool, &args).await;
        let plan = match self.stages.time(1, || connector.analyse(tool, &args)) {
            Ok(p) => p,
            Err(e) => return self.finish(trace, Err(e.into())).await,
        };
        // Policy: `connect` first, then every request the analysis produced.
        let policy = self.policy();
        let requests: Vec<_> = std::iter::once(connect_request(&connection))
            .chain(plan.requests.iter().cloned())
            .collect();
        let decision = self.stages.time(2, || policy.decide(principal, &requests));
        trace.requests(&decision.requests);
        match routing::bind_resumed(decision.verdict, ctx) {
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
                    routing::ticket(self, &args, &trace, &plan, &decision.requests, requirements);
                match routing::await_approval(self, ticket, ctx).await {
                    ApprovalStatus::Approved { id, approvers } => {
                        trace.approval(&id, "approved", &approvers)
                    }
                    ApprovalStatus::Pending { id, pending } => {
                        trace.approval(&id, "pending", &[]);
                        return self.finish_pending(trace, pending).await;
                    }
                    ApprovalStatus::Refused { id, state, message } => {
                        trace.approval(&id, &state, &[]);
                        return self
                            .finish(trace, Err(CallError::ApprovalRefused(message)))
                            .await;
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
        // Execute with the credentials the connector holds.
        let limits = ExecLimits {
            max_rows: connector.max_rows(),
            max_bytes: self.max_bytes,
        };
        let started = std::time::Instant::now();
        let executed = connector.execute(&plan, limits).await;
        self.stages.add(3, started.elapsed());
        routing::mark_executed(self, &trace, executed.is_ok()).await;
        let output = match executed {
            Ok(o) => o,
            Err(e) => return self.finish(trace, Err(e.into())).await,
        };
        // Mask before anything leaves or is recorded.
        let resources: Vec<_> = plan.requests.iter().map(|r| r.resource.clone()).collect();
        let (rows, truncated) = (output.rows, output.truncated);
        let shown = self.stages.time(4, || {
            disclose(
                &self.masker,
                &policy,
                principal,
                &connection,
                &resources,
                output,
            )
        });
        trace.masked(&shown.counts);
        let caller = routing::with_masked_counts(shown.caller, &shown.counts, truncated);
        self.finish(trace, Ok((caller, Some((shown.recorded, rows)))))
            .await
    }
}
