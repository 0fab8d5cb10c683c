//! The address guard: what counts as a public address (IANA's special-use
//! ranges, IPv4 embedded in IPv6), a resolver that refuses names resolving
//! to anything else, and the check every URL passes before it is fetched.
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::{Ipv4Net, Ipv6Net};
use url::{Host, Origin, Url};

use super::FetchError;

/// IPv4 ranges of the IANA IPv4 Special-Purpose Address Registry, plus
/// multicast and the limited broadcast: none is reached by a source.
/// (192.0.0.9 and .10, documented as global anycast, are refused with their
/// /24: no profile site lives there.)
pub(crate) const SPECIAL_V4: &[Ipv4Net] = &[
    v4(0, 0, 0, 0, 8),       // "this network"
    v4(10, 0, 0, 0, 8),      // private
    v4(100, 64, 0, 0, 10),   // shared address space (CGNAT)
    v4(127, 0, 0, 0, 8),     // loopback
    v4(169, 254, 0, 0, 16),  // link-local (cloud metadata)
    v4(172, 16, 0, 0, 12),   // private
    v4(192, 0, 0, 0, 24),    // IETF protocol assignments
    v4(192, 0, 2, 0, 24),    // documentation (TEST-NET-1)
    v4(192, 31, 196, 0, 24), // AS112-v4
    v4(192, 52, 193, 0, 24), // AMT
    v4(192, 88, 99, 0, 24),  // deprecated 6to4 relay anycast
    v4(192, 168, 0, 0, 16),  // private
    v4(192, 175, 48, 0, 24), // direct delegation AS112
    v4(198, 18, 0, 0, 15),   // benchmarking
    v4(198, 51, 100, 0, 24), // documentation (TEST-NET-2)
    v4(203, 0, 113, 0, 24),  // documentation (TEST-NET-3)
    v4(224, 0, 0, 0, 4),     // multicast
    v4(240, 0, 0, 0, 4),     // reserved, and 255.255.255.255
];

/// IPv6: only global unicast (2000::/3) is public, less these special
/// ranges inside it. Forms that embed an IPv4 address (v4-mapped, NAT64,
/// 6to4) are judged by that address; every other form outside 2000::/3
/// (IPv4-compatible `::a.b.c.d`, loopback, unique-local, link-local,
/// site-local, multicast, discard, local NAT64, SRv6) is refused.
pub(crate) const GLOBAL_UNICAST_V6: Ipv6Net = v6([0x2000, 0, 0, 0, 0, 0, 0, 0], 3);

pub(crate) const SPECIAL_V6: &[Ipv6Net] = &[
    v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23), // IETF protocol assignments, incl. Teredo 2001::/32
    v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32), // documentation
    v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20), // documentation
];

/// The IPv4 address an IPv6 address carries and is routed to: v4-mapped
/// (`::ffff:a.b.c.d`), NAT64 (`64:ff9b::/96`) or 6to4 (`2002:AABB:CCDD::/48`).
pub(crate) fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let pair = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(pair(s[6], s[7]));
    }
    (s[0] == 0x2002).then(|| pair(s[1], s[2]))
}

/// True for addresses on the public internet: nothing in the IANA special-
/// purpose registries (loopback, private, link-local, CGNAT, documentation,
/// benchmarking, reserved, multicast, unspecified, unique-local, ...), and
/// IPv6 forms that embed an IPv4 address judged by that address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !SPECIAL_V4.iter().any(|net| net.contains(&v4)),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => is_public(IpAddr::V4(v4)),
            None => GLOBAL_UNICAST_V6.contains(&v6) && !SPECIAL_V6.iter().any(|n| n.contains(&v6)),
        },
    }
}

/// Resolves names through the system resolver and drops every non-public
/// address, except for the named hosts of one source's private origins.
/// It guards connections made to *names*; IP literals are checked before the
/// request (`check_destination`).
pub(crate) struct GuardedResolver {
    pub(super) trusted_hosts: HashSet<String>,
}

