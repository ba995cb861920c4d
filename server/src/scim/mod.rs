//! Talking to a site's SCIM 2.0 users endpoint: where it is, the secret token, and the raw
//! replies. What a reply *means* is decided by one table of pure functions in [`replies`].

use async_trait::async_trait;
use model::hidden::Hidden;

pub mod endpoint;
pub mod http;
pub mod patch;
pub mod replies;
pub mod site_guard;
pub mod users;

pub use endpoint::ScimEndpoint;

/// The SCIM bearer token. It is [`Hidden`]: `Debug` prints `<hidden>`, so it cannot leak into
/// logs, error messages or reports by accident; read it only with [`ScimToken::expose`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScimToken(Hidden<String>);

impl ScimToken {
    pub fn new(token: impl Into<String>) -> ScimToken {
        ScimToken(Hidden::new(token.into().trim().to_string()))
    }

    /// The token itself: only for the `Authorization` header and for encryption at rest.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// The last four characters, for "token saved, ending …ab12". Tokens shorter than
    /// 12 characters show nothing, so the hint never reveals a meaningful share of the secret.
    pub fn hint(&self) -> String {
        let chars: Vec<char> = self.0.expose().chars().collect();
        if chars.len() < 12 {
            String::new()
        } else {
            chars[chars.len() - 4..].iter().collect()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.expose().is_empty()
    }
}

/// One HTTP reply from the SCIM server, kept raw so classification stays a pure function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScimReply {
    pub status: u16,
    /// The `Retry-After` header verbatim (seconds or an HTTP date), if any.
    pub retry_after: Option<String>,
    /// The `Content-Type` header, if any (HTML here means "not a SCIM endpoint").
    pub content_type: Option<String>,
    pub body: String,
}

#[cfg(test)]
impl ScimReply {
    /// A JSON answer with no `Retry-After`: what the tests' made-up sites send.
    pub(crate) fn json(status: u16, body: &str) -> ScimReply {
        ScimReply {
            status,
            retry_after: None,
            content_type: Some("application/json".into()),
            body: body.into(),
        }
    }
}

/// A request that got no HTTP reply at all.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// No reply within the timeout. For a DELETE the outcome is *unknown*: it may have succeeded.
    #[error("the site did not answer within {0} seconds")]
    Timeout(u64),
    #[error("could not find the site's address (DNS): {0}")]
    Dns(String),
    #[error("could not connect to the site: {0}")]
    Connect(String),
    #[error("secure connection (TLS) failed: {0}")]
    Tls(String),
    #[error("the connection failed: {0}")]
    Other(String),
}

/// The SCIM operations the engine needs. The HTTP implementation is [`http::HttpScim`];
/// tests may use an in-memory fake for faults a real server cannot produce.
#[async_trait]
pub trait ScimProvider: Send + Sync {
    /// `GET {users}?startIndex=..&count=..` (1-based start index, as RFC 7644 says).
    async fn list_users(
        &self,
        start_index: usize,
        count: usize,
    ) -> Result<ScimReply, TransportError>;
    /// `GET {users}/{account_id}`.
    async fn get_user(&self, account_id: &str) -> Result<ScimReply, TransportError>;
    /// `DELETE {users}/{account_id}`.
    async fn delete_user(&self, account_id: &str) -> Result<ScimReply, TransportError>;
    /// `PATCH {users}/{account_id}` with a SCIM PatchOp body (`application/scim+json`).
    async fn patch_user(
        &self,
        account_id: &str,
        patch: &serde_json::Value,
    ) -> Result<ScimReply, TransportError>;
}
