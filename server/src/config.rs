//! The TOML config of the contract: sections, defaults, secret references and
//! validation. Every problem is reported as `file:line:col: message`; unknown
//! keys are errors. Secrets (`${env:NAME}`, `${file:PATH}`) are resolved here
//! or by the connector that owns them, and never printed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gateway_core::duration::{self, HumanDuration};
use gateway_core::limits::{CallLimits, LimitRule, Rate, Who};
use gateway_core::mask::MaskConfig;
use gateway_core::policy::Mode;
use gateway_core::text::line_col;
use serde::Deserialize;
use toml::Spanned;

/// A config problem, printable as `file:line:col: message`.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{path}:{line}:{col}: {message}")]
pub struct ConfigError {
    /// Config file.
    pub path: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// The whole config file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[server]`.
    #[serde(default)]
    pub server: ServerSection,
    /// `[auth]`.
    #[serde(default)]
    pub auth: AuthSection,
    /// `[policy]`.
    #[serde(default)]
    pub policy: PolicySection,
    /// `[approval]`.
    #[serde(default)]
    pub approval: ApprovalSection,
    /// `[stdio]`: identity of a stdio caller.
    pub stdio: Option<StdioSection>,
    /// `[masking]`: absent means every built-in detector with `redact`.
    #[serde(default)]
    pub masking: MaskConfig,
    /// `[logging]`.
    #[serde(default)]
    pub logging: LoggingSection,
    /// `[audit]`: signed checkpoints of the audit chain.
    #[serde(default)]
    pub audit: AuditSection,
    /// `[limits]`: per-principal rate and concurrency limits of tool calls.
    #[serde(default)]
    pub limits: LimitsSection,
    /// `[ui]`: how people log in to the web console.
    #[serde(default)]
    pub ui: UiSection,
    /// `[[connection]]`, kept raw here: each family deserialises its own
    /// typed section from it (see [`crate::connectors`]).
    #[serde(default, rename = "connection")]
    pub connections: Vec<Spanned<toml::Table>>,
    /// Where the file is (relative paths are resolved against its folder).
    #[serde(skip)]
    pub source: PathBuf,
    #[serde(skip)]
    pub(crate) text: String,
}

/// `[server]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// Listen address.
    pub listen: String,
    /// Public base URL (links, RFC 9728 metadata).
    pub public_url: Option<String>,
    /// Embedded store folder.
    pub data_dir: PathBuf,
    /// Shared store URL (later).
    pub store_url: Option<String>,
    /// Host header allow-list for /mcp (DNS-rebinding protection). Default:
    /// loopback names plus the host of `public_url`.
    pub allowed_hosts: Vec<String>,
    /// Byte cap on one tool result.
    pub max_result_bytes: usize,
    /// Who may read `GET /metrics`.
    pub metrics: MetricsAccess,
    /// A connection whose request headers are not complete this long after
    /// it opened (or after its last response) is closed; this is also the
    /// keep-alive idle timeout.
    pub header_timeout: HumanDuration,
    /// A request body must have arrived whole this long after its headers.
    pub body_timeout: HumanDuration,
    /// Open HTTP connections at most; past it the oldest idle connection
    /// that never authenticated is closed to make room, else the new one.
    pub max_connections: usize,
    /// Byte cap on one tool call's arguments (as JSON); `/mcp` request
    /// bodies may be this plus [`MCP_ENVELOPE_BYTES`].
    pub max_argument_bytes: usize,
}

/// Room in a `/mcp` request body for the JSON-RPC envelope around a tool
/// call's arguments.
pub const MCP_ENVELOPE_BYTES: usize = 64 << 10;

/// `[server] metrics`: who may scrape `GET /metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricsAccess {
    /// Anyone who reaches the listen address, without a token (what a
    /// Prometheus scraper expects; the page holds counts by tool name and
    /// decision only).
    #[default]
    Open,
    /// A bearer token whose principal is permitted `audit:read`.
    Token,
    /// Not served (404).
    Off,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            listen: "127.0.0.1:8080".into(),
            public_url: None,
            data_dir: "tollgate-data".into(),
            store_url: None,
            allowed_hosts: vec![],
            max_result_bytes: 4 << 20,
            metrics: MetricsAccess::Open,
            header_timeout: HumanDuration(Duration::from_secs(10)),
            body_timeout: HumanDuration(Duration::from_secs(30)),
            max_connections: 4096,
            max_argument_bytes: 1 << 20,
        }
    }
}

