//! What can go wrong while someone signs in with their company's sign-in service, in words an
//! admin understands. No message ever carries the client secret, the code, or a token.

/// Why a single sign-on attempt (or the console's start-up discovery) failed.
///
/// The `Display` text is meant for the person signing in (or, for [`SsoError::Discovery`] and
/// [`SsoError::ClientRejected`], for the admin who runs the console); it names the cause and what
/// to do, never a secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SsoError {
    /// The sign-in service's settings could not be read when the console started.
    #[error(
        "Offboard could not read the settings of the sign-in service at {issuer}: {reason}. \
         Check --oidc-issuer (it must be the issuer exactly as the service writes it)."
    )]
    Discovery { issuer: String, reason: String },

    /// The settings given to [`super::SsoClient::discover`] are not usable (a bad allowed
    /// domain); `config.rs` refuses these earlier, with the flag's name.
    #[error("Single sign-on is not set up correctly: {0}")]
    Settings(String),

    /// The sign-in service answered the browser with an error (the person cancelled, or is not
    /// assigned to the application, …). `reason` is the service's own words, tidied.
    #[error("Your company's sign-in service said no: {reason}")]
    Refused { reason: String },

    /// The callback does not belong to a sign-in this browser started, or it came too late, or
    /// its code was already used. Starting again is the cure.
    #[error("This sign-in link was already used or has expired: start again")]
    Expired,

    /// The callback came back without a code and without an error.
    #[error("Your company's sign-in service sent an incomplete answer: start again")]
    Incomplete,

    /// The service did not accept Offboard's client id or secret.
    #[error(
        "Your company's sign-in service did not accept this console's client ID or secret: \
         the console's administrator must check --oidc-client-id and --oidc-client-secret"
    )]
    ClientRejected,

    /// The service could not be reached (network, timeout).
    #[error(
        "Offboard could not reach your company's sign-in service ({reason}): try again in a moment"
    )]
    Unreachable { reason: String },

    /// The service's answer was not a valid, verifiable ID token for this console.
    #[error(
        "Offboard could not trust the sign-in service's answer ({reason}), so nobody was signed in"
    )]
    Untrusted { reason: String },

    /// The verified token carries no email address.
    #[error(
        "Your company's sign-in service did not share your email address: \
         its administrator must allow the \"email\" scope for Offboard"
    )]
    NoEmail,

    /// The email is not verified by the service (or the service does not say).
    #[error(
        "Your email address {email} is not marked as verified by your company's sign-in service, \
         so Offboard cannot sign you in with it"
    )]
    EmailNotVerified { email: String },

    /// The email's domain is not on the console's list.
    #[error("Your email domain {domain} is not allowed on this console")]
    DomainNotAllowed { domain: String },
}
