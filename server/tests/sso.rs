//! Single sign-on against a real OpenID Connect provider (the npm `oidc-provider`, started on
//! loopback by `end2end/oidc/provider.mjs`): discovery, the browser's trip through the
//! provider's sign-in form, the code exchange with PKCE, and the ID token's checks. Every
//! refusal in the first part is produced by the real provider or by Offboard's own checks of
//! its real answers. The last part uses a FAKE provider (`fake_idp`, labelled where it starts)
//! for what a real provider never does: tokens for other audiences or issuers, expired or
//! wrongly signed, signed with `alg: none`, and endpoints that answer with redirects.

mod support;

use app::hidden::Hidden;
use server::sso::{Callback, PendingSignIn, SsoClient, SsoError, SsoSettings, VerifiedIdentity};
use support::oidc_provider::{OidcProvider, CLIENT_ID};
use url::Url;

const SECRET: &str = "test-client-secret-7f3a9c";
/// Nothing listens here: the provider only sends the browser to it, and the test reads the URL.
const REDIRECT: &str = "http://127.0.0.1:9/sign-in/sso/callback";

fn settings(provider: &OidcProvider, secret: &str, allowed: &[&str]) -> SsoSettings {
    SsoSettings {
        issuer: provider.issuer().to_string(),
        client_id: CLIENT_ID.to_string(),
        client_secret: Hidden::new(secret.to_string()),
        redirect_url: Url::parse(REDIRECT).unwrap(),
        allowed_domains: allowed.iter().map(|d| d.to_string()).collect(),
        trust_email_without_verified_claim: false,
    }
}

async fn console(provider: &OidcProvider, allowed: &[&str]) -> SsoClient {
    SsoClient::discover(settings(provider, SECRET, allowed))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", provider.log_text()))
}

/// What the router will parse from the callback URL's query.
fn callback_of(url: &Url) -> Callback {
    let get = |key: &str| {
        url.query_pairs()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    };
    Callback {
        code: get("code"),
        state: get("state"),
        error: get("error"),
        error_description: get("error_description"),
    }
}

/// Start a sign-in, sign in at the provider as `login`, and return what the callback carries.
async fn signed_in_at_provider(
    provider: &OidcProvider,
    sso: &SsoClient,
    login: &str,
) -> (PendingSignIn, Callback) {
    let (to_provider, pending) = sso.start();
    let back = provider.browse(&to_provider, login, false).await;
    assert!(back.as_str().starts_with(REDIRECT), "{back}");
    (pending, callback_of(&back))
}

/// A pending sign-in with one field replaced, as a tampered or mixed-up session would hold.
fn with_field(pending: &PendingSignIn, field: &str, value: serde_json::Value) -> PendingSignIn {
    let mut json = serde_json::to_value(pending).unwrap();
    json[field] = value;
    serde_json::from_value(json).unwrap()
}

fn field(pending: &PendingSignIn, field: &str) -> serde_json::Value {
    serde_json::to_value(pending).unwrap()[field].clone()
}

#[tokio::test]
async fn a_verified_person_signs_in_with_pkce_state_and_nonce() {
    let provider = OidcProvider::start(SECRET, REDIRECT);
    let sso = console(&provider, &["example.com"]).await;
    let (to_provider, pending) = sso.start();

    // The request the browser carries: code flow, PKCE S256, state, nonce, our scopes.
    let query: std::collections::HashMap<_, _> = to_provider.query_pairs().into_owned().collect();
    assert!(to_provider
        .as_str()
        .starts_with(&format!("{}/auth?", provider.issuer())));
    assert_eq!(query["response_type"], "code");
    assert_eq!(query["client_id"], CLIENT_ID);
    assert_eq!(query["redirect_uri"], REDIRECT);
    assert_eq!(query["code_challenge_method"], "S256");
    assert!(query["code_challenge"].len() >= 43);
    assert_eq!(query["state"], field(&pending, "state"));
    assert_eq!(query["nonce"], field(&pending, "nonce"));
    let scopes: Vec<&str> = query["scope"].split(' ').collect();
    for scope in ["openid", "email", "profile"] {
        assert!(scopes.contains(&scope), "{scopes:?}");
    }
    // The verifier itself never leaves the console.
    let verifier = field(&pending, "pkce_verifier");
    assert!(!to_provider.as_str().contains(verifier.as_str().unwrap()));

    let back = provider.browse(&to_provider, "alice", false).await;
    let identity = sso.finish(pending, callback_of(&back)).await;
    assert_eq!(
        identity,
        Ok(VerifiedIdentity {
            email: "alice@example.com".into(),
            subject: "alice".into(),
            name: Some("Alice Admin".into()),
        })
    );
}

