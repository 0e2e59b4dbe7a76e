//! The SQL [`Connector`]: argument validation, analysis into a [`Plan`]
//! (through [`crate::analysis`]), and execution through the connection's
//! [`Engine`]. It never decides policy; it guarantees that what executes is
//! exactly the canonical SQL the analysis produced, behind a read-only
//! transaction when the plan is read-only.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use gateway_core::access::{AccessRequest, Resource};
use gateway_core::classify::{ClassificationReport, Classifier};
use gateway_core::connector::{
    AffectedLimit, AnalysisError, ConnectionInfo, Connector, ConnectorFactory, ExecLimits,
    ExecuteError, GatewayLimits, IntentOrder, ItemGuard, Plan, ToolOutput, ToolSpec,
};
use gateway_core::policy::Vocabulary;
use gateway_core::review::ReviewSummary;
use serde_json::{Map, Value, json};

use crate::analysis::catalog::NameCatalog;
use crate::analysis::{self, Dialect};
use crate::config::{SqlConfig, Target, kind_name};
use crate::engine::{Engine, Redactor};
use crate::origins::{self, ColumnLists, Sensitivity};
use crate::prepared::{PreparedStatement, QueryCall, SchemaCall, SqlCall};
use crate::result::Caps;
use crate::review;
use crate::tools::{self, SQL_QUERY, SQL_SCHEMA};

/// Builds SQL connections of one kind (`postgres`, `mysql` or `sqlite`).
///
/// Register all three with the server: `SqlConnectorFactory::all()`.
#[derive(Debug, Clone, Copy)]
pub struct SqlConnectorFactory {
    dialect: Dialect,
}

impl SqlConnectorFactory {
    /// Factory for `kind = "postgres"`.
    pub fn postgres() -> Self {
        SqlConnectorFactory {
            dialect: Dialect::Postgres,
        }
    }
    /// Factory for `kind = "mysql"` (MySQL and MariaDB).
    pub fn mysql() -> Self {
        SqlConnectorFactory {
            dialect: Dialect::MySql,
        }
    }
    /// Factory for `kind = "sqlite"`.
    pub fn sqlite() -> Self {
        SqlConnectorFactory {
            dialect: Dialect::Sqlite,
        }
    }
    /// The three factories, ready to register.
    pub fn all() -> Vec<Box<dyn ConnectorFactory>> {
        vec![
            Box::new(Self::postgres()),
            Box::new(Self::mysql()),
            Box::new(Self::sqlite()),
        ]
    }
}

impl ConnectorFactory for SqlConnectorFactory {
    fn kind(&self) -> &'static str {
        kind_name(self.dialect)
    }

    /// As configured: no gateway cap lowers the connection's own.
    fn build(&self, name: &str, config: &Value) -> Result<Arc<dyn Connector>, String> {
        let uncapped = GatewayLimits {
            max_result_bytes: usize::MAX,
        };
        self.build_within(name, config, &uncapped)
    }

    /// The connection's byte cap comes down to the gateway's (every call
    /// gets the smaller anyway); PostgreSQL sizes its wire limit by it.
    fn build_within(
        &self,
        name: &str,
        config: &Value,
        limits: &GatewayLimits,
    ) -> Result<Arc<dyn Connector>, String> {
        let mut config = SqlConfig::parse(self.dialect, name, config)?;
        config.max_bytes = config.max_bytes.min(limits.max_result_bytes);
        Ok(Arc::new(SqlConnector::new(config)?))
    }

    fn vocabulary(&self) -> Vocabulary {
        crate::vocabulary::VOCABULARY
    }
}

/// One configured SQL connection.
pub struct SqlConnector {
    info: ConnectionInfo,
    config: SqlConfig,
    default_schema: String,
    engine: Box<dyn Engine>,
    redactor: Redactor,
    /// Analyses by SQL text: agents repeat query shapes with new `params`.
    /// Cleared whenever the name catalog changes (analyses depend on it).
    analyses: quick_cache::sync::Cache<String, Arc<Analysed>>,
    /// How the database resolves unqualified names (PostgreSQL), and when it was read.
    names: std::sync::RwLock<Option<(Arc<NameCatalog>, Instant)>>,
    /// DDL ran through this connection since the catalog was read.
    names_stale: AtomicBool,
    /// Column names per table (for `*` in column lineage), and when they were read.
    columns: std::sync::RwLock<Option<(Arc<ColumnLists>, Instant)>>,
    /// DDL ran through this connection since the column lists were read.
    columns_stale: AtomicBool,
    /// When the last read of the column lists found the target unreachable
    /// (and why, redacted): a call right behind it fails at once with the
    /// same error instead of waiting out a second connection timeout.
    columns_down: std::sync::Mutex<Option<(Instant, String)>>,
    /// Columns classified as holding a sensitive type: `(schema, table,
    /// column)` → type name. Masked whole like a column rule.
    classification: std::sync::RwLock<Arc<Classification>>,
}

