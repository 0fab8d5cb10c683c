//! What the health service says, kept true by watching what it depends on:
//! the ledger writer (no call is answered without its record) and, with
//! replicas, whether Redis is shared right now.
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::api::grpc::{EnrichmentServer, EnrichmentService};
use crate::cluster::Cluster;
use crate::ledger::Ledger;

/// The Enrichment service and the server as a whole turn NOT_SERVING (a
/// drain, or a stopped ledger writer).
pub(super) async fn not_serving(reporter: &HealthReporter) {
    reporter
        .set_not_serving::<EnrichmentServer<EnrichmentService>>()
        .await;
    reporter
        .set_service_status("", ServingStatus::NotServing)
        .await;
}

/// A stopped ledger writer takes the service out of rotation.
pub(super) fn follow_ledger_writer(reporter: HealthReporter, ledger: &Ledger) {
    let mut running = ledger.writer_state();
    tokio::spawn(async move {
        // A closed channel is a writer that is gone as well.
        let _ = running.wait_for(|running| !running).await;
        not_serving(&reporter).await;
    });
}

/// `enrichd.cluster` is SERVING in shared mode and NOT_SERVING in fallback
/// (the service itself keeps answering either way).
pub(super) fn follow_cluster(reporter: HealthReporter, cluster: &Cluster) {
    let mut up = cluster.up_changes();
    tokio::spawn(async move {
        loop {
            let status = if *up.borrow_and_update() {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            reporter
                .set_service_status(crate::api::CLUSTER_HEALTH, status)
                .await;
            if up.changed().await.is_err() {
                return;
            }
        }
    });
}