#[tokio::test]
async fn the_email_is_lower_cased_and_the_name_optional() {
    let provider = OidcProvider::start(SECRET, REDIRECT);
    let sso = console(&provider, &["EXAMPLE.com"]).await;
    let (pending, callback) = signed_in_at_provider(&provider, &sso, "erin").await;
    let identity = sso.finish(pending, callback).await.unwrap();
    assert_eq!(identity.email, "erin.mixed@example.com");
    assert_eq!(identity.subject, "erin");
    assert_eq!(identity.name, None);
}

#[tokio::test]
async fn a_callback_with_another_state_is_refused_before_the_code_is_spent() {
    let provider = OidcProvider::start(SECRET, REDIRECT);
    let sso = console(&provider, &[]).await;
    let (pending, callback) = signed_in_at_provider(&provider, &sso, "alice").await;

    for state in [None, Some("forged-state".to_string()), Some(String::new())] {
        let forged = Callback {
            state,
            ..callback.clone()
        };
        assert_eq!(
            sso.finish(pending.clone(), forged).await,
            Err(SsoError::Expired)
        );
    }
    // The refusals never reached the provider: the same code still signs in with the right state.
    let identity = sso.finish(pending, callback).await.unwrap();
    assert_eq!(identity.email, "alice@example.com");
}

#[tokio::test]
async fn a_code_used_twice_is_refused() {
    let provider = OidcProvider::start(SECRET, REDIRECT);
    let sso = console(&provider, &[]).await;
    let (pending, callback) = signed_in_at_provider(&provider, &sso, "alice").await;
    assert!(sso.finish(pending.clone(), callback.clone()).await.is_ok());
    // A replayed callback (the back button, a copied link): the provider refuses the used code.
    let replay = sso.finish(pending, callback).await;
    assert_eq!(replay, Err(SsoError::Expired));
    assert_eq!(
        replay.unwrap_err().to_string(),
        "This sign-in link was already used or has expired: start again"
    );
}

#[tokio::test]
async fn a_pending_sign_in_from_another_start_is_refused() {
    let provider = OidcProvider::start(SECRET, REDIRECT);
    let sso = console(&provider, &[]).await;
    let (_pending_a, callback_a) = signed_in_at_provider(&provider, &sso, "alice").await;
    let (_to_provider, pending_b) = sso.start();
    assert_eq!(
        sso.finish(pending_b, callback_a).await,
        Err(SsoError::Expired)
    );
}

#[tokio::test]
async fn a_token_minted_for_another_nonce_is_refused() {
    let provider = OidcProvider::start(SECRET, REDIRECT);
    let sso = console(&provider, &[]).await;
    let (pending, callback) = signed_in_at_provider(&provider, &sso, "alice").await;
    // Same state and PKCE verifier (so the provider hands out the token), but the nonce of
    // another sign-in: the ID token's nonce no longer matches.
    let (_to_provider, other) = sso.start();
    let mixed = with_field(&pending, "nonce", field(&other, "nonce"));
    let got = sso.finish(mixed, callback).await;
    assert_eq!(
        got,
        Err(SsoError::Untrusted {
            reason: "the token belongs to another sign-in attempt".into()
        })
    );
}

#[tokio::test]
async fn a_code_exchanged_without_its_pkce_verifier_is_refused() {
    let provider = OidcProvider::start(SECRET, REDIRECT);
    let sso = console(&provider, &[]).await;
    let (pending, callback) = signed_in_at_provider(&provider, &sso, "alice").await;
    let (_to_provider, other) = sso.start();
    let stolen = with_field(&pending, "pkce_verifier", field(&other, "pkce_verifier"));
    // The provider checks the verifier against the challenge it saw: invalid_grant.
    assert_eq!(sso.finish(stolen, callback).await, Err(SsoError::Expired));
}

