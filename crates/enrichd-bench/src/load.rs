//! The load generator: requests encoded once, answers counted by their
//! bytes without decoding (as h2load does), so it costs the same whatever
//! the method.
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::fixtures::request;
use crate::percentile;
use tonic::transport::Channel;
/// What a load run calls.
#[derive(Clone, Copy)]
pub(crate) enum Call {
    /// Enrich for one person (every source cached after the first call).
    Enrich(&'static str),
    /// grpc.health.v1.Health/Check on the same server: the transport's ceiling.
    Health,
}

impl Call {
    /// The method's path and its request, encoded once.
    fn wire(self) -> (&'static str, bytes::Bytes) {
        match self {
            Call::Enrich(email) => (
                "/enrichd.v1.Enrichment/Enrich",
                prost::Message::encode_to_vec(&request(email)).into(),
            ),
            Call::Health => (
                "/grpc.health.v1.Health/Check",
                prost::Message::encode_to_vec(&tonic_health::pb::HealthCheckRequest::default())
                    .into(),
            ),
        }
    }
}

/// The load generator's codec, as h2load works: requests are bytes encoded
/// once, answers are counted, never decoded, so generating the load costs
/// the same whatever the method and the size of its answer, and the ratio
/// is the server's alone.
#[derive(Clone, Copy, Default)]
pub(crate) struct Raw;

impl tonic::codec::Codec for Raw {
    type Encode = bytes::Bytes;
    type Decode = usize;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl tonic::codec::Encoder for Raw {
    type Item = bytes::Bytes;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: bytes::Bytes,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        bytes::BufMut::put(dst, item);
        Ok(())
    }
}

impl tonic::codec::Decoder for Raw {
    type Item = usize;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<usize>, tonic::Status> {
        let n = bytes::Buf::remaining(src);
        bytes::Buf::advance(src, n);
        Ok(Some(n))
    }
}

/// CPU time this process has used (user and system, all threads), from
/// /proc/self/stat in clock ticks (100 a second on Linux).
pub(crate) fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the command name (which may hold spaces).
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
            Some(ticks / 100.0)
        })
        .unwrap_or(0.0)
}

/// What one load run measured.
pub(crate) struct Run {
    pub(crate) rps: f64,
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
    /// CPU time of the whole process (server and load generator) per call,
    /// in microseconds: less at the mercy of a shared machine's neighbours
    /// than calls per second.
    pub(crate) cpu_us: f64,
}

/// `clients` loops calling `call` for `seconds`, each as fast as it can or,
/// with `rate`, paced so that all together send `rate` calls a second.
pub(crate) async fn load(
    addr: SocketAddr,
    clients: usize,
    seconds: u64,
    call: Call,
    rate: Option<f64>,
) -> Run {
    let slice = slice(addr, clients, Duration::from_secs(seconds), call, rate).await;
    Run::of(&[slice])
}

/// Two servers under the same load in turn, a second each, for `seconds`
/// each in all: a shared machine's speed drifts from second to second, and
/// alternating makes the drift fall on both alike, so their ratio is the
/// servers' own (a run of one after the other moved it by a third).
pub(crate) async fn alternate(
    a: SocketAddr,
    b: SocketAddr,
    clients: usize,
    seconds: u64,
    call: Call,
) -> (Run, Run) {
    let (mut of_a, mut of_b) = (Vec::new(), Vec::new());
    for _ in 0..seconds.max(1) {
        of_a.push(slice(a, clients, Duration::from_secs(1), call, None).await);
        of_b.push(slice(b, clients, Duration::from_secs(1), call, None).await);
    }
    (Run::of(&of_a), Run::of(&of_b))
}

/// What one stretch of load measured: each call's latency, the stretch's
/// length and the process's CPU time over it.
struct Slice {
    latencies: Vec<Duration>,
    secs: f64,
    cpu: f64,
}

impl Run {
    fn of(slices: &[Slice]) -> Self {
        let mut all: Vec<Duration> = slices
            .iter()
            .flat_map(|s| s.latencies.iter().copied())
            .collect();
        all.sort();
        let secs: f64 = slices.iter().map(|s| s.secs).sum();
        let cpu: f64 = slices.iter().map(|s| s.cpu).sum();
        Run {
            rps: all.len() as f64 / secs,
            p50: percentile(&all, 0.5),
            p99: percentile(&all, 0.99),
            cpu_us: cpu * 1e6 / all.len().max(1) as f64,
        }
    }
}

async fn slice(
    addr: SocketAddr,
    clients: usize,
    length: Duration,
    call: Call,
    rate: Option<f64>,
) -> Slice {
    let until = Instant::now() + length;
    let (path, body) = call.wire();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(path);
    let mut tasks = Vec::new();
    for n in 0..clients {
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut grpc = tonic::client::Grpc::new(channel);
        let every = rate.map(|r| Duration::from_secs_f64(clients as f64 / r));
        let (path, body) = (path.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut next =
                Instant::now() + every.map_or(Duration::ZERO, |e| e * n as u32 / clients as u32);
            while Instant::now() < until {
                if let Some(every) = every {
                    tokio::time::sleep_until(next.into()).await;
                    next += every;
                }
                let t = Instant::now();
                grpc.ready().await.unwrap();
                let answer = grpc
                    .unary(tonic::Request::new(body.clone()), path.clone(), Raw)
                    .await
                    .unwrap();
                assert!(*answer.get_ref() > 0, "an empty answer");
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let started = Instant::now();
    let cpu = cpu_seconds();
    let mut latencies: Vec<Duration> = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    Slice {
        latencies,
        secs: started.elapsed().as_secs_f64().max(length.as_secs_f64()),
        cpu: cpu_seconds() - cpu,
    }
}