/// `[auth]`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    /// Expected `iss`.
    pub issuer: Option<String>,
    /// Expected `aud`.
    pub audience: Option<String>,
    /// Claim holding groups (dotted path allowed).
    pub groups_claim: Option<String>,
    /// HS256 shared secret (a secret reference).
    pub hs256_secret: Option<String>,
    /// JWKS URL.
    pub jwks_url: Option<String>,
    /// JWKS file.
    pub jwks_file: Option<PathBuf>,
    /// Clock skew allowed on exp/nbf, e.g. "30s" (the duration grammar of
    /// [`gateway_core::duration`]; checked with its position by `validate`).
    pub leeway: Option<Spanned<String>>,
}

/// `[policy]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicySection {
    /// Folder of `*.cedar` files.
    pub dir: PathBuf,
    /// enforce | shadow.
    pub mode: Mode,
    /// Folder of policy test cases (default `<dir>/tests`).
    pub tests: Option<PathBuf>,
    /// Reload when a `.cedar` file under `dir` changes (SIGHUP always
    /// reloads). Default true.
    pub watch: bool,
}

impl Default for PolicySection {
    fn default() -> Self {
        PolicySection {
            dir: "policies".into(),
            mode: Mode::Enforce,
            tests: None,
            watch: true,
        }
    }
}

/// `[approval]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApprovalSection {
    /// How long one tools/call blocks for a decision.
    pub wait_seconds: u64,
    /// Pending approvals expire after this (e.g. "1h", "1m30s"; checked
    /// with its position by `validate`).
    pub ttl: Spanned<String>,
    /// Slack-compatible webhook.
    pub webhook_url: Option<String>,
}

impl Default for ApprovalSection {
    fn default() -> Self {
        ApprovalSection {
            wait_seconds: 50,
            ttl: Spanned::new(0..0, "1h".into()),
            webhook_url: None,
        }
    }
}

/// `[ui]`: login to the web console. With `oidc_issuer` the console logs
/// people in through that OpenID Connect provider (authorization code flow
/// with PKCE); without it, with a pasted bearer token.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UiSection {
    /// The provider's issuer URL; discovery at
    /// `<issuer>/.well-known/openid-configuration`. https, or http on a
    /// loopback host only.
    pub oidc_issuer: Option<String>,
    /// This console's client id at the provider (the ID token's `aud`).
    pub client_id: Option<String>,
    /// The client secret (a secret reference: `${env:NAME}` or
    /// `${file:PATH}`); absent: a public client (PKCE only).
    pub client_secret: Option<String>,
    /// Scopes asked for besides `openid` (which is always asked).
    pub scopes: Vec<String>,
    /// How long a console session lasts after login (default 8h); a session
    /// from a pasted token also ends when the token expires.
    pub session_ttl: HumanDuration,
}

/// Default of `ui.session_ttl`.
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(8 * 3600);

impl Default for UiSection {
    fn default() -> Self {
        UiSection {
            oidc_issuer: None,
            client_id: None,
            client_secret: None,
            scopes: vec![],
            session_ttl: HumanDuration(DEFAULT_SESSION_TTL),
        }
    }
}

/// `[stdio]`.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct StdioSection {
    /// Principal sub.
    pub sub: String,
    /// Principal groups.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// `[logging]`.
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingSection {
    /// `text` (default) or `json`.
    pub format: Option<String>,
    /// An env-filter directive, e.g. `info,tollgate=debug` (RUST_LOG wins).
    pub level: Option<String>,
    /// OTLP/HTTP base URL of a trace collector (e.g. `http://otel:4318`):
    /// one span per call and one per pipeline stage, exported as OTLP/JSON
    /// to `<url>/v1/traces`. Unset: no traces (`OTEL_EXPORTER_OTLP_ENDPOINT`
    /// is used when set).
    pub otlp_endpoint: Option<String>,
}

