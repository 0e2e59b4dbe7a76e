//! The one trait a connector implements: typed args → the actions it will
//! take → execute → typed result. The core never names a connector; the server
//! holds the one list of enabled connector kinds.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::access::AccessRequest;
use crate::classify::{ClassificationReport, Classifier};
use crate::identity::Principal;
use crate::recording::{ProgressSender, Recording};
use crate::review::ReviewSummary;

/// A tool an agent sees, served by one connector kind for all its connections.
#[derive(Debug, Clone)]
pub struct ToolSpec {
    /// Tool name, e.g. `sql_query`. Fixed by the public contract.
    pub name: String,
    /// What the tool does, for the agent.
    pub description: String,
    /// JSON Schema of the arguments (an object schema).
    pub input_schema: serde_json::Map<String, Value>,
    /// JSON Schema of `structuredContent` on success.
    pub output_schema: serde_json::Map<String, Value>,
    /// True when the tool never changes the target (MCP `readOnlyHint`).
    pub read_only: bool,
}

/// What `list_connections` shows about a connection.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// Connection name from config; the `connection` argument of tools.
    pub name: String,
    /// Connector kind, e.g. `postgres`.
    pub kind: String,
    /// Free text from config.
    pub description: String,
}

/// The connector's analysis of one call: what will really run.
pub struct Plan {
    /// Authorisation questions, one per (statement, resource). Never empty for
    /// a call that would execute something.
    pub requests: Vec<AccessRequest>,
    /// What reviewers are asked about when the call needs approval: title,
    /// what will run (code and literal parts, so each literal is masked on
    /// its own), resources, diff. The gate stores it masked.
    pub review: ReviewSummary,
    /// True when nothing in the call writes; the connector then executes it
    /// behind a read-only wall as well.
    pub read_only: bool,
    /// Connector-private prepared form of the call (parsed statements, typed
    /// args), handed back to [`Connector::execute`].
    pub prepared: Box<dyn Any + Send + Sync>,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("requests", &self.requests)
            .field("review", &self.review)
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

/// Limits the gateway imposes on one execution, in family-neutral terms:
/// items (rows, Kubernetes objects, ...) and bytes, a time budget, and the
/// caller's cancellation. A connector combines them with its own configured
/// caps (`max_rows`, `max_items`, `max_output_bytes`, `timeout`...): the
/// stricter always wins.
#[derive(Debug, Clone)]
pub struct ExecLimits {
    /// At most this many items are returned; `truncated` is set past it.
    /// None: the gateway sets no item cap (the connector's own one applies).
    pub max_items: Option<u64>,
    /// At most this many bytes of result payload (approximate, JSON size).
    pub max_bytes: usize,
    /// At most this many rows/items may be changed by the call (summed over
    /// everything it runs); past it the connector undoes the call and fails
    /// with [`ExecuteError::TooManyAffected`]. None: policy sets no cap (the
    /// connector may still apply its own configured one; the smaller wins).
    pub max_affected: Option<AffectedLimit>,
    /// The whole execution must end within this, counted from when
    /// [`Connector::execute`] is called. None: the gateway sets no budget
    /// (the connector's own timeout applies).
    pub timeout: Option<Duration>,
    /// Fires when the caller goes away or cancels the call (MCP
    /// `notifications/cancelled`, a dropped HTTP stream). A connector stops
    /// its work on the target when it fires (cancels the running statement,
    /// ends the remote process) and returns [`ExecuteError::Cancelled`].
    pub cancel: CancellationToken,
    /// Who the call runs for (the verified caller), for connectors that
    /// pass the caller on to a target that authorises on its own (e.g.
    /// Kubernetes impersonation, so the cluster's RBAC applies as well).
    /// Family-neutral: the core only carries it; most connectors ignore it
    /// and run as their connection's own identity. None: no caller is
    /// known (internal work such as sampling); a connector that needs one
    /// must refuse the call rather than run as itself.
    pub caller: Option<Principal>,
    /// Where a long execution reports progress (elapsed time, output size;
    /// never output itself) for the caller's transport. None: nobody
    /// listens.
    pub progress: Option<ProgressSender>,
    /// The call's write-ahead audit intent. Already durable unless the
    /// connector asked to overlap it ([`IntentOrder::BeforeCommit`]); then
    /// the connector awaits [`IntentGate::durable`] before anything it does
    /// becomes permanent, and undoes the call when it fails.
    pub intent: IntentGate,
}

/// When the call's write-ahead audit intent must be durable, relative to
/// what the connector does (see `audit::intent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IntentOrder {
    /// Before [`Connector::execute`] is called: anything the connector
    /// sends may take effect at once (an HTTP request, a remote command).
    #[default]
    BeforeExecute,
    /// Before the call's effects become permanent: every effect of this
    /// plan is undone unless committed, and the connector awaits
    /// [`ExecLimits::intent`] before committing (rolling back when it
    /// fails). The intent's append then overlaps the work. A plan with no
    /// effect at all (a read the connector fences as read-only) need not
    /// wait: its result is only returned after the intent is durable.
    BeforeCommit,
}

