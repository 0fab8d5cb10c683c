//! Verification of the identifier itself: the checks a fraud team asks of an
//! email address or phone number before anything is looked up.
//!
//! Each check is a verb and its failure is a value in the answer: an MX lookup
//! that times out says `mx: error`, it never fails the request.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use enrichd_core::identity::{Email, PhoneNumber};
use enrichd_core::model::{EmailVerification, MxCheck, MxHost, MxStatus, PhoneVerification};
use enrichd_core::reference::DomainLists;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;

/// DNS settings for MX checks.
#[derive(Debug, Clone, eserde::Deserialize, serde::Serialize, PartialEq)]
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

/// Longest an MX answer is kept, whatever its TTL.
const MX_MAX_TTL: Duration = Duration::from_secs(3600);
/// How long "no such domain" and "no MX records" are kept.
const MX_NEGATIVE_TTL: Duration = Duration::from_secs(300);
/// Domains whose MX answers are kept at once.
const MX_CACHE_DOMAINS: u64 = 100_000;
/// Exchangers of one domain kept (and shown in answers), the best first.
const MX_HOSTS_KEPT: usize = 10;

/// An MX answer and how long it holds (its records' TTL, capped).
struct CachedMx {
    status: MxStatus,
    ttl: Duration,
}

struct MxExpiry;

