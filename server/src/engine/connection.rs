//! The connection check on the Connect screen: one small list request, and what its result
//! says about the URL, the token and the network, in plain words.

use crate::engine::listing::{looks_like_html, parse_list_page, ListingError};
use crate::scim::replies::{server_message, shared_reply, SharedReply};
use crate::scim::{ScimProvider, ScimReply, TransportError};
use model::deletion::DiagnosisKind;
use model::Named;
use serde::ser::{Serialize, SerializeStruct, Serializer};

/// What the connection check found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectionDiagnosis {
    /// The site answered as SCIM and accepted the token.
    Ok {
        user_count: usize,
    },
    /// 401/403.
    BadToken {
        status: u16,
    },
    /// 404, a redirect, a web page, or JSON that is not a SCIM list.
    NotScim {
        status: u16,
        detail: String,
    },
    Tls {
        detail: String,
    },
    Dns {
        detail: String,
    },
    Connect {
        detail: String,
    },
    Timeout {
        seconds: u64,
    },
    /// 429 (or a 503 with `Retry-After`): the token works but the site asks to slow down.
    Throttled,
    ServerError {
        status: u16,
        message: Option<String>,
    },
    /// The connection broke in some other way.
    Failed {
        detail: String,
    },
}

impl ConnectionDiagnosis {
    pub fn is_ok(&self) -> bool {
        matches!(self, ConnectionDiagnosis::Ok { .. })
    }

    /// A stable short name for the console and the logs.
    pub fn kind(&self) -> DiagnosisKind {
        match self {
            ConnectionDiagnosis::Ok { .. } => DiagnosisKind::Ok,
            ConnectionDiagnosis::BadToken { .. } => DiagnosisKind::BadToken,
            ConnectionDiagnosis::NotScim { .. } => DiagnosisKind::NotScim,
            ConnectionDiagnosis::Tls { .. } => DiagnosisKind::Tls,
            ConnectionDiagnosis::Dns { .. } => DiagnosisKind::Dns,
            ConnectionDiagnosis::Connect { .. } => DiagnosisKind::Connect,
            ConnectionDiagnosis::Timeout { .. } => DiagnosisKind::Timeout,
            ConnectionDiagnosis::Throttled => DiagnosisKind::Throttled,
            ConnectionDiagnosis::ServerError { .. } => DiagnosisKind::ServerError,
            ConnectionDiagnosis::Failed { .. } => DiagnosisKind::Failed,
        }
    }

    /// What the admin reads on the Connect screen.
    pub fn message(&self) -> String {
        match self {
            ConnectionDiagnosis::Ok { user_count: 1 } => {
                "Connected. The site lists 1 user.".to_string()
            }
            ConnectionDiagnosis::Ok { user_count } => {
                format!("Connected. The site lists {user_count} users.")
            }
            ConnectionDiagnosis::BadToken { status } => format!(
                "The site refused the token (HTTP {status}). Check that you pasted the SCIM token \
                 (not an API token), that it was not regenerated since, and that SCIM is enabled \
                 in the site's admin settings."
            ),
            ConnectionDiagnosis::NotScim { status, detail } => format!(
                "The site answered, but this is not its SCIM users endpoint (HTTP {status}: \
                 {detail}). Check the site URL, the edition (Enterprise vs Business), and that \
                 SCIM is enabled in the site's admin settings."
            ),
            ConnectionDiagnosis::Tls { detail } => format!(
                "The secure connection failed ({detail}). If your site uses a certificate from \
                 your company's own authority, give Offboard that CA certificate (PEM file) with \
                 --ca-bundle or OFFBOARD_CA_BUNDLE."
            ),
            ConnectionDiagnosis::Dns { detail } => format!(
                "The site's name could not be found ({detail}). Check the spelling of the site URL \
                 and that this server can reach your network."
            ),
            ConnectionDiagnosis::Connect { detail } => format!(
                "Could not connect to the site ({detail}). Check the URL and port, and any \
                 firewall or proxy between this server and the site."
            ),
            ConnectionDiagnosis::Timeout { seconds } => format!(
                "The site did not answer within {seconds} seconds. It may be down or very slow; \
                 try again, or check the network between this server and the site."
            ),
            ConnectionDiagnosis::Throttled => "The token works, but the site asked Offboard to \
                 slow down (HTTP 429, or 503 with a time to come back). Wait a minute and check again."
                .to_string(),
            ConnectionDiagnosis::ServerError { status, message } => match message {
                Some(m) => format!("The site reported an error (HTTP {status}): {m}"),
                None => format!("The site reported an error (HTTP {status}) without explanation."),
            },
            ConnectionDiagnosis::Failed { detail } => {
                format!("The connection to the site failed: {detail}")
            }
        }
    }
}