/// The connector's view of the call's write-ahead intent: resolved once the
/// intent is durable (or could not be recorded). The default is resolved.
#[derive(Debug, Clone, Default)]
pub struct IntentGate {
    pending: Option<tokio::sync::watch::Receiver<Option<Result<(), String>>>>,
}

/// The pipeline's side of an [`IntentGate`]: says how the append ended.
#[derive(Debug)]
pub struct IntentSignal {
    tx: tokio::sync::watch::Sender<Option<Result<(), String>>>,
}

impl IntentGate {
    /// A gate that resolves when its signal is given.
    pub fn pending() -> (IntentGate, IntentSignal) {
        let (tx, rx) = tokio::sync::watch::channel(None);
        (IntentGate { pending: Some(rx) }, IntentSignal { tx })
    }

    /// Resolves once the intent is durable; an error when it could not be
    /// recorded (the connector must then undo the call: nothing may become
    /// permanent unrecorded).
    pub async fn durable(&self) -> Result<(), ExecuteError> {
        let Some(rx) = &self.pending else {
            return Ok(());
        };
        let mut rx = rx.clone();
        let outcome = match rx.wait_for(Option::is_some).await {
            Ok(v) => v.clone().unwrap_or(Ok(())),
            Err(_) => Err("the gateway stopped before the intent was recorded".into()),
        };
        outcome.map_err(ExecuteError::IntentNotRecorded)
    }
}

impl IntentSignal {
    /// The append ended: `Ok` durable, `Err(why)` not recorded.
    pub fn resolve(self, outcome: Result<(), String>) {
        let _ = self.tx.send(Some(outcome));
    }
}

impl ExecLimits {
    /// The item cap to apply given the connector's own configured `own`
    /// cap: the stricter of the two.
    pub fn items_within(&self, own: u64) -> u64 {
        self.max_items.map_or(own, |m| m.min(own))
    }

    /// The byte cap to apply given the connector's own configured `own` cap.
    pub fn bytes_within(&self, own: usize) -> usize {
        self.max_bytes.min(own)
    }

    /// The time budget to apply given the connector's own timeout `own`.
    pub fn timeout_within(&self, own: Duration) -> Duration {
        self.timeout.map_or(own, |t| t.min(own))
    }

