//! The gRPC handlers: thin (map the request, call the pipeline, map the answer).
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::FuturesUnordered;
use futures::{Stream, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::{records, request, response, status};
use crate::api::status::to_status;
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
    stream_limits: Option<StreamLimits>,
}

/// Bounds of a stream served to a remote caller (none in process).
#[derive(Debug, Clone, Copy)]
pub struct StreamLimits {
    /// Ends a stream with nothing in progress that receives no request for
    /// this long, and one whose reader takes no answer for this long.
    pub idle: Duration,
    /// Ends any stream this long after it opened.
    pub max_duration: Duration,
}

/// A call's admission permit, put in its request's extensions by the
/// server's admission layer. Handlers that keep working after they return
/// (streams) hold a clone as long; more permits for a stream's parallel
/// work come from `pool`.
#[derive(Clone)]
pub struct Admitted {
    /// What the call holds of the pool (a permit, its caller's share),
    /// given back when the last clone is dropped.
    pub permit: Arc<dyn Send + Sync>,
    pub pool: Arc<Semaphore>,
    /// How many permits the pool holds in all.
    pub pool_size: usize,
}

/// Stands for "no bound" in timers (a year).
const UNBOUNDED: Duration = Duration::from_secs(365 * 86_400);

/// The permit one item of a stream runs under: the stream's own (`base`,
/// one item at a time), or one borrowed from the server's pool while more
/// than a quarter of it is free (the rest is kept for single calls and new
/// streams, so batch work never starves them), else the stream's own when
/// it is free again. A stream never waits in the pool's queue.
async fn item_slot(
    base: Arc<Semaphore>,
    pool: Option<Arc<Semaphore>>,
    pool_size: usize,
) -> Option<OwnedSemaphorePermit> {
    if let Ok(own) = base.clone().try_acquire_owned() {
        return Some(own);
    }
    let Some(pool) = pool else {
        // In process: no server-wide limit; max_in_flight bounds the stream.
        return None;
    };
    let reserve = (pool_size / 4).max(1);
    if pool.available_permits() > reserve
        && let Ok(borrowed) = pool.try_acquire_owned()
    {
        return Some(borrowed);
    }
    base.acquire_owned().await.ok()
}

impl EnrichmentService {
    pub fn new(enricher: Arc<Enricher>, budget: Duration) -> Self {
        Self {
            enricher,
            budget,
            batch: BatchConfig::default(),
            stream_limits: None,
        }
    }

    /// Idle and total-time bounds of every stream.
    pub fn with_stream_limits(mut self, limits: StreamLimits) -> Self {
        self.stream_limits = Some(limits);
        self
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
        let view = request
            .options
            .as_ref()
            .map_or(pb::View::Unspecified, |o| o.view());
        let query = request::enrich_query(request, deadline, caller).map_err(to_status)?;
        // Boxed once here: the pipeline's future is several kilobytes, and
        // held inline it was copied again at each level above it (this
        // future, the handler's, the box the generated service puts it in).
        let enrichment = Box::pin(self.enricher.enrich(query))
            .await
            .map_err(to_status)?;
        let mut answer = response::enrichment_to_proto(enrichment);
        response::apply_view(&mut answer, view);
        Ok(answer)
    }

