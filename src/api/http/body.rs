//! Request bodies: whole, within their deadline, or refused in the JSON
//! error shape of every other refusal.
use std::time::Duration;

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::Response;
use tonic::Status;

use super::errors::error_response_as;

/// A request body that must arrive whole within `server.request_timeout` of
/// its headers: a client trickling its body a byte at a time would
/// otherwise hold its connection (and a slot of `max_connections`) forever.
struct BodyDeadline<B> {
    body: B,
    expires: std::pin::Pin<Box<tokio::time::Sleep>>,
    timeout: Duration,
}

impl<B> http_body::Body for BodyDeadline<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<tower::BoxError>,
{
    type Data = Bytes;
    type Error = tower::BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        use std::future::Future;
        use std::task::Poll;
        let this = self.get_mut();
        match std::pin::Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Pending if this.expires.as_mut().poll(cx).is_ready() => {
                Poll::Ready(Some(Err(Box::new(BodyTimedOut(this.timeout)))))
            }
            Poll::Pending => Poll::Pending,
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(Into::into))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// A request body still incomplete at its deadline.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within server.request_timeout ({})", humantime::format_duration(*.0))]
struct BodyTimedOut(Duration);

/// The request's body, whole; a body that is too large, fails or does not
/// arrive in time is refused with the JSON error of every other refusal.
pub struct WholeBody(pub Bytes);

impl<S: Send + Sync> axum::extract::FromRequest<S> for WholeBody {
    type Rejection = Response;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, Response> {
        match Bytes::from_request(request, state).await {
            Ok(bytes) => Ok(WholeBody(bytes)),
            Err(rejection) => Err(body_refused(&rejection)),
        }
    }
}

fn body_refused(rejection: &axum::extract::rejection::BytesRejection) -> Response {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(rejection);
    while let Some(e) = cause {
        if let Some(late) = e.downcast_ref::<BodyTimedOut>() {
            let late = Status::deadline_exceeded(late.to_string());
            return error_response_as(StatusCode::REQUEST_TIMEOUT, &late);
        }
        cause = e.source();
    }
    // As the gRPC door refuses a message over the limit: OUT_OF_RANGE.
    let status = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Status::out_of_range(
            "body: larger than this endpoint takes (server.max_request_bytes, or batch.max_upload_bytes for a batch)",
        )
    } else {
        Status::invalid_argument(format!(
            "body: could not be read ({})",
            rejection.body_text()
        ))
    };
    error_response_as(rejection.status(), &status)
}

/// Gives each request's body `timeout` to arrive (see `BodyDeadline`).
pub(super) async fn body_deadline(
    timeout: Duration,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    // A request without a body (a GET) needs no timer.
    if http_body::Body::is_end_stream(request.body()) {
        return next.run(request).await;
    }
    let request = request.map(|body| {
        axum::body::Body::new(BodyDeadline {
            body,
            expires: Box::pin(tokio::time::sleep(timeout)),
            timeout,
        })
    });
    next.run(request).await
}
