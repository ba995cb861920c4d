//! Which site addresses the hosted console may send requests to (its guard against server-side
//! request forgery): https only, plain http only to this machine and only when the operator
//! allows it, and never to an address inside a private network, this machine, a link-local
//! range or a cloud metadata service unless the operator allow-lists the host. The address is
//! checked after name resolution, inside the HTTP client's own resolver, so the address checked
//! is the address connected to. The command line's `delete` has no guard: the admin names the
//! site on their own machine (docs/architecture.md, "Decisions").

use model::hidden::Hidden;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use url::Url;

/// Turns a host name into addresses. The console uses [`SystemLookup`]; tests use a stub that
/// maps names to internal addresses without any traffic going there.
pub trait NameLookup: Send + Sync {
    fn lookup(
        &self,
        host: String,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>>;
}

/// The operating system's resolver.
pub struct SystemLookup;

impl NameLookup for SystemLookup {
    fn lookup(
        &self,
        host: String,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>> {
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            Ok(found.map(|a| a.ip()).collect())
        })
    }
}

/// The rules, set by the operator's flags (`--allow-http-loopback-sites`, `--allow-site-host`).
#[derive(Clone)]
pub struct SiteGuard {
    /// Plain http to this machine, and loopback addresses at all (tests, benchmarks).
    pub allow_loopback: bool,
    /// Host names (lower case) that may resolve to any address.
    pub allowed_hosts: Vec<String>,
    pub lookup: Arc<dyn NameLookup>,
    /// The proxy requests to sites go through (`--sites-proxy`). `None`: straight to the site,
    /// whatever HTTPS_PROXY and its kin say (a proxy resolves names where the resolver guard
    /// cannot see the addresses).
    pub proxy: Option<Hidden<Url>>,
}

/// A site address the guard refuses, in plain words. It never says which kind of internal
/// address nor whether anything listens there.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SiteRefused {
    #[error(
        "Offboard does not send the SCIM token over plain http (\"{0}\"). Use the site's https \
         address."
    )]
    PlainHttp(String),
    #[error(
        "Offboard does not connect to \"{0}\": it points inside a private network or at this \
         server, which a hosted console must not reach. If the site really is inside your \
         network, the console's operator can allow it with --allow-site-host {0}."
    )]
    Internal(String),
    #[error(
        "Offboard could not find the address of \"{0}\" to check it before asking the proxy \
         to connect. Check the site address."
    )]
    Unresolved(String),
}

impl std::fmt::Debug for SiteGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SiteGuard")
            .field("allow_loopback", &self.allow_loopback)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("proxy", &self.proxy.is_some())
            .finish_non_exhaustive()
    }
}

impl PartialEq for SiteGuard {
    fn eq(&self, other: &Self) -> bool {
        self.allow_loopback == other.allow_loopback
            && self.allowed_hosts == other.allowed_hosts
            && Arc::ptr_eq(&self.lookup, &other.lookup)
            && self.proxy == other.proxy
    }
}

impl Eq for SiteGuard {}

