//! Single sign-on with the admin's company sign-in service (OpenID Connect): the
//! authorization-code flow with PKCE, `state` and `nonce`, and a verified ID token that gives
//! the person's email. The routes and the session that carry it between the two halves belong
//! to the HTTP floor; this module only talks to the sign-in service.
//!
//! Use: [`SsoClient::discover`] once at start; for each sign-in, [`SsoClient::start`] gives the
//! address to send the browser to and a [`PendingSignIn`] to keep in the session; the callback's
//! query and that pending sign-in go to [`SsoClient::finish`], which gives a
//! [`VerifiedIdentity`] or an [`SsoError`] in plain words.

use model::hidden::Hidden;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreClientAuthMethod, CoreErrorResponseType,
    CoreIdTokenVerifier, CoreJsonWebKeySet, CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AuthType, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken,
    DiscoveryError, EndpointMaybeSet, EndpointNotSet, EndpointSet, HttpClientError, IssuerUrl,
    JsonWebKeySetUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError,
    Scope, SignatureVerificationError, TokenResponse,
};
use serde::{Deserialize, Serialize};
use std::sync::RwLock;
use std::time::Duration;
use url::Url;

pub mod checks;
pub mod error;

pub use checks::Callback;
pub use error::SsoError;

/// Where the sign-in service sends the browser back, under the console's public address.
pub const CALLBACK_PATH: &str = "/sign-in/sso/callback";

/// The scopes asked for: `openid` (added by the library), the email and the display name.
const SCOPES: [&str; 2] = ["email", "profile"];

/// How long one request to the sign-in service may take. Sign-in waits on it, so a dead
/// service must fail in seconds, not hang the page.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How the console is registered at the sign-in service (from `--oidc-*` and `--public-url`).
#[derive(Clone, Debug)]
pub struct SsoSettings {
    /// The issuer exactly as the service writes it in its discovery document (a string, not a
    /// parsed URL: parsing adds a `/` to `https://accounts.google.com`, and then the issuer the
    /// service names no longer matches).
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Hidden<String>,
    /// `<public-url>/sign-in/sso/callback` (see [`callback_url`]).
    pub redirect_url: Url,
    /// Email domains allowed to sign in (exact match, any case); empty = any verified email.
    pub allowed_domains: Vec<String>,
    /// Accept an email whose token has no `email_verified` claim at all (never one that says
    /// `false`). Off by default; for a service that never sends the claim but owns every
    /// address it issues (see docs/sign-in.md).
    pub trust_email_without_verified_claim: bool,
}

/// `<public-url>/sign-in/sso/callback`, keeping a path prefix the public URL may have.
pub fn callback_url(public_url: &Url) -> Url {
    let mut url = public_url.clone();
    let prefix = url.path().trim_end_matches('/').to_string();
    url.set_path(&format!("{prefix}{CALLBACK_PATH}"));
    url.set_query(None);
    url.set_fragment(None);
    url
}

/// A sign-in between the redirect to the service and the callback: kept in the person's
/// session (server side), used once by [`SsoClient::finish`]. Every value is a secret for those
/// few minutes, so `Debug` prints none of them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PendingSignIn {
    state: Hidden<String>,
    nonce: Hidden<String>,
    pkce_verifier: Hidden<String>,
    /// The service it was started with: a callback after the console moved to another
    /// service is refused.
    issuer: String,
    /// Unix seconds, for [`checks::PENDING_LIFETIME_SECS`].
    started_at: i64,
}

/// Who signed in, from a verified ID token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedIdentity {
    /// Lower-cased, verified by the service, in an allowed domain.
    pub email: String,
    /// The service's stable id for the person (`sub`): unique for this issuer.
    pub subject: String,
    pub name: Option<String>,
}

type OidcClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// The console's side of single sign-on, made once at start ([`SsoClient::discover`]) and
/// shared (put it in an `Arc`).
pub struct SsoClient {
    client: OidcClient,
    http: reqwest::Client,
    issuer: IssuerUrl,
    client_id: ClientId,
    client_secret: ClientSecret,
    jwks_uri: JsonWebKeySetUrl,
    /// The service's signing keys; fetched again when a token is signed by a key not in
    /// here (services rotate their keys; a console runs for months).
    keys: RwLock<CoreJsonWebKeySet>,
    signing_algs: Vec<CoreJwsSigningAlgorithm>,
    allowed_domains: Vec<String>,
    trust_email_without_verified_claim: bool,
}

