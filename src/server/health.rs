//! What the health service says, kept true by watching what it depends on:
//! the ledger writer and database (no call is answered without its record) and, with
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

/// The service is in rotation while the ledger writer runs and the ledger
/// database answers (no call is answered without its record), until the
/// server drains (`draining` turns true; the drain says NOT_SERVING itself).
pub(super) fn follow_ledger(
    reporter: HealthReporter,
    ledger: &Ledger,
    mut draining: tokio::sync::watch::Receiver<bool>,
) {
    let mut running = ledger.writer_state();
    let mut reachable = ledger.reachable();
    tokio::spawn(async move {
        // What was last reported: the database check notifies on every
        // check (every `ledger.follow_every`), and a status set again each
        // time reached watchers as a stream of repeated SERVING that a
        // drain's NOT_SERVING could arrive behind.
        let mut reported: Option<bool> = None;
        loop {
            let (writer, database) = (*running.borrow_and_update(), *reachable.borrow_and_update());
            // Set here too: the writer's own gauge is set when the ledger
            // opens, before the metrics recorder may exist.
            metrics::gauge!("enrichd_ledger_writer_up").set(f64::from(u8::from(writer)));
            metrics::gauge!("enrichd_ledger_database_up").set(f64::from(u8::from(database)));
            let up = writer && database;
            if *draining.borrow_and_update() {
                return;
            }
            if reported == Some(up) {
                // Nothing to say: wait for the next change.
            } else if up {
                reporter
                    .set_serving::<EnrichmentServer<EnrichmentService>>()
                    .await;
                reporter
                    .set_service_status("", ServingStatus::Serving)
                    .await;
                // A drain that began meanwhile has the last word.
                if *draining.borrow() {
                    not_serving(&reporter).await;
                    return;
                }
            } else {
                not_serving(&reporter).await;
            }
            reported = Some(up);
            // A closed channel is a writer (or ledger) that is gone.
            let gone = tokio::select! {
                changed = running.changed() => changed.is_err(),
                changed = reachable.changed() => changed.is_err(),
                _ = draining.changed() => false,
            };
            if gone {
                not_serving(&reporter).await;
                return;
            }
        }
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
