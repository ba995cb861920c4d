//! The decisions of a single sign-on that need no network: is this callback ours, which email
//! does the token give, is its domain allowed. Plain functions, so they are tested on their own.

use super::error::SsoError;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// How long a started sign-in may take before its callback is refused (seconds). Long enough
/// for a password manager and a second factor, short enough that an old tab cannot finish it.
pub const PENDING_LIFETIME_SECS: i64 = 10 * 60;

/// The query of the callback URL (`/sign-in/sso/callback?code=…&state=…`, or `?error=…`), as the
/// router parses it. Every field is optional: anyone can open the URL with anything in it.
#[derive(Clone, Default, Deserialize)]
pub struct Callback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

// The code and the state are secrets for a few seconds: never printed.
impl std::fmt::Debug for Callback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callback")
            .field("code", &self.code.as_ref().map(|_| "<hidden>"))
            .field("state", &self.state.as_ref().map(|_| "<hidden>"))
            .field("error", &self.error)
            .field("error_description", &self.error_description)
            .finish()
    }
}

/// Equal secrets, compared in time that does not depend on where they differ: both are hashed
/// first (so the length leaks nothing either) and the digests compared byte by byte with no
/// early exit.
pub fn same_secret(expected: &str, got: &str) -> bool {
    let a = Sha256::digest(expected.as_bytes());
    let b = Sha256::digest(got.as_bytes());
    let diff = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // An empty expected value never matches: a pending sign-in always has a state.
    diff == 0 && !expected.is_empty()
}

/// What the callback says, checked against the sign-in this browser started: the code to
/// exchange, or why not. Order matters: the state is checked first, so a forged link carrying
/// an `error` cannot put the attacker's words on the console's page.
pub fn code_from_callback(
    expected_state: &str,
    started_at: i64,
    now: i64,
    callback: &Callback,
) -> Result<String, SsoError> {
    // A clock that went backwards by more than a minute is as suspect as an old sign-in.
    let age = now - started_at;
    if !(-60..=PENDING_LIFETIME_SECS).contains(&age) {
        return Err(SsoError::Expired);
    }
    match callback.state.as_deref() {
        Some(state) if same_secret(expected_state, state) => {}
        _ => return Err(SsoError::Expired),
    }
    if let Some(error) = callback.error.as_deref() {
        return Err(SsoError::Refused {
            reason: refusal_reason(error, callback.error_description.as_deref()),
        });
    }
    match callback.code.as_deref().map(str::trim) {
        Some(code) if !code.is_empty() => Ok(code.to_string()),
        _ => Err(SsoError::Incomplete),
    }
}

/// The sign-in service's refusal in words: its description when it gave one (tidied: printable
/// characters only, one line, at most 200 characters), else a sentence for the standard codes.
pub fn refusal_reason(error: &str, description: Option<&str>) -> String {
    let described = description.map(tidy).filter(|d| !d.is_empty());
    if let Some(text) = described {
        return text;
    }
    match error.trim() {
        "access_denied" => {
            "access denied (you cancelled, or you are not assigned to Offboard)".into()
        }
        "login_required" | "interaction_required" => "you need to sign in to it first".into(),
        "consent_required" => "Offboard has not been approved for your account".into(),
        "temporarily_unavailable" => "it is unavailable for the moment: try again later".into(),
        "server_error" => "it had an internal error: try again later".into(),
        other => {
            let code = tidy(other);
            if code.is_empty() {
                "no reason given".into()
            } else {
                format!("error \"{code}\"")
            }
        }
    }
}

/// Control characters dropped, whitespace runs made one space, cut at 200 characters.
fn tidy(text: &str) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_whitespace() { ' ' } else { c })
        .filter(|c| !c.is_control())
        .collect();
    let words: Vec<&str> = one_line.split(' ').filter(|w| !w.is_empty()).collect();
    let joined = words.join(" ");
    if joined.chars().count() > 200 {
        let cut: String = joined.chars().take(199).collect();
        format!("{cut}…")
    } else {
        joined
    }
}