/// Classified columns: `(schema, table, column)` → type name.
pub type Classification = std::collections::HashMap<(String, String, String), String>;

/// A name catalog older than this is read again before the next analysis.
const NAMES_TTL: Duration = Duration::from_secs(30);
/// A name missing from a catalog at least this old makes it read again.
const NAMES_MISS_REFRESH: Duration = Duration::from_secs(1);

/// A call this soon after the column-list read found the target unreachable
/// fails with that error instead of trying to connect again.
const DOWN_RECHECK: Duration = Duration::from_secs(2);

/// Distinct SQL texts whose analysis a connection keeps.
const ANALYSIS_CACHE_ENTRIES: usize = 1024;
/// Longer SQL texts are analysed every time (and never held in memory).
const ANALYSIS_CACHE_MAX_SQL: usize = 8 * 1024;

/// What a `sql_query` plan needs from the analysis of its `sql`.
#[derive(Debug)]
struct Analysed {
    requests: Vec<AccessRequest>,
    statements: Vec<PreparedStatement>,
    read_only: bool,
    missed_catalog: bool,
    /// What reviewers see: each statement's SQL in code and literal parts.
    review: ReviewSummary,
}

impl std::fmt::Debug for SqlConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlConnector")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl SqlConnector {
    /// Build a connection from a validated config. Never touches the network:
    /// pools connect lazily on first use.
    pub fn new(config: SqlConfig) -> Result<Self, String> {
        let (engine, default_schema, redactor): (Box<dyn Engine>, String, Redactor) =
            match (&config.target, config.dialect) {
                (Target::Url(url), Dialect::Postgres) => {
                    let e = crate::pg::PgEngine::new(&config, url)
                        .map_err(|e| format!("connection `{}`: {e}", config.name))?;
                    (
                        Box::new(e),
                        Dialect::Postgres.default_schema(""),
                        Redactor::for_url(url.expose()),
                    )
                }
                (Target::Url(url), Dialect::MySql) => {
                    let e = crate::mysql::MySqlEngine::new(&config, url)
                        .map_err(|e| format!("connection `{}`: {e}", config.name))?;
                    let db = e.database().to_string();
                    (
                        Box::new(e),
                        Dialect::MySql.default_schema(&db),
                        Redactor::for_url(url.expose()),
                    )
                }
                (Target::Path(path), Dialect::Sqlite) => {
                    let e = crate::sqlite::SqliteEngine::new(&config, path)
                        .map_err(|e| format!("connection `{}`: {e}", config.name))?;
                    (
                        Box::new(e),
                        Dialect::Sqlite.default_schema(""),
                        Redactor::default(),
                    )
                }
                _ => {
                    return Err(format!(
                        "connection `{}`: target does not match kind",
                        config.name
                    ));
                }
            };
        Ok(SqlConnector {
            info: ConnectionInfo {
                name: config.name.clone(),
                kind: kind_name(config.dialect).into(),
                description: config.description.clone(),
            },
            config,
            default_schema,
            engine,
            redactor,
            analyses: quick_cache::sync::Cache::new(ANALYSIS_CACHE_ENTRIES),
            names: std::sync::RwLock::new(None),
            names_stale: AtomicBool::new(false),
            columns: std::sync::RwLock::new(None),
            columns_stale: AtomicBool::new(false),
            columns_down: std::sync::Mutex::new(None),
            classification: Default::default(),
        })
    }

    /// Schema that unqualified table names resolve to (`public`, the MySQL
    /// database, `main`).
    pub fn default_schema(&self) -> &str {
        &self.default_schema
    }

    /// The connection's config.
    pub fn config(&self) -> &SqlConfig {
        &self.config
    }

    fn check_args<'a>(
        &self,
        tool: &str,
        args: &'a Value,
        allowed: &[&str],
    ) -> Result<&'a Map<String, Value>, AnalysisError> {
        let obj = args.as_object().ok_or_else(|| {
            AnalysisError::InvalidArguments(format!("{tool}: arguments must be an object"))
        })?;
        for k in obj.keys() {
            if !allowed.contains(&k.as_str()) {
                return Err(AnalysisError::InvalidArguments(format!(
                    "{tool}: unknown argument `{k}` (allowed: {})",
                    allowed.join(", ")
                )));
            }
        }
        match obj.get("connection") {
            Some(Value::String(c)) if *c == self.info.name => Ok(obj),
            Some(Value::String(c)) => Err(AnalysisError::InvalidArguments(format!(
                "{tool}: `connection` is `{c}` but this is connection `{}`",
                self.info.name
            ))),
            Some(_) => Err(AnalysisError::InvalidArguments(format!(
                "{tool}: `connection` must be a string"
            ))),
            None => Err(AnalysisError::InvalidArguments(format!(
                "{tool}: missing argument `connection`"
            ))),
        }
    }

    fn analyse_query(&self, args: &Value) -> Result<Plan, AnalysisError> {
        let obj = self.check_args(
            SQL_QUERY,
            args,
            &["connection", "sql", "params", "max_rows"],
        )?;
        let sql = match obj.get("sql") {
            Some(Value::String(s)) if !s.trim().is_empty() => s,
            Some(Value::String(_)) => {
                return Err(AnalysisError::InvalidArguments(
                    "sql_query: `sql` is empty".into(),
                ));
            }
            Some(_) => {
                return Err(AnalysisError::InvalidArguments(
                    "sql_query: `sql` must be a string".into(),
                ));
            }
            None => {
                return Err(AnalysisError::InvalidArguments(
                    "sql_query: missing argument `sql`".into(),
                ));
            }
        };
        let params = match obj.get("params") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a.clone(),
            Some(_) => {
                return Err(AnalysisError::InvalidArguments(
                    "sql_query: `params` must be an array".into(),
                ));
            }
        };
        let max_rows = match obj.get("max_rows") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_u64().filter(|n| *n >= 1).ok_or_else(|| {
                AnalysisError::InvalidArguments(
                    "sql_query: `max_rows` must be a positive integer".into(),
                )
            })?),
        };
        let analysed = self.analysed(sql)?;
        let mut plan = plan_for_query(
            analysed.requests.clone(),
            analysed.statements.clone(),
            params,
            max_rows,
            analysed.read_only,
        );
        plan.review = analysed.review.clone();
        Ok(plan)
    }

    /// The analysis of `sql`, from the cache when this exact text was
    /// analysed before on this connection (analysis is a pure function of
    /// dialect, connection, default schema and text; only successes are kept).
    fn analysed(&self, sql: &str) -> Result<Arc<Analysed>, AnalysisError> {
        if let Some(hit) = self.analyses.get(sql) {
            return Ok(hit);
        }
        let names = self.name_catalog();
        let columns = self.column_lists();
        let analysed = analysis::analyse_with(
            self.config.dialect,
            &self.info.name,
            &self.default_schema,
            names.as_deref(),
            columns.as_deref().map_or(&() as _, |c| c as _),
            sql,
        )?;
        // A table the column lists do not hold (created since they were
        // read?) has a `*` of unknown width: analysed again once they are
        // read again (lineage then widens, never narrows, until it is).
        let missed_columns = columns.is_some_and(|c| {
            analysed
                .statements
                .iter()
                .flat_map(|s| &s.tables)
                .any(|t| !c.knows(t))
        });
        if analysed.statements.is_empty() {
            return Err(AnalysisError::InvalidArguments(
                "sql_query: `sql` holds no statement".into(),
            ));
        }
        if analysed.requests.is_empty() {
            return Err(AnalysisError::Unanalysable(
                "analysis produced no access request".into(),
            ));
        }
        let statements: Vec<PreparedStatement> = analysed
            .statements
            .iter()
            .map(|s| PreparedStatement {
                kind: s.kind.clone(),
                tables: s
                    .tables
                    .iter()
                    .map(|t| format!("{}.{}", t.schema, t.table))
                    .collect(),
                sql: s.sql.clone(),
                touches_session: s.touches_session,
                lineage: Arc::new(s.lineage.clone()),
            })
            .collect();
        let read_only = analysed.statements.iter().all(|s| s.read_only);
        let review = review::summary(Some(self.config.dialect), &statements);
        let done = Arc::new(Analysed {
            requests: analysed.requests,
            statements,
            read_only,
            missed_catalog: analysed.missed_catalog || missed_columns,
            review,
        });
        // A name the catalog did not know is analysed again once it is read again.
        if sql.len() <= ANALYSIS_CACHE_MAX_SQL && !done.missed_catalog {
            self.analyses.insert(sql.to_string(), done.clone());
        }
        Ok(done)
    }

    /// Whether a catalog snapshot of this `age` (None: never read) is read
    /// again before analysing `sql`: none yet, older than the TTL, DDL ran
    /// (`stale`), or `sql` names something it lacks and it is not brand new.
    fn snapshot_due(&self, age: Option<Duration>, stale: &AtomicBool, sql: Option<&str>) -> bool {
        match age {
            None => true,
            Some(age) if age > NAMES_TTL => true,
            Some(_) if stale.load(Ordering::Relaxed) => true,
            Some(age) => {
                age > NAMES_MISS_REFRESH
                    && sql.is_some_and(|sql| {
                        self.analysed(sql)
                            .map(|a| a.missed_catalog)
                            .unwrap_or(false)
                    })
            }
        }
    }

    /// The current name catalog, if one was read.
    fn name_catalog(&self) -> Option<Arc<NameCatalog>> {
        self.names
            .read()
            .ok()
            .and_then(|g| g.as_ref().map(|(c, _)| c.clone()))
    }

    /// Read the name catalog again when there is none, it is old, DDL ran,
    /// or `sql` names something it does not hold (a miss). Failures keep
    /// what was there: analysis then uses the static rule or the old catalog,
    /// and the executed text still names exactly what policy saw.
    async fn refresh_names(&self, sql: Option<&str>) {
        let age = self
            .names
            .read()
            .ok()
            .and_then(|g| g.as_ref().map(|(_, at)| at.elapsed()));
        if !self.snapshot_due(age, &self.names_stale, sql) {
            return;
        }
        match self.engine.name_catalog().await {
            Ok(Some(catalog)) => {
                self.names_stale.store(false, Ordering::Relaxed);
                if let Ok(mut g) = self.names.write() {
                    *g = Some((Arc::new(catalog), Instant::now()));
                }
                self.analyses.clear();
            }
            Ok(None) => {}
            Err(e) => tracing::debug!(
                connection = %self.info.name,
                error = %self.redactor.clean(e.to_string()),
                "cannot read how the database resolves names; analysing with what is known"
            ),
        }
    }

    /// The current column lists, if they were read.
    fn column_lists(&self) -> Option<Arc<ColumnLists>> {
        self.columns
            .read()
            .ok()
            .and_then(|g| g.as_ref().map(|(c, _)| c.clone()))
    }

    /// Read the column lists again on the name catalog's schedule: when
    /// there are none, they are old, DDL ran, or `sql` names a table they do
    /// not hold. A failure keeps what was there (lineage then treats a `*`
    /// over an unknown table as every column of it: more is masked, not less).
    async fn refresh_columns(&self, sql: Option<&str>) {
        let age = self
            .columns
            .read()
            .ok()
            .and_then(|g| g.as_ref().map(|(_, at)| at.elapsed()));
        if !self.snapshot_due(age, &self.columns_stale, sql) {
            return;
        }
        self.columns_stale.store(false, Ordering::Relaxed);
        let limits = ExecLimits {
            max_items: None,
            max_bytes: usize::MAX,
            max_affected: None,
            timeout: Some(Duration::from_secs(10)),
            cancel: Default::default(),
            caller: None,
            progress: None,
            intent: Default::default(),
        };
        match self.engine.schema(&SchemaCall::default(), &limits).await {
            Ok(schema) => {
                let fold = self.config.dialect != Dialect::Postgres;
                let mut lists = ColumnLists::from_schema(&schema, fold);
                // Views are followed to their tables when their definitions
                // can be read; otherwise they are opaque (see origins).
                match self.engine.view_definitions(&limits).await {
                    Ok(views) => lists = lists.with_views(views, fold),
                    Err(e) => tracing::warn!(
                        connection = %self.info.name,
                        error = %self.redactor.clean(e.to_string()),
                        "cannot read view definitions; every masking rule of the connection applies to view columns"
                    ),
                }
                lists.mark_opaque_views(ColumnLists::views_in(&schema, fold), self.config.dialect);
                if let Ok(mut g) = self.columns.write() {
                    *g = Some((Arc::new(lists), Instant::now()));
                }
                if let Ok(mut down) = self.columns_down.lock() {
                    *down = None;
                }
                self.analyses.clear();
            }
            Err(e) => {
                let error = self.redactor.clean(e.to_string());
                tracing::debug!(
                    connection = %self.info.name,
                    error = %error,
                    "cannot read the column lists; a `*` counts as every column of its table"
                );
                // A server that refused or timed out the connection (not a
                // SQLite file, which a read-only open cannot create yet).
                if let (ExecuteError::Unavailable(why), Ok(mut down), true) = (
                    e,
                    self.columns_down.lock(),
                    self.config.dialect != Dialect::Sqlite,
                ) {
                    *down = Some((Instant::now(), self.redactor.clean(why)));
                }
            }
        }
    }

    /// The target was found unreachable by the column-list read just before
    /// this call (within [`DOWN_RECHECK`]): the error to return at once.
    fn just_found_down(&self) -> Option<ExecuteError> {
        let down = self.columns_down.lock().ok()?;
        let (at, why) = down.as_ref()?;
        (at.elapsed() < DOWN_RECHECK).then(|| ExecuteError::Unavailable(why.clone()))
    }

    /// Replace the connection's column classification (see [`Classification`]).
    pub fn set_classification(&self, classification: Classification) {
        if let Ok(mut g) = self.classification.write() {
            *g = Arc::new(classification);
        }
    }

    /// The connection's current column classification.
    pub fn classification(&self) -> Arc<Classification> {
        self.classification
            .read()
            .map(|g| g.clone())
            .unwrap_or_default()
    }

    /// Add `classified: TYPE` to every classified column of a `sql_schema`
    /// result.
    fn annotate_schema(&self, value: &mut Value) {
        let classification = self.classification();
        if classification.is_empty() {
            return;
        }
        let Some(tables) = value.get_mut("tables").and_then(Value::as_array_mut) else {
            return;
        };
        for t in tables {
            let schema = t
                .get("schema")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let table = t
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let Some(columns) = t.get_mut("columns").and_then(Value::as_array_mut) else {
                continue;
            };
            for c in columns {
                let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
                let k = crate::sampling::key(self.config.dialect, &schema, &table, name);
                if let (Some(ty), Some(obj)) = (classification.get(&k), c.as_object_mut()) {
                    obj.insert("classified".into(), Value::String(ty.clone()));
                }
            }
        }
    }

    /// `sql_schema` lists only tables the caller may `sql:select`: one guard
    /// per listed table (`/tables/<i>`), asking what `SELECT 1 FROM
    /// <schema>.<table>` would ask (so the context has the shape policies
    /// expect). A table whose request cannot be built gets a request no
    /// policy can allow (an empty context): hidden, never shown by mistake.
    fn schema_guards(&self, value: &Value) -> Vec<ItemGuard> {
        let Some(tables) = value.get("tables").and_then(Value::as_array) else {
            return Vec::new();
        };
        let quote = |name: &str| match self.config.dialect {
            Dialect::MySql => format!("`{}`", name.replace('`', "``")),
            _ => format!("\"{}\"", name.replace('"', "\"\"")),
        };
        tables
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let schema = t.get("schema").and_then(Value::as_str).unwrap_or_default();
                let name = t.get("name").and_then(Value::as_str).unwrap_or_default();
                let sql = format!("SELECT 1 FROM {}.{}", quote(schema), quote(name));
                let analysed = analysis::analyse(
                    self.config.dialect,
                    &self.info.name,
                    &self.default_schema,
                    &sql,
                );
                let request = match analysed.map(|a| a.requests) {
                    Ok(mut r)
                        if r.len() == 1
                            && r[0].action == "sql:select"
                            && r[0].resource.kind == "Table" =>
                    {
                        r.remove(0)
                    }
                    _ => AccessRequest {
                        action: "sql:select".into(),
                        resource: crate::vocabulary::table(&self.info.name, schema, name),
                        context: Default::default(),
                    },
                };
                ItemGuard {
                    pointer: format!("/tables/{i}"),
                    request,
                }
            })
            .collect()
    }

    fn analyse_schema(&self, args: &Value) -> Result<Plan, AnalysisError> {
        let obj = self.check_args(SQL_SCHEMA, args, &["connection", "schema", "table"])?;
        let opt = |k: &str| -> Result<Option<String>, AnalysisError> {
            match obj.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(AnalysisError::InvalidArguments(format!(
                    "sql_schema: `{k}` must be a string"
                ))),
            }
        };
        let call = SchemaCall {
            schema: opt("schema")?,
            table: opt("table")?,
        };
        Ok(plan_for_schema(&self.info.name, call))
    }
}

