//! Policy stage: Cedar decides every access request a call produced.
//!
//! This module owns the `cedar-policy` dependency; the rest of the core sees
//! Tollgate's own [`Decision`] and [`Verdict`]. Invariants: default deny (no
//! permit → deny), any forbid → deny, any evaluation error → deny (Cedar skips
//! erroring policies, which could turn a failing `forbid` into an allow; we
//! do not let it). A `permit` that allowed a request and carries
//! `@approval("<group>")` (and optionally `@approvals("<n>")`) turns the call
//! into one that waits for humans. A `permit` that allowed a request and
//! carries `@max_affected_rows("<n>")` caps how many rows/items the call may
//! change; the smallest such cap over all the call's determining permits is
//! returned in [`Decision::max_affected`].
//!
//! The schema is not one file: [`PolicySchema::combine`] joins the core's
//! Cedar fragment with each tool family's [`Vocabulary`] at start, and the
//! entity types requests may name are the ones it declares.

mod entities;
mod load;
pub mod shape;
mod vocabulary;

use std::collections::BTreeSet;
use std::sync::Arc;

use cedar_policy::{Authorizer, Decision as CedarDecision, PolicySet, Schema};
use serde::{Deserialize, Serialize};

pub use load::{Diagnostic, PolicySource, load_dir, load_sources};
pub use vocabulary::{CORE_FRAGMENT, NAMESPACE, PolicySchema, Vocabulary, VocabularyError};

use crate::access::AccessRequest;
use crate::identity::Principal;

/// Enforce denials, or only record them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Denials block the call.
    #[default]
    Enforce,
    /// Denials are recorded; the call goes on.
    Shadow,
}

/// Humans a call waits for: `count` distinct members of `group`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ApprovalRequirement {
    /// Group whose members may approve.
    pub group: String,
    /// Distinct approvers needed.
    pub count: u32,
    /// Policy that asked for it.
    pub policy: String,
}

/// The decision on one access request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestDecision {
    /// Action id.
    pub action: String,
    /// Resource entity uid, e.g. `Tollgate::Table::"shop/public.orders"`.
    pub resource: String,
    /// Cedar allowed it (and nothing erred).
    pub allowed: bool,
    /// Determining policies: the permits that allowed, or the forbids that denied.
    pub policies: Vec<String>,
    /// Evaluation errors (any error denies).
    pub errors: Vec<String>,
}

/// What the call as a whole may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// Every request allowed, no approval asked.
    Allow,
    /// At least one request denied.
    Deny {
        /// Why, for the agent.
        message: String,
        /// Forbids that denied (empty when nothing permitted).
        policies: Vec<String>,
    },
    /// Allowed, but permits asked for human approval.
    NeedsApproval(Vec<ApprovalRequirement>),
}

/// The strictest `@max_affected_rows` among the permits that allowed a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AffectedCap {
    /// At most this many rows/items may change.
    pub rows: u64,
    /// The permit that set it (the first by id when several tie).
    pub policy: String,
}

/// Decision over all requests of one call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The verdict.
    pub verdict: Verdict,
    /// Per-request detail, in request order (recorded in the audit event).
    pub requests: Vec<RequestDecision>,
    /// The smallest `@max_affected_rows` of every permit that determined
    /// the allow of one of the call's requests (None: no such annotation).
    #[serde(default)]
    pub max_affected: Option<AffectedCap>,
}

/// Errors building the engine.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// Policies failed to parse or validate; one diagnostic per problem.
    #[error("{} policy error(s):\n{}", .0.len(), .0.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Diagnostic>),
    /// The shipped schema is broken (a bug).
    #[error("schema: {0}")]
    Schema(String),
    /// The core's and the families' schema fragments do not combine.
    #[error("policy schema: {0}")]
    Vocabulary(#[from] VocabularyError),
}

/// A loaded, validated policy set plus the schema.
pub struct PolicyEngine {
    schema: Arc<PolicySchema>,
    policies: PolicySet,
    /// Per action id, the policies whose action scope admits it (when the
    /// schema has no action groups and the set no templates): a policy whose
    /// scope excludes the action never applies and never evaluates its
    /// condition, so leaving it out changes no decision, reason or error.
    by_action: Option<std::collections::HashMap<String, PolicySet>>,
    authorizer: Authorizer,
    approvals: std::collections::HashMap<String, (String, u32)>,
    row_limits: std::collections::HashMap<String, u64>,
    /// Every permit that has a condition, with the condition taken out (same
    /// ids): on a denial that no permit covers, the ones that would allow it
    /// name the nearest permit — "only its condition failed".
    unconditioned: PolicySet,
    /// Each conditional permit's condition text, for that hint.
    conditions: std::collections::HashMap<String, String>,
    count: usize,
    /// Decisions already taken by THIS policy set (a reload builds a new
    /// engine, so a cached decision never outlives the policies behind it).
    decisions: quick_cache::sync::Cache<DecisionKey, Arc<Decision>>,
}

