//! MCP transport: rmcp's `ServerHandler` over the gateway. Lists the tools
//! the connectors offer and hands every `tools/call` to
//! [`Gateway::call`](gateway_core::Gateway::call) with the caller's identity:
//! from the HTTP auth layer (request extensions) or, on stdio, from `[stdio]`.
//!
//! Calls that wait on a human approval: a client that declares the Tasks
//! extension (`io.modelcontextprotocol/tasks`) gets a task at once (status
//! `working`, message naming the approval; then `completed` with the tool's
//! result, or `failed` when the approval is denied, expires or is
//! cancelled); any other client blocks up to `approval.wait_seconds` with
//! progress notifications and then gets the pending object. Cancelling the
//! request (`notifications/cancelled`) or the task (`tasks/cancel`) cancels
//! the pending approval.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use futures::future::BoxFuture;
use gateway_core::approval::{CallContext, CancelSignal, ProgressSink};
use gateway_core::builtin::APPROVAL_WAIT;
use gateway_core::{CallOutcome, ErrorCode, Gateway, PendingApproval, Principal};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CancelTaskParams, CreateTaskResult,
    GetTaskParams, GetTaskResult, Implementation, InitializeResult, ListToolsResult,
    PaginatedRequestParams, ProgressNotificationParam, ProgressToken, ServerCapabilities,
    ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::{Peer, RequestContext, RoleServer};
use rmcp::task_manager::{TaskContext, TaskExit, TaskManager, TaskOptions};
use rmcp::{ErrorData as McpError, ServerHandler};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// The MCP face of the gateway; cheap to clone (one per session).
#[derive(Clone)]
pub struct McpHandler {
    gateway: Arc<Gateway>,
    tools: Arc<Vec<Tool>>,
    /// Identity of a stdio caller; HTTP callers carry theirs in extensions.
    stdio_principal: Option<Principal>,
    /// Tasks of calls waiting on approvals, shared by every session.
    tasks: TaskManager,
    /// Task id → the `sub` that owns it (nobody else may see or cancel it).
    task_owners: Arc<Mutex<HashMap<String, String>>>,
}

/// Convert the gateway's tool specs to MCP tools (once, at start).
pub fn mcp_tools(gateway: &Gateway) -> Vec<Tool> {
    gateway
        .tools()
        .iter()
        .map(|t| {
            Tool::new(
                t.name.clone(),
                t.description.clone(),
                Arc::new(t.input_schema.clone()),
            )
            .with_raw_output_schema(Arc::new(t.output_schema.clone()))
            .with_annotations(
                ToolAnnotations::new()
                    .read_only(t.read_only)
                    .destructive(!t.read_only),
            )
        })
        .collect()
}

impl McpHandler {
    /// A handler for HTTP sessions (identity from the auth layer).
    pub fn new(gateway: Arc<Gateway>) -> Self {
        let tools = Arc::new(mcp_tools(&gateway));
        McpHandler {
            gateway,
            tools,
            stdio_principal: None,
            tasks: TaskManager::new(),
            task_owners: Arc::default(),
        }
    }

    /// A handler for stdio with a fixed identity.
    pub fn stdio(gateway: Arc<Gateway>, principal: Principal) -> Self {
        McpHandler {
            stdio_principal: Some(principal),
            ..Self::new(gateway)
        }
    }

    fn principal(&self, ctx: &RequestContext<RoleServer>) -> Option<Principal> {
        if let Some(p) = &self.stdio_principal {
            return Some(p.clone());
        }
        ctx.extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Principal>().cloned())
    }
}

/// Progress notifications to the agent while its call waits on humans.
struct McpProgress {
    peer: Peer<RoleServer>,
    token: ProgressToken,
    step: AtomicU32,
}

impl ProgressSink for McpProgress {
    fn progress(&self, message: &str) {
        let n = self.step.fetch_add(1, Ordering::Relaxed) + 1;
        let param = ProgressNotificationParam::new(self.token.clone(), f64::from(n))
            .with_message(message.to_string());
        let peer = self.peer.clone();
        tokio::spawn(async move {
            let _ = peer.notify_progress(param).await;
        });
    }
}

