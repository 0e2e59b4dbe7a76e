//! From a finished command to what the pipeline gets: the contract's result
//! (`{exit_code, stdout, stderr, truncated, duration_ms}`) with the field
//! origins that let `[[masking.fields]]` rules name `stdout` and `stderr`,
//! and the call's recording, cut on line boundaries so the detectors see
//! every line whole (a value split across two network chunks is still
//! found).

use std::time::Duration;

use gateway_core::connector::{FieldOrigin, FieldPath, ToolOutput};
use gateway_core::recording::{RecordedOutput, Recording};
use serde_json::json;

use crate::transport::{ExecOutcome, OutputChunk, Stream};

/// Terminal size the recording declares.
const WIDTH: u16 = 120;
const HEIGHT: u16 = 40;
/// A line longer than this is cut into several events (it is still masked
/// piece by piece; such lines are rare in command output).
const MAX_LINE: usize = 64 * 1024;

/// The stream's field name (`stdout`, `stderr`).
pub fn field(stream: &Stream) -> FieldPath {
    FieldPath::new([match stream {
        Stream::Stdout => "stdout",
        Stream::Stderr => "stderr",
    }])
}

/// Text of output bytes: valid UTF-8 as is, anything else lossily (a
/// multi-byte character cut by the cap at the end is dropped).
pub fn text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(e) if e.error_len().is_none() => {
            String::from_utf8_lossy(&bytes[..e.valid_up_to()]).into_owned()
        }
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Cut the timed chunks into events that end on a line boundary, per
/// stream: bytes are held until their line ends (or the stream ends, or
/// the line passes [`MAX_LINE`]), and the event carries the time of the
/// chunk that completed it.
pub fn line_events(chunks: &[OutputChunk]) -> Vec<RecordedOutput> {
    let mut events = Vec::new();
    let mut pending: [(Vec<u8>, Duration); 2] =
        [(Vec::new(), Duration::ZERO), (Vec::new(), Duration::ZERO)];
    let slot = |s: &Stream| match s {
        Stream::Stdout => 0,
        Stream::Stderr => 1,
    };
    for chunk in chunks {
        let i = slot(&chunk.stream);
        let (buf, at) = &mut pending[i];
        buf.extend_from_slice(&chunk.data);
        *at = chunk.at;
        // Everything up to the last newline goes out now.
        let cut = match buf.iter().rposition(|b| *b == b'\n') {
            Some(p) => Some(p + 1),
            None if buf.len() > MAX_LINE => Some(buf.len()),
            None => None,
        };
        if let Some(cut) = cut {
            let rest = buf.split_off(cut);
            events.push(RecordedOutput {
                at: *at,
                field: field(&chunk.stream),
                text: text(buf),
            });
            *buf = rest;
        }
    }
    for (i, (buf, at)) in pending.into_iter().enumerate() {
        if !buf.is_empty() {
            let stream = if i == 0 {
                Stream::Stdout
            } else {
                Stream::Stderr
            };
            events.push(RecordedOutput {
                at,
                field: field(&stream),
                text: text(&buf),
            });
        }
    }
    events.sort_by_key(|e| e.at);
    events
}

/// The result and recording of a finished command.
pub fn tool_output(
    outcome: ExecOutcome,
    command: &str,
    title: &str,
    started_unix: i64,
) -> ToolOutput {
    let recording = Recording {
        width: WIDTH,
        height: HEIGHT,
        timestamp: started_unix,
        command: command.to_string(),
        title: title.to_string(),
        events: line_events(&outcome.chunks),
    };
    ToolOutput {
        value: json!({
            "exit_code": outcome.exit_code,
            "stdout": text(&outcome.stdout),
            "stderr": text(&outcome.stderr),
            "truncated": outcome.truncated,
            "duration_ms": u64::try_from(outcome.duration.as_millis()).unwrap_or(u64::MAX),
        }),
        items: None,
        item_list: None,
        truncated: outcome.truncated,
        field_origins: vec![
            FieldOrigin::new("/stdout", FieldPath::new(["stdout"])),
            FieldOrigin::new("/stderr", FieldPath::new(["stderr"])),
        ],
        item_guards: vec![],
        recording: Some(recording),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(ms: u64, stream: Stream, data: &str) -> OutputChunk {
        OutputChunk {
            at: Duration::from_millis(ms),
            stream,
            data: data.as_bytes().to_vec(),
        }
    }

    #[test]
    fn a_value_split_across_chunks_lands_in_one_event() {
        let chunks = vec![
            chunk(1, Stream::Stdout, "card 4111 1111 "),
            chunk(2, Stream::Stderr, "warn"),
            chunk(3, Stream::Stdout, "1111 1111\nnext"),
            chunk(4, Stream::Stderr, "ing\n"),
        ];
        let events = line_events(&chunks);
        let texts: Vec<(&str, String)> = events
            .iter()
            .map(|e| (e.text.as_str(), e.field.to_string()))
            .collect();
        assert_eq!(
            texts,
            [
                ("card 4111 1111 1111 1111\n", "stdout".to_string()),
                ("next", "stdout".to_string()),
                ("warning\n", "stderr".to_string()),
            ]
        );
    }

    #[test]
    fn a_cut_multibyte_character_at_the_end_is_dropped() {
        let mut b = "é".repeat(3).into_bytes();
        b.pop();
        assert_eq!(text(&b), "éé");
        assert_eq!(text(b"a\xffb"), "a\u{fffd}b");
    }
}
