//! Refusals over HTTP: the gRPC status as its HTTP code, with a JSON body in
//! the google.rpc shape (`error.code`, `error.status`, `error.message`,
//! `error.details[]` with `@type`), naming the field.
use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tonic::{Code, Status};
use tonic_types::StatusExt;

/// The request message from its JSON; a bad body names the field.
pub fn parse<Req: serde::de::DeserializeOwned>(body: &[u8]) -> Result<Req, Status> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let message = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let why = e.into_inner().to_string();
        // The identifier is a oneof: a second one reads as a duplicate.
        for field in ["email", "phone"] {
            if why.starts_with(&format!("duplicate field `{field}`")) {
                let why = "give one identifier, once: either email or phone";
                return bad_field(field, why);
            }
        }
        // pbjson reads a number as one of several shapes and names none of
        // them when it fails (a negative count, 1e20 for a uint32).
        // An enum's number that is not one of its values: pbjson's
        // message reads "expected expected one of".
        let why = if why.starts_with("data did not match any variant of untagged enum") {
            "is not a number within this field's range".to_owned()
        } else {
            why.replacen("expected expected one of:", "expected one of", 1)
        };
        let field = if path == "." || path.is_empty() {
            "body".to_owned()
        } else {
            path
        };
        bad_field(&field, &why)
    })?;
    de.end().map_err(|e| bad_field("body", &e.to_string()))?;
    Ok(message)
}

/// The HTTP code of a gRPC status (as Google's APIs map them).
fn http_code(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A refusal: the HTTP code, and the status with its details as JSON.
pub fn error_response(status: &Status) -> Response {
    error_response_as(http_code(status.code()), status)
}

/// A refusal whose HTTP code is more precise than its gRPC code's (413,
/// 415, 408, 405); the body's `code` is the HTTP code, as on every refusal.
pub fn error_response_as(code: StatusCode, status: &Status) -> Response {
    let details = status.get_error_details();
    // Fields are named as the JSON request names them (camelCase), in the
    // details and in the message alike.
    let mut paths: Vec<&str> = details
        .bad_request()
        .map(|b| {
            b.field_violations
                .iter()
                .map(|v| v.field.as_str())
                .collect()
        })
        .unwrap_or_default();
    if let Some(pre) = details.precondition_failure() {
        paths.extend(pre.violations.iter().map(|v| v.subject.as_str()));
    }
    paths.retain(|p| p.contains('_'));
    paths.sort_by_key(|p| std::cmp::Reverse(p.len()));
    let json_names = |text: &str| {
        paths
            .iter()
            .fold(text.to_owned(), |t, p| t.replace(p, &camel_path(p)))
    };
    let mut out = Vec::new();
    if let Some(bad) = details.bad_request() {
        let violations: Vec<Value> = bad
            .field_violations
            .iter()
            .map(|v| json!({ "field": camel_path(&v.field), "description": json_names(&v.description) }))
            .collect();
        out.push(json!({
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": violations,
        }));
    }
    if let Some(pre) = details.precondition_failure() {
        let violations: Vec<Value> = pre
            .violations
            .iter()
            .map(
                |v| json!({ "type": v.r#type, "subject": json_names(&v.subject), "description": json_names(&v.description) }),
            )
            .collect();
        out.push(json!({
            "@type": "type.googleapis.com/google.rpc.PreconditionFailure",
            "violations": violations,
        }));
    }
    let delay = details.retry_info().and_then(|r| r.retry_delay);
    if let Some(delay) = delay {
        out.push(json!({
            "@type": "type.googleapis.com/google.rpc.RetryInfo",
            "retryDelay": format!("{}s", delay.as_secs_f64()),
        }));
    }
    let mut response = (
        code,
        Json(json!({ "error": {
            "code": code.as_u16(),
            "status": crate::telemetry::code_name(status.code()),
            "message": json_names(status.message()),
            "details": out,
        }})),
    )
        .into_response();
    if let Some(delay) = delay
        && let Ok(value) = axum::http::HeaderValue::from_str(
            &(delay.as_secs_f64().ceil().max(1.0) as u64).to_string(),
        )
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// A request field path as JSON names it: `evidence.consent_ref` is
/// `evidence.consentRef` (proto3 JSON's lowerCamelCase, segment by segment).
pub fn camel_path(path: &str) -> String {
    path.split('.')
        .map(|segment| {
            let mut out = String::with_capacity(segment.len());
            let mut upper = false;
            for c in segment.chars() {
                if c == '_' {
                    upper = true;
                } else if upper {
                    out.extend(c.to_uppercase());
                    upper = false;
                } else {
                    out.push(c);
                }
            }
            out
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// A refusal naming the request field and what is wrong with it.
pub fn bad_field(field: &str, why: &str) -> Status {
    Status::with_error_details(
        Code::InvalidArgument,
        format!("{field}: {why}"),
        tonic_types::ErrorDetails::with_bad_request_violation(field, why),
    )
}