/// The request's cancellation (`notifications/cancelled`).
struct RequestCancel(CancellationToken);

impl CancelSignal for RequestCancel {
    fn cancelled(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.0.cancelled())
    }
}

/// Aborts a spawned helper task when the call it serves ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A task's status message and cancellation (`tasks/cancel`).
struct TaskSignals(TaskContext);

impl ProgressSink for TaskSignals {
    fn progress(&self, message: &str) {
        self.0.set_status_message(message);
    }
}

impl CancelSignal for TaskSignals {
    fn cancelled(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.0.cancelled())
    }
}

fn to_mcp(structured: Value, is_error: bool) -> CallToolResult {
    if is_error {
        CallToolResult::structured_error(structured)
    } else {
        CallToolResult::structured(structured)
    }
}

// === impl McpHandler: approvals as tasks ===

impl McpHandler {
    fn task_owner_is(&self, task_id: &str, principal: &Principal) -> bool {
        self.task_owners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(task_id)
            .is_some_and(|s| *s == principal.sub)
    }

    /// Turn a pending call into a task that waits for the decision and ends
    /// with the call's result.
    fn spawn_task(&self, principal: Principal, pending: &PendingApproval) -> CreateTaskResult {
        let id = pending.approval_id.clone();
        let message = format!(
            "waiting for approval {id} by {} — review at {}",
            pending.reviewers.join(", "),
            pending.review_url
        );
        let ttl_ms = self
            .gateway
            .approvals()
            .and_then(|g| g.service())
            .map_or(3_600_000, |s| {
                u64::try_from(s.config().ttl.as_millis()).unwrap_or(u64::MAX)
            })
            .saturating_add(300_000);
        let gateway = self.gateway.clone();
        let owner = principal.sub.clone();
        let task = self.tasks.spawn(
            TaskOptions::new()
                .with_ttl_ms(ttl_ms)
                .with_poll_interval_ms(2_000)
                .with_status_message(message),
            move |tctx| {
                Box::pin(async move {
                    let signals = TaskSignals(tctx.clone());
                    let args = serde_json::json!({"approval_id": id});
                    // `tasks/cancel` also stops the call's work on the target.
                    let cancellation = CancellationToken::new();
                    let _stop_on_cancel = {
                        let (tctx, token) = (tctx.clone(), cancellation.clone());
                        AbortOnDrop(tokio::spawn(async move {
                            tctx.cancelled().await;
                            token.cancel();
                        }))
                    };
                    loop {
                        let ctx = CallContext {
                            progress: Some(&signals),
                            cancel: Some(&signals),
                            cancellation: Some(&cancellation),
                            wait: Some(Duration::from_secs(300)),
                            resume: None,
                        };
                        let r = gateway
                            .call(&principal, APPROVAL_WAIT, args.clone(), &ctx)
                            .await;
                        if let CallOutcome::Pending(_) = r.outcome {
                            continue;
                        }
                        // The wait itself was over a limit of the caller's
                        // (`[[limits.rule]]`): the approval still stands, so
                        // wait as told and ask again.
                        if r.outcome == CallOutcome::Failed(ErrorCode::RateLimited) {
                            let retry = r.structured["error"]["retry_after_s"].as_u64().unwrap_or(1);
                            tokio::select! {
                                _ = tokio::time::sleep(Duration::from_secs(retry.max(1))) => continue,
                                _ = tctx.cancelled() => return Err(TaskExit::Cancelled),
                            }
                        }
                        if tctx.is_cancel_requested() {
                            return Err(TaskExit::Cancelled);
                        }
                        // A refused approval (denied, expired, cancelled) fails the task;
                        // anything that ran, even with a target error, completes it.
                        if r.outcome == CallOutcome::Failed(ErrorCode::ApprovalDenied) {
                            let message = r.structured["error"]["message"]
                                .as_str()
                                .unwrap_or("approval refused")
                                .to_string();
                            return Err(TaskExit::Error(McpError::invalid_request(
                                message,
                                Some(r.structured),
                            )));
                        }
                        return Ok(to_mcp(r.structured, r.is_error));
                    }
                })
            },
        );
        self.task_owners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(task.task_id.clone(), owner);
        CreateTaskResult::new(task)
    }
}

