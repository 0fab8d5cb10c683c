//! What a command prints: an answer as canonical proto3 JSON, a refusal as
//! the flags to fix.
use std::process::ExitCode;

use tonic::{Response, Status};
use tonic_types::StatusExt;

use crate::telemetry;

/// Prints an answer as JSON, or the error and its details.
pub(crate) fn print_result<T: serde::Serialize>(
    result: Result<Response<T>, Status>,
) -> anyhow::Result<ExitCode> {
    match result {
        Ok(response) => {
            let text = serde_json::to_string_pretty(response.get_ref())?;
            // A reader that stops early (`| head`) is not an error.
            use std::io::Write as _;
            match writeln!(std::io::stdout().lock(), "{text}") {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e.into()),
                _ => {}
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(status) => {
            eprintln!(
                "error: {}: {}",
                telemetry::code_name(status.code()),
                status.message()
            );
            let details = status.get_error_details();
            let fields: Vec<(String, String)> = details
                .bad_request()
                .map(|b| {
                    b.field_violations
                        .iter()
                        .map(|v| (v.field.clone(), v.description.clone()))
                        .collect()
                })
                .unwrap_or_default();
            let preconditions: Vec<(String, String, String)> = details
                .precondition_failure()
                .map(|p| {
                    p.violations
                        .iter()
                        .map(|v| (v.r#type.clone(), v.subject.clone(), v.description.clone()))
                        .collect()
                })
                .unwrap_or_default();
            print_violations(&fields, &preconditions);
            Ok(ExitCode::from(match status.code() {
                tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition => 2,
                _ => 1,
            }))
        }
    }
}

/// A refusal's violations, each under the flag that fixes it.
pub(crate) fn print_violations(
    fields: &[(String, String)],
    preconditions: &[(String, String, String)],
) {
    for (field, why) in fields {
        eprintln!("  {}: {why}", flag_of(field));
    }
    for (kind, subject, why) in preconditions {
        let flag = match kind.as_str() {
            "PURPOSE" => "--purpose".to_owned(),
            "LAWFUL_BASIS" | "LAWFUL_BASIS_REFUSED" => "--basis".to_owned(),
            _ => flag_of(subject),
        };
        eprintln!("  {flag}: {why}");
    }
}

/// The command-line flag that sets a request field, for errors a user of
/// the command line can act on (the field itself when no flag sets it).
pub(crate) fn flag_of(field: &str) -> String {
    let flag = match field.trim_start_matches("request.") {
        "email" => "--email",
        "phone" => "--phone",
        "purpose" => "--purpose",
        "lawful_basis" | "lawfulBasis" => "--basis",
        "evidence.consent_ref" | "evidence.consentRef" => "--consent-ref",
        "evidence.legitimate_interest_assessment_ref"
        | "evidence.legitimateInterestAssessmentRef" => "--lia-ref",
        "evidence.contract_ref" | "evidence.contractRef" => "--contract-ref",
        "hints.default_region" | "default_region" | "hints.defaultRegion" => "--region",
        "hints.name" => "--name",
        "request_id" => "--request-id",
        "reference" => "--reference",
        other => return other.to_owned(),
    };
    flag.to_owned()
}
