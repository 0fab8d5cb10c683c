//! The OpenAPI 3.1 document of the JSON API, generated from the gRPC
//! contract's descriptors (so it cannot drift from the proto): each message
//! a schema in its proto3 JSON form (lowerCamelCase names, 64-bit integers
//! as strings, enums by name, Duration as "1.5s", Timestamp as RFC 3339).
//! The committed copy (`proto/enrichd/v1/openapi.json`) is checked against
//! this by a test.
use std::collections::BTreeMap;
use std::sync::OnceLock;

use prost::Message;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FieldDescriptorProto, FileDescriptorSet};
use serde_json::{Value, json};

/// The document (built once).
pub fn document() -> Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(build).clone()
}

const PACKAGE: &str = ".enrichd.v1.";

struct Types {
    messages: BTreeMap<String, DescriptorProto>,
    enums: BTreeMap<String, Vec<String>>,
}

/// Schema names: `Profile`, or `SourceOutcome.Outcome` for nested types.
fn schema_name(full: &str) -> String {
    full.trim_start_matches(PACKAGE).to_owned()
}

fn collect(prefix: &str, message: &DescriptorProto, types: &mut Types) {
    let full = format!("{prefix}{}", message.name());
    for nested in &message.nested_type {
        collect(&format!("{full}."), nested, types);
    }
    for e in &message.enum_type {
        let values = e.value.iter().map(|v| v.name().to_owned()).collect();
        types.enums.insert(format!("{full}.{}", e.name()), values);
    }
    types.messages.insert(full, message.clone());
}

fn field_schema(field: &FieldDescriptorProto, types: &Types) -> Value {
    let type_name = field.type_name();
    let single = match field.r#type() {
        Type::String => json!({ "type": "string" }),
        Type::Bytes => json!({ "type": "string", "contentEncoding": "base64" }),
        Type::Bool => json!({ "type": "boolean" }),
        Type::Int32 | Type::Sint32 | Type::Sfixed32 | Type::Uint32 | Type::Fixed32 => {
            json!({ "type": "integer" })
        }
        Type::Int64 | Type::Sint64 | Type::Sfixed64 | Type::Uint64 | Type::Fixed64 => {
            json!({ "type": ["string", "integer"], "pattern": "^-?[0-9]+$" })
        }
        Type::Double | Type::Float => json!({ "type": "number" }),
        Type::Enum => json!({
            "type": "string",
            "enum": types.enums.get(type_name).cloned().unwrap_or_default(),
        }),
        Type::Message | Type::Group => match type_name {
            ".google.protobuf.Duration" => {
                json!({ "type": ["string", "null"], "pattern": "^-?[0-9]+(\\.[0-9]+)?s$" })
            }
            ".google.protobuf.Timestamp" => {
                json!({ "type": ["string", "null"], "format": "date-time" })
            }
            ".google.protobuf.FieldMask" => json!({
                "anyOf": [
                    { "type": "object", "properties": { "paths": { "type": "array", "items": { "type": "string" } } } },
                    { "type": "null" },
                ],
            }),
            name => {
                if let Some(entry) = types.messages.get(name)
                    && entry.options.as_ref().is_some_and(|o| o.map_entry())
                {
                    let value = entry.field.iter().find(|f| f.number() == 2);
                    return json!({
                        "type": "object",
                        "additionalProperties": value.map_or(json!({}), |v| field_schema(v, types)),
                    });
                }
                let reference =
                    json!({ "$ref": format!("#/components/schemas/{}", schema_name(name)) });
                if field.label() == Label::Repeated {
                    reference
                } else {
                    json!({ "anyOf": [reference, { "type": "null" }] })
                }
            }
        },
    };
    if field.label() == Label::Repeated {
        json!({ "type": "array", "items": single })
    } else {
        single
    }
}

