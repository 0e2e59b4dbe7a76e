//! The approval record and its state machine, as plain data and pure
//! functions (no I/O, no clock of its own: callers pass `now`).
//!
//! ```text
//! pending ──approve (enough distinct approvers)──▶ approved ──claim──▶ (claimed) ──▶ executed | failed
//!    │ ├──deny (reason required)──▶ denied
//!    │ ├──ttl passes──────────────▶ expired      (also an approved, unclaimed approval)
//!    │ └──agent cancels───────────▶ cancelled
//! ```
//!
//! Rules enforced here, and only here:
//! - the requester never decides their own call;
//! - a reviewer must be in a required group, and votes once;
//! - one person fills at most one approval slot, whatever groups they are
//!   in ([`satisfied`] is a bipartite matching of people to slots);
//! - an approved approval is claimed at most once ([`Approval::claim`]):
//!   the claim is what lets exactly one execution run;
//! - nothing is decided or claimed after `expires_at`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::audit::{canonical_json, sha256_hex};
use crate::identity::Principal;
use crate::policy::{ApprovalRequirement, RequestDecision};
use crate::review::ReviewSummary;

use super::Execution;

/// Where an approval is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalState {
    /// Waiting for reviewers.
    Pending,
    /// Enough reviewers approved; the call may run once.
    Approved,
    /// A reviewer denied it.
    Denied,
    /// Nobody decided (or nobody ran it) before `expires_at`.
    Expired,
    /// The agent gave up waiting (MCP cancellation).
    Cancelled,
    /// The approved call ran and succeeded.
    Executed,
    /// The approved call ran and failed (or was refused at execution).
    Failed,
}

impl ApprovalState {
    /// The name used in JSON, the store and the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalState::Pending => "pending",
            ApprovalState::Approved => "approved",
            ApprovalState::Denied => "denied",
            ApprovalState::Expired => "expired",
            ApprovalState::Cancelled => "cancelled",
            ApprovalState::Executed => "executed",
            ApprovalState::Failed => "failed",
        }
    }

    /// Parse a state name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => ApprovalState::Pending,
            "approved" => ApprovalState::Approved,
            "denied" => ApprovalState::Denied,
            "expired" => ApprovalState::Expired,
            "cancelled" => ApprovalState::Cancelled,
            "executed" => ApprovalState::Executed,
            "failed" => ApprovalState::Failed,
            _ => return None,
        })
    }

    /// No further transition is possible.
    pub fn is_terminal(self) -> bool {
        !matches!(self, ApprovalState::Pending | ApprovalState::Approved)
    }
}

/// A group's requirement on one approval, merged over every policy that
/// asked for it (the largest count wins).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requirement {
    /// Group whose members may approve.
    pub group: String,
    /// Distinct approvers needed from this group.
    pub count: u32,
    /// Policies that asked for it.
    pub policies: Vec<String>,
}

/// Merge the policy stage's requirements per group (max count).
pub fn merge_requirements(reqs: &[ApprovalRequirement]) -> Vec<Requirement> {
    let mut by_group: BTreeMap<String, Requirement> = BTreeMap::new();
    for r in reqs {
        let e = by_group.entry(r.group.clone()).or_insert(Requirement {
            group: r.group.clone(),
            count: 0,
            policies: vec![],
        });
        e.count = e.count.max(r.count.max(1));
        if !e.policies.contains(&r.policy) {
            e.policies.push(r.policy.clone());
        }
    }
    by_group.into_values().collect()
}

/// One reviewer's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    /// Reviewer (`sub`).
    pub sub: String,
    /// Reviewer's groups when deciding.
    pub groups: Vec<String>,
    /// `approve` or `deny`.
    pub verdict: String,
    /// Why (required to deny).
    pub reason: Option<String>,
    /// When.
    pub time: DateTime<Utc>,
}

/// One approval: the exact call, who must decide, who did, and its state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    /// Unguessable id (`apr_` + 128 random bits, hex).
    pub id: String,
    /// Current state.
    pub state: ApprovalState,
    /// Who asked.
    pub requester: Principal,
    /// Tool.
    pub tool: String,
    /// Connection.
    pub connection: Option<String>,
    /// Exact arguments. Needed to run the call when the agent resumes it;
    /// never shown to reviewers or in any API (they see `arguments_masked`).
    pub arguments: Value,
    /// Masked arguments, for reviewers.
    pub arguments_masked: Value,
    /// SHA-256 of the canonical JSON of `arguments`: the binding.
    pub arguments_hash: String,
    /// What the call will do, as the tool family summarised it for
    /// reviewers (masked). Records stored before the typed review read as
    /// an empty review (the embedded store upgrades them on read).
    #[serde(default)]
    pub review: ReviewSummary,
    /// Cedar requests and decisions.
    pub requests: Vec<RequestDecision>,
    /// Who must approve.
    pub required: Vec<Requirement>,
    /// Decisions so far.
    pub reviews: Vec<Review>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Expires (pending, or approved and not yet run).
    pub expires_at: DateTime<Utc>,
    /// When it was approved or denied.
    pub decided_at: Option<DateTime<Utc>>,
    /// When the approved call was claimed for its one execution.
    pub claimed_at: Option<DateTime<Utc>>,
    /// When it reached executed/failed/expired/cancelled.
    pub finished_at: Option<DateTime<Utc>>,
    /// Why it failed/was cancelled, when it did.
    pub note: Option<String>,
    /// Items the executed call returned or changed (rows for SQL), when the
    /// tool counts them.
    #[serde(default)]
    pub items: Option<u64>,
    /// Optimistic-concurrency version: every store update must match it.
    pub version: u64,
}