impl Sensitivity for SqlConnector {
    fn classified(&self, schema: &str, table: &str, column: &str) -> Option<String> {
        let c = self.classification.read().ok()?;
        if c.is_empty() {
            return None;
        }
        c.get(&(schema.to_string(), table.to_string(), column.to_string()))
            .cloned()
    }
}

/// The plan of a `sql_query` call from already-analysed parts. Public so
/// tests and tools can build plans without the analyser.
pub fn plan_for_query(
    requests: Vec<AccessRequest>,
    statements: Vec<PreparedStatement>,
    params: Vec<Value>,
    max_rows: Option<u64>,
    read_only: bool,
) -> Plan {
    let review = review::summary(None, &statements);
    Plan {
        requests,
        review,
        read_only,
        prepared: Box::new(SqlCall::Query(QueryCall {
            statements,
            params,
            max_rows,
            read_only,
            max_affected: None,
        })),
    }
}

/// The plan of a `sql_schema` call: one `connect` request, read-only.
pub fn plan_for_schema(connection: &str, call: SchemaCall) -> Plan {
    Plan {
        requests: vec![AccessRequest {
            action: "connect".into(),
            resource: Resource::connection(connection),
            context: Default::default(),
        }],
        review: ReviewSummary {
            title: schema_title(connection, &call),
            ..Default::default()
        },
        read_only: true,
        prepared: Box::new(SqlCall::Schema(call)),
    }
}

