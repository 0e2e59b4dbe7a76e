//! Identity stage: who is calling.
//!
//! Verifies a bearer JWT and yields a [`Principal`] (`sub` + groups). Keys come
//! from one [`KeySource`]: an HS256 shared secret (development, `tollgate
//! token`, `tollgate demo`), or public keys (RS256/384/512, PS256/384/512,
//! ES256/384, EdDSA) from a JWKS file or URL. Transports call
//! [`Authenticator::resolve`] and map any [`IdentityError`] to `401` with
//! [`IdentityError::reason`]; stdio callers get a configured principal and never
//! come here.
//!
//! What this stage does not do: authorise. A valid token says who the caller
//! is, nothing about what they may do (that is `policy`).
//!
//! Invariants protected here:
//! - the algorithm must match the configured key kind: with an HS256 secret
//!   only `HS256` is accepted; with JWKS keys `HS*` is never accepted (no
//!   RS/HS key confusion) and `none` is never accepted;
//! - `exp` is required; `nbf`, `iss` and `aud` are checked (`iss`/`aud`
//!   become required when configured); `sub` must be a non-empty string;
//! - `sub` and group names hold no control, line-separator or invisible
//!   (bidi, zero-width) characters: they are printed in logs, the audit
//!   CLI and the review UI, and must not forge lines or look like others;
//! - a header with `crit` is refused (RFC 7515 §4.1.11: we understand no
//!   extension, and `crit` may not list standard headers or be empty);
//! - errors never contain the token or the secret.

mod claims;
mod jwks;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::secret::Secret;
use crate::text::is_unsafe_char;

pub use jwks::DEFAULT_REFETCH_INTERVAL;

/// The caller of a tool: JWT `sub` and groups.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Principal {
    /// Subject (`sub` claim).
    pub sub: String,
    /// Groups from the configured claim.
    pub groups: Vec<String>,
}

/// Where verification keys come from (`[auth]` `hs256_secret` | `jwks_file` |
/// `jwks_url`).
#[derive(Debug, Clone)]
pub enum KeySource {
    /// HS256 shared secret (development and demo; also lets Tollgate mint tokens).
    Hs256(Secret),
    /// A JWKS document on disk, re-read on an unknown `kid` (rate-limited).
    JwksFile(PathBuf),
    /// A JWKS URL (the IdP's `jwks_uri`), fetched lazily and cached; refetched
    /// on an unknown `kid`, at most once per refetch interval.
    JwksUrl(String),
}

impl KeySource {
    /// The key source from the three mutually exclusive `[auth]` keys
    /// (`hs256_secret`, `jwks_file`, `jwks_url`): exactly one must be set.
    pub fn from_auth_keys(
        hs256_secret: Option<Secret>,
        jwks_file: Option<PathBuf>,
        jwks_url: Option<String>,
    ) -> Result<KeySource, IdentityError> {
        match (hs256_secret, jwks_file, jwks_url) {
            (Some(s), None, None) => Ok(KeySource::Hs256(s)),
            (None, Some(f), None) => Ok(KeySource::JwksFile(f)),
            (None, None, Some(u)) => Ok(KeySource::JwksUrl(u)),
            (None, None, None) => Err(IdentityError::Config(
                "set one of auth.hs256_secret, auth.jwks_file, auth.jwks_url".into(),
            )),
            _ => Err(IdentityError::Config(
                "set only one of auth.hs256_secret, auth.jwks_file, auth.jwks_url".into(),
            )),
        }
    }
}

/// Configuration of the identity stage (the `[auth]` table).
#[derive(Debug, Clone)]
pub struct IdentityConfig {
    /// Expected `iss`; when set, the claim is required and must match.
    pub issuer: Option<String>,
    /// Expected `aud`; when set, the claim is required and must contain it.
    /// When unset, a token that carries an `aud` is rejected (RFC 7519 §4.1.3).
    pub audience: Option<String>,
    /// Claim holding the groups: a top-level claim name (`groups`,
    /// `https://example.com/groups`) or a dotted path (`realm_access.roles`).
    pub groups_claim: String,
    /// Verification keys.
    pub keys: KeySource,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
}

impl IdentityConfig {
    /// Defaults: no issuer/audience check, `groups` claim, 60 s leeway.
    pub fn new(keys: KeySource) -> Self {
        IdentityConfig {
            issuer: None,
            audience: None,
            groups_claim: "groups".to_string(),
            keys,
            leeway: Duration::from_secs(60),
        }
    }
}

