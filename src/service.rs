//! The gRPC handlers: thin (convert, call the pipeline, convert back).
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use futures::Stream;
use tonic::{Request, Response, Status, Streaming};

use crate::convert;
use crate::enrich::Enricher;
use crate::error::Error;
use crate::proto::v1 as pb;
use crate::telemetry;

pub use pb::enrichment_server::EnrichmentServer;

/// The `enrichd.v1.Enrichment` service.
#[derive(Clone)]
pub struct EnrichmentService {
    enricher: Arc<Enricher>,
}

impl EnrichmentService {
    pub fn new(enricher: Arc<Enricher>) -> Self {
        Self { enricher }
    }
}

fn observed<T>(
    method: &'static str,
    started: Instant,
    result: Result<T, Status>,
) -> Result<T, Status> {
    let code = result
        .as_ref()
        .map_or_else(Status::code, |_| tonic::Code::Ok);
    telemetry::record_call(method, started, code);
    result
}

fn not_built<T>(what: &'static str) -> Result<T, Status> {
    Err(Error::Unimplemented(what).into())
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<pb::EnrichResponse, Status>> + Send>>;

#[tonic::async_trait]
impl pb::enrichment_server::Enrichment for EnrichmentService {
    async fn enrich(
        &self,
        request: Request<pb::EnrichRequest>,
    ) -> Result<Response<pb::EnrichResponse>, Status> {
        let started = Instant::now();
        let result = async {
            let query = convert::enrich_query(request.into_inner())?;
            let enrichment = self.enricher.enrich(query).await?;
            Ok::<_, Error>(convert::enrichment_to_proto(&enrichment))
        }
        .await
        .map(Response::new)
        .map_err(Status::from);
        observed("Enrich", started, result)
    }

    type EnrichStreamStream = ResponseStream;

    async fn enrich_stream(
        &self,
        _request: Request<Streaming<pb::EnrichRequest>>,
    ) -> Result<Response<Self::EnrichStreamStream>, Status> {
        observed(
            "EnrichStream",
            Instant::now(),
            not_built(
                "EnrichStream is not implemented yet (batch enrichment is planned); \
                 call Enrich once per identifier meanwhile",
            ),
        )
    }

    async fn erase(
        &self,
        _request: Request<pb::EraseRequest>,
    ) -> Result<Response<pb::EraseResponse>, Status> {
        observed(
            "Erase",
            Instant::now(),
            not_built(
                "Erase is not implemented yet: enrichd holds no cache, ledger or \
                 suppression list so far, so there is nothing to erase",
            ),
        )
    }

    async fn access(
        &self,
        _request: Request<pb::AccessRequest>,
    ) -> Result<Response<pb::AccessResponse>, Status> {
        observed(
            "Access",
            Instant::now(),
            not_built(
                "Access is not implemented yet: enrichd keeps no record of identifiers \
                 so far, so there is nothing to report",
            ),
        )
    }

    async fn list_sources(
        &self,
        _request: Request<pb::ListSourcesRequest>,
    ) -> Result<Response<pb::ListSourcesResponse>, Status> {
        observed(
            "ListSources",
            Instant::now(),
            not_built("ListSources is not implemented yet: the source catalog is not built"),
        )
    }
}