/// The title of a `sql_schema` call's review: what it reads.
fn schema_title(connection: &str, call: &SchemaCall) -> String {
    match (&call.schema, &call.table) {
        (Some(s), Some(t)) => format!("read the columns of {s}.{t} on {connection}"),
        (None, Some(t)) => format!("read the columns of {t} on {connection}"),
        (Some(s), None) => format!("list the tables of schema {s} on {connection}"),
        (None, None) => format!("list the tables of {connection}"),
    }
}

fn statements_summary(statements: &[PreparedStatement]) -> Value {
    Value::Array(
        statements
            .iter()
            .map(|s| json!({"kind": s.kind, "tables": s.tables, "sql": s.sql}))
            .collect(),
    )
}

#[async_trait]
impl Connector for SqlConnector {
    fn info(&self) -> &ConnectionInfo {
        &self.info
    }

    fn tools(&self) -> Vec<ToolSpec> {
        tools::specs()
    }

    async fn prepare(&self, tool: &str, args: &Value) {
        if tool == SQL_QUERY {
            let sql = args.get("sql").and_then(Value::as_str);
            if self.config.dialect == Dialect::Postgres {
                self.refresh_names(sql).await;
            }
            self.refresh_columns(sql).await;
        }
    }

    fn analyse(&self, tool: &str, args: &Value) -> Result<Plan, AnalysisError> {
        match tool {
            SQL_QUERY => self.analyse_query(args),
            SQL_SCHEMA => self.analyse_schema(args),
            other => Err(AnalysisError::UnknownTool(other.to_string())),
        }
    }

