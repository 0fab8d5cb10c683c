//! A real authoritative DNS server (hickory-server) on loopback, and a UDP
//! gate in front of it that holds queries until a test releases them.
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use enrichd::sandbox::dns::{SandboxDns, serve};
use hickory_proto::rr::rdata::{A, MX, SOA};
use hickory_proto::rr::{Name, RData, Record};
use tokio::net::UdpSocket;

use super::Gate;

/// The zone `example.test.` (served by the same authoritative server the
/// sandbox runs):
/// - `example.test`: MX 20 mx2.example.test, MX 10 mx1.example.test
/// - `nomx.example.test`: an A record, no MX
/// - `nullmx.example.test`: MX 0 "." (RFC 7505)
/// - `many.example.test`: 40 MX, `mx1` to `mx40.many.example.test`,
///   preferences 40 down to 1
/// - anything else under example.test: NXDOMAIN
pub struct TestDns {
    pub addr: SocketAddr,
    _server: SandboxDns,
}

fn name(s: &str) -> Name {
    Name::from_str(s).unwrap()
}

pub async fn start() -> TestDns {
    let origin = name("example.test.");
    let soa = SOA::new(
        name("ns.example.test."),
        name("hostmaster.example.test."),
        1,
        3600,
        600,
        86400,
        60,
    );
    let records = vec![
        Record::from_rdata(origin.clone(), 60, RData::SOA(soa)),
        Record::from_rdata(
            origin.clone(),
            60,
            RData::MX(MX::new(20, name("mx2.example.test."))),
        ),
        Record::from_rdata(
            origin.clone(),
            60,
            RData::MX(MX::new(10, name("mx1.example.test."))),
        ),
        Record::from_rdata(
            name("nomx.example.test."),
            60,
            RData::A(A::new(192, 0, 2, 1)),
        ),
        Record::from_rdata(
            name("nullmx.example.test."),
            60,
            RData::MX(MX::new(0, Name::root())),
        ),
    ];
    let mut records = records;
    for n in 1..=40u16 {
        records.push(Record::from_rdata(
            name("many.example.test."),
            60,
            RData::MX(MX::new(41 - n, name(&format!("mx{n}.many.example.test.")))),
        ));
    }
    let server = serve(origin, records).await.unwrap();
    TestDns {
        addr: server.addr(),
        _server: server,
    }
}

/// A UDP socket that never answers: lookups against it time out.
pub async fn silent() -> (SocketAddr, UdpSocket) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    (socket.local_addr().unwrap(), socket)
}

/// Forwards each DNS query to `upstream` only after the test releases it,
/// so a call can be held in flight deterministically. `gate.arrived` is
/// notified when a query reaches the gate.
pub async fn gated(upstream: SocketAddr, gate: Gate) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                return;
            };
            gate.arrived.notify_one();
            gate.release.notified().await;
            relay(&socket, &buf[..n], peer, upstream).await;
        }
    });
    addr
}

/// Forwards each DNS query to `upstream` and counts them.
pub async fn counted(upstream: SocketAddr) -> (SocketAddr, Arc<AtomicUsize>) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let queries = Arc::new(AtomicUsize::new(0));
    let count = queries.clone();
    let socket = Arc::new(socket);
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
            count.fetch_add(1, Ordering::SeqCst);
            let (socket, query) = (socket.clone(), buf[..n].to_vec());
            tokio::spawn(async move { relay(&socket, &query, peer, upstream).await });
        }
    });
    (addr, queries)
}

/// Sends one query upstream and its answer back to `peer`.
async fn relay(socket: &UdpSocket, query: &[u8], peer: SocketAddr, upstream: SocketAddr) {
    let up = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    up.send_to(query, upstream).await.unwrap();
    let mut reply = vec![0u8; 4096];
    let (m, _) = up.recv_from(&mut reply).await.unwrap();
    let _ = socket.send_to(&reply[..m], peer).await;
}
