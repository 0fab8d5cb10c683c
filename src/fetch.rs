//! The one HTTP client of the process, and a fetch that is safe against
//! hostile sites: bodies capped while streaming (after decompression, so a gzip
//! bomb stops at the cap), redirects followed by hand within a limit, and no
//! request ever reaching a private, loopback or link-local address unless the
//! source is allowed to, and then only at its own origin.
use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::header::{HeaderMap, HeaderName, LOCATION};
use reqwest::{Method, StatusCode};
use url::{Host, Url};

/// Settings of the process-wide client.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
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
    pub headers: Vec<(HeaderName, String)>,
    pub body: Option<String>,
}

/// Whether a source may reach private addresses, and how far it may redirect.
#[derive(Debug, Clone, Copy)]
pub struct Reach {
    pub allow_private: bool,
    pub max_redirects: u32,
    /// Return a redirect as the answer instead of following it.
    pub follow_redirects: bool,
}

/// True for addresses on the public internet. Loopback, private, link-local
/// (169.254.0.0/16: cloud metadata), shared (CGNAT), documentation,
/// benchmarking, reserved, multicast, unspecified and unique-local addresses
/// are not; IPv4-mapped and NAT64 addresses are judged by their IPv4 part.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && c == 0)
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let seg = v6.segments();
            if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0, 0, 0, 0] {
                let [.., hi, lo] = seg;
                let v4 =
                    std::net::Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
                return is_public(IpAddr::V4(v4));
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00
                || (seg[0] & 0xffc0) == 0xfe80
                || (seg[0] == 0x2001 && seg[1] == 0x0db8))
        }
    }
}

/// Resolves names through the system resolver and drops every non-public
/// address, except for the hosts of sources allowed to reach private ones.
/// It guards connections made to *names*; IP literals are checked before the
/// request (`check_destination`).
struct GuardedResolver {
    trusted_hosts: Arc<HashSet<String>>,
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

/// The process's HTTP client. Clones share one connection pool.
#[derive(Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    max_body: usize,
}

impl HttpClient {
    /// Builds the client. This is the only place a `reqwest::Client` is made.
    /// `trusted_hosts`: host names of sources allowed to reach private addresses.
    pub fn build(config: &HttpConfig, trusted_hosts: HashSet<String>) -> Result<Self, String> {
        // reqwest is built without a bundled crypto provider; ring is ours.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .user_agent(config.user_agent.clone())
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver {
                trusted_hosts: Arc::new(trusted_hosts),
            }))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            client,
            max_body: config.max_body_bytes,
        })
    }

    /// Sends `req`, following redirects per `reach`, and reads the body up to
    /// the cap. The caller bounds the whole call with its timeout.
    pub async fn fetch(&self, req: Outgoing, reach: Reach) -> Result<Fetched, FetchError> {
        let origin = req.url.origin();
        let mut url = req.url;
        let mut method = req.method;
        let mut body = req.body;
        let mut redirects = 0;
        loop {
            check_destination(&url, &origin, reach.allow_private)?;
            let mut builder = self.client.request(method.clone(), url.clone());
            for (name, value) in &req.headers {
                builder = builder.header(name, value);
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

/// Refuses non-HTTP schemes and non-public IP literals (and `localhost`),
/// unless the source may reach private addresses and this is its own origin.
pub fn check_destination(
    url: &Url,
    origin: &url::Origin,
    allow_private: bool,
) -> Result<(), FetchError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(FetchError::Blocked(format!(
            "scheme {} is not http(s)",
            url.scheme()
        )));
    }
    let private = match url.host() {
        Some(Host::Ipv4(ip)) => !is_public(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => !is_public(IpAddr::V6(ip)),
        Some(Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        None => return Err(FetchError::Blocked("URL without a host".into())),
    };
    if private && !(allow_private && &url.origin() == origin) {
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
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2001:db8::1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip} is not public");
        }
        for ip in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip} is public");
        }
    }

    #[test]
    fn private_destinations_need_permission_and_the_same_origin() {
        let own = Url::parse("http://127.0.0.1:8080/users/x").unwrap();
        let origin = own.origin();
        assert!(check_destination(&own, &origin, true).is_ok());
        assert!(check_destination(&own, &origin, false).is_err());
        for other in [
            "http://127.0.0.1:9090/",
            "http://169.254.169.254/latest/meta-data/",
            "http://localhost:8080/",
            "http://[::1]:8080/",
            "file:///etc/passwd",
        ] {
            let url = Url::parse(other).unwrap();
            assert!(
                matches!(
                    check_destination(&url, &origin, true),
                    Err(FetchError::Blocked(_))
                ),
                "{other}"
            );
        }
        let public = Url::parse("https://example.com/").unwrap();
        assert!(check_destination(&public, &origin, false).is_ok());
    }
}
