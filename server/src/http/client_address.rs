//! The client's address: the connection's peer, or, when the peer is a reverse proxy named by
//! `--trusted-proxy`, the address that proxy forwarded (`X-Forwarded-For`, else `Forwarded`).
//! Sign-in throttling counts per this address, so a header from anyone else is never believed.

pub use crate::config::network::{canonical, Cidr};
use axum::http::{header::FORWARDED, HeaderMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// The address a request is counted against, put in every request's extensions when it
/// arrives (`http::front_door`). Handlers read it instead of the socket's peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

/// The reverse proxies whose forwarding headers are believed.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    pub fn new(networks: Vec<Cidr>) -> TrustedProxies {
        TrustedProxies(networks)
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(ip))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The client's address for a request from `peer` with these headers. Only when `peer`
    /// is trusted are the headers read at all. `X-Forwarded-For` is walked from the right
    /// (each proxy appends the address it saw), skipping trusted hops: the first untrusted
    /// address is the client. Without that header, RFC 7239 `Forwarded: for=` is walked the
    /// same way. Anything malformed, obfuscated (`for=unknown`, `for=_hidden`) or empty means
    /// the peer's own address: a request the proxy did not describe is counted against it.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let hops = match joined(headers, "x-forwarded-for") {
            Some(list) => x_forwarded_for(&list),
            None => match joined(headers, FORWARDED.as_str()) {
                Some(list) => match forwarded_for(&list) {
                    Some(hops) => hops,
                    None => return peer,
                },
                None => return peer,
            },
        };
        // Entries left of the client are whatever the client sent: never looked at, so a
        // forged or malformed one there changes nothing.
        let mut client = peer;
        for hop in hops.into_iter().rev() {
            let Some(hop) = hop else {
                return peer;
            };
            client = canonical(hop);
            if !self.trusts(client) {
                return client;
            }
        }
        // Every hop trusted: the leftmost is where the request began.
        client
    }
}

/// Every line of header `name`, joined as one comma-separated list (RFC 9110 list rules);
/// `None` when the header is absent, or not text.
fn joined(headers: &HeaderMap, name: &str) -> Option<String> {
    let mut lines = headers.get_all(name).iter().peekable();
    lines.peek()?;
    let mut list = Vec::new();
    for line in lines {
        list.push(line.to_str().ok()?);
    }
    Some(list.join(","))
}

/// `X-Forwarded-For`'s entries, left to right, each `None` if it is not an address.
fn x_forwarded_for(list: &str) -> Vec<Option<IpAddr>> {
    list.split(',')
        .map(|entry| node_address(entry.trim()))
        .collect()
}

/// `Forwarded`'s `for=` addresses, one per element, left to right: `None` for an element
/// with no `for=`, two of them, or one that is not an address; no list at all if a quote is
/// left open.
fn forwarded_for(list: &str) -> Option<Vec<Option<IpAddr>>> {
    let elements = split_outside_quotes(list, ',')?;
    Some(elements.into_iter().map(forwarded_element).collect())
}

fn forwarded_element(element: &str) -> Option<IpAddr> {
    let mut found = None;
    for pair in split_outside_quotes(element, ';')? {
        let (name, value) = pair.split_once('=')?;
        if name.trim().eq_ignore_ascii_case("for") {
            if found.is_some() {
                return None;
            }
            found = Some(node_address(&unquote(value.trim())?)?);
        }
    }
    found
}