/// `[audit]`: signed checkpoints of the chain head, written outside the
/// store (see [`crate::checkpoint`]).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSection {
    /// Ed25519 key in PEM (a secret reference, e.g. `${file:keys/audit.pem}`;
    /// a relative file is read from the config's folder). A private key
    /// signs and verifies; a public key only verifies.
    pub checkpoint_key: Option<String>,
    /// Folder the checkpoint files are written to.
    pub checkpoint_dir: Option<PathBuf>,
    /// How often `serve` writes one when the chain grew (default 1m).
    pub checkpoint_interval: Option<Spanned<String>>,
    /// URL each checkpoint is POSTed to as JSON (a secret reference allowed).
    pub checkpoint_webhook: Option<String>,
}

/// `[limits]`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    /// `[[limits.rule]]`, every matching one applies.
    pub rule: Vec<Spanned<LimitRuleSection>>,
}

/// One `[[limits.rule]]`: whom (`principal` or `group`, neither: everyone),
/// which tool (default every tool, counted together), and the caps, each
/// counted per principal.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct LimitRuleSection {
    /// A principal's `sub`, or `"*"` for everyone.
    pub principal: Option<String>,
    /// A group: the rule applies to each member.
    pub group: Option<String>,
    /// A tool name, or `"*"` (the default) for every tool.
    pub tool: Option<String>,
    /// `N/PERIOD`, e.g. `"100/min"`, `"5/10s"`.
    pub rate: Option<String>,
    /// Calls allowed back to back (default: the rate's N).
    pub burst: Option<u32>,
    /// Calls in flight at once.
    pub concurrency: Option<u32>,
}

impl LimitRuleSection {
    /// The rule, or what is wrong with it.
    pub fn to_rule(&self) -> Result<LimitRule, String> {
        let who = match (&self.principal, &self.group) {
            (Some(_), Some(_)) => {
                return Err("a [[limits.rule]] names a principal or a group, not both".into());
            }
            (Some(p), None) if p == "*" => Who::Everyone,
            (Some(p), None) if p.is_empty() => {
                return Err(
                    "limits.rule principal must not be empty (\"*\" means everyone)".into(),
                );
            }
            (Some(p), None) => Who::Sub(p.clone()),
            (None, Some(g)) if g.is_empty() => {
                return Err("limits.rule group must not be empty".into());
            }
            (None, Some(g)) => Who::Group(g.clone()),
            (None, None) => Who::Everyone,
        };
        let tool = match self.tool.as_deref() {
            None | Some("*") => None,
            Some("") => {
                return Err("limits.rule tool must not be empty (\"*\" means every tool)".into());
            }
            Some(t) => Some(t.to_string()),
        };
        let mut rate = match &self.rate {
            Some(r) => Some(Rate::parse(r).map_err(|e| format!("limits.rule rate: {e}"))?),
            None => None,
        };
        match (self.burst, rate.as_mut()) {
            (Some(_), None) => return Err("limits.rule burst needs a rate".into()),
            (Some(b), Some(r)) => {
                r.burst =
                    std::num::NonZeroU32::new(b).ok_or("limits.rule burst must be at least 1")?;
            }
            (None, _) => {}
        }
        let concurrency = match self.concurrency {
            Some(c) => Some(
                std::num::NonZeroU32::new(c).ok_or("limits.rule concurrency must be at least 1")?,
            ),
            None => None,
        };
        if rate.is_none() && concurrency.is_none() {
            return Err(
                "a [[limits.rule]] needs a rate (e.g. rate = \"100/min\"), a concurrency, or both"
                    .into(),
            );
        }
        Ok(LimitRule {
            who,
            tool,
            rate,
            concurrency,
        })
    }
}

/// Default of `audit.checkpoint_interval`.
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(60);

