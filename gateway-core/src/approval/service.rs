//! [`ApprovalService`]: the approval gate over an [`ApprovalStore`]. Knows no
//! transport and no database. The pipeline asks it to await a decision; the
//! REST/UI layer asks it to record reviewers' decisions; both sides meet in
//! the store, so a decision reaches a waiting call in the same process at
//! once (a `Notify`) and across restarts by polling.
//!
//! Every transition is appended to the audit chain as an event of tool
//! [`AUDIT_TOOL`] (`arguments.event` names it: created, approve, approved,
//! denied, expired, cancelled, executed, failed). Decisions are refused
//! while the audit store is known unable to record (fail closed).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use serde_json::{Value, json};

use super::record::{Approval, ApprovalState, DecideError, merge_requirements, new_id, satisfied};
use super::store::{ApprovalStore, ApprovalStoreError};
use super::{ApprovalGate, ApprovalStatus, ApprovalTicket, CallContext, Execution};
use crate::audit::{ApprovalRecord, AuditRecord, AuditStore, OutcomeRecord};
use crate::identity::Principal;
use crate::outcome::{PendingApproval, PendingStatus};

/// `tool` of the audit events that record approval transitions.
pub const AUDIT_TOOL: &str = "approval";

/// Tells people about approvals (webhook). Must not block: implementations
/// queue and retry on their own.
pub trait Notifier: Send + Sync {
    /// `event` is `created` or a decision (`approved`, `denied`).
    fn notify(&self, event: &str, approval: &Approval, review_url: &str);
}

/// Settings of the gate (`[approval]`).
#[derive(Debug, Clone)]
pub struct ApprovalConfig {
    /// How long one call blocks for a decision.
    pub wait: Duration,
    /// Lifetime of a pending approval.
    pub ttl: Duration,
    /// Base of `review_url` (no trailing slash).
    pub public_url: String,
    /// Interval between progress notifications.
    pub progress_every: Duration,
    /// Store poll interval while waiting (decisions made by another process).
    pub poll: Duration,
}

impl Default for ApprovalConfig {
    fn default() -> Self {
        ApprovalConfig {
            wait: Duration::from_secs(50),
            ttl: Duration::from_secs(3600),
            public_url: "http://127.0.0.1:8080".into(),
            progress_every: Duration::from_secs(5),
            poll: Duration::from_millis(500),
        }
    }
}

/// Why a reviewer's (or agent's) request failed.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// No such approval visible to the caller.
    #[error("no approval {0}")]
    NotFound(String),
    /// The rules refuse it.
    #[error(transparent)]
    Refused(#[from] DecideError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] ApprovalStoreError),
    /// The audit store cannot record the decision, so it was not taken.
    #[error("the audit store cannot record decisions right now, so nothing was decided: {0}")]
    AuditUnavailable(String),
}

/// The approval gate.
pub struct ApprovalService {
    pub(super) store: Arc<dyn ApprovalStore>,
    audit: Arc<dyn AuditStore>,
    notifier: Option<Arc<dyn Notifier>>,
    config: ApprovalConfig,
    changed: tokio::sync::Notify,
    /// Every transition, for live views (the console's event stream).
    changes: tokio::sync::broadcast::Sender<ApprovalChange>,
}

/// A transition of one approval, as live views learn of it: which, and
/// what happened (`created`, `approve`, `approved`, `denied`, `expired`,
/// `cancelled`, `executed`, `failed`). Carries no content: a view reloads
/// what its viewer may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalChange {
    /// Approval id.
    pub id: String,
    /// What happened.
    pub event: String,
}

/// Longest lifetime an approval gets, whatever `ttl` says (100 years).
const LONGEST_DAYS: i64 = 36_500;

/// `now + d`, or far in the future (a year) when `d` is beyond what an
/// `Instant` can hold: a huge wait never panics.
fn later(now: tokio::time::Instant, d: Duration) -> tokio::time::Instant {
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600))
}

fn system() -> Principal {
    Principal {
        sub: "tollgate".into(),
        groups: vec![],
    }
}

// === impl ApprovalService ===

impl ApprovalService {
    /// A gate over `store`, recording transitions in `audit`.
    pub fn new(
        store: Arc<dyn ApprovalStore>,
        audit: Arc<dyn AuditStore>,
        config: ApprovalConfig,
    ) -> Self {
        ApprovalService {
            store,
            audit,
            notifier: None,
            config,
            changed: tokio::sync::Notify::new(),
            changes: tokio::sync::broadcast::channel(256).0,
        }
    }