impl SiteGuard {
    /// The guard with the system resolver.
    pub fn new(allow_loopback: bool, allowed_hosts: &[String]) -> SiteGuard {
        SiteGuard {
            allow_loopback,
            allowed_hosts: allowed_hosts
                .iter()
                .map(|h| h.trim().trim_end_matches('.').to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect(),
            lookup: Arc::new(SystemLookup),
            proxy: None,
        }
    }

    /// The same rules, with requests sent through `proxy` (`--sites-proxy`) when given.
    pub fn through_proxy(self, proxy: Option<Hidden<Url>>) -> SiteGuard {
        SiteGuard { proxy, ..self }
    }

    /// The same rules, resolving names with `lookup` (tests).
    pub fn with_lookup(self, lookup: Arc<dyn NameLookup>) -> SiteGuard {
        SiteGuard { lookup, ..self }
    }

    fn allow_listed(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.allowed_hosts.contains(&host)
    }

    /// Checks an address before any request: the scheme, and the host when it is an IP
    /// address (the client resolves no name for those, so [`GuardedResolver`] never sees them).
    pub fn check_url(&self, url: &Url) -> Result<(), SiteRefused> {
        let host = url.host_str().unwrap_or_default().to_string();
        if url.scheme() != "https" && !self.allow_loopback {
            return Err(SiteRefused::PlainHttp(url.as_str().to_string()));
        }
        let ip = match url.host() {
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
            _ => return Ok(()),
        };
        self.check_address(&host, ip)
    }

    /// Whether `host`, resolved to `ip`, may be connected to.
    pub fn check_address(&self, host: &str, ip: IpAddr) -> Result<(), SiteRefused> {
        if self.allow_listed(host) || (self.allow_loopback && is_loopback(ip)) {
            return Ok(());
        }
        if is_internal(ip) {
            return Err(SiteRefused::Internal(host.to_string()));
        }
        Ok(())
    }

    /// Before a request through the proxy, which resolves the name itself: a name that is
    /// internal by its look (`localhost`, `metadata.google.internal`, one label) is refused,
    /// and so is one that resolves here to any refused address, or not at all. What the proxy
    /// resolves later may still differ (DNS can change in between): the proxy's own rules
    /// should keep it off internal addresses too (docs/deployment.md).
    pub async fn check_host_before_proxy(&self, host: &str) -> Result<(), SiteRefused> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return self.check_address(host, ip);
        }
        if self.allow_listed(host) {
            return Ok(());
        }
        if internal_by_name(host) {
            return Err(SiteRefused::Internal(host.to_string()));
        }
        let addresses = self
            .lookup
            .lookup(host.to_string())
            .await
            .map_err(|_| SiteRefused::Unresolved(host.to_string()))?;
        if addresses.is_empty() {
            return Err(SiteRefused::Unresolved(host.to_string()));
        }
        for ip in addresses {
            self.check_address(host, ip)?;
        }
        Ok(())
    }

    /// The resolver to give the HTTP client.
    pub fn resolver(&self) -> Arc<GuardedResolver> {
        Arc::new(GuardedResolver {
            guard: self.clone(),
        })
    }
}

/// Resolves with the guard's lookup and refuses the name when any of its addresses is
/// refused (a name that mixes public and internal addresses is not trusted with either).
pub struct GuardedResolver {
    guard: SiteGuard,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.guard.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addresses = guard.lookup.lookup(host.clone()).await?;
            for ip in &addresses {
                guard.check_address(&host, *ip)?;
            }
            let addrs: Addrs = Box::new(
                addresses
                    .into_iter()
                    .map(|ip| SocketAddr::new(ip, 0))
                    .collect::<Vec<_>>()
                    .into_iter(),
            );
            Ok(addrs)
        })
    }
}

/// The refusal inside a failed request's error chain, if that is why it failed.
pub fn refusal_in(error: &(dyn std::error::Error + 'static)) -> Option<SiteRefused> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(refused) = e.downcast_ref::<SiteRefused>() {
            return Some(refused.clone());
        }
        current = e.source();
    }
    None
}

/// Names that can only mean something inside a network, whatever they resolve to here: one
/// label (the proxy would complete it with its own search domains), and the special-use
/// names `localhost`, `.local`, `.internal` (metadata.google.internal), `.localdomain` and
/// `.home.arpa`.
fn internal_by_name(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    !host.contains('.')
        || ["localhost", "local", "internal", "localdomain", "home.arpa"]
            .iter()
            .any(|suffix| host == *suffix || host.ends_with(&format!(".{suffix}")))
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// True for every address a hosted console must not reach: private (RFC 1918; unique local
/// IPv6, where AWS's metadata service fd00:ec2::254 lives), loopback, link-local (the cloud
/// metadata service 169.254.169.254), multicast, unspecified, broadcast, carrier-grade NAT,
/// "this network", reserved and documentation ranges, and IPv6 forms embedding such an IPv4.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => is_internal_v6(v6),
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240
}

fn is_internal_v6(ip: Ipv6Addr) -> bool {
    if embedded_v4(ip).iter().any(|v4| is_internal_v4(*v4)) {
        return true;
    }
    let segments = ip.segments();
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (segments[0] & 0xfe00) == 0xfc00 // unique local, fd00:ec2::254 among them
        || (segments[0] & 0xffc0) == 0xfe80 // link-local
        || (segments[0] & 0xffc0) == 0xfec0 // old site-local
        || (segments[0] == 0x2001 && segments[1] == 0x0db8) // documentation
        // Local-use NAT64 in a layout other than /96: where its IPv4 address sits depends on
        // the local translator's prefix length, so it cannot be read; it is local by name.
        || (segments[0..3] == [0x64, 0xff9b, 1] && segments[3..6] != [0, 0, 0])
}