    /// The error for a call that must stop now, if any: cancelled by the
    /// caller. Check it before starting work on the target.
    pub fn check(&self) -> Result<(), ExecuteError> {
        if self.cancel.is_cancelled() {
            Err(ExecuteError::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Resolves when the execution must stop: the caller cancelled
    /// ([`ExecuteError::Cancelled`]) or `budget` (from
    /// [`ExecLimits::timeout_within`], None: none) ran out since `started`
    /// ([`ExecuteError::Timeout`]). Never resolves when neither can happen.
    /// Connectors race their work against it and, when it wins, tell the
    /// target to stop before returning the error.
    pub async fn stopped(&self, started: Instant, budget: Option<Duration>) -> ExecuteError {
        let ms = budget.map_or(0, |b| u64::try_from(b.as_millis()).unwrap_or(u64::MAX));
        let expiry = async {
            match budget {
                Some(b) => tokio::time::sleep_until(started + b).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.cancel.cancelled() => ExecuteError::Cancelled,
            _ = expiry => ExecuteError::Timeout(ms),
        }
    }
}

/// A cap on how many rows/items one call may change, and who set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AffectedLimit {
    /// At most this many.
    pub max: u64,
    /// Who set it, for the error message, e.g. ``policy `bulk-delete` ``.
    pub set_by: String,
}

impl AffectedLimit {
    /// The stricter of two optional caps (`a` when they are equal).
    pub fn stricter(a: Option<AffectedLimit>, b: Option<AffectedLimit>) -> Option<AffectedLimit> {
        match (a, b) {
            (Some(a), Some(b)) => Some(if b.max < a.max { b } else { a }),
            (a, b) => a.or(b),
        }
    }

    /// The error for a call that changed `affected` rows (`at_least`: the
    /// count stopped early, the real number may be higher) when over the cap.
    pub fn check(&self, affected: u64, at_least: bool) -> Result<(), ExecuteError> {
        if affected > self.max {
            Err(ExecuteError::TooManyAffected {
                affected,
                at_least,
                max: self.max,
                set_by: self.set_by.clone(),
            })
        } else {
            Ok(())
        }
    }
}

/// A field's name in its family's own terms, as path segments: SQL names a
/// column `["public", "customers", "email"]` (schema, table, column),
/// Kubernetes an object's fields `["Secret", "data", ...]`, SSH its streams
/// `["stdout"]`. Masking rules (`[[masking.fields]]`) match these paths
/// segment by segment; see `mask/README.md`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct FieldPath(pub Vec<String>);

impl FieldPath {
    /// A path from its segments.
    pub fn new<S: Into<String>>(segments: impl IntoIterator<Item = S>) -> Self {
        FieldPath(segments.into_iter().map(Into::into).collect())
    }

    /// The segments.
    pub fn segments(&self) -> &[String] {
        &self.0
    }
}

impl std::fmt::Display for FieldPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("."))
    }
}

/// Where a part of a result came from, for field masking rules: the value
/// at `pointer` is the field `field`, and every value below it is that field
/// extended by the keys (and array indices) on the way down. So
/// `{pointer: "/rows/*/3", field: public.customers.email}` names one SQL
/// column's cells, and `{pointer: "/items/0", field: Secret}` names a whole
/// Kubernetes object, whose `data.password` is `Secret.data.password`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldOrigin {
    /// JSON pointer pattern into the result; `*` matches any array index or
    /// key, e.g. `/rows/*/3`.
    pub pointer: String,
    /// The family's name of the field at `pointer`.
    pub field: FieldPath,
    /// The value at `pointer` is computed from the field (through a
    /// function, an operator, an aggregate...), not the field itself. A rule
    /// on the field masks it whole; a strategy that keeps part of a value
    /// (`partial`) redacts instead, since the kept part could be anything.
    /// A shorter field (SQL `schema.table`: some column of that table that
    /// cannot be named) meets every rule below it.
    pub derived: bool,
    /// The family knows the field holds values of this type (SQL: a column
    /// classified by sampling): masked whole as that type, unless a
    /// configured rule names the field.
    pub sensitive: Option<String>,
}

impl FieldOrigin {
    /// The value at `pointer` is the field `field` itself.
    pub fn new(pointer: impl Into<String>, field: FieldPath) -> Self {
        FieldOrigin {
            pointer: pointer.into(),
            field,
            derived: false,
            sensitive: None,
        }
    }

