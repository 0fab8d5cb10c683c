//! Admission: a call to `enrichd.v1.Enrichment` takes one of
//! `server.max_concurrent_requests` permits or is shed at once with
//! RESOURCE_EXHAUSTED. The permit lives as long as the call's response: a
//! unary call's until it is answered, a stream's until the stream ends
//! (the handler carries it into the work it spawns). Health and reflection
//! are never shed, so an orchestrator does not kill a busy but healthy
//! replica. Every call, exempt or not, counts as an open stream of its
//! connection until its response body is dropped.
//!
//! No caller (a key, a certificate, "anonymous") holds more than
//! `server.max_concurrent_per_caller` of the permits: one key opening
//! streams that send nothing cannot shed everyone else's calls.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::Semaphore;
use tonic::body::Body;
use tonic::codegen::http;
use tonic::transport::server::TlsConnectInfo;
use tower::{BoxError, Layer, Service};

use super::connections::{ConnInfo, Tracked};
use crate::api::grpc::Admitted;
use crate::api::status;
use crate::auth::Caller;
use crate::auth::layer::{ClientCertificates, GUARDED};
use crate::telemetry;

#[derive(Clone)]
pub struct AdmissionLayer {
    pool: Arc<Semaphore>,
    size: usize,
    retry_after: Duration,
    /// Permits one caller may hold at once.
    per_caller: usize,
    /// Permits held, by caller.
    held: Arc<Mutex<HashMap<String, usize>>>,
}

impl AdmissionLayer {
    pub fn new(max_concurrent: usize, per_caller: usize, retry_after: Duration) -> Self {
        let size = max_concurrent.max(1);
        Self {
            pool: Arc::new(Semaphore::new(size)),
            size,
            retry_after,
            per_caller: per_caller.clamp(1, size),
            held: Arc::default(),
        }
    }

    /// A place in the pool for a call of `caller` (known: the caller's
    /// share counts too), or the RESOURCE_EXHAUSTED that sheds it.
    pub fn admit(&self, caller: Option<&Caller>) -> Result<Arc<Permit>, tonic::Status> {
        let share = match caller.map(|c| self.share(format!("{}:{}", c.name, c.id))) {
            Some(None) => {
                telemetry::record_shed();
                return Err(status::caller_share(self.per_caller, self.retry_after));
            }
            Some(share) => share,
            None => None,
        };
        match self.pool.clone().try_acquire_owned() {
            Ok(permit) => Ok(Arc::new(Permit {
                _permit: permit,
                _share: share,
            })),
            Err(_) => {
                telemetry::record_shed();
                Err(status::overloaded(self.retry_after))
            }
        }
    }

    /// One more permit for `caller`, unless it holds its share already.
    fn share(&self, caller: String) -> Option<Share> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let count = held.entry(caller.clone()).or_insert(0);
        if *count >= self.per_caller {
            return None;
        }
        *count += 1;
        Some(Share {
            held: self.held.clone(),
            caller,
        })
    }
}

/// A caller's count of permits, given back when the call's permit goes.
pub struct Share {
    held: Arc<Mutex<HashMap<String, usize>>>,
    caller: String,
}

impl Drop for Share {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = held.get_mut(&self.caller) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.caller);
            }
        }
    }
}

/// A call's place in the pool: the permit and the caller's share of it.
pub struct Permit {
    _permit: tokio::sync::OwnedSemaphorePermit,
    _share: Option<Share>,
}

impl<S> Layer<S> for AdmissionLayer {
    type Service = Admission<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Admission {
            layer: self.clone(),
            inner,
        }
    }
}

#[derive(Clone)]
pub struct Admission<S> {
    layer: AdmissionLayer,
    inner: S,
}

/// The connection a request came in on, with or without TLS.
fn connection(extensions: &http::Extensions) -> Option<&ConnInfo> {
    extensions.get::<ConnInfo>().or_else(|| {
        extensions
            .get::<TlsConnectInfo<ConnInfo>>()
            .map(TlsConnectInfo::get_ref)
    })
}

/// Hands the client's TLS certificates to authentication, which runs
/// before admission and knows nothing of the transport.
pub fn client_certificates(mut request: http::Request<Body>) -> http::Request<Body> {
    let certs = request
        .extensions()
        .get::<TlsConnectInfo<ConnInfo>>()
        .and_then(TlsConnectInfo::peer_certs);
    if let Some(certs) = certs {
        request.extensions_mut().insert(ClientCertificates(certs));
    }
    request
}

impl<S> Service<http::Request<Body>> for Admission<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
{
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let stream = connection(request.extensions()).map(ConnInfo::open_stream);
        let mut held = None;
        if request.uri().path().starts_with(GUARDED) {
            // The caller authentication admitted (it runs before).
            let caller = request.extensions().get::<Caller>().cloned();
            match self.layer.admit(caller.as_ref()) {
                Ok(permit) => {
                    let admitted = Admitted {
                        permit,
                        pool: self.layer.pool.clone(),
                        pool_size: self.layer.size,
                    };
                    held = Some(admitted.permit.clone());
                    request.extensions_mut().insert(admitted);
                }
                Err(status) => return Box::pin(async move { Ok(status.into_http()) }),
            }
        }
        Box::pin(async move {
            let response = inner.call(request).await.map_err(Into::into)?;
            drop(held);
            Ok(match stream {
                Some(guard) => response.map(|body| Body::new(Tracked::new(body, guard))),
                None => response,
            })
        })
    }
}