    /// A stream item's answer; its failure becomes the item's `error`.
    /// `method` labels its metrics: `EnrichStream`, or `BatchJob` for a
    /// job's row.
    async fn stream_item(
        &self,
        request: pb::EnrichRequest,
        caller: Caller,
        method: &'static str,
    ) -> pb::EnrichResponse {
        let started = crate::clock::Stopwatch::start();
        let request_id = request.request_id.clone();
        let result = if request_id.trim().is_empty() {
            Err(to_status(Error::InvalidArgument(vec![
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
        let result = observed(method, &caller, started, result);
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
    ///
    /// Under a server (`admitted`), the stream holds its admission permit
    /// for its whole life and runs one item on it; further items run in
    /// parallel only on permits borrowed from the server's pool (see
    /// `item_slot`), so streams never run more enrichments than
    /// `max_concurrent_requests`.
    /// With `stream_limits`, a stream that is idle (no request and nothing
    /// in progress), whose reader stops taking answers, or that outlives
    /// its maximum duration is ended with DEADLINE_EXCEEDED, and its permit
    /// released.
    pub fn process_stream<S>(
        &self,
        mut inbound: S,
        caller: Caller,
        admitted: Option<Admitted>,
        meter: Option<crate::auth::Meter>,
        method: &'static str,
    ) -> impl Stream<Item = Result<pb::EnrichResponse, Status>> + Send + 'static
    where
        S: Stream<Item = Result<pb::EnrichRequest, Status>> + Send + Unpin + 'static,
    {
        let (tx, rx) = tokio::sync::mpsc::channel(self.batch.buffer.max(1));
        // How the stream ended, delivered after every buffered answer: a
        // client that stopped reading still learns, when it reads again, that
        // the stream was cut and why (a full buffer cannot swallow it).
        let (end_tx, end_rx) = tokio::sync::oneshot::channel::<Status>();
        let this = self.clone();
        let limits = self.stream_limits;
        tokio::spawn(async move {
            let _permit = admitted.as_ref().map(|a| a.permit.clone());
            let pool_size = admitted.as_ref().map_or(0, |a| a.pool_size);
            let pool = admitted.map(|a| a.pool);
            let base = Arc::new(Semaphore::new(1));
            let max = this.batch.max_in_flight.max(1);
            let idle = limits.map_or(UNBOUNDED, |l| l.idle);
            let work = async {
                let mut running = FuturesUnordered::new();
                let mut open = true;
                let mut quiet_since = tokio::time::Instant::now();
                // A call the server admitted paid for its first item then;
                // every other item (and every row of a job, which has no
                // admission of its own) pays its unit of the caller's quota.
                let mut paid = pool.is_some();
                loop {
                    tokio::select! {
                        biased;
                        Some(answer) = running.next(), if !running.is_empty() => {
                            match tokio::time::timeout(idle, tx.send(Ok(answer))).await {
                                Ok(Ok(())) => quiet_since = tokio::time::Instant::now(),
                                Ok(Err(_)) => return None,
                                Err(_) => return Some(Ok("the client took no answer for server.stream_idle_timeout")),
                            }
                        }
                        next = inbound.next(), if open && running.len() < max => match next {
                            Some(Ok(request)) => {
                                quiet_since = tokio::time::Instant::now();
                                let (this, caller) = (this.clone(), caller.clone());
                                let slot = item_slot(base.clone(), pool.clone(), pool_size);
                                let meter = meter.clone().filter(|_| !std::mem::take(&mut paid));
                                running.push(async move {
                                    if let Some(meter) = meter {
                                        meter.pace().await;
                                    }
                                    let _slot = slot.await;
                                    this.stream_item(request, caller, method).await
                                });
                            }
                            Some(Err(status)) => return Some(Err(status)),
                            None => open = false,
                        },
                        () = tokio::time::sleep_until(quiet_since + idle), if limits.is_some() && running.is_empty() && open => {
                            return Some(Ok("no request for server.stream_idle_timeout"));
                        }
                        else => return None,
                    }
                }
            };
            let ended = match limits {
                Some(l) => tokio::time::timeout(l.max_duration, work)
                    .await
                    .unwrap_or(Some(Ok("the stream reached server.stream_max_duration"))),
                None => work.await,
            };
            let status = match ended {
                Some(Ok(why)) => {
                    metrics::counter!("enrichd_streams_ended_total", "reason" => why).increment(1);
                    Status::deadline_exceeded(why)
                }
                Some(Err(status)) => status,
                None => return,
            };
            let _ = end_tx.send(status);
        });
        ReceiverStream::new(rx).chain(
            futures::stream::once(end_rx).filter_map(|end| std::future::ready(end.ok().map(Err))),
        )
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
        .ok_or_else(unauthenticated)
}

fn unauthenticated() -> Status {
    Status::unauthenticated("no authenticated caller")
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

/// A stream item's call, counted as one (unary calls are counted by the
/// server's metrics layer).
fn observed<T>(
    method: &'static str,
    caller: &Caller,
    started: crate::clock::Stopwatch,
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
        mut request: Request<pb::EnrichRequest>,
    ) -> Result<Response<pb::EnrichResponse>, Status> {
        // Taken, not copied: nothing after the handler reads it.
        let caller = request
            .extensions_mut()
            .remove::<Caller>()
            .ok_or_else(unauthenticated)?;
        let deadline = self.deadline(request.metadata());
        self.enrich_one(request.into_inner(), caller, deadline)
            .await
            .map(Response::new)
    }

    type EnrichStreamStream = ResponseStream;

    async fn enrich_stream(
        &self,
        request: Request<Streaming<pb::EnrichRequest>>,
    ) -> Result<Response<Self::EnrichStreamStream>, Status> {
        let caller = caller(&request)?;
        let admitted = request.extensions().get::<Admitted>().cloned();
        let meter = request.extensions().get::<crate::auth::Meter>().cloned();
        let inbound = request.into_inner();
        Ok(Response::new(Box::pin(self.process_stream(
            inbound,
            caller,
            admitted,
            meter,
            "EnrichStream",
        ))))
    }

    async fn erase(
        &self,
        request: Request<pb::EraseRequest>,
    ) -> Result<Response<pb::EraseResponse>, Status> {
        let caller = caller(&request)?;
        let (subject, kind) = request::erase_query(request.get_ref()).map_err(to_status)?;
        let reference = &subject.reference;
        let erased = self
            .enricher
            .erase(
                &caller,
                &subject.identifier,
                subject.region,
                kind,
                reference,
            )
            .await
            .map_err(to_status)?;
        Ok(Response::new(records::erased_to_proto(&erased)))
    }

    async fn access(
        &self,
        request: Request<pb::AccessRequest>,
    ) -> Result<Response<pb::AccessResponse>, Status> {
        let caller = caller(&request)?;
        let (subject, page) = request::access_query(request.get_ref()).map_err(to_status)?;
        let reference = &subject.reference;
        let report = self
            .enricher
            .access(
                &caller,
                &subject.identifier,
                subject.region,
                reference,
                &page,
            )
            .await
            .map_err(to_status)?;
        Ok(Response::new(records::access_to_proto(&report)))
    }

    async fn list_sources(
        &self,
        request: Request<pb::ListSourcesRequest>,
    ) -> Result<Response<pb::ListSourcesResponse>, Status> {
        // Fails closed without an admitted caller, as every handler.
        caller(&request)?;
        let purpose = request.into_inner().purpose;
        request::purpose(&purpose)
            .map_err(to_status)
            .and_then(|purpose| {
                policy::listed_sources(self.enricher.catalog(), self.enricher.purposes(), purpose)
                    .map(|sources| {
                        let sources = sources
                            .into_iter()
                            .map(|s| {
                                records::source_to_proto(s, &self.enricher.standing().of(&s.id))
                            })
                            .collect();
                        Response::new(pb::ListSourcesResponse { sources })
                    })
                    .map_err(|v| to_status(Error::InvalidArgument(vec![v])))
            })
    }

    async fn feedback(
        &self,
        request: Request<pb::FeedbackRequest>,
    ) -> Result<Response<pb::FeedbackResponse>, Status> {
        let caller = caller(&request)?;
        let query = request::feedback_query(request.get_ref()).map_err(to_status)?;
        let given = self
            .enricher
            .feedback(&caller, query)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::FeedbackResponse {
            feedback_id: given.id,
            held_out: given.held_out,
            standing: Some(records::standing_to_proto(&given.standing)),
            check_scheduled: given.check_scheduled,
        }))
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
