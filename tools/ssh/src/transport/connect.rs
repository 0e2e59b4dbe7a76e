//! One authenticated SSH session: TCP connect, key exchange with the host
//! key checked against the pin (before any credential leaves), then
//! public-key authentication with the server-held key or an agent, all
//! within the spec's connect timeout.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;
use russh::keys::{PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};

use super::pin::{Expected, fingerprint};
use super::{ClientKey, HostSpec, TransportError};

/// How often an idle session is probed (and after how many unanswered
/// probes it is dropped), so a dead peer is noticed without a call.
const KEEPALIVE: Duration = Duration::from_secs(15);
const KEEPALIVE_MAX: usize = 3;
/// Agent identities tried at most (OpenSSH's MaxAuthTries defaults to 6).
const MAX_AGENT_KEYS: usize = 5;

/// An authenticated session.
pub type Session = Handle<PinnedHost>;

/// The session's event handler: it holds the resolved pin and records why
/// a host key was refused (russh itself only reports "unknown key").
pub struct PinnedHost {
    expected: Expected,
    refusal: Arc<Mutex<Option<TransportError>>>,
}

impl client::Handler for PinnedHost {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        presented: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let verdict = match presented {
            PublicKeyOrCertificate::PublicKey { key, .. } => self.expected.verify(key),
            // Never negotiated (no certificate algorithm is offered); refused.
            PublicKeyOrCertificate::Certificate(c) => Err(TransportError::Unreachable(format!(
                "the server presented a host certificate (key {}), which is not accepted",
                fingerprint(&PublicKey::from(c.public_key().clone()))
            ))),
        };
        match verdict {
            Ok(()) => Ok(true),
            Err(e) => {
                if let Ok(mut slot) = self.refusal.lock() {
                    *slot = Some(e);
                }
                Ok(false)
            }
        }
    }
}

/// Connect, check the host key and authenticate, within
/// `spec.connect_timeout`.
pub async fn open(spec: &HostSpec) -> Result<Session, TransportError> {
    let label = spec.label();
    let expected = spec.pin.resolve(&spec.host, spec.port, &label)?;
    let config = client::Config {
        preferred: russh::Preferred {
            key: Cow::Owned(expected.host_key_algorithms()),
            ..russh::Preferred::DEFAULT
        },
        keepalive_interval: Some(KEEPALIVE),
        keepalive_max: KEEPALIVE_MAX,
        inactivity_timeout: None,
        nodelay: true,
        ..Default::default()
    };
    let refusal = Arc::new(Mutex::new(None));
    let handler = PinnedHost {
        expected,
        refusal: refusal.clone(),
    };
    let attempt = async {
        let mut session =
            client::connect(Arc::new(config), (spec.host.as_str(), spec.port), handler)
                .await
                .map_err(|e| {
                    if let Some(refused) = refusal.lock().ok().and_then(|mut s| s.take()) {
                        return refused;
                    }
                    match e {
                        russh::Error::IO(io) => {
                            TransportError::Unreachable(format!("{label}: {io}"))
                        }
                        other => TransportError::Unreachable(format!(
                            "{label}: SSH handshake failed: {other}"
                        )),
                    }
                })?;
        authenticate(&mut session, spec, &label).await?;
        Ok(session)
    };
    match tokio::time::timeout(spec.connect_timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err(TransportError::Unreachable(format!(
            "{label}: no authenticated session within {} ms",
            spec.connect_timeout.as_millis()
        ))),
    }
}

async fn authenticate(
    session: &mut Session,
    spec: &HostSpec,
    label: &str,
) -> Result<(), TransportError> {
    let user = spec.user.as_str();
    let failed = |e: russh::Error| TransportError::Auth(format!("{label}: {e}"));
    match &spec.key {
        ClientKey::Private(key) => {
            let hash = if key.algorithm().is_rsa() {
                session
                    .best_supported_rsa_hash()
                    .await
                    .map_err(failed)?
                    .flatten()
            } else {
                None
            };
            let result = session
                .authenticate_publickey(user, PrivateKeyWithHashAlg::new(key.clone(), hash))
                .await
                .map_err(failed)?;
            if result.success() {
                Ok(())
            } else {
                Err(TransportError::Auth(format!(
                    "{label} refused key {} for user {user}",
                    fingerprint(key.public_key())
                )))
            }
        }
        ClientKey::Agent(socket) => {
            let mut agent = AgentClient::connect_uds(socket).await.map_err(|e| {
                TransportError::Auth(format!(
                    "cannot reach the SSH agent at {}: {e}",
                    socket.display()
                ))
            })?;
            let identities = agent.request_identities().await.map_err(|e| {
                TransportError::Auth(format!("the SSH agent at {} failed: {e}", socket.display()))
            })?;
            let mut tried = Vec::new();
            for identity in identities.iter().take(MAX_AGENT_KEYS) {
                let AgentIdentity::PublicKey { key, .. } = identity else {
                    continue;
                };
                let hash = if key.algorithm().is_rsa() {
                    session
                        .best_supported_rsa_hash()
                        .await
                        .map_err(failed)?
                        .flatten()
                } else {
                    None
                };
                tried.push(fingerprint(key));
                match session
                    .authenticate_publickey_with(user, key.clone(), hash, &mut agent)
                    .await
                {
                    Ok(r) if r.success() => return Ok(()),
                    Ok(_) => {}
                    Err(e) => {
                        return Err(TransportError::Auth(format!(
                            "the SSH agent could not sign with {}: {e}",
                            fingerprint(key)
                        )));
                    }
                }
            }
            Err(TransportError::Auth(if tried.is_empty() {
                format!("the SSH agent at {} holds no usable key", socket.display())
            } else {
                format!(
                    "{label} refused the agent's keys ({}) for user {user}",
                    tried.join(", ")
                )
            }))
        }
    }
}
