//! Host key pins and the check the session handler runs on the key a
//! server presents, before any credential is sent.
//!
//! A pin resolves, at each connect, to the keys accepted and refused for the
//! host. The presented key must equal an accepted one (key data compared;
//! comments ignored) and no revoked one. Host-key negotiation is narrowed to
//! the accepted keys' algorithms, so a server that also holds, say, an
//! ECDSA key presents the pinned Ed25519 one rather than failing the check.
//! No pin, no entry: refused. Certificates are not accepted in v1.

use std::path::PathBuf;

use russh::keys::{Algorithm, HashAlg, PublicKey};

use super::TransportError;
use super::known_hosts;

/// What the server's host key must be.
#[derive(Debug, Clone)]
pub enum HostKeyPin {
    /// Exactly this key (from a `host_key = "ssh-ed25519 AAAA..."` line).
    Key(PublicKey),
    /// A key filed for the host in this known_hosts file (hashed entries
    /// and `[host]:port` supported); a host not in it is refused.
    KnownHosts(PathBuf),
}

impl HostKeyPin {
    /// Parse one public key line (`ssh-ed25519 AAAA... [comment]`).
    pub fn parse_line(s: &str) -> Result<Self, TransportError> {
        PublicKey::from_openssh(s.trim())
            .map(HostKeyPin::Key)
            .map_err(|e| {
                TransportError::Config(format!(
                    "host_key must be one public key line like `ssh-ed25519 AAAA...`: {e}"
                ))
            })
    }

    /// The keys accepted and refused for `host`/`port` now (a known_hosts
    /// file is read again each time).
    pub fn resolve(&self, host: &str, port: u16, label: &str) -> Result<Expected, TransportError> {
        match self {
            HostKeyPin::Key(k) => Ok(Expected {
                host: label.to_string(),
                accepted: vec![k.clone()],
                revoked: vec![],
                known_hosts: None,
            }),
            HostKeyPin::KnownHosts(path) => {
                let found = known_hosts::lookup_file(path, host, port)?;
                Ok(Expected {
                    host: label.to_string(),
                    accepted: found.accepted,
                    revoked: found.revoked,
                    known_hosts: Some(path.clone()),
                })
            }
        }
    }
}

/// `SHA256:...`, as `ssh-keygen -l` prints it.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// The resolved pin of one connect attempt.
#[derive(Debug, Clone)]
pub struct Expected {
    host: String,
    accepted: Vec<PublicKey>,
    revoked: Vec<PublicKey>,
    known_hosts: Option<PathBuf>,
}

impl Expected {
    /// Host-key algorithms to offer, most preferred first: russh's default
    /// order, narrowed to the accepted keys' types (the default order when
    /// nothing is accepted: the check refuses then anyway, naming the key).
    pub fn host_key_algorithms(&self) -> Vec<Algorithm> {
        let all = russh::Preferred::DEFAULT.key.to_vec();
        let wanted: Vec<Algorithm> = all
            .iter()
            .filter(|a| {
                self.accepted.iter().any(|k| match (a, k.algorithm()) {
                    (Algorithm::Rsa { .. }, Algorithm::Rsa { .. }) => true,
                    (a, b) => **a == b,
                })
            })
            .cloned()
            .collect();
        if wanted.is_empty() { all } else { wanted }
    }

    /// Accept `presented` or say why not.
    pub fn verify(&self, presented: &PublicKey) -> Result<(), TransportError> {
        let same = |k: &PublicKey| k.key_data() == presented.key_data();
        let known_hosts = || {
            self.known_hosts
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        };
        if self.revoked.iter().any(same) {
            return Err(TransportError::HostKeyRevoked {
                host: self.host.clone(),
                known_hosts: known_hosts(),
                fingerprint: fingerprint(presented),
            });
        }
        if self.accepted.iter().any(same) {
            return Ok(());
        }
        if self.accepted.is_empty() && self.known_hosts.is_some() {
            return Err(TransportError::UnknownHost {
                host: self.host.clone(),
                known_hosts: known_hosts(),
                presented_fingerprint: fingerprint(presented),
            });
        }
        Err(TransportError::HostKeyMismatch {
            host: self.host.clone(),
            expected_fingerprint: self
                .accepted
                .iter()
                .map(fingerprint)
                .collect::<Vec<_>>()
                .join(", "),
            presented_fingerprint: fingerprint(presented),
        })
    }
}