#[tokio::test]
async fn an_old_pending_sign_in_is_refused() {
    let provider = OidcProvider::start(SECRET, REDIRECT);
    let sso = console(&provider, &[]).await;
    let (pending, callback) = signed_in_at_provider(&provider, &sso, "alice").await;
    let started = field(&pending, "started_at").as_i64().unwrap();
    let old = with_field(&pending, "started_at", (started - 3600).into());
    assert_eq!(sso.finish(old, callback).await, Err(SsoError::Expired));
}

#[tokio::test]
async fn unverified_emails_are_refused() {
    let provider = OidcProvider::start(SECRET, REDIRECT);
    let sso = console(&provider, &[]).await;
    let (pending, callback) = signed_in_at_provider(&provider, &sso, "bob").await;
    let got = sso.finish(pending, callback).await;
    assert_eq!(
        got,
        Err(SsoError::EmailNotVerified {
            email: "bob@example.com".into()
        })
    );
    // No email_verified claim at all: refused too, unless the admin said to trust the service.
    let (pending, callback) = signed_in_at_provider(&provider, &sso, "frank").await;
    assert_eq!(
        sso.finish(pending, callback).await,
        Err(SsoError::EmailNotVerified {
            email: "frank@example.com".into()
        })
    );
    let trusting = SsoClient::discover(SsoSettings {
        trust_email_without_verified_claim: true,
        ..settings(&provider, SECRET, &[])
    })
    .await
    .unwrap();
    let (pending, callback) = signed_in_at_provider(&provider, &trusting, "frank").await;
    assert_eq!(
        trusting.finish(pending, callback).await.unwrap().email,
        "frank@example.com"
    );
    // …but never one marked unverified.
    let (pending, callback) = signed_in_at_provider(&provider, &trusting, "bob").await;
    assert!(matches!(
        trusting.finish(pending, callback).await,
        Err(SsoError::EmailNotVerified { .. })
    ));
}

#[tokio::test]
async fn a_token_without_email_is_refused() {
    let provider = OidcProvider::start(SECRET, REDIRECT);
    let sso = console(&provider, &[]).await;
    let (pending, callback) = signed_in_at_provider(&provider, &sso, "dave").await;
    assert_eq!(sso.finish(pending, callback).await, Err(SsoError::NoEmail));
}

#[tokio::test]
async fn domains_not_allowed_are_refused() {
    let provider = OidcProvider::start(SECRET, REDIRECT);
    let sso = console(&provider, &["example.com"]).await;
    let (pending, callback) = signed_in_at_provider(&provider, &sso, "carol").await;
    let got = sso.finish(pending, callback).await;
    assert_eq!(
        got,
        Err(SsoError::DomainNotAllowed {
            domain: "example.org".into()
        })
    );
    assert_eq!(
        got.unwrap_err().to_string(),
        "Your email domain example.org is not allowed on this console"
    );
    // A look-alike domain is not a sub-string match.
    let (pending, callback) = signed_in_at_provider(&provider, &sso, "mallory").await;
    assert_eq!(
        sso.finish(pending, callback).await,
        Err(SsoError::DomainNotAllowed {
            domain: "evil-example.com".into()
        })
    );
}

#[tokio::test]
async fn a_wrong_client_secret_is_refused_without_showing_it() {
    let provider = OidcProvider::start(SECRET, REDIRECT);
    let wrong = "wrong-secret-d41d8cd9";
    let sso = SsoClient::discover(settings(&provider, wrong, &[]))
        .await
        .unwrap();
    let (pending, callback) = signed_in_at_provider(&provider, &sso, "alice").await;
    let code = callback.code.clone().unwrap();
    let got = sso.finish(pending, callback).await;
    assert_eq!(got, Err(SsoError::ClientRejected));
    let said = format!("{} {:?} {:?}", got.clone().unwrap_err(), got, sso);
    for secret in [wrong, SECRET, code.as_str()] {
        assert!(!said.contains(secret), "{said}");
    }
}

