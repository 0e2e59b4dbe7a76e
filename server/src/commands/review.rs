//! `tollgate approvals list|show|approve|deny`: the reviewer's CLI over the
//! REST API (`/api/approvals`). What the server sends is printed escaped
//! (`gateway_core::text`): no stored value reaches the terminal raw.
//! `approve`/`deny` answer with a sentence (`--json` for the server's JSON);
//! the server is `--server`, else the `--config` file's public URL.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, bail};
use gateway_core::text::{escape_for_terminal as esc, json_for_terminal};
use serde_json::{Value, json};

use super::load_config;
use crate::cli::{ApprovalsCommand, Remote};

/// The server's base URL: `--server`, else the config's `server.public_url`,
/// else `http://<server.listen>` (an unspecified listen address such as
/// 0.0.0.0 is reached on loopback).
fn base_url(remote: &Remote) -> anyhow::Result<Result<String, ExitCode>> {
    if let Some(server) = &remote.server {
        return Ok(Ok(server.trim_end_matches('/').to_string()));
    }
    let Some(path) = &remote.config else {
        bail!(
            "no server to ask: give --server URL (or TOLLGATE_SERVER), or --config FILE to use its server.public_url (else server.listen)"
        )
    };
    let config = match load_config(path) {
        Ok(c) => c,
        Err(code) => return Ok(Err(code)),
    };
    if config.server.public_url.is_some() {
        return Ok(Ok(config.public_url()));
    }
    let listen = &config.server.listen;
    let listen = match listen.parse::<std::net::SocketAddr>() {
        Ok(a) if a.ip().is_unspecified() && a.is_ipv4() => format!("127.0.0.1:{}", a.port()),
        Ok(a) if a.ip().is_unspecified() => format!("[::1]:{}", a.port()),
        _ => listen.clone(),
    };
    Ok(Ok(format!("http://{listen}")))
}

/// What to ask under `/api/approvals`: path segments after it (each
/// percent-encoded as one segment) and query pairs (form-encoded).
struct ApiPath<'a> {
    segments: &'a [&'a str],
    query: &'a [(&'a str, &'a str)],
}

/// `<base>/api/approvals/<segments...>?<query>`, every part encoded by the
/// url crate (an id or state with `/`, `?` or `#` stays one part).
fn api_url(base: &str, path: &ApiPath<'_>) -> anyhow::Result<reqwest::Url> {
    let mut url = reqwest::Url::parse(base).with_context(|| format!("not a URL: {base}"))?;
    url.path_segments_mut()
        .map_err(|()| anyhow::anyhow!("not a base URL: {base}"))?
        .pop_if_empty()
        .extend(["api", "approvals"])
        .extend(path.segments);
    if !path.query.is_empty() {
        url.query_pairs_mut().extend_pairs(path.query);
    }
    Ok(url)
}

