//! The client credential a connection authenticates with: a private key
//! held by the server (OpenSSH text, optionally passphrase-protected) or an
//! SSH agent socket. Its `Debug` shows the key type and the public
//! fingerprint only, and parse errors never quote the key text.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use russh::keys::{HashAlg, PrivateKey};

use super::TransportError;

/// How to authenticate.
#[derive(Clone)]
pub enum ClientKey {
    /// A private key in memory.
    Private(Arc<PrivateKey>),
    /// An SSH agent listening on this Unix socket (`SSH_AUTH_SOCK`).
    Agent(PathBuf),
}

impl ClientKey {
    /// Parse a private key (OpenSSH `-----BEGIN OPENSSH PRIVATE KEY-----`
    /// text; PKCS#8 and PKCS#1 PEM are accepted too), decrypting it with
    /// `passphrase` when it is encrypted.
    pub fn from_openssh(pem: &str, passphrase: Option<&str>) -> Result<Self, TransportError> {
        use russh::keys::Error as E;
        match russh::keys::decode_secret_key(pem.trim(), passphrase) {
            Ok(key) => Ok(ClientKey::Private(Arc::new(key))),
            Err(e) => {
                // Only fixed texts: a decoder's message could quote input.
                let why = match (&e, passphrase) {
                    (E::KeyIsEncrypted, None) => {
                        "the private key is encrypted and no passphrase was given"
                    }
                    (E::UnsupportedKeyType { .. }, _) => "the private key's type is not supported",
                    (_, Some(_)) => {
                        "cannot read the private key: not an OpenSSH private key, or a wrong passphrase"
                    }
                    (_, None) => "cannot read the private key: not an OpenSSH private key",
                };
                Err(TransportError::Config(why.to_string()))
            }
        }
    }

    /// The public key's SHA256 fingerprint (for a private key).
    pub fn fingerprint(&self) -> Option<String> {
        match self {
            ClientKey::Private(k) => Some(k.public_key().fingerprint(HashAlg::Sha256).to_string()),
            ClientKey::Agent(_) => None,
        }
    }
}

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientKey::Private(k) => write!(
                f,
                "ClientKey::Private({} {}, private part redacted)",
                k.algorithm(),
                k.public_key().fingerprint(HashAlg::Sha256)
            ),
            ClientKey::Agent(p) => write!(f, "ClientKey::Agent({})", p.display()),
        }
    }
}
