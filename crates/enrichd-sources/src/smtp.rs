//! Mailbox deliverability by SMTP, as check-if-email-exists does it: to the
//! domain's mail exchanger, EHLO, MAIL FROM, RCPT TO the address, RCPT TO a
//! random address of the same domain (a server that takes that takes
//! anything: a catch-all), QUIT. Never DATA: no mail is ever sent. A
//! greylisting server (a 4xx on RCPT) is asked again after a pause rather
//! than read as a refusal.
//!
//! The verifier (`verify`) resolves the exchangers; the [`Prober`] keeps to
//! the never-probe list, the per-domain budget (shared by replicas through
//! Redis when there is one) and concurrency, and remembers catch-all
//! domains; [`probe`] holds the conversation, directly or through a SOCKS5
//! proxy. A mailbox's answer is not kept here: it is part of the person's
//! answer, which the answer cache keeps (and erasure removes).
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use lettre::Address;
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::commands::{Mail, Rcpt};
use lettre::transport::smtp::extension::ClientId;

use crate::cache::{Slot, slot};

pub mod exchanger;
mod proxy;
mod stream;

pub use proxy::Proxy;

/// A probe looks up at most this many of a domain's exchangers (the best by
/// preference) and asks at most this many addresses of them, as mail
/// servers do (Postfix's `smtp_mx_address_limit` is 5): a domain that lists
/// a thousand exchangers, each an address that never answers, costs five
/// lookups and five timeouts, not a thousand.
pub const MAX_EXCHANGERS: usize = 5;
pub const MAX_ADDRESSES: usize = 5;

/// `[smtp]` settings. Off by default: a probe talks to the person's mail
/// provider, and many clouds block port 25.
#[derive(Clone, PartialEq, serde::Serialize, eserde::Deserialize)]
pub struct SmtpConfig {
    #[serde(default)]
    pub enabled: bool,
    /// The EHLO name: a host name the operator owns (required when on).
    #[serde(default)]
    pub helo_name: String,
    /// The MAIL FROM address (required when on).
    #[serde(default)]
    pub mail_from: String,
    #[serde(default = "port")]
    pub port: u16,
    #[serde(default = "timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// A greylisting exchanger is asked again after this, this many times.
    #[serde(default = "greylist_wait", with = "humantime_serde")]
    pub greylist_wait: Duration,
    #[serde(default = "one")]
    pub greylist_retries: u32,
    /// Probes of one domain a minute: across replicas when `[cluster]`
    /// has Redis (each replica its share while Redis is down), else this
    /// process's.
    #[serde(default = "per_domain")]
    pub per_domain_per_minute: u32,
    /// Probes of one domain at once (this process).
    #[serde(default = "two")]
    pub per_domain_concurrency: u32,
    /// How long a domain found to accept any address is remembered (and
    /// not asked again): a domain, no person, so shared through Redis too.
    #[serde(default = "catch_all_ttl", with = "humantime_serde")]
    pub catch_all_ttl: Duration,
    /// How long what an exchanger said of an address is kept (by the
    /// person's keyed hash, in this process; erasure removes it) and given
    /// again instead of a new probe; `0s`: every call probes.
    #[serde(default = "result_ttl", with = "humantime_serde")]
    pub result_ttl: Duration,
    /// A SOCKS5 proxy the probes go through (`socks5://[user:password@]host:port`):
    /// many clouds block port 25.
    #[serde(default)]
    pub proxy: Option<String>,
    /// Domains never probed: large providers accept everything or block
    /// probing, and a probe there says nothing.
    #[serde(default = "never_probe")]
    pub never_probe: Vec<String>,
    /// Exchangers on private or loopback addresses may be asked (tests, a
    /// company's own mail server); off, only public ones are.
    #[serde(default)]
    pub allow_private: bool,
}