/// Calls whose decisions are kept at once.
const DECISION_CACHE_ENTRIES: usize = 4096;
/// Calls with more requests than this are decided every time.
const DECISION_CACHE_MAX_REQUESTS: usize = 16;
/// Calls whose requests carry more context text than this (bytes; the SQL
/// statement is in the context) are decided every time, so that the cache
/// holds at most about entries × this.
const DECISION_CACHE_MAX_CONTEXT: usize = 8 * 1024;

/// Bytes of text in the requests' contexts.
fn context_bytes(requests: &[AccessRequest]) -> usize {
    use crate::access::ContextValue;
    requests
        .iter()
        .flat_map(|r| r.context.iter())
        .map(|(k, v)| {
            k.len()
                + match v {
                    ContextValue::String(s) => s.len(),
                    ContextValue::StringSet(set) => set.iter().map(String::len).sum(),
                    ContextValue::Bool(_) | ContextValue::Long(_) => 8,
                }
        })
        .sum()
}

/// Everything a call's decision depends on: Cedar is deterministic over
/// (principal and its groups, every request of the call with its context),
/// and the entities are built from exactly these. The whole call is one key
/// because a policy may name an entity literal whose presence depends on the
/// call's other requests.
#[derive(Debug, PartialEq, Eq, Hash)]
struct DecisionKey {
    principal: Principal,
    requests: Vec<AccessRequest>,
}

/// [`DecisionKey`] borrowed, for lookups without cloning; hashes the same.
#[derive(Hash)]
struct DecisionKeyRef<'a> {
    principal: &'a Principal,
    requests: &'a [AccessRequest],
}

impl quick_cache::Equivalent<DecisionKey> for DecisionKeyRef<'_> {
    fn equivalent(&self, key: &DecisionKey) -> bool {
        *self.principal == key.principal && self.requests == key.requests.as_slice()
    }
}

impl std::fmt::Debug for PolicyEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyEngine")
            .field("policies", &self.count)
            .finish_non_exhaustive()
    }
}

/// For every action of the schema, the policies whose action scope admits
/// it (exact when actions have no groups: `==` and `in [..]` are then plain
/// membership).
fn slice_by_action(
    schema: &Schema,
    set: &PolicySet,
) -> Result<std::collections::HashMap<String, PolicySet>, PolicyError> {
    use cedar_policy::ActionConstraint;
    let mut out = std::collections::HashMap::new();
    for action in schema.actions() {
        let mut slice = PolicySet::new();
        for p in set.policies() {
            let applies = match p.action_constraint() {
                ActionConstraint::Any => true,
                ActionConstraint::Eq(a) => a == *action,
                ActionConstraint::In(list) => list.contains(action),
            };
            if applies {
                slice
                    .add(p.clone())
                    .map_err(|e| PolicyError::Schema(format!("slicing policies: {e}")))?;
            }
        }
        out.insert(action.id().unescaped().to_string(), slice);
    }
    Ok(out)
}

/// The permits that carry a `when`/`unless`, with it removed, and the text
/// of each removed condition (for denial hints). A permit whose JSON form
/// cannot be rebuilt is left out (no hint, same decision).
fn unconditioned_permits(
    set: &PolicySet,
) -> (PolicySet, std::collections::HashMap<String, String>) {
    let mut out = PolicySet::new();
    let mut conditions = std::collections::HashMap::new();
    for p in set.policies() {
        if p.effect() != cedar_policy::Effect::Permit {
            continue;
        }
        let Ok(mut json) = p.to_json() else { continue };
        let has_conditions = json
            .get("conditions")
            .and_then(|c| c.as_array())
            .is_some_and(|c| !c.is_empty());
        if !has_conditions {
            continue;
        }
        json["conditions"] = serde_json::json!([]);
        let Ok(bare) = cedar_policy::Policy::from_json(Some(p.id().clone()), json) else {
            continue;
        };
        if out.add(bare).is_ok() {
            let text = p.to_string();
            let condition = ["when", "unless"]
                .iter()
                .filter_map(|k| text.find(k))
                .min()
                .map(|at| text[at..].trim().trim_end_matches(';').trim().to_string())
                .unwrap_or_default();
            conditions.insert(p.id().to_string(), condition);
        }
    }
    (out, conditions)
}

