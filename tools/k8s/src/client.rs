//! The kube client of a connection: the configured server, CA and
//! credentials (a bearer token or a client certificate for mTLS), and the
//! errors of the target mapped to the gateway's, with any trace of the
//! token scrubbed from their text.

use std::time::Duration;

use base64::Engine as _;
use gateway_core::connector::ExecuteError;
use gateway_core::secret::Secret;
use secrecy::SecretString;

use crate::config::{Auth, K8sConfig};

/// How long connecting to the API server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Build the client (needs a Tokio runtime: kube spawns its buffer task).
pub fn build(cfg: &K8sConfig) -> Result<kube::Client, ExecuteError> {
    build_as(cfg, None)
}

/// Build a client that acts as `caller` (kube sends `Impersonate-User` and
/// one `Impersonate-Group` per group with every request), or as the
/// connection itself when None.
pub fn build_as(
    cfg: &K8sConfig,
    caller: Option<&gateway_core::Principal>,
) -> Result<kube::Client, ExecuteError> {
    let mut c = kube::Config::new(cfg.server.clone());
    if let Some(caller) = caller {
        c.auth_info.impersonate = Some(caller.sub.clone());
        c.auth_info.impersonate_groups = (!caller.groups.is_empty()).then(|| caller.groups.clone());
    }
    c.root_cert = cfg.ca.clone();
    c.tls_server_name = cfg.tls_server_name.clone();
    match &cfg.auth {
        Auth::Token => {
            c.auth_info.token = Some(SecretString::from(cfg.token.expose().to_string()));
        }
        Auth::ClientCert { cert_pem, key_pem } => {
            // kube reads the identity from base64 `-data`, as in a kubeconfig.
            let b64 = &base64::engine::general_purpose::STANDARD;
            c.auth_info.client_certificate_data = Some(b64.encode(cert_pem));
            c.auth_info.client_key_data = Some(SecretString::from(b64.encode(key_pem.expose())));
        }
    }
    c.connect_timeout = Some(CONNECT_TIMEOUT);
    c.read_timeout = Some(cfg.timeout);
    // Never an error text of kube's here: an identity error may describe
    // the key.
    kube::Client::try_from(c).map_err(|e| match e {
        kube::Error::RustlsTls(_) => ExecuteError::Other(
            "the connection's client certificate, key or CA cannot be used for TLS".into(),
        ),
        e => target_error(e, &cfg.token),
    })
}

/// Replace every occurrence of the token in `text`.
pub fn scrub(text: String, token: &Secret) -> String {
    let t = token.expose();
    if t.is_empty() || !text.contains(t) {
        text
    } else {
        text.replace(t, "[credential]")
    }
}

/// The gateway's error for a kube error: the API server's own answer
/// (`secrets "x" not found`, an RBAC refusal) as a target error, transport
/// failures as unavailable.
pub fn target_error(e: kube::Error, token: &Secret) -> ExecuteError {
    match e {
        kube::Error::Api(s) => ExecuteError::Target(scrub(
            format!("the API server answered {}: {}", s.code, s.message),
            token,
        )),
        e @ (kube::Error::HyperError(_) | kube::Error::Service(_)) => {
            ExecuteError::Unavailable(scrub(e.to_string(), token))
        }
        e => ExecuteError::Other(scrub(e.to_string(), token)),
    }
}
