//! # tollgate (server)
//!
//! The `tollgate` binary's library: config, the MCP transport (rmcp, HTTP and
//! stdio), the REST API, the CLI commands, and the embedded store. It wires
//! `gateway-core` to the connectors in `tools/`; it holds no pipeline logic.

pub mod api;
pub mod app;
pub mod approvals;
pub mod cli;
pub mod commands;
pub mod config;
pub mod connectors;
pub mod http;
pub mod logging;
pub mod mcp;
pub mod store;
