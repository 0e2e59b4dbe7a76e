//! The assembled gateway: connections, the tools they serve, the live policy,
//! the masker, the audit store and the approval gate. Built once by the server;
//! every call goes through [`Gateway::call`](crate::pipeline).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};

use crate::access::{AccessRequest, Resource};
use crate::approval::ApprovalGate;
use crate::audit::AuditStore;
use crate::connector::{ConnectionInfo, Connector, ToolSpec};
use crate::identity::Principal;
use crate::mask::Masker;
use crate::policy::{Mode, PolicyEngine};
use crate::stages::StageClock;

/// Everything a call needs, shared by all calls.
pub struct Gateway {
    pub(crate) connections: BTreeMap<String, Arc<dyn Connector>>,
    pub(crate) tools_by_connection: BTreeMap<String, BTreeSet<String>>,
    pub(crate) tools: Vec<ToolSpec>,
    pub(crate) policy: RwLock<Arc<PolicyEngine>>,
    pub(crate) mode: Mode,
    pub(crate) audit: Arc<dyn AuditStore>,
    pub(crate) masker: Arc<Masker>,
    pub(crate) approvals: Option<Arc<dyn ApprovalGate>>,
    pub(crate) max_bytes: usize,
    pub(crate) stages: StageClock,
    pub(crate) refusals: crate::access_log::AuthRefusals,
    pub(crate) rate_refusals: crate::access_log::RateRefusals,
    pub(crate) limits: crate::limits::CallLimits,
    /// Events of executed calls that could not be written yet.
    pub(crate) late: crate::audit::intent::LateOutcomes,
}

/// Builder for [`Gateway`].
pub struct GatewayBuilder {
    connections: Vec<Arc<dyn Connector>>,
    policy: PolicyEngine,
    mode: Mode,
    audit: Arc<dyn AuditStore>,
    masker: Arc<Masker>,
    approvals: Option<Arc<dyn ApprovalGate>>,
    max_bytes: usize,
    limits: crate::limits::CallLimits,
}

/// Two connections with one name, or similar wiring errors.
#[derive(Debug, thiserror::Error)]
#[error("gateway: {0}")]
pub struct BuildError(pub String);

impl GatewayBuilder {
    /// Start with the policy and the audit store; both are required.
    pub fn new(policy: PolicyEngine, audit: Arc<dyn AuditStore>) -> Self {
        GatewayBuilder {
            connections: vec![],
            policy,
            mode: Mode::Enforce,
            audit,
            masker: Arc::new(Masker::default()),
            approvals: None,
            max_bytes: 4 << 20,
            limits: crate::limits::CallLimits::default(),
        }
    }
    /// Add a connection.
    pub fn connection(mut self, c: Arc<dyn Connector>) -> Self {
        self.connections.push(c);
        self
    }
    /// Enforce or shadow.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }
    /// The masker (default: every built-in detector, redact).
    pub fn masker(mut self, masker: Arc<Masker>) -> Self {
        self.masker = masker;
        self
    }
    /// The approval gate; without one, calls that need approval are denied.
    pub fn approvals(mut self, gate: Arc<dyn ApprovalGate>) -> Self {
        self.approvals = Some(gate);
        self
    }
    /// Byte cap on one result.
    pub fn max_bytes(mut self, n: usize) -> Self {
        self.max_bytes = n;
        self
    }
    /// Argument size cap and rate/concurrency rules, checked before
    /// anything else a call does (default: none).
    pub fn limits(mut self, limits: crate::limits::CallLimits) -> Self {
        self.limits = limits;
        self
    }
    /// Assemble.
    pub fn build(self) -> Result<Gateway, BuildError> {
        let mut connections = BTreeMap::new();
        let mut tools_by_connection = BTreeMap::new();
        let mut tools: BTreeMap<String, ToolSpec> = BTreeMap::new();
        for c in self.connections {
            let name = c.info().name.clone();
            let specs = c.tools();
            tools_by_connection
                .insert(name.clone(), specs.iter().map(|t| t.name.clone()).collect());
            for mut t in specs {
                t.output_schema = crate::approval::or_pending(&t.output_schema);
                tools.entry(t.name.clone()).or_insert(t);
            }
            if connections.insert(name.clone(), c).is_some() {
                return Err(BuildError(format!("two connections are named {name:?}")));
            }
        }
        Ok(Gateway {
            connections,
            tools_by_connection,
            tools: crate::builtin::specs()
                .into_iter()
                .chain(tools.into_values())
                .collect(),
            policy: RwLock::new(Arc::new(self.policy)),
            mode: self.mode,
            audit: self.audit,
            masker: self.masker,
            approvals: self.approvals,
            max_bytes: self.max_bytes,
            stages: StageClock::default(),
            refusals: Default::default(),
            rate_refusals: crate::access_log::RateRefusals::rate_limits(),
            limits: self.limits,
            late: Default::default(),
        })
    }
}