/// `text` split at `separator` where it is not inside a quoted string; `None` if a quote is
/// left open.
fn split_outside_quotes(text: &str, separator: char) -> Option<Vec<&str>> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == separator && !quoted => {
                parts.push(&text[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    if quoted {
        return None;
    }
    parts.push(&text[start..]);
    Some(parts)
}

/// A token, or a quoted string without its quotes and escapes.
fn unquote(value: &str) -> Option<String> {
    let Some(inner) = value.strip_prefix('"') else {
        return (!value.contains('"') && !value.contains('\\')).then(|| value.to_string());
    };
    let inner = inner.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '"' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// One forwarded node: `192.0.2.7`, `192.0.2.7:4711`, `2001:db8::1`, `[2001:db8::1]`,
/// `[2001:db8::1]:4711`. Names, `unknown` and `_obfuscated` identifiers are not addresses.
fn node_address(node: &str) -> Option<IpAddr> {
    if let Some(rest) = node.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || is_port(after.strip_prefix(':')?)) {
            return None;
        }
        return Ipv6Addr::from_str(inside).ok().map(IpAddr::V6);
    }
    if let Ok(ip) = IpAddr::from_str(node) {
        return Some(ip);
    }
    // An IPv4 address with a port (a bare IPv6 address has more than one colon).
    let (host, port) = node.split_once(':')?;
    if !is_port(port) {
        return None;
    }
    Ipv4Addr::from_str(host).ok().map(IpAddr::V4)
}

fn is_port(text: &str) -> bool {
    // RFC 7239 allows an obfuscated port (`_abc`) too: it says nothing about the address.
    (!text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit()))
        || (text.len() > 1
            && text.starts_with('_')
            && text[1..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::test_headers as headers;
    use axum::http::HeaderValue;

    fn ip(text: &str) -> IpAddr {
        IpAddr::from_str(text).unwrap()
    }

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::new(list.iter().map(|c| c.parse().unwrap()).collect())
    }

    /// The client seen behind `peer` sending `pairs`, trusting the proxies `trusted`.
    fn client(trusted: &[&str], peer: &str, pairs: &[(&'static str, &str)]) -> IpAddr {
        proxies(trusted).client_ip(ip(peer), &headers(pairs))
    }

    /// Each (value, client) case of the header `name`, sent by the peer 10.0.0.2.
    fn check_header(trusted: &[&str], name: &'static str, cases: &[(&str, &str)]) {
        for (value, expected) in cases {
            let seen = client(trusted, "10.0.0.2", &[(name, value)]);
            assert_eq!(seen, ip(expected), "{value:?}");
        }
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_says() {
        let pairs = [
            ("x-forwarded-for", "198.51.100.1"),
            ("forwarded", "for=198.51.100.2"),
        ];
        let seen = client(&["10.0.0.0/8"], "203.0.113.5", &pairs);
        assert_eq!(seen, ip("203.0.113.5"));
        let h = headers(&pairs);
        // No proxy trusted at all (the default).
        assert_eq!(
            TrustedProxies::default().client_ip(ip("127.0.0.1"), &h),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn x_forwarded_for_is_walked_from_the_right_past_trusted_hops() {
        let cases = [
            ("198.51.100.7", "198.51.100.7"),
            // A client's own forged entries are on the left of what the proxy appended.
            ("1.2.3.4, 198.51.100.7", "198.51.100.7"),
            ("1.2.3.4,198.51.100.7, 10.0.0.9", "198.51.100.7"),
            ("1.2.3.4, 198.51.100.7, 10.0.0.9, 127.0.0.1", "198.51.100.7"),
            // Every hop trusted: the leftmost began it.
            ("10.1.1.1, 10.0.0.9", "10.1.1.1"),
            ("198.51.100.7:4711", "198.51.100.7"),
            // What the client wrote left of the proxy's entry is never looked at.
            ("junk, 198.51.100.7", "198.51.100.7"),
            ("[::1, 198.51.100.7", "198.51.100.7"),
            ("[2001:db8::7]:4711", "2001:db8::7"),
            ("2001:db8::7", "2001:db8::7"),
            ("::ffff:198.51.100.7", "198.51.100.7"),
            // Malformed or unknown rightmost entries: the peer.
            ("", "10.0.0.2"),
            (" , ", "10.0.0.2"),
            ("198.51.100.7,", "10.0.0.2"),
            ("unknown", "10.0.0.2"),
            ("198.51.100.7, evil.example", "10.0.0.2"),
            ("198.51.100.7 10.0.0.9", "10.0.0.2"),
            ("1.2.3.4, 198.51.100.7:999999", "10.0.0.2"),
            ("junk, 10.0.0.9", "10.0.0.2"),
            ("[2001:db8::7", "10.0.0.2"),
            ("[198.51.100.7]", "10.0.0.2"),
            ("2001:db8::7:4711:1:2:3:4:5", "10.0.0.2"),
            ("198.51.100.7%eth0", "10.0.0.2"),
            ("0x7f.1", "10.0.0.2"),
            ("01.2.3.4", "10.0.0.2"),
        ];
        check_header(&["10.0.0.0/8", "127.0.0.1"], "x-forwarded-for", &cases);
    }

    #[test]
    fn several_x_forwarded_for_lines_are_one_list() {
        let xff = "x-forwarded-for";
        let lines = [(xff, "1.2.3.4"), (xff, "198.51.100.7, 10.0.0.3")];
        assert_eq!(
            client(&["10.0.0.0/8"], "10.0.0.2", &lines),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn a_header_that_is_not_text_means_the_peer() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let mut h = HeaderMap::new();
        h.append(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"198.51.100.7\xff").unwrap(),
        );
        assert_eq!(trusted.client_ip(ip("10.0.0.2"), &h), ip("10.0.0.2"));
    }

    #[test]
    fn forwarded_is_read_when_x_forwarded_for_is_absent() {
        let cases = [
            ("for=198.51.100.7", "198.51.100.7"),
            ("For=198.51.100.7;proto=https;by=10.0.0.2", "198.51.100.7"),
            ("proto=https; for=198.51.100.7", "198.51.100.7"),
            ("for=\"198.51.100.7:4711\"", "198.51.100.7"),
            ("for=\"[2001:db8:cafe::17]\"", "2001:db8:cafe::17"),
            ("for=\"[2001:db8:cafe::17]:4711\"", "2001:db8:cafe::17"),
            ("for=\"[2001:db8:cafe::17]:_port1\"", "2001:db8:cafe::17"),
            ("for=1.2.3.4, for=198.51.100.7", "198.51.100.7"),
            (
                "for=1.2.3.4,for=198.51.100.7;by=x, for=10.0.0.9",
                "198.51.100.7",
            ),
            (
                "for=198.51.100.7, for=\"[2001:db8:ffff::1]\"",
                "198.51.100.7",
            ),
            // A quoted comma or semicolon does not split.
            (
                "for=1.2.3.4;ext=\"a,b;c\", for=198.51.100.7",
                "198.51.100.7",
            ),
            ("for=\"198.51.\\100.7\"", "198.51.100.7"),
            // Malformed, hidden or unknown: the peer.
            ("for=unknown", "10.0.0.2"),
            ("for=_hidden", "10.0.0.2"),
            ("for=\"_hidden\"", "10.0.0.2"),
            // Unquoted brackets, or none: not the RFC's syntax, but still unambiguous.
            ("for=[2001:db8:cafe::17]", "2001:db8:cafe::17"),
            ("for=\"2001:db8:cafe::17\"", "2001:db8:cafe::17"),
            // What the client wrote left of the proxy's element is never looked at.
            ("for=junk, for=198.51.100.7", "198.51.100.7"),
            ("for=1.2.3.4;for=5.6.7.8, for=198.51.100.7", "198.51.100.7"),
            ("for=\"198.51.100.7", "10.0.0.2"),
            ("for=198.51.100.7\"", "10.0.0.2"),
            ("for=198.51.100.7, proto=https", "10.0.0.2"),
            ("for=1.2.3.4;for=198.51.100.7", "10.0.0.2"),
            ("for", "10.0.0.2"),
            ("", "10.0.0.2"),
            ("for=", "10.0.0.2"),
            ("for=\"\"", "10.0.0.2"),
            ("for=\"[2001:db8::1]:\"", "10.0.0.2"),
            ("for=\"[2001:db8::1]x\"", "10.0.0.2"),
            ("for=\"[198.51.100.7]\"", "10.0.0.2"),
            ("for=\"\\\"", "10.0.0.2"),
        ];
        check_header(&["10.0.0.0/8", "2001:db8:ffff::/48"], "forwarded", &cases);
    }

    #[test]
    fn x_forwarded_for_wins_over_forwarded() {
        // Nearly every proxy appends to X-Forwarded-For; a Forwarded header beside it may be
        // the client's own forgery passed along untouched.
        let trusted = ["10.0.0.0/8"];
        let both = [
            ("forwarded", "for=1.2.3.4"),
            ("x-forwarded-for", "198.51.100.7"),
        ];
        assert_eq!(client(&trusted, "10.0.0.2", &both), ip("198.51.100.7"));
        // A malformed X-Forwarded-For does not fall through to Forwarded.
        let junk = [("forwarded", "for=1.2.3.4"), ("x-forwarded-for", "junk")];
        assert_eq!(client(&trusted, "10.0.0.2", &junk), ip("10.0.0.2"));
    }

    #[test]
    fn a_mapped_peer_is_trusted_as_its_ipv4_address() {
        let trusted = proxies(&["127.0.0.1/32"]);
        let h = headers(&[("x-forwarded-for", "198.51.100.7")]);
        assert_eq!(
            trusted.client_ip(ip("::ffff:127.0.0.1"), &h),
            ip("198.51.100.7")
        );
        assert_eq!(
            proxies(&["10.0.0.1"]).client_ip(ip("::ffff:127.0.0.1"), &h),
            ip("127.0.0.1"),
            "an untrusted mapped peer is reported as IPv4"
        );
    }

    #[test]
    fn a_very_long_chain_is_walked_only_as_far_as_needed() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let long = format!("{}198.51.100.7", "1.2.3.4, ".repeat(10_000));
        let h = headers(&[("x-forwarded-for", &long)]);
        assert_eq!(trusted.client_ip(ip("10.0.0.2"), &h), ip("198.51.100.7"));
    }
}