fn message_schema(message: &DescriptorProto, types: &Types) -> Value {
    let properties: serde_json::Map<String, Value> = message
        .field
        .iter()
        .map(|f| (f.json_name().to_owned(), field_schema(f, types)))
        .collect();
    let mut schema = json!({ "type": "object", "properties": properties });
    // A oneof takes at most one of its members (proto3 `optional` fields
    // are oneofs of one and need nothing).
    let mut exclusive = serde_json::Map::new();
    for (i, _) in message.oneof_decl.iter().enumerate() {
        let members: Vec<&str> = message
            .field
            .iter()
            .filter(|f| f.oneof_index == Some(i as i32) && !f.proto3_optional())
            .map(|f| f.json_name())
            .collect();
        for m in &members {
            let others: Vec<Value> = members
                .iter()
                .filter(|o| *o != m)
                .map(|o| json!({ "required": [o] }))
                .collect();
            if !others.is_empty() {
                exclusive.insert((*m).to_owned(), json!({ "not": { "anyOf": others } }));
            }
        }
    }
    if !exclusive.is_empty() {
        schema["dependentSchemas"] = Value::Object(exclusive);
    }
    schema
}

fn operation(
    operation_id: &str,
    summary: &str,
    scope: &str,
    request: Option<&str>,
    response: &str,
) -> Value {
    let mut op = json!({
        "operationId": operation_id,
        "summary": summary,
        "description": format!("Needs an API key with the `{scope}` scope (anonymous only on a loopback server that allows it)."),
        "responses": {
            "200": { "description": "The answer (the gRPC method's response, as proto3 JSON).",
                     "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{response}") } } } },
            "default": refusal(),
        },
    });
    if let Some(request) = request {
        op["requestBody"] = json!({
            "required": true,
            "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{request}") } } },
        });
    }
    op
}

