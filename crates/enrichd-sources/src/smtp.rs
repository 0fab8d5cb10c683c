//! Mailbox deliverability by SMTP, as check-if-email-exists does it: to the
//! domain's mail exchanger, EHLO, MAIL FROM, RCPT TO the address, RCPT TO a
//! random address of the same domain (a server that takes that takes
//! anything: a catch-all), QUIT. Never DATA: no mail is ever sent. A
//! greylisting server (a 4xx on RCPT) is asked again after a pause rather
//! than read as a refusal.
//!
//! The verifier (`verify`) resolves the exchangers, keeps to the per-domain
//! budget and caches what was said; this module holds the conversation.
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use lettre::Address;
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::commands::{Mail, Rcpt};
use lettre::transport::smtp::extension::ClientId;

/// `[smtp]` settings. Off by default: a probe talks to the person's mail
/// provider, and many clouds block port 25.
#[derive(Debug, Clone, PartialEq, serde::Serialize, eserde::Deserialize)]
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
    /// Probes of one domain a minute (this process).
    #[serde(default = "per_domain")]
    pub per_domain_per_minute: u32,
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
        }
    }
}

/// Probes within their limits: the never-probe list, a budget per domain,
/// public exchangers only unless allowed.
pub struct Prober {
    config: SmtpConfig,
    per_domain: governor::DefaultKeyedRateLimiter<String>,
}

impl Prober {
    pub fn new(config: SmtpConfig) -> Self {
        let rate = std::num::NonZeroU32::new(config.per_domain_per_minute)
            .unwrap_or(std::num::NonZeroU32::MIN);
        Self {
            per_domain: governor::RateLimiter::keyed(governor::Quota::per_minute(rate)),
            config,
        }
    }

    /// What the domain's exchangers (`exchangers`: name and addresses,
    /// best first) say of `address`.
    pub async fn check(
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
            return unknown("no exchanger it may ask (none public)");
        }
        if self.per_domain.check_key(&domain).is_err() {
            return unknown("over the domain's probe budget (smtp.per_domain_per_minute)");
        }
        probe(&self.config.settings(), &hosts, address).await
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
    let mut conn =
        match AsyncSmtpConnection::connect_tokio1(at, Some(settings.timeout), &hello, None, None)
            .await
        {
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
    for (name, ip) in hosts {
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

/// A loopback SMTP exchanger for tests: `alice@` exists, `grey@` is
/// greylisted once, any address at a domain starting with `catchall.` is
/// taken, everything else is refused; it counts connections and DATA.
#[doc(hidden)]
pub mod exchanger {
    use std::collections::HashMap;
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    /// What the exchanger saw.
    #[derive(Default)]
    pub struct Seen {
        pub connections: usize,
        pub data: usize,
        /// RCPT TO per address.
        pub tries: HashMap<String, usize>,
    }

    fn reply(line: &str, seen: &Mutex<Seen>) -> &'static [u8] {
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("EHLO") {
            b"250-mx.test\r\n250 8BITMIME\r\n"
        } else if upper.starts_with("MAIL FROM") {
            b"250 2.1.0 OK\r\n"
        } else if upper.starts_with("RCPT TO") {
            let to = line[8..].trim().trim_matches(['<', '>']).to_lowercase();
            let tries = {
                let mut seen = seen.lock().expect("not poisoned");
                let n = seen.tries.entry(to.clone()).or_default();
                *n += 1;
                *n
            };
            let domain = to.rsplit('@').next().unwrap_or_default();
            if domain.starts_with("catchall.") || to.starts_with("alice@") {
                b"250 2.1.5 OK\r\n"
            } else if to.starts_with("grey@") && tries == 1 {
                b"451 4.7.1 greylisted, try again later\r\n"
            } else if to.starts_with("grey@") {
                b"250 2.1.5 OK\r\n"
            } else {
                b"550 5.1.1 no such user\r\n"
            }
        } else if upper.starts_with("DATA") {
            seen.lock().expect("not poisoned").data += 1;
            b"554 no\r\n"
        } else {
            b"502 unknown\r\n"
        }
    }

    /// Starts one on 127.0.0.1.
    pub async fn start() -> (SocketAddr, Arc<Mutex<Seen>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let addr = listener.local_addr().expect("bound");
        let seen = Arc::new(Mutex::new(Seen::default()));
        let shared = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                shared.lock().expect("not poisoned").connections += 1;
                let seen = shared.clone();
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut lines = BufReader::new(read).lines();
                    if write.write_all(b"220 mx.test ESMTP\r\n").await.is_err() {
                        return;
                    }
                    while let Ok(Some(line)) = lines.next_line().await {
                        if line.to_ascii_uppercase().starts_with("QUIT") {
                            let _ = write.write_all(b"221 bye\r\n").await;
                            return;
                        }
                        if write.write_all(reply(&line, &seen)).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (addr, seen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::exchanger::start as exchanger;

    fn settings(port: u16) -> ProbeSettings {
        ProbeSettings {
            helo_name: "probe.enrichd.test".into(),
            mail_from: "verify@enrichd.test".into(),
            port,
            timeout: Duration::from_secs(5),
            greylist_wait: Duration::from_millis(20),
            greylist_retries: 1,
        }
    }

    #[tokio::test]
    async fn the_four_outcomes_a_greylisted_address_asked_again_and_never_data() {
        let (addr, seen) = exchanger().await;
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
    async fn an_exchanger_that_does_not_answer_is_unknown_and_the_next_is_asked() {
        let (addr, _) = exchanger().await;
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
