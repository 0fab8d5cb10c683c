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
    /// Each caller's token, by name and key id: a call holds a clone of it,
    /// so its count of clones (less the map's own) is the permits the
    /// caller holds. Found by borrowing the caller's name and id, so a call
    /// allocates nothing here, and given back by dropping it, without the
    /// lock.
    held: Arc<Mutex<Tokens>>,
}

/// Callers' tokens, by name, then key id.
type Tokens = HashMap<String, HashMap<String, Arc<()>>>;

/// Callers remembered before those holding nothing are forgotten.
const CALLERS_KEPT: usize = 1024;

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
        let share = match caller.map(|c| self.share(c)) {
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
    /// Counts only grow under the lock (shares are dropped without it), so
    /// a count read here is never below the true one.
    fn share(&self, caller: &Caller) -> Option<Share> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(token) = held.get(&caller.name).and_then(|ids| ids.get(&caller.id)) {
            return (Arc::strong_count(token) - 1 < self.per_caller).then(|| Share {
                _token: token.clone(),
            });
        }
        if held.values().map(HashMap::len).sum::<usize>() >= CALLERS_KEPT {
            for ids in held.values_mut() {
                ids.retain(|_, token| Arc::strong_count(token) > 1);
            }
            held.retain(|_, ids| !ids.is_empty());
        }
        let token = Arc::new(());
        held.entry(caller.name.clone())
            .or_default()
            .insert(caller.id.clone(), token.clone());
        Some(Share { _token: token })
    }
}

/// One of a caller's permits, given back when the call's permit goes.
pub struct Share {
    _token: Arc<()>,
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
            let admitted = self.layer.admit(request.extensions().get::<Caller>());
            match admitted {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, id: &str) -> Caller {
        Caller {
            id: id.to_owned(),
            name: name.to_owned(),
            ..Caller::anonymous()
        }
    }

    #[test]
    fn a_caller_holds_at_most_its_share_and_gets_each_permit_back_with_its_call() {
        let layer = AdmissionLayer::new(8, 2, Duration::from_secs(1));
        let crm = key("crm", "k1");
        let first = layer.admit(Some(&crm)).expect("first");
        let second = layer.admit(Some(&crm)).expect("second");
        let Err(third) = layer.admit(Some(&crm)) else {
            panic!("a third call over a share of two was admitted")
        };
        assert_eq!(third.code(), tonic::Code::ResourceExhausted);
        // Another key of the same name, and another caller, have their own.
        let other_key = layer.admit(Some(&key("crm", "k2"))).expect("own share");
        let _fraud = layer.admit(Some(&key("fraud", "k1"))).expect("own share");
        drop(first);
        let again = layer.admit(Some(&crm)).expect("a permit came back");
        drop((second, again, other_key));
        assert_eq!(layer.pool.available_permits(), 7, "only fraud's is held");
    }

    #[test]
    fn callers_holding_nothing_are_forgotten_once_many_were_seen() {
        let layer = AdmissionLayer::new(8, 1, Duration::from_secs(1));
        let busy = layer.admit(Some(&key("busy", ""))).expect("admitted");
        for n in 0..CALLERS_KEPT + 10 {
            drop(
                layer
                    .admit(Some(&key(&format!("once-{n}"), "")))
                    .expect("admitted"),
            );
        }
        let remembered: usize = layer.held.lock().unwrap().values().map(HashMap::len).sum();
        assert!(
            remembered <= CALLERS_KEPT,
            "{remembered} callers remembered"
        );
        // The caller still holding its permit kept its count.
        assert!(layer.admit(Some(&key("busy", ""))).is_err());
        drop(busy);
        assert!(layer.admit(Some(&key("busy", ""))).is_ok());
    }
}