    /// Every effect a transaction can undo may overlap the write-ahead
    /// intent (the engines await it before COMMIT, and roll back when it
    /// fails). Not so: functions outside the vetted side-effect-free list
    /// (they may act outside the transaction: signal a backend, reach the
    /// network), admin statements (session and server state), and on
    /// MySQL/MariaDB DDL (it commits implicitly); their intent is durable
    /// before anything is sent.
    fn intent_order(&self, plan: &Plan) -> IntentOrder {
        let Some(call) = plan.prepared.downcast_ref::<SqlCall>() else {
            return IntentOrder::BeforeExecute;
        };
        let SqlCall::Query(q) = call else {
            // sql_schema reads the catalog only.
            return IntentOrder::BeforeCommit;
        };
        let ddl_commits = self.config.dialect == Dialect::MySql;
        let escapes = plan.requests.iter().any(|r| r.action == "sql:call")
            || q.statements
                .iter()
                .any(|s| s.kind == "admin" || (ddl_commits && s.kind == "ddl"));
        if escapes {
            IntentOrder::BeforeExecute
        } else {
            IntentOrder::BeforeCommit
        }
    }

    async fn execute(&self, plan: &Plan, limits: ExecLimits) -> Result<ToolOutput, ExecuteError> {
        let call = plan
            .prepared
            .downcast_ref::<SqlCall>()
            .ok_or_else(|| ExecuteError::Other("plan was not made by the SQL connector".into()))?;
        match call {
            SqlCall::Query(q) => {
                if let Some(e) = self.just_found_down() {
                    return Err(e);
                }
                let mut q = q.clone();
                // The database's read-only wall stands whenever policy saw a
                // read-only call or the connection is configured read-only.
                q.read_only = q.read_only || plan.read_only || self.config.read_only;
                // The stricter of the connection's and policy's caps on rows changed.
                let own = self.config.max_affected_rows.map(|max| AffectedLimit {
                    max,
                    set_by: format!("connection `{}`", self.info.name),
                });
                q.max_affected = AffectedLimit::stricter(limits.max_affected.clone(), own);
                // The connection's row cap, lowered by the call's `max_rows`
                // and by the gateway's item cap: the strictest wins.
                let own = q
                    .max_rows
                    .map_or(self.config.max_rows, |m| m.min(self.config.max_rows));
                let caps = Caps {
                    max_rows: limits.items_within(own),
                    max_bytes: limits.bytes_within(self.config.max_bytes),
                };
                if q.statements.iter().any(|s| s.kind == "ddl") {
                    // Tables may have appeared or gone: read the names again.
                    self.names_stale.store(true, Ordering::Relaxed);
                    self.columns_stale.store(true, Ordering::Relaxed);
                }
                let outcome = self
                    .engine
                    .query(&q, caps, &limits)
                    .await
                    .map_err(|e| self.redactor.error(e))?;
                let (value, rows, truncated, produced) =
                    outcome.into_value(statements_summary(&q.statements));
                let field_origins = match produced {
                    Some((index, driver)) => {
                        let lineage = q
                            .statements
                            .get(index)
                            .map(|s| s.lineage.clone())
                            .unwrap_or_default();
                        let columns = self.column_lists().unwrap_or_default();
                        origins::result_origins(&lineage, driver.len(), &driver, &columns, self)
                    }
                    None => Vec::new(),
                };
                Ok(ToolOutput {
                    value,
                    items: Some(rows),
                    item_list: Some("/rows".into()),
                    truncated,
                    field_origins,
                    item_guards: Vec::new(),
                    recording: None,
                })
            }
            SqlCall::Schema(s) => {
                let mut value = self
                    .engine
                    .schema(s, &limits)
                    .await
                    .map_err(|e| self.redactor.error(e))?;
                self.annotate_schema(&mut value);
                let items = value
                    .get("tables")
                    .and_then(Value::as_array)
                    .map(|a| a.len() as u64);
                let item_guards = self.schema_guards(&value);
                Ok(ToolOutput {
                    value,
                    items,
                    // The preview keeps up to 20 tables, as it always did.
                    item_list: None,
                    truncated: false,
                    field_origins: Vec::new(),
                    item_guards,
                    recording: None,
                })
            }
        }
    }