/// Hash binding an approval to exact arguments.
pub fn arguments_hash(arguments: &Value) -> String {
    format!(
        "sha256:{}",
        sha256_hex(canonical_json(arguments).as_bytes())
    )
}

/// A fresh unguessable id.
pub fn new_id() -> String {
    let bytes: [u8; 16] = rand::random();
    format!("apr_{}", hex::encode(bytes))
}

/// Why a reviewer's or agent's action was refused. A value, not a panic;
/// the REST layer maps it to a status code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecideError {
    /// The requester tried to decide their own call.
    #[error("you requested this call; someone else must decide it")]
    OwnCall,
    /// The reviewer is in none of the required groups.
    #[error("you are not in a group that may decide this approval (needs one of: {0})")]
    NotReviewer(String),
    /// The reviewer already decided.
    #[error("you already decided this approval; another person must approve")]
    AlreadyDecided,
    /// Deny without a reason.
    #[error("a reason is required to deny")]
    ReasonRequired,
    /// The approval is no longer pending.
    #[error("approval {id} is {state}, not pending")]
    NotPending {
        /// Id.
        id: String,
        /// Current state.
        state: &'static str,
    },
}

impl Approval {
    /// Groups that may decide, as a list.
    pub fn groups(&self) -> Vec<String> {
        self.required.iter().map(|r| r.group.clone()).collect()
    }

    /// Every policy that asked for approval.
    pub fn policies(&self) -> Vec<String> {
        let mut p: Vec<String> = self
            .required
            .iter()
            .flat_map(|r| r.policies.iter().cloned())
            .collect();
        p.dedup();
        p
    }

    /// Subs that approved, in order.
    pub fn approvers(&self) -> Vec<String> {
        self.reviews
            .iter()
            .filter(|r| r.verdict == "approve")
            .map(|r| r.sub.clone())
            .collect()
    }

    /// May `who` decide this approval (ignoring its state)?
    pub fn may_decide(&self, who: &Principal) -> Result<(), DecideError> {
        if who.sub == self.requester.sub {
            return Err(DecideError::OwnCall);
        }
        if !self.required.iter().any(|r| who.groups.contains(&r.group)) {
            return Err(DecideError::NotReviewer(self.groups().join(", ")));
        }
        Ok(())
    }

    /// Expire if `now` is past `expires_at` while still open. True when it
    /// changed.
    pub fn expire_if_due(&mut self, now: DateTime<Utc>) -> bool {
        let open = self.state == ApprovalState::Pending
            || (self.state == ApprovalState::Approved && self.claimed_at.is_none());
        if open && now >= self.expires_at {
            self.state = ApprovalState::Expired;
            self.finished_at = Some(now);
            true
        } else {
            false
        }
    }

    fn must_be_pending(&self) -> Result<(), DecideError> {
        if self.state == ApprovalState::Pending {
            Ok(())
        } else {
            Err(DecideError::NotPending {
                id: self.id.clone(),
                state: self.state.as_str(),
            })
        }
    }

