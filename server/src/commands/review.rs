//! `tollgate approvals list|show|approve|deny`: the reviewer's CLI over the
//! REST API (`/api/approvals`). What the server sends is printed escaped
//! (`gateway_core::text`): no stored value reaches the terminal raw.

use std::process::ExitCode;

use anyhow::{Context, bail};
use gateway_core::text::{escape_for_terminal as esc, json_for_terminal};
use serde_json::{Value, json};

use crate::cli::{ApprovalsCommand, Remote};

async fn send(
    remote: &Remote,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<(reqwest::StatusCode, Value)> {
    let url = format!(
        "{}/api/approvals{}",
        remote.server.trim_end_matches('/'),
        path
    );
    let mut req = crate::approvals::http_client(std::time::Duration::from_secs(30))
        .request(method, &url)
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

/// Run a reviewer command; exit 1 when the server refuses.
pub async fn run(command: ApprovalsCommand) -> anyhow::Result<ExitCode> {
    let (status, value) = match &command {
        ApprovalsCommand::List { remote, state } => {
            send(
                remote,
                reqwest::Method::GET,
                &format!("?state={state}"),
                None,
            )
            .await?
        }
        ApprovalsCommand::Show { id, remote } => {
            send(remote, reqwest::Method::GET, &format!("/{id}"), None).await?
        }
        ApprovalsCommand::Approve { id, remote, reason } => {
            send(
                remote,
                reqwest::Method::POST,
                &format!("/{id}/approve"),
                Some(json!({"reason": reason})),
            )
            .await?
        }
        ApprovalsCommand::Deny { id, remote, reason } => {
            let Some(reason) = reason else {
                bail!("a reason is required to deny: --reason \"...\"")
            };
            send(
                remote,
                reqwest::Method::POST,
                &format!("/{id}/deny"),
                Some(json!({"reason": reason})),
            )
            .await?
        }
    };
    if let ApprovalsCommand::List { .. } = command
        && status.is_success()
    {
        for a in value
            .get("approvals")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            println!(
                "{}  {:<9} {:<16} {:<10} {}",
                esc(a["id"].as_str().unwrap_or("?")),
                esc(a["state"].as_str().unwrap_or("?")),
                esc(a["requester"]["sub"].as_str().unwrap_or("?")),
                esc(a["connection"].as_str().unwrap_or("-")),
                esc(a["summary_text"].as_str().unwrap_or(""))
            );
        }
    } else {
        println!(
            "{}",
            json_for_terminal(&serde_json::to_string_pretty(&value)?)
        );
    }
    if status.is_success() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("server answered {status}");
        Ok(ExitCode::from(1))
    }
}
