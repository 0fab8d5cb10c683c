//! The gRPC handlers: thin (map the request, call the pipeline, map the answer).
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::FuturesUnordered;
use futures::{Stream, StreamExt};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::{records, request, response, status};
use crate::auth::Caller;
use crate::compliance::policy;
use crate::config::BatchConfig;
use crate::error::{Error, FieldViolation};
use crate::pipeline::Enricher;
use crate::proto::v1 as pb;
use crate::telemetry;

pub use pb::enrichment_server::EnrichmentServer;

/// The `enrichd.v1.Enrichment` service.
#[derive(Clone)]
pub struct EnrichmentService {
    enricher: Arc<Enricher>,
    /// Source budget of a call that carries no grpc-timeout.
    budget: Duration,
    batch: BatchConfig,
}

impl EnrichmentService {
    pub fn new(enricher: Arc<Enricher>, budget: Duration) -> Self {
        Self {
            enricher,
            budget,
            batch: BatchConfig::default(),
        }
    }

    /// Settings of streamed (batch) enrichment.
    pub fn with_batch(mut self, batch: BatchConfig) -> Self {
        self.batch = batch;
        self
    }

    /// One enrichment: the unary RPC, and each item of a stream.
    pub async fn enrich_one(
        &self,
        request: pb::EnrichRequest,
        caller: Caller,
        deadline: tokio::time::Instant,
    ) -> Result<pb::EnrichResponse, Status> {
        let query = request::enrich_query(request, deadline, caller)?;
        let enrichment = self.enricher.enrich(query).await?;
        Ok(response::enrichment_to_proto(&enrichment))
    }

    /// A stream item's answer; its failure becomes the item's `error`.
    async fn stream_item(&self, request: pb::EnrichRequest, caller: Caller) -> pb::EnrichResponse {
        let started = Instant::now();
        let request_id = request.request_id.clone();
        let result = if request_id.trim().is_empty() {
            Err(Status::from(Error::InvalidArgument(vec![
                FieldViolation::new(
                    "request_id",
                    "is required on EnrichStream, to match answers to requests",
                ),
            ])))
        } else {
            // Batch callers wait for rate-limit slots, up to the batch deadline.
            let deadline = tokio::time::Instant::now() + self.batch.deadline;
            self.enrich_one(request, caller.clone(), deadline).await
        };
        let result = observed("EnrichStream", &caller, started, result);
        result.unwrap_or_else(|status| pb::EnrichResponse {
            request_id,
            error: Some(status::request_error(&status)),
            ..Default::default()
        })
    }

    /// Answers a stream of requests as each completes, with at most
    /// `batch.max_in_flight` in progress: when the reader is slow, the
    /// output buffer fills, no new request is read, and HTTP/2 flow control
    /// slows the sender. When the reader goes away, the work in progress is
    /// dropped, and with it its upstream requests.
    pub fn process_stream<S>(
        &self,
        mut inbound: S,
        caller: Caller,
    ) -> ReceiverStream<Result<pb::EnrichResponse, Status>>
    where
        S: Stream<Item = Result<pb::EnrichRequest, Status>> + Send + Unpin + 'static,
    {
        let (tx, rx) = tokio::sync::mpsc::channel(self.batch.buffer.max(1));
        let this = self.clone();
        tokio::spawn(async move {
            let max = this.batch.max_in_flight.max(1);
            let mut running = FuturesUnordered::new();
            let mut open = true;
            loop {
                tokio::select! {
                    biased;
                    Some(answer) = running.next(), if !running.is_empty() => {
                        if tx.send(Ok(answer)).await.is_err() {
                            return;
                        }
                    }
                    next = inbound.next(), if open && running.len() < max => match next {
                        Some(Ok(request)) => running.push(this.stream_item(request, caller.clone())),
                        Some(Err(status)) => {
                            let _ = tx.send(Err(status)).await;
                            return;
                        }
                        None => open = false,
                    },
                    else => return,
                }
            }
        });
        ReceiverStream::new(rx)
    }