#[tokio::test]
async fn cancelling_at_the_provider_is_its_refusal_in_words() {
    let provider = OidcProvider::start(SECRET, REDIRECT);
    let sso = console(&provider, &[]).await;
    let (to_provider, pending) = sso.start();
    let back = provider.browse(&to_provider, "alice", true).await;
    let callback = callback_of(&back);
    assert_eq!(callback.error.as_deref(), Some("access_denied"));
    let got = sso.finish(pending, callback).await;
    assert_eq!(
        got,
        Err(SsoError::Refused {
            reason: "End-User aborted interaction".into()
        })
    );
    assert_eq!(
        got.unwrap_err().to_string(),
        "Your company's sign-in service said no: End-User aborted interaction"
    );
}

#[tokio::test]
async fn discovery_names_what_is_wrong_with_the_issuer() {
    let provider = OidcProvider::start(SECRET, REDIRECT);
    let discover = |issuer: String| {
        let mut s = settings(&provider, SECRET, &[]);
        s.issuer = issuer;
        SsoClient::discover(s)
    };
    // Not the issuer the provider names (localhost vs 127.0.0.1): refused, as the ID tokens'
    // `iss` would never match.
    let other_name = provider.issuer().replace("127.0.0.1", "localhost");
    let err = discover(other_name).await.unwrap_err().to_string();
    assert!(err.contains("unexpected issuer"), "{err}");
    // A path with no discovery document.
    let err = discover(format!("{}/nothing-here", provider.issuer()))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("answered HTTP 404"), "{err}");
    // Nobody listening.
    let closed = format!("http://127.0.0.1:{}", support::scim2_server::free_port());
    let err = discover(closed).await.unwrap_err().to_string();
    assert!(err.contains("no connection could be made"), "{err}");
    assert!(!err.contains(SECRET));
}

#[tokio::test]
async fn a_bad_allowed_domain_stops_the_start_instead_of_allowing_everyone() {
    let provider = OidcProvider::start(SECRET, REDIRECT);
    let got = SsoClient::discover(settings(&provider, SECRET, &["*.example.com"])).await;
    assert!(matches!(got, Err(SsoError::Settings(_))), "{got:?}");
}

/// The same provider address restarted with a new signing key, as a service rotating its keys
/// does: the console fetches the keys again and the sign-in goes through.
#[tokio::test]
async fn rotated_signing_keys_are_fetched_again() {
    let first = OidcProvider::start_on(SECRET, REDIRECT, 0, Some("key-2026-11"));
    let port = first.port();
    let sso = console(&first, &[]).await;
    drop(first);
    let rotated = OidcProvider::start_on(SECRET, REDIRECT, port, Some("key-2026-12"));
    let (pending, callback) = signed_in_at_provider(&rotated, &sso, "alice").await;
    let identity = sso.finish(pending, callback).await;
    assert_eq!(
        identity.map(|i| i.email),
        Ok("alice@example.com".to_string())
    );
}

/// An impostor at the provider's address signing with its own key under the name of the key
/// the console trusts: a real provider, a real RS256 signature, the wrong key. Refused.
#[tokio::test]
async fn a_token_signed_by_another_key_under_a_trusted_name_is_refused() {
    let genuine = OidcProvider::start_on(SECRET, REDIRECT, 0, Some("key-2026-11"));
    let port = genuine.port();
    let sso = console(&genuine, &[]).await;
    drop(genuine);
    let impostor = OidcProvider::start_on(SECRET, REDIRECT, port, Some("key-2026-11"));
    let (pending, callback) = signed_in_at_provider(&impostor, &sso, "alice").await;
    assert_eq!(
        sso.finish(pending, callback).await,
        Err(SsoError::Untrusted {
            reason: "the token's signature does not match the service's keys".into()
        })
    );
}