fn port() -> u16 {
    25
}
fn timeout() -> Duration {
    Duration::from_secs(10)
}
fn greylist_wait() -> Duration {
    Duration::from_secs(5)
}
fn one() -> u32 {
    1
}
fn per_domain() -> u32 {
    30
}
fn two() -> u32 {
    2
}
fn result_ttl() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn catch_all_ttl() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn never_probe() -> Vec<String> {
    [
        "gmail.com",
        "googlemail.com",
        "yahoo.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "msn.com",
        "icloud.com",
        "me.com",
        "aol.com",
    ]
    .map(str::to_owned)
    .to_vec()
}

impl std::fmt::Debug for SmtpConfig {
    /// As derived, but the proxy's password is never shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let proxy = self.proxy.as_deref().map(|p| match Proxy::parse(p) {
            Ok(proxy) => format!("{proxy:?}"),
            Err(_) => "(not a socks5 URL)".to_owned(),
        });
        f.debug_struct("SmtpConfig")
            .field("enabled", &self.enabled)
            .field("helo_name", &self.helo_name)
            .field("mail_from", &self.mail_from)
            .field("port", &self.port)
            .field("timeout", &self.timeout)
            .field("greylist_wait", &self.greylist_wait)
            .field("greylist_retries", &self.greylist_retries)
            .field("per_domain_per_minute", &self.per_domain_per_minute)
            .field("per_domain_concurrency", &self.per_domain_concurrency)
            .field("catch_all_ttl", &self.catch_all_ttl)
            .field("result_ttl", &self.result_ttl)
            .field("proxy", &proxy)
            .field("never_probe", &self.never_probe)
            .field("allow_private", &self.allow_private)
            .finish()
    }
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            helo_name: String::new(),
            mail_from: String::new(),
            port: port(),
            timeout: timeout(),
            greylist_wait: greylist_wait(),
            greylist_retries: one(),
            per_domain_per_minute: per_domain(),
            per_domain_concurrency: two(),
            catch_all_ttl: catch_all_ttl(),
            result_ttl: result_ttl(),
            proxy: None,
            never_probe: never_probe(),
            allow_private: false,
        }
    }
}

impl SmtpConfig {
    /// What is wrong with these settings, by key.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.enabled {
            if self.helo_name.trim().is_empty() {
                p.push("smtp.helo_name: required when smtp.enabled (a host name you own)".into());
            }
            if self.mail_from.parse::<Address>().is_err() {
                p.push(
                    "smtp.mail_from: required when smtp.enabled: an address (verify@your.domain)"
                        .into(),
                );
            }
        }
        if self.per_domain_per_minute == 0 {
            p.push("smtp.per_domain_per_minute: must be at least 1".into());
        }
        if self.per_domain_concurrency == 0 {
            p.push("smtp.per_domain_concurrency: must be at least 1".into());
        }
        if let Some(proxy) = &self.proxy
            && let Err(e) = Proxy::parse(proxy)
        {
            p.push(format!("smtp.proxy: {e}"));
        }
        p
    }

    fn settings(&self) -> ProbeSettings {
        ProbeSettings {
            helo_name: self.helo_name.clone(),
            mail_from: self.mail_from.clone(),
            port: self.port,
            timeout: self.timeout,
            greylist_wait: self.greylist_wait,
            greylist_retries: self.greylist_retries,
            proxy: self.proxy.as_deref().and_then(|p| Proxy::parse(p).ok()),
        }
    }
}

/// A domain's probe budget: one per process, or one for every replica.
enum Budget {
    Local(governor::DefaultKeyedRateLimiter<String>),
    Shared {
        cluster: Arc<crate::cluster::Cluster>,
        limits: moka::sync::Cache<String, Arc<crate::cluster::limits::SharedLimit>>,
    },
}

/// Domains whose budget, concurrency or catch-all answer is held at once.
const DOMAINS_KEPT: u64 = 100_000;
/// Addresses whose probe's answer is kept (about 300 bytes each with the
/// cache's own: 30 MB at most).
const ANSWERS_KEPT: u64 = 100_000;