impl std::fmt::Debug for SsoClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SsoClient")
            .field("issuer", &self.issuer.as_str())
            .field("client_id", &self.client_id.as_str())
            .field("allowed_domains", &self.allowed_domains)
            .finish_non_exhaustive()
    }
}

impl SsoClient {
    /// Reads the service's discovery document and signing keys (OpenID Connect Discovery).
    /// Called once at start: a wrong issuer stops the console with a clear message instead of
    /// failing at the first sign-in.
    pub async fn discover(settings: SsoSettings) -> Result<SsoClient, SsoError> {
        // Compared exactly later, so made comparable here; one bad entry fails the start
        // rather than being dropped (dropping every entry would allow every domain).
        let allowed_domains = settings
            .allowed_domains
            .iter()
            .map(|domain| checks::allowed_domain(domain))
            .collect::<Result<Vec<_>, _>>()
            .map_err(SsoError::Settings)?;
        let issuer_text = settings.issuer.clone();
        let failed = |reason: String| SsoError::Discovery {
            issuer: issuer_text.clone(),
            reason,
        };
        let http = reqwest::Client::builder()
            // A redirect is never followed: the endpoints the service names are used as they
            // are, and a token request is never sent on to another host.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("offboard/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|_| failed("the HTTP client could not be set up".into()))?;
        let issuer = IssuerUrl::new(settings.issuer.clone())
            .map_err(|_| failed("it is not a web address".into()))?;
        let metadata = CoreProviderMetadata::discover_async(issuer.clone(), &http)
            .await
            .map_err(|err| failed(discovery_reason(&err)))?;
        if metadata.token_endpoint().is_none() {
            return Err(failed("it names no token endpoint".into()));
        }
        let jwks_uri = metadata.jwks_uri().clone();
        let keys = metadata.jwks().clone();
        // `none` is never acceptable, whatever the document lists.
        let signing_algs: Vec<_> = metadata
            .id_token_signing_alg_values_supported()
            .iter()
            .filter(|alg| **alg != CoreJwsSigningAlgorithm::None)
            .cloned()
            .collect();
        // client_secret_basic unless the service only takes the secret in the form body.
        let auth_type = match metadata.token_endpoint_auth_methods_supported() {
            Some(methods)
                if methods.contains(&CoreClientAuthMethod::ClientSecretPost)
                    && !methods.contains(&CoreClientAuthMethod::ClientSecretBasic) =>
            {
                AuthType::RequestBody
            }
            _ => AuthType::BasicAuth,
        };
        let client_id = ClientId::new(settings.client_id.clone());
        let client_secret = ClientSecret::new(settings.client_secret.expose().clone());
        let client = CoreClient::from_provider_metadata(
            metadata,
            client_id.clone(),
            Some(client_secret.clone()),
        )
        .set_auth_type(auth_type)
        .set_redirect_uri(RedirectUrl::from_url(settings.redirect_url.clone()));
        Ok(SsoClient {
            client,
            http,
            issuer,
            client_id,
            client_secret,
            jwks_uri,
            keys: RwLock::new(keys),
            signing_algs,
            allowed_domains,
            trust_email_without_verified_claim: settings.trust_email_without_verified_claim,
        })
    }

    /// The issuer this console signs people in with, as configured.
    pub fn issuer(&self) -> &str {
        self.issuer.as_str()
    }