/// The IPv4 addresses an IPv6 address carries, in the forms a router or translator turns
/// into IPv4 traffic: IPv4-mapped (`::ffff:a.b.c.d`), IPv4-translated / SIIT
/// (`::ffff:0:a.b.c.d`), IPv4-compatible (`::a.b.c.d`), NAT64 (`64:ff9b::/96` and the
/// local-use `64:ff9b:1::/48` with its address in the last 32 bits), 6to4 (`2002:AABB:CCDD::`)
/// and Teredo (`2001:0::/32`: the server in bits 32-63, the client inverted in the last 32).
fn embedded_v4(ip: Ipv6Addr) -> Vec<Ipv4Addr> {
    let s = ip.segments();
    let v4 = |high: u16, low: u16| Ipv4Addr::from((u32::from(high) << 16) | u32::from(low));
    let last = v4(s[6], s[7]);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] | [0, 0, 0, 0, 0xffff, 0, _, _] => vec![last],
        // `::` and `::1` are themselves, not 0.0.0.0 and 0.0.0.1.
        [0, 0, 0, 0, 0, 0, 0, 0 | 1] => Vec::new(),
        [0, 0, 0, 0, 0, 0, _, _] => vec![last],
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => vec![last],
        [0x64, 0xff9b, 1, 0, 0, 0, _, _] => vec![last],
        [0x2002, high, low, ..] => vec![v4(high, low)],
        [0x2001, 0, high, low, ..] => vec![v4(high, low), v4(!s[6], !s[7])],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn internal_addresses_are_recognised() {
        for internal in [
            "10.0.0.1",
            "10.255.255.255",
            "172.16.0.1",
            "172.31.255.254",
            "192.168.1.1",
            "127.0.0.1",
            "127.8.9.10",
            "169.254.169.254",
            "169.254.0.1",
            "224.0.0.1",
            "239.255.255.250",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "100.64.0.1",
            "192.0.0.170",
            "198.18.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fd00:ec2::254",
            "fc00::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "::10.0.0.1",
            "2001:db8::1",
            // 6to4 around an internal IPv4 address.
            "2002:a9fe:a9fe::",
            "2002:a00:1::1",
            "2002:7f00:1:ffff::",
            // IPv4-translated (SIIT).
            "::ffff:0:a9fe:a9fe",
            "::ffff:0:a00:1",
            "::ffff:0:7f00:1",
            // Local-use NAT64, /96 layout, and any other layout.
            "64:ff9b:1::a9fe:a9fe",
            "64:ff9b:1::a00:1",
            "64:ff9b:1:a9fe:a9:fe00::",
            "64:ff9b::7f00:1",
            "::2",
            // Teredo: an internal server (bits 32-63) or client (last 32 bits, inverted).
            "2001:0:a9fe:a9fe::",
            "2001:0:808:808:0:0:5601:5601", // client 169.254.169.254 inverted
            "2001:0:808:808:0:0:80ff:fffe", // client 127.0.0.1 inverted
            "2001::",
        ] {
            assert!(is_internal(ip(internal)), "{internal}");
        }
        for public in [
            "151.101.1.69",
            "8.8.8.8",
            "172.32.0.1",
            "172.15.255.255",
            "100.128.0.1",
            "169.255.0.1",
            "2606:4700::6810:84e5",
            "::ffff:151.101.1.69",
            "64:ff9b::808:808",
            // Neighbours of the embedding forms that carry a public address, or none.
            "2002:808:808::",
            "2002:9765:145::1",
            "::ffff:0:808:808",
            "64:ff9b:1::808:808",
            "2001:0:808:808:0:0:f7f7:f7f7", // client 8.8.8.8 inverted
            "2001:1::1",
            "2001:4860:4860::8888",
            "2003::1",
            "2001:db9::1",
            "64:ff9a::a9fe:a9fe",
            "::1:0:a9fe:a9fe",
        ] {
            assert!(!is_internal(ip(public)), "{public}");
        }
    }

    #[test]
    fn loopback_is_allowed_only_with_the_flag_and_allow_listed_hosts_always() {
        let strict = SiteGuard::new(false, &[]);
        let local = SiteGuard::new(true, &[]);
        let listed = SiteGuard::new(false, &[" Scim.Internal.Example. ".to_string()]);
        // (which guard, the site's name, the address it resolved to, allowed?)
        let cases = [
            (&strict, "localhost", "127.0.0.1", false),
            (&local, "localhost", "127.0.0.1", true),
            (&local, "localhost", "::1", true),
            // The loopback flag does not open private networks.
            (&local, "intranet", "10.0.0.1", false),
            (&local, "meta", "169.254.169.254", false),
            (&listed, "scim.internal.example", "10.0.0.1", true),
            (&listed, "SCIM.internal.example", "10.0.0.1", true),
            (&listed, "other.example", "10.0.0.1", false),
            (&strict, "acme.example", "151.101.1.69", true),
        ];
        for (guard, host, address, allowed) in cases {
            let answer = guard.check_address(host, ip(address));
            assert_eq!(answer.is_ok(), allowed, "{host} at {address}");
        }
    }

    #[test]
    fn plain_http_and_internal_ip_literals_are_refused_before_any_request() {
        let strict = SiteGuard::new(false, &[]);
        let url = |t: &str| Url::parse(t).unwrap();
        assert!(matches!(
            strict.check_url(&url("http://127.0.0.1:8080/v2/Users")),
            Err(SiteRefused::PlainHttp(_))
        ));
        assert_eq!(
            strict.check_url(&url("https://169.254.169.254/latest")),
            Err(SiteRefused::Internal("169.254.169.254".into()))
        );
        assert!(strict.check_url(&url("https://[fd00:ec2::254]/")).is_err());
        assert!(strict.check_url(&url("https://10.0.0.1/")).is_err());
        assert!(strict
            .check_url(&url("https://acme.stackenterprise.co/"))
            .is_ok());
        let local = SiteGuard::new(true, &[]);
        assert!(local
            .check_url(&url("http://127.0.0.1:8080/v2/Users"))
            .is_ok());
        assert!(local.check_url(&url("https://10.0.0.1/")).is_err());
    }

    #[test]
    fn internal_names_are_known_by_their_look() {
        for internal in [
            "localhost",
            "LOCALHOST.",
            "api.localhost",
            "metadata.google.internal",
            "metadata",
            "intranet",
            "printer.local",
            "router.home.arpa",
            "box.localdomain",
            "internal",
        ] {
            assert!(internal_by_name(internal), "{internal}");
        }
        for public in [
            "acme.stackenterprise.co",
            "localhost.example.com",
            "internal.example.com",
            "local.example.org",
            "metadata.google.com",
        ] {
            assert!(!internal_by_name(public), "{public}");
        }
    }

    struct Fixed(Vec<IpAddr>);

    impl NameLookup for Fixed {
        fn lookup(
            &self,
            _host: String,
        ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>> {
            let found = self.0.clone();
            Box::pin(async move { Ok(found) })
        }
    }

    #[tokio::test]
    async fn names_are_checked_here_before_a_proxy_is_asked() {
        let with = |answers: &[&str], allowed: &[&str]| {
            let allowed: Vec<String> = allowed.iter().map(|h| h.to_string()).collect();
            SiteGuard::new(false, &allowed)
                .with_lookup(Arc::new(Fixed(answers.iter().map(|a| ip(a)).collect())))
        };
        let public = with(&["151.101.1.69"], &[]);
        assert!(public
            .check_host_before_proxy("acme.stackenterprise.co")
            .await
            .is_ok());
        // Internal by name, whatever it resolves to here.
        for name in ["localhost", "metadata.google.internal", "intranet"] {
            assert_eq!(
                public.check_host_before_proxy(name).await,
                Err(SiteRefused::Internal(name.into()))
            );
        }
        // Resolving here to any internal address, or to none.
        let mixed = with(&["151.101.1.69", "2002:a9fe:a9fe::"], &[]);
        assert!(mixed.check_host_before_proxy("acme.example").await.is_err());
        let nothing = with(&[], &[]);
        assert_eq!(
            nothing.check_host_before_proxy("acme.example").await,
            Err(SiteRefused::Unresolved("acme.example".into()))
        );
        // Address literals are checked as addresses.
        assert!(public.check_host_before_proxy("10.0.0.1").await.is_err());
        assert!(public.check_host_before_proxy("[fd00::1]").await.is_err());
        // An allow-listed host passes, even with an internal look.
        let listed = with(&["10.0.0.1"], &["scim.internal"]);
        assert!(listed
            .check_host_before_proxy("scim.internal")
            .await
            .is_ok());
    }

    #[test]
    fn the_refusal_names_the_host_but_no_address_nor_kind() {
        let message = SiteRefused::Internal("intranet.example".into()).to_string();
        assert!(message.contains("intranet.example"), "{message}");
        assert!(message.contains("--allow-site-host"), "{message}");
        for detail in ["10.", "169.254", "refused", "timed out", "port"] {
            assert!(!message.contains(detail), "{detail}: {message}");
        }
    }
}