/// Probes within their limits: the never-probe list, a budget and a
/// concurrency per domain, public exchangers only unless allowed; a
/// catch-all domain is remembered, not asked again.
pub struct Prober {
    config: SmtpConfig,
    budget: Budget,
    busy: moka::sync::Cache<String, Arc<tokio::sync::Semaphore>>,
    catch_all: moka::sync::Cache<String, Probe>,
    /// What exchangers said of addresses, by the person's keyed hash (none
    /// with `result_ttl = "0s"`).
    said: Option<moka::sync::Cache<Slot, Probe>>,
}

impl Prober {
    /// `cluster`: the replicas' Redis, when there is one (the budget and
    /// the catch-all domains are shared through it).
    pub fn new(config: SmtpConfig, cluster: Option<Arc<crate::cluster::Cluster>>) -> Self {
        let budget = match cluster {
            Some(cluster) => Budget::Shared {
                cluster,
                limits: moka::sync::Cache::new(DOMAINS_KEPT),
            },
            None => {
                let rate = std::num::NonZeroU32::new(config.per_domain_per_minute)
                    .unwrap_or(std::num::NonZeroU32::MIN);
                Budget::Local(governor::RateLimiter::keyed(governor::Quota::per_minute(
                    rate,
                )))
            }
        };
        Self {
            budget,
            busy: moka::sync::Cache::builder()
                .max_capacity(DOMAINS_KEPT)
                .time_to_idle(Duration::from_secs(600))
                .build(),
            catch_all: moka::sync::Cache::builder()
                .max_capacity(DOMAINS_KEPT)
                .time_to_live(config.catch_all_ttl)
                .build(),
            said: (!config.result_ttl.is_zero()).then(|| {
                moka::sync::Cache::builder()
                    .max_capacity(ANSWERS_KEPT)
                    .time_to_live(config.result_ttl)
                    .build()
            }),
            config,
        }
    }

    /// Takes one probe of `domain` from its budget.
    async fn spend(&self, domain: &str) -> bool {
        match &self.budget {
            Budget::Local(limiter) => limiter.check_key(&domain.to_owned()).is_ok(),
            Budget::Shared { cluster, limits } => {
                let per_minute = self.config.per_domain_per_minute.max(1);
                let limit = limits.get_with_by_ref(domain, || {
                    Arc::new(crate::cluster::limits::SharedLimit::new(
                        cluster.clone(),
                        "smtp",
                        domain,
                        enrichd_core::catalog::source::RateLimit {
                            per_second: f64::from(per_minute) / 60.0,
                            burst: per_minute,
                        },
                    ))
                });
                limit.acquire().await == crate::cluster::limits::Grant::Now
            }
        }
    }

    /// Whether a replica (this one or another) found `domain` takes any
    /// address, within `catch_all_ttl`.
    async fn known_catch_all(&self, domain: &str) -> Option<Probe> {
        if let Some(known) = self.catch_all.get(domain) {
            return Some(known);
        }
        let Budget::Shared { cluster, .. } = &self.budget else {
            return None;
        };
        let host: String = cluster
            .get(&cluster.key("smtp", &format!("{domain}:catchall")))
            .await?;
        let known = Probe {
            status: Deliverability::CatchAll,
            reason: "accepts any address (found before)".into(),
            code: None,
            host,
        };
        self.catch_all.insert(domain.to_owned(), known.clone());
        Some(known)
    }

    async fn remember_catch_all(&self, domain: &str, probe: &Probe) {
        let known = Probe {
            reason: "accepts any address (found before)".into(),
            code: None,
            ..probe.clone()
        };
        self.catch_all.insert(domain.to_owned(), known);
        if let Budget::Shared { cluster, .. } = &self.budget {
            cluster
                .set_for(
                    &cluster.key("smtp", &format!("{domain}:catchall")),
                    &probe.host,
                    self.config.catch_all_ttl,
                )
                .await;
        }
    }

