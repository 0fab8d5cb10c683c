//! JSON over HTTP, called with a real HTTP client against the running
//! server: the same answers, callers, scopes and refusals as gRPC.
use crate::common;

use common::{TestApp, email_request, with_key};
use enrichd::auth::Scope;
use enrichd::auth::keys::NewKey;
use serde_json::{Value, json};

const HTTP: &str = "[dns]\nenabled = false\n[server]\nhttp_listen = \"127.0.0.1:0\"\n";

struct Http {
    base: String,
    client: reqwest::Client,
}

impl Http {
    fn of(app: &TestApp) -> Self {
        Self {
            base: format!("http://{}", app.http_addr.expect("HTTP is served")),
            client: reqwest::Client::new(),
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let answer = request.send().await.expect("the server answers");
        let status = answer.status().as_u16();
        let kind = answer
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = answer.bytes().await.unwrap();
        assert_eq!(kind.as_deref(), Some("application/json"), "{status}");
        (status, serde_json::from_slice(&body).expect("a JSON body"))
    }

    async fn post(&self, path: &str, body: &Value, key: Option<&str>) -> (u16, Value) {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(key) = key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        self.send(request).await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.client.get(format!("{}{path}", self.base)))
            .await
    }
}

fn enrich_body(email: &str) -> Value {
    json!({
        "email": email,
        "purpose": "marketing",
        "lawfulBasis": "LAWFUL_BASIS_LEGITIMATE_INTERESTS",
        "evidence": { "legitimateInterestAssessmentRef": "LIA-1" },
    })
}

#[tokio::test]
async fn enrich_over_http_is_the_grpc_answer_as_json() {
    let app = TestApp::spawn(HTTP).await;
    let http = Http::of(&app);
    let (status, answer) = http
        .post("/v1/enrich", &enrich_body("jane@example.test"), None)
        .await;
    assert_eq!(status, 200, "{answer}");
    let grpc = app
        .client()
        .await
        .enrich(email_request("jane@example.test"))
        .await
        .unwrap()
        .into_inner();
    let grpc = serde_json::to_value(&grpc).unwrap();
    // One document: the same fields at every level (ids and times differ).
    fn shape(v: &Value) -> Value {
        match v {
            Value::Object(m) => m.iter().map(|(k, v)| (k.clone(), shape(v))).collect(),
            Value::Array(a) => a.first().map_or(json!([]), |v| json!([shape(v)])),
            _ => Value::Null,
        }
    }
    assert_eq!(shape(&answer), shape(&grpc));
    // Stable JSON: false and zero are there, not left out.
    assert_eq!(answer["compliance"]["identifierSuppressed"], json!(false));
    assert!(answer["compliance"]["specialCategoriesSuppressed"].is_number());
    assert_eq!(answer["requestId"], json!(""), "{}", answer["identifier"]);
    // Durations a spreadsheet reads: whole days and milliseconds beside them.
    assert_eq!(answer["compliance"]["retention"], json!("15552000s"));
    assert_eq!(answer["compliance"]["retentionDays"], json!(180));
    for outcome in answer["sources"].as_array().unwrap() {
        assert!(outcome["latencyMs"].is_u64(), "{outcome}");
    }
}

