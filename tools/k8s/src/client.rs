//! The kube client of a connection: the configured server, CA and token, and
//! the errors of the target mapped to the gateway's, with any trace of the
//! token scrubbed from their text.

use std::time::Duration;

use gateway_core::connector::ExecuteError;
use gateway_core::secret::Secret;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use secrecy::SecretString;

use crate::config::K8sConfig;

/// How long connecting to the API server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Build the client (needs a Tokio runtime: kube spawns its buffer task).
pub fn build(cfg: &K8sConfig) -> Result<kube::Client, ExecuteError> {
    let mut c = kube::Config::new(cfg.server.clone());
    if let Some(pem) = &cfg.ca_pem {
        let certs: Vec<Vec<u8>> = CertificateDer::pem_slice_iter(pem.as_bytes())
            .map(|c| c.map(|c| c.to_vec()))
            .collect::<Result<_, _>>()
            .map_err(|_| ExecuteError::Other("the connection's CA is not valid PEM".into()))?;
        if certs.is_empty() {
            return Err(ExecuteError::Other(
                "the connection's CA holds no certificate".into(),
            ));
        }
        c.root_cert = Some(certs);
    }
    c.auth_info.token = Some(SecretString::from(cfg.token.expose().to_string()));
    c.connect_timeout = Some(CONNECT_TIMEOUT);
    c.read_timeout = Some(cfg.timeout);
    kube::Client::try_from(c).map_err(|e| target_error(e, &cfg.token))
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