    /// Add a notifier (webhook).
    pub fn with_notifier(mut self, n: Arc<dyn Notifier>) -> Self {
        self.notifier = Some(n);
        self
    }

    /// Settings.
    pub fn config(&self) -> &ApprovalConfig {
        &self.config
    }

    /// The reviewer's page for approval `id`.
    pub fn review_url(&self, id: &str) -> String {
        format!("{}/ui/approvals/{id}", self.config.public_url)
    }

    /// The public JSON of an approval.
    pub fn view(&self, a: &Approval) -> Value {
        a.view(&self.review_url(&a.id))
    }

    /// The pending object of the contract.
    pub fn pending_object(&self, a: &Approval) -> PendingApproval {
        PendingApproval {
            status: PendingStatus::PendingApproval,
            approval_id: a.id.clone(),
            expires_at: super::record::fmt(a.expires_at),
            review_url: self.review_url(&a.id),
            reviewers: a.groups(),
            required: a.required.clone(),
            approvers: a.approvers(),
            message: format!(
                "This call waits for a human approval ({}). Call approval_wait with approval_id {:?} to get its result once decided.",
                a.required
                    .iter()
                    .map(|r| format!("{} from {}", r.count, r.group))
                    .collect::<Vec<_>>()
                    .join(" and "),
                a.id
            ),
        }
    }

    async fn record(&self, actor: &Principal, a: &Approval, event: &str, reason: Option<&str>) {
        let decision = match a.state {
            ApprovalState::Pending => "pending",
            ApprovalState::Approved | ApprovalState::Executed => "allow",
            ApprovalState::Failed => "error",
            _ => "deny",
        };
        let record = AuditRecord {
            principal: actor.clone(),
            tool: AUDIT_TOOL.into(),
            connection: a.connection.clone(),
            arguments: json!({"event": event, "approval_id": a.id, "reason": reason,
                              "requester": a.requester.sub, "tool": a.tool, "arguments_hash": a.arguments_hash}),
            requests: vec![],
            decision: decision.into(),
            approval: Some(ApprovalRecord {
                id: a.id.clone(),
                state: a.state.as_str().into(),
                approvers: a.approvers(),
            }),
            outcome: OutcomeRecord {
                status: event.into(),
                duration_ms: 0,
                rows: None,
                error: a.note.clone().filter(|_| a.state == ApprovalState::Failed),
            },
            result_preview: Value::Null,
            masked: Default::default(),
            recording: None,
            intent: None,
        };
        let started = std::time::Instant::now();
        let appended = self.audit.append(record).await;
        crate::metrics::audit_appended(started.elapsed());
        if let Err(e) = appended {
            tracing::error!(approval = %a.id, event, error = %e, "approval transition NOT recorded in the audit log");
        }
    }

