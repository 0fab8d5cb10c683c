//! Verification of the identifier itself: the checks a fraud team asks of an
//! email address or phone number before anything is looked up.
//!
//! Each check is a verb and its failure is a value in the answer: an MX lookup
//! that times out says `mx: error`, it never fails the request.
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::identity::{Email, PhoneNumber};
use crate::model::{EmailVerification, MxCheck, MxHost, MxStatus, PhoneVerification};
use crate::reference::DomainLists;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;

/// DNS settings for MX checks.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, PartialEq)]
pub struct DnsConfig {
    /// Look up MX records at all.
    pub enabled: bool,
    /// Name servers to ask ("1.1.1.1:53"); empty: the system's resolv.conf.
    pub nameservers: Vec<SocketAddr>,
    /// Bound on one MX check, all attempts included.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot set up the DNS resolver: {0}")]
pub struct ResolverError(String);

/// Runs the verification checks. Built once per process.
#[derive(Clone)]
pub struct Verifier {
    lists: DomainLists,
    resolver: Option<TokioResolver>,
    timeout: Duration,
}

impl Verifier {
    pub fn new(lists: DomainLists, dns: &DnsConfig) -> Result<Self, ResolverError> {
        let resolver = if dns.enabled {
            let mut builder = if dns.nameservers.is_empty() {
                TokioResolver::builder_tokio().map_err(|e| ResolverError(e.to_string()))?
            } else {
                let servers = dns
                    .nameservers
                    .iter()
                    .map(|addr| {
                        let mut udp = ConnectionConfig::udp();
                        udp.port = addr.port();
                        let mut tcp = ConnectionConfig::tcp();
                        tcp.port = addr.port();
                        NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
                    })
                    .collect();
                TokioResolver::builder_with_config(
                    ResolverConfig::from_name_servers(servers),
                    TokioRuntimeProvider::default(),
                )
            };
            let opts = builder.options_mut();
            opts.timeout = dns.timeout;
            opts.attempts = 1;
            Some(builder.build().map_err(|e| ResolverError(e.to_string()))?)
        } else {
            None
        };
        Ok(Self {
            lists,
            resolver,
            timeout: dns.timeout,
        })
    }

    /// The checks of an address. It parsed (an `Email` is valid by
    /// construction; one that does not parse is refused before this stage).
    pub async fn check_email(&self, email: &Email) -> EmailVerification {
        EmailVerification {
            syntax_valid: true,
            disposable: self.lists.is_disposable(email.domain()),
            free_provider: self.lists.is_free_provider(email.domain()),
            role_account: self.lists.is_role_account(&email.local_base()),
            mx: self.check_mx(email.domain()).await,
        }
    }

    pub fn check_phone(&self, phone: &PhoneNumber) -> PhoneVerification {
        PhoneVerification {
            valid: phone.is_valid(),
            number_type: phone.number_type(),
            region: phone.region().map(str::to_owned),
        }
    }

    /// Looks up the domain's mail exchangers, bounded by the configured timeout.
    pub async fn check_mx(&self, ascii_domain: &str) -> MxCheck {
        let started = Instant::now();
        let Some(resolver) = &self.resolver else {
            return MxCheck {
                status: MxStatus::Skipped,
                latency: Duration::ZERO,
            };
        };
        // Fully qualified: no search-domain suffixes are tried.
        let fqdn = format!("{ascii_domain}.");
        let status = match tokio::time::timeout(self.timeout, resolver.mx_lookup(fqdn)).await {
            Err(_) => MxStatus::Error {
                detail: format!("timed out after {:?}", self.timeout),
            },
            Ok(Err(e)) if e.is_nx_domain() => MxStatus::None {
                detail: "the domain does not exist (NXDOMAIN)".into(),
            },
            Ok(Err(e)) if e.is_no_records_found() => MxStatus::None {
                detail: "the domain has no MX records".into(),
            },
            Ok(Err(e)) => MxStatus::Error {
                detail: e.to_string(),
            },
            Ok(Ok(lookup)) => {
                let mut hosts: Vec<MxHost> = lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::MX(mx) => Some(MxHost {
                            preference: mx.preference,
                            exchange: mx.exchange.to_ascii().trim_end_matches('.').to_owned(),
                        }),
                        _ => None,
                    })
                    .collect();
                hosts.sort_by(|a, b| (a.preference, &a.exchange).cmp(&(b.preference, &b.exchange)));
                // RFC 7505: a single MX of "." means the domain accepts no mail.
                if hosts.is_empty() {
                    MxStatus::None {
                        detail: "the domain has no MX records".into(),
                    }
                } else if hosts.iter().all(|h| h.exchange.is_empty()) {
                    MxStatus::None {
                        detail: "the domain publishes a null MX (RFC 7505): it accepts no mail"
                            .into(),
                    }
                } else {
                    MxStatus::Found { hosts }
                }
            }
        };
        MxCheck {
            status,
            latency: started.elapsed(),
        }
    }
}
