//! The console's OpenID Connect relying party: the authorization code flow
//! with PKCE (S256) against the issuer named in `[ui] oidc_issuer`.
//!
//! [`Oidc::start`] makes a login request (state, nonce, PKCE verifier),
//! remembers it server-side in a bounded table for [`LOGIN_TTL`], and
//! returns the provider's authorization URL and a random value the browser
//! keeps in a short-lived cookie. [`Oidc::finish`] takes the callback's
//! `state` and `code`: the request is taken out of the table (single use,
//! whatever happens next), must belong to the same browser (the cookie) and
//! be younger than [`LOGIN_TTL`]; the code is exchanged at the token
//! endpoint (client_secret_basic or client_secret_post, as the provider
//! advertises) with the PKCE verifier, and the ID token is verified: its
//! signature with the issuer's JWKS, `iss`, `aud` = client id, `exp`, `nbf`,
//! `nonce`, and `azp` (when present, or when `aud` names several clients).
//! The principal's groups come from the `[auth]` groups claim.
//!
//! No axum here: the HTTP handlers are in [`super::session`]. Hand-rolled on
//! reqwest and gateway-core's identity stage (its JWKS cache and JWT
//! checks) rather than the `openidconnect` crate, which brings a second
//! crypto stack (RustCrypto `rsa` 0.9, `p256`/`p384` 0.13, beside the tree's
//! aws-lc-rs and its 0.10/0.14 copies) for the same checks.
//!
//! Never in an error, a log line or a page: the client secret, the code,
//! the PKCE verifier, the nonce, any token. Errors carry fixed words and,
//! from the provider, only an OAuth `error` code reduced to `[a-z_]`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use gateway_core::Principal;
use gateway_core::identity::{Authenticator, IdentityConfig, IdentityError, KeySource};
use gateway_core::secret::Secret;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Url;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// What `application/x-www-form-urlencoded` leaves raw.
const FORM: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'*');

/// How long a login request waits for the provider's callback.
pub const LOGIN_TTL: Duration = Duration::from_secs(600);
/// Login requests remembered at once; past it the oldest is dropped.
pub const MAX_PENDING: usize = 10_000;
/// Time allowed for one request to the provider.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Byte cap on the discovery document and the token response.
const MAX_BODY: usize = 1 << 20;

/// What the relying party needs from the config.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// `[ui] oidc_issuer`.
    pub issuer: String,
    /// `[ui] client_id`.
    pub client_id: String,
    /// `[ui] client_secret`, resolved; `None`: a public client.
    pub client_secret: Option<Secret>,
    /// Scopes besides `openid`.
    pub scopes: Vec<String>,
    /// `[auth] groups_claim` (default `groups`).
    pub groups_claim: String,
    /// `[auth] leeway` on `exp`/`nbf`.
    pub leeway: Duration,
    /// `<public_url>/ui/login/callback`, as registered at the provider.
    pub redirect_uri: String,
}

/// Why a login through the provider did not happen. Messages are fixed
/// texts for the page; [`OidcError::reason`] is the word counted with the
/// other refused logins.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// The discovery document could not be fetched or is unusable.
    #[error("the identity provider cannot be reached or its discovery document is unusable ({0})")]
    Discovery(String),
    /// The callback's `state` is unknown: forged, or already used.
    #[error("this login request is unknown or was already used; start again from the login page")]
    UnknownState,
    /// The callback came to another browser than the one that started it.
    #[error("this login was started in another browser; start again from the login page")]
    WrongBrowser,
    /// The callback came after [`LOGIN_TTL`].
    #[error("this login request has expired; start again from the login page")]
    Expired,
    /// The provider answered the authorization request with an error.
    #[error("the identity provider refused the login ({0})")]
    Denied(String),
    /// The callback has no code.
    #[error("the identity provider's answer has no authorization code")]
    NoCode,
    /// The token endpoint refused the code or could not be reached.
    #[error("the identity provider did not accept the login code ({0})")]
    Exchange(String),
    /// The ID token did not verify.
    #[error("the identity provider's ID token was refused ({})", .0.reason())]
    IdToken(IdentityError),
    /// The ID token's `nonce` is not this login's.
    #[error("the ID token belongs to another login (nonce)")]
    Nonce,
    /// The ID token was issued to another client (`azp`).
    #[error("the ID token was issued to another client (azp)")]
    Azp,
}

