//! The one trait a connector implements: typed args → the actions it will
//! take → execute → typed result. The core never names a connector; the server
//! holds the one list of enabled connector kinds.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;

use crate::access::AccessRequest;
use crate::review::ReviewText;

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
    /// Human-readable summary that goes into results and approval pages,
    /// e.g. `[{kind, tables}]` per statement.
    pub summary: Value,
    /// Strings of `summary` that quote the call, as code and literal parts,
    /// so reviewers see each literal masked on its own and never lose the
    /// structure around it (see [`crate::review`]). Empty when the connector
    /// cannot tell literals from code: the summary is then masked whole.
    pub review: Vec<ReviewText>,
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
            .field("summary", &self.summary)
            .field("review", &self.review)
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

/// Limits the gateway imposes on one execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecLimits {
    /// At most this many rows/items are returned; `truncated` is set past it.
    pub max_rows: u64,
    /// At most this many bytes of result payload (approximate, JSON size).
    pub max_bytes: usize,
    /// At most this many rows/items may be changed by the call (summed over
    /// everything it runs); past it the connector undoes the call and fails
    /// with [`ExecuteError::TooManyAffected`]. None: policy sets no cap (the
    /// connector may still apply its own configured one; the smaller wins).
    pub max_affected: Option<AffectedLimit>,
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

/// Where a part of a result came from, for column-based masking rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldOrigin {
    /// JSON pointer pattern into the result; `*` matches any array index or
    /// key, e.g. `/rows/*/3`.
    pub pointer: String,
    /// Dotted origin, e.g. `public.customers.email` (schema.table.column).
    pub origin: String,
}

/// A connector's successful result.
#[derive(Debug, Clone)]
pub struct ToolOutput {
    /// The structured result, as the tool's `outputSchema` describes it.
    pub value: Value,
    /// Rows/items returned (for the audit outcome).
    pub rows: Option<u64>,
    /// True when a cap cut the result.
    pub truncated: bool,
    /// Origins of result fields, for column masking rules.
    pub field_origins: Vec<FieldOrigin>,
    /// Items of the result that only a caller permitted their request may
    /// see (e.g. one per listed table or namespace). The pipeline decides
    /// them in one batch and removes the denied items before masking and
    /// audit (see [`crate::guards`]).
    pub item_guards: Vec<ItemGuard>,
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
    /// The statement timed out.
    #[error("timed out after {0} ms")]
    Timeout(u64),
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

    /// Execute an analysed call with the credentials this connector holds.
    async fn execute(&self, plan: &Plan, limits: ExecLimits) -> Result<ToolOutput, ExecuteError>;

    /// Configured row cap for this connection.
    fn max_rows(&self) -> u64;
}

/// Builds connectors of one kind from their config section. The server holds
/// the list of factories; the core only sees the trait.
pub trait ConnectorFactory: Send + Sync {
    /// Kind name as written in config, e.g. `postgres`.
    fn kind(&self) -> &'static str;
    /// Build a connection from its (already secret-resolved) config table.
    fn build(&self, name: &str, config: &Value) -> Result<Arc<dyn Connector>, String>;
    /// What this kind's family adds to the policy language: its Cedar schema
    /// fragment and the types `unmask` applies to. Kinds of one family
    /// return the same vocabulary; the server combines them with the core's.
    fn vocabulary(&self) -> crate::policy::Vocabulary;
}