impl moka::Expiry<String, Arc<CachedMx>> for MxExpiry {
    fn expire_after_create(
        &self,
        _: &String,
        value: &Arc<CachedMx>,
        _: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// What an address's domain says, whoever the address is: the same for
/// every address of the domain, so worked out once.
#[derive(Debug, Clone)]
struct DomainChecks {
    disposable: bool,
    free_provider: bool,
    did_you_mean: Option<String>,
    mixed_script: bool,
}

/// Domains whose checks are kept at once.
const DOMAIN_CHECKS_KEPT: u64 = 100_000;

/// Runs the verification checks. Built once per process.
#[derive(Clone)]
pub struct Verifier {
    lists: DomainLists,
    resolver: Option<TokioResolver>,
    timeout: Duration,
    /// MX answers per domain for their TTL (at most an hour): a CRM asking
    /// about the same company's contacts all day asks DNS once an hour.
    /// Concurrent checks of one domain share one lookup; failures are not
    /// kept. Domains, not people: nothing here names a person.
    mx_cache: moka::future::Cache<String, Arc<CachedMx>>,
    /// The domain checks (lists, typos, look-alikes: the look-alike check
    /// alone cost more than the rest of a cached enrichment), per domain.
    /// The lists are loaded once per process, so an entry never goes stale.
    domains: moka::sync::Cache<String, Arc<DomainChecks>>,
    /// SMTP probes of mailboxes, when `[smtp]` is on.
    smtp: Option<Arc<crate::smtp::Prober>>,
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
            mx_cache: moka::future::Cache::builder()
                .max_capacity(MX_CACHE_DOMAINS)
                .expire_after(MxExpiry)
                .build(),
            domains: moka::sync::Cache::new(DOMAIN_CHECKS_KEPT),
            smtp: None,
        })
    }

    /// The mailbox prober, when `[smtp]` is on (an erasure drops what it
    /// keeps of the person).
    pub fn prober(&self) -> Option<Arc<crate::smtp::Prober>> {
        self.smtp.clone()
    }

    /// Probes mailboxes over SMTP as `config` says (when it is on), with
    /// the per-domain budget shared through `cluster` when there is one.
    pub fn with_smtp(
        mut self,
        config: &crate::smtp::SmtpConfig,
        cluster: Option<Arc<crate::cluster::Cluster>>,
    ) -> Self {
        self.smtp = config
            .enabled
            .then(|| Arc::new(crate::smtp::Prober::new(config.clone(), cluster)));
        self
    }

    /// The checks of an address. It parsed (an `Email` is valid by
    /// construction; one that does not parse is refused before this stage).
    /// A mailbox probe still under way at `deadline` (the call's, as the
    /// sources') ends there as unknown: the answer comes without it.
    /// What an exchanger said of the address within `smtp.result_ttl` is
    /// given again (`subject`: the person's keyed hash), without asking.
    pub async fn check_email(
        &self,
        email: &Email,
        subject: &str,
        deadline: tokio::time::Instant,
    ) -> EmailVerification {
        let domain = self.check_domain(email);
        let mx = self.check_mx(email.domain()).await;
        let known = self.smtp.as_ref().and_then(|prober| prober.known(subject));
        let smtp = match (&self.smtp, &self.resolver, &mx.status) {
            (Some(_), Some(_), MxStatus::Found { .. }) if known.is_some() => known,
            (Some(prober), Some(resolver), MxStatus::Found { hosts }) => {
                let probe = async {
                    // The best few, looked up together: a domain listing a
                    // thousand exchangers gets as many lookups as one listing five.
                    let looked = futures::future::join_all(
                        hosts
                            .iter()
                            .take(crate::smtp::MAX_EXCHANGERS)
                            .map(|host| async move {
                                let name = host.exchange.as_str();
                                let ips =
                                    tokio::time::timeout(self.timeout, resolver.lookup_ip(name))
                                        .await;
                                (host.exchange.clone(), ips)
                            }),
                    )
                    .await;
                    let exchangers: Vec<_> = looked
                        .into_iter()
                        .filter_map(|(name, ips)| Some((name, ips.ok()?.ok()?.iter().collect())))
                        .collect();
                    prober
                        .check(subject, &email.address(), email.domain(), &exchangers)
                        .await
                };
                Some(
                    tokio::time::timeout_at(deadline, probe)
                        .await
                        .unwrap_or_else(|_| crate::smtp::Probe {
                            status: crate::smtp::Deliverability::Unknown,
                            reason: "timeout: the call's time ran out first".into(),
                            code: None,
                            host: String::new(),
                        }),
                )
            }
            _ => None,
        };
        EmailVerification {
            syntax_valid: true,
            disposable: domain.disposable,
            free_provider: domain.free_provider,
            role_account: self.lists.is_role_account(&email.local_base()),
            mx,
            did_you_mean: domain.did_you_mean.clone(),
            mixed_script: domain.mixed_script,
            smtp,
        }
    }

    fn check_domain(&self, email: &Email) -> Arc<DomainChecks> {
        self.domains.get_with_by_ref(email.domain(), || {
            let unicode = email.domain_unicode();
            let free_provider = self.lists.is_free_provider(email.domain());
            Arc::new(DomainChecks {
                disposable: self.lists.is_disposable(email.domain()),
                free_provider,
                // A listed provider (mail.com, yahoo.gr) is where it means
                // to be, however near another one its name is.
                did_you_mean: (!free_provider)
                    .then(|| enrichd_core::identity::lookalike::meant(unicode))
                    .flatten()
                    .map(str::to_owned),
                mixed_script: enrichd_core::identity::lookalike::mixed_script(unicode),
            })
        })
    }

    pub fn check_phone(&self, phone: &PhoneNumber) -> PhoneVerification {
        PhoneVerification {
            valid: phone.is_valid(),
            number_type: phone.number_type(),
            region: phone.region().map(str::to_owned),
        }
    }

    /// The domain's mail exchangers: from the MX cache, or looked up,
    /// bounded by the configured timeout.
    pub async fn check_mx(&self, ascii_domain: &str) -> MxCheck {
        let started = enrichd_core::clock::Stopwatch::start();
        let Some(resolver) = &self.resolver else {
            return MxCheck {
                status: MxStatus::Skipped,
                latency: Duration::ZERO,
            };
        };
        let looked = self
            .mx_cache
            .try_get_with(ascii_domain.to_owned(), async {
                let (status, ttl) = self.lookup_mx(resolver, ascii_domain).await;
                match ttl {
                    Some(ttl) => Ok(Arc::new(CachedMx { status, ttl })),
                    None => Err(status),
                }
            })
            .await;
        let status = match looked {
            Ok(cached) => cached.status.clone(),
            Err(failed) => (*failed).clone(),
        };
        MxCheck {
            status,
            latency: started.elapsed(),
        }
    }

    /// One MX lookup, and how long its answer may be kept (`None`: not at all).
    async fn lookup_mx(
        &self,
        resolver: &TokioResolver,
        ascii_domain: &str,
    ) -> (MxStatus, Option<Duration>) {
        // Fully qualified: no search-domain suffixes are tried.
        let fqdn = format!("{ascii_domain}.");
        let negative = |detail: &str| {
            let status = MxStatus::None {
                detail: detail.into(),
            };
            (status, Some(MX_NEGATIVE_TTL))
        };
        match tokio::time::timeout(self.timeout, resolver.mx_lookup(fqdn)).await {
            Err(_) => {
                let detail = format!("timed out after {:?}", self.timeout);
                (MxStatus::Error { detail }, None)
            }
            Ok(Err(e)) if e.is_nx_domain() => negative("the domain does not exist (NXDOMAIN)"),
            Ok(Err(e)) if e.is_no_records_found() => negative("the domain has no MX records"),
            Ok(Err(e)) => (
                MxStatus::Error {
                    detail: e.to_string(),
                },
                None,
            ),
            Ok(Ok(lookup)) => {
                let ttl = lookup
                    .valid_until()
                    .saturating_duration_since(tokio::time::Instant::now().into_std())
                    .min(MX_MAX_TTL);
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
                // The best few: a domain may list thousands (a DNS answer
                // over TCP holds 64 KiB), and every answer carries them and
                // the per-domain cache keeps them.
                hosts.truncate(MX_HOSTS_KEPT);
                // RFC 7505: a single MX of "." means the domain accepts no mail.
                let status = if hosts.is_empty() {
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
                };
                (status, Some(ttl))
            }
        }
    }
}
