//! `tollgate demo`: a self-contained demo that needs nothing but the binary.
//! Creates (once) a SQLite shop with realistic fake PII, a config, policies
//! (with their `policy test` cases) and an HS256 secret in the data dir, then
//! serves and prints the MCP URL, three tokens (agent, reviewer, auditor) and
//! a copy-paste client snippet.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow};
use rand::Rng;
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

use super::serve::serve_http;
use crate::config::Config;
use crate::{app, logging};

const DEMO_POLICY: &str = include_str!("../../../examples/demo/policies/demo.cedar");
const DEMO_POLICY_TESTS: &str = include_str!("../../../examples/demo/policies/tests/demo.jsonl");
const DANGEROUS_FUNCTIONS: &str = include_str!("../../../policies/dangerous-functions.cedar");

const FIRST: [&str; 16] = [
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret", "Dennis",
    "Radia", "Linus", "Hedy", "Tim", "Sophie", "Niklaus",
];
const LAST: [&str; 16] = [
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Allen",
    "Thompson",
    "Hamilton",
    "Ritchie",
    "Perlman",
    "Torvalds",
    "Lamarr",
    "Berners-Lee",
    "Wilson",
    "Wirth",
];
const CITIES: [&str; 8] = [
    "Berlin",
    "Lisbon",
    "Austin",
    "Toronto",
    "Osaka",
    "Dublin",
    "Lyon",
    "Melbourne",
];
const STATUS: [&str; 4] = ["paid", "shipped", "pending", "refunded"];
/// Luhn-valid test card numbers (public test numbers of card networks).
const CARDS: [&str; 4] = [
    "4111 1111 1111 1111",
    "5555 5555 5555 4444",
    "3782 822463 10005",
    "6011 1111 1111 1117",
];

fn config_text(listen: &str, dir: &Path) -> String {
    format!(
        r#"# Written by `tollgate demo`. Edit freely; delete the folder to start over.
[server]
listen = "{listen}"
public_url = "http://{listen}"
data_dir = "data"

[auth]
issuer = "tollgate-demo"
audience = "tollgate"
hs256_secret = "${{file:{secret}}}"

[policy]
dir = "policies"
mode = "enforce"

[approval]
wait_seconds = 20
ttl = "1h"

[stdio]
sub = "local-agent"
groups = ["agents"]

[[connection]]
name = "demo"
kind = "sqlite"
path = "demo.db"
description = "Demo shop: customers (fake PII) and their orders"
statement_timeout = "5s"
max_rows = 1000

# No masking rule is needed: at start (and every hour) each column is sampled,
# and a column whose values hold emails, SSNs, cards... is classified as that
# type; every value computed from it (hex(email), substr(ssn, 1, 3)...) comes
# back masked whole. See it with: tollgate masking classify --config <this file>
# [masking.classification]
# exempt = ["demo.main.customers.city"]
# pin = [{{ connection = "demo", column = "main.customers.name", type = "PERSON" }}]
"#,
        secret = dir.join("secret.key").display()
    )
}

