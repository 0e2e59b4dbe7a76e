//! Identity stage end to end: real signatures (jsonwebtoken + the committed
//! test-only keys in `tests/fixtures/identity/`), a real JWKS HTTP server on
//! 127.0.0.1 for the URL source. No mocks of the verifier.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gateway_core::identity::{Authenticator, IdentityConfig, IdentityError, KeySource};
use gateway_core::secret::Secret;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const SECRET: &str = "test-only-hs256-secret-0123456789abcdef";
const ISS: &str = "https://idp.test";
const AUD: &str = "tollgate";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/identity")
        .join(name)
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap()
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims(sub: &str) -> Value {
    json!({"sub": sub, "iss": ISS, "aud": AUD, "exp": now() + 600, "iat": now(), "groups": ["agents"]})
}

fn hs_config() -> IdentityConfig {
    let mut c = IdentityConfig::new(KeySource::Hs256(Secret::new(SECRET)));
    c.issuer = Some(ISS.into());
    c.audience = Some(AUD.into());
    c.leeway = Duration::from_secs(5);
    c
}

fn jwks_file_config() -> IdentityConfig {
    IdentityConfig {
        keys: KeySource::JwksFile(fixture("jwks.json")),
        ..hs_config()
    }
}

fn sign_hs(claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn sign(alg: Algorithm, kid: &str, key: &EncodingKey, claims: &Value) -> String {
    let mut h = Header::new(alg);
    h.kid = Some(kid.into());
    jsonwebtoken::encode(&h, claims, key).unwrap()
}

fn rsa_key(name: &str) -> EncodingKey {
    EncodingKey::from_rsa_pem(&read(name)).unwrap()
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

async fn resolve_err(auth: &Authenticator, token: &str) -> IdentityError {
    let err = auth
        .resolve(token)
        .await
        .expect_err("token must be rejected");
    let msg = err.to_string();
    assert!(!msg.contains(token), "error leaks the token: {msg}");
    assert!(!msg.contains(SECRET), "error leaks the secret: {msg}");
    err
}

// --- HS256 ---

#[tokio::test]
async fn hs256_valid_token_resolves() {
    let auth = Authenticator::new(hs_config()).unwrap();
    let p = auth
        .resolve(&format!("Bearer {}", sign_hs(&claims("alice"))))
        .await
        .unwrap();
    assert_eq!(p.sub, "alice");
    assert_eq!(p.groups, ["agents"]);
}

#[tokio::test]
async fn minted_token_round_trips() {
    let mut cfg = hs_config();
    cfg.groups_claim = "realm_access.roles".into();
    let auth = Authenticator::new(cfg).unwrap();
    let token = auth
        .mint_hs256(
            "bob",
            &["reviewers".into(), "dba".into()],
            Duration::from_secs(60),
        )
        .unwrap();
    let p = auth.resolve(&token).await.unwrap();
    assert_eq!(
        (p.sub.as_str(), p.groups.clone()),
        ("bob", vec!["reviewers".to_string(), "dba".to_string()])
    );
}

#[tokio::test]
async fn expired_token_rejected() {
    let auth = Authenticator::new(hs_config()).unwrap();
    let mut c = claims("alice");
    c["exp"] = json!(now() - 3600);
    assert_eq!(
        resolve_err(&auth, &sign_hs(&c)).await,
        IdentityError::Expired
    );
}

#[tokio::test]
async fn a_verified_token_stops_working_when_it_expires() {
    // Verified tokens are remembered; the memory must not outlive `exp`.
    let mut cfg = hs_config();
    cfg.leeway = Duration::ZERO;
    let auth = Authenticator::new(cfg).unwrap();
    let mut c = claims("alice");
    c["exp"] = json!(now() + 1);
    let token = sign_hs(&c);
    assert_eq!(auth.resolve(&token).await.unwrap().sub, "alice");
    assert_eq!(auth.resolve(&token).await.unwrap().sub, "alice");
    while now() <= c["exp"].as_i64().unwrap() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(resolve_err(&auth, &token).await, IdentityError::Expired);
    // A tampered copy of a remembered token is not the remembered token.
    let fresh = sign_hs(&claims("alice"));
    auth.resolve(&fresh).await.unwrap();
    // Change one signature character well inside the base64 (not a padding bit).
    let at = fresh.len() - 10;
    let flipped = if fresh.as_bytes()[at] == b'A' {
        "B"
    } else {
        "A"
    };
    let forged = format!("{}{flipped}{}", &fresh[..at], &fresh[at + 1..]);
    assert_eq!(
        resolve_err(&auth, &forged).await,
        IdentityError::BadSignature
    );
}

#[tokio::test]
async fn missing_exp_rejected() {
    let auth = Authenticator::new(hs_config()).unwrap();
    let mut c = claims("alice");
    c.as_object_mut().unwrap().remove("exp");
    assert_eq!(
        resolve_err(&auth, &sign_hs(&c)).await,
        IdentityError::MissingClaim("exp")
    );
}

#[tokio::test]
async fn not_yet_valid_token_rejected() {
    let auth = Authenticator::new(hs_config()).unwrap();
    let mut c = claims("alice");
    c["nbf"] = json!(now() + 3600);
    assert_eq!(
        resolve_err(&auth, &sign_hs(&c)).await,
        IdentityError::NotYetValid
    );
}

#[tokio::test]
async fn wrong_issuer_rejected() {
    let auth = Authenticator::new(hs_config()).unwrap();
    let mut c = claims("alice");
    c["iss"] = json!("https://evil.test");
    assert_eq!(
        resolve_err(&auth, &sign_hs(&c)).await,
        IdentityError::WrongIssuer
    );
    c.as_object_mut().unwrap().remove("iss");
    assert_eq!(
        resolve_err(&auth, &sign_hs(&c)).await,
        IdentityError::MissingClaim("iss")
    );
}

#[tokio::test]
async fn wrong_audience_rejected() {
    let auth = Authenticator::new(hs_config()).unwrap();
    let mut c = claims("alice");
    c["aud"] = json!(["other-api"]);
    assert_eq!(
        resolve_err(&auth, &sign_hs(&c)).await,
        IdentityError::WrongAudience
    );
    c["aud"] = json!(["other-api", AUD]);
    assert!(
        auth.resolve(&sign_hs(&c)).await.is_ok(),
        "an aud array containing ours is fine"
    );
    c.as_object_mut().unwrap().remove("aud");
    assert_eq!(
        resolve_err(&auth, &sign_hs(&c)).await,
        IdentityError::MissingClaim("aud")
    );
}

#[tokio::test]
async fn bad_hs256_signature_and_missing_sub_rejected() {
    let auth = Authenticator::new(hs_config()).unwrap();
    let other = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims("alice"),
        &EncodingKey::from_secret(b"another-secret-of-decent-length!!"),
    )
    .unwrap();
    assert_eq!(
        resolve_err(&auth, &other).await,
        IdentityError::BadSignature
    );
    let mut c = claims("");
    assert_eq!(
        resolve_err(&auth, &sign_hs(&c)).await,
        IdentityError::MissingSub
    );
    c.as_object_mut().unwrap().remove("sub");
    assert_eq!(
        resolve_err(&auth, &sign_hs(&c)).await,
        IdentityError::MissingSub
    );
    assert_eq!(
        resolve_err(&auth, "not-a-jwt").await,
        IdentityError::Malformed
    );
    assert_eq!(
        resolve_err(&auth, "Bearer ").await,
        IdentityError::MissingToken
    );
}

#[tokio::test]
async fn alg_none_rejected_for_every_key_source() {
    // Hand-crafted: jsonwebtoken cannot even express `none`.
    let token = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims("mallory"))
    );
    for cfg in [hs_config(), jwks_file_config()] {
        let auth = Authenticator::new(cfg).unwrap();
        assert!(matches!(
            resolve_err(&auth, &token).await,
            IdentityError::AlgorithmNotAllowed(_)
        ));
    }
    let upper = format!(
        "{}.{}.",
        b64(&json!({"alg": "NONE"})),
        b64(&claims("mallory"))
    );
    let auth = Authenticator::new(hs_config()).unwrap();
    assert!(matches!(
        resolve_err(&auth, &upper).await,
        IdentityError::AlgorithmNotAllowed(_)
    ));
}

