//! MX checks against a real DNS server on loopback.
use crate::common;

use std::time::Duration;

use enrichd::model::{MxHost, MxStatus};
use enrichd::reference::DomainLists;
use enrichd::verify::{DnsConfig, Verifier};

fn verifier(nameserver: std::net::SocketAddr, timeout: Duration) -> Verifier {
    Verifier::new(
        DomainLists::default(),
        &DnsConfig {
            enabled: true,
            nameservers: vec![nameserver],
            timeout,
        },
    )
    .unwrap()
}

#[tokio::test]
async fn mx_outcomes_follow_the_zone() {
    let dns = common::dns::start().await;
    let v = verifier(dns.addr, Duration::from_secs(5));

    let found = v.check_mx("example.test").await;
    assert_eq!(
        found.status,
        MxStatus::Found {
            hosts: vec![
                MxHost {
                    preference: 10,
                    exchange: "mx1.example.test".into()
                },
                MxHost {
                    preference: 20,
                    exchange: "mx2.example.test".into()
                },
            ]
        }
    );

    // A domain listing forty exchangers: the best ten are kept (and shown).
    match v.check_mx("many.example.test").await.status {
        MxStatus::Found { hosts } => {
            let kept: Vec<_> = hosts.iter().map(|h| h.preference).collect();
            assert_eq!(kept, (1..=10).collect::<Vec<u16>>());
            assert_eq!(hosts[0].exchange, "mx40.many.example.test");
        }
        other => panic!("many: expected found, got {other:?}"),
    }

    for (domain, needle) in [
        ("nomx.example.test", "no MX records"),
        ("missing.example.test", "NXDOMAIN"),
        ("nullmx.example.test", "null MX"),
    ] {
        match v.check_mx(domain).await.status {
            MxStatus::None { detail } => assert!(detail.contains(needle), "{domain}: {detail}"),
            other => panic!("{domain}: expected none, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn mx_answers_are_kept_per_domain_and_failures_are_not() {
    let dns = common::dns::start().await;
    let (addr, queries) = common::dns::counted(dns.addr).await;
    let v = verifier(addr, Duration::from_secs(5));
    // 20 concurrent checks of one domain, then 20 more: one query.
    let checks = futures::future::join_all((0..20).map(|_| v.check_mx("example.test"))).await;
    assert!(
        checks
            .iter()
            .all(|c| matches!(c.status, MxStatus::Found { .. }))
    );
    for _ in 0..20 {
        assert!(matches!(
            v.check_mx("example.test").await.status,
            MxStatus::Found { .. }
        ));
    }
    assert_eq!(queries.load(std::sync::atomic::Ordering::SeqCst), 1);
    // A domain without MX is kept too (a negative answer), once.
    for _ in 0..3 {
        assert!(matches!(
            v.check_mx("missing.example.test").await.status,
            MxStatus::None { .. }
        ));
    }
    assert_eq!(queries.load(std::sync::atomic::Ordering::SeqCst), 2);

    // A lookup that failed is asked again.
    let (silent, _socket) = common::dns::silent().await;
    let (addr, queries) = common::dns::counted(silent).await;
    let v = verifier(addr, Duration::from_millis(200));
    for _ in 0..2 {
        assert!(matches!(
            v.check_mx("example.test").await.status,
            MxStatus::Error { .. }
        ));
    }
    assert_eq!(queries.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_unanswered_lookup_is_an_error_within_the_timeout() {
    let (addr, _socket) = common::dns::silent().await;
    let v = verifier(addr, Duration::from_millis(300));
    let started = std::time::Instant::now();
    let check = v.check_mx("example.test").await;
    assert!(matches!(check.status, MxStatus::Error { .. }), "{check:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "bounded by the timeout"
    );
}

#[tokio::test]
async fn disabled_checks_are_skipped() {
    let v = Verifier::new(
        DomainLists::default(),
        &DnsConfig {
            enabled: false,
            nameservers: vec![],
            timeout: Duration::from_secs(1),
        },
    )
    .unwrap();
    assert_eq!(v.check_mx("example.test").await.status, MxStatus::Skipped);
}
