//! A `tollgate serve --stdio` child for log tests: the test binary re-executes
//! itself as the server (see [`crate::run_child_server_if_asked`]) with
//! `RUST_LOG=trace`, its stderr going to a log file the test then reads.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A running stdio server speaking JSON-RPC lines.
pub struct StdioServer {
    child: Child,
    stdin: Option<ChildStdin>,
    replies: Receiver<Value>,
    log_path: PathBuf,
}

impl StdioServer {
    /// Start `tollgate serve --stdio --config <config>` at `RUST_LOG=trace`
    /// (the calling test binary needs a `child_server` test that calls
    /// [`crate::run_child_server_if_asked`]), logging to `log_path`, and
    /// initialize an MCP session as `client`.
    pub fn start(config: &Path, log_path: &Path, client: &str) -> Self {
        let args = [
            "tollgate",
            "serve",
            "--stdio",
            "--config",
            config.to_str().expect("utf-8 path"),
        ];
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args(["child_server", "--exact", "--nocapture", "--test-threads=1"])
            .env("TOLLGATE_CHILD_ARGS", serde_json::to_string(&args).unwrap())
            .env("RUST_LOG", "trace")
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log_path).expect("log file"))
            .spawn()
            .expect("spawn server");
        let stdin = child.stdin.take();
        let (tx, replies) = std::sync::mpsc::channel::<Value>();
        let stdout = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            // The re-executed test binary prints libtest text too (even before
            // the first message on its line): keep JSON-RPC only.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let json = line.find('{').map_or("", |i| &line[i..]);
                if let Ok(v) = serde_json::from_str::<Value>(json)
                    && v.get("jsonrpc").is_some()
                    && tx.send(v).is_err()
                {
                    break;
                }
            }
        });
        let mut server = StdioServer {
            child,
            stdin,
            replies,
            log_path: log_path.to_path_buf(),
        };
        server.send(
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": client, "version": "1"}}}),
        );
        server.reply(1);
        server.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        server
    }

    /// Send one JSON-RPC message.
    pub fn send(&mut self, message: Value) {
        let stdin = self.stdin.as_mut().expect("server still open");
        writeln!(stdin, "{message}").unwrap();
        stdin.flush().unwrap();
    }

    /// The reply to request `id` (panics with the server log after 30 s).
    pub fn reply(&self, id: i64) -> Value {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(30) {
            if let Ok(v) = self.replies.recv_timeout(Duration::from_secs(1))
                && v["id"] == id
            {
                return v;
            }
        }
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        panic!("no reply to request {id}; server log:\n{log}");
    }

    /// `tools/call` of `tool` with `arguments` as request `id`; its reply.
    pub fn call(&mut self, id: i64, tool: &str, arguments: Value) -> Value {
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": tool, "arguments": arguments}}));
        self.reply(id)
    }

    /// Close stdin, wait for the server to exit (killed after 15 s), and
    /// return its log, which must show debug or trace lines (else a test of
    /// what it holds proves nothing).
    pub fn finish(mut self) -> String {
        drop(self.stdin.take());
        let t0 = Instant::now();
        while self.child.try_wait().unwrap().is_none() {
            if t0.elapsed() > Duration::from_secs(15) {
                let _ = self.child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.wait();
        let log = std::fs::read_to_string(&self.log_path).unwrap();
        assert!(
            log.contains("TRACE") || log.contains("DEBUG"),
            "the server did not log at debug/trace, so this test proves nothing:\n{log}"
        );
        log
    }
}