impl Config {
    /// Read and validate a config file.
    pub fn load(path: &Path) -> Result<Config, Vec<ConfigError>> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            vec![ConfigError {
                path: path.display().to_string(),
                line: 1,
                col: 1,
                message: format!("cannot read config: {e}"),
            }]
        })?;
        Self::parse(path, &text)
    }

    /// Parse and validate config text that came from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Config, Vec<ConfigError>> {
        let mut config: Config = toml::from_str(text).map_err(|e| {
            let (line, col) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
            vec![ConfigError {
                path: path.display().to_string(),
                line,
                col,
                message: e.message().trim().to_string(),
            }]
        })?;
        config.source = path.to_path_buf();
        config.text = text.to_string();
        let errors = config.validate();
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(errors)
        }
    }

    /// An error positioned at byte `offset` of the file.
    pub fn error_at(&self, offset: usize, message: impl Into<String>) -> ConfigError {
        let (line, col) = line_col(&self.text, offset);
        ConfigError {
            path: self.source.display().to_string(),
            line,
            col,
            message: message.into(),
        }
    }

    /// An error at the first occurrence of `needle` (e.g. a key), else line 1.
    pub fn error_near(&self, needle: &str, message: impl Into<String>) -> ConfigError {
        self.error_at(self.text.find(needle).unwrap_or(0), message)
    }

    /// Things that work but should not be left as they are, as
    /// `file:line:col: warning: ...` lines (printed by every command that
    /// loads the config).
    pub fn warnings(&self) -> Vec<ConfigError> {
        let mut out = vec![];
        if let Some(secret) = &self.auth.hs256_secret
            && !secret.trim_start().starts_with("${")
        {
            out.push(self.error_near(
                "hs256_secret",
                "warning: auth.hs256_secret is written in the file: anyone who can read the config can mint tokens; \
                 use hs256_secret = \"${env:NAME}\" or \"${file:PATH}\" (a file only the tollgate user can read)",
            ));
        }
        out
    }

    fn validate(&self) -> Vec<ConfigError> {
        let mut errs = vec![];
        // host:port; a host name (localhost) is resolved as bind() will.
        if std::net::ToSocketAddrs::to_socket_addrs(self.server.listen.as_str())
            .map(|mut a| a.next().is_none())
            .unwrap_or(true)
        {
            errs.push(self.error_near(
                "listen",
                format!(
                    "server.listen {:?} is not an address like 127.0.0.1:8080 or localhost:8080",
                    self.server.listen
                ),
            ));
        }
        if let Some(url) = &self.server.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            errs.push(self.error_near(
                "public_url",
                "server.public_url must start with http:// or https://",
            ));
        }
        let ttl = &self.approval.ttl;
        if let Err(e) = duration::parse(ttl.get_ref()) {
            errs.push(self.error_at(ttl.span().start, format!("approval.ttl: {e}")));
        }
        if let Some(l) = &self.auth.leeway
            && let Err(e) = duration::parse(l.get_ref())
        {
            errs.push(self.error_at(l.span().start, format!("auth.leeway: {e}")));
        }
        errs.extend(self.validate_audit());
        errs.extend(self.validate_ui());
        for r in &self.limits.rule {
            if let Err(e) = r.get_ref().to_rule() {
                errs.push(self.error_at(r.span().start, e));
            }
        }
        if self.server.max_connections == 0 {
            errs.push(self.error_near(
                "max_connections",
                "server.max_connections must be at least 1",
            ));
        }
        if self.server.max_argument_bytes == 0 {
            errs.push(self.error_near(
                "max_argument_bytes",
                "server.max_argument_bytes must be at least 1",
            ));
        }
        if self.server.header_timeout.0.is_zero() {
            errs.push(self.error_near(
                "header_timeout",
                "server.header_timeout must be longer than 0s",
            ));
        }
        if self.server.body_timeout.0.is_zero() {
            errs.push(
                self.error_near("body_timeout", "server.body_timeout must be longer than 0s"),
            );
        }
        let keys = [
            self.auth.hs256_secret.is_some(),
            self.auth.jwks_url.is_some(),
            self.auth.jwks_file.is_some(),
        ];
        if keys.iter().filter(|k| **k).count() > 1 {
            errs.push(self.error_near(
                "[auth]",
                "set exactly one of auth.hs256_secret, auth.jwks_url, auth.jwks_file",
            ));
        }
        if let Some(f) = &self.logging.format
            && f != "text"
            && f != "json"
        {
            errs.push(self.error_near("format", "logging.format must be \"text\" or \"json\""));
        }
        let mut names = std::collections::HashSet::new();
        for c in &self.connections {
            let at = c.span().start;
            match c.get_ref().get("name").and_then(|v| v.as_str()) {
                None => errs.push(self.error_at(at, "[[connection]] needs a `name` (string)")),
                Some(n) if !names.insert(n.to_string()) => {
                    errs.push(self.error_at(at, format!("two connections are named {n:?}")))
                }
                Some(n) if n.is_empty() || n.contains('/') => errs.push(self.error_at(
                    at,
                    format!("connection name {n:?} must be non-empty and contain no '/'"),
                )),
                _ => {}
            }
        }
        errs
    }

    /// `[audit]`: the interval's grammar, and no checkpoint setting without
    /// a key. The key itself (and whether a private key has somewhere to
    /// write) is checked by `check` and at start ([`crate::checkpoint`]).
    fn validate_audit(&self) -> Vec<ConfigError> {
        let a = &self.audit;
        let mut errs = vec![];
        if let Some(i) = &a.checkpoint_interval {
            match duration::parse(i.get_ref()) {
                Err(e) => errs
                    .push(self.error_at(i.span().start, format!("audit.checkpoint_interval: {e}"))),
                Ok(d) if d.is_zero() => errs.push(self.error_at(
                    i.span().start,
                    "audit.checkpoint_interval must be longer than 0s",
                )),
                Ok(_) => {}
            }
        }
        let outputs = a.checkpoint_dir.is_some() || a.checkpoint_webhook.is_some();
        if a.checkpoint_key.is_none() && (outputs || a.checkpoint_interval.is_some()) {
            errs.push(self.error_near(
                "[audit]",
                "audit checkpoints need audit.checkpoint_key (an Ed25519 private key in PEM: \
                 `openssl genpkey -algorithm ed25519 -out audit.pem`, then \
                 checkpoint_key = \"${file:audit.pem}\")",
            ));
        }
        errs
    }

    /// `[ui]`: an issuer needs a client id (and the reverse); the issuer is
    /// https, or http on a loopback host; the session lasts longer than 0s.
    /// Messages never echo the secret.
    fn validate_ui(&self) -> Vec<ConfigError> {
        let u = &self.ui;
        let mut errs = vec![];
        match (&u.oidc_issuer, &u.client_id) {
            (Some(issuer), Some(id)) => {
                if let Err(e) = oidc_issuer_ok(issuer) {
                    errs.push(self.error_near("oidc_issuer", format!("ui.oidc_issuer {e}")));
                }
                if id.trim().is_empty() {
                    errs.push(self.error_near("client_id", "ui.client_id must not be empty"));
                }
            }
            (Some(_), None) => errs.push(self.error_near(
                "oidc_issuer",
                "ui.oidc_issuer needs ui.client_id (this console's client id at the provider)",
            )),
            (None, Some(_)) | (None, None) if u.client_secret.is_some() => {
                errs.push(self.error_near("client_secret", "ui.client_secret needs ui.oidc_issuer"))
            }
            (None, Some(_)) => {
                errs.push(self.error_near("client_id", "ui.client_id needs ui.oidc_issuer"))
            }
            (None, None) => {}
        }
        if u.session_ttl.0.is_zero() {
            errs.push(self.error_near("session_ttl", "ui.session_ttl must be longer than 0s"));
        }
        if u.scopes
            .iter()
            .any(|s| s.is_empty() || s.contains(char::is_whitespace))
        {
            errs.push(self.error_near(
                "scopes",
                "ui.scopes are single words, e.g. [\"profile\", \"email\"]",
            ));
        }
        errs
    }

    /// `audit.checkpoint_interval` (validated at load), default 1m.
    pub fn checkpoint_interval(&self) -> Duration {
        self.audit
            .checkpoint_interval
            .as_ref()
            .and_then(|i| duration::parse(i.get_ref()).ok())
            .unwrap_or(DEFAULT_CHECKPOINT_INTERVAL)
    }

    /// The config file's folder (relative paths and `${file:}` references
    /// of `[audit]` resolve against it).
    pub fn folder(&self) -> &Path {
        self.source.parent().unwrap_or(Path::new("."))
    }

    /// Resolve a path from the config against the config file's folder.
    pub fn resolve_path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.source.parent().unwrap_or(Path::new(".")).join(p)
        }
    }

    /// The public base URL (default: http://<listen>).
    pub fn public_url(&self) -> String {
        self.server
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.server.listen))
            .trim_end_matches('/')
            .to_string()
    }

    /// The gateway's call limits: `server.max_argument_bytes` and the
    /// `[[limits.rule]]`s (validated at load).
    pub fn call_limits(&self) -> CallLimits {
        let rules = self
            .limits
            .rule
            .iter()
            .filter_map(|r| r.get_ref().to_rule().ok())
            .collect();
        CallLimits::new(Some(self.server.max_argument_bytes), rules)
    }

    /// Pending approval lifetime (validated at load).
    pub fn approval_ttl(&self) -> Duration {
        duration::parse(self.approval.ttl.get_ref()).unwrap_or(Duration::from_secs(3600))
    }

    /// A connection's table as JSON for its connector factory, with `path`
    /// and `*_file` keys resolved against the config folder.
    pub fn connection_json(&self, table: &toml::Table) -> serde_json::Value {
        let mut v = serde_json::to_value(table).unwrap_or(serde_json::Value::Null);
        let base = self.source.parent().unwrap_or(Path::new("."));
        if let serde_json::Value::Object(map) = &mut v {
            for (k, val) in map.iter_mut() {
                let Some(s) = val.as_str() else { continue };
                let resolved = if s.contains("${") {
                    // `${file:keys/x}` reads keys/x beside the config.
                    absolute_file_refs(s, base)
                } else if (PATH_KEYS.contains(&k.as_str()) || k.ends_with("_file"))
                    && !s.contains("-----BEGIN ")
                {
                    self.resolve_path(Path::new(s)).display().to_string()
                } else {
                    continue;
                };
                *val = serde_json::Value::String(resolved);
            }
        }
        v
    }

    /// Resolve a `${env:..}` / `${file:..}` reference (or a literal) of a
    /// top-level key; a relative `${file:PATH}` is read beside the config.
    pub fn secret(
        &self,
        raw: &str,
    ) -> Result<gateway_core::secret::Secret, gateway_core::secret::SecretError> {
        gateway_core::secret::resolve_in(raw, self.source.parent().unwrap_or(Path::new(".")))
    }
}