    /// Record `who`'s approval; becomes `approved` once every requirement
    /// is met by distinct people.
    pub fn approve(
        &mut self,
        who: &Principal,
        reason: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(), DecideError> {
        self.review(who, "approve", reason.filter(|r| !r.trim().is_empty()), now)?;
        if satisfied(&self.required, &self.reviews, &self.requester.sub) {
            self.state = ApprovalState::Approved;
            self.decided_at = Some(now);
        }
        Ok(())
    }

    /// Record `who`'s denial (a reason is required); one denial denies.
    pub fn deny(
        &mut self,
        who: &Principal,
        reason: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(), DecideError> {
        let reason = reason
            .filter(|r| !r.trim().is_empty())
            .ok_or(DecideError::ReasonRequired)?;
        self.review(who, "deny", Some(reason), now)?;
        self.state = ApprovalState::Denied;
        self.decided_at = Some(now);
        Ok(())
    }

    /// Record one person's decision on a pending approval they may decide
    /// and have not decided yet (shared by approve and deny).
    fn review(
        &mut self,
        who: &Principal,
        verdict: &str,
        reason: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(), DecideError> {
        self.expire_if_due(now);
        self.must_be_pending()?;
        self.may_decide(who)?;
        if self.reviews.iter().any(|r| r.sub == who.sub) {
            return Err(DecideError::AlreadyDecided);
        }
        self.reviews.push(Review {
            sub: who.sub.clone(),
            groups: who.groups.clone(),
            verdict: verdict.into(),
            reason,
            time: now,
        });
        Ok(())
    }

    /// The agent gave up: a pending approval is cancelled.
    pub fn cancel(&mut self, why: &str, now: DateTime<Utc>) -> bool {
        if self.state == ApprovalState::Pending {
            self.state = ApprovalState::Cancelled;
            self.finished_at = Some(now);
            self.note = Some(why.to_string());
            true
        } else {
            false
        }
    }

    /// Claim an approved approval for its one execution. False when it is
    /// not approved, already claimed, or expired.
    pub fn claim(&mut self, now: DateTime<Utc>) -> bool {
        self.expire_if_due(now);
        if self.state == ApprovalState::Approved && self.claimed_at.is_none() {
            self.claimed_at = Some(now);
            true
        } else {
            false
        }
    }

    /// The claimed call finished (`ok`, with the items it counted) or failed.
    pub fn finish(&mut self, execution: Execution, now: DateTime<Utc>) -> bool {
        if self.state == ApprovalState::Approved && self.claimed_at.is_some() {
            match execution {
                Execution::Succeeded { items } => {
                    self.state = ApprovalState::Executed;
                    self.items = items;
                    self.note = None;
                }
                Execution::Failed => {
                    self.state = ApprovalState::Failed;
                    self.note = Some("the approved call failed at execution".into());
                }
            }
            self.finished_at = Some(now);
            true
        } else {
            false
        }
    }

    /// One line for lists: tool and what runs (masked), from the review.
    pub fn summary_text(&self) -> String {
        format!("{}: {}", self.tool, self.review.one_line(160))
    }

    /// The public JSON of an approval (REST API, UI, webhook). Raw
    /// arguments are never part of it.
    pub fn view(&self, review_url: &str) -> Value {
        let decisions: Vec<Value> = self
            .reviews
            .iter()
            .map(|r| json!({"sub": r.sub, "groups": r.groups, "verdict": r.verdict, "reason": r.reason, "time": fmt(r.time)}))
            .collect();
        json!({
            "id": self.id,
            "state": self.state.as_str(),
            "requester": self.requester,
            "tool": self.tool,
            "connection": self.connection,
            "arguments": self.arguments_masked,
            "arguments_hash": self.arguments_hash,
            "review": self.review.public_json(),
            "summary_text": self.summary_text(),
            "requests": self.requests,
            "policies": self.policies(),
            "required": self.required,
            "approvers": self.approvers(),
            "decisions": decisions,
            "created_at": fmt(self.created_at),
            "expires_at": fmt(self.expires_at),
            "decided_at": self.decided_at.map(fmt),
            "claimed_at": self.claimed_at.map(fmt),
            "finished_at": self.finished_at.map(fmt),
            "note": self.note,
            "items": self.items,
            "review_url": review_url,
        })
    }
}

/// RFC 3339 UTC, seconds.
pub fn fmt(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Are `required` met by the distinct approvers in `reviews`? Each person
/// fills at most one slot of a group they belong to (maximum bipartite
/// matching), and the requester fills none.
pub fn satisfied(required: &[Requirement], reviews: &[Review], requester: &str) -> bool {
    // Slots: one per needed approval, labelled with its group.
    let slots: Vec<&str> = required
        .iter()
        .flat_map(|r| std::iter::repeat_n(r.group.as_str(), r.count as usize))
        .collect();
    let people: Vec<&Review> = reviews
        .iter()
        .filter(|r| r.verdict == "approve" && r.sub != requester)
        .collect();
    if people.len() < slots.len() {
        return false;
    }
    // slot -> person index
    let mut owner: Vec<Option<usize>> = vec![None; slots.len()];
    fn augment(
        p: usize,
        people: &[&Review],
        slots: &[&str],
        owner: &mut [Option<usize>],
        seen: &mut [bool],
    ) -> bool {
        for s in 0..slots.len() {
            if seen[s] || !people[p].groups.iter().any(|g| g == slots[s]) {
                continue;
            }
            seen[s] = true;
            let free = match owner[s] {
                None => true,
                Some(q) => augment(q, people, slots, owner, seen),
            };
            if free {
                owner[s] = Some(p);
                return true;
            }
        }
        false
    }
    for p in 0..people.len() {
        let mut seen = vec![false; slots.len()];
        augment(p, &people, &slots, &mut owner, &mut seen);
    }
    owner.iter().all(Option::is_some)
}