// ---------------------------------------------------------------------------------------------
// A FAKE sign-in service, in addition to the real one above: it hands out ID tokens a real
// provider never would (another audience, another issuer, expired, a second audience, signed
// with another secret), to show each is refused. It serves only discovery, keys and the token
// endpoint; the tokens are minted with the openidconnect crate and signed HS256 with the client
// secret (the test chooses the claims; the browser trip is skipped: the callback is built here).

/// A FAKE OpenID Connect provider, on purpose: the faults below (a token signed with `alg: none`,
/// endpoints that answer with redirects, tokens for other audiences or issuers) are ones a real,
/// correctly configured provider will not produce, so only a fake can show that Offboard refuses
/// them. Its discovery documents, redirects and token endpoint are served on loopback by axum.
mod fake_idp {
    use axum::extract::State;
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    use axum::routing::{get, post};
    use axum::{Json, Router};
    use base64::Engine;
    use openidconnect::core::{
        CoreHmacKey, CoreIdToken, CoreIdTokenClaims, CoreJwsSigningAlgorithm,
    };
    use openidconnect::{
        Audience, EmptyAdditionalClaims, EndUserEmail, IssuerUrl, Nonce, StandardClaims,
        SubjectIdentifier,
    };
    use serde_json::{json, Value};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    /// What the next token will say, set by the test.
    #[derive(Clone)]
    pub struct Mint {
        pub issuer: String,
        pub audiences: Vec<String>,
        pub expires_in_secs: i64,
        pub nonce: String,
        pub signing_secret: String,
        /// `alg: none` and no signature at all, instead of HS256.
        pub unsigned: bool,
    }

    #[derive(Clone)]
    struct Shared {
        base: String,
        next: Arc<Mutex<Option<Mint>>>,
        token_requests: Arc<AtomicUsize>,
    }

    pub struct FakeIdp {
        /// The issuer whose discovery document and token endpoint answer directly.
        pub issuer: String,
        shared: Shared,
        server: tokio::task::JoinHandle<()>,
    }

    impl Drop for FakeIdp {
        fn drop(&mut self) {
            self.server.abort();
        }
    }

    impl FakeIdp {
        pub async fn start() -> FakeIdp {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            let shared = Shared {
                base: base.clone(),
                next: Arc::default(),
                token_requests: Arc::default(),
            };
            let app = Router::new()
                .route("/.well-known/openid-configuration", get(discovery))
                // Issuer `{base}/moved`: its discovery document is only reachable through a
                // redirect (to a valid document for that issuer).
                .route(
                    "/moved/.well-known/openid-configuration",
                    get(|State(s): State<Shared>| async move {
                        redirect(StatusCode::FOUND, format!("{}/elsewhere", s.base))
                    }),
                )
                .route("/elsewhere", get(moved_discovery))
                // Issuer `{base}/token-redirects`: a valid document whose token endpoint answers
                // every request with a redirect to the real token endpoint.
                .route(
                    "/token-redirects/.well-known/openid-configuration",
                    get(token_redirects_discovery),
                )
                .route(
                    "/token-moved",
                    post(|State(s): State<Shared>| async move {
                        redirect(StatusCode::TEMPORARY_REDIRECT, format!("{}/token", s.base))
                    }),
                )
                .route("/jwks", get(|| async { Json(json!({ "keys": [] })) }))
                .route("/token", post(token))
                .with_state(shared.clone());
            let server = tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
            FakeIdp {
                issuer: base,
                shared,
                server,
            }
        }

        pub fn will_mint(&self, mint: Mint) {
            *self.shared.next.lock().unwrap() = Some(mint);
        }

        /// How many requests reached the real token endpoint (`/token`).
        pub fn token_requests(&self) -> usize {
            self.shared.token_requests.load(Ordering::SeqCst)
        }
    }

    fn redirect(status: StatusCode, to: String) -> impl IntoResponse {
        (status, [(header::LOCATION, to)])
    }