/// Why a bearer token was not accepted. Every variant maps to HTTP 401;
/// messages are short and never contain the token, a claim value or a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// No token at all.
    #[error("missing bearer token")]
    MissingToken,
    /// Not a JWS compact token, or undecodable header/claims.
    #[error("malformed token")]
    Malformed,
    /// `exp` is in the past (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// `iss` is not the configured issuer.
    #[error("wrong issuer")]
    WrongIssuer,
    /// `aud` does not contain the configured audience.
    #[error("wrong audience")]
    WrongAudience,
    /// No configured key matches the token's `kid`/algorithm, even after a refetch.
    #[error("unknown signing key")]
    UnknownKey,
    /// The header's `alg` is not allowed for the configured keys (`none`, HS* with JWKS, ...).
    #[error("algorithm {0} not allowed")]
    AlgorithmNotAllowed(String),
    /// A required claim (`exp`, `iss`, `aud`) is absent.
    #[error("token lacks required claim `{0}`")]
    MissingClaim(&'static str),
    /// `sub` is absent, empty or not a string.
    #[error("token has no `sub`")]
    MissingSub,
    /// `sub` or a group name holds control, line-separator or invisible
    /// (bidi, zero-width) characters: such a name could forge log lines or
    /// impersonate another name, so the token is refused.
    #[error(
        "token `{0}` contains control or invisible characters (e.g. newline, ESC, bidi or zero-width); identities must be plain text"
    )]
    UnsafeIdentity(&'static str),
    /// The header marks extensions critical (`crit`, RFC 7515 §4.1.11): this
    /// server understands none, so it must refuse the token.
    #[error("token header has `crit` (critical extensions this server does not understand)")]
    CriticalHeader,
    /// No verification keys could be loaded (JWKS fetch failed and nothing cached).
    #[error("signing keys unavailable: {0}")]
    KeysUnavailable(String),
    /// `mint_hs256` without an HS256 secret.
    #[error("minting tokens needs auth.hs256_secret")]
    MintUnsupported,
    /// The identity configuration is unusable.
    #[error("invalid [auth] config: {0}")]
    Config(String),
}

impl IdentityError {
    /// A stable short code for logs and `WWW-Authenticate` `error_description`.
    pub fn reason(&self) -> &'static str {
        match self {
            IdentityError::MissingToken => "missing_token",
            IdentityError::Malformed => "malformed",
            IdentityError::Expired => "expired",
            IdentityError::NotYetValid => "not_yet_valid",
            IdentityError::BadSignature => "bad_signature",
            IdentityError::WrongIssuer => "wrong_issuer",
            IdentityError::WrongAudience => "wrong_audience",
            IdentityError::UnknownKey => "unknown_key",
            IdentityError::AlgorithmNotAllowed(_) => "algorithm_not_allowed",
            IdentityError::MissingClaim(_) => "missing_claim",
            IdentityError::MissingSub => "missing_sub",
            IdentityError::UnsafeIdentity(_) => "unsafe_identity",
            IdentityError::CriticalHeader => "unsupported_crit",
            IdentityError::KeysUnavailable(_) => "keys_unavailable",
            IdentityError::MintUnsupported => "mint_unsupported",
            IdentityError::Config(_) => "config",
        }
    }
}

/// Verifies bearer tokens against one [`IdentityConfig`]. Cheap to share
/// (`Arc<Authenticator>`); JWKS caching is internal.
pub struct Authenticator {
    issuer: Option<String>,
    audience: Option<String>,
    groups_claim: String,
    leeway: Duration,
    keys: Keys,
    /// Tokens already verified, by their exact text: an agent sends the same
    /// bearer on every call, and an RS256/ES256 signature check costs far more
    /// than the rest of identity.
    verified: quick_cache::sync::Cache<String, VerifiedToken>,
}

/// A token that passed every check, and until when that answer is reused.
#[derive(Clone)]
struct VerifiedToken {
    principal: Principal,
    /// Unix seconds: the token's `exp`, capped at verification +
    /// [`VERIFIED_TOKEN_REUSE`] so that a key withdrawn from the JWKS stops
    /// admitting its tokens within that time.
    until: u64,
}

/// Longest a verified token is trusted without checking its signature again.
const VERIFIED_TOKEN_REUSE: Duration = Duration::from_secs(60);
/// Distinct tokens remembered at once.
const VERIFIED_TOKEN_ENTRIES: usize = 4096;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

enum Keys {
    Hs256 {
        decoding: DecodingKey,
        encoding: EncodingKey,
    },
    Jwks(jwks::JwksCache),
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = match &self.keys {
            Keys::Hs256 { .. } => "hs256",
            Keys::Jwks(_) => "jwks",
        };
        f.debug_struct("Authenticator")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("groups_claim", &self.groups_claim)
            .field("keys", &keys)
            .finish()
    }
}

// === impl Authenticator ===