impl OidcError {
    /// A fixed word for the refused-login counts (`auth_refused`).
    pub fn reason(&self) -> String {
        match self {
            OidcError::Discovery(_) => "oidc_discovery".into(),
            OidcError::UnknownState => "oidc_state".into(),
            OidcError::WrongBrowser => "oidc_browser".into(),
            OidcError::Expired => "oidc_login_expired".into(),
            OidcError::Denied(_) => "oidc_denied".into(),
            OidcError::NoCode => "oidc_no_code".into(),
            OidcError::Exchange(_) => "oidc_exchange".into(),
            OidcError::IdToken(e) => format!("oidc_id_token_{}", e.reason()),
            OidcError::Nonce => "oidc_nonce".into(),
            OidcError::Azp => "oidc_azp".into(),
        }
    }

    /// Whether the fault is the provider's or ours (503) rather than the
    /// request's (400).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, OidcError::Discovery(_))
            || matches!(self, OidcError::IdToken(IdentityError::KeysUnavailable(_)))
    }
}

/// A started login: where to send the browser, and the value it keeps in
/// the login cookie until the callback.
pub struct Started {
    /// The provider's authorization URL with this request's parameters.
    pub authorize_url: String,
    /// The browser binding (random; the table keeps only its hash).
    pub browser: String,
}

impl std::fmt::Debug for Started {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Started { .. }")
    }
}

/// A finished login.
#[derive(Debug)]
pub struct LoggedIn {
    /// Who logged in.
    pub principal: Principal,
    /// The `/ui` page the login was started from.
    pub next: String,
}

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientAuth {
    Basic,
    Post,
    None,
}

/// The provider, as its discovery document describes it.
struct Provider {
    authorization_endpoint: Url,
    token_endpoint: Url,
    client_auth: ClientAuth,
    /// ID token checks: the issuer's JWKS, `iss`, `aud` = client id.
    verifier: Authenticator,
}

/// One login request waiting for its callback.
struct Pending {
    /// SHA-256 of the browser binding.
    browser: [u8; 32],
    nonce: String,
    verifier: String,
    next: String,
    created: Instant,
}

/// The relying party.
pub struct Oidc {
    config: OidcConfig,
    http: reqwest::Client,
    /// Discovered once, on the first login (retried until it succeeds, so
    /// the server starts while the provider is down).
    provider: tokio::sync::OnceCell<Arc<Provider>>,
    pending: Mutex<HashMap<String, Pending>>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field("issuer", &self.config.issuer)
            .field("client_id", &self.config.client_id)
            .finish_non_exhaustive()
    }
}

/// 32 random bytes, base64url: states, nonces, verifiers, bindings.
pub fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// The PKCE S256 challenge of a verifier (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Compare two equal-length byte strings in time independent of where
/// they differ.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An OAuth error code from the provider, reduced to `[a-z_]` (at most 40
/// characters) so it can be shown and logged.
fn error_code(raw: &str) -> String {
    let s: String = raw
        .chars()
        .filter(|c| c.is_ascii_lowercase() || *c == '_')
        .take(40)
        .collect();
    if s.is_empty() { "unknown".into() } else { s }
}

/// An endpoint URL of the discovery document: https, or http on a loopback
/// host; never with credentials.
fn endpoint(doc: &Value, key: &str) -> Result<Url, OidcError> {
    let raw = doc
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| OidcError::Discovery(format!("no {key}")))?;
    let url = Url::parse(raw).map_err(|_| OidcError::Discovery(format!("{key} is not a URL")))?;
    let ok = match url.scheme() {
        "https" => true,
        "http" => crate::config::is_loopback(&url),
        _ => false,
    };
    if !ok || !url.username().is_empty() || url.password().is_some() {
        return Err(OidcError::Discovery(format!(
            "{key} must be https (http only on a loopback host)"
        )));
    }
    Ok(url)
}

fn strings<'a>(doc: &'a Value, key: &str) -> Option<Vec<&'a str>> {
    doc.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
}

/// A response body, at most [`MAX_BODY`] bytes.
async fn body(resp: reqwest::Response, what: &str) -> Result<Vec<u8>, String> {
    if resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
        return Err(format!("{what} larger than 1 MiB"));
    }
    let mut resp = resp;
    let mut out = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("{what}: {}", e.without_url()))?
    {
        out.extend_from_slice(&chunk);
        if out.len() > MAX_BODY {
            return Err(format!("{what} larger than 1 MiB"));
        }
    }
    Ok(out)
}

// === impl Oidc ===

impl Oidc {
    /// A relying party for `config`; nothing is fetched until the first login.
    pub fn new(config: OidcConfig) -> Result<Self, OidcError> {
        crate::init_crypto();
        let http = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            // The token endpoint's answer is read where it is; a redirect
            // would carry the code and the secret somewhere else.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| OidcError::Discovery(format!("http client: {e}")))?;
        Ok(Oidc {
            config,
            http,
            provider: tokio::sync::OnceCell::new(),
            pending: Mutex::new(HashMap::new()),
        })
    }

