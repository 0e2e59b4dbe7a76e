//! JWKS key cache: public verification keys from a file or URL.
//!
//! Keys are loaded once (file: at construction; URL: on first use), then
//! re-loaded when a token names a `kid` we do not have, at most once per
//! refetch interval so a stream of forged `kid`s cannot turn Tollgate into a
//! request amplifier against the IdP. A failed reload keeps the old keys.
//! Only asymmetric signing keys are kept: `oct` (HMAC) keys and `use: enc`
//! keys are dropped at load, so a JWKS configuration can never verify HS*.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

use super::IdentityError;

/// Default minimum time between two refetches of the JWKS.
pub const DEFAULT_REFETCH_INTERVAL: Duration = Duration::from_secs(30);

/// Refetch interval while no keys at all are cached.
const EMPTY_RETRY_INTERVAL: Duration = Duration::from_secs(2);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_JWKS_BYTES: usize = 1 << 20;

/// One usable verification key.
struct CachedKey {
    kid: Option<String>,
    /// Algorithms this key may verify (narrowed by the JWK's `alg` and curve).
    algs: Vec<Algorithm>,
    key: DecodingKey,
}

enum Source {
    File(PathBuf),
    Url {
        url: reqwest::Url,
        client: reqwest::Client,
    },
}

pub(super) struct JwksCache {
    source: Source,
    keys: RwLock<Arc<Vec<CachedKey>>>,
    /// Time of the last load attempt (success or not); `None` = never loaded.
    last_attempt: tokio::sync::Mutex<Option<Instant>>,
    refetch_interval: Duration,
}

// === impl JwksCache ===

impl JwksCache {
    pub(super) fn from_file(path: PathBuf) -> Result<Self, IdentityError> {
        let keys = load_file(&path)?;
        if keys.is_empty() {
            return Err(IdentityError::Config(format!(
                "{}: no usable signing keys",
                path.display()
            )));
        }
        Ok(JwksCache {
            source: Source::File(path),
            keys: RwLock::new(Arc::new(keys)),
            last_attempt: tokio::sync::Mutex::new(Some(Instant::now())),
            refetch_interval: DEFAULT_REFETCH_INTERVAL,
        })
    }

    pub(super) fn from_url(url: &str) -> Result<Self, IdentityError> {
        let url = reqwest::Url::parse(url)
            .map_err(|e| IdentityError::Config(format!("jwks_url: {e}")))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(IdentityError::Config("jwks_url must be http(s)".into()));
        }
        // reqwest is built without a bundled crypto provider: make sure the
        // process has one (aws-lc-rs, the workspace's only provider).
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .map_err(|e| IdentityError::Config(format!("jwks http client: {e}")))?;
        Ok(JwksCache {
            source: Source::Url { url, client },
            keys: RwLock::new(Arc::new(Vec::new())),
            last_attempt: tokio::sync::Mutex::new(None),
            refetch_interval: DEFAULT_REFETCH_INTERVAL,
        })
    }

    pub(super) fn set_refetch_interval(&mut self, interval: Duration) {
        self.refetch_interval = interval;
    }

    /// Keys that may verify a token with this `kid` and `alg`, reloading the
    /// set once (rate-limited) when none match.
    pub(super) async fn keys_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Vec<DecodingKey>, IdentityError> {
        let found = self.matching(kid, alg);
        if !found.is_empty() {
            return Ok(found);
        }
        {
            let mut last = self.last_attempt.lock().await;
            // Another task may have reloaded while we waited for the lock.
            let found = self.matching(kid, alg);
            if !found.is_empty() {
                return Ok(found);
            }
            // With nothing cached (the IdP was down at start) retry sooner.
            let interval = if self.current().is_empty() {
                self.refetch_interval.min(EMPTY_RETRY_INTERVAL)
            } else {
                self.refetch_interval
            };
            let due = match *last {
                None => true,
                Some(t) => t.elapsed() >= interval,
            };
            if due {
                *last = Some(Instant::now());
                if let Err(e) = self.reload().await {
                    tracing::warn!(error = %e, "JWKS reload failed; keeping the cached keys");
                    if self.current().is_empty() {
                        return Err(e);
                    }
                }
            }
        }
        let found = self.matching(kid, alg);
        if !found.is_empty() {
            Ok(found)
        } else if self.current().is_empty() {
            Err(IdentityError::KeysUnavailable(
                "no JWKS loaded yet (last fetch failed)".into(),
            ))
        } else {
            Err(IdentityError::UnknownKey)
        }
    }

    /// Reload now, ignoring the rate limit.
    pub(super) async fn refresh(&self) -> Result<(), IdentityError> {
        let mut last = self.last_attempt.lock().await;
        *last = Some(Instant::now());
        self.reload().await
    }

    fn current(&self) -> Arc<Vec<CachedKey>> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn matching(&self, kid: Option<&str>, alg: Algorithm) -> Vec<DecodingKey> {
        self.current()
            .iter()
            .filter(|k| k.algs.contains(&alg))
            .filter(|k| match kid {
                Some(kid) => k.kid.as_deref() == Some(kid),
                None => true,
            })
            .map(|k| k.key.clone())
            .collect()
    }

    async fn reload(&self) -> Result<(), IdentityError> {
        let keys = match &self.source {
            Source::File(path) => load_file(path)?,
            Source::Url { url, client } => fetch(client, url).await?,
        };
        if keys.is_empty() {
            return Err(IdentityError::KeysUnavailable(
                "JWKS has no usable signing keys".into(),
            ));
        }
        tracing::debug!(count = keys.len(), "JWKS loaded");
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keys);
        Ok(())
    }
}

