//! The baselines beside the real service on the same server: an echo of
//! an empty answer, of a copy of the real one, and of that copy after the
//! record a real call writes.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::fixtures::{HOT, hasher};
use enrichd::proto::v1 as pb;
/// The baselines of `hot`: the same tonic server, a handler that answers at
/// once, with an empty answer or with a copy of the real one (what the
/// transport alone costs for an answer of that size); with a ledger, it
/// first commits the record a real call writes through enrichd's own
/// ledger writer: the floor under any `Enrich` that records every call.
#[derive(Clone)]
pub(crate) struct Echo {
    pub(crate) answer: Arc<pb::EnrichResponse>,
    pub(crate) ledger: Option<Arc<enrichd::ledger::Ledger>>,
    pub(crate) subject: Arc<str>,
}

/// A record like the one `Enrich` writes for `HOT` (ten sources, five
/// field categories, the same claim).
pub(crate) fn hot_record(subject: &str) -> enrichd::ledger::Record {
    let now = chrono::Utc::now();
    let ms = u64::try_from(now.timestamp_millis()).unwrap_or_default();
    let list = |prefix: &str, n: usize| (0..n).map(|i| format!("{prefix}{i}")).collect();
    enrichd::ledger::Record {
        id: uuid::Builder::from_unix_timestamp_millis(ms, &rand::random::<[u8; 10]>())
            .into_uuid()
            .simple()
            .to_string(),
        at_ms: now.timestamp_millis(),
        caller: "anonymous".into(),
        caller_id: String::new(),
        on_behalf_of: String::new(),
        purpose: "marketing".into(),
        lawful_basis: "legitimate_interests".into(),
        consent_ref: String::new(),
        lia_ref: "LIA-BENCH".into(),
        contract_ref: String::new(),
        subject: subject.to_owned(),
        sources: list("s", 10),
        field_categories: vec![
            "profiles".into(),
            "attributes".into(),
            "interests".into(),
            "footprint".into(),
            "messaging_apps".into(),
        ],
        outcome: enrichd::ledger::LedgerOutcome::Enriched,
        retain_until_ms: now.timestamp_millis() + 365 * 86_400_000,
        redacted: false,
        reference: String::new(),
        detail: String::new(),
    }
}

pub(crate) fn hot_subject() -> String {
    use enrichd::identity::{Email, Identifier};
    hasher().hash(&Identifier::Email(Email::parse(HOT).unwrap()).canonical())
}

#[tonic::async_trait]
impl pb::enrichment_server::Enrichment for Echo {
    async fn enrich(
        &self,
        r: tonic::Request<pb::EnrichRequest>,
    ) -> Result<tonic::Response<pb::EnrichResponse>, tonic::Status> {
        if let Some(ledger) = &self.ledger {
            ledger
                .record(hot_record(&self.subject))
                .await
                .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        }
        let mut answer = (*self.answer).clone();
        answer.request_id = r.into_inner().request_id;
        Ok(tonic::Response::new(answer))
    }
    type EnrichStreamStream = std::pin::Pin<
        Box<dyn futures::Stream<Item = Result<pb::EnrichResponse, tonic::Status>> + Send>,
    >;
    async fn enrich_stream(
        &self,
        _: tonic::Request<tonic::Streaming<pb::EnrichRequest>>,
    ) -> Result<tonic::Response<Self::EnrichStreamStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("echo"))
    }
    async fn erase(
        &self,
        _: tonic::Request<pb::EraseRequest>,
    ) -> Result<tonic::Response<pb::EraseResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("echo"))
    }
    async fn access(
        &self,
        _: tonic::Request<pb::AccessRequest>,
    ) -> Result<tonic::Response<pb::AccessResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("echo"))
    }
    async fn list_sources(
        &self,
        _: tonic::Request<pb::ListSourcesRequest>,
    ) -> Result<tonic::Response<pb::ListSourcesResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("echo"))
    }

    async fn feedback(
        &self,
        _: tonic::Request<pb::FeedbackRequest>,
    ) -> Result<tonic::Response<pb::FeedbackResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("echo"))
    }
}

pub(crate) async fn start_echo(
    answer: pb::EnrichResponse,
    ledger: Option<enrichd::ledger::Ledger>,
) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .timeout(Duration::from_secs(30))
            .add_service(pb::enrichment_server::EnrichmentServer::new(Echo {
                answer: Arc::new(answer),
                ledger: ledger.map(Arc::new),
                subject: hot_subject().into(),
            }))
            .serve_with_incoming(
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            ),
    );
    addr
}