    /// The configured issuer.
    pub fn issuer(&self) -> &str {
        &self.config.issuer
    }

    /// Login requests waiting for their callback.
    pub fn pending_logins(&self) -> usize {
        self.pending.lock().map(|p| p.len()).unwrap_or(0)
    }

    async fn provider(&self) -> Result<Arc<Provider>, OidcError> {
        self.provider
            .get_or_try_init(|| async { self.discover().await.map(Arc::new) })
            .await
            .cloned()
    }

    /// Fetch and check `<issuer>/.well-known/openid-configuration`.
    async fn discover(&self) -> Result<Provider, OidcError> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.config.issuer.trim_end_matches('/')
        );
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| OidcError::Discovery(e.without_url().to_string()))?;
        if !resp.status().is_success() {
            return Err(OidcError::Discovery(format!("HTTP {}", resp.status())));
        }
        let raw = body(resp, "discovery document")
            .await
            .map_err(OidcError::Discovery)?;
        let doc: Value = serde_json::from_slice(&raw)
            .map_err(|_| OidcError::Discovery("discovery document is not JSON".into()))?;
        // OpenID Connect Discovery §4.3: the document's issuer is exactly
        // the one configured; every ID token's `iss` must then equal it.
        let issuer = doc.get("issuer").and_then(Value::as_str).unwrap_or("");
        if issuer != self.config.issuer {
            return Err(OidcError::Discovery(
                "its issuer is not ui.oidc_issuer (they must be equal, character for character)"
                    .into(),
            ));
        }
        let authorization_endpoint = endpoint(&doc, "authorization_endpoint")?;
        let token_endpoint = endpoint(&doc, "token_endpoint")?;
        let jwks_uri = endpoint(&doc, "jwks_uri")?;
        if let Some(types) = strings(&doc, "response_types_supported")
            && !types.contains(&"code")
        {
            return Err(OidcError::Discovery(
                "the provider does not support the code flow".into(),
            ));
        }
        if let Some(methods) = strings(&doc, "code_challenge_methods_supported")
            && !methods.contains(&"S256")
        {
            return Err(OidcError::Discovery(
                "the provider does not support PKCE S256".into(),
            ));
        }
        // RFC 8414 §2: absent means client_secret_basic only.
        let methods = strings(&doc, "token_endpoint_auth_methods_supported")
            .unwrap_or_else(|| vec!["client_secret_basic"]);
        let client_auth = match &self.config.client_secret {
            None => ClientAuth::None,
            Some(_) if methods.contains(&"client_secret_basic") => ClientAuth::Basic,
            Some(_) if methods.contains(&"client_secret_post") => ClientAuth::Post,
            Some(_) => {
                return Err(OidcError::Discovery(
                    "the provider takes neither client_secret_basic nor client_secret_post".into(),
                ));
            }
        };
        let mut ic = IdentityConfig::new(KeySource::JwksUrl(jwks_uri.to_string()));
        ic.issuer = Some(issuer.to_string());
        ic.audience = Some(self.config.client_id.clone());
        ic.groups_claim = self.config.groups_claim.clone();
        ic.leeway = self.config.leeway;
        let verifier = Authenticator::new(ic).map_err(|e| OidcError::Discovery(e.to_string()))?;
        tracing::info!(issuer, "OpenID Connect provider discovered");
        Ok(Provider {
            authorization_endpoint,
            token_endpoint,
            client_auth,
            verifier,
        })
    }

    /// Start a login that returns to `next` (a `/ui` path, checked by the
    /// caller).
    pub async fn start(&self, next: String) -> Result<Started, OidcError> {
        let provider = self.provider().await?;
        let state = random_token();
        let nonce = random_token();
        let verifier = random_token();
        let browser = random_token();
        let mut url = provider.authorization_endpoint.clone();
        let scope = std::iter::once("openid")
            .chain(
                self.config
                    .scopes
                    .iter()
                    .map(String::as_str)
                    .filter(|s| *s != "openid"),
            )
            .collect::<Vec<_>>()
            .join(" ");
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.config.client_id)
            .append_pair("redirect_uri", &self.config.redirect_uri)
            .append_pair("scope", &scope)
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &pkce_challenge(&verifier))
            .append_pair("code_challenge_method", "S256");
        let pending = Pending {
            browser: Sha256::digest(browser.as_bytes()).into(),
            nonce,
            verifier,
            next,
            created: Instant::now(),
        };
        let mut table = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if table.len() >= MAX_PENDING {
            table.retain(|_, p| p.created.elapsed() < LOGIN_TTL);
        }
        if table.len() >= MAX_PENDING
            && let Some(oldest) = table
                .iter()
                .min_by_key(|(_, p)| p.created)
                .map(|(k, _)| k.clone())
        {
            table.remove(&oldest);
        }
        table.insert(state, pending);
        Ok(Started {
            authorize_url: url.to_string(),
            browser,
        })
    }

    /// Finish a login from the callback's parameters and the browser's
    /// login cookie.
    pub async fn finish(
        &self,
        callback: &Callback,
        browser: Option<&str>,
    ) -> Result<LoggedIn, OidcError> {
        // Taken out first: a state is good for one callback, whatever
        // happens to that one.
        let pending = callback.state.as_deref().and_then(|s| {
            self.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(s)
        });
        let Some(pending) = pending else {
            return Err(OidcError::UnknownState);
        };
        let bound = browser.is_some_and(|b| {
            let h: [u8; 32] = Sha256::digest(b.as_bytes()).into();
            same_bytes(&h, &pending.browser)
        });
        if !bound {
            return Err(OidcError::WrongBrowser);
        }
        if pending.created.elapsed() >= LOGIN_TTL {
            return Err(OidcError::Expired);
        }
        if let Some(e) = &callback.error {
            return Err(OidcError::Denied(error_code(e)));
        }
        let code = callback
            .code
            .as_deref()
            .filter(|c| !c.is_empty())
            .ok_or(OidcError::NoCode)?;
        let provider = self.provider().await?;
        let id_token = self.exchange(&provider, code, &pending.verifier).await?;
        let (principal, claims) = provider
            .verifier
            .verify(&id_token)
            .await
            .map_err(OidcError::IdToken)?;
        let nonce_ok = claims
            .get("nonce")
            .and_then(Value::as_str)
            .is_some_and(|n| same_bytes(n.as_bytes(), pending.nonce.as_bytes()));
        if !nonce_ok {
            return Err(OidcError::Nonce);
        }
        // OpenID Connect Core §3.1.3.7 (4, 5): several audiences need an
        // `azp`, and an `azp` must be this client.
        let audiences = match claims.get("aud") {
            Some(Value::Array(a)) => a.len(),
            _ => 1,
        };
        match claims.get("azp") {
            Some(Value::String(azp)) if *azp == self.config.client_id => {}
            None if audiences == 1 => {}
            _ => return Err(OidcError::Azp),
        }
        Ok(LoggedIn {
            principal,
            next: pending.next,
        })
    }

    /// Exchange the code for tokens; the ID token.
    async fn exchange(
        &self,
        provider: &Provider,
        code: &str,
        verifier: &str,
    ) -> Result<String, OidcError> {
        let mut form: Vec<(&str, &str)> = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &self.config.redirect_uri),
            ("code_verifier", verifier),
        ];
        let mut req = self.http.post(provider.token_endpoint.clone());
        let secret = self.config.client_secret.as_ref().map(Secret::expose);
        match (provider.client_auth, secret) {
            (ClientAuth::Basic, Some(secret)) => {
                // RFC 6749 §2.3.1: each part form-encoded, then Basic.
                let enc = |s: &str| utf8_percent_encode(s, FORM).to_string();
                let basic =
                    STANDARD.encode(format!("{}:{}", enc(&self.config.client_id), enc(secret)));
                req = req.header(reqwest::header::AUTHORIZATION, format!("Basic {basic}"));
            }
            (ClientAuth::Post, Some(secret)) => {
                form.push(("client_id", &self.config.client_id));
                form.push(("client_secret", secret));
            }
            _ => form.push(("client_id", &self.config.client_id)),
        }
        let resp = req
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|e| OidcError::Exchange(format!("unreachable: {}", e.without_url())))?;
        let status = resp.status();
        let raw = body(resp, "token response")
            .await
            .map_err(OidcError::Exchange)?;
        let parsed: Result<TokenResponse, _> = serde_json::from_slice(&raw);
        if !status.is_success() {
            let code = parsed
                .ok()
                .and_then(|t| t.error)
                .map(|e| error_code(&e))
                .unwrap_or_else(|| format!("HTTP {}", status.as_u16()));
            return Err(OidcError::Exchange(code));
        }
        parsed
            .ok()
            .and_then(|t| t.id_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| OidcError::Exchange("no id_token in the answer".into()))
    }
}

/// The token endpoint's answer: only what is read (the access token is
/// not kept).
#[derive(Deserialize)]
struct TokenResponse {
    id_token: Option<String>,
    error: Option<String>,
}

/// The query of the callback (`/ui/login/callback`).
#[derive(Debug, Default, Deserialize)]
pub struct Callback {
    /// This login's state.
    pub state: Option<String>,
    /// The authorization code.
    pub code: Option<String>,
    /// An OAuth error code instead of a code.
    pub error: Option<String>,
}

#[cfg(test)]
mod tests;