/// A refusal, as every operation may answer one.
fn refusal() -> Value {
    json!({ "description": "A refusal: the gRPC status as its HTTP code, with google.rpc details.",
            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

fn batch_job_schema() -> Value {
    let count = json!({ "type": "integer", "minimum": 0 });
    let time = json!({ "type": ["string", "null"], "format": "date-time" });
    json!({
        "type": "object",
        "required": ["id", "state", "reason", "createdAt", "finishedAt", "rowsTotal", "rowsDone",
                     "rowsPending", "summary", "webhook", "results"],
        "properties": {
            "id": { "type": "string" },
            "state": { "type": "string", "enum": ["RUNNING", "DONE", "FAILED", "CANCELLED"] },
            "reason": { "type": "string", "description": "Why a FAILED job failed (e.g. its key was revoked), or that its owner cancelled it." },
            "createdAt": time,
            "finishedAt": time,
            "rowsTotal": count,
            "rowsDone": count,
            "rowsPending": count,
            "summary": {
                "type": "object",
                "required": ["enriched", "notFound", "incomplete", "suppressed", "invalid", "erased", "errors"],
                "properties": {
                    "enriched": count, "notFound": count, "incomplete": count,
                    "suppressed": count, "invalid": count, "erased": count, "cancelled": count,
                    "errors": { "type": "object", "additionalProperties": count,
                                "description": "Rows refused, by gRPC status name." },
                },
            },
            "webhook": { "type": "string", "enum": ["NONE", "PENDING", "DELIVERED", "FAILED"] },
            "results": { "type": "string", "description": "The path of the job's results." },
            "webhookSecret": { "type": "string",
                               "description": "Only in the answer to the submission, with a webhookUrl: the key of the HMAC-SHA-256 signature of each delivery." },
        },
    })
}

fn batch_operation(operation_id: &str, summary: &str, responses: Value) -> Value {
    let mut responses = responses;
    responses["default"] = refusal();
    let mut parameters = vec![
        json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }),
    ];
    if operation_id == "getBatchResults" {
        parameters.push(json!({ "name": "format", "in": "query", "required": false,
                                "schema": { "type": "string", "enum": ["ndjson", "csv"] } }));
        parameters.push(json!({ "name": "delimiter", "in": "query", "required": false,
                                "description": "The CSV table's field delimiter (format=csv).",
                                "schema": { "type": "string", "enum": ["comma", "semicolon", "tab"] } }));
        parameters.push(json!({ "name": "bom", "in": "query", "required": false,
                                "description": "Start the CSV table with UTF-8's byte-order mark, which Excel needs to read it as UTF-8 (format=csv).",
                                "schema": { "type": "boolean" } }));
        parameters.push(json!({ "name": "outcome", "in": "query", "required": false,
                                "description": "Only the rows of this outcome (`error` holds every `error:<CODE>`).",
                                "schema": { "type": "string", "enum": crate::batch::jobs::OUTCOMES } }));
        parameters.push(json!({ "name": "after", "in": "query", "required": false,
                                "description": "Only the rows after this row number (the last row of the previous page).",
                                "schema": { "type": "integer", "minimum": 0, "maximum": i64::MAX } }));
        parameters.push(json!({ "name": "limit", "in": "query", "required": false,
                                "description": "At most this many rows.",
                                "schema": { "type": "integer", "minimum": 1, "maximum": i64::MAX } }));
    }
    json!({
        "operationId": operation_id,
        "summary": summary,
        "description": "Needs an API key with the `stream` scope; only the key that submitted the job sees it (404 for any other).",
        "parameters": parameters,
        "responses": responses,
    })
}

fn list_batches_operation() -> Value {
    json!({
        "operationId": "listBatches",
        "summary": "The caller's own batch jobs, newest first, a page at a time",
        "description": "Needs an API key with the `stream` scope; lists only the jobs that key submitted.",
        "parameters": [
            { "name": "pageSize", "in": "query", "required": false,
              "schema": { "type": "integer", "minimum": 1, "maximum": 100 }, "description": "Jobs per page (default 20)." },
            { "name": "pageToken", "in": "query", "required": false,
              "schema": { "type": "string" }, "description": "The previous page's nextPageToken." },
        ],
        "responses": {
            "200": { "description": "A page of jobs.", "content": { "application/json": { "schema": {
                "type": "object", "required": ["jobs", "nextPageToken"],
                "properties": {
                    "jobs": { "type": "array", "items": { "$ref": "#/components/schemas/BatchJob" } },
                    "nextPageToken": { "type": "string", "description": "Empty on the last page." },
                },
            } } } },
            "default": refusal(),
        },
    })
}

fn submit_batch_operation() -> Value {
    let text = |name: &str, description: &str| json!({ "name": name, "in": "query", "required": false, "schema": { "type": "string" }, "description": description });
    json!({
        "operationId": "submitBatch",
        "summary": "Submit a list (CSV or NDJSON) as a batch job",
        "description": "Needs an API key with the `stream` scope. The claim (purpose, lawful basis, evidence, options) is checked before anything is stored; each row then runs as an EnrichRequest with its identifier, its name and region columns as hints. The job survives a restart; each row is answered once.",
        "parameters": [
            text("purpose", "A declared purpose id."),
            text("lawfulBasis", "LAWFUL_BASIS_CONSENT, LAWFUL_BASIS_CONTRACT, LAWFUL_BASIS_LEGAL_OBLIGATION, LAWFUL_BASIS_PUBLIC_TASK or LAWFUL_BASIS_LEGITIMATE_INTERESTS."),
            text("evidence.consentRef", "With LAWFUL_BASIS_CONSENT."),
            text("evidence.legitimateInterestAssessmentRef", "With LAWFUL_BASIS_LEGITIMATE_INTERESTS."),
            text("evidence.contractRef", "With LAWFUL_BASIS_CONTRACT."),
            text("options.view", "VIEW_SUMMARY, VIEW_STANDARD or VIEW_FULL (default)."),
            text("webhookUrl", "Told when the job ends: a POST of the job's JSON, signed (Enrichd-Timestamp, Enrichd-Signature: v1=<hex HMAC-SHA-256 of \"<timestamp>.<body>\">)."),
            text("emailColumn", "The column holding the email address (default: email, e-mail, email_address or mail)."),
            text("phoneColumn", "The column holding the phone number (default: phone, phone_number, mobile, tel or telephone)."),
        ],
        "requestBody": {
            "required": true,
            "content": {
                "text/csv": { "schema": { "type": "string" } },
                "application/x-ndjson": { "schema": { "type": "string" } },
            },
        },
        "responses": {
            "202": {
                "description": "The job, accepted and started.",
                "content": { "application/json": { "schema": { "$ref": "#/components/schemas/BatchJob" } } },
                "links": {
                    "GetBatch": { "operationId": "getBatch", "parameters": { "id": "$response.body#/id" } },
                    "GetBatchResults": { "operationId": "getBatchResults", "parameters": { "id": "$response.body#/id" } },
                },
            },
            "default": refusal(),
        },
    })
}

fn build() -> Value {
    let set = FileDescriptorSet::decode(crate::proto::FILE_DESCRIPTOR_SET)
        .expect("the compiled descriptor set decodes");
    let mut types = Types {
        messages: BTreeMap::new(),
        enums: BTreeMap::new(),
    };
    for file in set.file.iter().filter(|f| f.package() == "enrichd.v1") {
        for e in &file.enum_type {
            let values = e.value.iter().map(|v| v.name().to_owned()).collect();
            types.enums.insert(format!("{PACKAGE}{}", e.name()), values);
        }
        for m in &file.message_type {
            collect(PACKAGE, m, &mut types);
        }
    }
    let mut schemas: serde_json::Map<String, Value> = types
        .messages
        .iter()
        .filter(|(_, m)| !m.options.as_ref().is_some_and(|o| o.map_entry()))
        .map(|(name, m)| (schema_name(name), message_schema(m, &types)))
        .collect();
    schemas.insert(
        "Error".into(),
        json!({
            "type": "object",
            "required": ["error"],
            "properties": { "error": {
                "type": "object",
                "required": ["code", "status", "message", "details"],
                "properties": {
                    "code": { "type": "integer", "description": "The HTTP status code." },
                    "status": { "type": "string", "description": "The gRPC status name, e.g. INVALID_ARGUMENT." },
                    "message": { "type": "string" },
                    "details": { "type": "array", "items": {
                        "type": "object",
                        "required": ["@type"],
                        "properties": { "@type": { "type": "string" } },
                    } },
                },
            } },
        }),
    );
    schemas.insert(
        "Health".into(),
        json!({
            "type": "object",
            "required": ["status"],
            "properties": {
                "status": { "type": "string", "enum": ["SERVING", "NOT_SERVING"] },
                "cluster": { "type": "string", "enum": ["SHARED", "FALLBACK"] },
            },
        }),
    );
    schemas.insert("BatchJob".into(), batch_job_schema());
    let health = |operation_id: &str, summary: &str| {
        json!({ "get": {
            "operationId": operation_id,
            "summary": summary,
            "security": [],
            "responses": {
                "200": { "description": "Serving.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Health" } } } },
                "503": { "description": "Not serving.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Health" } } } },
            },
        } })
    };
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "enrichd",
            "version": "v1",
            "description": "Contact enrichment with provenance and GDPR flags: the gRPC service enrichd.v1.Enrichment as JSON over HTTP. Bodies are the proto messages in their proto3 JSON form.",
        },
        // Relative: the document describes the server that serves it.
        "servers": [{ "url": "/" }],
        "security": [{ "bearer": [] }, {}],
        "paths": {
            "/v1/enrich": { "post": operation("enrich", "Enrich one email address or phone number", "enrich", Some("EnrichRequest"), "EnrichResponse") },
            "/v1/erase": { "post": operation("erase", "Erase a person, or record their objection (GDPR Art. 17, 21)", "erase", Some("EraseRequest"), "EraseResponse") },
            "/v1/access": { "post": operation("access", "What is held about a person (GDPR Art. 15)", "access", Some("AccessRequest"), "AccessResponse") },
            "/v1/feedback": { "post": operation("feedback", "Feedback on one finding of an answer: wrong person, not there, or correct", "feedback", Some("FeedbackRequest"), "FeedbackResponse") },
            "/v1/sources": { "get": operation("listSources", "The source catalog", "sources", None, "ListSourcesResponse") },
            "/v1/batches": { "post": submit_batch_operation(), "get": list_batches_operation() },
            "/v1/batches/{id}": { "get": batch_operation(
                "getBatch",
                "A batch job's state, progress and counts",
                json!({ "200": { "description": "The job.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/BatchJob" } } } } }),
            ), "delete": batch_operation(
                "cancelBatch",
                "Cancels a running batch job: rows not started never run, the job ends CANCELLED (400 FAILED_PRECONDITION for a job that ended)",
                json!({ "200": { "description": "The job, cancelled.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/BatchJob" } } } } }),
            ) },
            "/v1/batches/{id}/webhook": { "post": batch_operation(
                "redeliverWebhook",
                "Delivers an ended job's webhook again (400 FAILED_PRECONDITION without a webhookUrl or while running)",
                json!({ "202": { "description": "The job; its webhook is being delivered.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/BatchJob" } } } } }),
            ) },
            "/v1/batches/{id}/results": { "get": batch_operation(
                "getBatchResults",
                "A batch job's answered rows, in order, as NDJSON",
                json!({ "200": { "description": "One JSON object per answered row: `row`, `input` (the row's columns), then `answer` (an EnrichResponse), `error`, or `erased: true`. Rows not answered yet are left out. With `format=csv`: the rows' columns and the answers' summary columns as CSV.",
                                 "content": { "application/x-ndjson": { "schema": { "type": "string" } },
                                              "text/csv": { "schema": { "type": "string" } } } } }),
            ) },
            "/v1/batches/{id}/audience": { "get": batch_operation(
                "getBatchAudience",
                "A batch job's audience report: shares, distributions and segments, no cell under k people (400 FAILED_PRECONDITION for a purpose without audience analytics)",
                json!({ "200": { "description": "The report: `rows`, `k`, `noise`, tables (`outcomes`, `platforms`, `interests` by tier, `footprint`, `risk`, `channels`, `accountAge`), each with `cells` (`key`, `label`, `people`, `share`) and `other` (folded cells), and `segments` (`shown`, each with its `label`, `people`, `share`, and the `interests` and `platforms` that set it apart with their `lift`).",
                                 "content": { "application/json": { "schema": { "type": "object" } } } } }),
            ) },
            "/v1/batches/{id}/audience/members": { "get": batch_operation(
                "getBatchAudienceMembers",
                "Each answered row's segment, as NDJSON (needs the `segments` scope too, and a purpose with audience_members; the segment is kept with the row, shown by Access and erased with the person)",
                json!({ "200": { "description": "One JSON object per answered row: `row`, `segment` (null when not found or in a folded segment), `label`.",
                                 "content": { "application/x-ndjson": { "schema": { "type": "string" } } } } }),
            ) },
            "/healthz": health("healthz", "Alive"),
            "/readyz": health("readyz", "Ready to enrich (with replicas: whether Redis is shared)"),
            "/openapi.json": { "get": {
                "operationId": "openapi",
                "summary": "This document",
                "security": [],
                "responses": { "200": { "description": "The OpenAPI document.", "content": { "application/json": { "schema": { "type": "object" } } } } },
            } },
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "description": "An API key made with `enrichd keys create`." } },
            "schemas": schemas,
        },
    })
}
