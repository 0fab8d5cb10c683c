//! Metrics as a layer around the Enrichment service: every unary call is
//! counted by method, caller and gRPC code, and timed, whatever handler
//! answers it, so a new RPC cannot forget them. The code is read where
//! gRPC puts it: the response's headers (a refusal) or its trailers (an
//! answer). A stream's items are counted one by one by the stream itself
//! (each is a call of its own to the batch caller).
use std::pin::Pin;
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

#[derive(Clone, Copy, Default)]
pub struct MeteredLayer;

impl<S> Layer<S> for MeteredLayer {
    type Service = Metered<S>;

    fn layer(&self, inner: S) -> Metered<S> {
        Metered { inner }
    }
}

#[derive(Clone)]
pub struct Metered<S> {
    inner: S,
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
            .and_then(|m| UNARY.iter().find(|u| **u == m).copied());
        let caller = request.extensions().get::<Caller>().map(|c| c.name.clone());
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
    method: &'static str,
    caller: String,
    started: Stopwatch,
}

impl Call {
    fn record(self, code: tonic::Code) {
        telemetry::record_call(self.method, &self.caller, self.started, code);
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
