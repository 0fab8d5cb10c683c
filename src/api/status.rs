//! The one conversion from the domain error to `tonic::Status`, with
//! google.rpc details (BadRequest, PreconditionFailure, RetryInfo), and back
//! into a stream item's error.
use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::error::Error;
use crate::proto::v1 as pb;

/// The domain error as a gRPC status with its google.rpc details.
pub fn to_status(e: Error) -> Status {
    {
        let message = e.to_string();
        match e {
            Error::InvalidArgument(violations) => Status::with_error_details(
                Code::InvalidArgument,
                message,
                ErrorDetails::with_bad_request(
                    violations
                        .into_iter()
                        .map(|v| tonic_types::FieldViolation::new(v.field, v.description))
                        .collect::<Vec<_>>(),
                ),
            ),
            Error::NoLawfulGround(violations) => Status::with_error_details(
                Code::FailedPrecondition,
                message,
                ErrorDetails::with_precondition_failure(
                    violations
                        .into_iter()
                        .map(|v| {
                            tonic_types::PreconditionViolation::new(
                                v.kind,
                                v.subject,
                                v.description,
                            )
                        })
                        .collect::<Vec<_>>(),
                ),
            ),
            Error::PermissionDenied(_) => Status::permission_denied(message),
            Error::Unavailable(_) => Status::unavailable(message),
            Error::NotFound(_) => Status::not_found(message),
            Error::Precondition(v) => Status::with_error_details(
                Code::FailedPrecondition,
                message,
                ErrorDetails::with_precondition_failure(vec![
                    tonic_types::PreconditionViolation::new(v.kind, v.subject, v.description),
                ]),
            ),
            Error::Exhausted { retry_after, .. } => Status::with_error_details(
                Code::ResourceExhausted,
                message,
                ErrorDetails::with_retry_info(Some(retry_after)),
            ),
        }
    }
}

/// A failed stream item, shaped like google.rpc.Status.
pub fn request_error(status: &Status) -> pb::RequestError {
    let details = status.get_error_details();
    pb::RequestError {
        code: status.code() as i32,
        message: status.message().to_owned(),
        field_violations: details
            .bad_request()
            .map(|b| {
                b.field_violations
                    .iter()
                    .map(|v| pb::FieldViolation {
                        field: v.field.clone(),
                        description: v.description.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        precondition_violations: details
            .precondition_failure()
            .map(|p| {
                p.violations
                    .iter()
                    .map(|v| pb::PreconditionViolation {
                        r#type: v.r#type.clone(),
                        subject: v.subject.clone(),
                        description: v.description.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// Load shedding's answer: RESOURCE_EXHAUSTED with a retry delay.
/// A caller that holds its share of the pool already.
pub fn caller_share(share: usize, retry_after: Duration) -> Status {
    Status::with_error_details(
        Code::ResourceExhausted,
        format!(
            "this caller has {share} calls in flight, its share of the server \
             (server.max_concurrent_per_caller); retry after the delay in RetryInfo"
        ),
        ErrorDetails::with_retry_info(Some(retry_after)),
    )
}

pub fn overloaded(retry_after: Duration) -> Status {
    Status::with_error_details(
        Code::ResourceExhausted,
        "enrichd is at its concurrency limit; retry after the delay in RetryInfo",
        ErrorDetails::with_retry_info(Some(retry_after)),
    )
}
