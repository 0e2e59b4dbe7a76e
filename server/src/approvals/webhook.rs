//! Slack-compatible webhook: on an approval's creation and on its decision,
//! POST `{text, blocks}` with the review link to `approval.webhook_url`.
//!
//! Delivery runs in its own task with retries and exponential backoff; a
//! failing webhook is logged and audited (event `webhook_failed`) but never
//! blocks, changes or loses the approval. The URL (Slack hook URLs are
//! credentials) is never logged or recorded.

use std::sync::Arc;
use std::time::Duration;

use gateway_core::Principal;
use gateway_core::approval::service::AUDIT_TOOL;
use gateway_core::approval::{Approval, Notifier};
use gateway_core::audit::{ApprovalRecord, AuditRecord, AuditStore, OutcomeRecord};
use serde_json::{Value, json};

/// Delays before each retry.
const BACKOFF: [Duration; 5] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
    Duration::from_secs(16),
];

/// Events that are sent (votes that do not decide, executions... are not).
const SENT: [&str; 4] = ["created", "approved", "denied", "expired"];

/// The webhook notifier.
pub struct Webhook {
    url: String,
    client: reqwest::Client,
    audit: Arc<dyn AuditStore>,
    backoff: Vec<Duration>,
}

impl Webhook {
    /// POST to `url`; failures are recorded in `audit`.
    pub fn new(url: String, audit: Arc<dyn AuditStore>) -> Self {
        Webhook {
            url,
            client: super::http_client(Duration::from_secs(10)),
            audit,
            backoff: BACKOFF.to_vec(),
        }
    }

    /// Use other retry delays (tests).
    pub fn with_backoff(mut self, backoff: Vec<Duration>) -> Self {
        self.backoff = backoff;
        self
    }
}

/// Escape text for Slack mrkdwn.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The Slack message for `event` on `a`.
pub fn message(event: &str, a: &Approval, review_url: &str) -> Value {
    let who = slack_escape(&a.requester.sub);
    let what = slack_escape(&a.summary_text());
    let title = slack_escape(&a.review.title);
    let conn = slack_escape(a.connection.as_deref().unwrap_or("-"));
    let headline = match event {
        "created" => format!(
            "Approval needed ({}): {who} wants to run on {conn}",
            a.required
                .iter()
                .map(|r| format!("{} from {}", r.count, r.group))
                .collect::<Vec<_>>()
                .join(" and ")
        ),
        "approved" => format!(
            "Approved by {}: {who}'s call on {conn}",
            slack_escape(&a.approvers().join(", "))
        ),
        "denied" => {
            let r = a.reviews.iter().rev().find(|r| r.verdict == "deny");
            format!(
                "Denied by {}: {who}'s call on {conn} — {}",
                slack_escape(r.map_or("a reviewer", |r| r.sub.as_str())),
                slack_escape(r.and_then(|r| r.reason.as_deref()).unwrap_or(""))
            )
        }
        other => format!("Approval {other}: {who}'s call on {conn}"),
    };
    json!({
        "text": format!("{headline}: {what} (approval {}) {review_url}", a.id),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": format!("*{headline}*\n{title}\n```{what}```")}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": format!("approval `{}` · state *{}* · expires {}", a.id, a.state.as_str(), gateway_core::approval::record::fmt(a.expires_at))}]},
            {"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Review"}, "url": review_url}]}
        ]
    })
}

impl Notifier for Webhook {
    fn notify(&self, event: &str, a: &Approval, review_url: &str) {
        if !SENT.contains(&event) {
            return;
        }
        let body = message(event, a, review_url);
        let (client, url, audit, backoff) = (
            self.client.clone(),
            self.url.clone(),
            self.audit.clone(),
            self.backoff.clone(),
        );
        let (id, state, approvers, connection) = (
            a.id.clone(),
            a.state.as_str().to_string(),
            a.approvers(),
            a.connection.clone(),
        );
        let event = event.to_string();
        tokio::spawn(async move {
            let attempts = backoff.len() + 1;
            for attempt in 1..=attempts {
                let error = match client.post(&url).json(&body).send().await {
                    Ok(r) if r.status().is_success() => return,
                    Ok(r) => format!("webhook answered {}", r.status()),
                    // Without the URL: reqwest errors carry it.
                    Err(e) => format!("webhook unreachable ({})", kind(&e)),
                };
                tracing::warn!(approval = %id, %event, attempt, attempts, %error, "approval webhook failed");
                let record = AuditRecord {
                    principal: Principal {
                        sub: "tollgate".into(),
                        groups: vec![],
                    },
                    tool: AUDIT_TOOL.into(),
                    connection: connection.clone(),
                    arguments: json!({"event": "webhook_failed", "approval_id": id, "notification": event, "attempt": attempt, "attempts": attempts}),
                    requests: vec![],
                    decision: "error".into(),
                    approval: Some(ApprovalRecord {
                        id: id.clone(),
                        state: state.clone(),
                        approvers: approvers.clone(),
                    }),
                    outcome: OutcomeRecord {
                        status: "error".into(),
                        duration_ms: 0,
                        rows: None,
                        error: Some(error),
                    },
                    result_preview: Value::Null,
                    masked: Default::default(),
                    recording: None,
                    intent: None,
                };
                if let Err(e) = audit.append(record).await {
                    tracing::error!(error = %e, "webhook failure NOT recorded in the audit log");
                }
                if let Some(d) = backoff.get(attempt - 1) {
                    tokio::time::sleep(*d).await;
                }
            }
        });
    }
}

fn kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection refused or DNS failure"
    } else {
        "request failed"
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_message_shows_the_review_escaped() {
        let a: Approval = serde_json::from_value(json!({
            "id": "apr_1", "state": "pending",
            "requester": {"sub": "<@U123> bot", "groups": ["agents"]},
            "tool": "sql_query", "connection": "shop",
            "arguments": {}, "arguments_masked": {}, "arguments_hash": "sha256:00",
            "review": {"title": "DELETE on public.<!channel>",
                       "runs": [{"label": "delete", "resources": [], "text": [
                           {"code": "DELETE FROM t WHERE a > "}, {"literal": "'[EMAIL]'"}]}],
                       "resources": []},
            "requests": [], "required": [{"group": "dba", "count": 1, "policies": ["p"]}],
            "reviews": [], "created_at": "2026-01-01T00:00:00Z", "expires_at": "2026-01-01T01:00:00Z",
            "decided_at": null, "claimed_at": null, "finished_at": null, "note": null, "version": 0
        }))
        .unwrap();
        let m = message("created", &a, "https://t/ui/approvals/apr_1");
        let text = m["text"].as_str().unwrap();
        assert!(
            text.contains("sql_query: DELETE FROM t WHERE a &gt; '[EMAIL]'"),
            "{text}"
        );
        assert!(text.contains("&lt;@U123&gt; bot"), "{text}");
        let block = m["blocks"][0]["text"]["text"].as_str().unwrap();
        assert!(
            block.contains("DELETE on public.&lt;!channel&gt;"),
            "{block}"
        );
        assert!(!m.to_string().contains("<!channel>"), "{m}");
    }
}
