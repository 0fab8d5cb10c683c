//! Where a command's calls go: the service in process, or a running server
//! (`--remote`), behind one `Target`.

use anyhow::Context;
use tonic::Request;
use tower::util::BoxCloneService;
use tower::{BoxError, ServiceExt};

use super::args::RemoteArgs;
use crate::api::grpc::EnrichmentServer;
use crate::auth::Caller;
use crate::config::Config;
use crate::proto::v1::enrichment_client::EnrichmentClient;
use crate::sandbox::Sandbox;
use crate::startup;

/// A gRPC client of a running server, or of the service in this process
/// (through the same codec, so both paths behave alike).
type Client = EnrichmentClient<
    BoxCloneService<
        axum::http::Request<tonic::body::Body>,
        axum::http::Response<tonic::body::Body>,
        BoxError,
    >,
>;

/// The caller name the CLI records in the ledger.
pub(crate) const CLI_CALLER: &str = "cli";

/// Where a command's calls go: a running server, or the pipeline in this
/// process (with the sandbox kept alive while it is used).
pub(crate) struct Target {
    pub(super) client: Client,
    _sandbox: Option<Sandbox>,
}

/// A channel to `addr`, over TLS for https:// (trusting --ca-cert, with
/// --client-cert for mTLS).
pub(crate) async fn connect(
    addr: &str,
    remote: &RemoteArgs,
) -> anyhow::Result<tonic::transport::Channel> {
    let endpoint = endpoint(addr);
    let mut builder = tonic::transport::Endpoint::from_shared(endpoint.clone())?;
    if endpoint.starts_with("https://") {
        let read = |path: &std::path::Path| {
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
        };
        let mut tls = tonic::transport::ClientTlsConfig::new();
        if let Some(ca) = &remote.ca_cert {
            tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(read(ca)?));
        }
        if let (Some(cert), Some(key)) = (&remote.client_cert, &remote.client_key) {
            tls = tls.identity(tonic::transport::Identity::from_pem(
                read(cert)?,
                read(key)?,
            ));
        }
        builder = builder.tls_config(tls)?;
    }
    builder
        .connect()
        .await
        .with_context(|| format!("cannot connect to {endpoint}"))
}

/// A request that says it comes from the command line.
pub(crate) fn as_cli<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "x-caller",
        tonic::metadata::MetadataValue::from_static(CLI_CALLER),
    );
    request
}

/// "host:port" or a full URI.
pub(crate) fn endpoint(addr: &str) -> String {
    if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    }
}

impl Target {
    pub(super) async fn open(
        remote: &RemoteArgs,
        config: &Config,
        sandbox: bool,
    ) -> anyhow::Result<Self> {
        type HttpRequest = axum::http::Request<tonic::body::Body>;
        Ok(match &remote.remote {
            Some(addr) => {
                let channel = connect(addr, remote).await?;
                let bearer = match remote.api_key.as_deref().filter(|k| !k.trim().is_empty()) {
                    Some(key) => Some(
                        format!("Bearer {}", key.trim())
                            .parse::<axum::http::HeaderValue>()
                            .map_err(|_| anyhow::anyhow!("--api-key: not a valid header value"))?,
                    ),
                    None => None,
                };
                let service = channel
                    .map_request(move |mut request: HttpRequest| {
                        if let Some(bearer) = &bearer {
                            request
                                .headers_mut()
                                .insert(axum::http::header::AUTHORIZATION, bearer.clone());
                        }
                        request
                    })
                    .map_err(BoxError::from);
                Self {
                    client: EnrichmentClient::new(BoxCloneService::new(service)),
                    _sandbox: None,
                }
            }
            None => {
                // The operator's own command line, on the ledger it configures.
                let (service, sb) = startup::local_service(config, sandbox).await?;
                let server = ServiceExt::<HttpRequest>::map_request(
                    EnrichmentServer::new(service),
                    |mut request: HttpRequest| {
                        request.extensions_mut().insert(Caller::operator());
                        request
                    },
                )
                .map_err(BoxError::from);
                Self {
                    client: EnrichmentClient::new(BoxCloneService::new(server)),
                    _sandbox: sb,
                }
            }
        })
    }
}
