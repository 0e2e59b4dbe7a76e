//! Terminal recordings of a call's output, family-neutral: a connector whose
//! target produces a stream of output (SSH commands; later exec sessions)
//! hands the pipeline a [`Recording`] of timed output events. The pipeline
//! masks every event the way the result was masked for the record, renders
//! it as asciicast v2 ([`render_asciicast`]), stores it beside the audit
//! store (content-addressed by its SHA-256) *before* the event that names it,
//! and records `recording: {sha256, bytes}` in the audit event, so a changed
//! or missing recording fails `audit verify`.
//!
//! Also here: [`ProgressSender`], how a long execution reports its progress
//! back to the caller (MCP progress notifications) without the connector
//! knowing the transport.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::connector::FieldPath;

/// One chunk of output at a moment of the call.
///
/// Connectors emit events on line boundaries (a partial last line only at
/// the end, or when a line grows past their buffer): the detectors mask each
/// event on its own, so a value split across two events would be missed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedOutput {
    /// Time since the recording started.
    pub at: Duration,
    /// The family's name of the stream this came from (SSH: `["stdout"]`
    /// or `["stderr"]`), for field masking rules.
    pub field: FieldPath,
    /// The text, as the target produced it (raw; the pipeline masks it).
    pub text: String,
}

/// A call's output as a terminal would have shown it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Recording {
    /// Terminal width in columns (asciicast header).
    pub width: u16,
    /// Terminal height in rows.
    pub height: u16,
    /// When the recording started, Unix seconds.
    pub timestamp: i64,
    /// What ran, as reviewers see it (masked by the pipeline).
    pub command: String,
    /// A short title, e.g. `ssh web-1`.
    pub title: String,
    /// The output events, in time order.
    pub events: Vec<RecordedOutput>,
}

/// What the audit event says about its recording: the stored file's
/// SHA-256 (lowercase hex) and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingRef {
    /// SHA-256 of the stored asciicast file, lowercase hex.
    pub sha256: String,
    /// Size of the stored file in bytes.
    pub bytes: u64,
}

/// The recording as an asciicast v2 file: a header line, then one
/// `[seconds, "o", text]` line per event. Event texts must already be
/// masked.
pub fn render_asciicast(recording: &Recording) -> Vec<u8> {
    let mut header = json!({
        "version": 2,
        "width": recording.width.max(1),
        "height": recording.height.max(1),
        "timestamp": recording.timestamp,
    });
    if !recording.command.is_empty() {
        header["command"] = Value::String(recording.command.clone());
    }
    if !recording.title.is_empty() {
        header["title"] = Value::String(recording.title.clone());
    }
    let mut out = header.to_string().into_bytes();
    out.push(b'\n');
    for e in &recording.events {
        // Terminals want CR LF; a recording of a no-pty command has bare LF.
        let text = e.text.replace("\r\n", "\n").replace('\n', "\r\n");
        let line = json!([(e.at.as_micros() as f64) / 1e6, "o", text]);
        out.extend_from_slice(line.to_string().as_bytes());
        out.push(b'\n');
    }
    out
}

/// A recording rendered and hashed, ready to be stored.
#[derive(Debug, Clone)]
pub struct RenderedRecording {
    /// What the audit event records.
    pub reference: RecordingRef,
    /// The asciicast file.
    pub body: Vec<u8>,
}

impl RenderedRecording {
    /// Render `recording` (already masked) and hash it.
    pub fn new(recording: &Recording) -> Self {
        let body = render_asciicast(recording);
        RenderedRecording {
            reference: RecordingRef {
                sha256: crate::audit::sha256_hex(&body),
                bytes: body.len() as u64,
            },
            body,
        }
    }
}

/// Where a running execution reports progress (elapsed time, bytes so
/// far). The pipeline forwards each message to the caller's transport (MCP
/// `notifications/progress`). Messages must carry no target data: a
/// connector reports sizes and times, never output.
#[derive(Debug, Clone)]
pub struct ProgressSender(mpsc::UnboundedSender<String>);

impl ProgressSender {
    /// A sender and the receiver the pipeline drains.
    pub fn channel() -> (ProgressSender, mpsc::UnboundedReceiver<String>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (ProgressSender(tx), rx)
    }

    /// Report `message`; dropped silently once the call is over.
    pub fn report(&self, message: impl Into<String>) {
        let _ = self.0.send(message.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asciicast_v2_header_and_events() {
        let r = Recording {
            width: 80,
            height: 24,
            timestamp: 1_700_000_000,
            command: "uname -a".into(),
            title: "ssh web-1".into(),
            events: vec![
                RecordedOutput {
                    at: Duration::from_millis(1500),
                    field: FieldPath::new(["stdout"]),
                    text: "Linux\n".into(),
                },
                RecordedOutput {
                    at: Duration::from_millis(2000),
                    field: FieldPath::new(["stderr"]),
                    text: "warn \"x\"".into(),
                },
            ],
        };
        let body = render_asciicast(&r);
        let text = String::from_utf8(body).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["version"], 2);
        assert_eq!(lines[0]["width"], 80);
        assert_eq!(lines[0]["command"], "uname -a");
        assert_eq!(lines[1], json!([1.5, "o", "Linux\r\n"]));
        assert_eq!(lines[2], json!([2.0, "o", "warn \"x\""]));
        let rendered = RenderedRecording::new(&r);
        assert_eq!(rendered.reference.bytes, text.len() as u64);
        assert_eq!(rendered.reference.sha256.len(), 64);
    }
}