#[tokio::test]
async fn hs256_secret_accepts_only_hs256() {
    let auth = Authenticator::new(hs_config()).unwrap();
    let hs384 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS384),
        &claims("a"),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    assert_eq!(
        resolve_err(&auth, &hs384).await,
        IdentityError::AlgorithmNotAllowed("HS384".into())
    );
    let rs = sign(
        Algorithm::RS256,
        "rsa-1",
        &rsa_key("rsa_private.pem"),
        &claims("a"),
    );
    assert_eq!(
        resolve_err(&auth, &rs).await,
        IdentityError::AlgorithmNotAllowed("RS256".into())
    );
}

// --- JWKS file ---

#[tokio::test]
async fn rs256_es256_eddsa_valid_from_jwks_file() {
    let auth = Authenticator::new(jwks_file_config()).unwrap();
    let rs = sign(
        Algorithm::RS256,
        "rsa-1",
        &rsa_key("rsa_private.pem"),
        &claims("rsa-user"),
    );
    let es = sign(
        Algorithm::ES256,
        "ec-1",
        &EncodingKey::from_ec_pem(&read("ec_private.pem")).unwrap(),
        &claims("ec-user"),
    );
    let ed = sign(
        Algorithm::EdDSA,
        "ed-1",
        &EncodingKey::from_ed_pem(&read("ed_private.pem")).unwrap(),
        &claims("ed-user"),
    );
    assert_eq!(auth.resolve(&rs).await.unwrap().sub, "rsa-user");
    assert_eq!(auth.resolve(&es).await.unwrap().sub, "ec-user");
    assert_eq!(auth.resolve(&ed).await.unwrap().sub, "ed-user");

    // No kid: every key fit for the algorithm is tried.
    let no_kid = jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &claims("nokid"),
        &rsa_key("rsa_private.pem"),
    )
    .unwrap();
    assert_eq!(auth.resolve(&no_kid).await.unwrap().sub, "nokid");
}