impl Authenticator {
    /// Build from config. A JWKS file is read now (a broken file is a config
    /// error); a JWKS URL is fetched lazily on the first token (call
    /// [`Authenticator::refresh_keys`] to prefetch).
    pub fn new(config: IdentityConfig) -> Result<Self, IdentityError> {
        if config.groups_claim.trim().is_empty() {
            return Err(IdentityError::Config("groups_claim is empty".into()));
        }
        let keys = match &config.keys {
            KeySource::Hs256(secret) => {
                let raw = secret.expose().as_bytes();
                if raw.is_empty() {
                    return Err(IdentityError::Config("hs256_secret is empty".into()));
                }
                Keys::Hs256 {
                    decoding: DecodingKey::from_secret(raw),
                    encoding: EncodingKey::from_secret(raw),
                }
            }
            KeySource::JwksFile(path) => Keys::Jwks(jwks::JwksCache::from_file(path.clone())?),
            KeySource::JwksUrl(url) => Keys::Jwks(jwks::JwksCache::from_url(url)?),
        };
        Ok(Authenticator {
            issuer: config.issuer,
            audience: config.audience,
            groups_claim: config.groups_claim,
            leeway: config.leeway,
            keys,
            verified: quick_cache::sync::Cache::new(VERIFIED_TOKEN_ENTRIES),
        })
    }

    /// Minimum time between two JWKS refetches triggered by unknown `kid`s
    /// (default [`DEFAULT_REFETCH_INTERVAL`]). No effect with an HS256 secret.
    pub fn with_refetch_interval(mut self, interval: Duration) -> Self {
        if let Keys::Jwks(cache) = &mut self.keys {
            cache.set_refetch_interval(interval);
        }
        self
    }

    /// Fetch (URL) or re-read (file) the JWKS now, ignoring the rate limit.
    /// On failure the previously cached keys stay in use.
    pub async fn refresh_keys(&self) -> Result<(), IdentityError> {
        match &self.keys {
            Keys::Hs256 { .. } => Ok(()),
            Keys::Jwks(cache) => cache.refresh().await,
        }
    }

    /// Verify `bearer` (a compact JWT, with or without a `Bearer ` prefix)
    /// and return who it names.
    pub async fn resolve(&self, bearer: &str) -> Result<Principal, IdentityError> {
        let token = strip_bearer(bearer);
        if token.is_empty() {
            return Err(IdentityError::MissingToken);
        }
        if let Some(known) = self.verified.get(token) {
            if unix_now() < known.until {
                return Ok(known.principal);
            }
            self.verified.remove(token);
        }
        let (principal, claims) = self.verify(token).await?;
        // `exp` is required and was just checked, so it is a number here.
        if let Some(exp) = claims.get("exp").and_then(Value::as_f64) {
            let until = (exp as u64).min(unix_now() + VERIFIED_TOKEN_REUSE.as_secs());
            self.verified.insert(
                token.to_string(),
                VerifiedToken {
                    principal: principal.clone(),
                    until,
                },
            );
        }
        Ok(principal)
    }

    /// Verify a compact JWT every time (no reuse of an earlier answer) and
    /// return who it names and all its verified claims: for callers that
    /// check more than identity does (an OpenID Connect ID token's `nonce`
    /// and `azp`). The same checks as [`Authenticator::resolve`].
    pub async fn verify(
        &self,
        token: &str,
    ) -> Result<(Principal, Map<String, Value>), IdentityError> {
        let token = strip_bearer(token);
        if token.is_empty() {
            return Err(IdentityError::MissingToken);
        }
        let header = claims::peek_header(token)?;
        // `alg` strings jsonwebtoken does not know (`none`, `HS1`, ...) are refused here.
        let alg: Algorithm = header
            .alg
            .parse()
            .map_err(|_| IdentityError::AlgorithmNotAllowed(claims::printable(&header.alg)))?;

        let validation = self.validation(alg);
        let claims: Map<String, Value> = match &self.keys {
            Keys::Hs256 { decoding, .. } => {
                if alg != Algorithm::HS256 {
                    return Err(IdentityError::AlgorithmNotAllowed(format!("{alg:?}")));
                }
                decode(token, decoding, &validation)?
            }
            Keys::Jwks(cache) => {
                if matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
                    return Err(IdentityError::AlgorithmNotAllowed(format!("{alg:?}")));
                }
                let candidates = cache.keys_for(header.kid.as_deref(), alg).await?;
                let mut last = IdentityError::UnknownKey;
                let mut verified = None;
                for key in candidates.iter() {
                    match decode(token, key, &validation) {
                        Ok(c) => {
                            verified = Some(c);
                            break;
                        }
                        // Without a `kid` several keys may be candidates: try the next.
                        Err(IdentityError::BadSignature) => last = IdentityError::BadSignature,
                        Err(other) => return Err(other),
                    }
                }
                verified.ok_or(last)?
            }
        };