    fn document(issuer: &str, token_endpoint: &str, base: &str) -> Json<Value> {
        Json(json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{base}/auth"),
            "token_endpoint": token_endpoint,
            "jwks_uri": format!("{base}/jwks"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            // `none` is listed: Offboard must refuse it whatever the document says.
            "id_token_signing_alg_values_supported": ["HS256", "none"],
        }))
    }

    async fn discovery(State(s): State<Shared>) -> Json<Value> {
        document(&s.base, &format!("{}/token", s.base), &s.base)
    }

    async fn moved_discovery(State(s): State<Shared>) -> Json<Value> {
        document(
            &format!("{}/moved", s.base),
            &format!("{}/token", s.base),
            &s.base,
        )
    }

    async fn token_redirects_discovery(State(s): State<Shared>) -> Json<Value> {
        document(
            &format!("{}/token-redirects", s.base),
            &format!("{}/token-moved", s.base),
            &s.base,
        )
    }

    /// `alg: none`: a header, the claims, and an empty signature.
    fn unsigned_token(claims: &CoreIdTokenClaims) -> String {
        let part =
            |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let claims = serde_json::to_value(claims).unwrap();
        format!(
            "{}.{}.",
            part(&json!({"alg": "none", "typ": "JWT"})),
            part(&claims)
        )
    }

    async fn token(State(s): State<Shared>) -> Json<Value> {
        s.token_requests.fetch_add(1, Ordering::SeqCst);
        let mint = s
            .next
            .lock()
            .unwrap()
            .clone()
            .expect("the test set a token");
        let now = chrono::Utc::now();
        let claims = CoreIdTokenClaims::new(
            IssuerUrl::new(mint.issuer).unwrap(),
            mint.audiences.into_iter().map(Audience::new).collect(),
            now + chrono::Duration::seconds(mint.expires_in_secs),
            now - chrono::Duration::seconds(600),
            StandardClaims::new(SubjectIdentifier::new("alice".into()))
                .set_email(Some(EndUserEmail::new("alice@example.com".into())))
                .set_email_verified(Some(true)),
            EmptyAdditionalClaims {},
        )
        .set_nonce(Some(Nonce::new(mint.nonce)));
        let id_token = if mint.unsigned {
            unsigned_token(&claims)
        } else {
            CoreIdToken::new(
                claims,
                &CoreHmacKey::new(mint.signing_secret.into_bytes()),
                CoreJwsSigningAlgorithm::HmacSha256,
                None,
                None,
            )
            .unwrap()
            .to_string()
        };
        Json(json!({
            "access_token": "fake-access-token",
            "token_type": "Bearer",
            "expires_in": 60,
            "id_token": id_token,
        }))
    }
}

/// Settings for the fake provider's issuer `issuer`.
fn fake_settings(issuer: &str) -> SsoSettings {
    SsoSettings {
        issuer: issuer.to_string(),
        client_id: CLIENT_ID.into(),
        client_secret: Hidden::new(SECRET.into()),
        redirect_url: Url::parse(REDIRECT).unwrap(),
        allowed_domains: vec![],
        trust_email_without_verified_claim: false,
    }
}

/// A well-formed token for `issuer` and the pending sign-in's nonce.
fn good_mint(issuer: &str, pending: &PendingSignIn) -> fake_idp::Mint {
    fake_idp::Mint {
        issuer: issuer.to_string(),
        audiences: vec![CLIENT_ID.into()],
        expires_in_secs: 300,
        nonce: field(pending, "nonce").as_str().unwrap().to_string(),
        signing_secret: SECRET.into(),
        unsigned: false,
    }
}

/// The callback the browser would bring back for `pending`.
fn fake_callback(pending: &PendingSignIn) -> Callback {
    Callback {
        code: Some("any-code".into()),
        state: field(pending, "state").as_str().map(String::from),
        error: None,
        error_description: None,
    }
}

