//! Where a site's SCIM users collection lives, worked out from the URL an admin pastes.

use url::Url;

/// The SCIM users collection (`…/users`) plus the site's own address, which reports use to
/// link each account (`{site}/accounts/{id}`, as Stack's own deletion script does).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScimEndpoint {
    users_url: Url,
    site_url: Url,
}

/// Why a pasted address cannot be used, in words an admin can act on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("The site URL is empty. Paste the address of your site, e.g. https://acme.stackenterprise.co")]
    Empty,
    #[error("\"{0}\" is not a web address Offboard can read. Paste the address of your site, e.g. https://acme.stackenterprise.co")]
    Unreadable(String),
    #[error("Offboard only talks to sites over https (got \"{0}\").")]
    NotWeb(String),
    #[error("\"{0}\" uses plain http, which would send the SCIM token unencrypted. Use the https address of the site.")]
    Unencrypted(String),
    #[error("A Stack Overflow for Teams (Business) address must include your team, like https://stackoverflowteams.com/c/your-team (got \"{0}\").")]
    NoTeam(String),
    #[error(
        "The account ID \"{0}\" cannot be used in a web address, so no request was sent for it."
    )]
    UnaddressableId(String),
}

/// The host of Stack Overflow for Teams Business; every other host is treated as Enterprise
/// (Stack's own script decides the same way).
const BUSINESS_HOST: &str = "stackoverflowteams.com";

impl ScimEndpoint {
    /// From the site address an admin knows: Enterprise `{site}/api/scim/v2/users`, Business
    /// (stackoverflowteams.com/c/<team>) `{site}/auth/scim/v2/users`. Forgives a missing
    /// `https://`, spaces, trailing slashes, and a pasted page or API address on the site.
    pub fn from_site_url(site: &str) -> Result<ScimEndpoint, EndpointError> {
        let url = parse_web_url(site)?;
        let site_url = site_root(&url, site)?;
        let users_path = if is_business(&url) {
            "auth/scim/v2/users"
        } else {
            "api/scim/v2/users"
        };
        let users_url = join_path(&site_url, users_path);
        Ok(ScimEndpoint {
            users_url,
            site_url,
        })
    }

    /// For any RFC 7644 provider: users at `{base}/Users`. A base that already ends in
    /// `/Users` (any case) is taken as the users collection itself. `site` (when known) is only
    /// used for account links in reports; without it they point at the base URL's host.
    pub fn from_scim_base(base: &str, site: Option<&str>) -> Result<ScimEndpoint, EndpointError> {
        let mut users_url = parse_web_url(base)?;
        let ends_in_users = users_url
            .path_segments()
            .and_then(|mut segments| segments.next_back())
            .is_some_and(|last| last.eq_ignore_ascii_case("users"));
        if !ends_in_users {
            users_url = join_path(&users_url, "Users");
        }
        let site_url = match site.map(str::trim).filter(|s| !s.is_empty()) {
            Some(site) => ScimEndpoint::from_site_url(site)?.site_url,
            None => origin_of(&users_url),
        };
        Ok(ScimEndpoint {
            users_url,
            site_url,
        })
    }

    /// The users collection, e.g. `https://acme.stackenterprise.co/api/scim/v2/users`.
    pub fn users_url(&self) -> &str {
        self.users_url.as_str()
    }

    /// One user's resource, with the id percent-encoded as a single path segment so that an
    /// id holding `/`, `?` or `#` can never address another resource. Ids that cannot be one
    /// segment (empty, `.`, `..`: URL parsers fold these into the collection itself, and a
    /// DELETE there must never be sent) are refused.
    pub fn user_url(&self, account_id: &str) -> Result<String, EndpointError> {
        Ok(format!(
            "{}/{}",
            self.users_url.as_str().trim_end_matches('/'),
            encode_segment(account_id)?
        ))
    }

    /// The site's address, e.g. `https://stackoverflowteams.com/c/acme` (no trailing slash).
    pub fn site_url(&self) -> &str {
        self.site_url.as_str().trim_end_matches('/')
    }

