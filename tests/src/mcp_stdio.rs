//! A newline-delimited JSON-RPC client for any MCP server over stdio: spawn
//! the server, initialize a session, call tools. The log tests drive
//! `tollgate serve --stdio` through it ([`crate::stdio::StdioServer`]), and
//! the Kubernetes list benchmark drives Tollgate and a peer server through
//! this same client, so both are measured the same way (the SSH benchmark's
//! bursts of concurrent calls too: [`StdioClient::call_tool_pipelined`]).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};

/// The MCP protocol version the client asks for.
const PROTOCOL: &str = "2025-11-25";

/// A running MCP server on the other end of a pipe.
pub struct StdioClient {
    child: Child,
    stdin: Option<ChildStdin>,
    replies: Receiver<Value>,
    next_id: i64,
}

impl StdioClient {
    /// Spawn `cmd` (stdin and stdout are piped here; set stderr before) and
    /// initialize a session as client `name`.
    pub fn spawn(cmd: &mut Command, name: &str) -> anyhow::Result<Self> {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("spawn {:?}", cmd.get_program()))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("piped stdout")?;
        let (tx, replies) = std::sync::mpsc::channel::<Value>();
        std::thread::spawn(move || {
            // A re-executed test binary prints libtest text too (even before
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
        let mut client = StdioClient {
            child,
            stdin,
            replies,
            next_id: 1000,
        };
        client.send(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": PROTOCOL, "capabilities": {},
            "clientInfo": {"name": name, "version": "1"}}}),
        )?;
        client
            .reply(1, Duration::from_secs(60))
            .ok_or_else(|| anyhow!("the server did not answer `initialize` within 60 s"))?;
        client.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))?;
        Ok(client)
    }

    /// Send one JSON-RPC message.
    pub fn send(&mut self, message: &Value) -> anyhow::Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .context("the server's stdin is closed")?;
        writeln!(stdin, "{message}")?;
        stdin.flush()?;
        Ok(())
    }

    /// The reply to request `id`, or None after `timeout` (other messages
    /// are dropped).
    pub fn reply(&self, id: i64, timeout: Duration) -> Option<Value> {
        let t0 = Instant::now();
        while t0.elapsed() < timeout {
            if let Ok(v) = self.replies.recv_timeout(Duration::from_millis(200))
                && v["id"] == id
            {
                return Some(v);
            }
        }
        None
    }

    /// `tools/call` of `tool` with `arguments` under a fresh id; the whole
    /// JSON-RPC reply (a `result` or an `error`).
    pub fn call_tool(&mut self, tool: &str, arguments: Value) -> anyhow::Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": tool, "arguments": arguments}}))?;
        match self.reply(id, Duration::from_secs(60)) {
            Some(v) => Ok(v),
            None => bail!("no reply to `{tool}` within 60 s"),
        }
    }

    /// `n` `tools/call`s of `tool` with `arguments`, written to the server in
    /// one write (pipelined JSON-RPC) under fresh ids; the replies in the
    /// order they arrive. Fails when any is still unanswered after `timeout`.
    pub fn call_tool_pipelined(
        &mut self,
        n: usize,
        tool: &str,
        arguments: &Value,
        timeout: Duration,
    ) -> anyhow::Result<Vec<Value>> {
        let mut pending = std::collections::HashSet::with_capacity(n);
        let mut text = String::new();
        for _ in 0..n {
            self.next_id += 1;
            pending.insert(self.next_id);
            let request = json!({"jsonrpc": "2.0", "id": self.next_id, "method": "tools/call",
                "params": {"name": tool, "arguments": arguments}});
            text.push_str(&request.to_string());
            text.push('\n');
        }
        let stdin = self
            .stdin
            .as_mut()
            .context("the server's stdin is closed")?;
        stdin.write_all(text.as_bytes())?;
        stdin.flush()?;
        let deadline = Instant::now() + timeout;
        let mut replies = Vec::with_capacity(n);
        while !pending.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self.replies.recv_timeout(left).map_err(|_| {
                anyhow!(
                    "{} of {n} calls unanswered after {} s",
                    pending.len(),
                    timeout.as_secs()
                )
            })?;
            if v["id"].as_i64().is_some_and(|id| pending.remove(&id)) {
                replies.push(v);
            }
        }
        Ok(replies)
    }

    /// Close stdin and wait for the server to exit (killed after `grace`).
    pub fn close(mut self, grace: Duration) {
        drop(self.stdin.take());
        let t0 = Instant::now();
        while matches!(self.child.try_wait(), Ok(None)) {
            if t0.elapsed() > grace {
                let _ = self.child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.wait();
    }
}

impl Drop for StdioClient {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