    /// Begins a sign-in: where to send the browser (the service's sign-in page, with a PKCE
    /// S256 challenge, a random state and nonce), and what to keep in the session until the
    /// callback.
    pub fn start(&self) -> (Url, PendingSignIn) {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = self.client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in SCOPES {
            request = request.add_scope(Scope::new(scope.to_string()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        let pending = PendingSignIn {
            state: Hidden::new(state.secret().clone()),
            nonce: Hidden::new(nonce.secret().clone()),
            pkce_verifier: Hidden::new(verifier.secret().clone()),
            issuer: self.issuer.as_str().to_string(),
            started_at: chrono::Utc::now().timestamp(),
        };
        (url, pending)
    }

    /// Ends a sign-in: checks that the callback belongs to `pending` (state, age), exchanges the
    /// code with the PKCE verifier, verifies the ID token (signature, issuer, audience, expiry,
    /// nonce) and the email it carries (present, verified, allowed domain).
    ///
    /// Take `pending` out of the session before calling (a pending sign-in is used once,
    /// whatever the outcome).
    pub async fn finish(
        &self,
        pending: PendingSignIn,
        callback: Callback,
    ) -> Result<VerifiedIdentity, SsoError> {
        if pending.issuer != self.issuer.as_str() {
            return Err(SsoError::Expired);
        }
        let now = chrono::Utc::now().timestamp();
        let code =
            checks::code_from_callback(pending.state.expose(), pending.started_at, now, &callback)?;
        let request = self
            .client
            .exchange_code(AuthorizationCode::new(code))
            // Unreachable after `discover` (it refuses a service without a token endpoint).
            .map_err(|_| SsoError::Untrusted {
                reason: "the service names no token endpoint".into(),
            })?
            .set_pkce_verifier(PkceCodeVerifier::new(
                pending.pkce_verifier.expose().clone(),
            ));
        let response = request
            .request_async(&self.http)
            .await
            .map_err(token_error)?;
        let id_token = response.id_token().ok_or_else(|| SsoError::Untrusted {
            reason: "it sent no ID token".into(),
        })?;
        let nonce = Nonce::new(pending.nonce.expose().clone());
        let verified = id_token.claims(&self.verifier(), &nonce).cloned();
        let claims = match verified {
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                // Signed with a key we do not have yet: the service rotated its keys.
                self.reload_keys().await?;
                id_token
                    .claims(&self.verifier(), &nonce)
                    .cloned()
                    .map_err(|err| claims_error(&err))?
            }
            other => other.map_err(|err| claims_error(&err))?,
        };
        // The access token is never used (the identity comes from the ID token alone), so its
        // `at_hash` is not checked: it protects a token this console throws away.
        let email = checks::accepted_email(
            claims.email().map(|e| e.as_str()),
            claims.email_verified(),
            self.trust_email_without_verified_claim,
            &self.allowed_domains,
        )?;
        Ok(VerifiedIdentity {
            email,
            subject: claims.subject().as_str().to_string(),
            name: claims
                .name()
                .and_then(|names| names.get(None))
                .map(|name| name.as_str().to_string()),
        })
    }

    /// The ID-token checks: this issuer, this client as the audience (and no other audience),
    /// the service's current keys and algorithms, expiry.
    fn verifier(&self) -> CoreIdTokenVerifier<'static> {
        let keys = match self.keys.read() {
            Ok(keys) => keys.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let verifier = CoreIdTokenVerifier::new_confidential_client(
            self.client_id.clone(),
            self.client_secret.clone(),
            self.issuer.clone(),
            keys,
        );
        if self.signing_algs.is_empty() {
            verifier
        } else {
            verifier.set_allowed_algs(self.signing_algs.clone())
        }
    }

    async fn reload_keys(&self) -> Result<(), SsoError> {
        let keys = CoreJsonWebKeySet::fetch_async(&self.jwks_uri, &self.http)
            .await
            .map_err(|err| SsoError::Untrusted {
                reason: format!(
                    "its signing keys could not be read: {}",
                    discovery_reason(&err)
                ),
            })?;
        match self.keys.write() {
            Ok(mut current) => *current = keys,
            Err(poisoned) => *poisoned.into_inner() = keys,
        }
        Ok(())
    }
}

type HttpError = HttpClientError<reqwest::Error>;

/// A failed request in words, without the URL (reqwest's own message carries it, and a URL
/// may carry a code).
fn transport_reason(err: &HttpError) -> String {
    match err {
        HttpClientError::Reqwest(err) if err.is_timeout() => "it did not answer in time".into(),
        HttpClientError::Reqwest(err) if err.is_connect() => "no connection could be made".into(),
        _ => "the connection failed".into(),
    }
}

fn discovery_reason(err: &DiscoveryError<HttpError>) -> String {
    match err {
        DiscoveryError::Request(err) => transport_reason(err),
        DiscoveryError::Response(status, _, _) if status.is_redirection() => format!(
            "it answered with a redirect (HTTP {}); give the final address, Offboard does not follow redirects",
            status.as_u16()
        ),
        DiscoveryError::Response(status, _, _) if status.is_success() => {
            "its answer is not JSON".into()
        }
        DiscoveryError::Response(status, _, _) => format!(
            "its discovery document (/.well-known/openid-configuration) answered HTTP {}",
            status.as_u16()
        ),
        DiscoveryError::Parse(err) => format!(
            "its discovery document is not valid OpenID Connect settings ({})",
            err.path()
        ),
        DiscoveryError::Validation(reason) => reason.clone(),
        DiscoveryError::UrlParse(_) => "it is not a web address".into(),
        DiscoveryError::Other(reason) => reason.clone(),
        _ => "its settings could not be read".into(),
    }
}

/// The token endpoint's refusal in words. `invalid_grant` is a used, expired or foreign code
/// (or a PKCE verifier that does not match): the person starts again.
fn token_error(
    err: RequestTokenError<HttpError, openidconnect::StandardErrorResponse<CoreErrorResponseType>>,
) -> SsoError {
    match err {
        RequestTokenError::ServerResponse(answer) => match answer.error() {
            CoreErrorResponseType::InvalidGrant => SsoError::Expired,
            CoreErrorResponseType::InvalidClient | CoreErrorResponseType::UnauthorizedClient => {
                SsoError::ClientRejected
            }
            other => SsoError::Refused {
                reason: checks::refusal_reason(
                    other.as_ref(),
                    answer.error_description().map(String::as_str),
                ),
            },
        },
        RequestTokenError::Request(err) => SsoError::Unreachable {
            reason: transport_reason(&err),
        },
        RequestTokenError::Parse(_, _) | RequestTokenError::Other(_) => SsoError::Untrusted {
            reason: "its answer to the code exchange could not be read".into(),
        },
    }
}

/// Why an ID token was refused, in words (the library's messages carry claim values).
fn claims_error(err: &ClaimsVerificationError) -> SsoError {
    let reason = match err {
        ClaimsVerificationError::Expired(_) => "the token has expired (check this machine's clock)",
        ClaimsVerificationError::InvalidAudience(_) => {
            "the token was issued for another application"
        }
        ClaimsVerificationError::InvalidIssuer(_) => "the token was issued by another service",
        ClaimsVerificationError::InvalidNonce(_) => "the token belongs to another sign-in attempt",
        ClaimsVerificationError::SignatureVerification(_) => {
            "the token's signature does not match the service's keys"
        }
        ClaimsVerificationError::InvalidSubject(_) => "the token names nobody",
        _ => "the token's claims could not be verified",
    };
    SsoError::Untrusted {
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The router keeps one client in its state and awaits `finish` in a handler: both must
    /// cross threads. (A compile-time check: it fails to build, not to run.)
    #[test]
    fn the_client_and_its_futures_can_cross_threads() {
        fn send_sync<T: Send + Sync + 'static>() {}
        fn send<T: Send>(_: &T) {}
        send_sync::<SsoClient>();
        send_sync::<PendingSignIn>();
        fn finishing(client: &SsoClient, pending: PendingSignIn) {
            let future = client.finish(pending, Callback::default());
            send(&future);
        }
        let _ = finishing;
    }

    #[test]
    fn the_callback_url_sits_under_the_public_url() {
        let at = |u: &str| callback_url(&Url::parse(u).unwrap()).to_string();
        assert_eq!(
            at("https://offboard.example.com"),
            "https://offboard.example.com/sign-in/sso/callback"
        );
        assert_eq!(
            at("https://example.com/offboard/"),
            "https://example.com/offboard/sign-in/sso/callback"
        );
        assert_eq!(
            at("http://127.0.0.1:3000/?x=1#y"),
            "http://127.0.0.1:3000/sign-in/sso/callback"
        );
    }

    #[test]
    fn a_pending_sign_in_travels_whole_but_never_prints() {
        let pending = PendingSignIn {
            state: Hidden::new("state-value-123".into()),
            nonce: Hidden::new("nonce-value-456".into()),
            pkce_verifier: Hidden::new("verifier-value-789".into()),
            issuer: "https://idp.example.com".into(),
            started_at: 1_800_000_000,
        };
        let printed = format!("{pending:?} {pending:#?}");
        for secret in ["state-value-123", "nonce-value-456", "verifier-value-789"] {
            assert!(!printed.contains(secret), "{printed}");
        }
        let json = serde_json::to_string(&pending).unwrap();
        let back: PendingSignIn = serde_json::from_str(&json).unwrap();
        assert_eq!(back.state.expose(), "state-value-123");
        assert_eq!(back.pkce_verifier.expose(), "verifier-value-789");
        assert_eq!(back.started_at, 1_800_000_000);
    }

    #[test]
    fn error_messages_name_no_secret() {
        // Every variant's text is built from fixed words plus what the service said; none of
        // them has a field for the secret, the code or a token. This pins the wording people see.
        assert_eq!(
            SsoError::Expired.to_string(),
            "This sign-in link was already used or has expired: start again"
        );
        assert_eq!(
            SsoError::DomainNotAllowed {
                domain: "example.org".into()
            }
            .to_string(),
            "Your email domain example.org is not allowed on this console"
        );
        assert!(SsoError::Refused {
            reason: "access denied".into()
        }
        .to_string()
        .starts_with("Your company's sign-in service said no: "));
    }
}
