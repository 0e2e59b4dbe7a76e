//! What the pipeline counts for operators, through the `metrics` facade: a
//! counter and a latency histogram per recorded call, and the time each
//! audit append takes. The facade records into whatever recorder the
//! process installed (the server's Prometheus renderer behind `GET
//! /metrics`) and costs a no-op without one; this crate installs none and
//! knows no exposition format or transport.
//!
//! Invariant: labels are bounded and carry no call data. `tool` is one of
//! the tools the gateway serves, or [`UNKNOWN_TOOL`] for any other name a
//! caller sent; `decision` is one of the four recorded decision words.
//! Arguments, principals, connections' secrets and results never become a
//! label or a value here.

use std::time::Duration;

/// Counter: recorded tool calls, labelled `tool` and `decision`.
pub const CALLS_TOTAL: &str = "tollgate_calls_total";
/// Histogram (seconds): a call's time from its arrival at the pipeline to
/// its audit event being durable, labelled `tool`.
pub const CALL_DURATION: &str = "tollgate_call_duration_seconds";
/// Histogram (seconds): time one audit append takes (the event durable).
pub const AUDIT_APPEND_DURATION: &str = "tollgate_audit_append_duration_seconds";
/// Gauge: approvals waiting on reviewers. Set by whoever renders the
/// metrics, from a count in the approval store
/// ([`crate::approval::ApprovalService::pending_count`]).
pub const APPROVALS_PENDING: &str = "tollgate_approvals_pending";
/// The `tool` label of a call naming a tool the gateway does not serve.
pub const UNKNOWN_TOOL: &str = "unknown";

/// The decision words a call is recorded with (the audit event's `decision`).
const DECISIONS: [&str; 4] = ["allow", "deny", "pending", "error"];

/// Help texts and units for the metrics above. Call once after installing
/// a recorder (descriptions go to the recorder installed at the time).
pub fn describe() {
    metrics::describe_counter!(
        CALLS_TOTAL,
        "Tool calls recorded in the audit log, by tool and decision (allow, deny, pending, error)."
    );
    metrics::describe_histogram!(
        CALL_DURATION,
        metrics::Unit::Seconds,
        "Time from a tool call's arrival to its audit event being durable, by tool \
         (a call that waits on humans counts its wait)."
    );
    metrics::describe_histogram!(
        AUDIT_APPEND_DURATION,
        metrics::Unit::Seconds,
        "Time to append one audit event durably (tool calls and approval transitions)."
    );
    metrics::describe_gauge!(
        APPROVALS_PENDING,
        "Approvals waiting on reviewers (pending and not expired), counted in the approval store."
    );
}

/// The label value of `decision`: one of the four words; anything else (a
/// bug) is counted as `error` rather than growing the label set.
fn decision_label(decision: &str) -> &'static str {
    DECISIONS
        .into_iter()
        .find(|d| *d == decision)
        .unwrap_or("error")
}

/// Count one recorded call. `tool` must already be bounded (a served tool
/// name or [`UNKNOWN_TOOL`]): see `Gateway::tool_label`.
pub(crate) fn call_recorded(tool: String, decision: &str, elapsed: Duration) {
    metrics::counter!(CALLS_TOTAL, "tool" => tool.clone(), "decision" => decision_label(decision))
        .increment(1);
    metrics::histogram!(CALL_DURATION, "tool" => tool).record(elapsed.as_secs_f64());
}

/// Time one audit append took.
pub(crate) fn audit_appended(elapsed: Duration) {
    metrics::histogram!(AUDIT_APPEND_DURATION).record(elapsed.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_are_bounded() {
        for d in DECISIONS {
            assert_eq!(decision_label(d), d);
        }
        assert_eq!(decision_label("maybe"), "error");
        assert_eq!(decision_label("ALLOW"), "error");
    }
}