    /// The account's page on the site, `{site}/accounts/{id}`, as in Stack's failure reports.
    /// An id that cannot be a path segment links to the accounts list rather than elsewhere.
    pub fn account_url(&self, account_id: &str) -> String {
        let id = encode_segment(account_id).unwrap_or_default();
        format!("{}/accounts/{}", self.site_url(), id)
    }
}

/// Bytes left as they are in an id segment: RFC 3986 "unreserved" characters.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn encode_segment(account_id: &str) -> Result<String, EndpointError> {
    if matches!(account_id, "" | "." | "..") {
        return Err(EndpointError::UnaddressableId(account_id.to_string()));
    }
    Ok(percent_encoding::utf8_percent_encode(account_id, SEGMENT).to_string())
}

/// Parses a pasted address into an http(s) URL without query, fragment or credentials.
/// Plain http is accepted only for this machine (127.0.0.1, ::1, localhost): local test
/// servers speak http, while anywhere else it would put the SCIM token on the wire in clear.
fn parse_web_url(input: &str) -> Result<Url, EndpointError> {
    let text = input.trim();
    if text.is_empty() {
        return Err(EndpointError::Empty);
    }
    let with_scheme = if text.contains("://") {
        text.to_string()
    } else {
        format!("https://{text}")
    };
    let mut url =
        Url::parse(&with_scheme).map_err(|_| EndpointError::Unreadable(text.to_string()))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => return Err(EndpointError::Unencrypted(text.to_string())),
        _ => return Err(EndpointError::NotWeb(text.to_string())),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(EndpointError::Unreadable(text.to_string()));
    }
    url.set_query(None);
    url.set_fragment(None);
    // Credentials in a pasted URL would end up in logs and reports; the token goes in a header.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let trimmed: Vec<String> = url
        .path_segments()
        .map(|segments| {
            segments
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    url.set_path("");
    Ok(push_segments_encoded(&url, &trimmed))
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn is_business(url: &Url) -> bool {
    url.host_str()
        .is_some_and(|host| host == BUSINESS_HOST || host.ends_with(&format!(".{BUSINESS_HOST}")))
}

/// Enterprise: the origin. Business: the origin plus `/c/<team>` (whatever follows is dropped).
fn site_root(url: &Url, input: &str) -> Result<Url, EndpointError> {
    let origin = origin_of(url);
    if !is_business(url) {
        return Ok(origin);
    }
    let segments: Vec<&str> = url.path_segments().map(|s| s.collect()).unwrap_or_default();
    match segments.as_slice() {
        [c, team, ..] if c.eq_ignore_ascii_case("c") && !team.is_empty() => {
            Ok(push_segments_encoded(&origin, &["c", team]))
        }
        _ => Err(EndpointError::NoTeam(input.trim().to_string())),
    }
}

fn origin_of(url: &Url) -> Url {
    let mut origin = url.clone();
    origin.set_path("");
    origin
}

/// Appends already-encoded path text such as `api/scim/v2/users`.
fn join_path(base: &Url, path: &str) -> Url {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    push_segments_encoded(base, &segments)
}

/// Appends segments that are already percent-encoded (taken from a parsed URL).
fn push_segments_encoded<S: AsRef<str>>(base: &Url, segments: &[S]) -> Url {
    let mut url = base.clone();
    let mut path = url.path().trim_end_matches('/').to_string();
    for s in segments {
        path.push('/');
        path.push_str(s.as_ref());
    }
    url.set_path(&path);
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(site: &str) -> String {
        ScimEndpoint::from_site_url(site)
            .unwrap_or_else(|e| panic!("{site:?}: {e}"))
            .users_url()
            .to_string()
    }

    #[test]
    fn enterprise_site_forms() {
        let want = "https://acme.stackenterprise.co/api/scim/v2/users";
        for input in [
            "https://acme.stackenterprise.co",
            "https://acme.stackenterprise.co/",
            "https://acme.stackenterprise.co///",
            "  acme.stackenterprise.co  ",
            "acme.stackenterprise.co/",
            "HTTPS://ACME.stackenterprise.CO",
            "https://acme.stackenterprise.co/api/scim/v2/users",
            "https://acme.stackenterprise.co/api/scim/v2/users/",
            "https://acme.stackenterprise.co/questions/123/some-title?tab=votes#answer",
            "https://acme.stackenterprise.co/admin/settings",
            "\thttps://acme.stackenterprise.co\n",
        ] {
            assert_eq!(users(input), want, "input {input:?}");
        }
        let ep = ScimEndpoint::from_site_url("acme.stackenterprise.co/questions").unwrap();
        assert_eq!(ep.site_url(), "https://acme.stackenterprise.co");
    }

    #[test]
    fn enterprise_keeps_a_port() {
        assert_eq!(
            users("https://so.example.com:8443/users"),
            "https://so.example.com:8443/api/scim/v2/users"
        );
    }

    #[test]
    fn business_site_forms() {
        let want = "https://stackoverflowteams.com/c/acme/auth/scim/v2/users";
        for input in [
            "https://stackoverflowteams.com/c/acme",
            "https://stackoverflowteams.com/c/acme/",
            "stackoverflowteams.com/c/acme",
            "https://stackoverflowteams.com/c/acme/questions/42",
            "https://stackoverflowteams.com/c/acme/auth/scim/v2/users",
            "  https://stackoverflowteams.com//c//acme//  ",
        ] {
            assert_eq!(users(input), want, "input {input:?}");
        }
        let ep =
            ScimEndpoint::from_site_url("https://stackoverflowteams.com/c/acme/users/1").unwrap();
        assert_eq!(ep.site_url(), "https://stackoverflowteams.com/c/acme");
        assert_eq!(
            ep.account_url("77"),
            "https://stackoverflowteams.com/c/acme/accounts/77"
        );
    }

    #[test]
    fn business_subdomain_is_business_too() {
        assert_eq!(
            users("https://www.stackoverflowteams.com/c/acme"),
            "https://www.stackoverflowteams.com/c/acme/auth/scim/v2/users"
        );
        // A look-alike host is not Business.
        assert_eq!(
            users("https://evilstackoverflowteams.com/c/acme"),
            "https://evilstackoverflowteams.com/api/scim/v2/users"
        );
    }

    #[test]
    fn business_without_team_is_refused() {
        for input in [
            "https://stackoverflowteams.com",
            "https://stackoverflowteams.com/",
            "https://stackoverflowteams.com/teams/acme",
            "https://stackoverflowteams.com/c/",
        ] {
            assert!(
                matches!(
                    ScimEndpoint::from_site_url(input),
                    Err(EndpointError::NoTeam(_))
                ),
                "{input:?}"
            );
        }
    }

    #[test]
    fn refuses_empty_foreign_schemes_and_plain_http() {
        assert_eq!(
            ScimEndpoint::from_site_url("   "),
            Err(EndpointError::Empty)
        );
        // What each refusal is called, for the table below.
        let refusal = |input: &str| match ScimEndpoint::from_site_url(input) {
            Err(EndpointError::NotWeb(_)) => "not a web address",
            Err(EndpointError::Unencrypted(_)) => "plain http",
            Err(EndpointError::Unreadable(_)) => "unreadable",
            _ => "something else",
        };
        for (input, expected) in [
            ("ftp://acme.example", "not a web address"),
            ("javascript://alert(1)", "not a web address"),
            ("http://acme.stackenterprise.co", "plain http"),
            ("https://", "unreadable"),
            ("https://exa mple.com", "unreadable"),
        ] {
            assert_eq!(refusal(input), expected, "{input:?}");
        }
    }

    #[test]
    fn plain_http_is_allowed_on_this_machine_only() {
        assert_eq!(
            users("http://127.0.0.1:8080"),
            "http://127.0.0.1:8080/api/scim/v2/users"
        );
        assert_eq!(
            users("http://localhost:3000/"),
            "http://localhost:3000/api/scim/v2/users"
        );
        assert_eq!(users("http://[::1]:9/"), "http://[::1]:9/api/scim/v2/users");
        assert!(ScimEndpoint::from_scim_base("http://10.0.0.5/scim/v2", None).is_err());
    }

    #[test]
    fn credentials_in_a_pasted_url_are_dropped() {
        let ep = ScimEndpoint::from_site_url("https://admin:secret@acme.example.com/x").unwrap();
        assert_eq!(ep.users_url(), "https://acme.example.com/api/scim/v2/users");
        assert!(!ep.account_url("1").contains("secret"));
    }

    #[test]
    fn scim_base_forms() {
        let want = "http://127.0.0.1:8080/v2/Users";
        for base in [
            "http://127.0.0.1:8080/v2",
            "http://127.0.0.1:8080/v2/",
            " http://127.0.0.1:8080/v2// ",
            "http://127.0.0.1:8080/v2/Users",
            "http://127.0.0.1:8080/v2/Users/?filter=x",
        ] {
            let ep = ScimEndpoint::from_scim_base(base, None).unwrap();
            assert_eq!(ep.users_url(), want, "base {base:?}");
            assert_eq!(ep.site_url(), "http://127.0.0.1:8080");
        }
        let ep = ScimEndpoint::from_scim_base(
            "https://acme.stackenterprise.co/api/scim/v2/users",
            Some("acme.stackenterprise.co"),
        )
        .unwrap();
        assert_eq!(
            ep.users_url(),
            "https://acme.stackenterprise.co/api/scim/v2/users"
        );
        assert_eq!(ep.site_url(), "https://acme.stackenterprise.co");
        let ep = ScimEndpoint::from_scim_base(
            "idp.example.com/scim/v2",
            Some("stackoverflowteams.com/c/acme"),
        )
        .unwrap();
        assert_eq!(ep.users_url(), "https://idp.example.com/scim/v2/Users");
        assert_eq!(ep.site_url(), "https://stackoverflowteams.com/c/acme");
        // A blank site is the same as none.
        let ep = ScimEndpoint::from_scim_base("https://idp.example.com/scim", Some("  ")).unwrap();
        assert_eq!(ep.site_url(), "https://idp.example.com");
        assert_eq!(
            ScimEndpoint::from_scim_base("", None),
            Err(EndpointError::Empty)
        );
    }

    #[test]
    fn user_and_account_urls_encode_the_id() {
        let ep = ScimEndpoint::from_site_url("acme.stackenterprise.co").unwrap();
        let users = "https://acme.stackenterprise.co/api/scim/v2/users";
        assert_eq!(ep.user_url("123").unwrap(), format!("{users}/123"));
        assert_eq!(
            ep.user_url("a/b?c#d").unwrap(),
            format!("{users}/a%2Fb%3Fc%23d")
        );
        assert_eq!(ep.user_url("é x").unwrap(), format!("{users}/%C3%A9%20x"));
        assert_eq!(
            ep.user_url("1.5~x_y-z").unwrap(),
            format!("{users}/1.5~x_y-z")
        );
        assert_eq!(
            ep.user_url("%2e%2e").unwrap(),
            format!("{users}/%252e%252e")
        );
        assert_eq!(
            ep.account_url("42"),
            "https://acme.stackenterprise.co/accounts/42"
        );
        assert_eq!(
            ep.account_url("a/b"),
            "https://acme.stackenterprise.co/accounts/a%2Fb"
        );
    }

    #[test]
    fn ids_that_would_address_the_collection_are_refused() {
        let ep = ScimEndpoint::from_scim_base("http://127.0.0.1:1/v2", None).unwrap();
        for id in ["", ".", ".."] {
            assert_eq!(
                ep.user_url(id),
                Err(EndpointError::UnaddressableId(id.to_string())),
                "{id:?}"
            );
        }
        assert_eq!(ep.account_url(".."), "http://127.0.0.1:1/accounts/");
    }

    #[test]
    fn user_urls_survive_reparsing_unchanged() {
        // reqwest parses the string again; the id must still be one segment under the collection.
        let ep = ScimEndpoint::from_scim_base("http://127.0.0.1:1/v2", None).unwrap();
        for id in ["a/../b", "..%2F", "?x", "#", " ", "\\..\\", "ü", "a\u{0}b"] {
            let text = ep.user_url(id).unwrap();
            let parsed = Url::parse(&text).unwrap();
            let segments: Vec<&str> = parsed.path_segments().unwrap().collect();
            assert_eq!(segments.len(), 3, "{id:?} -> {text}");
            assert_eq!(segments[..2], ["v2", "Users"], "{id:?} -> {text}");
            assert_eq!(parsed.query(), None);
            assert_eq!(parsed.fragment(), None);
        }
    }
}
