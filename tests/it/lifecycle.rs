//! Load shedding and graceful shutdown, with a call held in flight by a DNS
//! gate (no sleeps: the test waits for the query to reach the gate).
use crate::common;

use std::time::Duration;

use common::{Gate, TestApp, email_request, phone_request};
use enrichd::proto::v1 as pb;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tonic_types::StatusExt;

/// A failure guard for awaits that must finish; not a timing assertion.
const GUARD: Duration = Duration::from_secs(20);

async fn held_call(
    app: &TestApp,
) -> tokio::task::JoinHandle<Result<pb::EnrichResponse, tonic::Status>> {
    let mut client = app.client().await;
    tokio::spawn(async move {
        client
            .enrich(email_request("jane@example.test"))
            .await
            .map(|r| r.into_inner())
    })
}

#[tokio::test]
async fn over_the_concurrency_limit_calls_are_shed_with_retry_info() {
    let dns = common::dns::start().await;
    let gate = Gate::default();
    let gated = common::dns::gated(dns.addr, gate.clone()).await;
    let app = TestApp::with_dns(
        gated,
        "[server]\nmax_concurrent_requests = 1\nshed_retry_after = \"3s\"\n",
    )
    .await;

    let first = held_call(&app).await;
    tokio::time::timeout(GUARD, gate.arrived.notified())
        .await
        .expect("query reached the gate");

    // The only slot is taken: a second call is shed at once.
    let mut client = app.client().await;
    let status = client
        .enrich(phone_request("+447400123456"))
        .await
        .expect_err("shed");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let retry = status
        .get_error_details()
        .retry_info()
        .cloned()
        .expect("RetryInfo");
    assert_eq!(retry.retry_delay, Some(Duration::from_secs(3)));

    // The held call completes normally, and the slot is free again.
    gate.release.notify_one();
    let resp = tokio::time::timeout(GUARD, first)
        .await
        .unwrap()
        .unwrap()
        .expect("first call ok");
    let Some(pb::verification::Kind::Email(v)) = resp.verification.unwrap().kind else {
        panic!("email verification");
    };
    assert_eq!(v.mx.unwrap().status(), pb::mx_check::Status::Found);
    client
        .enrich(phone_request("+447400123456"))
        .await
        .expect("served after the slot is freed");
}

#[tokio::test]
async fn shutdown_turns_health_not_serving_and_lets_in_flight_calls_finish() {
    let dns = common::dns::start().await;
    let gate = Gate::default();
    let gated = common::dns::gated(dns.addr, gate.clone()).await;
    let mut app = TestApp::with_dns(gated, "[server]\ndrain_timeout = \"20s\"\n").await;

    let mut health = HealthClient::new(app.channel().await);
    let mut watch = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status(), ServingStatus::Serving);

    let in_flight = held_call(&app).await;
    tokio::time::timeout(GUARD, gate.arrived.notified())
        .await
        .expect("query reached the gate");

    app.stop();
    let next = tokio::time::timeout(GUARD, watch.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(next.status(), ServingStatus::NotServing);
    drop(watch);
    drop(health);

    // The call that was in flight when the signal came still gets its answer.
    gate.release.notify_one();
    let resp = tokio::time::timeout(GUARD, in_flight)
        .await
        .unwrap()
        .unwrap();
    assert!(resp.is_ok(), "{resp:?}");

    // And the server stops once it has drained.
    tokio::time::timeout(GUARD, app.handle)
        .await
        .expect("stopped")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn the_drain_is_bounded_when_a_call_never_finishes() {
    let dns = common::dns::start().await;
    let gate = Gate::default();
    let gated = common::dns::gated(dns.addr, gate.clone()).await;
    let mut app = TestApp::spawn(&format!(
        "[dns]\nnameservers = [\"{gated}\"]\ntimeout = \"120s\"\n[server]\ndrain_timeout = \"200ms\"\n"
    ))
    .await;

    let in_flight = held_call(&app).await;
    tokio::time::timeout(GUARD, gate.arrived.notified())
        .await
        .expect("query reached the gate");
    app.stop();
    // The gate is never released (and the lookup would wait two minutes):
    // the server gives up on the call after the drain timeout and stops.
    tokio::time::timeout(GUARD, app.handle)
        .await
        .expect("stopped")
        .unwrap()
        .unwrap();
    assert!(
        !in_flight.is_finished(),
        "the call was abandoned, not completed"
    );
    in_flight.abort();
}