/// Serialized for the console as `{kind, ok, message, user_count?, status?}`, so the browser
/// gets the same words the CLI prints.
impl Serialize for ConnectionDiagnosis {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (user_count, status) = match self {
            ConnectionDiagnosis::Ok { user_count } => (Some(*user_count), None),
            ConnectionDiagnosis::BadToken { status }
            | ConnectionDiagnosis::NotScim { status, .. }
            | ConnectionDiagnosis::ServerError { status, .. } => (None, Some(*status)),
            _ => (None, None),
        };
        let mut s = serializer.serialize_struct("ConnectionDiagnosis", 5)?;
        s.serialize_field("kind", self.kind().key())?;
        s.serialize_field("ok", &self.is_ok())?;
        s.serialize_field("message", &self.message())?;
        s.serialize_field("user_count", &user_count)?;
        s.serialize_field("status", &status)?;
        s.end()
    }
}

/// Asks for one user (`startIndex=1&count=1`) and says what the answer means.
pub async fn check_connection(provider: &dyn ScimProvider) -> ConnectionDiagnosis {
    diagnose(provider.list_users(1, 1).await)
}

/// Pure: what the reply to `list_users(1, 1)` says about the connection.
pub fn diagnose(result: Result<ScimReply, TransportError>) -> ConnectionDiagnosis {
    let reply = match result {
        Ok(reply) => reply,
        Err(TransportError::Timeout(seconds)) => return ConnectionDiagnosis::Timeout { seconds },
        Err(TransportError::Dns(detail)) => return ConnectionDiagnosis::Dns { detail },
        Err(TransportError::Connect(detail)) => return ConnectionDiagnosis::Connect { detail },
        Err(TransportError::Tls(detail)) => return ConnectionDiagnosis::Tls { detail },
        Err(TransportError::Other(detail)) => return ConnectionDiagnosis::Failed { detail },
    };
    let status = reply.status;
    let not_scim = |detail: &str| ConnectionDiagnosis::NotScim {
        status,
        detail: detail.to_string(),
    };
    let html = looks_like_html(reply.content_type.as_deref(), &reply.body);
    match shared_reply(&reply, std::time::SystemTime::now()) {
        Some(SharedReply::Unauthorized) => return ConnectionDiagnosis::BadToken { status },
        Some(SharedReply::Throttled(_)) => return ConnectionDiagnosis::Throttled,
        // A temporary error is still the site's error: shown with its own words below.
        Some(SharedReply::Transient(_)) | None => {}
    }
    match status {
        200 if html => not_scim("a web page came back instead of SCIM data"),
        200 => match parse_list_page(&reply.body) {
            Ok(page) => ConnectionDiagnosis::Ok {
                user_count: page.total_results,
            },
            Err(e @ ListingError::TooMany { .. }) => ConnectionDiagnosis::Failed {
                detail: e.to_string(),
            },
            Err(_) if serde_json::from_str::<serde_json::Value>(&reply.body).is_err() => {
                not_scim("the reply is not JSON")
            }
            Err(_) => not_scim("the reply is not a SCIM user list"),
        },
        300..=399 => not_scim("the address redirects elsewhere"),
        404 | 405 | 410 => not_scim("nothing answers at this address"),
        _ if html && status < 500 => not_scim("a web page came back instead of SCIM data"),
        _ => ConnectionDiagnosis::ServerError {
            status,
            message: server_message(&reply.body),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(
        status: u16,
        content_type: Option<&str>,
        body: &str,
    ) -> Result<ScimReply, TransportError> {
        Ok(ScimReply {
            status,
            retry_after: None,
            content_type: content_type.map(str::to_string),
            body: body.to_string(),
        })
    }

    const JSON: Option<&str> = Some("application/scim+json");

    /// `d`'s words say `words` (shown in full when they do not).
    fn says(d: &ConnectionDiagnosis, words: &str) {
        let message = d.message();
        assert!(message.contains(words), "{message}");
    }

    #[test]
    fn ok_reports_the_total_not_the_page() {
        let body =
            r#"{"totalResults":2500,"startIndex":1,"itemsPerPage":1,"Resources":[{"id":"a"}]}"#;
        let d = diagnose(reply(200, JSON, body));
        assert_eq!(d, ConnectionDiagnosis::Ok { user_count: 2500 });
        assert!(d.is_ok());
        assert_eq!(d.message(), "Connected. The site lists 2500 users.");
        assert_eq!(
            diagnose(reply(200, None, r#"{"totalResults":0}"#)).message(),
            "Connected. The site lists 0 users."
        );
        assert_eq!(
            diagnose(reply(
                200,
                JSON,
                r#"{"totalResults":1,"Resources":[{"id":"a"}]}"#
            ))
            .message(),
            "Connected. The site lists 1 user."
        );
    }

    #[test]
    fn refused_tokens() {
        for status in [401, 403] {
            let d = diagnose(reply(status, JSON, r#"{"detail":"Authorization failure"}"#));
            assert_eq!(d, ConnectionDiagnosis::BadToken { status });
            assert!(d.message().contains("refused the token"));
            assert!(!d.is_ok());
        }
    }

    #[test]
    fn wrong_urls_are_not_scim() {
        let cases = [
            reply(404, JSON, r#"{"detail":"No resource type found"}"#),
            reply(404, Some("text/html"), "<html>Page not found</html>"),
            reply(302, None, ""),
            reply(405, None, ""),
            reply(
                200,
                Some("text/html; charset=utf-8"),
                "<!doctype html><title>Sign in</title>",
            ),
            reply(200, None, "  <html>"),
            reply(200, Some("text/plain"), "OK"),
            reply(200, JSON, r#"{"users":[]}"#),
            reply(200, JSON, "[]"),
            reply(400, Some("text/html"), "<h1>Bad Request</h1>"),
        ];
        for case in cases {
            let shown = format!("{case:?}");
            let d = diagnose(case);
            assert!(
                matches!(d, ConnectionDiagnosis::NotScim { .. }),
                "{shown} -> {d:?}"
            );
            says(&d, "Enterprise vs Business");
        }
    }

    #[test]
    fn server_errors_carry_the_site_message() {
        assert_eq!(
            diagnose(reply(
                500,
                JSON,
                r#"{"ErrorMessage":"Database unavailable"}"#
            )),
            ConnectionDiagnosis::ServerError {
                status: 500,
                message: Some("Database unavailable".into())
            }
        );
        let d = diagnose(reply(502, Some("text/html"), "<html>Bad gateway</html>"));
        assert_eq!(
            d,
            ConnectionDiagnosis::ServerError {
                status: 502,
                message: None
            }
        );
        assert!(d.message().contains("HTTP 502"));
        assert_eq!(
            diagnose(reply(429, None, "")),
            ConnectionDiagnosis::Throttled
        );
        // The same rule as the listing and the runner: a 503 that says when to come back is
        // throttling; without Retry-After it is the site's error.
        let shedding = reply(503, None, "").map(|r| ScimReply {
            retry_after: Some("30".into()),
            ..r
        });
        assert_eq!(diagnose(shedding), ConnectionDiagnosis::Throttled);
        assert!(matches!(
            diagnose(reply(503, None, "")),
            ConnectionDiagnosis::ServerError { status: 503, .. }
        ));
        let absurd = diagnose(reply(200, JSON, r#"{"totalResults":1e17}"#));
        says(&absurd, "more than Offboard will list");
    }

    #[test]
    fn transport_failures() {
        let d = diagnose(Err(TransportError::Tls(
            "invalid peer certificate: UnknownIssuer".into(),
        )));
        assert!(matches!(d, ConnectionDiagnosis::Tls { .. }));
        assert!(d.message().contains("--ca-bundle") && d.message().contains("OFFBOARD_CA_BUNDLE"));
        assert!(d.message().contains("UnknownIssuer"));
        assert_eq!(
            diagnose(Err(TransportError::Timeout(30))),
            ConnectionDiagnosis::Timeout { seconds: 30 }
        );
        assert!(diagnose(Err(TransportError::Timeout(30)))
            .message()
            .contains("30 seconds"));
        assert!(matches!(
            diagnose(Err(TransportError::Dns("no such host".into()))),
            ConnectionDiagnosis::Dns { .. }
        ));
        assert!(matches!(
            diagnose(Err(TransportError::Connect("Connection refused".into()))),
            ConnectionDiagnosis::Connect { .. }
        ));
        assert!(matches!(
            diagnose(Err(TransportError::Other("reset".into()))),
            ConnectionDiagnosis::Failed { .. }
        ));
    }

    #[test]
    fn serializes_with_kind_and_message() {
        let v = serde_json::to_value(ConnectionDiagnosis::Ok { user_count: 3 }).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"kind":"ok","ok":true,"message":"Connected. The site lists 3 users.","user_count":3,"status":null})
        );
        let v = serde_json::to_value(ConnectionDiagnosis::BadToken { status: 401 }).unwrap();
        assert_eq!(v["kind"], "bad_token");
        assert_eq!(v["ok"], false);
        assert_eq!(v["status"], 401);
        assert!(v["message"].as_str().unwrap().contains("refused the token"));
    }
}