#[tokio::test]
async fn jwks_key_confusion_hs256_with_rsa_public_pem_rejected() {
    let auth = Authenticator::new(jwks_file_config()).unwrap();
    // The classic attack: HMAC keyed with the server's public RSA key bytes.
    let forged = sign(
        Algorithm::HS256,
        "rsa-1",
        &EncodingKey::from_secret(&read("rsa_public.pem")),
        &claims("mallory"),
    );
    assert_eq!(
        resolve_err(&auth, &forged).await,
        IdentityError::AlgorithmNotAllowed("HS256".into())
    );
}

#[tokio::test]
async fn jwks_signature_kid_and_alg_must_match_the_key() {
    let auth = Authenticator::new(jwks_file_config()).unwrap();
    // Signed by a key not in the set but claiming kid rsa-1.
    let wrong_key = sign(
        Algorithm::RS256,
        "rsa-1",
        &rsa_key("rsa2_private.pem"),
        &claims("m"),
    );
    assert_eq!(
        resolve_err(&auth, &wrong_key).await,
        IdentityError::BadSignature
    );
    // The JWK pins RS256: PS256 with the same key is not accepted.
    let ps = sign(
        Algorithm::PS256,
        "rsa-1",
        &rsa_key("rsa_private.pem"),
        &claims("m"),
    );
    assert_eq!(resolve_err(&auth, &ps).await, IdentityError::UnknownKey);
    // RS256 naming the EC key's kid.
    let cross = sign(
        Algorithm::RS256,
        "ec-1",
        &rsa_key("rsa_private.pem"),
        &claims("m"),
    );
    assert_eq!(resolve_err(&auth, &cross).await, IdentityError::UnknownKey);
    let unknown = sign(
        Algorithm::RS256,
        "who",
        &rsa_key("rsa_private.pem"),
        &claims("m"),
    );
    assert_eq!(
        resolve_err(&auth, &unknown).await,
        IdentityError::UnknownKey
    );
    assert_eq!(
        auth.mint_hs256("x", &[], Duration::from_secs(5)),
        Err(IdentityError::MintUnsupported)
    );
}

// --- groups ---