        let sub = match claims.get("sub") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            _ => return Err(IdentityError::MissingSub),
        };
        let groups = claims::groups(&claims, &self.groups_claim);
        if sub.chars().any(is_unsafe_char) {
            return Err(IdentityError::UnsafeIdentity("sub"));
        }
        if groups.iter().any(|g| g.chars().any(is_unsafe_char)) {
            return Err(IdentityError::UnsafeIdentity("groups"));
        }
        Ok((Principal { sub, groups }, claims))
    }

    /// Mint an HS256 token for `sub` with `groups` (placed at the configured
    /// groups claim), valid for `ttl`, with `iss`/`aud` set so that
    /// [`Authenticator::resolve`] accepts it. Only with an HS256 secret.
    pub fn mint_hs256(
        &self,
        sub: &str,
        groups: &[String],
        ttl: Duration,
    ) -> Result<String, IdentityError> {
        let Keys::Hs256 { encoding, .. } = &self.keys else {
            return Err(IdentityError::MintUnsupported);
        };
        if sub.trim().is_empty() {
            return Err(IdentityError::MissingSub);
        }
        if sub.chars().any(is_unsafe_char) {
            return Err(IdentityError::UnsafeIdentity("sub"));
        }
        if groups.iter().any(|g| g.chars().any(is_unsafe_char)) {
            return Err(IdentityError::UnsafeIdentity("groups"));
        }
        let now = unix_now();
        let mut body = Map::new();
        body.insert("sub".into(), Value::from(sub));
        if let Some(iss) = &self.issuer {
            body.insert("iss".into(), Value::from(iss.as_str()));
        }
        if let Some(aud) = &self.audience {
            body.insert("aud".into(), Value::from(aud.as_str()));
        }
        body.insert("iat".into(), Value::from(now));
        body.insert("nbf".into(), Value::from(now));
        body.insert(
            "exp".into(),
            Value::from(now.saturating_add(ttl.as_secs().max(1))),
        );
        claims::set_groups(&mut body, &self.groups_claim, groups);
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &body, encoding)
            .map_err(|e| IdentityError::Config(format!("cannot sign token: {e}")))
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.leeway = self.leeway.as_secs();
        v.validate_exp = true;
        v.validate_nbf = true;
        let mut required = vec!["exp"];
        if let Some(iss) = &self.issuer {
            v.set_issuer(&[iss]);
            required.push("iss");
        }
        match &self.audience {
            Some(aud) => {
                v.set_audience(&[aud]);
                required.push("aud");
            }
            // No audience configured: jsonwebtoken rejects any token carrying `aud`,
            // which is what RFC 7519 asks of a recipient that has no identifier.
            None => v.validate_aud = true,
        }
        v.set_required_spec_claims(&required);
        v
    }
}

fn strip_bearer(raw: &str) -> &str {
    let raw = raw.trim();
    match (raw.get(..6), raw.as_bytes().get(6)) {
        (Some(p), None) if p.eq_ignore_ascii_case("bearer") => "",
        (Some(p), Some(b)) if p.eq_ignore_ascii_case("bearer") && b.is_ascii_whitespace() => {
            raw[6..].trim()
        }
        _ => raw,
    }
}

fn decode(
    token: &str,
    key: &DecodingKey,
    validation: &Validation,
) -> Result<Map<String, Value>, IdentityError> {
    jsonwebtoken::decode::<Map<String, Value>>(token, key, validation)
        .map(|d| d.claims)
        .map_err(|e| map_jwt_error(e.kind()))
}

fn map_jwt_error(kind: &ErrorKind) -> IdentityError {
    match kind {
        ErrorKind::ExpiredSignature => IdentityError::Expired,
        ErrorKind::ImmatureSignature => IdentityError::NotYetValid,
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat => IdentityError::BadSignature,
        ErrorKind::InvalidIssuer => IdentityError::WrongIssuer,
        ErrorKind::InvalidAudience => IdentityError::WrongAudience,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::InvalidAlgorithmName => IdentityError::AlgorithmNotAllowed("mismatch".into()),
        ErrorKind::MissingRequiredClaim(c) => match c.as_str() {
            "exp" => IdentityError::MissingClaim("exp"),
            "iss" => IdentityError::MissingClaim("iss"),
            "aud" => IdentityError::MissingClaim("aud"),
            "sub" => IdentityError::MissingSub,
            _ => IdentityError::Malformed,
        },
        _ => IdentityError::Malformed,
    }
}

#[cfg(test)]
mod tests;
