//! The one HTTP client of the process, and a fetch that is safe against
//! hostile sites: bodies capped while streaming (after decompression, so a gzip
//! bomb stops at the cap), redirects followed by hand within a limit, and no
//! request ever reaching a private, loopback or link-local address unless the
//! source names that origin (scheme, host and port) as one it may reach.
mod guard;

use std::collections::{BTreeSet, HashMap, HashSet};

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use reqwest::header::{
    AUTHORIZATION, COOKIE, HeaderMap, HeaderName, LOCATION, PROXY_AUTHORIZATION,
};
use reqwest::{Method, StatusCode};
use url::{Host, Origin, Url};

use guard::GuardedResolver;
pub use guard::{check_destination, is_public};

/// Settings of the process-wide client.
#[derive(Debug, Clone, PartialEq, eserde::Deserialize, serde::Serialize)]
pub struct HttpConfig {
    pub user_agent: String,
    /// Largest response body read, after decompression.
    pub max_body_bytes: usize,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Requests to sources in flight at once in this process, whatever the
    /// callers, sources and batches: each holds a socket (a descriptor) and
    /// its connection's buffers. A request past it waits for a slot within
    /// its source's timeout.
    pub max_requests_in_flight: usize,
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

/// The process's HTTP client. Clones share its connection pools.
#[derive(Clone)]
pub struct HttpClient {
    /// Reaches public addresses only: every source without private origins.
    public: reqwest::Client,
    /// The client of each source with private origins, whose resolver lets
    /// only that source's named hosts resolve to private addresses. Sources
    /// that trust exactly the same named hosts share one client (its
    /// resolver policy is a function of that set alone, and building a
    /// client per source cost 2-3 ms and a TLS root store each); a source
    /// whose private origins are all IP literals needs no name trusted and
    /// uses the public client. Which addresses a source may reach is checked
    /// per request and per source (`check_destination`).
    private: Arc<HashMap<String, reqwest::Client>>,
    max_body: usize,
    /// `max_requests_in_flight` slots, one held by each fetch from its
    /// first request to its body's last byte.
    slots: Arc<tokio::sync::Semaphore>,
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
        let public = client(HashSet::new())?;
        let mut by_hosts: HashMap<BTreeSet<String>, reqwest::Client> = HashMap::new();
        let mut by_source = HashMap::new();
        for (source, origins) in private {
            let hosts: BTreeSet<String> = origins
                .iter()
                .filter_map(|o| match o {
                    Origin::Tuple(_, Host::Domain(d), _) => Some(d.to_ascii_lowercase()),
                    _ => None,
                })
                .collect();
            let shared = if hosts.is_empty() {
                public.clone()
            } else if let Some(shared) = by_hosts.get(&hosts) {
                shared.clone()
            } else {
                let made = client(hosts.iter().cloned().collect())?;
                by_hosts.insert(hosts, made.clone());
                made
            };
            by_source.insert(source.to_owned(), shared);
        }
        Ok(Self {
            public,
            private: Arc::new(by_source),
            max_body: config.max_body_bytes,
            slots: Arc::new(tokio::sync::Semaphore::new(
                config.max_requests_in_flight.max(1),
            )),
        })
    }

    /// Sends `req`, following redirects per `reach`, and reads the body up to
    /// the cap. A redirect to another origin carries no credentials (neither
    /// `Authorization`, `Cookie` nor any header filled from a secret) and no
    /// body. The caller bounds the whole call with its timeout.
    pub async fn fetch(&self, req: Outgoing, reach: Reach<'_>) -> Result<Fetched, FetchError> {
        // Never closed, so always a slot in the end (within the caller's
        // timeout). Waits are counted: an operator seeing them rise (and
        // sources timing out) raises `http.max_requests_in_flight`.
        if self.slots.available_permits() == 0 {
            metrics::counter!("enrichd_http_budget_waits_total").increment(1);
        }
        let _slot = self.slots.acquire().await;
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::guard::tests::origins;
    use super::*;

    fn client<'a>(private: impl IntoIterator<Item = (&'a str, &'a [Origin])>) -> HttpClient {
        let config = HttpConfig {
            user_agent: "enrichd-test".into(),
            max_body_bytes: 1 << 20,
            connect_timeout: Duration::from_secs(2),
            max_requests_in_flight: 64,
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

    /// A site that answers every request after `delay`, counting the most
    /// requests it held at once.
    async fn counting_site(delay: Duration) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let seen = most.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let (now, most) = (now.clone(), most.clone());
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    // One request a read: the client sends small GETs.
                    while matches!(conn.read(&mut buf).await, Ok(n) if n > 0) {
                        let held = now.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(held, Ordering::SeqCst);
                        tokio::time::sleep(delay).await;
                        now.fetch_sub(1, Ordering::SeqCst);
                        let answer = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if conn.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (addr, seen)
    }

    #[tokio::test]
    async fn requests_in_flight_never_pass_the_process_s_budget_whatever_their_source() {
        let (site, most) = counting_site(Duration::from_millis(100)).await;
        let trusted = origins(&[&format!("http://{site}")]);
        let config = HttpConfig {
            user_agent: "enrichd-test".into(),
            max_body_bytes: 1 << 20,
            connect_timeout: Duration::from_secs(2),
            max_requests_in_flight: 2,
        };
        let sources: Vec<String> = (0..6).map(|i| format!("s{i}")).collect();
        let http = HttpClient::build(
            &config,
            sources.iter().map(|s| (s.as_str(), trusted.as_slice())),
        )
        .unwrap();
        let fetches = sources.iter().map(|source| {
            let req = Outgoing {
                method: Method::GET,
                url: Url::parse(&format!("http://{site}/{source}")).unwrap(),
                headers: Vec::new(),
                body: None,
            };
            http.fetch(
                req,
                Reach {
                    source,
                    private_origins: &trusted,
                    max_redirects: 0,
                    follow_redirects: false,
                },
            )
        });
        for answer in futures::future::join_all(fetches).await {
            assert_eq!(answer.unwrap().status, StatusCode::OK);
        }
        let most = most.load(Ordering::SeqCst);
        assert!(
            most <= 2,
            "{most} requests in flight at once, over the budget of 2"
        );
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
        // "twin" trusts the same name (and shares "trusting"'s client);
        // "elsewhere" trusts another name, and gains nothing from that.
        let another = origins(&[&format!("http://db.internal:{port}")]);
        let http = client([
            ("trusting", named.as_slice()),
            ("twin", named.as_slice()),
            ("elsewhere", another.as_slice()),
        ]);
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
        assert_eq!(get("twin").await.unwrap().status, StatusCode::OK);
        for other in ["other", "elsewhere"] {
            assert!(
                matches!(get(other).await, Err(FetchError::Blocked(_))),
                "{other}: another source's resolver does not trust the name"
            );
        }
    }
}