    /// What an exchanger said of the person's address (`subject`: their
    /// keyed hash) within `smtp.result_ttl`, if it said something.
    pub fn known(&self, subject: &str) -> Option<Probe> {
        self.said.as_ref()?.get(&slot(subject))
    }

    /// Drops what exchangers said of the person's address (an erasure).
    pub fn forget(&self, subject: &str) {
        if let Some(said) = &self.said {
            said.invalidate(&slot(subject));
        }
    }

    pub fn forget_all(&self) {
        if let Some(said) = &self.said {
            said.invalidate_all();
        }
    }

    /// How many people's answers are kept.
    pub fn held(&self) -> u64 {
        self.said.as_ref().map_or(0, |said| {
            said.run_pending_tasks();
            said.entry_count()
        })
    }

    /// What the domain's exchangers (`exchangers`: name and addresses,
    /// best first) say of `address`; an answer (not an unknown) is kept
    /// for the person (`subject`).
    pub async fn check(
        &self,
        subject: &str,
        address: &str,
        domain: &str,
        exchangers: &[(String, Vec<IpAddr>)],
    ) -> Probe {
        let said = self.ask(address, domain, exchangers).await;
        if let Some(kept) = &self.said
            && said.status.is_known()
        {
            kept.insert(slot(subject), said.clone());
        }
        said
    }

    async fn ask(
        &self,
        address: &str,
        domain: &str,
        exchangers: &[(String, Vec<IpAddr>)],
    ) -> Probe {
        let unknown = |reason: &str| Probe {
            status: Deliverability::Unknown,
            reason: reason.to_owned(),
            code: None,
            host: String::new(),
        };
        let domain = domain.to_ascii_lowercase();
        if self
            .config
            .never_probe
            .iter()
            .any(|d| d.eq_ignore_ascii_case(&domain))
        {
            return unknown(
                "never probed (smtp.never_probe): the provider accepts or blocks every probe",
            );
        }
        let hosts: Vec<(String, IpAddr)> = exchangers
            .iter()
            .flat_map(|(name, ips)| ips.iter().map(move |ip| (name.clone(), *ip)))
            .filter(|(_, ip)| self.config.allow_private || crate::fetch::is_public(*ip))
            .collect();
        if hosts.is_empty() {
            return unknown(if exchangers.iter().all(|(_, ips)| ips.is_empty()) {
                "no exchanger has an address"
            } else {
                "no exchanger it may ask (none public: smtp.allow_private)"
            });
        }
        if let Some(known) = self.known_catch_all(&domain).await {
            return known;
        }
        let gate = self.busy.get_with_by_ref(&domain, || {
            Arc::new(tokio::sync::Semaphore::new(
                self.config.per_domain_concurrency.max(1) as usize,
            ))
        });
        let Ok(_turn) = tokio::time::timeout(self.config.timeout, gate.acquire_owned()).await
        else {
            return unknown("the domain's probes are all busy (smtp.per_domain_concurrency)");
        };
        if !self.spend(&domain).await {
            return unknown("over the domain's probe budget (smtp.per_domain_per_minute)");
        }
        let said = probe(&self.config.settings(), &hosts, address).await;
        if said.status == Deliverability::CatchAll {
            self.remember_catch_all(&domain, &said).await;
        }
        said
    }
}

/// How a probe is made.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeSettings {
    /// The EHLO name (a host name the operator owns).
    pub helo_name: String,
    /// The MAIL FROM address.
    pub mail_from: String,
    /// The exchangers' port (25; a test server's elsewhere).
    pub port: u16,
    /// The whole conversation with one exchanger.
    pub timeout: Duration,
    /// How long to wait before asking a greylisting server again, and how
    /// many times.
    pub greylist_wait: Duration,
    pub greylist_retries: u32,
    /// A SOCKS5 proxy every conversation goes through.
    pub proxy: Option<Proxy>,
}

