//! The `[[connection]]` table of a Kubernetes connection, validated: a typed
//! section with `deny_unknown_fields` read by [`gateway_core::section`], so
//! a typo never silently weakens a limit. Exactly one way to authenticate:
//! `token`, `client_cert` + `client_key`, or `kubeconfig` (+ `context`),
//! read in [`crate::kubeconfig`]. Credentials stay [`Secret`]s and no error
//! ever quotes one.

use std::collections::BTreeSet;
use std::time::Duration;

use gateway_core::duration::HumanDuration;
use gateway_core::secret::{self, Secret};
use gateway_core::section::{self, PositiveInt};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
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
    /// DER certificates of the CA(s) that sign the server's certificate
    /// (None: the platform's roots).
    pub ca: Option<Vec<Vec<u8>>>,
    /// The name the server's certificate must carry when it is not the
    /// host of `server` (a kubeconfig's `tls-server-name`).
    pub tls_server_name: Option<String>,
    /// The bearer token when the connection authenticates with one (its
    /// `token`, or the kubeconfig user's `token`/`tokenFile`); empty
    /// otherwise. Scrubbed from every error text.
    pub token: Secret,
    /// How the connection authenticates.
    pub auth: Auth,
    /// Send every tool request as the caller (`Impersonate-User`/`-Group`).
    pub impersonate: bool,
    /// The only namespaces this connection touches (None: any).
    pub namespaces: Option<BTreeSet<String>>,
    /// Item cap of one list.
    pub max_items: u64,
    /// Time budget of one call.
    pub timeout: Duration,
}

/// How a connection proves who it is to the API server.
#[derive(Debug, Clone)]
pub enum Auth {
    /// A bearer token ([`K8sConfig::token`]).
    Token,
    /// A client certificate (mTLS).
    ClientCert {
        /// PEM of the certificate (and any intermediates).
        cert_pem: String,
        /// PEM of its private key.
        key_pem: Secret,
    },
}

/// The table as written. Not `Debug`: `token`, `client_key` and `ca_pem`
/// may be literals.
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
    client_cert: Option<String>,
    client_key: Option<String>,
    kubeconfig: Option<String>,
    context: Option<String>,
    impersonate: Option<bool>,
    namespaces: Option<Vec<String>>,
    max_items: Option<PositiveInt>,
    timeout: Option<HumanDuration>,
}

/// Where a connection's server, CA and credentials come from.
pub(crate) struct Target {
    pub server: http::Uri,
    pub ca: Option<Vec<Vec<u8>>>,
    pub tls_server_name: Option<String>,
    pub token: Secret,
    pub auth: Auth,
}

/// A bearer token, checked: not empty, no whitespace (never echoed).
pub(crate) fn check_token(token: Secret, what: &str) -> Result<Secret, String> {
    let t = token.expose();
    if t.is_empty()
        || t.bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(format!("{what} is empty or holds whitespace"));
    }
    Ok(token)
}

/// An `https://` server URL with a host.
pub(crate) fn check_server(raw: &str, what: &str) -> Result<http::Uri, String> {
    let server: http::Uri = raw.parse().map_err(|_| format!("{what} is not a URL"))?;
    if server.scheme_str() != Some("https") || server.host().is_none() {
        return Err(format!("{what} must be an https:// URL with a host"));
    }
    Ok(server)
}

/// The DER certificates of a CA bundle in PEM; at least one.
pub(crate) fn ca_certs(pem: &[u8], what: &str) -> Result<Vec<Vec<u8>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| format!("{what} is not a PEM certificate"))?;
    if certs.is_empty() {
        return Err(format!("{what} is not a PEM certificate"));
    }
    Ok(certs)
}

/// A client certificate and key, checked as PEM (never echoed).
pub(crate) fn client_cert(cert_pem: String, key_pem: Secret, what: &str) -> Result<Auth, String> {
    let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| format!("{what}: the client certificate is not valid PEM"))?;
    if certs.is_empty() {
        return Err(format!(
            "{what}: the client certificate holds no certificate"
        ));
    }
    PrivateKeyDer::from_pem_slice(key_pem.expose().as_bytes())
        .map_err(|_| format!("{what}: the client key is not a PEM private key"))?;
    Ok(Auth::ClientCert { cert_pem, key_pem })
}