/// Refuses non-HTTP schemes, and non-public IP literals and `localhost`
/// names unless the URL's origin (scheme, host and port) is one of the
/// source's private origins. A named host of a private origin is reachable
/// at that origin only, not at another port or scheme.
pub fn check_destination(url: &Url, private_origins: &[Origin]) -> Result<(), FetchError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(FetchError::Blocked(format!(
            "scheme {} is not http(s)",
            url.scheme()
        )));
    }
    let host = url
        .host()
        .ok_or_else(|| FetchError::Blocked("URL without a host".into()))?;
    let private = match &host {
        Host::Ipv4(ip) => !is_public(IpAddr::V4(*ip)),
        Host::Ipv6(ip) => !is_public(IpAddr::V6(*ip)),
        Host::Domain(d) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost"
                || d.ends_with(".localhost")
                || private_origins.iter().any(|o| {
                    matches!(o, Origin::Tuple(_, Host::Domain(h), _) if h.eq_ignore_ascii_case(&d))
                })
        }
    };
    if private && !private_origins.contains(&url.origin()) {
        return Err(FetchError::Blocked(format!(
            "{} is a private, loopback or link-local address",
            url.host_str().unwrap_or_default()
        )));
    }
    Ok(())
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_ascii_lowercase();
        let trusted = self.trusted_hosts.contains(&host);
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| trusted || is_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!("{host} has no public address").into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), len)
}

const fn v6(s: [u16; 8], len: u8) -> Ipv6Net {
    Ipv6Net::new_assert(
        Ipv6Addr::new(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]),
        len,
    )
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    #[test]
    fn classifies_addresses() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "0.1.2.3",
            "100.64.0.1",
            "192.0.0.1",
            "192.0.2.1",
            "192.88.99.1",
            "198.18.0.1",
            "198.51.100.1",
            "203.0.113.1",
            "255.255.255.255",
            "240.0.0.1",
            "224.0.0.1",
            "::",
            "::1",
            "fe80::1",
            "fec0::1",
            "fd00::1",
            "ff02::1",
            "ff0e::1",
            "100::1",
            "5f00::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            // IPv4-compatible (deprecated): ::127.0.0.1, ::10.0.0.1
            "::7f00:1",
            "::a00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::1",
            // 6to4 with a private IPv4 inside: 2002:7f00:0001::, 2002:a9fe:a9fe::
            "2002:7f00:1::1",
            "2002:a9fe:a9fe::1",
            // Teredo, whatever it embeds
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001::1",
            "2001:2::1",
            "2001:db8::1",
            "3fff::1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip} is not public");
        }
        for ip in [
            "93.184.216.34",
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "2606:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip} is public");
        }
    }

    pub(in crate::fetch) fn origins(list: &[&str]) -> Vec<Origin> {
        list.iter()
            .map(|u| Url::parse(u).unwrap().origin())
            .collect()
    }

    fn blocked(url: &str, private: &[Origin]) -> bool {
        matches!(
            check_destination(&Url::parse(url).unwrap(), private),
            Err(FetchError::Blocked(_))
        )
    }

    #[test]
    fn private_destinations_need_their_origin_named() {
        let own = origins(&["http://127.0.0.1:8080"]);
        assert!(!blocked("http://127.0.0.1:8080/users/x", &own));
        assert!(blocked("http://127.0.0.1:8080/users/x", &[]));
        // Every spelling of a non-public address, for an ordinary source and
        // (on another port) for the one allowed 127.0.0.1:8080.
        for host in [
            "127.0.0.1",
            "2130706433",
            "0x7f.0.0.1",
            "0177.0.0.1",
            "0.0.0.0",
            "localhost",
            "app.localhost",
            "[::1]",
            "[::ffff:127.0.0.1]",
            "[::127.0.0.1]",
            "[2002:7f00:1::1]",
            "[2001:0:4136:e378:8000:63bf:3fff:fdd2]",
            "169.254.169.254",
        ] {
            assert!(blocked(&format!("http://{host}:8080/"), &[]), "{host}");
            assert!(blocked(&format!("http://{host}:9090/"), &own), "{host}");
        }
        // Not the allowed 127.0.0.1:8080 although on it: another scheme, and
        // the v4-mapped form of it (its own origin).
        assert!(blocked("https://127.0.0.1:8080/", &own));
        assert!(blocked("http://[::ffff:127.0.0.1]:8080/", &own));
        assert!(blocked("file:///etc/passwd", &own));
        assert!(!blocked("https://example.com/", &[]));
        // A named private host: its own port only.
        let named = origins(&["http://intranet.test:8080"]);
        assert!(!blocked("http://intranet.test:8080/x", &named));
        assert!(!blocked("http://INTRANET.test:8080/x", &named));
        // Another spelling of the name is not the named origin.
        assert!(blocked("http://intranet.test.:8080/x", &named));
        assert!(blocked("http://intranet.test:22/", &named));
        assert!(blocked("https://intranet.test:8080/", &named));
    }
}
