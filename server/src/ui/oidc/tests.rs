use super::*;

#[test]
fn pkce_s256_matches_rfc7636_appendix_b() {
    assert_eq!(
        pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
}

#[test]
fn random_tokens_are_long_and_distinct() {
    let a = random_token();
    assert_eq!(a.len(), 43);
    assert_ne!(a, random_token());
}

#[test]
fn provider_error_codes_are_reduced_to_plain_words() {
    assert_eq!(error_code("invalid_grant"), "invalid_grant");
    assert_eq!(error_code("<script>alert(1)</script>"), "scriptalertscript");
    assert_eq!(error_code("\n\r"), "unknown");
}

#[test]
fn endpoints_must_be_https_or_loopback_http() {
    let doc = serde_json::json!({
        "a": "https://idp.example.com/auth",
        "b": "http://127.0.0.1:9/token",
        "c": "http://idp.example.com/token",
        "d": "https://user:pw@idp.example.com/x",
        "e": "javascript:alert(1)",
    });
    assert!(endpoint(&doc, "a").is_ok());
    assert!(endpoint(&doc, "b").is_ok());
    for bad in ["c", "d", "e", "missing"] {
        assert!(endpoint(&doc, bad).is_err(), "{bad}");
    }
}

#[tokio::test]
async fn a_state_is_single_use_and_bound_to_its_browser() {
    let oidc = Oidc::new(OidcConfig {
        issuer: "http://127.0.0.1:9".into(),
        client_id: "c".into(),
        client_secret: None,
        scopes: vec![],
        groups_claim: "groups".into(),
        leeway: Duration::from_secs(0),
        redirect_uri: "http://127.0.0.1:8/ui/login/callback".into(),
    })
    .unwrap();
    let insert = |state: &str, browser: &str, age: Duration| {
        oidc.pending.lock().unwrap().insert(
            state.into(),
            Pending {
                browser: Sha256::digest(browser.as_bytes()).into(),
                nonce: "n".into(),
                verifier: "v".into(),
                next: "/ui".into(),
                created: Instant::now() - age,
            },
        );
    };
    let cb = |state: &str| Callback {
        state: Some(state.into()),
        code: Some("code".into()),
        error: None,
    };
    insert("s1", "b1", Duration::ZERO);
    let e = oidc.finish(&cb("s1"), Some("other")).await.unwrap_err();
    assert!(matches!(e, OidcError::WrongBrowser), "{e}");
    // Gone after one try, even the right browser's.
    let e = oidc.finish(&cb("s1"), Some("b1")).await.unwrap_err();
    assert!(matches!(e, OidcError::UnknownState), "{e}");
    let e = oidc.finish(&cb("forged"), Some("b1")).await.unwrap_err();
    assert!(matches!(e, OidcError::UnknownState), "{e}");
    insert("s2", "b2", LOGIN_TTL);
    let e = oidc.finish(&cb("s2"), Some("b2")).await.unwrap_err();
    assert!(matches!(e, OidcError::Expired), "{e}");
    insert("s3", "b3", Duration::ZERO);
    let e = oidc.finish(&cb("s3"), None).await.unwrap_err();
    assert!(matches!(e, OidcError::WrongBrowser), "{e}");
    assert_eq!(oidc.pending_logins(), 0);
}

// === an in-process provider: discovery, JWKS, a token endpoint ===

/// Test-only P-256 keys (PKCS#8) and their public JWK coordinates.
const KEY1: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgu81LL/l2mmSYiJLZ
/QgQiJsCfnqvv7ebKJNedVt2dYGhRANCAAQbMdkUJgyYcxv/OFFUm2SIjnVSlNjK
68QE7gj9G5DKS+ZwTjZEk093Grm1B2+xgt7uawSoGpxGL2GxkaVzqpmC
-----END PRIVATE KEY-----";
const KEY1_XY: (&str, &str) = (
    "GzHZFCYMmHMb_zhRVJtkiI51UpTYyuvEBO4I_RuQyks",
    "5nBONkSTT3caubUHb7GC3u5rBKganEYvYbGRpXOqmYI",
);
/// Not in the provider's JWKS.
const KEY2: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgYiVf2VYpkZOXYT3J
WDDSaq0454FBMnhrukICbDdvm6ihRANCAAQkAkKlLsgbp36uCKEEDqs1bbta2r/S
Mp8L3SxUSAlRzC2b3IeLVIP6RhF5klFHDu+pWi8OloocnKC9xGiOqFVY
-----END PRIVATE KEY-----";

const CLIENT: &str = "tollgate-ui";
/// Characters that must be form-encoded inside Basic credentials.
const SECRET: &str = "s3cret:with/odd+chars";

/// One request to the token endpoint: its Authorization header and form.
type TokenRequest = (Option<String>, HashMap<String, String>);

#[derive(Default)]
struct MockState {
    issuer: String,
    /// Answer of the discovery document's `issuer` (default: the real one).
    doc_issuer: Option<String>,
    /// The token endpoint's next answer: status and body.
    answer: Mutex<(u16, Value)>,
    /// What the token endpoint received: Authorization header and form.
    seen: Mutex<Vec<TokenRequest>>,
}

struct Mock {
    state: Arc<MockState>,
}

impl Mock {
    async fn start(doc_issuer: Option<&str>) -> Mock {
        use axum::routing::{get, post};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(MockState {
            issuer: issuer.clone(),
            doc_issuer: doc_issuer.map(str::to_string),
            ..Default::default()
        });
        let s = state.clone();
        let app = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                get({
                    let s = s.clone();
                    move || async move {
                        axum::Json(serde_json::json!({
                            "issuer": s.doc_issuer.clone().unwrap_or(s.issuer.clone()),
                            "authorization_endpoint": format!("{}/auth", s.issuer),
                            "token_endpoint": format!("{}/token", s.issuer),
                            "jwks_uri": format!("{}/jwks", s.issuer),
                            "response_types_supported": ["code"],
                            "code_challenge_methods_supported": ["S256"],
                            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
                        }))
                    }
                }),
            )
            .route(
                "/jwks",
                get(|| async {
                    axum::Json(serde_json::json!({"keys": [{
                        "kty": "EC", "crv": "P-256", "x": KEY1_XY.0, "y": KEY1_XY.1,
                        "kid": "k1", "use": "sig", "alg": "ES256"
                    }]}))
                }),
            )
            .route(
                "/token",
                post({
                    let s = s.clone();
                    move |headers: axum::http::HeaderMap,
                          axum::Form(form): axum::Form<HashMap<String, String>>| async move {
                        let auth = headers
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_string);
                        s.seen.lock().unwrap().push((auth, form));
                        let (status, body) = s.answer.lock().unwrap().clone();
                        (
                            axum::http::StatusCode::from_u16(status).unwrap(),
                            axum::Json(body),
                        )
                    }
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await });
        Mock { state }
    }

    fn rp(&self) -> Oidc {
        Oidc::new(OidcConfig {
            issuer: self.state.issuer.clone(),
            client_id: CLIENT.into(),
            client_secret: Some(Secret::new(SECRET)),
            scopes: vec!["profile".into()],
            groups_claim: "groups".into(),
            leeway: Duration::from_secs(0),
            redirect_uri: "http://127.0.0.1:1/ui/login/callback".into(),
        })
        .unwrap()
    }

    /// The ID token the token endpoint answers next.
    fn answer_id_token(&self, token: String) {
        *self.state.answer.lock().unwrap() = (
            200,
            serde_json::json!({"id_token": token, "access_token": "at", "token_type": "Bearer"}),
        );
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Good claims of `mock` for `nonce`, then changed by `edit`.
fn claims(mock: &Mock, nonce: &str, edit: impl FnOnce(&mut Value)) -> Value {
    let mut c = serde_json::json!({
        "iss": mock.state.issuer, "aud": CLIENT, "sub": "alice",
        "groups": ["reviewers"], "iat": now(), "exp": now() + 300, "nonce": nonce,
    });
    edit(&mut c);
    c
}

fn sign(claims: &Value, key_pem: &str, kid: &str) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(kid.into());
    let key = jsonwebtoken::EncodingKey::from_ec_pem(key_pem.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

/// One login against `mock` whose ID token is `token(nonce)`.
async fn login(mock: &Mock, token: impl FnOnce(&str) -> String) -> Result<LoggedIn, OidcError> {
    let rp = mock.rp();
    let started = rp.start("/ui/approvals".into()).await?;
    let url = Url::parse(&started.authorize_url).unwrap();
    let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
    mock.answer_id_token(token(&q["nonce"]));
    let cb = Callback {
        state: Some(q["state"].clone()),
        code: Some("the-code".into()),
        error: None,
    };
    rp.finish(&cb, Some(&started.browser)).await
}

#[tokio::test]
async fn a_good_login_verifies_everything_and_sends_pkce_and_basic_credentials() {
    let mock = Mock::start(None).await;
    let rp = mock.rp();
    let started = rp.start("/ui/approvals/x".into()).await.unwrap();
    let url = Url::parse(&started.authorize_url).unwrap();
    assert_eq!(url.path(), "/auth");
    let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], CLIENT);
    assert_eq!(q["scope"], "openid profile");
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(!started.authorize_url.contains(SECRET));
    mock.answer_id_token(sign(&claims(&mock, &q["nonce"], |_| {}), KEY1, "k1"));
    let cb = Callback {
        state: Some(q["state"].clone()),
        code: Some("the-code".into()),
        error: None,
    };
    let done = rp.finish(&cb, Some(&started.browser)).await.unwrap();
    assert_eq!(done.principal.sub, "alice");
    assert_eq!(done.principal.groups, vec!["reviewers".to_string()]);
    assert_eq!(done.next, "/ui/approvals/x");
    let seen = mock.state.seen.lock().unwrap().clone();
    let (auth, form) = &seen[0];
    // RFC 6749 §2.3.1: form-encoded id and secret, then Basic.
    let basic = STANDARD.encode("tollgate-ui:s3cret%3Awith%2Fodd%2Bchars");
    assert_eq!(auth.as_deref(), Some(format!("Basic {basic}").as_str()));
    assert_eq!(form["grant_type"], "authorization_code");
    assert_eq!(form["code"], "the-code");
    assert_eq!(pkce_challenge(&form["code_verifier"]), q["code_challenge"]);
    assert!(!form.contains_key("client_secret"));
    // The same callback again: refused, nothing sent to the provider.
    let e = rp.finish(&cb, Some(&started.browser)).await.unwrap_err();
    assert!(matches!(e, OidcError::UnknownState), "{e}");
    assert_eq!(mock.state.seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn id_tokens_that_are_not_exactly_this_login_s_are_refused() {
    let mock = Mock::start(None).await;
    let other_aud = |c: &mut Value| c["aud"] = "another-client".into();
    let expired = |c: &mut Value| {
        c["exp"] = (now() - 10).into();
        c["iat"] = (now() - 400).into();
    };
    let other_iss = |c: &mut Value| c["iss"] = "https://evil.example".into();
    let azp_other = |c: &mut Value| c["azp"] = "another-client".into();
    let two_auds_no_azp = |c: &mut Value| c["aud"] = serde_json::json!([CLIENT, "another"]);
    let no_sub = |c: &mut Value| {
        c.as_object_mut().unwrap().remove("sub");
    };
    type Case = (&'static str, Box<dyn Fn(&Mock, &str) -> String>);
    let cases: Vec<Case> = vec![
        (
            "oidc_id_token_wrong_audience",
            Box::new(move |m, n| sign(&claims(m, n, other_aud), KEY1, "k1")),
        ),
        (
            "oidc_id_token_expired",
            Box::new(move |m, n| sign(&claims(m, n, expired), KEY1, "k1")),
        ),
        (
            "oidc_id_token_wrong_issuer",
            Box::new(move |m, n| sign(&claims(m, n, other_iss), KEY1, "k1")),
        ),
        (
            "oidc_nonce",
            Box::new(|m, _| sign(&claims(m, "another-login", |_| {}), KEY1, "k1")),
        ),
        (
            "oidc_nonce",
            Box::new(|m, _| {
                sign(
                    &claims(m, "", |c| {
                        c.as_object_mut().unwrap().remove("nonce");
                    }),
                    KEY1,
                    "k1",
                )
            }),
        ),
        (
            "oidc_azp",
            Box::new(move |m, n| sign(&claims(m, n, azp_other), KEY1, "k1")),
        ),
        (
            "oidc_azp",
            Box::new(move |m, n| sign(&claims(m, n, two_auds_no_azp), KEY1, "k1")),
        ),
        (
            "oidc_id_token_missing_sub",
            Box::new(move |m, n| sign(&claims(m, n, no_sub), KEY1, "k1")),
        ),
        // Signed by a key the provider does not publish, under its kid.
        (
            "oidc_id_token_bad_signature",
            Box::new(|m, n| sign(&claims(m, n, |_| {}), KEY2, "k1")),
        ),
        // HS256 with the client secret: never accepted with JWKS keys.
        (
            "oidc_id_token_algorithm_not_allowed",
            Box::new(|m, n| {
                jsonwebtoken::encode(
                    &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
                    &claims(m, n, |_| {}),
                    &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
                )
                .unwrap()
            }),
        ),
    ];
    for (want, make) in &cases {
        let e = login(&mock, |nonce| make(&mock, nonce)).await.unwrap_err();
        assert_eq!(&e.reason(), want, "{e}");
        let text = e.to_string();
        assert!(
            !text.contains(SECRET) && !text.contains("the-code"),
            "{text}"
        );
    }
    // The provider refusing the code (a replayed one): its error code only.
    let rp = mock.rp();
    let started = rp.start("/ui".into()).await.unwrap();
    let q: HashMap<String, String> = Url::parse(&started.authorize_url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    *mock.state.answer.lock().unwrap() = (
        400,
        serde_json::json!({"error": "invalid_grant", "error_description": "grant request is invalid <b>x</b>"}),
    );
    let cb = Callback {
        state: Some(q["state"].clone()),
        code: Some("spent-code".into()),
        error: None,
    };
    let e = rp.finish(&cb, Some(&started.browser)).await.unwrap_err();
    assert_eq!(e.reason(), "oidc_exchange");
    assert_eq!(
        e.to_string(),
        "the identity provider did not accept the login code (invalid_grant)"
    );
}

#[tokio::test]
async fn a_discovery_document_of_another_issuer_is_refused() {
    let mock = Mock::start(Some("https://evil.example")).await;
    let e = mock.rp().start("/ui".into()).await.unwrap_err();
    assert_eq!(e.reason(), "oidc_discovery", "{e}");
    assert!(e.is_unavailable());
    // The provider down: the same, and the next login tries again.
    let rp = Oidc::new(OidcConfig {
        issuer: "http://127.0.0.1:9".into(),
        ..mock.rp().config.clone()
    })
    .unwrap();
    assert!(rp.start("/ui".into()).await.is_err());
    assert!(rp.start("/ui".into()).await.is_err());
}