pub use enrichd_core::model::{Deliverability, SmtpCheck as Probe};

/// One conversation's end.
enum Said {
    Probe(Probe),
    /// A 4xx on RCPT: ask again later.
    Greylisted(Option<u16>),
    /// No conversation (refused, timed out, closed): try the next exchanger.
    Unreachable(String),
}

fn code_of(e: &lettre::transport::smtp::Error) -> Option<u16> {
    e.status().map(u16::from)
}

async fn converse(settings: &ProbeSettings, (name, ip): (&str, IpAddr), address: &Address) -> Said {
    let probe = |status, reason: &str, code| {
        Said::Probe(Probe {
            status,
            reason: reason.to_owned(),
            code,
            host: name.to_owned(),
        })
    };
    let hello = ClientId::Domain(settings.helo_name.clone());
    let at = SocketAddr::new(ip, settings.port);
    // The stream is ours (bounded), whichever way it goes.
    let stream: Box<dyn lettre::transport::smtp::client::AsyncTokioStream> = match &settings.proxy {
        None => match tokio::net::TcpStream::connect(at).await {
            Ok(tcp) => Box::new(stream::Conversation::new(tcp, at)),
            Err(e) => return Said::Unreachable(e.to_string()),
        },
        Some(proxy) => match proxy.connect(at).await {
            Ok(socks) => Box::new(stream::Conversation::new(socks, at)),
            Err(e) => return Said::Unreachable(format!("through the proxy: {e}")),
        },
    };
    let connected = AsyncSmtpConnection::connect_with_transport(stream, &hello).await;
    let mut conn = match connected {
        Ok(conn) => conn,
        Err(e) if e.is_permanent() => {
            return probe(Deliverability::Unknown, "blocked", code_of(&e));
        }
        Err(e) => return Said::Unreachable(e.to_string()),
    };
    let from = settings.mail_from.parse::<Address>().ok();
    if let Err(e) = conn.command(Mail::new(from, vec![])).await {
        conn.abort().await;
        let reason = if e.is_permanent() {
            "blocked"
        } else {
            "tempfail"
        };
        return probe(Deliverability::Unknown, reason, code_of(&e));
    }
    let said = match conn.command(Rcpt::new(address.clone(), vec![])).await {
        Err(e) if e.is_transient() => Said::Greylisted(code_of(&e)),
        Err(e) if e.is_permanent() => probe(Deliverability::Undeliverable, "refused", code_of(&e)),
        Err(e) => Said::Unreachable(e.to_string()),
        Ok(accepted) => {
            let code = Some(u16::from(accepted.code()));
            // A local part nobody has: the catch-all question.
            let nobody = format!(
                "{}@{}",
                crate::engine::live::canary_name(),
                address.domain()
            )
            .parse::<Address>()
            .ok();
            match nobody {
                Some(nobody) => match conn.command(Rcpt::new(nobody, vec![])).await {
                    Ok(_) => probe(Deliverability::CatchAll, "accepts any address", code),
                    Err(_) => probe(Deliverability::Deliverable, "accepted", code),
                },
                None => probe(Deliverability::Deliverable, "accepted", code),
            }
        }
    };
    let _ = conn.quit().await;
    said
}

