//! Identity stage: who is calling. Verifies bearer JWTs (HS256 shared secret,
//! or RS256/ES256/EdDSA keys from a JWKS file or URL) and yields a
//! [`Principal`]. Transports call [`Authenticator::resolve`]; stdio callers get
//! a configured principal. (Stub; the verifier lands with the identity work.)

use serde::{Deserialize, Serialize};

/// The caller of a tool: JWT `sub` and groups.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Principal {
    /// Subject (`sub` claim).
    pub sub: String,
    /// Groups from the configured claim.
    pub groups: Vec<String>,
}