#[tokio::test]
async fn a_bad_body_is_refused_naming_the_field() {
    let app = TestApp::spawn(HTTP).await;
    let http = Http::of(&app);
    let (status, answer) = http
        .post(
            "/v1/enrich",
            &json!({ "email": 5, "purpose": "marketing" }),
            None,
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["status"], "INVALID_ARGUMENT");
    let violation = &answer["error"]["details"][0];
    assert_eq!(
        violation["@type"],
        "type.googleapis.com/google.rpc.BadRequest"
    );
    assert_eq!(violation["fieldViolations"][0]["field"], "email");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("email: invalid type: integer `5`, expected a string"),
        "{answer}"
    );

    // A count out of its range says so, naming the field.
    for count in [json!(-1), json!(1e20), json!(2.5)] {
        let (status, answer) = http
            .post(
                "/v1/enrich",
                &json!({ "email": "a@example.test", "options": { "maxInterests": count } }),
                None,
            )
            .await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(
            answer["error"]["message"],
            "options.maxInterests: is not a number within this field's range",
            "{count}"
        );
    }

    // An enum's number that is none of its values names the field and
    // the values, once.
    let (status, answer) = http
        .post(
            "/v1/enrich",
            &json!({ "email": "a@example.test", "lawfulBasis": 7 }),
            None,
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "lawfulBasis: invalid value: integer `7`, expected one of [\"LAWFUL_BASIS_UNSPECIFIED\""
        ),
        "{answer}"
    );

    // Well-formed, but no lawful ground: the pipeline's own refusal.
    let (status, answer) = http
        .post(
            "/v1/enrich",
            &json!({ "email": "a@example.test", "purpose": "marketing" }),
            None,
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["status"], "FAILED_PRECONDITION");
    assert_eq!(
        answer["error"]["details"][0]["@type"],
        "type.googleapis.com/google.rpc.PreconditionFailure"
    );

    // Not JSON, and an unknown path.
    let plain = http
        .client
        .post(format!("{}/v1/enrich", http.base))
        .header("content-type", "text/plain")
        .body("email=a@example.test");
    let (status, answer) = http.send(plain).await;
    assert_eq!(status, 415);
    assert_eq!(
        answer["error"]["code"], 415,
        "the body's code is the HTTP code"
    );
    // A media type is JSON in any case, with parameters or a +json suffix;
    // a type that only begins like it is not.
    let body = json!({ "email": "a@example.test", "purpose": "marketing" }).to_string();
    for (kind, expected) in [
        ("Application/JSON; charset=UTF-8", 400),
        ("application/vnd.enrichd+json", 400),
        ("application/json-seq", 415),
        ("application/jsonp", 415),
        ("application/json/x", 415),
    ] {
        let sent = http
            .client
            .post(format!("{}/v1/enrich", http.base))
            .header("content-type", kind)
            .body(body.clone());
        let (status, answer) = http.send(sent).await;
        assert_eq!(status, expected, "{kind}: {answer}");
    }
    let (status, answer) = http.get("/v1/nothing").await;
    assert_eq!(status, 404);
    assert_eq!(answer["error"]["status"], "NOT_FOUND");

    // A known endpoint, the wrong method: 405, the methods it takes, and the
    // same JSON error.
    let answer = http
        .client
        .get(format!("{}/v1/enrich", http.base))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 405);
    assert_eq!(answer.headers()["allow"], "POST");
    let error: Value = serde_json::from_slice(&answer.bytes().await.unwrap()).unwrap();
    assert_eq!(error["error"]["code"], 405, "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("does not take GET"),
        "{error}"
    );

    // Two identifiers: the second is named, and the rule.
    let both =
        json!({ "email": "a@example.test", "phone": "+14155550100", "purpose": "marketing" });
    let (status, answer) = http.post("/v1/enrich", &both, None).await;
    assert_eq!(status, 400, "{answer}");
    let violation = &answer["error"]["details"][0]["fieldViolations"][0];
    assert_eq!(violation["field"], "phone", "{answer}");
    assert_eq!(
        violation["description"],
        "give one identifier, once: either email or phone"
    );
}

#[tokio::test]
async fn http_callers_need_a_key_with_the_scope_like_grpc_callers() {
    let app = TestApp::spawn(&format!("{HTTP}[auth]\nrequired = true\n")).await;
    let http = Http::of(&app);
    let keys = app.keys().await;
    let key = |name: &str, scope: Scope| NewKey {
        name: name.into(),
        scopes: [scope].into_iter().collect(),
        purposes: Default::default(),
        quota_per_second: None,
        expires_in: None,
    };
    let crm = keys.create(key("crm", Scope::Enrich)).await.unwrap();
    let dpo = keys.create(key("dpo", Scope::Access)).await.unwrap();
    let body = enrich_body("ann@example.test");

    let (status, answer) = http.post("/v1/enrich", &body, None).await;
    assert_eq!(
        (status, answer["error"]["status"].clone()),
        (401, json!("UNAUTHENTICATED"))
    );
    let (status, answer) = http.post("/v1/enrich", &body, Some("not-a-key")).await;
    assert_eq!(status, 401, "{answer}");
    let (status, answer) = http.post("/v1/enrich", &body, Some(&dpo.secret)).await;
    assert_eq!(
        (status, answer["error"]["status"].clone()),
        (403, json!("PERMISSION_DENIED"))
    );
    let (status, answer) = http.post("/v1/enrich", &body, Some(&crm.secret)).await;
    assert_eq!(status, 200, "{answer}");
    // The scheme in any case; two credentials, even one of them good, never.
    let sent = |values: &[String]| {
        let mut request = http
            .client
            .post(format!("{}/v1/enrich", http.base))
            .header("content-type", "application/json")
            .body(body.to_string());
        for value in values {
            request = request.header("authorization", value);
        }
        request
    };
    let (status, answer) = http.send(sent(&[format!("bearer {}", crm.secret)])).await;
    assert_eq!(status, 200, "{answer}");
    let two = [
        format!("Bearer {}", crm.secret),
        format!("Bearer {}", dpo.secret),
    ];
    let (status, answer) = http.send(sent(&two)).await;
    assert_eq!(status, 401, "{answer}");
    assert_eq!(
        answer["error"]["message"],
        "authorization: send one header, not several"
    );

    // The ledger says who asked, over HTTP as over gRPC.
    let (status, report) = http
        .post(
            "/v1/access",
            &json!({ "email": "ann@example.test", "reference": "DSR-1" }),
            Some(&dpo.secret),
        )
        .await;
    assert_eq!(status, 200, "{report}");
    let records = report["ledger"].as_array().unwrap();
    assert!(
        records
            .iter()
            .any(|r| r["callerKeyId"] == json!(crm.id) && r["caller"] == "crm"),
        "{report}"
    );
    // Health and the API description need no key.
    assert_eq!(http.get("/healthz").await.0, 200);
    assert_eq!(http.get("/openapi.json").await.0, 200);
    // gRPC refuses the same way (one stack behind both doors).
    let refused = app
        .client()
        .await
        .enrich(with_key(email_request("ann@example.test"), &dpo.secret))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
}