/// The stack policies are loaded on (reserved, touched pages only): room
/// for the deepest policy [`shape`] lets through, ~1,000 levels at some
/// 40 KiB each in a debug build.
pub const LOAD_STACK: usize = 256 * 1024 * 1024;

impl PolicyEngine {
    /// Build from policy sources (file name + text), validating strictly
    /// against `schema` (the core's fragment combined with the families').
    ///
    /// Cedar's parser recurses once per level of an expression without a
    /// limit of its own, some 40 KiB a level in a debug build, so loading
    /// runs on a stack of its own ([`LOAD_STACK`], touched pages only), and
    /// [`shape`] refuses a policy deeper than that stack holds.
    pub fn new(schema: Arc<PolicySchema>, sources: &[PolicySource]) -> Result<Self, PolicyError> {
        stacker::grow(LOAD_STACK, || Self::load(schema, sources))
    }

    fn load(schema: Arc<PolicySchema>, sources: &[PolicySource]) -> Result<Self, PolicyError> {
        let loaded = load::build(schema.schema(), sources)?;
        let grouped_actions = schema.schema().action_groups().next().is_some();
        let by_action = if !grouped_actions && loaded.set.templates().next().is_none() {
            Some(slice_by_action(schema.schema(), &loaded.set)?)
        } else {
            None
        };
        let (unconditioned, conditions) = unconditioned_permits(&loaded.set);
        Ok(PolicyEngine {
            by_action,
            schema,
            unconditioned,
            conditions,
            count: loaded.count,
            policies: loaded.set,
            approvals: loaded.approvals,
            row_limits: loaded.row_limits,
            authorizer: Authorizer::new(),
            decisions: quick_cache::sync::Cache::new(DECISION_CACHE_ENTRIES),
        })
    }

    /// Number of policies loaded.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when no policy is loaded (everything is denied).
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn decide_with(
        &self,
        principal: &Principal,
        request: &AccessRequest,
        built: &Result<cedar_policy::Entities, String>,
    ) -> RequestDecision {
        let resource = request.resource.entity_uid();
        let deny = |errors: Vec<String>| RequestDecision {
            action: request.action.clone(),
            resource: resource.clone(),
            allowed: false,
            policies: vec![],
            errors,
        };
        let built = match built {
            Ok(b) => b,
            Err(e) => return deny(vec![e.clone()]),
        };
        let cedar_request = match entities::request(principal, request, &self.schema) {
            Ok(r) => r,
            Err(e) => return deny(vec![e]),
        };
        let policies = self
            .by_action
            .as_ref()
            .and_then(|m| m.get(&request.action))
            .unwrap_or(&self.policies);
        let response = self
            .authorizer
            .is_authorized(&cedar_request, policies, built);
        let errors: Vec<String> = response
            .diagnostics()
            .errors()
            .map(|e| e.to_string())
            .collect();
        let policies: Vec<String> = response
            .diagnostics()
            .reason()
            .map(|p| p.to_string())
            .collect();
        RequestDecision {
            action: request.action.clone(),
            resource,
            allowed: response.decision() == CedarDecision::Allow && errors.is_empty(),
            policies,
            errors,
        }
    }

    /// True when `request` is allowed outright (used for `connect` filtering,
    /// `unmask` and `audit:read`; approvals do not apply to these).
    pub fn is_permitted(&self, principal: &Principal, request: &AccessRequest) -> bool {
        self.decide_shared(principal, std::slice::from_ref(request))
            .requests
            .first()
            .is_some_and(|d| d.allowed)
    }

    /// Decide all requests of a call: deny if any is denied; otherwise ask
    /// for every approval that an allowing permit carries.
    pub fn decide(&self, principal: &Principal, requests: &[AccessRequest]) -> Decision {
        Decision::clone(&self.decide_shared(principal, requests))
    }