async fn fetch(
    client: &reqwest::Client,
    url: &reqwest::Url,
) -> Result<Vec<CachedKey>, IdentityError> {
    let unavailable =
        |what: String| IdentityError::KeysUnavailable(format!("{}: {what}", redact(url)));
    let resp = client
        .get(url.clone())
        .send()
        .await
        .map_err(|e| unavailable(e.without_url().to_string()))?;
    if !resp.status().is_success() {
        return Err(unavailable(format!("HTTP {}", resp.status())));
    }
    let body = resp
        .bytes()
        .await
        .map_err(|e| unavailable(e.without_url().to_string()))?;
    if body.len() > MAX_JWKS_BYTES {
        return Err(unavailable("JWKS larger than 1 MiB".into()));
    }
    parse_jwks(&body).map_err(unavailable)
}

/// Scheme, host and path only: a JWKS URL could carry credentials in its query.
fn redact(url: &reqwest::Url) -> String {
    format!(
        "{}://{}{}",
        url.scheme(),
        url.host_str().unwrap_or(""),
        url.path()
    )
}

fn load_file(path: &PathBuf) -> Result<Vec<CachedKey>, IdentityError> {
    let body = std::fs::read(path)
        .map_err(|e| IdentityError::KeysUnavailable(format!("{}: {e}", path.display())))?;
    parse_jwks(&body)
        .map_err(|e| IdentityError::KeysUnavailable(format!("{}: {e}", path.display())))
}

/// Parse a JWKS document, keeping every usable asymmetric signing key and
/// skipping (with a debug log) keys we cannot or must not use.
fn parse_jwks(body: &[u8]) -> Result<Vec<CachedKey>, String> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let Some(entries) = doc.get("keys").and_then(Value::as_array) else {
        return Err("not a JWKS (no `keys` array)".into());
    };
    let mut out = Vec::new();
    for entry in entries {
        let Ok(jwk) = serde_json::from_value::<Jwk>(entry.clone()) else {
            tracing::debug!("JWKS: skipping an unparseable key");
            continue;
        };
        match cached_key(&jwk) {
            Some(k) => out.push(k),
            None => {
                tracing::debug!(kid = ?jwk.common.key_id, "JWKS: skipping a key not usable for signatures")
            }
        }
    }
    Ok(out)
}

fn cached_key(jwk: &Jwk) -> Option<CachedKey> {
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return None;
    }
    let family_algs: Vec<Algorithm> = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => vec![
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            vec![Algorithm::EdDSA]
        }
        // `oct` (HMAC) keys never verify anything in a JWKS configuration.
        _ => return None,
    };
    let algs = match jwk.common.key_algorithm {
        None => family_algs,
        Some(ka) => {
            let alg = Algorithm::try_from(ka).ok()?;
            if !family_algs.contains(&alg) {
                return None;
            }
            vec![alg]
        }
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(CachedKey {
        kid: jwk.common.key_id.clone(),
        algs,
        key,
    })
}
