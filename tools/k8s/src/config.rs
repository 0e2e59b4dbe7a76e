//! The `[[connection]]` table of a Kubernetes connection, validated: a typed
//! section with `deny_unknown_fields` read by [`gateway_core::section`], so
//! a typo never silently weakens a limit. The token stays a [`Secret`] and
//! no error ever quotes it.

use std::collections::BTreeSet;
use std::time::Duration;

use gateway_core::duration::HumanDuration;
use gateway_core::secret::{self, Secret};
use gateway_core::section::{self, PositiveInt};
use serde::Deserialize;
use serde_json::Value;

/// Default item cap of one list.
pub const DEFAULT_MAX_ITEMS: u64 = 500;
/// Default time budget of one call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest `timeout` accepted.
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

/// A validated Kubernetes connection.
#[derive(Debug, Clone)]
pub struct K8sConfig {
    /// Connection name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// API server URL (`https://host:port`).
    pub server: http::Uri,
    /// PEM of the CA that signed the server's certificate (None: the
    /// platform's roots).
    pub ca_pem: Option<String>,
    /// Bearer token.
    pub token: Secret,
    /// The only namespaces this connection touches (None: any).
    pub namespaces: Option<BTreeSet<String>>,
    /// Item cap of one list.
    pub max_items: u64,
    /// Time budget of one call.
    pub timeout: Duration,
}

/// The table as written. Not `Debug`: `token` and `ca_pem` may be literals.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct K8sSection {
    #[allow(dead_code, reason = "checked by the server")]
    name: Option<String>,
    kind: Option<String>,
    description: Option<String>,
    server: Option<String>,
    ca_file: Option<String>,
    ca_pem: Option<String>,
    token: Option<String>,
    client_cert: Option<Value>,
    client_key: Option<Value>,
    kubeconfig: Option<Value>,
    context: Option<Value>,
    namespaces: Option<Vec<String>>,
    max_items: Option<PositiveInt>,
    timeout: Option<HumanDuration>,
}

impl K8sConfig {
    /// Validate the `[[connection]]` table of connection `name`.
    pub fn parse(name: &str, config: &Value) -> Result<Self, String> {
        let ctx = |m: String| format!("connection `{name}` (kubernetes): {m}");
        if !config.is_object() {
            return Err(ctx("config must be a table".into()));
        }
        let s: K8sSection = section::deserialize(config).map_err(|e| ctx(e.to_string()))?;
        if let Some(k) = &s.kind
            && k != "kubernetes"
        {
            return Err(ctx(format!("`kind` is `{k}`, expected `kubernetes`")));
        }
        for (key, set) in [
            ("client_cert", s.client_cert.is_some()),
            ("client_key", s.client_key.is_some()),
            ("kubeconfig", s.kubeconfig.is_some()),
            ("context", s.context.is_some()),
        ] {
            if set {
                return Err(ctx(format!(
                    "`{key}` is not supported by this build yet: use `server`, `ca_file` or `ca_pem`, and `token`"
                )));
            }
        }
        let raw = s.server.ok_or_else(|| ctx("missing `server`".into()))?;
        let server: http::Uri = raw
            .parse()
            .map_err(|_| ctx("`server` is not a URL".into()))?;
        if server.scheme_str() != Some("https") || server.host().is_none() {
            return Err(ctx("`server` must be an https:// URL with a host".into()));
        }
        let ca_pem = match (s.ca_file, s.ca_pem) {
            (Some(_), Some(_)) => return Err(ctx("set `ca_file` or `ca_pem`, not both".into())),
            (Some(path), None) => Some(
                std::fs::read_to_string(&path)
                    .map_err(|e| ctx(format!("`ca_file` {path}: {e}")))?,
            ),
            (None, Some(pem)) => Some(
                secret::resolve(&pem)
                    .map_err(|e| ctx(format!("`ca_pem`: {e}")))?
                    .expose()
                    .to_string(),
            ),
            (None, None) => None,
        };
        if let Some(pem) = &ca_pem
            && !pem.contains("-----BEGIN CERTIFICATE-----")
        {
            return Err(ctx("the CA is not a PEM certificate".into()));
        }
        let raw = s.token.ok_or_else(|| ctx("missing `token`".into()))?;
        let token = secret::resolve(&raw).map_err(|e| ctx(format!("`token`: {e}")))?;
        let t = token.expose();
        if t.is_empty()
            || t.bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            // Never echo the token.
            return Err(ctx("`token` is empty or holds whitespace".into()));
        }
        let namespaces = match s.namespaces {
            None => None,
            Some(list) => {
                if list.is_empty() {
                    return Err(ctx(
                        "`namespaces` is empty: leave it out to allow any".into()
                    ));
                }
                for ns in &list {
                    crate::names::namespace(ns).map_err(|_| {
                        ctx(format!("`namespaces`: `{ns}` is not a valid namespace"))
                    })?;
                }
                Some(list.into_iter().collect())
            }
        };
        let timeout = match s.timeout {
            None => DEFAULT_TIMEOUT,
            Some(HumanDuration(d)) if d.is_zero() || d > MAX_TIMEOUT => {
                return Err(ctx("`timeout` must be above zero and at most 1h".into()));
            }
            Some(HumanDuration(d)) => d,
        };
        Ok(K8sConfig {
            name: name.to_string(),
            description: s.description.unwrap_or_default(),
            server,
            ca_pem,
            token,
            namespaces,
            max_items: s.max_items.map_or(DEFAULT_MAX_ITEMS, |n| n.0),
            timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    #[test]
    fn parses_and_refuses() {
        let ok = json!({"name": "c", "kind": "kubernetes", "server": "https://127.0.0.1:6443",
            "ca_pem": PEM, "token": "abc.def", "namespaces": ["shop"], "max_items": 10, "timeout": "5s"});
        let c = K8sConfig::parse("c", &ok).unwrap();
        assert_eq!(c.max_items, 10);
        assert_eq!(c.timeout, Duration::from_secs(5));
        assert_eq!(c.namespaces.unwrap().len(), 1);
        let with = |k: &str, v: Value| {
            let mut t = ok.clone();
            t[k] = v;
            K8sConfig::parse("c", &t).unwrap_err()
        };
        assert!(with("sever", json!("x")).contains("sever"));
        assert!(with("server", json!("http://x")).contains("https"));
        assert!(with("namespaces", json!(["../x"])).contains("namespaces"));
        assert!(with("namespaces", json!([])).contains("empty"));
        assert!(with("timeout", json!("0s")).contains("timeout"));
        assert!(with("kubeconfig", json!("k")).contains("not supported"));
        let e = with("token", json!("abc def-secret-value"));
        assert!(e.contains("token") && !e.contains("secret-value"), "{e}");
    }
}