async fn send(
    base: &str,
    remote: &Remote,
    method: reqwest::Method,
    path: ApiPath<'_>,
    body: Option<Value>,
) -> anyhow::Result<(reqwest::StatusCode, Value)> {
    let url = api_url(base, &path)?;
    let mut req = crate::approvals::http_client(std::time::Duration::from_secs(30))
        .request(method, url.clone())
        .bearer_auth(&remote.token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = resp.status();
    let value = resp.json::<Value>().await.unwrap_or(Value::Null);
    Ok((status, value))
}

/// A text field of a server answer, escaped for the terminal.
fn field<'a>(v: &'a Value, key: &str, or: &'a str) -> std::borrow::Cow<'a, str> {
    esc(v[key].as_str().unwrap_or(or))
}

/// The sentence after a successful approve or deny.
fn verdict_sentence(approved: bool, value: &Value) -> String {
    let id = field(value, "id", "?");
    let state = value["state"].as_str().unwrap_or("?");
    let given = value["approvers"].as_array().map_or(0, Vec::len);
    let needed: u64 = value["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["count"].as_u64())
        .sum();
    match (approved, state) {
        (true, "approved") => format!(
            "approved {id} ({given} of {needed} approvals; the call runs when the agent's waiting call or approval_wait picks it up)"
        ),
        (true, "pending") => format!(
            "recorded your approval of {id} ({given} of {needed} approvals; still pending until the others approve)"
        ),
        (false, "denied") => format!("denied {id} (the call will not run)"),
        _ => format!(
            "{} recorded for {id}; the approval is now {}",
            if approved { "approval" } else { "denial" },
            esc(state)
        ),
    }
}

/// Run a reviewer command; exit 1 when the server refuses.
pub async fn run(command: ApprovalsCommand) -> anyhow::Result<ExitCode> {
    let remote = match &command {
        ApprovalsCommand::List { remote, .. }
        | ApprovalsCommand::Show { remote, .. }
        | ApprovalsCommand::Approve { remote, .. }
        | ApprovalsCommand::Deny { remote, .. } => remote,
    };
    let base = match base_url(remote)? {
        Ok(b) => b,
        Err(code) => return Ok(code),
    };
    let base = base.as_str();
    let (status, value) = match &command {
        ApprovalsCommand::List { state, .. } => {
            send(
                base,
                remote,
                reqwest::Method::GET,
                ApiPath {
                    segments: &[],
                    query: &[("state", state)],
                },
                None,
            )
            .await?
        }
        ApprovalsCommand::Show { id, .. } => {
            send(
                base,
                remote,
                reqwest::Method::GET,
                ApiPath {
                    segments: &[id],
                    query: &[],
                },
                None,
            )
            .await?
        }
        ApprovalsCommand::Approve { id, reason, .. } => {
            send(
                base,
                remote,
                reqwest::Method::POST,
                ApiPath {
                    segments: &[id, "approve"],
                    query: &[],
                },
                Some(json!({"reason": reason})),
            )
            .await?
        }
        ApprovalsCommand::Deny { id, reason, .. } => {
            let Some(reason) = reason else {
                bail!("a reason is required to deny: --reason \"...\"")
            };
            send(
                base,
                remote,
                reqwest::Method::POST,
                ApiPath {
                    segments: &[id, "deny"],
                    query: &[],
                },
                Some(json!({"reason": reason})),
            )
            .await?
        }
    };
    let json_asked = matches!(
        command,
        ApprovalsCommand::Approve { json: true, .. } | ApprovalsCommand::Deny { json: true, .. }
    );
    if !status.is_success()
        && !json_asked
        && let Some(message) = value["message"].as_str()
    {
        eprintln!("server answered {status}: {}", esc(message));
        return Ok(ExitCode::from(1));
    }
    let mut out = std::io::stdout().lock();
    match &command {
        ApprovalsCommand::List { state, .. } if status.is_success() => {
            let approvals = value
                .get("approvals")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default();
            if approvals.is_empty() {
                if state == "all" {
                    writeln!(out, "no approvals")?;
                } else {
                    writeln!(out, "no {} approvals", esc(state))?;
                }
            }
            for a in approvals {
                writeln!(
                    out,
                    "{}  {:<9} {:<16} {:<10} {}",
                    field(a, "id", "?"),
                    field(a, "state", "?"),
                    esc(a["requester"]["sub"].as_str().unwrap_or("?")),
                    field(a, "connection", "-"),
                    field(a, "summary_text", "")
                )?;
            }
        }
        ApprovalsCommand::Approve { json: false, .. } if status.is_success() => {
            writeln!(out, "{}", verdict_sentence(true, &value))?;
        }
        ApprovalsCommand::Deny { json: false, .. } if status.is_success() => {
            writeln!(out, "{}", verdict_sentence(false, &value))?;
        }
        _ => writeln!(
            out,
            "{}",
            json_for_terminal(&serde_json::to_string_pretty(&value)?)
        )?,
    }
    if status.is_success() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("server answered {status}");
        Ok(ExitCode::from(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_urls_encode_each_part() {
        let url = |base: &str, segments: &[&str], query: &[(&str, &str)]| {
            api_url(base, &ApiPath { segments, query })
                .unwrap()
                .to_string()
        };
        assert_eq!(
            url("http://h:1", &["apr_1", "approve"], &[]),
            "http://h:1/api/approvals/apr_1/approve"
        );
        assert_eq!(
            url("http://h:1/base/", &["a/b?c#d"], &[]),
            "http://h:1/base/api/approvals/a%2Fb%3Fc%23d"
        );
        assert_eq!(
            url("http://h:1", &[], &[("state", "all&x=1")]),
            "http://h:1/api/approvals?state=all%26x%3D1"
        );
        assert!(
            api_url(
                "not a url",
                &ApiPath {
                    segments: &[],
                    query: &[]
                }
            )
            .is_err()
        );
    }

    #[test]
    fn sentences_count_approvals_and_escape_the_id() {
        let mut a = json!({"id": "apr_1", "state": "pending", "approvers": ["bob"],
            "required": [{"group": "dba", "count": 1}, {"group": "sec", "count": 1}]});
        assert_eq!(
            verdict_sentence(true, &a),
            "recorded your approval of apr_1 (1 of 2 approvals; still pending until the others approve)"
        );
        a["state"] = json!("approved");
        a["approvers"] = json!(["bob", "eve"]);
        a["id"] = json!("apr_1\u{1b}[2J");
        assert_eq!(
            verdict_sentence(true, &a),
            "approved apr_1\\u{1b}[2J (2 of 2 approvals; the call runs when the agent's waiting call or approval_wait picks it up)"
        );
        a["state"] = json!("expired");
        assert!(verdict_sentence(true, &a).ends_with("the approval is now expired"));
    }
}
