//! The one HTTP client of the process, and a fetch that is safe against
//! hostile sites: bodies capped while streaming (after decompression, so a gzip
//! bomb stops at the cap), redirects followed by hand within a limit, and no
//! request ever reaching a private, loopback or link-local address unless the
//! source names that origin (scheme, host and port) as one it may reach.
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ipnet::{Ipv4Net, Ipv6Net};
use reqwest::header::{
    AUTHORIZATION, COOKIE, HeaderMap, HeaderName, LOCATION, PROXY_AUTHORIZATION,
};
use reqwest::{Method, StatusCode};
use url::{Host, Origin, Url};

/// Settings of the process-wide client.
#[derive(Debug, Clone, PartialEq, eserde::Deserialize, serde::Serialize)]
pub struct HttpConfig {
    pub user_agent: String,
    /// Largest response body read, after decompression.
    pub max_body_bytes: usize,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("blocked: {0}")]
    Blocked(String),
    #[error("response body over the {0}-byte limit")]
    TooLarge(usize),
    #[error("more than {0} redirects")]
    TooManyRedirects(u32),
    #[error("redirect without a usable Location header")]
    BadRedirect,
    #[error("connection failed: {0}")]
    Connect(String),
    #[error("request failed: {0}")]
    Request(String),
}

/// A response as the engine sees it.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The URL that answered (after redirects).
    pub url: Url,
    /// Redirects followed, or (when not following) whether the answer is one.
    pub redirected: bool,
}

/// One request to send.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub method: Method,
    pub url: Url,
    pub headers: Vec<Header>,
    pub body: Option<String>,
}

/// A request header; `secret` when its value came from the environment.
#[derive(Debug, Clone)]
pub struct Header {
    pub name: HeaderName,
    pub value: String,
    pub secret: bool,
}

/// Where one source's request may go, and how far it may redirect.
#[derive(Debug, Clone, Copy)]
pub struct Reach<'a> {
    /// The catalog id of the source asking (its own resolver, if it has
    /// private origins).
    pub source: &'a str,
    /// Origins (scheme, host, port) the source may reach on non-public
    /// addresses. Empty for every source but the sandbox's and tests'.
    pub private_origins: &'a [Origin],
    pub max_redirects: u32,
    /// Return a redirect as the answer instead of following it.
    pub follow_redirects: bool,
}

/// IPv4 ranges of the IANA IPv4 Special-Purpose Address Registry, plus
/// multicast and the limited broadcast: none is reached by a source.
/// (192.0.0.9 and .10, documented as global anycast, are refused with their
/// /24: no profile site lives there.)
const SPECIAL_V4: &[Ipv4Net] = &[
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
const GLOBAL_UNICAST_V6: Ipv6Net = v6([0x2000, 0, 0, 0, 0, 0, 0, 0], 3);
const SPECIAL_V6: &[Ipv6Net] = &[
    v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23), // IETF protocol assignments, incl. Teredo 2001::/32
    v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32), // documentation
    v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20), // documentation
];

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), len)
}

const fn v6(s: [u16; 8], len: u8) -> Ipv6Net {
    Ipv6Net::new_assert(
        Ipv6Addr::new(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]),
        len,
    )
}