    /// Transitions from now on, in this process (a replica sharing the
    /// store learns of another's only by reading it). A receiver that falls
    /// more than 256 behind gets `Lagged` and should reload.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<ApprovalChange> {
        self.changes.subscribe()
    }

    fn notify(&self, event: &str, a: &Approval) {
        self.changed.notify_waiters();
        // No receiver is not an error: nobody is watching.
        let _ = self.changes.send(ApprovalChange {
            id: a.id.clone(),
            event: event.to_string(),
        });
        if let Some(n) = &self.notifier {
            n.notify(event, a, &self.review_url(&a.id));
        }
    }

    /// Apply `change` to approval `id` with compare-and-swap, retrying on a
    /// race. `change` returns Ok(true) to write, Ok(false) to leave as is.
    async fn transition<F>(&self, id: &str, mut change: F) -> Result<(Approval, bool), ReviewError>
    where
        F: FnMut(&mut Approval) -> Result<bool, DecideError>,
    {
        loop {
            let mut a = self
                .store
                .get(id)
                .await?
                .ok_or_else(|| ReviewError::NotFound(id.into()))?;
            let expired = a.expire_if_due(Utc::now());
            let changed = match change(&mut a) {
                Ok(c) => c,
                Err(e) => {
                    // Persist an expiry noticed on the way, then refuse.
                    if expired && self.store.update(&a).await? {
                        self.record(&system(), &a, "expired", None).await;
                        self.notify("expired", &a);
                    }
                    return Err(e.into());
                }
            };
            if !(changed || expired) {
                return Ok((a, false));
            }
            if self.store.update(&a).await? {
                a.version += 1;
                if expired && !changed {
                    self.record(&system(), &a, "expired", None).await;
                    self.notify("expired", &a);
                }
                return Ok((a, changed));
            }
        }
    }

    /// Record `who`'s approval of `id`.
    pub async fn approve(
        &self,
        id: &str,
        who: &Principal,
        reason: Option<String>,
    ) -> Result<Approval, ReviewError> {
        self.decide(id, who, reason, true).await
    }

    /// Record `who`'s denial of `id` (a reason is required).
    pub async fn deny(
        &self,
        id: &str,
        who: &Principal,
        reason: Option<String>,
    ) -> Result<Approval, ReviewError> {
        self.decide(id, who, reason, false).await
    }

    async fn decide(
        &self,
        id: &str,
        who: &Principal,
        reason: Option<String>,
        approve: bool,
    ) -> Result<Approval, ReviewError> {
        self.audit
            .healthy()
            .map_err(|e| ReviewError::AuditUnavailable(e.to_string()))?;
        let (a, _) = self
            .transition(id, |a| {
                let now = Utc::now();
                if approve {
                    a.approve(who, reason.clone(), now)?;
                } else {
                    a.deny(who, reason.clone(), now)?;
                }
                Ok(true)
            })
            .await?;
        let reason = a.reviews.last().and_then(|r| r.reason.clone());
        let event = if approve { "approve" } else { "denied" };
        self.record(who, &a, event, reason.as_deref()).await;
        if approve && a.state == ApprovalState::Approved {
            self.record(&system(), &a, "approved", None).await;
        }
        let notify = match a.state {
            ApprovalState::Approved => "approved",
            ApprovalState::Denied => "denied",
            _ => "approve",
        };
        self.notify(notify, &a);
        Ok(a)
    }

    /// The requester gave up waiting: cancel `id` if it is still pending.
    pub async fn cancel(&self, id: &str, who: &Principal, why: &str) -> Result<bool, ReviewError> {
        let (a, changed) = self
            .transition(id, |a| {
                if a.requester.sub != who.sub {
                    return Err(DecideError::NotReviewer("the requester".into()));
                }
                Ok(a.cancel(why, Utc::now()))
            })
            .await?;
        if changed {
            self.record(who, &a, "cancelled", Some(why)).await;
            self.notify("cancelled", &a);
        }
        Ok(changed)
    }

    /// Expire every open approval past its time (run periodically, and at
    /// start, so expiry holds across restarts). Returns how many expired.
    pub async fn sweep_expired(&self) -> Result<usize, ReviewError> {
        let mut n = 0;
        for state in [ApprovalState::Pending, ApprovalState::Approved] {
            for a in self.store.list(Some(state), 10_000).await? {
                if a.expires_at <= Utc::now() {
                    let (_, _) = self.transition(&a.id, |_| Ok(false)).await?;
                    n += 1;
                }
            }
        }
        Ok(n)
    }

    /// How many approvals wait on reviewers now: pending and not past
    /// their expiry (the sweeper may not have marked them yet). Counted in
    /// the store, so right after a restart and across processes sharing it.
    pub async fn pending_count(&self) -> Result<u64, ReviewError> {
        Ok(self.store.count_pending(Utc::now()).await?)
    }

    /// One approval, if `who` may see it: the requester, a member of a
    /// required group, or (`see_all`) an auditor.
    pub async fn get_for(
        &self,
        id: &str,
        who: &Principal,
        see_all: bool,
    ) -> Result<Approval, ReviewError> {
        let (a, _) = self.transition(id, |_| Ok(false)).await?;
        let visible = see_all
            || a.requester.sub == who.sub
            || a.required.iter().any(|r| who.groups.contains(&r.group));
        if visible {
            Ok(a)
        } else {
            Err(ReviewError::NotFound(id.into()))
        }
    }

    /// Approvals `who` may decide (all of them with `see_all`), in `state`.
    pub async fn list_for(
        &self,
        who: &Principal,
        state: Option<ApprovalState>,
        see_all: bool,
        limit: u32,
    ) -> Result<Vec<Approval>, ReviewError> {
        let _ = self.sweep_expired().await;
        let all = self.store.list(state, limit).await?;
        Ok(all
            .into_iter()
            .filter(|a| see_all || a.may_decide(who).is_ok())
            .collect())
    }

    async fn find_or_create(
        &self,
        ticket: &ApprovalTicket,
        resume: Option<&str>,
    ) -> Result<Approval, String> {
        let hash = super::record::arguments_hash(&ticket.arguments);
        if let Some(id) = resume {
            let a = self
                .store
                .get(id)
                .await
                .map_err(|e| e.to_string())?
                .filter(|a| a.requester.sub == ticket.requester.sub)
                .ok_or_else(|| format!("no approval {id} for you"))?;
            if a.tool != ticket.tool || a.arguments_hash != hash {
                return Err(format!(
                    "approval {id} was given for other arguments; nothing was executed"
                ));
            }
            return same_review(a, ticket);
        }
        // An open approval of these arguments whose review no longer matches
        // (the target changed since it was asked) is left alone: a new one
        // is asked for what the call would do now.
        if let Some(a) = self
            .store
            .find_open(&ticket.requester.sub, &ticket.tool, &hash)
            .await
            .map_err(|e| e.to_string())?
            .filter(|a| a.review == ticket.review)
        {
            return Ok(a);
        }
        let required = merge_requirements(&ticket.requirements);
        if required.is_empty() {
            return Err("nothing to approve".into());
        }
        let now = Utc::now();
        // A configured ttl beyond any date (`1000000y`) is capped, not a panic.
        let ttl = chrono::Duration::from_std(self.config.ttl)
            .unwrap_or_else(|_| chrono::Duration::hours(1))
            .min(chrono::Duration::days(LONGEST_DAYS));
        let a = Approval {
            id: new_id(),
            state: ApprovalState::Pending,
            requester: ticket.requester.clone(),
            tool: ticket.tool.clone(),
            connection: ticket.connection.clone(),
            arguments: ticket.arguments.clone(),
            arguments_masked: ticket.arguments_masked.clone(),
            arguments_hash: hash,
            review: ticket.review.clone(),
            requests: ticket.requests.clone(),
            required,
            reviews: vec![],
            created_at: now,
            expires_at: now
                .checked_add_signed(ttl)
                .unwrap_or(now + chrono::Duration::days(LONGEST_DAYS)),
            decided_at: None,
            claimed_at: None,
            finished_at: None,
            note: None,
            items: None,
            version: 0,
        };
        self.audit.healthy().map_err(|e| e.to_string())?;
        self.store.insert(&a).await.map_err(|e| e.to_string())?;
        self.record(&ticket.requester, &a, "created", None).await;
        self.notify("created", &a);
        Ok(a)
    }

    fn refused(a: &Approval) -> ApprovalStatus {
        let message = match a.state {
            ApprovalState::Denied => {
                let by = a.reviews.iter().rev().find(|r| r.verdict == "deny");
                format!(
                    "approval {} was denied by {}: {}; nothing was executed",
                    a.id,
                    by.map_or("a reviewer", |r| r.sub.as_str()),
                    by.and_then(|r| r.reason.as_deref()).unwrap_or("")
                )
            }
            ApprovalState::Expired => format!(
                "approval {} expired at {} without being used; nothing was executed",
                a.id,
                super::record::fmt(a.expires_at)
            ),
            ApprovalState::Cancelled => {
                format!("approval {} was cancelled; nothing was executed", a.id)
            }
            _ => format!(
                "approval {} was already used: an approval authorises one execution, and this one was claimed at {} ({}); \
                 its result went to the call that ran it (see `tollgate audit list`); call again to request a new approval",
                a.id,
                a.claimed_at.map(super::record::fmt).unwrap_or_default(),
                a.state.as_str()
            ),
        };
        ApprovalStatus::Refused {
            id: a.id.clone(),
            state: a.state.as_str().into(),
            message,
        }
    }
}

