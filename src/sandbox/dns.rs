//! The sandbox's DNS: an authoritative server (hickory-server) on loopback
//! that holds the whole namespace, so an MX check in sandbox mode never
//! leaves the process and answers the same on any network, or none.
//!
//! Its world:
//! - `example.com` and `example.org` (the sandbox people's domains) and the
//!   well-known providers a typo is measured against (gmail.com,
//!   outlook.com, hotmail.com, yahoo.com, icloud.com) and one disposable
//!   service (mailinator.com): each an MX.
//! - `catchall.example.com`: an MX at `mx.example.com`, whose exchanger
//!   takes any address there.
//! - `mx.example.com` and `mx.example.org`: 127.0.0.1, the sandbox's SMTP
//!   exchanger (the other providers' exchangers have no address: the SMTP
//!   check never leaves loopback).
//! - `example.net`: a null MX (RFC 7505), a domain that takes no mail.
//! - any other name (`gmial.com`, the look-alike `xn--exmple-4nf.com`, ...):
//!   NXDOMAIN.
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::rdata::{A, MX, SOA};
use hickory_proto::rr::{LowerName, Name, RData, Record};
use hickory_server::Server;
use hickory_server::net::runtime::TokioRuntimeProvider;
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};

/// Domains with mail exchangers, and their exchanger.
const MAIL_DOMAINS: [(&str, &str); 9] = [
    ("example.com.", "mx.example.com."),
    ("example.org.", "mx.example.org."),
    ("catchall.example.com.", "mx.example.com."),
    ("gmail.com.", "gmail-smtp-in.l.google.com."),
    ("outlook.com.", "outlook-com.olc.protection.outlook.com."),
    ("hotmail.com.", "hotmail-com.olc.protection.outlook.com."),
    ("yahoo.com.", "mta5.am0.yahoodns.net."),
    ("icloud.com.", "mx01.mail.icloud.com."),
    ("mailinator.com.", "mail.mailinator.com."),
];

/// The sandbox's own exchangers: on loopback, where its SMTP server is.
const LOOPBACK_EXCHANGERS: [&str; 2] = ["mx.example.com.", "mx.example.org."];

/// Seconds the sandbox's records may be kept.
const TTL: u32 = 3600;

/// The running server (it stops when this is dropped).
pub struct SandboxDns {
    addr: SocketAddr,
    _server: Server<Catalog>,
}

impl SandboxDns {
    /// Where it answers (UDP and TCP, the same port).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

fn name(s: &str) -> Name {
    Name::from_str(s).expect("a sandbox name parses")
}

/// The sandbox's records: every name it knows. Served as the root zone, so
/// every other name is NXDOMAIN.
fn world() -> Vec<Record> {
    let soa = SOA::new(
        name("ns.sandbox.invalid."),
        name("hostmaster.sandbox.invalid."),
        1,
        3600,
        600,
        86400,
        300,
    );
    let mut records = vec![Record::from_rdata(Name::root(), TTL, RData::SOA(soa))];
    records.extend(MAIL_DOMAINS.iter().map(|(domain, exchange)| {
        Record::from_rdata(name(domain), TTL, RData::MX(MX::new(10, name(exchange))))
    }));
    records.extend(
        LOOPBACK_EXCHANGERS.iter().map(|exchange| {
            Record::from_rdata(name(exchange), TTL, RData::A(A::new(127, 0, 0, 1)))
        }),
    );
    records.push(Record::from_rdata(
        name("example.net."),
        TTL,
        RData::MX(MX::new(0, Name::root())),
    ));
    records
}

/// Starts the sandbox's DNS on 127.0.0.1 (a free port, UDP and TCP).
pub async fn start() -> std::io::Result<SandboxDns> {
    serve(Name::root(), world()).await
}

/// An authoritative server on 127.0.0.1 (a free port, UDP and TCP) for the
/// zone `origin` holding `records` (its SOA among them): names under the
/// origin without records are NXDOMAIN.
pub async fn serve(origin: Name, records: Vec<Record>) -> std::io::Result<SandboxDns> {
    let mut zone = InMemoryZoneHandler::<TokioRuntimeProvider>::empty(
        origin.clone(),
        ZoneType::Primary,
        AxfrPolicy::Deny,
    );
    for record in records {
        let inserted = zone.upsert_mut(record, 1);
        debug_assert!(inserted, "a record is inserted once");
    }
    let mut catalog = Catalog::new();
    catalog.upsert(LowerName::new(&origin), vec![Arc::new(zone)]);
    let (udp, tcp) = bind_pair().await?;
    let addr = udp.local_addr()?;
    let mut server = Server::new(catalog);
    server.register_socket(udp);
    server.register_listener(tcp, Duration::from_secs(5), 16);
    Ok(SandboxDns {
        addr,
        _server: server,
    })
}

/// A UDP socket and a TCP listener on the same free loopback port (the
/// resolver asks one port over both). The UDP port may be taken for TCP by
/// another program, so a few ports are tried.
async fn bind_pair() -> std::io::Result<(tokio::net::UdpSocket, tokio::net::TcpListener)> {
    let mut tries = 0;
    loop {
        let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
        match tokio::net::TcpListener::bind(udp.local_addr()?).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if tries >= 20 => return Err(e),
            Err(_) => tries += 1,
        }
    }
}