    /// The value at `pointer` is computed from `field` (see [`FieldOrigin::derived`]).
    pub fn derived_from(pointer: impl Into<String>, field: FieldPath) -> Self {
        FieldOrigin {
            derived: true,
            ..FieldOrigin::new(pointer, field)
        }
    }

    /// The same origin, known to hold values of type `type_name`.
    pub fn sensitive_as(mut self, type_name: impl Into<String>) -> Self {
        self.sensitive = Some(type_name.into());
        self
    }
}

/// A connector's successful result.
#[derive(Debug, Clone)]
pub struct ToolOutput {
    /// The structured result, as the tool's `outputSchema` describes it.
    pub value: Value,
    /// Items returned (rows, objects...), for the audit outcome (recorded
    /// under the contract's `outcome.rows`). None: the result is not a list.
    pub items: Option<u64>,
    /// JSON pointer to the array that holds the result's items (SQL:
    /// `/rows`, Kubernetes lists: `/items`), when there is one. The audit
    /// preview keeps only its first few entries; other arrays keep more.
    pub item_list: Option<String>,
    /// True when a cap cut the result.
    pub truncated: bool,
    /// Origins of result fields, for column masking rules.
    pub field_origins: Vec<FieldOrigin>,
    /// Items of the result that only a caller permitted their request may
    /// see (e.g. one per listed table or namespace). The pipeline decides
    /// them in one batch and removes the denied items before masking and
    /// audit (see [`crate::guards`]).
    pub item_guards: Vec<ItemGuard>,
    /// The call's output as a terminal recording (SSH), when the family
    /// keeps one. The pipeline masks it, stores it beside the audit store
    /// and names it in the event (see [`crate::recording`]).
    pub recording: Option<Recording>,
}

/// One item of a result, shown only to a caller permitted `request`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemGuard {
    /// JSON pointer to the item: an array element (`/tables/3`) or an object
    /// member (`/items/name`).
    pub pointer: String,
    /// What the caller must be permitted to see the item.
    pub request: AccessRequest,
}

/// Why a call could not be analysed. Every variant denies the call.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    /// Arguments do not match the tool's input schema.
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    /// The input could not be understood; nothing may run.
    #[error("cannot analyse: {0}")]
    Unanalysable(String),
    /// The tool is not served by this connector.
    #[error("unknown tool {0}")]
    UnknownTool(String),
}

/// Why an execution failed. Messages must never contain credentials.
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError {
    /// The target could not be reached or refused the connection.
    #[error("target unavailable: {0}")]
    Unavailable(String),
    /// The call ran out of time; the connector told the target to stop.
    #[error("timed out after {0} ms")]
    Timeout(u64),
    /// The caller cancelled the call (or went away); the connector told the
    /// target to stop.
    #[error("cancelled by the caller; the target was told to stop the work")]
    Cancelled,
    /// The target rejected the call (syntax, constraint, permission...).
    #[error("target error: {0}")]
    Target(String),
    /// The call would change more rows/items than allowed; it was undone.
    #[error(
        "this call would affect {}{affected} rows, more than the {max} allowed by {set_by}; nothing was changed",
        if *at_least { "at least " } else { "" }
    )]
    TooManyAffected {
        /// Rows/items the call changed before it was undone.
        affected: u64,
        /// True when counting stopped early (the real number may be higher).
        at_least: bool,
        /// The cap.
        max: u64,
        /// Who set the cap, e.g. ``policy `x` `` or ``connection `y` ``.
        set_by: String,
    },
    /// The call's write-ahead audit intent could not be recorded, so the
    /// connector undid the call before anything became permanent.
    #[error("the audit store could not record this call's intent, so nothing was committed: {0}")]
    IntentNotRecorded(String),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// A configured connection to one target system.