    /// [`PolicyEngine::decide`], answered from the decision cache when this
    /// policy set already decided the same call.
    fn decide_shared(&self, principal: &Principal, requests: &[AccessRequest]) -> Arc<Decision> {
        if requests.len() > DECISION_CACHE_MAX_REQUESTS
            || context_bytes(requests) > DECISION_CACHE_MAX_CONTEXT
        {
            return Arc::new(self.evaluate(principal, requests));
        }
        let key = DecisionKeyRef {
            principal,
            requests,
        };
        if let Some(hit) = self.decisions.get(&key) {
            return hit;
        }
        let decision = Arc::new(self.evaluate(principal, requests));
        self.decisions.insert(
            DecisionKey {
                principal: principal.clone(),
                requests: requests.to_vec(),
            },
            decision.clone(),
        );
        decision
    }

    /// Evaluate every request with Cedar (no cache).
    fn evaluate(&self, principal: &Principal, requests: &[AccessRequest]) -> Decision {
        let built = entities::build(principal, requests, &self.schema);
        let decisions: Vec<RequestDecision> = requests
            .iter()
            .map(|r| self.decide_with(principal, r, &built))
            .collect();
        let hint = decisions
            .iter()
            .zip(requests)
            .find(|(d, _)| !d.allowed)
            .filter(|(d, _)| d.policies.is_empty() && d.errors.is_empty())
            .and_then(|(_, r)| self.nearest_permit(principal, r, &built));
        let verdict = self.verdict(&decisions, requests.is_empty(), hint);
        let max_affected = self.max_affected(&decisions);
        Decision {
            verdict,
            requests: decisions,
            max_affected,
        }
    }

    /// The strictest `@max_affected_rows` over the permits that allowed a
    /// request (every determining permit counts, as for `@approval`: a
    /// request allowed by a capped and an uncapped permit is capped).
    fn max_affected(&self, decisions: &[RequestDecision]) -> Option<AffectedCap> {
        decisions
            .iter()
            .filter(|d| d.allowed)
            .flat_map(|d| d.policies.iter())
            .filter_map(|p| self.row_limits.get(p).map(|n| (*n, p)))
            .min()
            .map(|(rows, policy)| AffectedCap {
                rows,
                policy: policy.clone(),
            })
    }

    /// For a request no permit covers: the conditional permits that would
    /// allow it but for their condition, as a hint for the caller.
    fn nearest_permit(
        &self,
        principal: &Principal,
        request: &AccessRequest,
        built: &Result<cedar_policy::Entities, String>,
    ) -> Option<String> {
        if self.conditions.is_empty() {
            return None;
        }
        let built = built.as_ref().ok()?;
        let cedar_request = entities::request(principal, request, &self.schema).ok()?;
        let response = self
            .authorizer
            .is_authorized(&cedar_request, &self.unconditioned, built);
        let near: Vec<String> = response
            .diagnostics()
            .reason()
            .filter_map(|id| {
                let id = id.to_string();
                let condition = self.conditions.get(&id)?;
                Some(format!(
                    "`{id}` would permit it but its condition does not hold ({condition})"
                ))
            })
            .collect();
        (!near.is_empty()).then(|| near.join("; "))
    }

    fn verdict(&self, decisions: &[RequestDecision], empty: bool, hint: Option<String>) -> Verdict {
        if empty {
            return Verdict::Deny {
                message: "nothing to authorise: the call produced no access request".into(),
                policies: vec![],
            };
        }
        if let Some(denied) = decisions.iter().find(|d| !d.allowed) {
            let message = if !denied.errors.is_empty() {
                format!(
                    "policy evaluation failed for {} on {}: {}",
                    denied.action,
                    denied.resource,
                    denied.errors.join("; ")
                )
            } else if denied.policies.is_empty() {
                match &hint {
                    Some(h) => format!(
                        "no policy permits {} on {}: {h}",
                        denied.action, denied.resource
                    ),
                    None => format!("no policy permits {} on {}", denied.action, denied.resource),
                }
            } else {
                format!(
                    "{} on {} is forbidden by {}",
                    denied.action,
                    denied.resource,
                    denied.policies.join(", ")
                )
            };
            return Verdict::Deny {
                message,
                policies: denied.policies.clone(),
            };
        }
        let needed: BTreeSet<ApprovalRequirement> = decisions
            .iter()
            .flat_map(|d| d.policies.iter())
            .filter_map(|p| {
                self.approvals
                    .get(p)
                    .map(|(group, count)| ApprovalRequirement {
                        group: group.clone(),
                        count: *count,
                        policy: p.clone(),
                    })
            })
            .collect();
        if needed.is_empty() {
            Verdict::Allow
        } else {
            Verdict::NeedsApproval(needed.into_iter().collect())
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod vocabulary_tests;