/// Asks the exchangers (`hosts`: name and address, best first) about
/// `address`; the first that holds a conversation answers.
pub async fn probe(settings: &ProbeSettings, hosts: &[(String, IpAddr)], address: &str) -> Probe {
    let unknown = |reason: String, code, host: &str| Probe {
        status: Deliverability::Unknown,
        reason,
        code,
        host: host.to_owned(),
    };
    let Ok(address) = address.parse::<Address>() else {
        return unknown("not an address SMTP can name".into(), None, "");
    };
    let mut last = unknown("no mail exchanger".into(), None, "");
    for (name, ip) in hosts.iter().take(MAX_ADDRESSES) {
        let mut retries = 0;
        loop {
            let said =
                tokio::time::timeout(settings.timeout, converse(settings, (name, *ip), &address))
                    .await
                    .unwrap_or_else(|_| Said::Unreachable("timeout".into()));
            match said {
                Said::Probe(p) => return p,
                Said::Greylisted(_) if retries < settings.greylist_retries => {
                    retries += 1;
                    tokio::time::sleep(settings.greylist_wait).await;
                }
                Said::Greylisted(code) => return unknown("greylisted".into(), code, name),
                Said::Unreachable(why) => {
                    last = unknown(
                        if why.contains("timed out") || why == "timeout" {
                            "timeout".into()
                        } else {
                            format!("unreachable: {why}")
                        },
                        None,
                        name,
                    );
                    break;
                }
            }
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn exchanger() -> (
        SocketAddr,
        Arc<std::sync::Mutex<exchanger::Seen>>,
        exchanger::Exchanger,
    ) {
        let running = exchanger::start(&["alice"]).await.unwrap();
        (running.addr, running.seen.clone(), running)
    }

    fn settings(port: u16) -> ProbeSettings {
        ProbeSettings {
            helo_name: "probe.enrichd.test".into(),
            mail_from: "verify@enrichd.test".into(),
            port,
            timeout: Duration::from_secs(5),
            greylist_wait: Duration::from_millis(20),
            greylist_retries: 1,
            proxy: None,
        }
    }

    /// A SOCKS5 proxy on loopback (no authentication, CONNECT to an IPv4
    /// address only, RFC 1928) that notes where it was asked to connect.
    async fn socks_proxy() -> (SocketAddr, Arc<std::sync::Mutex<Vec<SocketAddr>>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
        let noted = asked.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let noted = noted.clone();
                tokio::spawn(async move {
                    let mut hello = [0u8; 2];
                    client.read_exact(&mut hello).await.ok()?;
                    let mut methods = vec![0u8; usize::from(hello[1])];
                    client.read_exact(&mut methods).await.ok()?;
                    client.write_all(&[5, 0]).await.ok()?;
                    let mut head = [0u8; 4];
                    client.read_exact(&mut head).await.ok()?;
                    if head[1] != 1 || head[3] != 1 {
                        return None;
                    }
                    let mut target = [0u8; 6];
                    client.read_exact(&mut target).await.ok()?;
                    let ip = std::net::Ipv4Addr::new(target[0], target[1], target[2], target[3]);
                    let to = SocketAddr::from((ip, u16::from_be_bytes([target[4], target[5]])));
                    noted.lock().unwrap().push(to);
                    let mut upstream = tokio::net::TcpStream::connect(to).await.ok()?;
                    client
                        .write_all(&[5, 0, 0, 1, 127, 0, 0, 1, 0, 0])
                        .await
                        .ok()?;
                    tokio::io::copy_bidirectional(&mut client, &mut upstream)
                        .await
                        .ok()
                });
            }
        });
        (addr, asked)
    }

    #[tokio::test]
    async fn through_a_socks5_proxy_the_exchanger_is_reached_by_the_proxy() {
        let (addr, seen, _running) = exchanger().await;
        let (proxy, asked) = socks_proxy().await;
        let mut s = settings(addr.port());
        s.proxy = Some(Proxy::parse(&format!("socks5://{proxy}")).unwrap());
        let hosts = vec![("mx.test".to_owned(), addr.ip())];
        let p = probe(&s, &hosts, "alice@example.test").await;
        assert_eq!(p.status, Deliverability::Deliverable, "{p:?}");
        assert_eq!(*asked.lock().unwrap(), vec![addr], "the proxy connected");
        assert_eq!(seen.lock().unwrap().connections, 1);

        // A proxy that is not there: unknown, and the exchanger not asked
        // directly.
        let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gone = dead.local_addr().unwrap();
        drop(dead);
        s.proxy = Some(Proxy::parse(&format!("socks5://{gone}")).unwrap());
        let p = probe(&s, &hosts, "alice@example.test").await;
        assert_eq!(p.status, Deliverability::Unknown);
        assert!(p.reason.contains("through the proxy"), "{p:?}");
        assert_eq!(
            seen.lock().unwrap().connections,
            1,
            "never around the proxy"
        );
    }

    #[test]
    fn a_proxy_is_a_socks5_url_and_its_password_is_never_shown() {
        let url = "socks5://probe:s3cr%40t@proxy.internal:1080";
        let p = Proxy::parse(url).unwrap();
        assert_eq!(p.login, Some(("probe".into(), "s3cr@t".into())));
        assert!(!format!("{p:?}").contains("s3cr"));
        let configured = SmtpConfig {
            proxy: Some(url.into()),
            ..SmtpConfig::default()
        };
        let shown = format!("{configured:?}");
        assert!(
            shown.contains("proxy.internal") && !shown.contains("s3cr"),
            "{shown}"
        );
        for bad in ["http://proxy:8080", "socks5://proxy", "proxy:1080"] {
            assert!(Proxy::parse(bad).is_err(), "{bad}");
        }
        let config = SmtpConfig {
            proxy: Some("http://proxy:8080".into()),
            ..SmtpConfig::default()
        };
        assert!(
            config
                .problems()
                .iter()
                .any(|p| p.starts_with("smtp.proxy: the scheme must be socks5")),
            "{:?}",
            config.problems()
        );
    }

    #[tokio::test]
    async fn the_four_outcomes_a_greylisted_address_asked_again_and_never_data() {
        let (addr, seen, _running) = exchanger().await;
        let s = settings(addr.port());
        let hosts = vec![("mx.test".to_owned(), addr.ip())];
        let status = |p: &Probe| (p.status, p.reason.clone(), p.code);
        let alice = probe(&s, &hosts, "alice@example.test").await;
        assert_eq!(
            status(&alice),
            (Deliverability::Deliverable, "accepted".into(), Some(250))
        );
        let nobody = probe(&s, &hosts, "nobody@example.test").await;
        assert_eq!(
            status(&nobody),
            (Deliverability::Undeliverable, "refused".into(), Some(550))
        );
        let any = probe(&s, &hosts, "whoever@catchall.test").await;
        assert_eq!(any.status, Deliverability::CatchAll);
        let grey = probe(&s, &hosts, "grey@example.test").await;
        assert_eq!(grey.status, Deliverability::Deliverable, "{grey:?}");
        assert_eq!(
            seen.lock().unwrap().tries["grey@example.test"],
            2,
            "asked again"
        );
        let mut once = s.clone();
        once.greylist_retries = 0;
        let still = probe(&once, &hosts, "grey@other.test").await;
        assert_eq!(
            status(&still),
            (Deliverability::Unknown, "greylisted".into(), Some(451))
        );
        assert_eq!(seen.lock().unwrap().data, 0, "never DATA");
    }

    #[tokio::test]
    async fn what_an_exchanger_said_is_kept_for_the_person_until_erased() {
        let (addr, _, _running) = exchanger().await;
        let config = SmtpConfig {
            enabled: true,
            helo_name: "probe.enrichd.test".into(),
            mail_from: "verify@enrichd.test".into(),
            port: addr.port(),
            allow_private: true,
            never_probe: vec!["never.test".into()],
            ..SmtpConfig::default()
        };
        let prober = Prober::new(config, None);
        let exchangers = vec![("mx.test".to_owned(), vec![addr.ip()])];
        let (ann, bob) = ("a".repeat(64), "b".repeat(64));
        let said = prober
            .check(&ann, "alice@example.test", "example.test", &exchangers)
            .await;
        assert_eq!(said.status, Deliverability::Deliverable);
        assert_eq!(prober.known(&ann), Some(said));
        // An unknown (here: never probed) is not kept.
        let said = prober
            .check(&bob, "bob@never.test", "never.test", &exchangers)
            .await;
        assert_eq!(said.status, Deliverability::Unknown);
        assert_eq!(prober.known(&bob), None);
        prober.forget(&ann);
        assert_eq!(prober.known(&ann), None, "erased");

        // `result_ttl = "0s"`: nothing is kept.
        let never = Prober::new(
            SmtpConfig {
                result_ttl: Duration::ZERO,
                ..prober.config.clone()
            },
            None,
        );
        never
            .check(&ann, "alice@example.test", "example.test", &exchangers)
            .await;
        assert_eq!(never.known(&ann), None);
    }

    /// An exchanger that greets with one line that never ends, as fast as
    /// it can write, and counts what it got through.
    async fn babbler() -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = sent.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let counted = counted.clone();
                tokio::spawn(async move {
                    let chunk = [b'a'; 16 * 1024];
                    let mut next: &[u8] = b"220 ";
                    // Until the probe hangs up.
                    while client.write_all(next).await.is_ok() {
                        counted.fetch_add(next.len(), std::sync::atomic::Ordering::Relaxed);
                        next = &chunk;
                    }
                });
            }
        });
        (addr, sent)
    }

    #[tokio::test]
    async fn an_exchanger_that_never_ends_its_line_is_cut_off_at_the_bound() {
        let (addr, sent) = babbler().await;
        let mut s = settings(addr.port());
        // Long enough that, unbounded, the probe would still be reading
        // (and holding) the line when the bound below has long been passed.
        s.timeout = Duration::from_secs(30);
        let hosts = vec![("mx.test".to_owned(), addr.ip())];
        let p = probe(&s, &hosts, "alice@example.test").await;
        assert_eq!(p.status, Deliverability::Unknown);
        assert!(
            p.reason
                .contains("the exchanger sent more than 65536 bytes"),
            "{p:?}"
        );
        // What it wrote is what we read plus what the sockets buffer.
        let through = sent.load(std::sync::atomic::Ordering::Relaxed);
        assert!(through < 64 << 20, "{through} bytes went through");

        // Through the proxy, the same bound.
        let (proxy, _) = socks_proxy().await;
        s.proxy = Some(Proxy::parse(&format!("socks5://{proxy}")).unwrap());
        let p = probe(&s, &hosts, "alice@example.test").await;
        assert!(
            p.reason
                .contains("the exchanger sent more than 65536 bytes"),
            "{p:?}"
        );
    }

    #[tokio::test]
    async fn an_exchanger_that_does_not_answer_is_unknown_and_the_next_is_asked() {
        let (addr, _, _running) = exchanger().await;
        // Nothing listens on port 9 of 127.0.0.2's loopback range here
        // (refused at once); the second exchanger answers.
        let mut s = settings(addr.port());
        let dead: IpAddr = "127.0.0.2".parse().unwrap();
        let only_dead = vec![("dead.test".to_owned(), dead)];
        s.port = 9;
        let p = probe(&s, &only_dead, "alice@example.test").await;
        assert_eq!(p.status, Deliverability::Unknown);
        assert!(
            p.reason.starts_with("unreachable") || p.reason == "timeout",
            "{p:?}"
        );
        s.port = addr.port();
        let both = vec![
            ("dead.test".to_owned(), dead),
            ("mx.test".to_owned(), addr.ip()),
        ];
        // 127.0.0.2 at the live port: nothing listens there either.
        let p = probe(&s, &both, "alice@example.test").await;
        assert_eq!(
            (p.status, p.host.as_str()),
            (Deliverability::Deliverable, "mx.test")
        );
    }
}