/// An allowed domain as written in the configuration, made comparable: lower case, no leading
/// `@`, no trailing dot. Refuses what is not a plain domain name (wildcards, addresses, spaces):
/// an entry must name exactly one domain, so a typo cannot silently allow more.
pub fn allowed_domain(text: &str) -> Result<String, String> {
    let domain = text
        .trim()
        .trim_start_matches('@')
        .trim_end_matches('.')
        .to_lowercase();
    let plain = !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    if plain {
        Ok(domain)
    } else {
        Err(format!(
            "\"{text}\" is not an email domain: write it like example.com (no *, no @name, no spaces)"
        ))
    }
}

/// The email a verified ID token gives, if Offboard may sign its holder in: present, a plain
/// address, verified by the sign-in service, and (when the console has a list) in an allowed
/// domain. Returned lower-cased, the form the console keeps.
///
/// `email_verified` missing is refused unless `trust_missing_verified` (the admin's decision
/// for a service that never sends the claim but controls every address itself): an unverified
/// address could be anyone's, and the console gives power over a site's users.
pub fn accepted_email(
    email: Option<&str>,
    email_verified: Option<bool>,
    trust_missing_verified: bool,
    allowed_domains: &[String],
) -> Result<String, SsoError> {
    let raw = email
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .ok_or(SsoError::NoEmail)?;
    let email = raw.to_lowercase();
    let domain = email_domain(&email).ok_or_else(|| SsoError::Untrusted {
        reason: "the email address it gave is not a usable address".into(),
    })?;
    match email_verified {
        Some(true) => {}
        None if trust_missing_verified => {}
        _ => return Err(SsoError::EmailNotVerified { email }),
    }
    // `example.com.` is the same domain as `example.com`: one form, so one account.
    let bare = domain.trim_end_matches('.');
    if !allowed_domains.is_empty() && !allowed_domains.iter().any(|d| d == bare) {
        return Err(SsoError::DomainNotAllowed {
            domain: bare.to_string(),
        });
    }
    let local = &email[..email.len() - domain.len() - 1];
    Ok(format!("{local}@{bare}"))
}