impl Gateway {
    /// Every connection, by name.
    pub fn connections(&self) -> impl Iterator<Item = &Arc<dyn Connector>> {
        self.connections.values()
    }

    /// Every tool an agent sees (built-ins first).
    pub fn tools(&self) -> &[ToolSpec] {
        &self.tools
    }

    /// The live policy engine.
    pub fn policy(&self) -> Arc<PolicyEngine> {
        self.policy
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Swap in a new policy (reload); calls in flight keep the old one,
    /// approved calls are re-checked against the new one before they run.
    pub fn set_policy(&self, engine: PolicyEngine) {
        *self.policy.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(engine);
    }

    /// Policy mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The cap on one call's arguments, if any (see [`crate::limits`]).
    pub fn max_argument_bytes(&self) -> Option<usize> {
        self.limits.max_argument_bytes()
    }

    /// The audit store.
    pub fn audit(&self) -> &Arc<dyn AuditStore> {
        &self.audit
    }

    /// Refused authentications of the current window (see
    /// [`crate::access_log`]).
    pub fn auth_refusals(&self) -> &crate::access_log::AuthRefusals {
        &self.refusals
    }

    /// Append the windows of refused authentications and of calls over a
    /// limit, if any, to the audit chain (one event each). A failed append
    /// keeps the counts for the next window. True when an event was written.
    pub async fn flush_refusals(&self) -> Result<bool, crate::audit::StoreError> {
        let mut wrote = false;
        for window in [&self.refusals, &self.rate_refusals] {
            let Some(record) = window.take() else {
                continue;
            };
            match self.audit.append(record.clone()).await {
                Ok(_) => wrote = true,
                Err(e) => {
                    window.restore(&record);
                    return Err(e);
                }
            }
        }
        Ok(wrote)
    }

    /// The masker.
    pub fn masker(&self) -> &Arc<Masker> {
        &self.masker
    }

    /// The approval gate, if any.
    pub fn approvals(&self) -> Option<&Arc<dyn ApprovalGate>> {
        self.approvals.as_ref()
    }

    /// A connection by name.
    pub fn connection(&self, name: &str) -> Option<&Arc<dyn Connector>> {
        self.connections.get(name)
    }

    /// Connections the principal may `connect` to.
    pub fn visible_connections(&self, principal: &Principal) -> Vec<ConnectionInfo> {
        let policy = self.policy();
        self.connections
            .values()
            .filter(|c| policy.is_permitted(principal, &connect_request(&c.info().name)))
            .map(|c| c.info().clone())
            .collect()
    }

    /// May the principal read the audit log (`audit:read`)?
    pub fn may_read_audit(&self, principal: &Principal) -> bool {
        let r = AccessRequest {
            action: "audit:read".into(),
            resource: Resource::audit_log(),
            context: Default::default(),
        };
        self.policy().is_permitted(principal, &r)
    }

    /// The `tool` label of a call's metrics: the name when this gateway
    /// serves that tool, [`crate::metrics::UNKNOWN_TOOL`] for any other name
    /// a caller sent, so the label set stays bounded.
    pub(crate) fn tool_label(&self, tool: &str) -> String {
        match self.tools.iter().find(|t| t.name == tool) {
            Some(t) => t.name.clone(),
            None => crate::metrics::UNKNOWN_TOOL.to_string(),
        }
    }

    /// Cumulative time spent per pipeline stage.
    pub fn stage_times(&self) -> Vec<(&'static str, u64, std::time::Duration)> {
        self.stages.snapshot()
    }
}

/// The `connect` request every connection tool call starts with.
pub fn connect_request(connection: &str) -> AccessRequest {
    AccessRequest {
        action: "connect".into(),
        resource: Resource::connection(connection),
        context: Default::default(),
    }
}