#[async_trait]
impl ApprovalGate for ApprovalService {
    async fn await_decision(
        &self,
        ticket: ApprovalTicket,
        ctx: &CallContext<'_>,
    ) -> ApprovalStatus {
        let a = match self.find_or_create(&ticket, ctx.resume).await {
            Ok(a) => a,
            Err(message) => {
                return ApprovalStatus::Refused {
                    id: ctx.resume.unwrap_or_default().to_string(),
                    state: "unavailable".into(),
                    message,
                };
            }
        };
        let id = a.id.clone();
        let wait = ctx.wait.unwrap_or(self.config.wait);
        let deadline = later(tokio::time::Instant::now(), wait);
        let mut next_progress = tokio::time::Instant::now();
        let current = merge_requirements(&ticket.requirements);
        loop {
            // Register for wake-ups before reading, so no decision is missed.
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let claimed = self
                .transition(&id, |a| {
                    if a.state != ApprovalState::Approved || a.claimed_at.is_some() {
                        return Ok(false);
                    }
                    // Policy is evaluated again at execution: whatever it asks
                    // for now must be met by the recorded approvers too.
                    if !satisfied(&current, &a.reviews, &a.requester.sub) {
                        return Ok(false);
                    }
                    Ok(a.claim(Utc::now()))
                })
                .await;
            let (a, won) = match claimed {
                Ok(x) => x,
                Err(e) => {
                    return ApprovalStatus::Refused {
                        id,
                        state: "unavailable".into(),
                        message: e.to_string(),
                    };
                }
            };
            if won {
                return ApprovalStatus::Approved {
                    id,
                    approvers: a.approvers(),
                };
            }
            match a.state {
                ApprovalState::Pending => {}
                ApprovalState::Approved if a.claimed_at.is_none() => {
                    return ApprovalStatus::Refused {
                        id,
                        state: "approved".into(),
                        message: format!(
                            "policy now asks for more approvals than approval {} has ({}); nothing was executed — call again to request a new approval",
                            a.id,
                            current
                                .iter()
                                .map(|r| format!("{} from {}", r.count, r.group))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    };
                }
                _ => return Self::refused(&a),
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return ApprovalStatus::Pending {
                    id,
                    pending: self.pending_object(&a),
                };
            }
            if now >= next_progress {
                if let Some(p) = ctx.progress {
                    p.progress(&format!(
                        "waiting for approval {} by {} — review at {}",
                        a.id,
                        a.groups().join(", "),
                        self.review_url(&a.id)
                    ));
                }
                next_progress = later(now, self.config.progress_every);
            }
            let nap = self.config.poll.min(deadline - now).min(
                next_progress
                    .saturating_duration_since(now)
                    .max(Duration::from_millis(10)),
            );
            let cancelled = async {
                match ctx.cancel {
                    Some(c) => c.cancelled().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep(nap) => {}
                _ = cancelled => {
                    let _ = self.cancel(&id, &ticket.requester, "the agent cancelled the call").await;
                    // It may have been decided meanwhile; report what it is now.
                    return match self.store.get(&id).await {
                        Ok(Some(a)) if a.state == ApprovalState::Cancelled => Self::refused(&a),
                        _ => ApprovalStatus::Refused { id, state: "cancelled".into(), message: "the call was cancelled".into() },
                    };
                }
            }
        }
    }

    async fn original_call(
        &self,
        id: &str,
        principal: &Principal,
    ) -> Result<(String, Value), crate::CallError> {
        match self.store.get(id).await {
            Ok(Some(a)) if a.requester.sub == principal.sub => Ok((a.tool, a.arguments)),
            Ok(_) => Err(crate::CallError::NotYourApproval(format!(
                "no approval {id} for you: approval_wait takes an approval_id that a call of yours returned"
            ))),
            Err(e) => Err(crate::CallError::InvalidArguments(e.to_string())),
        }
    }

    fn service(&self) -> Option<&ApprovalService> {
        Some(self)
    }

    async fn mark_executed(&self, id: &str, execution: Execution) {
        let result = self
            .transition(id, |a| Ok(a.finish(execution, Utc::now())))
            .await;
        match result {
            Ok((a, true)) => {
                let event = match execution {
                    Execution::Succeeded { .. } => "executed",
                    Execution::Failed => "failed",
                };
                self.record(&a.requester, &a, event, None).await;
                self.notify(event, &a);
            }
            Ok((_, false)) => {}
            Err(e) => tracing::error!(approval = id, error = %e, "cannot record execution"),
        }
    }
}

/// An approval binds what the reviewers saw, not only the arguments: the same
/// arguments may do something else by the time the call runs (a family whose
/// review reads the target, e.g. a Kubernetes delete naming the object's uid,
/// or an apply's server-side diff). A call whose fresh review differs from the
/// approved one is refused; nothing runs.
fn same_review(a: Approval, ticket: &ApprovalTicket) -> Result<Approval, String> {
    if a.review == ticket.review {
        return Ok(a);
    }
    Err(format!(
        "approval {} was given for what these arguments did when it was asked; what they would do \
         now has a different review (the target changed), so nothing was executed: call again \
         without approval_id to ask for an approval of what it would do now",
        a.id
    ))
}