    async fn classify(
        &self,
        classifier: &Classifier,
    ) -> Result<Option<ClassificationReport>, ExecuteError> {
        let previous = self.classification();
        let (classification, report) = crate::sampling::classify(
            self.engine.as_ref(),
            &self.redactor,
            self.config.dialect,
            &self.info.name,
            classifier,
            &previous,
        )
        .await
        .map_err(|e| self.redactor.error(e))?;
        self.set_classification(classification);
        Ok(Some(report))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connector() -> SqlConnector {
        let config = SqlConfig::parse(
            Dialect::Postgres,
            "shop",
            &json!({"url": "postgres://u@127.0.0.1:1/db"}),
        )
        .unwrap();
        SqlConnector::new(config).unwrap()
    }

    #[test]
    fn only_plans_whose_every_effect_a_transaction_undoes_overlap_their_intent() {
        let pg = connector();
        let order = |c: &SqlConnector, sql: &str| {
            let p = plan(c, sql, json!([])).unwrap_or_else(|e| panic!("{sql}: {e}"));
            c.intent_order(&p)
        };
        for sql in [
            "SELECT id FROM orders",
            "INSERT INTO orders (id) VALUES (1)",
            "UPDATE orders SET id = 2 WHERE id = 1",
            "CREATE TABLE t (id int)",
            "WITH d AS (DELETE FROM orders WHERE id = 1 RETURNING id) SELECT id FROM d",
        ] {
            assert_eq!(order(&pg, sql), IntentOrder::BeforeCommit, "{sql}");
        }
        for sql in [
            // Not vetted side-effect-free: may act outside the transaction.
            "SELECT pg_terminate_backend(42)",
            "SELECT my_function(1)",
            "INSERT INTO orders (id) VALUES (my_function(1))",
            // Session and server state.
            "SET search_path TO other",
        ] {
            assert_eq!(order(&pg, sql), IntentOrder::BeforeExecute, "{sql}");
        }
        // MySQL/MariaDB DDL commits implicitly.
        let my = SqlConnector::new(
            SqlConfig::parse(
                Dialect::MySql,
                "shop",
                &json!({"url": "mysql://u@127.0.0.1:1/db"}),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            order(&my, "CREATE TABLE t (id int)"),
            IntentOrder::BeforeExecute
        );
        assert_eq!(
            order(&my, "INSERT INTO orders (id) VALUES (1)"),
            IntentOrder::BeforeCommit
        );
    }

    fn plan(c: &SqlConnector, sql: &str, params: Value) -> Result<Plan, AnalysisError> {
        c.analyse(
            SQL_QUERY,
            &json!({"connection": "shop", "sql": sql, "params": params}),
        )
    }

    fn call(plan: &Plan) -> &QueryCall {
        match plan.prepared.downcast_ref::<SqlCall>() {
            Some(SqlCall::Query(q)) => q,
            other => panic!("not a query plan: {other:?}"),
        }
    }

    #[test]
    fn repeated_sql_reuses_its_analysis_with_each_calls_own_params() {
        let c = connector();
        let sql = "SELECT id FROM orders WHERE id = $1";
        let first = plan(&c, sql, json!([1])).unwrap();
        assert_eq!(c.analyses.len(), 1);
        let second = plan(&c, sql, json!([2])).unwrap();
        assert_eq!(c.analyses.len(), 1, "the second call hit the cache");
        assert_eq!(first.requests, second.requests);
        assert_eq!(first.review, second.review);
        assert_eq!(call(&first).params, vec![json!(1)]);
        assert_eq!(call(&second).params, vec![json!(2)]);
        // Text that differs at all is analysed on its own: a hidden write
        // after a comment is seen, not served the SELECT's plan.
        let sneaky = plan(
            &c,
            "SELECT id FROM orders WHERE id = $1; DELETE FROM orders",
            json!([1]),
        )
        .unwrap();
        assert!(!sneaky.read_only);
        assert!(sneaky.requests.iter().any(|r| r.action == "sql:delete"));
        assert_eq!(c.analyses.len(), 2);
    }

    #[test]
    fn plans_carry_each_statements_review_parts() {
        let c = connector();
        let p = plan(
            &c,
            "SELECT 1; DELETE FROM orders WHERE note = '-----BEGIN PRIVATE KEY-----' OR id > 0",
            json!([]),
        )
        .unwrap();
        assert_eq!(p.review.runs.len(), 2);
        assert_eq!(
            p.review.title,
            "2 statements: SELECT, DELETE on public.orders"
        );
        assert_eq!(p.review.resources, vec!["public.orders"]);
        assert_eq!(call(&p).statements.len(), 2);
        for (r, s) in p.review.runs.iter().zip(&call(&p).statements) {
            assert_eq!(r.text.joined(), s.sql);
            assert_eq!(r.label, s.kind);
            assert_eq!(r.resources, s.tables);
        }
        let masker = gateway_core::mask::Masker::default();
        let (shown, _) = p.review.masked(&masker, Default::default());
        assert_eq!(
            shown.runs[1].text.joined(),
            "DELETE FROM \"public\".\"orders\" WHERE note = '[PRIVATE_KEY]' OR id > 0"
        );
    }

    #[test]
    fn a_schema_call_is_reviewed_by_what_it_reads() {
        let c = connector();
        let p = c
            .analyse(
                SQL_SCHEMA,
                &json!({"connection": "shop", "table": "orders"}),
            )
            .unwrap();
        assert_eq!(p.review.title, "read the columns of orders on shop");
        assert!(p.review.runs.is_empty());
    }

    #[tokio::test]
    async fn a_failed_classification_keeps_the_previous_one() {
        use gateway_core::classify::Classifier;
        use gateway_core::mask::{ClassificationConfig, Masker};
        // Nothing listens on the connector's port.
        let c = connector();
        let mut previous = Classification::new();
        previous.insert(
            ("public".into(), "customers".into(), "email".into()),
            "EMAIL".into(),
        );
        c.set_classification(previous.clone());
        let config: ClassificationConfig =
            serde_json::from_value(json!({"timeout": "3s"})).unwrap();
        let classifier = Classifier::new(&config, Arc::new(Masker::default())).unwrap();
        assert!(c.classify(&classifier).await.is_err());
        assert_eq!(*c.classification(), previous);
        assert_eq!(
            c.classified("public", "customers", "email").as_deref(),
            Some("EMAIL")
        );
    }

    #[test]
    fn refused_sql_is_refused_every_time_and_never_cached() {
        let c = connector();
        for _ in 0..2 {
            assert!(matches!(
                plan(&c, "SELEC id FROM orders", json!([])),
                Err(AnalysisError::Unanalysable(_))
            ));
        }
        assert_eq!(c.analyses.len(), 0);
        // Long SQL is analysed but not kept.
        let long = format!(
            "SELECT 1 WHERE 'x' <> '{}'",
            "y".repeat(ANALYSIS_CACHE_MAX_SQL)
        );
        plan(&c, &long, json!([])).unwrap();
        assert_eq!(c.analyses.len(), 0);
    }
}
