//! # tollgate (server)
//!
//! The `tollgate` binary's library: config, the MCP transport (rmcp, HTTP and
//! stdio), the REST API, the CLI commands, and the embedded store. It wires
//! `gateway-core` to the connectors in `tools/`; it holds no pipeline logic.

pub mod api;
pub mod app;
pub mod approvals;
pub mod auth;
pub mod checkpoint;
pub mod classify;
pub mod cli;
pub mod commands;
pub mod config;
pub mod connectors;
pub mod errors;
pub mod http;
pub mod listener;
pub mod logging;
pub mod mcp;
pub mod mcp_guard;
pub mod metrics;
pub mod policy_watch;
pub mod state;
pub mod store;
pub mod ui;

/// Install the process-wide TLS crypto provider (aws-lc-rs, the only one in
/// the tree). Call once at start, before any HTTP client or TLS connection.
pub fn init_crypto() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
