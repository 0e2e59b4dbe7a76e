//! A `tollgate serve --stdio` child for log tests: the test binary re-executes
//! itself as the server (see [`crate::run_child_server_if_asked`]) with
//! `RUST_LOG=trace`, its stderr going to a log file the test then reads. The
//! session itself is a [`StdioClient`].

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::mcp_stdio::StdioClient;

/// A running stdio server and the log it writes.
pub struct StdioServer {
    client: StdioClient,
    log_path: PathBuf,
}

impl StdioServer {
    /// Start `tollgate serve --stdio --config <config>` at `RUST_LOG=trace`
    /// (the calling test binary needs a `child_server` test that calls
    /// [`crate::run_child_server_if_asked`]), logging to `log_path`, and
    /// initialize an MCP session as `client`.
    pub fn start(config: &Path, log_path: &Path, client: &str) -> Self {
        let mut cmd = child_server_command(
            config,
            &["child_server", "--exact", "--nocapture", "--test-threads=1"],
        );
        cmd.env("RUST_LOG", "trace")
            .stderr(std::fs::File::create(log_path).expect("log file"));
        let client = StdioClient::spawn(&mut cmd, client).unwrap_or_else(|e| {
            let log = std::fs::read_to_string(log_path).unwrap_or_default();
            panic!("{e:#}; server log:\n{log}")
        });
        StdioServer {
            client,
            log_path: log_path.to_path_buf(),
        }
    }

    /// `tools/call` of `tool` with `arguments`; its reply (panics with the
    /// server log when none comes).
    pub fn call(&mut self, tool: &str, arguments: Value) -> Value {
        self.client.call_tool(tool, arguments).unwrap_or_else(|e| {
            let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
            panic!("{e:#}; server log:\n{log}")
        })
    }

    /// Close stdin, wait for the server to exit (killed after 15 s), and
    /// return its log, which must show debug or trace lines (else a test of
    /// what it holds proves nothing).
    pub fn finish(self) -> String {
        self.client.close(Duration::from_secs(15));
        let log = std::fs::read_to_string(&self.log_path).unwrap();
        assert!(
            log.contains("TRACE") || log.contains("DEBUG"),
            "the server did not log at debug/trace, so this test proves nothing:\n{log}"
        );
        log
    }
}

/// This binary re-executed as `tollgate serve --stdio --config <config>`
/// (with `args` first: a test binary needs its `child_server` filter, a
/// benchmark none).
pub fn child_server_command(config: &Path, args: &[&str]) -> Command {
    let tollgate = [
        "tollgate",
        "serve",
        "--stdio",
        "--config",
        config.to_str().expect("utf-8 path"),
    ];
    let mut cmd = Command::new(std::env::current_exe().expect("this binary"));
    cmd.args(args)
        .env(
            "TOLLGATE_CHILD_ARGS",
            serde_json::to_string(&tollgate).unwrap(),
        )
        .env("NO_COLOR", "1");
    cmd
}

/// A config for `tollgate serve --stdio` in `dir`: `policies/p.cedar`
/// holding `policy`, the caller `bot` in group `agents`, one PostgreSQL
/// connection `shop` at `url`, and `extra` (more sections) after
/// `[server]`. Returns the config file's path.
pub fn pg_stdio_config(dir: &Path, policy: &str, url: &str, extra: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(dir.join("policies/p.cedar"), policy).unwrap();
    let config = dir.join("tollgate.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\ndata_dir = \"data\"\n\n{extra}\n[policy]\ndir = \"policies\"\n\n\
             [stdio]\nsub = \"bot\"\ngroups = [\"agents\"]\n\n\
             [[connection]]\nname = \"shop\"\nkind = \"postgres\"\nurl = \"{url}\"\n"
        ),
    )
    .unwrap();
    config
}