/// The domain of a plain address (`local@domain`, exactly one `@`, no spaces or control
/// characters), else `None`.
pub fn email_domain(email: &str) -> Option<&str> {
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let (local, domain) = email.split_once('@')?;
    if local.is_empty() || domain.is_empty() || domain.contains('@') {
        return None;
    }
    let bare = domain.trim_end_matches('.');
    if bare.is_empty() || bare.starts_with('.') || bare.contains("..") {
        return None;
    }
    Some(domain)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cb(code: Option<&str>, state: Option<&str>, error: Option<&str>) -> Callback {
        Callback {
            code: code.map(Into::into),
            state: state.map(Into::into),
            error: error.map(Into::into),
            error_description: None,
        }
    }

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc123", "abc123"));
        assert!(!same_secret("abc123", "abc124"));
        assert!(!same_secret("abc123", "abc12"));
        assert!(!same_secret("abc123", "abc1234"));
        assert!(!same_secret("abc123", ""));
        assert!(!same_secret("abc123", "ABC123"));
        // An empty expectation matches nothing, not even empty.
        assert!(!same_secret("", ""));
    }

    #[test]
    fn a_good_callback_gives_its_code() {
        let got = code_from_callback("s1", NOW - 5, NOW, &cb(Some("the-code"), Some("s1"), None));
        assert_eq!(got, Ok("the-code".to_string()));
    }

    #[test]
    fn a_callback_with_another_state_or_none_is_expired() {
        for state in [None, Some(""), Some("s2"), Some("s1 "), Some("S1")] {
            let got = code_from_callback("s1", NOW, NOW, &cb(Some("c"), state, None));
            assert_eq!(got, Err(SsoError::Expired), "{state:?}");
        }
    }

    #[test]
    fn a_forged_error_link_is_refused_as_expired_not_shown() {
        let mut forged = cb(None, Some("attacker"), Some("access_denied"));
        forged.error_description = Some("Call 555-0100 to restore your account".into());
        let got = code_from_callback("s1", NOW, NOW, &forged);
        assert_eq!(got, Err(SsoError::Expired));
    }

    #[test]
    fn an_error_with_our_state_is_the_services_refusal() {
        let mut refused = cb(None, Some("s1"), Some("access_denied"));
        let got = code_from_callback("s1", NOW, NOW, &refused);
        assert_eq!(
            got,
            Err(SsoError::Refused {
                reason: "access denied (you cancelled, or you are not assigned to Offboard)".into()
            })
        );
        // An error wins over a code sent alongside it.
        refused.code = Some("c".into());
        refused.error_description = Some("User is not assigned\r\n to the\tapp".into());
        let got = code_from_callback("s1", NOW, NOW, &refused);
        assert_eq!(
            got,
            Err(SsoError::Refused {
                reason: "User is not assigned to the app".into()
            })
        );
    }

    #[test]
    fn no_code_and_no_error_is_incomplete() {
        for code in [None, Some(""), Some("   ")] {
            let got = code_from_callback("s1", NOW, NOW, &cb(code, Some("s1"), None));
            assert_eq!(got, Err(SsoError::Incomplete));
        }
    }

    #[test]
    fn an_old_or_future_sign_in_is_expired() {
        let ok = cb(Some("c"), Some("s1"), None);
        assert!(code_from_callback("s1", NOW - PENDING_LIFETIME_SECS, NOW, &ok).is_ok());
        assert_eq!(
            code_from_callback("s1", NOW - PENDING_LIFETIME_SECS - 1, NOW, &ok),
            Err(SsoError::Expired)
        );
        assert_eq!(
            code_from_callback("s1", NOW + 3600, NOW, &ok),
            Err(SsoError::Expired)
        );
        // Overflow-proof on absurd stored times.
        assert_eq!(
            code_from_callback("s1", i64::MIN / 2, NOW, &ok),
            Err(SsoError::Expired)
        );
    }

    #[test]
    fn refusal_reasons_are_tidy_and_short() {
        assert_eq!(refusal_reason("weird_code", None), "error \"weird_code\"");
        assert_eq!(refusal_reason("", Some("  ")), "no reason given");
        assert_eq!(
            refusal_reason("x", Some("\u{7}bell\u{1b}[31m red")),
            "bell[31m red"
        );
        let long = "a".repeat(1000);
        let reason = refusal_reason("x", Some(&long));
        assert_eq!(reason.chars().count(), 200);
        assert!(reason.ends_with('…'));
        assert_eq!(
            refusal_reason("temporarily_unavailable", Some("")),
            "it is unavailable for the moment: try again later"
        );
    }

    #[test]
    fn allowed_domains_are_plain_names() {
        assert_eq!(
            allowed_domain(" Example.COM ").as_deref(),
            Ok("example.com")
        );
        assert_eq!(allowed_domain("@example.com").as_deref(), Ok("example.com"));
        assert_eq!(allowed_domain("example.com.").as_deref(), Ok("example.com"));
        assert_eq!(
            allowed_domain("sub.example.co.uk").as_deref(),
            Ok("sub.example.co.uk")
        );
        assert_eq!(
            allowed_domain("bücher.example").as_deref(),
            Ok("bücher.example")
        );
        for bad in [
            "",
            " ",
            "*.example.com",
            "alice@example.com",
            "example .com",
            "example..com",
            ".example.com",
            "-example.com",
            "example-.com",
            "exa_mple.com",
            "example.com/x",
            "@",
            ".",
            "example.com,example.org",
        ] {
            assert!(allowed_domain(bad).is_err(), "{bad:?} should be refused");
        }
    }

    fn allowed() -> Vec<String> {
        vec!["example.com".into(), "corp.example.net".into()]
    }

    #[test]
    fn a_verified_email_in_an_allowed_domain_is_accepted_lower_cased() {
        assert_eq!(
            accepted_email(
                Some("Alice.Admin@EXAMPLE.com"),
                Some(true),
                false,
                &allowed()
            ),
            Ok("alice.admin@example.com".into())
        );
        assert_eq!(
            accepted_email(
                Some(" bob@corp.example.net "),
                Some(true),
                false,
                &allowed()
            ),
            Ok("bob@corp.example.net".into())
        );
        // A trailing dot is the same domain.
        assert_eq!(
            accepted_email(Some("c@example.com."), Some(true), false, &allowed()),
            Ok("c@example.com".into())
        );
        // No list: any verified address.
        assert_eq!(
            accepted_email(Some("d@anywhere.test"), Some(true), false, &[]),
            Ok("d@anywhere.test".into())
        );
    }

    #[test]
    fn look_alike_domains_are_not_allowed() {
        for email in [
            "m@evil-example.com",
            "m@example.com.evil.org",
            "m@notexample.com",
            "m@sub.example.com",
            "m@example.co",
            "m@example.com.au",
            "m@net",
            "m@corp.example.net.evil",
            "m@example.сom", // Cyrillic "с"
        ] {
            let got = accepted_email(Some(email), Some(true), false, &allowed());
            assert!(
                matches!(got, Err(SsoError::DomainNotAllowed { .. })),
                "{email}: {got:?}"
            );
        }
        assert_eq!(
            accepted_email(Some("m@Evil-Example.com"), Some(true), false, &allowed()),
            Err(SsoError::DomainNotAllowed {
                domain: "evil-example.com".into()
            })
        );
    }

    #[test]
    fn malformed_addresses_are_not_trusted() {
        for email in [
            "no-at-sign",
            "@example.com",
            "alice@",
            "alice@example.com@evil.org",
            "al ice@example.com",
            "alice@exa\u{0}mple.com",
            "alice@.example.com",
            "alice@example..com",
            "alice@.",
        ] {
            let got = accepted_email(Some(email), Some(true), false, &[]);
            assert!(
                matches!(got, Err(SsoError::Untrusted { .. })),
                "{email:?}: {got:?}"
            );
        }
    }

    #[test]
    fn a_missing_email_is_no_email() {
        for email in [None, Some(""), Some("   ")] {
            assert_eq!(
                accepted_email(email, Some(true), false, &allowed()),
                Err(SsoError::NoEmail)
            );
        }
    }

    #[test]
    fn unverified_emails_are_refused_and_a_missing_claim_only_on_the_admins_word() {
        let not_verified = Err(SsoError::EmailNotVerified {
            email: "alice@example.com".into(),
        });
        assert_eq!(
            accepted_email(Some("alice@example.com"), Some(false), false, &allowed()),
            not_verified
        );
        assert_eq!(
            accepted_email(Some("alice@example.com"), None, false, &allowed()),
            not_verified
        );
        // Explicitly false stays refused even when the admin trusts a missing claim.
        assert_eq!(
            accepted_email(Some("alice@example.com"), Some(false), true, &allowed()),
            not_verified
        );
        assert_eq!(
            accepted_email(Some("alice@example.com"), None, true, &allowed()),
            Ok("alice@example.com".into())
        );
        // Trusting a missing claim does not bypass the domain list.
        assert!(matches!(
            accepted_email(Some("x@example.org"), None, true, &allowed()),
            Err(SsoError::DomainNotAllowed { .. })
        ));
    }

    #[test]
    fn a_callback_never_prints_its_code_or_state() {
        let printed = format!("{:?}", cb(Some("code-123456"), Some("state-abcdef"), None));
        assert!(
            !printed.contains("code-123456") && !printed.contains("state-abcdef"),
            "{printed}"
        );
    }
}