impl ServerHandler for McpHandler {
    fn get_info(&self) -> ServerConfig {
        InitializeResult::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tasks()
                .build(),
        )
            .with_server_info(Implementation::new("tollgate", env!("CARGO_PKG_VERSION")).with_title("Tollgate"))
            .with_instructions(
                "Tollgate runs governed tools on production systems. Call list_connections first. Every call is checked \
                 against policy on what it will actually do; some calls wait for a human approval (status pending_approval: \
                 call approval_wait with the approval_id). Sensitive values in results are masked.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(self.tools.as_ref().clone()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let Some(principal) = self.principal(&context) else {
            return Err(McpError::invalid_request(
                "unauthenticated: send a bearer token",
                None,
            ));
        };
        let args = Value::Object(request.arguments.unwrap_or_default());
        if !self.tools.iter().any(|t| t.name == request.name) {
            // Audited like every call (the gateway records `unknown_tool`),
            // answered as the protocol error MCP expects.
            let r = self
                .gateway
                .call(&principal, &request.name, args, &CallContext::default())
                .await;
            return Err(McpError::invalid_params(
                format!("unknown tool {:?}", request.name),
                Some(r.structured),
            ));
        }
        // Tasks extension: never block; a call that needs a human becomes a task.
        if context
            .client_capabilities()
            .is_some_and(|c| c.supports_tasks())
        {
            let ctx = CallContext {
                wait: Some(Duration::ZERO),
                cancellation: Some(&context.ct),
                ..Default::default()
            };
            let result = self
                .gateway
                .call(&principal, &request.name, args, &ctx)
                .await;
            if let CallOutcome::Pending(pending) = &result.outcome {
                return Ok(self.spawn_task(principal, pending).into());
            }
            return Ok(to_mcp(result.structured, result.is_error).into());
        }
        let progress = context.meta.get_progress_token().map(|token| McpProgress {
            peer: context.peer.clone(),
            token,
            step: AtomicU32::new(0),
        });
        let cancel = RequestCancel(context.ct.clone());
        let ctx = CallContext {
            progress: progress.as_ref().map(|p| p as &dyn ProgressSink),
            cancel: Some(&cancel),
            // The client's `notifications/cancelled` (or its going away)
            // stops the connector's work on the target too.
            cancellation: Some(&context.ct),
            ..Default::default()
        };
        let call = self.gateway.call(&principal, &request.name, args, &ctx);
        // On cancellation the gate cancels a pending approval and returns at
        // once; give it a moment to record that before dropping the call.
        let result = tokio::select! {
            r = call => r,
            _ = async { context.ct.cancelled().await; tokio::time::sleep(Duration::from_secs(2)).await } => {
                return Err(McpError::internal_error("cancelled by the client", None));
            }
        };
        Ok(to_mcp(result.structured, result.is_error).into())
    }

    async fn get_task(
        &self,
        request: GetTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, McpError> {
        match self.principal(&context) {
            Some(p) if self.task_owner_is(&request.task_id, &p) => {
                Ok(GetTaskResult::new(self.tasks.get_task(&request.task_id)?))
            }
            _ => Err(McpError::invalid_params(
                format!("unknown task {:?}", request.task_id),
                None,
            )),
        }
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        match self.principal(&context) {
            Some(p) if self.task_owner_is(&request.task_id, &p) => {
                self.tasks.cancel_task(&request.task_id)
            }
            _ => Err(McpError::invalid_params(
                format!("unknown task {:?}", request.task_id),
                None,
            )),
        }
    }
}