async fn create_database(path: &Path) -> anyhow::Result<()> {
    let opts = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true);
    let mut conn = SqliteConnection::connect_with(&opts).await?;
    let mut tx = conn.begin().await?;
    sqlx::query(
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL, phone TEXT, \
         ssn TEXT, card_number TEXT, city TEXT, created_at TEXT NOT NULL)",
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id), \
         amount NUMERIC NOT NULL, status TEXT NOT NULL, note TEXT, created_at TEXT NOT NULL)",
    )
    .execute(&mut *tx)
    .await?;
    for i in 0..48usize {
        let (first, last) = (FIRST[i % 16], LAST[(i * 7 + 3) % 16]);
        let email = format!(
            "{}.{}{}@example.com",
            first.to_lowercase(),
            last.to_lowercase().replace('-', ""),
            i
        );
        let phone = format!("+1 415 555 {:04}", 1000 + i * 37);
        let ssn = format!("{:03}-{:02}-{:04}", 123 + i, 45 + (i % 50), 1000 + i * 111);
        sqlx::query("INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
            .bind(i as i64 + 1)
            .bind(format!("{first} {last}"))
            .bind(email)
            .bind(phone)
            .bind(ssn)
            .bind(CARDS[i % 4])
            .bind(CITIES[i % 8])
            .bind(format!(
                "2026-{:02}-{:02}T09:{:02}:00Z",
                1 + i % 10,
                1 + i % 27,
                i % 60
            ))
            .execute(&mut *tx)
            .await?;
    }
    for i in 0..200usize {
        sqlx::query("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?)")
            .bind(i as i64 + 1001)
            .bind((i * 13 % 48) as i64 + 1)
            .bind(format!("{}.{:02}", 5 + (i * 37) % 480, (i * 7) % 100))
            .bind(STATUS[i % 4])
            .bind(if i % 17 == 0 {
                Some("customer asked for a callback")
            } else {
                None
            })
            .bind(format!(
                "2026-{:02}-{:02}T{:02}:30:00Z",
                1 + i % 11,
                1 + i % 28,
                i % 24
            ))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

fn write_if_missing(path: &Path, text: &str) -> anyhow::Result<()> {
    if !path.exists() {
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Lay out the demo folder (idempotent) and return the config path.
pub async fn prepare(listen: &str, data_dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(data_dir.join("policies/tests"))
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let dir = std::fs::canonicalize(data_dir)?;
    let secret = dir.join("secret.key");
    if !secret.exists() {
        let bytes: [u8; 32] = rand::rng().random();
        std::fs::write(&secret, hex::encode(bytes))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    let db = dir.join("demo.db");
    if !db.exists() {
        create_database(&db)
            .await
            .context("creating the demo database")?;
    }
    write_if_missing(&dir.join("policies/demo.cedar"), DEMO_POLICY)?;
    write_if_missing(
        &dir.join("policies/dangerous-functions.cedar"),
        DANGEROUS_FUNCTIONS,
    )?;
    // Cases for `tollgate policy test --config <data dir>/tollgate.toml`.
    write_if_missing(&dir.join("policies/tests/demo.jsonl"), DEMO_POLICY_TESTS)?;
    let config = dir.join("tollgate.toml");
    // The listen address may change between runs: rewrite the config.
    std::fs::write(&config, config_text(listen, &dir))?;
    Ok(config)
}

/// The demo's gateway, once its columns are classified (classification then
/// runs again every interval in the background): its first call already
/// gets `hex(email)` masked, with no rule configured.
pub async fn gateway(config: &Config) -> anyhow::Result<std::sync::Arc<gateway_core::Gateway>> {
    let gateway = app::gateway(config).await?;
    let first = crate::classify::spawn(
        gateway.clone(),
        crate::classify::classifier(config, &gateway)?,
    );
    let _ = first.await;
    Ok(gateway)
}

/// Prepare, print the banner, serve.
pub async fn run(
    listen: &str,
    data_dir: &Path,
    log_format: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let config_path = prepare(listen, data_dir).await?;
    let config =
        Config::load(&config_path).map_err(|e| anyhow!("{}", gateway_core::text::lines(&e)))?;
    logging::init(
        log_format.or(config.logging.format.as_deref()),
        Some("warn,tollgate=info"),
    );
    let auth = app::authenticator(&config)?.context("demo config has no hs256 secret")?;
    let day = Duration::from_secs(24 * 3600);
    let token = |sub: &str, group: &str| {
        auth.mint_hs256(sub, &[group.to_string()], day)
            .map_err(|e| anyhow!("{e}"))
    };
    let (agent, reviewer, auditor) = (
        token("agent-1", "agents")?,
        token("rita", "reviewers")?,
        token("audra", "auditors")?,
    );
    let gateway = gateway(&config).await?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let banner = {
        let config_path = config_path.clone();
        async move {
            let Ok(addr) = rx.await else { return };
            let base = format!("http://{addr}");
            println!(
                r#"
Tollgate demo is running.
  MCP endpoint : {base}/mcp      (streamable HTTP; bearer token required)
  Review UI    : {base}/ui
  Config       : {config}

Tokens (valid 24h):
  agent    (groups: agents)    {agent}
  reviewer (groups: reviewers) {reviewer}
  auditor  (groups: auditors)  {auditor}

Try it with the official Python MCP SDK (pip install mcp==2.3.0):

  import asyncio, httpx2
  from mcp import Client
  from mcp.client.streamable_http import streamable_http_client
  async def main():
      http = httpx2.AsyncClient(headers={{"Authorization": "Bearer {agent}"}})
      async with http, Client(streamable_http_client("{base}/mcp", http_client=http)) as c:
          res = await c.call_tool("sql_query", {{"connection": "demo", "sql": "SELECT name, email, city FROM customers LIMIT 3"}})
          print(res.structured_content)
  asyncio.run(main())

Approvals: `DELETE FROM orders WHERE id = 1001` waits for one reviewer. Open {base}/ui, log in
with the reviewer token and approve, or: tollgate approvals list --server {base} --token <reviewer>
A delete may change at most 10 rows (`@max_affected_rows`): `DELETE FROM orders WHERE id > 0`,
even approved, is rolled back with an error.

Or over stdio from a desktop client: tollgate serve --stdio --config {config}
Audit log: tollgate audit list --config {config}   |   verify: tollgate audit verify --config {config}
Press Ctrl-C to stop."#,
                config = config_path.display()
            );
        }
    };
    tokio::spawn(banner);
    serve_http(&config, gateway, Some(tx)).await
}