#[tokio::test]
async fn groups_as_array_string_and_dotted_path() {
    let cases = [
        ("groups", json!(["a", "b"]), vec!["a", "b"]),
        ("groups", json!("a b  c"), vec!["a", "b", "c"]),
        (
            "realm_access.roles",
            json!({"roles": ["r1", "r2"]}),
            vec!["r1", "r2"],
        ),
    ];
    for (claim, value, want) in cases {
        let mut cfg = hs_config();
        cfg.groups_claim = claim.into();
        let auth = Authenticator::new(cfg).unwrap();
        let mut c = claims("alice");
        c.as_object_mut().unwrap().remove("groups");
        let top = claim.split('.').next().unwrap();
        c[top] = value;
        assert_eq!(
            auth.resolve(&sign_hs(&c)).await.unwrap().groups,
            want,
            "claim {claim}"
        );
    }
    // No claim: no groups (not an error).
    let auth = Authenticator::new(hs_config()).unwrap();
    let mut c = claims("alice");
    c.as_object_mut().unwrap().remove("groups");
    assert!(auth.resolve(&sign_hs(&c)).await.unwrap().groups.is_empty());
}

// --- JWKS URL ---

struct JwksServer {
    url: String,
    doc: Arc<std::sync::Mutex<Value>>,
    hits: Arc<AtomicUsize>,
    failing: Arc<AtomicBool>,
}

