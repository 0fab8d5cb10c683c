//! Metrics as a layer around the Enrichment service: every unary call is
//! counted by method, caller and gRPC code, and timed, whatever handler
//! answers it, so a new RPC cannot forget them. The code is read where
//! gRPC puts it: the response's headers (a refusal) or its trailers (an
//! answer). A stream's items are counted one by one by the stream itself
//! (each is a call of its own to the batch caller).
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, RwLock};
use std::task::{Context, Poll};

use axum::http::{HeaderMap, Request, Response};
use bytes::Bytes;
use tonic::body::Body;
use tower::{Layer, Service};

use crate::auth::Caller;
use crate::clock::Stopwatch;
use crate::telemetry;

/// The unary methods, by the last segment of their path.
const UNARY: [&str; 4] = ["Enrich", "Erase", "Access", "ListSources"];

/// gRPC's codes, 0 to 16.
const CODES: usize = 17;

#[derive(Clone, Default)]
pub struct MeteredLayer {
    meters: Meters,
}

impl<S> Layer<S> for MeteredLayer {
    type Service = Metered<S>;

    fn layer(&self, inner: S) -> Metered<S> {
        Metered {
            inner,
            meters: self.meters.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Metered<S> {
    inner: S,
    meters: Meters,
}

/// The handles of the call metrics (`telemetry::record_call`'s), made on
/// first use and kept: `counter!` with labels builds its key, copies the
/// caller's name into it and looks it up in the recorder's registry on
/// every call. A server makes its layer after the recorder is installed
/// (`server.metrics_listen`), so no handle kept is the no-op one of a
/// process without metrics. Callers are the operator's keys and
/// certificates, as bounded as the label itself.
#[derive(Clone, Default)]
struct Meters {
    callers: Arc<RwLock<HashMap<String, Arc<CallerMeters>>>>,
    durations: Arc<[OnceLock<metrics::Histogram>; UNARY.len()]>,
}

/// One caller's counters, by method and code.
struct CallerMeters {
    name: String,
    counters: [[OnceLock<metrics::Counter>; CODES]; UNARY.len()],
}

impl Meters {
    fn of(&self, caller: &str) -> Arc<CallerMeters> {
        let known = self.callers.read().unwrap_or_else(|p| p.into_inner());
        if let Some(meters) = known.get(caller) {
            return meters.clone();
        }
        drop(known);
        let mut known = self.callers.write().unwrap_or_else(|p| p.into_inner());
        known
            .entry(caller.to_owned())
            .or_insert_with(|| {
                Arc::new(CallerMeters {
                    name: caller.to_owned(),
                    counters: Default::default(),
                })
            })
            .clone()
    }
}

impl<S: tonic::server::NamedService> tonic::server::NamedService for Metered<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> Service<Request<B>> for Metered<S>
where
    S: Service<Request<B>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let method = request
            .uri()
            .path()
            .rsplit('/')
            .next()
            .and_then(|m| UNARY.iter().position(|u| *u == m));
        let caller = request
            .extensions()
            .get::<Caller>()
            .map(|c| self.meters.of(&c.name));
        let durations = self.meters.durations.clone();
        let future = self.inner.call(request);
        Box::pin(async move {
            let started = Stopwatch::start();
            let response = future.await?;
            let (Some(method), Some(caller)) = (method, caller) else {
                return Ok(response);
            };
            let call = Call {
                method,
                caller,
                durations,
                started,
            };
            // A refusal comes as headers alone; an answer's code follows it.
            if let Some(code) = code_in(response.headers()) {
                call.record(code);
                return Ok(response);
            }
            Ok(response.map(|body| {
                Body::new(Trailed {
                    body,
                    call: Some(call),
                })
            }))
        })
    }
}

/// A call whose code is not known yet.
struct Call {
    /// Its place in `UNARY`.
    method: usize,
    caller: Arc<CallerMeters>,
    durations: Arc<[OnceLock<metrics::Histogram>; UNARY.len()]>,
    started: Stopwatch,
}

impl Call {
    /// What `telemetry::record_call` records, through the kept handles.
    fn record(self, code: tonic::Code) {
        let method = UNARY[self.method];
        let slot = (code as usize).min(CODES - 1);
        self.caller.counters[self.method][slot]
            .get_or_init(|| telemetry::call_counter(method, &self.caller.name, code))
            .increment(1);
        self.durations[self.method]
            .get_or_init(|| telemetry::call_duration(method))
            .record(self.started.elapsed().as_secs_f64());
    }
}

fn code_in(headers: &HeaderMap) -> Option<tonic::Code> {
    let value = headers.get("grpc-status")?.to_str().ok()?;
    Some(tonic::Code::from_i32(value.parse().ok()?))
}

/// An answer's body: its trailers carry the call's code. A body dropped
/// before them (the client went away) counts as CANCELLED.
struct Trailed {
    body: Body,
    call: Option<Call>,
}

impl http_body::Body for Trailed {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(trailers) = frame.trailers_ref()
            && let Some(code) = code_in(trailers)
            && let Some(call) = self.call.take()
        {
            call.record(code);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Trailed {
    fn drop(&mut self) {
        if let Some(call) = self.call.take() {
            call.record(tonic::Code::Cancelled);
        }
    }
}