#[tokio::test]
async fn tokens_a_real_provider_would_not_mint_are_refused_fake_service() {
    let idp = fake_idp::FakeIdp::start().await;
    let sso = SsoClient::discover(fake_settings(&idp.issuer))
        .await
        .unwrap();
    type Change = fn(fake_idp::Mint) -> fake_idp::Mint;
    let cases: Vec<(&str, Change, Option<&str>)> = vec![
        ("a well-formed token", |m| m, None),
        (
            "another audience",
            |m| fake_idp::Mint {
                audiences: vec!["someone-else".into()],
                ..m
            },
            Some("the token was issued for another application"),
        ),
        (
            "a second audience",
            |m| fake_idp::Mint {
                audiences: vec![CLIENT_ID.into(), "someone-else".into()],
                ..m
            },
            Some("the token was issued for another application"),
        ),
        (
            "another issuer",
            |m| fake_idp::Mint {
                issuer: "https://impostor.example.com".into(),
                ..m
            },
            Some("the token was issued by another service"),
        ),
        (
            "an expired token",
            |m| fake_idp::Mint {
                expires_in_secs: -120,
                ..m
            },
            Some("the token has expired (check this machine's clock)"),
        ),
        (
            "a token signed with another secret",
            |m| fake_idp::Mint {
                signing_secret: "not-the-client-secret".into(),
                ..m
            },
            Some("the token's signature does not match the service's keys"),
        ),
    ];
    for (what, change, refused) in cases {
        let (_to_provider, pending) = sso.start();
        idp.will_mint(change(good_mint(&idp.issuer, &pending)));
        let callback = fake_callback(&pending);
        let got = sso.finish(pending, callback).await;
        match refused {
            None => assert_eq!(
                got.map(|i| i.email),
                Ok("alice@example.com".into()),
                "{what}"
            ),
            Some(reason) => assert_eq!(
                got,
                Err(SsoError::Untrusted {
                    reason: reason.into()
                }),
                "{what}"
            ),
        }
    }
}

/// An ID token with `alg: none` (no signature at all) carrying otherwise perfect claims is
/// refused, although the provider's discovery document lists `none` among its algorithms.
#[tokio::test]
async fn an_id_token_with_alg_none_is_refused_fake_service() {
    let idp = fake_idp::FakeIdp::start().await;
    let sso = SsoClient::discover(fake_settings(&idp.issuer))
        .await
        .unwrap();
    // The same claims, signed, sign the person in: only the missing signature is refused.
    for unsigned in [false, true] {
        let (_to_provider, pending) = sso.start();
        idp.will_mint(fake_idp::Mint {
            unsigned,
            ..good_mint(&idp.issuer, &pending)
        });
        let callback = fake_callback(&pending);
        let got = sso.finish(pending, callback).await;
        if unsigned {
            assert!(
                matches!(got, Err(SsoError::Untrusted { .. })),
                "an unsigned token was not refused as untrusted: {got:?}"
            );
        } else {
            assert_eq!(got.map(|i| i.email), Ok("alice@example.com".into()));
        }
    }
}

/// The discovery document is read where the issuer says, never where a redirect points: a
/// provider whose document is only reachable through a redirect (to a document that would
/// otherwise be accepted) is refused at start-up.
#[tokio::test]
async fn a_redirect_from_the_discovery_endpoint_is_not_followed_fake_service() {
    let idp = fake_idp::FakeIdp::start().await;
    let moved = format!("{}/moved", idp.issuer);
    let got = SsoClient::discover(fake_settings(&moved)).await;
    assert!(
        matches!(&got, Err(SsoError::Discovery { issuer, .. }) if *issuer == moved),
        "a redirected discovery document was accepted: {:?}",
        got.err()
    );
}

/// The code is exchanged at the token endpoint the document names, and nowhere else: a token
/// endpoint that answers with a redirect ends the sign-in, and the request (code, PKCE
/// verifier, client secret) never reaches the redirect's target.
#[tokio::test]
async fn a_redirect_from_the_token_endpoint_is_not_followed_fake_service() {
    let idp = fake_idp::FakeIdp::start().await;
    let issuer = format!("{}/token-redirects", idp.issuer);
    let sso = SsoClient::discover(fake_settings(&issuer)).await.unwrap();
    let (_to_provider, pending) = sso.start();
    // Were the redirect followed, this token would sign Alice in.
    idp.will_mint(good_mint(&issuer, &pending));
    let callback = fake_callback(&pending);
    let got = sso.finish(pending, callback).await;
    assert!(
        got.is_err(),
        "a redirected token request signed someone in: {got:?}"
    );
    assert_eq!(idp.token_requests(), 0, "the redirect was followed");
}