async fn jwks_server(initial: Value) -> JwksServer {
    use axum::extract::State;
    use axum::http::StatusCode;
    type St = (
        Arc<std::sync::Mutex<Value>>,
        Arc<AtomicUsize>,
        Arc<AtomicBool>,
    );
    async fn serve(
        State((doc, hits, failing)): State<St>,
    ) -> Result<axum::Json<Value>, StatusCode> {
        hits.fetch_add(1, Ordering::SeqCst);
        if failing.load(Ordering::SeqCst) {
            return Err(StatusCode::INTERNAL_SERVER_ERROR);
        }
        Ok(axum::Json(doc.lock().unwrap().clone()))
    }
    let doc = Arc::new(std::sync::Mutex::new(initial));
    let hits = Arc::new(AtomicUsize::new(0));
    let failing = Arc::new(AtomicBool::new(false));
    let app = axum::Router::new()
        .route("/jwks", axum::routing::get(serve))
        .with_state((doc.clone(), hits.clone(), failing.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    JwksServer {
        url: format!("http://{addr}/jwks"),
        doc,
        hits,
        failing,
    }
}

fn jwks(name: &str) -> Value {
    serde_json::from_slice(&read(name)).unwrap()
}

#[tokio::test]
async fn jwks_url_refetches_on_unknown_kid_rate_limited() {
    let server = jwks_server(jwks("jwks.json")).await;
    let interval = Duration::from_millis(400);
    let cfg = IdentityConfig {
        keys: KeySource::JwksUrl(server.url.clone()),
        ..hs_config()
    };
    let auth = Authenticator::new(cfg)
        .unwrap()
        .with_refetch_interval(interval);
    let hits = || server.hits.load(Ordering::SeqCst);

    let t1 = sign(
        Algorithm::RS256,
        "rsa-1",
        &rsa_key("rsa_private.pem"),
        &claims("one"),
    );
    let t2 = sign(
        Algorithm::RS256,
        "rsa-2",
        &rsa_key("rsa2_private.pem"),
        &claims("two"),
    );
    assert_eq!(auth.resolve(&t1).await.unwrap().sub, "one");
    assert_eq!(hits(), 1, "first use fetches the JWKS once");
    assert_eq!(auth.resolve(&t1).await.unwrap().sub, "one");
    assert_eq!(hits(), 1, "known kid: served from cache");

    // rsa-2 is not published yet: unknown, and the refetch is rate-limited.
    assert_eq!(resolve_err(&auth, &t2).await, IdentityError::UnknownKey);
    assert_eq!(hits(), 1, "refetch suppressed within the interval");

    // The IdP rotates in rsa-2; after the interval an unknown kid triggers one refetch.
    {
        let mut doc = server.doc.lock().unwrap();
        let extra = jwks("jwks_rsa2.json")["keys"][0].clone();
        doc["keys"].as_array_mut().unwrap().push(extra);
    }
    tokio::time::sleep(interval + Duration::from_millis(50)).await;
    assert_eq!(
        auth.resolve(&t2).await.unwrap().sub,
        "two",
        "key added later is picked up"
    );
    assert_eq!(hits(), 2);

    // A flood of forged kids costs at most one fetch per interval.
    let forged = sign(
        Algorithm::RS256,
        "forged",
        &rsa_key("rsa2_private.pem"),
        &claims("m"),
    );
    for _ in 0..20 {
        assert_eq!(resolve_err(&auth, &forged).await, IdentityError::UnknownKey);
    }
    assert_eq!(hits(), 2, "refetch within the interval suppressed");
    tokio::time::sleep(interval + Duration::from_millis(50)).await;
    let flood = (0..10).map(|_| auth.resolve(&forged));
    for r in futures::future::join_all(flood).await {
        assert_eq!(r, Err(IdentityError::UnknownKey));
    }
    assert_eq!(hits(), 3, "concurrent unknown kids share one refetch");
}

#[tokio::test]
async fn jwks_url_fetch_failure_keeps_old_keys() {
    let server = jwks_server(jwks("jwks.json")).await;
    let interval = Duration::from_millis(100);
    let cfg = IdentityConfig {
        keys: KeySource::JwksUrl(server.url.clone()),
        ..hs_config()
    };
    let auth = Authenticator::new(cfg)
        .unwrap()
        .with_refetch_interval(interval);
    let t1 = sign(
        Algorithm::RS256,
        "rsa-1",
        &rsa_key("rsa_private.pem"),
        &claims("one"),
    );
    auth.resolve(&t1).await.unwrap();

    server.failing.store(true, Ordering::SeqCst);
    tokio::time::sleep(interval + Duration::from_millis(20)).await;
    let t2 = sign(
        Algorithm::RS256,
        "rsa-2",
        &rsa_key("rsa2_private.pem"),
        &claims("two"),
    );
    assert_eq!(resolve_err(&auth, &t2).await, IdentityError::UnknownKey);
    assert_eq!(
        server.hits.load(Ordering::SeqCst),
        2,
        "the refetch was attempted"
    );
    assert!(auth.refresh_keys().await.is_err());
    assert_eq!(
        auth.resolve(&t1).await.unwrap().sub,
        "one",
        "old keys still verify"
    );
}

#[tokio::test]
async fn jwks_url_unreachable_with_nothing_cached_is_keys_unavailable() {
    // A port nobody listens on (bound then dropped).
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/jwks", l.local_addr().unwrap());
    drop(l);
    let cfg = IdentityConfig {
        keys: KeySource::JwksUrl(url),
        ..hs_config()
    };
    let auth = Authenticator::new(cfg).unwrap();
    let t1 = sign(
        Algorithm::RS256,
        "rsa-1",
        &rsa_key("rsa_private.pem"),
        &claims("one"),
    );
    assert!(matches!(
        resolve_err(&auth, &t1).await,
        IdentityError::KeysUnavailable(_)
    ));
}

#[test]
fn config_errors() {
    assert!(matches!(
        Authenticator::new(IdentityConfig::new(KeySource::Hs256(Secret::new("")))),
        Err(IdentityError::Config(_))
    ));
    assert!(
        Authenticator::new(IdentityConfig::new(KeySource::JwksFile(fixture(
            "nope.json"
        ))))
        .is_err()
    );
    assert!(matches!(
        Authenticator::new(IdentityConfig::new(KeySource::JwksUrl(
            "ftp://x/jwks".into()
        ))),
        Err(IdentityError::Config(_))
    ));
}

#[tokio::test]
async fn jwks_url_down_at_start_then_recovers() {
    let server = jwks_server(jwks("jwks.json")).await;
    server.failing.store(true, Ordering::SeqCst);
    let interval = Duration::from_millis(200);
    let cfg = IdentityConfig {
        keys: KeySource::JwksUrl(server.url.clone()),
        ..hs_config()
    };
    let auth = Authenticator::new(cfg)
        .unwrap()
        .with_refetch_interval(interval);
    let t1 = sign(
        Algorithm::RS256,
        "rsa-1",
        &rsa_key("rsa_private.pem"),
        &claims("one"),
    );
    for _ in 0..3 {
        assert!(matches!(
            resolve_err(&auth, &t1).await,
            IdentityError::KeysUnavailable(_)
        ));
    }
    assert_eq!(
        server.hits.load(Ordering::SeqCst),
        1,
        "retries are rate-limited too"
    );
    server.failing.store(false, Ordering::SeqCst);
    tokio::time::sleep(interval + Duration::from_millis(50)).await;
    assert_eq!(auth.resolve(&t1).await.unwrap().sub, "one");
}

#[test]
fn key_source_from_auth_keys_wants_exactly_one() {
    let s = || Some(Secret::new("x"));
    assert!(matches!(
        KeySource::from_auth_keys(s(), None, None),
        Ok(KeySource::Hs256(_))
    ));
    assert!(matches!(
        KeySource::from_auth_keys(None, None, Some("https://i/jwks".into())),
        Ok(KeySource::JwksUrl(_))
    ));
    assert!(KeySource::from_auth_keys(None, None, None).is_err());
    assert!(KeySource::from_auth_keys(s(), Some("f".into()), None).is_err());
}

#[test]
fn authenticator_is_shareable_across_tasks() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: T) {}
    let auth = Authenticator::new(hs_config()).unwrap();
    send_sync(&auth);
    send(auth.resolve("x"));
}