#[async_trait]
pub trait Connector: Send + Sync + 'static {
    /// Name, kind and description.
    fn info(&self) -> &ConnectionInfo;

    /// Tools this connection serves. Every connection of a kind serves the
    /// same tools; each tool takes a `connection` argument.
    fn tools(&self) -> Vec<ToolSpec>;

    /// Bring up to date what analysis reads from the target before
    /// [`Connector::analyse`] runs (e.g. how the database resolves names, or a
    /// cluster's API discovery). Never executes anything the call asks for;
    /// a failure here only leaves analysis on what it had. Default: nothing.
    async fn prepare(&self, _tool: &str, _args: &Value) {}

    /// Analyse a call: parse and classify it into access requests. Pure: no
    /// I/O, nothing executes. Any doubt is an error (fail closed).
    fn analyse(&self, tool: &str, args: &Value) -> Result<Plan, AnalysisError>;

    /// The call's arguments as the audit record and reviewers may show them,
    /// when the family knows sensitive values inside an argument that the
    /// detectors cannot recognise (a Kubernetes manifest's Secret `data`).
    /// Called for every routed call, before analysis, whatever analysis then
    /// says; the detectors still run over what it returns. Pure. Default:
    /// None (the arguments as given).
    fn recorded_arguments(&self, _tool: &str, _args: &Value) -> Option<Value> {
        None
    }

    /// Execute an analysed call with the credentials this connector holds,
    /// within `limits` and the connection's own configured caps (the
    /// stricter wins). Stops the target's work when `limits.cancel` fires or
    /// the time budget runs out.
    async fn execute(&self, plan: &Plan, limits: ExecLimits) -> Result<ToolOutput, ExecuteError>;

    /// When this plan's write-ahead audit intent must be durable. Default:
    /// [`IntentOrder::BeforeExecute`], right for any target where a sent
    /// request may take effect at once. A connector returns
    /// [`IntentOrder::BeforeCommit`] only for plans whose every effect it
    /// can undo, and then honours [`ExecLimits::intent`].
    fn intent_order(&self, _plan: &Plan) -> IntentOrder {
        IntentOrder::BeforeExecute
    }

    /// Classify the connection's fields by sampling their values with the
    /// credentials this connector holds (read-only, at most
    /// [`Classifier::sample_rows`] non-null values per field, within
    /// [`Classifier::timeout`]), judging them with `classifier`, and use the
    /// result for masking from now on (classified fields are reported as
    /// [`FieldOrigin::sensitive`]). Exempt fields are never read; pinned ones
    /// are classified without reading. On error the previous classification
    /// stays. Default: `Ok(None)`, the family has nothing to classify.
    async fn classify(
        &self,
        _classifier: &Classifier,
    ) -> Result<Option<ClassificationReport>, ExecuteError> {
        Ok(None)
    }
}

/// Gateway-wide limits every call of a connection will run under, known
/// when the connection is built (a connection may size its buffers by them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatewayLimits {
    /// No call returns more bytes of JSON than this (`max_result_bytes`).
    pub max_result_bytes: usize,
}

/// Builds connectors of one kind from their config section. The server holds
/// the list of factories; the core only sees the trait.
pub trait ConnectorFactory: Send + Sync {
    /// Kind name as written in config, e.g. `postgres`.
    fn kind(&self) -> &'static str;
    /// Build a connection from its (already secret-resolved) config table.
    fn build(&self, name: &str, config: &Value) -> Result<Arc<dyn Connector>, String>;
    /// Build a connection that will run under the gateway's `limits`.
    /// Default: [`ConnectorFactory::build`].
    fn build_within(
        &self,
        name: &str,
        config: &Value,
        limits: &GatewayLimits,
    ) -> Result<Arc<dyn Connector>, String> {
        let _ = limits;
        self.build(name, config)
    }
    /// What this kind's family adds to the policy language: its Cedar schema
    /// fragment and the types `unmask` applies to. Kinds of one family
    /// return the same vocabulary; the server combines them with the core's.
    fn vocabulary(&self) -> crate::policy::Vocabulary;
}
