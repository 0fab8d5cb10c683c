//! The gRPC port's server: its transport settings (TLS, timeouts, HTTP/2
//! bounds), reflection, and the drain at shutdown.
use std::time::Duration;

use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic_reflection::server::{v1, v1alpha};

use super::ServerError;
use crate::config::{ServerConfig, TlsConfig};
use crate::proto::FILE_DESCRIPTOR_SET;

/// The server with the configured TLS, request timeout, HTTP/2 keepalive
/// and stream bounds, and connection age.
pub(super) fn builder(config: &ServerConfig) -> Result<Server, ServerError> {
    let mut builder = Server::builder();
    if let Some(tls) = &config.tls {
        builder = builder
            .tls_config(tls_config(tls)?)
            .map_err(ServerError::Tls)?;
    }
    builder = builder
        .timeout(config.request_timeout)
        .http2_keepalive_interval(Some(config.http2_keepalive_interval))
        .http2_keepalive_timeout(Some(config.http2_keepalive_timeout))
        .max_concurrent_streams(config.max_concurrent_streams);
    if let Some(age) = config.max_connection_age {
        builder = builder
            .max_connection_age(age)
            .max_connection_age_grace(config.drain_timeout);
    }
    Ok(builder)
}

/// Both reflection versions: grpcurl and older tools still ask v1alpha.
pub(super) fn reflection() -> Result<
    (
        v1::ServerReflectionServer<impl v1::ServerReflection>,
        v1alpha::ServerReflectionServer<impl v1alpha::ServerReflection>,
    ),
    ServerError,
> {
    let configured = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    Ok((configured().build_v1()?, configured().build_v1alpha()?))
}

/// Completes `timeout` after the drain began (never, if it never does).
pub(super) async fn drain_expired(began: tokio::sync::oneshot::Receiver<()>, timeout: Duration) {
    if began.await.is_ok() {
        tokio::time::sleep(timeout).await;
    } else {
        std::future::pending::<()>().await;
    }
}

/// rustls through tonic: the server's certificate and key, and the CA that
/// signs client certificates when mTLS is on (a client without one may
/// still call with an API key).
fn tls_config(tls: &TlsConfig) -> Result<ServerTlsConfig, ServerError> {
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|cause| ServerError::TlsFile {
            path: path.to_owned(),
            cause,
        })
    };
    let mut config =
        ServerTlsConfig::new().identity(Identity::from_pem(read(&tls.cert)?, read(&tls.key)?));
    if let Some(ca) = &tls.client_ca {
        config = config
            .client_ca_root(Certificate::from_pem(read(ca)?))
            .client_auth_optional(true);
    }
    Ok(config)
}