    /// When the sources must have answered: the configured budget, or less
    /// when the caller's grpc-timeout is shorter, keeping a margin to
    /// assemble the answer (a partial answer beats DEADLINE_EXCEEDED).
    fn deadline(&self, metadata: &tonic::metadata::MetadataMap) -> tokio::time::Instant {
        let budget = metadata
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout)
            .map(|t| t.saturating_sub((t / 10).min(Duration::from_millis(250))))
            .map_or(self.budget, |t| t.min(self.budget));
        tokio::time::Instant::now() + budget
    }
}

/// The caller the auth layer admitted. A request that reached a handler
/// without one is refused: the handlers fail closed.
fn caller<T>(request: &Request<T>) -> Result<Caller, Status> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("no authenticated caller"))
}

/// `grpc-timeout`: up to 8 digits and a unit (H, M, S, m, u, n).
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

fn observed<T>(
    method: &'static str,
    caller: &Caller,
    started: Instant,
    result: Result<T, Status>,
) -> Result<T, Status> {
    let code = result
        .as_ref()
        .map_or_else(Status::code, |_| tonic::Code::Ok);
    telemetry::record_call(method, &caller.name, started, code);
    result
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<pb::EnrichResponse, Status>> + Send>>;

#[tonic::async_trait]
impl pb::enrichment_server::Enrichment for EnrichmentService {
    async fn enrich(
        &self,
        request: Request<pb::EnrichRequest>,
    ) -> Result<Response<pb::EnrichResponse>, Status> {
        let started = Instant::now();
        let caller = caller(&request)?;
        let deadline = self.deadline(request.metadata());
        let result = self
            .enrich_one(request.into_inner(), caller.clone(), deadline)
            .await
            .map(Response::new);
        observed("Enrich", &caller, started, result)
    }

    type EnrichStreamStream = ResponseStream;

    async fn enrich_stream(
        &self,
        request: Request<Streaming<pb::EnrichRequest>>,
    ) -> Result<Response<Self::EnrichStreamStream>, Status> {
        let caller = caller(&request)?;
        let inbound = request.into_inner();
        Ok(Response::new(Box::pin(
            self.process_stream(inbound, caller),
        )))
    }

    async fn erase(
        &self,
        request: Request<pb::EraseRequest>,
    ) -> Result<Response<pb::EraseResponse>, Status> {
        let started = Instant::now();
        let caller = caller(&request)?;
        let result = async {
            let (subject, kind) = request::erase_query(request.get_ref())?;
            let reference = &request.get_ref().reference;
            let erased = self
                .enricher
                .erase(
                    &caller,
                    &subject.identifier,
                    subject.region,
                    kind,
                    reference,
                )
                .await?;
            Ok::<_, Status>(Response::new(records::erased_to_proto(&erased)))
        }
        .await;
        observed("Erase", &caller, started, result)
    }

    async fn access(
        &self,
        request: Request<pb::AccessRequest>,
    ) -> Result<Response<pb::AccessResponse>, Status> {
        let started = Instant::now();
        let caller = caller(&request)?;
        let result = async {
            let subject = request::access_query(request.get_ref())?;
            let reference = &request.get_ref().reference;
            let report = self
                .enricher
                .access(&caller, &subject.identifier, subject.region, reference)
                .await?;
            Ok::<_, Status>(Response::new(records::access_to_proto(&report)))
        }
        .await;
        observed("Access", &caller, started, result)
    }

    async fn list_sources(
        &self,
        request: Request<pb::ListSourcesRequest>,
    ) -> Result<Response<pb::ListSourcesResponse>, Status> {
        let started = Instant::now();
        let caller = caller(&request)?;
        let purpose = request.into_inner().purpose;
        let result =
            policy::listed_sources(self.enricher.catalog(), self.enricher.purposes(), &purpose)
                .map(|sources| {
                    let sources = sources
                        .into_iter()
                        .map(|s| records::source_to_proto(s))
                        .collect();
                    Response::new(pb::ListSourcesResponse { sources })
                })
                .map_err(|v| Status::from(Error::InvalidArgument(vec![v])));
        observed("ListSources", &caller, started, result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse() {
        assert_eq!(parse_grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("123456789S"), None);
        assert_eq!(parse_grpc_timeout("5x"), None);
        assert_eq!(parse_grpc_timeout(""), None);
    }
}
