//! MCP transport: rmcp's `ServerHandler` over the gateway. Lists the tools
//! the connectors offer and hands every `tools/call` to
//! [`Gateway::call`](gateway_core::Gateway::call) with the caller's identity:
//! from the HTTP auth layer (request extensions) or, on stdio, from `[stdio]`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use gateway_core::approval::{CallContext, ProgressSink};
use gateway_core::{Gateway, Principal};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, Implementation, InitializeResult,
    ListToolsResult, PaginatedRequestParams, ProgressNotificationParam, ProgressToken,
    ServerCapabilities, ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::{Peer, RequestContext, RoleServer};
use rmcp::{ErrorData as McpError, ServerHandler};
use serde_json::Value;

/// The MCP face of the gateway; cheap to clone (one per session).
#[derive(Clone)]
pub struct McpHandler {
    gateway: Arc<Gateway>,
    tools: Arc<Vec<Tool>>,
    /// Identity of a stdio caller; HTTP callers carry theirs in extensions.
    stdio_principal: Option<Principal>,
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

impl ServerHandler for McpHandler {
    fn get_info(&self) -> ServerConfig {
        InitializeResult::new(ServerCapabilities::builder().enable_tools().build())
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
        if !self.tools.iter().any(|t| t.name == request.name) {
            return Err(McpError::invalid_params(
                format!("unknown tool {:?}", request.name),
                None,
            ));
        }
        let progress = context.meta.get_progress_token().map(|token| McpProgress {
            peer: context.peer.clone(),
            token,
            step: AtomicU32::new(0),
        });
        let ctx = CallContext {
            progress: progress.as_ref().map(|p| p as &dyn ProgressSink),
            wait: None,
        };
        let args = Value::Object(request.arguments.unwrap_or_default());
        let call = self.gateway.call(&principal, &request.name, args, &ctx);
        let result = tokio::select! {
            r = call => r,
            _ = context.ct.cancelled() => return Err(McpError::internal_error("cancelled by the client", None)),
        };
        Ok(if result.is_error {
            CallToolResult::structured_error(result.structured)
        } else {
            CallToolResult::structured(result.structured)
        }
        .into())
    }
}