#[tokio::test]
async fn unset_audience_rejects_tokens_that_name_one() {
    // RFC 7519 §4.1.3: a recipient that does not identify itself with the
    // `aud` value must reject. Set auth.audience for IdP tokens.
    let cfg = IdentityConfig {
        audience: None,
        ..hs_config()
    };
    let auth = Authenticator::new(cfg).unwrap();
    assert_eq!(
        resolve_err(&auth, &sign_hs(&claims("a"))).await,
        IdentityError::WrongAudience
    );
    let mut c = claims("a");
    c.as_object_mut().unwrap().remove("aud");
    assert_eq!(auth.resolve(&sign_hs(&c)).await.unwrap().sub, "a");
    let minted = auth.mint_hs256("m", &[], Duration::from_secs(30)).unwrap();
    assert_eq!(auth.resolve(&minted).await.unwrap().sub, "m");
}

// --- identities must be plain text; `crit` is refused ---

#[tokio::test]
async fn control_and_invisible_characters_in_sub_or_groups_are_refused() {
    let auth = Authenticator::new(hs_config()).unwrap();
    for sub in [
        "eve\n     1  2026-01-01T00:00:00Z  evt_x  allow    admin",
        "eve\x1b[2J",
        "eve\r",
        "eve\u{9b}31m",
        "ad\u{202e}nim",
        "ad\u{200b}min",
        "eve\x7f",
    ] {
        let err = resolve_err(&auth, &sign_hs(&claims(sub))).await;
        assert_eq!(err, IdentityError::UnsafeIdentity("sub"), "{sub:?}");
        assert_eq!(err.reason(), "unsafe_identity");
        assert!(!err.to_string().contains(sub), "the name is not echoed");
    }
    let mut c = claims("alice");
    c["groups"] = json!(["agents", "re\u{2066}viewers"]);
    assert_eq!(
        resolve_err(&auth, &sign_hs(&c)).await,
        IdentityError::UnsafeIdentity("groups")
    );
    // Plain non-ASCII names stay fine.
    let p = auth.resolve(&sign_hs(&claims("zoë 漢"))).await.unwrap();
    assert_eq!(p.sub, "zoë 漢");
    // Tollgate does not mint them either.
    assert!(matches!(
        auth.mint_hs256("a\nb", &[], Duration::from_secs(60)),
        Err(IdentityError::UnsafeIdentity("sub"))
    ));
}

#[tokio::test]
async fn crit_header_is_refused() {
    let auth = Authenticator::new(hs_config()).unwrap();
    for crit in [vec!["x-unknown-ext"], vec![], vec!["exp"], vec!["alg"]] {
        let mut h = Header::new(Algorithm::HS256);
        h.crit = Some(crit.iter().map(|s| s.to_string()).collect());
        let token = jsonwebtoken::encode(
            &h,
            &claims("alice"),
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        let err = resolve_err(&auth, &token).await;
        assert_eq!(err, IdentityError::CriticalHeader, "{crit:?}");
        assert_eq!(err.reason(), "unsupported_crit");
    }
    // `crit` of another JSON type is refused too (hand-built, properly signed).
    let header = b64(&json!({"alg": "HS256", "crit": "b64"}));
    let body = b64(&claims("alice"));
    let signing_input = format!("{header}.{body}");
    let sig = jsonwebtoken::crypto::sign(
        signing_input.as_bytes(),
        &EncodingKey::from_secret(SECRET.as_bytes()),
        Algorithm::HS256,
    )
    .unwrap();
    assert_eq!(
        resolve_err(&auth, &format!("{signing_input}.{sig}")).await,
        IdentityError::CriticalHeader
    );
}
