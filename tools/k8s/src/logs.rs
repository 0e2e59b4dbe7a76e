//! `k8s_logs`: a container's log through the API server's `pods/log`
//! subresource (which the API server proxies from the node's kubelet).
//!
//! Analysis checks the names before policy and yields one `k8s:logs` request
//! on the pod. Execution streams the log and stops reading at the byte cap
//! (the gateway's, at most [`MAX_LOG_BYTES`]): the stream is dropped there,
//! which closes the connection, and the result says `truncated: true`. The
//! text is a plain string of the result, so the gateway's detectors mask
//! what it holds (credentials, emails, keys...) like any other output.

use std::any::Any;
use std::collections::BTreeSet;

use futures::AsyncReadExt;
use gateway_core::connector::{
    AnalysisError, ExecLimits, ExecuteError, Plan, ToolOutput, ToolSpec,
};
use gateway_core::secret::Secret;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams};
use serde::Deserialize;
use serde_json::json;

use crate::client;
use crate::pod::PodTarget;

/// Most log bytes one call returns, whatever the gateway allows.
pub const MAX_LOG_BYTES: usize = 1 << 20;
/// Largest `tail_lines` accepted.
pub const MAX_TAIL_LINES: i64 = 1_000_000;
/// Largest `since_seconds` accepted (a year).
pub const MAX_SINCE_SECONDS: i64 = 366 * 24 * 3600;

/// `k8s_logs` arguments.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsArgs {
    /// Routed by the gateway.
    #[allow(dead_code, reason = "read by the router")]
    pub connection: String,
    /// The pod's namespace.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Container (None: the pod's only container).
    pub container: Option<String>,
    /// Only the last this many lines.
    pub tail_lines: Option<i64>,
    /// Only lines newer than this many seconds.
    pub since_seconds: Option<i64>,
    /// The previous (terminated) instance of the container.
    #[serde(default)]
    pub previous: bool,
}

/// What analysis hands execution.
#[derive(Debug, Clone)]
pub struct Prepared {
    target: PodTarget,
    tail_lines: Option<i64>,
    since_seconds: Option<i64>,
    previous: bool,
}

/// The tool's schemas.
pub fn spec() -> ToolSpec {
    ToolSpec {
        name: "k8s_logs".into(),
        description: "Read a pod container's log (like `kubectl logs`, never following). `tail_lines` and `since_seconds` narrow it; the text is capped by the gateway's byte cap (`truncated: true` past it) and passes the detectors.".into(),
        input_schema: crate::pod::schema(json!({
            "type": "object",
            "properties": {
                "connection": {"type": "string", "description": "Connection name (see list_connections)."},
                "namespace": {"type": "string"},
                "pod": {"type": "string"},
                "container": {"type": "string", "description": "Required when the pod has several containers."},
                "tail_lines": {"type": "integer", "minimum": 0, "maximum": MAX_TAIL_LINES, "description": "Only the last this many lines."},
                "since_seconds": {"type": "integer", "minimum": 1, "maximum": MAX_SINCE_SECONDS, "description": "Only lines logged in the last this many seconds."},
                "previous": {"type": "boolean", "description": "The previous, terminated instance of the container."}
            },
            "required": ["connection", "namespace", "pod"],
            "additionalProperties": false
        })),
        output_schema: crate::pod::schema(json!({
            "type": "object",
            "properties": {
                "text": {"type": "string"},
                "truncated": {"type": "boolean"}
            },
            "required": ["text", "truncated"]
        })),
        read_only: true,
    }
}

/// Analyse a `k8s_logs` call on connection `connection`; `wrap` makes
/// the plan's `prepared` value of what execution receives.
pub fn analyse(
    connection: &str,
    namespaces: Option<&BTreeSet<String>>,
    a: LogsArgs,
    wrap: impl FnOnce(Prepared) -> Box<dyn Any + Send + Sync>,
) -> Result<Plan, AnalysisError> {
    let target = PodTarget::check(
        connection,
        namespaces,
        &a.namespace,
        &a.pod,
        a.container.as_deref(),
    )?;
    if a.tail_lines
        .is_some_and(|n| !(0..=MAX_TAIL_LINES).contains(&n))
    {
        return Err(AnalysisError::InvalidArguments(format!(
            "`tail_lines` must be between 0 and {MAX_TAIL_LINES}"
        )));
    }
    if a.since_seconds
        .is_some_and(|n| !(1..=MAX_SINCE_SECONDS).contains(&n))
    {
        return Err(AnalysisError::InvalidArguments(format!(
            "`since_seconds` must be between 1 and {MAX_SINCE_SECONDS}"
        )));
    }
    let mut code = format!("logs {}", target.place());
    if let Some(n) = a.tail_lines {
        code.push_str(&format!(" tail_lines: {n}"));
    }
    if let Some(n) = a.since_seconds {
        code.push_str(&format!(" since_seconds: {n}"));
    }
    if a.previous {
        code.push_str(" previous");
    }
    Ok(Plan {
        requests: vec![target.request(connection, "k8s:logs", "")],
        review: target.review(format!("read the log of {}", target.place()), "logs", code),
        read_only: true,
        prepared: wrap(Prepared {
            target,
            tail_lines: a.tail_lines,
            since_seconds: a.since_seconds,
            previous: a.previous,
        }),
    })
}