/// A PEM given as a file path, or as a `${file:...}`/`${env:...}`
/// reference (or literal) that resolves to PEM text. A reference's value is
/// never quoted; a path is.
fn pem(raw: &str, key: &str) -> Result<Secret, String> {
    let value = secret::resolve(raw).map_err(|e| format!("`{key}`: {e}"))?;
    if value.expose().contains("-----BEGIN ") {
        return Ok(value);
    }
    if raw.contains("${") {
        return Err(format!("`{key}`: the reference does not resolve to PEM"));
    }
    let text = std::fs::read_to_string(raw).map_err(|e| format!("`{key}` {raw}: {e}"))?;
    Ok(Secret::new(text))
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
        let target = Self::target(&s).map_err(ctx)?;
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
            server: target.server,
            ca: target.ca,
            tls_server_name: target.tls_server_name,
            token: target.token,
            auth: target.auth,
            impersonate: s.impersonate.unwrap_or(false),
            namespaces,
            max_items: s.max_items.map_or(DEFAULT_MAX_ITEMS, |n| n.0),
            timeout,
        })
    }

    /// Server, CA and credentials: from a kubeconfig, or from the table's
    /// own keys. Exactly one way to authenticate.
    fn target(s: &K8sSection) -> Result<Target, String> {
        let methods: Vec<&str> = [
            ("`token`", s.token.is_some()),
            (
                "`client_cert` + `client_key`",
                s.client_cert.is_some() || s.client_key.is_some(),
            ),
            ("`kubeconfig`", s.kubeconfig.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, set)| set.then_some(k))
        .collect();
        match methods.len() {
            0 => {
                return Err(
                    "no credentials: set `token`, `client_cert` + `client_key`, or `kubeconfig`"
                        .into(),
                );
            }
            1 => {}
            _ => {
                return Err(format!(
                    "set one way to authenticate, not {}",
                    methods.join(" and ")
                ));
            }
        }
        if s.context.is_some() && s.kubeconfig.is_none() {
            return Err("`context` needs `kubeconfig`".into());
        }
        if let Some(path) = &s.kubeconfig {
            for (key, set) in [
                ("server", s.server.is_some()),
                ("ca_file", s.ca_file.is_some()),
                ("ca_pem", s.ca_pem.is_some()),
            ] {
                if set {
                    return Err(format!(
                        "`{key}` comes from the kubeconfig: leave it out beside `kubeconfig`"
                    ));
                }
            }
            return crate::kubeconfig::read(
                path,
                s.context.as_deref(),
                s.impersonate == Some(true),
            );
        }
        let raw = s.server.as_deref().ok_or("missing `server`")?;
        let server = check_server(raw, "`server`")?;
        let ca_pem = match (&s.ca_file, &s.ca_pem) {
            (Some(_), Some(_)) => return Err("set `ca_file` or `ca_pem`, not both".into()),
            (Some(path), None) => {
                Some(std::fs::read_to_string(path).map_err(|e| format!("`ca_file` {path}: {e}"))?)
            }
            (None, Some(pem)) => Some(
                secret::resolve(pem)
                    .map_err(|e| format!("`ca_pem`: {e}"))?
                    .expose()
                    .to_string(),
            ),
            (None, None) => None,
        };
        let ca = ca_pem
            .map(|pem| ca_certs(pem.as_bytes(), "the CA"))
            .transpose()?;
        let (token, auth) = match (&s.token, &s.client_cert, &s.client_key) {
            (Some(raw), _, _) => {
                let token = secret::resolve(raw).map_err(|e| format!("`token`: {e}"))?;
                (check_token(token, "`token`")?, Auth::Token)
            }
            (None, Some(cert), Some(key)) => {
                let cert = pem(cert, "client_cert")?.expose().to_string();
                let key = pem(key, "client_key")?;
                (
                    Secret::new(""),
                    client_cert(cert, key, "`client_cert` + `client_key`")?,
                )
            }
            (None, Some(_), None) => return Err("`client_cert` needs `client_key`".into()),
            (None, None, _) => return Err("`client_key` needs `client_cert`".into()),
        };
        Ok(Target {
            server,
            ca,
            tls_server_name: None,
            token,
            auth,
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
        assert!(with("kubeconfig", json!("k")).contains("one way"));
        assert!(with("client_cert", json!("c.pem")).contains("one way"));
        let e = with("token", json!("abc def-secret-value"));
        assert!(e.contains("token") && !e.contains("secret-value"), "{e}");
    }

    #[test]
    fn client_certificates_from_files_references_or_literals() {
        const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n";
        let dir = std::env::temp_dir().join(format!("tollgate-k8s-cc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("c.pem"), dir.join("c.key"));
        std::fs::write(&cert, PEM).unwrap();
        std::fs::write(&key, KEY).unwrap();
        let base = json!({"server": "https://127.0.0.1:6443"});
        let with = |extra: Value| {
            let mut t = base.clone();
            for (k, v) in extra.as_object().unwrap() {
                t[k] = v.clone();
            }
            K8sConfig::parse("c", &t)
        };
        let ok = with(json!({"client_cert": cert.to_str().unwrap(),
            "client_key": format!("${{file:{}}}", key.display())}))
        .unwrap();
        assert!(matches!(&ok.auth, Auth::ClientCert { cert_pem, .. } if cert_pem == PEM));
        assert_eq!(ok.token.expose(), "");
        assert!(with(json!({"client_cert": PEM, "client_key": KEY})).is_ok());
        for (extra, needle) in [
            (json!({"client_cert": PEM}), "needs `client_key`"),
            (json!({"client_key": KEY}), "needs `client_cert`"),
            (json!({}), "no credentials"),
            (
                json!({"client_cert": PEM, "client_key": KEY, "token": "t"}),
                "not `token` and",
            ),
            (
                json!({"client_cert": PEM, "client_key": "${env:TOLLGATE_NO_SUCH_VAR}"}),
                "not set",
            ),
            (
                json!({"client_cert": PEM, "client_key": format!("${{file:{}}}", cert.display())}),
                "not a PEM private key",
            ),
            (
                json!({"client_cert": "/no/such/cert.pem", "client_key": KEY}),
                "/no/such/cert.pem",
            ),
            (
                json!({"token": "t", "context": "x"}),
                "`context` needs `kubeconfig`",
            ),
        ] {
            let e = with(extra.clone()).unwrap_err();
            assert!(e.contains(needle), "{extra}: {e}");
            assert!(!e.contains("MIIB"), "{e}");
        }
    }
}