/// Keys of a `[[connection]]` table that hold a file path when they hold
/// no PEM text or reference (besides `path` and every `*_file`).
const PATH_KEYS: &[&str] = &[
    "path",
    "known_hosts",
    "kubeconfig",
    "private_key",
    "client_cert",
    "client_key",
    "agent_socket",
];

/// `raw` with every relative `${file:PATH}` made absolute against `base`.
fn absolute_file_refs(raw: &str, base: &Path) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = rest.find("${file:") {
        let (head, tail) = rest.split_at(at + "${file:".len());
        out.push_str(head);
        let end = tail.find('}').unwrap_or(tail.len());
        let path = &tail[..end];
        if Path::new(path).is_relative() && !path.is_empty() {
            out.push_str(&base.join(path).display().to_string());
        } else {
            out.push_str(path);
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Whether `issuer` may be an OpenID Connect issuer: an absolute https URL,
/// or http on a loopback host (a provider on this machine, e.g. in tests),
/// with no query or fragment (OpenID Connect Discovery §3).
pub fn oidc_issuer_ok(issuer: &str) -> Result<(), &'static str> {
    let url = reqwest::Url::parse(issuer)
        .map_err(|_| "must be an absolute URL like https://idp.example.com")?;
    if url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err("must have no query, fragment or user info");
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&url) => Ok(()),
        "http" => Err("must be https (http only on a loopback host such as 127.0.0.1)"),
        _ => Err("must be an https URL"),
    }
}

/// Whether the URL's host is a loopback address or `localhost`.
pub fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback())
}

/// Parse "10s", "500ms", "1m30s", "1h": the one duration grammar of every
/// key and flag ([`gateway_core::duration`]).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    duration::parse(s).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;
