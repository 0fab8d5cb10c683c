//! The tower layer in front of `enrichd.v1.Enrichment`: it decides who the
//! caller is and whether they may call this method now, before any handler
//! runs, so a new RPC cannot forget it. Health and reflection pass through.
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tonic::body::Body;
use tonic::codegen::http;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};
use tower::{BoxError, Layer, Service};
use tracing::{debug, warn};

use super::keys::Keys;
use super::quota::{Meter, Quotas};
use super::{AuthConfig, Caller, Scope};
use crate::cluster::Cluster;

/// The service whose methods need a caller (and, in the server, a
/// concurrency permit).
pub const GUARDED: &str = "/enrichd.v1.Enrichment/";
/// Longest `x-caller` note kept.
const MAX_NOTE_CHARS: usize = 128;

/// Authentication and authorisation shared by every connection.
pub struct Authenticator {
    keys: Keys,
    config: AuthConfig,
    quotas: Arc<Quotas>,
}

impl Authenticator {
    /// `cluster`: the replicas' shared store, where quotas hold for all.
    pub fn new(keys: Keys, config: AuthConfig, cluster: Option<Arc<Cluster>>) -> Self {
        Self {
            keys,
            config,
            quotas: Arc::new(Quotas::new(cluster)),
        }
    }

    /// The meter that charges `caller`'s quota item by item (streams, jobs);
    /// `None` for a caller without a quota.
    pub fn meter(&self, caller: &Caller) -> Option<Meter> {
        Meter::of(&self.quotas, caller)
    }

    /// The caller of a request to `method`, or the status that refuses it.
    /// The caller of `method` (an Enrichment method name, e.g.
    /// "EnrichStream"), if it may call it: identity, scope, quota.
    pub async fn admit(
        &self,
        method: &str,
        headers: &http::HeaderMap,
        extensions: &http::Extensions,
    ) -> Result<Caller, Status> {
        let Some(scope) = Scope::of_method(method) else {
            return Err(Status::unimplemented(format!("no method {method:?}")));
        };
        let mut caller = self.identify(headers, extensions).await?;
        if !caller.allows(scope) {
            metrics::counter!("enrichd_auth_denied_total", "caller" => caller.name.clone(), "scope" => scope.as_str())
                .increment(1);
            return Err(Status::permission_denied(format!(
                "caller {:?} lacks the scope {:?} that {method} needs",
                caller.name,
                scope.as_str()
            )));
        }
        if let Err(wait) = self.quotas.take(&caller).await {
            metrics::counter!("enrichd_caller_quota_exceeded_total", "caller" => caller.name.clone())
                .increment(1);
            return Err(Status::with_error_details(
                Code::ResourceExhausted,
                format!(
                    "caller {:?} is over its quota; retry after the delay in RetryInfo",
                    caller.name
                ),
                ErrorDetails::with_retry_info(Some(wait)),
            ));
        }
        caller.on_behalf_of = headers
            .get("x-caller")
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.chars()
                    .filter(|c| !c.is_control())
                    .take(MAX_NOTE_CHARS)
                    .collect::<String>()
            })
            .filter(|v| !v.trim().is_empty());
        Ok(caller)
    }

    /// Who `headers` say the caller is (a bearer key, else anonymous when
    /// keys are not required), without a scope or a quota: the console's
    /// sign-in, whose every later action is an API call checked in full.
    pub async fn identify_caller(&self, headers: &http::HeaderMap) -> Result<Caller, Status> {
        self.identify(headers, &http::Extensions::new()).await
    }

    /// Callers need no key (a loopback server with `auth.required = false`).
    pub fn keyless(&self) -> bool {
        !self.config.required
    }

    /// A bearer key, else a client certificate, else (only when not
    /// required) anonymous.
    async fn identify(
        &self,
        headers: &http::HeaderMap,
        extensions: &http::Extensions,
    ) -> Result<Caller, Status> {
        let mut given = headers.get_all(http::header::AUTHORIZATION).iter();
        if let Some(value) = given.next() {
            // Two credentials (a proxy that added one, say): neither is taken.
            if given.next().is_some() {
                return Err(Status::unauthenticated(
                    "authorization: send one header, not several",
                ));
            }
            let secret = bearer(value).ok_or_else(|| {
                Status::unauthenticated("authorization: expected \"Bearer <API key>\"")
            })?;
            return match self.keys.authenticate(secret).await {
                Ok(Ok(caller)) => Ok(caller),
                Ok(Err(refused)) => {
                    debug!(reason = refused.as_str(), "API key refused");
                    Err(Status::unauthenticated(refused.as_str()))
                }
                Err(e) => {
                    warn!(error = %e, "API keys cannot be read");
                    Err(Status::unavailable("callers cannot be checked right now"))
                }
            };
        }
        if let Some(name) = client_name(extensions) {
            return match self.config.clients.get(&name) {
                Some(client) => Ok(Caller {
                    id: String::new(),
                    scopes: client.scopes.iter().copied().collect(),
                    purposes: (!client.purposes.is_empty())
                        .then(|| client.purposes.iter().cloned().collect()),
                    quota_per_second: client.quota_per_second,
                    on_behalf_of: None,
                    name,
                }),
                None => Err(Status::unauthenticated(
                    "the client certificate is valid but names no configured caller",
                )),
            };
        }
        if self.config.required {
            Err(Status::unauthenticated(
                "an API key is required: send \"authorization: Bearer <key>\"",
            ))
        } else {
            Ok(Caller::anonymous())
        }
    }
}

/// The certificate chain a client presented on its TLS connection (the
/// transport puts it in the request's extensions), leaf first.
#[derive(Clone)]
pub struct ClientCertificates(pub Arc<Vec<tonic::transport::CertificateDer<'static>>>);

/// The common name of the client certificate, if the connection has one.
fn client_name(extensions: &http::Extensions) -> Option<String> {
    let certs = extensions.get::<ClientCertificates>()?;
    let (_, cert) = x509_parser::parse_x509_certificate(certs.0.first()?.as_ref()).ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?;
    Some(cn.to_owned())
}

#[derive(Clone)]
pub struct AuthLayer(Arc<Authenticator>);

impl AuthLayer {
    pub fn new(authenticator: Authenticator) -> Self {
        Self(Arc::new(authenticator))
    }

    /// For doors other than gRPC that decide on the same callers.
    pub fn authenticator(&self) -> Arc<Authenticator> {
        self.0.clone()
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            auth: self.0.clone(),
            inner,
        }
    }
}

#[derive(Clone)]
pub struct AuthService<S> {
    auth: Arc<Authenticator>,
    inner: S,
}

impl<S> Service<http::Request<Body>> for AuthService<S>
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
        // The ready service handles this call; a clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = self.auth.clone();
        Box::pin(async move {
            if let Some(method) = request.uri().path().strip_prefix(GUARDED) {
                let method = method.to_owned();
                match auth
                    .admit(&method, request.headers(), request.extensions())
                    .await
                {
                    Ok(caller) => {
                        if let Some(meter) = auth.meter(&caller) {
                            request.extensions_mut().insert(meter);
                        }
                        request.extensions_mut().insert(caller);
                    }
                    Err(status) => return Ok(status.into_http()),
                }
            }
            inner.call(request).await.map_err(Into::into)
        })
    }
}

/// The key of an `authorization: Bearer <key>` header (the scheme in any
/// case, RFC 9110 section 11.1).
fn bearer(value: &http::HeaderValue) -> Option<&str> {
    let (scheme, key) = value.to_str().ok()?.split_once(' ')?;
    let key = key.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !key.is_empty()).then_some(key)
}