#[tokio::test]
async fn erase_sources_and_readiness_over_http() {
    let app = TestApp::spawn(HTTP).await;
    let http = Http::of(&app);
    assert_eq!(
        http.post("/v1/enrich", &enrich_body("bo@example.test"), None)
            .await
            .0,
        200
    );
    let (status, erased) = http
        .post(
            "/v1/erase",
            &json!({ "email": "bo@example.test", "kind": "KIND_ERASURE", "reference": "DSR-2" }),
            None,
        )
        .await;
    assert_eq!(status, 200, "{erased}");
    assert!(
        erased["ledgerRecordsRedacted"].as_u64().unwrap() >= 1,
        "{erased}"
    );
    let (_, again) = http
        .post("/v1/enrich", &enrich_body("bo@example.test"), None)
        .await;
    assert_eq!(again["compliance"]["identifierSuppressed"], json!(true));

    let (status, sources) = http.get("/v1/sources").await;
    assert_eq!(status, 200);
    assert!(sources["sources"].is_array());
    let (status, ready) = http.get("/readyz").await;
    assert_eq!((status, ready["status"].clone()), (200, json!("SERVING")));
    assert!(ready.get("cluster").is_none(), "one process: {ready}");
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused() {
    let app = TestApp::spawn(&format!("{HTTP}max_request_bytes = 2048\n")).await;
    let http = Http::of(&app);
    let big = json!({ "email": "a@example.test", "requestId": "x".repeat(4096) });
    let answer = http
        .client
        .post(format!("{}/v1/enrich", http.base))
        .header("content-type", "application/json")
        .body(big.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 413);
    // The same JSON error as every other refusal, with the gRPC door's
    // status for a message over the limit.
    let error: Value = serde_json::from_slice(&answer.bytes().await.unwrap()).unwrap();
    assert_eq!(error["error"]["status"], "OUT_OF_RANGE", "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("body: larger than"),
        "{error}"
    );
}

/// The committed OpenAPI document is the one the server serves, which is
/// generated from the proto. `ENRICHD_WRITE_OPENAPI=1` rewrites the file.
#[tokio::test]
async fn the_committed_openapi_document_is_the_served_one() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/proto/enrichd/v1/openapi.json");
    let generated = enrichd::api::openapi::document();
    let text = serde_json::to_string_pretty(&generated).unwrap() + "\n";
    if std::env::var_os("ENRICHD_WRITE_OPENAPI").is_some() {
        std::fs::write(path, &text).unwrap();
    }
    let committed = std::fs::read_to_string(path).expect("the committed document");
    assert!(
        committed == text,
        "proto/enrichd/v1/openapi.json is out of date: ENRICHD_WRITE_OPENAPI=1 cargo test --test it http::the_committed_openapi"
    );
    let app = TestApp::spawn(HTTP).await;
    let (status, served) = Http::of(&app).get("/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(served, generated);
    // Every reference resolves.
    let schemas = generated["components"]["schemas"].as_object().unwrap();
    let mut refs = Vec::new();
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|v| walk(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    walk(&generated, &mut refs);
    for r in refs {
        let name = r.trim_start_matches("#/components/schemas/");
        assert!(schemas.contains_key(name), "dangling {r}");
    }
}

/// A CRM maps the summary: each value with where it came from, a few KB
/// with `VIEW_SUMMARY`, the same summary inside the full answer.
#[tokio::test]
async fn the_summary_view_is_small_and_points_to_its_sources() {
    let (app, _sandbox) =
        common::sandbox_app_with("[server]\nhttp_listen = \"127.0.0.1:0\"\n").await;
    let http = Http::of(&app);
    let mut body = enrich_body("jane.doe@example.com");
    let (status, full) = http.post("/v1/enrich", &body, None).await;
    assert_eq!(status, 200, "{full}");
    body["options"] = json!({ "view": "VIEW_SUMMARY" });
    let (status, summary) = http.post("/v1/enrich", &body, None).await;
    assert_eq!(status, 200, "{summary}");

    let s = &summary["summary"];
    // (The sandbox's flaky site answers every other call: the two answers
    // may differ by its profile, not by the name.)
    assert_eq!(
        s["displayName"]["value"],
        full["summary"]["displayName"]["value"]
    );
    let name = &s["displayName"];
    assert!(!name["value"].as_str().unwrap().is_empty(), "{s}");
    let source = name["sourceId"].as_str().unwrap();
    let (_, sources) = http.get("/v1/sources").await;
    assert!(
        sources["sources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == source),
        "the name's source is a source of the catalog: {s}"
    );
    assert!(name["url"].as_str().unwrap().starts_with("http"), "{s}");
    assert!(s["profilesFound"].as_u64().unwrap() >= 5, "{s}");
    assert_eq!(s["identifierValid"], json!(true));
    assert!(!s["topInterests"].as_array().unwrap().is_empty(), "{s}");

    assert!(summary["profiles"].as_array().unwrap().is_empty());
    assert!(summary["sources"].as_array().unwrap().is_empty());
    assert!(!summary["compliance"].is_null());
    let (small, large) = (summary.to_string().len(), full.to_string().len());
    assert!(
        small < 8_000 && small * 5 < large,
        "{small} bytes vs {large}"
    );
}

/// A web page cannot drive a server that takes no keys: a request addressed
/// to another name (what DNS rebinding sends) is refused before it does
/// anything, and a body must say it is JSON (a cross-site form or text post
/// is not read as one). A server that takes keys answers any name.
#[tokio::test]
async fn an_anonymous_server_answers_loopback_names_and_typed_bodies_only() {
    let app = TestApp::spawn(HTTP).await;
    let http = Http::of(&app);
    let erase = json!({ "email": "jane@example.com", "reference": "DSR-1" });
    let rebound = http
        .client
        .post(format!("{}/v1/erase", http.base))
        .header("host", "rebind.attacker.example")
        .header("content-type", "application/json")
        .body(erase.to_string());
    let (status, body) = http.send(rebound).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("host:")
    );
    let untyped = http
        .client
        .post(format!("{}/v1/erase", http.base))
        .body(erase.to_string());
    let (status, body) = http.send(untyped).await;
    assert_eq!(status, 415, "{body}");
    // Nothing was erased by either.
    let mut client = app.client().await;
    let answer = client
        .enrich(common::email_request("jane@example.com"))
        .await
        .unwrap()
        .into_inner();
    assert!(!answer.compliance.unwrap().identifier_suppressed);
    // By a loopback name, with its type, it is done.
    for host in ["localhost", "127.0.0.1:8080", "[::1]:9"] {
        let asked = http
            .client
            .get(format!("{}/readyz", http.base))
            .header("host", host);
        assert_eq!(http.send(asked).await.0, 200, "{host}");
    }
    let (status, body) = http.post("/v1/erase", &erase, None).await;
    assert_eq!(status, 200, "{body}");

    let keyed = TestApp::spawn(&format!("{HTTP}[auth]\nrequired = true\n")).await;
    let keyed_http = Http::of(&keyed);
    let elsewhere = keyed_http
        .client
        .get(format!("{}/readyz", keyed_http.base))
        .header("host", "enrichd.internal.example");
    assert_eq!(keyed_http.send(elsewhere).await.0, 200);
}

/// While the ledger's database is out of reach every call would fail
/// (nothing is answered without its record), so readiness says so and a
/// load balancer stops sending; once it answers again, so does readiness.
#[tokio::test]
async fn readiness_follows_the_ledger_database() {
    let url = common::postgres_url().await;
    let (head, rest) = url.split_once('@').unwrap();
    let (host, tail) = rest.split_once('/').unwrap();
    let target = tokio::net::lookup_host(host).await.unwrap().next().unwrap();
    let proxy = common::proxy::Cuttable::to(target).await;
    let through = format!("{head}@{}/{tail}", proxy.addr);
    let app = TestApp::spawn(&format!(
        "{HTTP}[ledger]\nurl = \"{through}\"\nfollow_every = \"50ms\"\n"
    ))
    .await;
    let http = Http::of(&app);
    let (status, ready) = http.get("/readyz").await;
    assert_eq!((status, ready["status"].clone()), (200, json!("SERVING")));

    proxy.cut();
    let (status, ready) = common::eventually("readiness turns NOT_SERVING", || async {
        let (status, ready) = http.get("/readyz").await;
        (status != 200).then_some((status, ready))
    })
    .await;
    assert_eq!(
        (status, ready["status"].clone()),
        (503, json!("NOT_SERVING"))
    );
    assert_eq!(
        common::health(&app).await.unwrap(),
        tonic_health::pb::health_check_response::ServingStatus::NotServing
    );

    proxy.mend();
    common::eventually("readiness is back", || async {
        (http.get("/readyz").await.0 == 200).then_some(())
    })
    .await;
    let (status, body) = http
        .post("/v1/enrich", &enrich_body("back@example.test"), None)
        .await;
    assert_eq!(status, 200, "{body}");
}

/// A CRM maps the summary: every key is there for a person found, one not
/// found and one erased; `status` says which; an erased person's summary
/// says SUPPRESSED (not "invalid"); and for fraud prevention, profiles that
/// exist but are not returned are counted apart from those returned.
#[tokio::test]
async fn every_summary_key_is_present_and_says_what_the_answer_is() {
    let (app, _sandbox) =
        common::sandbox_app_with("[server]\nhttp_listen = \"127.0.0.1:0\"\n").await;
    let http = Http::of(&app);
    let found = summary_of(&http, enrich_body("jane.doe@example.com")).await;
    let not_found = summary_of(&http, enrich_body("nobody@example.org")).await;
    let erase = json!({ "email": "erased@example.com", "reference": "DSR-1" });
    assert_eq!(http.post("/v1/erase", &erase, None).await.0, 200);
    let erased = summary_of(&http, enrich_body("erased@example.com")).await;
    let keys = |v: &Value| {
        v.as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(keys(&found), keys(&not_found));
    assert_eq!(keys(&found), keys(&erased));
    for key in [
        "displayName",
        "location",
        "avatarUrl",
        "verdict",
        "didYouMean",
        "status",
    ] {
        assert!(found.get(key).is_some(), "{key}: {found}");
    }
    assert!(not_found["displayName"].is_object(), "{not_found}");
    assert_eq!(found["status"], "STATUS_FOUND");
    assert_eq!(not_found["status"], "STATUS_NOT_FOUND", "{not_found}");
    assert_eq!(erased["status"], "STATUS_SUPPRESSED");

    let mut fraud = enrich_body("jane.doe@example.com");
    fraud["purpose"] = json!("fraud_prevention");
    let fraud = summary_of(&http, fraud).await;
    assert_eq!(fraud["profilesFound"], 0, "{fraud}");
    assert!(fraud["profilesWithheld"].as_u64().unwrap() > 0, "{fraud}");
    assert_eq!(
        fraud["status"], "STATUS_FOUND",
        "found, not returned: {fraud}"
    );
}

async fn summary_of(http: &Http, body: Value) -> Value {
    let (status, answer) = http.post("/v1/enrich", &body, None).await;
    assert_eq!(status, 200, "{answer}");
    answer["summary"].clone()
}

/// Errors name fields as the JSON request does (camelCase paths), each in
/// one sentence that says its field once.
#[tokio::test]
async fn errors_name_fields_as_the_json_request_does() {
    let app = TestApp::spawn(HTTP).await;
    let http = Http::of(&app);
    let (status, error) = http.post("/v1/enrich", &enrich_body("x"), None).await;
    assert_eq!(status, 400, "{error}");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("email address has no '@'"), "{message}");
    assert!(!message.contains("email email"), "{message}");

    let mut no_lia = enrich_body("ann@example.com");
    no_lia["evidence"] = json!({});
    let (status, error) = http.post("/v1/enrich", &no_lia, None).await;
    assert_eq!(status, 400, "{error}");
    let text = error.to_string();
    assert!(
        text.contains("evidence.legitimateInterestAssessmentRef"),
        "{text}"
    );
    assert!(!text.contains("legitimate_interest"), "{text}");

    let mut no_basis = enrich_body("ann@example.com");
    no_basis.as_object_mut().unwrap().remove("lawfulBasis");
    let (_, error) = http.post("/v1/enrich", &no_basis, None).await;
    let text = error.to_string();
    assert!(
        text.contains("lawfulBasis") && !text.contains("lawful_basis"),
        "{text}"
    );
}