/// Read the log, stopping at the byte cap.
pub async fn run(
    client: &kube::Client,
    token: &Secret,
    p: &Prepared,
    limits: &ExecLimits,
) -> Result<ToolOutput, ExecuteError> {
    let cap = limits.bytes_within(MAX_LOG_BYTES);
    let api: Api<Pod> = Api::namespaced(client.clone(), &p.target.namespace);
    let lp = LogParams {
        container: p.target.container.clone(),
        tail_lines: p.tail_lines,
        since_seconds: p.since_seconds,
        previous: p.previous,
        // The kubelet may stop at the cap too; reading stops there anyway.
        limit_bytes: i64::try_from(cap).ok().map(|c| c.saturating_add(1)),
        ..LogParams::default()
    };
    let (bytes, truncated) = {
        let stream = api
            .log_stream(&p.target.pod, &lp)
            .await
            .map_err(|e| client::target_error(e, token))?;
        let mut stream = std::pin::pin!(stream);
        read_capped(&mut stream, cap).await.map_err(|e| {
            ExecuteError::Unavailable(client::scrub(format!("the log stream broke: {e}"), token))
        })?
        // The stream is dropped here, closing the connection: nothing past
        // the cap is read.
    };
    let text = utf8_prefix(&bytes, truncated);
    let lines = text.lines().count() as u64;
    Ok(ToolOutput {
        value: json!({"text": text, "truncated": truncated}),
        items: Some(lines),
        item_list: None,
        truncated,
        field_origins: vec![],
        item_guards: vec![],
        recording: None,
    })
}

/// Read at most `cap` bytes; true when there was more.
pub async fn read_capped<R: futures::AsyncRead + Unpin>(
    r: &mut R,
    cap: usize,
) -> std::io::Result<(Vec<u8>, bool)> {
    let mut out = Vec::with_capacity(cap.min(64 * 1024));
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let n = r.read(&mut chunk).await?;
        if n == 0 {
            return Ok((out, false));
        }
        out.extend_from_slice(&chunk[..n]);
        if out.len() > cap {
            out.truncate(cap);
            return Ok((out, true));
        }
    }
}

/// The bytes as text: a character cut by the cap is dropped, any other
/// invalid sequence shown as U+FFFD.
pub fn utf8_prefix(bytes: &[u8], truncated: bool) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(e) if truncated && e.error_len().is_none() => {
            String::from_utf8_lossy(&bytes[..e.valid_up_to()]).into_owned()
        }
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: serde_json::Value) -> LogsArgs {
        crate::tools::parse(&v).unwrap()
    }

    #[test]
    fn a_logs_call_asks_about_its_pod() {
        let ns: BTreeSet<String> = ["shop".to_string()].into();
        let plan = analyse(
            "c",
            Some(&ns),
            args(json!({"connection": "c", "namespace": "shop", "pod": "web-1", "container": "app", "tail_lines": 10})),
            |p| Box::new(p),
        )
        .unwrap();
        assert_eq!(plan.requests.len(), 1);
        let r = &plan.requests[0];
        assert_eq!(r.action, "k8s:logs");
        assert_eq!(
            r.resource.entity_uid(),
            r#"Tollgate::K8sObject::"c/shop/Pod/web-1""#
        );
        assert_eq!(
            crate::pod::context_string(r, "kind").as_deref(),
            Some("Pod")
        );
        assert_eq!(crate::pod::context_string(r, "argv").as_deref(), Some(""));
        assert!(plan.read_only);
    }

    #[test]
    fn bad_names_and_ranges_are_refused_before_policy() {
        let ns: BTreeSet<String> = ["shop".to_string()].into();
        for (v, want) in [
            (json!({"namespace": "web"}), "outside the namespaces"),
            (json!({"namespace": "../x"}), "not a valid"),
            (json!({"pod": "a/b"}), "`pod` is not a valid"),
            (json!({"pod": "--server=x"}), "`pod` is not a valid"),
            (json!({"container": "App"}), "`container` is not"),
            (json!({"container": "a.b"}), "`container` is not"),
            (json!({"tail_lines": -1}), "tail_lines"),
            (json!({"since_seconds": 0}), "since_seconds"),
        ] {
            let mut full = json!({"connection": "c", "namespace": "shop", "pod": "web"});
            for (k, x) in v.as_object().unwrap() {
                full[k] = x.clone();
            }
            let e = analyse("c", Some(&ns), args(full.clone()), |p| Box::new(p))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{full}: {e}");
        }
        let e = crate::tools::parse::<LogsArgs>(
            &json!({"connection": "c", "namespace": "shop", "pod": "web", "follow": true}),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown field"), "{e}");
    }

    #[test]
    fn a_cut_character_is_dropped() {
        let s = "ab€".as_bytes();
        assert_eq!(utf8_prefix(&s[..3], true), "ab");
        assert_eq!(utf8_prefix(s, false), "ab€");
        assert_eq!(utf8_prefix(&[b'a', 0xff, b'b'], false), "a\u{fffd}b");
    }

    #[tokio::test]
    async fn reading_stops_at_the_cap() {
        let data = vec![b'x'; 100_000];
        let mut r = futures::io::Cursor::new(data.clone());
        let (out, truncated) = read_capped(&mut r, 1000).await.unwrap();
        assert_eq!((out.len(), truncated), (1000, true));
        // Read no more than one chunk past the cap.
        assert!(r.position() <= 1000 + 16 * 1024);
        let mut r = futures::io::Cursor::new(data);
        let (out, truncated) = read_capped(&mut r, 100_000).await.unwrap();
        assert_eq!((out.len(), truncated), (100_000, false));
    }
}