/// The IPv4 address an IPv6 address carries and is routed to: v4-mapped
/// (`::ffff:a.b.c.d`), NAT64 (`64:ff9b::/96`) or 6to4 (`2002:AABB:CCDD::/48`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
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
struct GuardedResolver {
    trusted_hosts: HashSet<String>,
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

/// The process's HTTP client. Clones share its connection pools.
#[derive(Clone)]
pub struct HttpClient {
    /// Reaches public addresses only: every source without private origins.
    public: reqwest::Client,
    /// One client per source with private origins, whose resolver lets only
    /// that source's named hosts resolve to private addresses: trust is never
    /// shared between sources.
    private: Arc<HashMap<String, reqwest::Client>>,
    max_body: usize,
}

impl HttpClient {
    /// Builds the clients. This is the only place a `reqwest::Client` is made.
    /// `private`: the sources with private origins, by catalog id.
    pub fn build<'a>(
        config: &HttpConfig,
        private: impl IntoIterator<Item = (&'a str, &'a [Origin])>,
    ) -> Result<Self, String> {
        // reqwest is built without a bundled crypto provider; ring is ours.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = |trusted_hosts: HashSet<String>| {
            reqwest::Client::builder()
                .user_agent(config.user_agent.clone())
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(config.connect_timeout)
                .pool_idle_timeout(Duration::from_secs(60))
                .no_proxy()
                .dns_resolver(Arc::new(GuardedResolver { trusted_hosts }))
                .build()
                .map_err(|e| e.to_string())
        };
        let mut by_source = HashMap::new();
        for (source, origins) in private {
            let hosts = origins
                .iter()
                .filter_map(|o| match o {
                    Origin::Tuple(_, Host::Domain(d), _) => Some(d.to_ascii_lowercase()),
                    _ => None,
                })
                .collect();
            by_source.insert(source.to_owned(), client(hosts)?);
        }
        Ok(Self {
            public: client(HashSet::new())?,
            private: Arc::new(by_source),
            max_body: config.max_body_bytes,
        })
    }

    /// Sends `req`, following redirects per `reach`, and reads the body up to
    /// the cap. A redirect to another origin carries no credentials (neither
    /// `Authorization`, `Cookie` nor any header filled from a secret) and no
    /// body. The caller bounds the whole call with its timeout.
    pub async fn fetch(&self, req: Outgoing, reach: Reach<'_>) -> Result<Fetched, FetchError> {
        let client = self.private.get(reach.source).unwrap_or(&self.public);
        let origin = req.url.origin();
        let mut url = req.url;
        let mut method = req.method;
        let mut body = req.body;
        let mut headers = req.headers;
        let mut redirects = 0;
        loop {
            check_destination(&url, reach.private_origins)?;
            let mut builder = client.request(method.clone(), url.clone());
            for header in &headers {
                builder = builder.header(&header.name, &header.value);
            }
            if let Some(b) = &body {
                builder = builder.body(b.clone());
            }
            let response = builder.send().await.map_err(classify)?;
            let status = response.status();
            if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
                if !reach.follow_redirects {
                    return Ok(Fetched {
                        status,
                        headers: response.headers().clone(),
                        body: Bytes::new(),
                        url,
                        redirected: true,
                    });
                }
                if redirects >= reach.max_redirects {
                    return Err(FetchError::TooManyRedirects(reach.max_redirects));
                }
                let next = response
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|loc| url.join(loc).ok())
                    .ok_or(FetchError::BadRedirect)?;
                redirects += 1;
                if matches!(status.as_u16(), 301..=303) {
                    method = Method::GET;
                    body = None;
                }
                if next.origin() != origin {
                    headers.retain(|h| !h.secret && !CREDENTIALS.contains(&h.name));
                    body = None;
                }
                url = next;
                continue;
            }
            let headers = response.headers().clone();
            let body = self.read_capped(response).await?;
            return Ok(Fetched {
                status,
                headers,
                body,
                url,
                redirected: redirects > 0,
            });
        }
    }

    async fn read_capped(&self, mut response: reqwest::Response) -> Result<Bytes, FetchError> {
        if response
            .content_length()
            .is_some_and(|len| len > self.max_body as u64)
            && response
                .headers()
                .get(reqwest::header::CONTENT_ENCODING)
                .is_none()
        {
            return Err(FetchError::TooLarge(self.max_body));
        }
        let mut buf = BytesMut::new();
        while let Some(chunk) = response.chunk().await.map_err(classify)? {
            if buf.len() + chunk.len() > self.max_body {
                return Err(FetchError::TooLarge(self.max_body));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    }
}

fn classify(e: reqwest::Error) -> FetchError {
    // The guard's refusal surfaces as a connect error: name it.
    let text = error_chain(&e);
    if text.contains("has no public address") {
        FetchError::Blocked("the host resolves to no public address".into())
    } else if e.is_connect() {
        FetchError::Connect(text)
    } else {
        FetchError::Request(text)
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Headers that carry credentials, whatever their value's origin.
const CREDENTIALS: &[HeaderName] = &[AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION];

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

#[cfg(test)]
mod tests {
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

    fn origins(list: &[&str]) -> Vec<Origin> {
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

    fn client<'a>(private: impl IntoIterator<Item = (&'a str, &'a [Origin])>) -> HttpClient {
        let config = HttpConfig {
            user_agent: "enrichd-test".into(),
            max_body_bytes: 1 << 20,
            connect_timeout: Duration::from_secs(2),
        };
        HttpClient::build(&config, private).unwrap()
    }

    fn header(name: HeaderName, value: &str, secret: bool) -> Header {
        Header {
            name,
            value: value.into(),
            secret,
        }
    }

    #[tokio::test]
    async fn credentials_and_bodies_do_not_follow_a_redirect_to_another_origin() {
        use wiremock::matchers::path;
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let first = MockServer::start().await;
        let second = MockServer::start().await;
        let to = |url: String| ResponseTemplate::new(307).insert_header("Location", url);
        Mock::given(path("/away"))
            .respond_with(to(format!("{}/landing", second.uri())))
            .mount(&first)
            .await;
        Mock::given(path("/near"))
            .respond_with(to("/landing".into()))
            .mount(&first)
            .await;
        for server in [&first, &second] {
            Mock::given(path("/landing"))
                .respond_with(ResponseTemplate::new(200))
                .mount(server)
                .await;
        }
        let allowed = origins(&[&first.uri(), &second.uri()]);
        let http = client([("s", allowed.as_slice())]);
        let reach = Reach {
            source: "s",
            private_origins: &allowed,
            max_redirects: 3,
            follow_redirects: true,
        };
        for hop in ["away", "near"] {
            let request = Outgoing {
                method: Method::POST,
                url: Url::parse(&format!("{}/{hop}", first.uri())).unwrap(),
                headers: vec![
                    header(AUTHORIZATION, "Bearer literal", false),
                    header(HeaderName::from_static("x-api-key"), "from-env", true),
                    header(reqwest::header::ACCEPT, "application/json", false),
                ],
                body: Some("payload".into()),
            };
            let fetched = http.fetch(request, reach).await.unwrap();
            assert_eq!(fetched.status, StatusCode::OK, "{hop}");
        }
        let landed = |requests: Vec<wiremock::Request>| {
            requests
                .into_iter()
                .find(|r| r.url.path() == "/landing")
                .expect("the redirect was followed")
        };
        let away = landed(second.received_requests().await.unwrap());
        assert!(away.headers.get("authorization").is_none());
        assert!(away.headers.get("x-api-key").is_none());
        assert_eq!(away.headers.get("accept").unwrap(), "application/json");
        assert!(away.body.is_empty(), "the body stayed behind");
        let near = landed(first.received_requests().await.unwrap());
        assert_eq!(near.headers.get("authorization").unwrap(), "Bearer literal");
        assert_eq!(near.headers.get("x-api-key").unwrap(), "from-env");
        assert_eq!(
            near.body, b"payload",
            "a 307 within the origin keeps the body"
        );
    }

    #[tokio::test]
    async fn a_private_host_name_is_trusted_for_its_own_source_only() {
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let server = MockServer::start().await;
        Mock::given(wiremock::matchers::any())
            .respond_with(ResponseTemplate::new(200))
            .mount(&server)
            .await;
        let port = server.address().port();
        let named = origins(&[&format!("http://localhost:{port}")]);
        let http = client([("trusting", named.as_slice())]);
        let get = |source| {
            let request = Outgoing {
                method: Method::GET,
                url: Url::parse(&format!("http://localhost:{port}/x")).unwrap(),
                headers: Vec::new(),
                body: None,
            };
            // Both claim the origin, so only the resolver stands in the way.
            http.fetch(
                request,
                Reach {
                    source,
                    private_origins: &named,
                    max_redirects: 0,
                    follow_redirects: false,
                },
            )
        };
        assert_eq!(get("trusting").await.unwrap().status, StatusCode::OK);
        assert!(
            matches!(get("other").await, Err(FetchError::Blocked(_))),
            "another source's resolver does not trust the name"
        );
    }
}
