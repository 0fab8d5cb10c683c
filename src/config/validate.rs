//! Validation: every problem of a configuration that deserialized, found in
//! one pass (vector's `validate()`).
use super::Config;
use crate::identity::Region;
use crate::model::{FIELDS, LawfulBasis};

impl Config {
    /// Semantic checks that types alone cannot express.
    pub(crate) fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let known = crate::catalog::pack_names();
        for pack in &self.sources.packs {
            if !known.contains(&pack.as_str()) {
                p.push(format!(
                    "sources.packs: no pack {pack:?} (the packs: {})",
                    known.join(", ")
                ));
            }
        }
        p.extend(self.feedback.problems());
        p.extend(self.audience.problems());
        p.extend(self.smtp.problems());
        let b = &self.batch;
        if b.max_job_rows == 0 {
            p.push("batch.max_job_rows: must be at least 1".into());
        }
        if b.max_running_jobs == 0 {
            p.push("batch.max_running_jobs: must be at least 1".into());
        }
        if b.max_concurrent_uploads == 0 {
            p.push("batch.max_concurrent_uploads: must be at least 1".into());
        }
        if b.max_upload_bytes < 1024 {
            p.push("batch.max_upload_bytes: must be at least 1024".into());
        }
        for origin in &b.webhook_private_origins {
            let ok = url::Url::parse(origin).is_ok_and(|u| {
                matches!(u.scheme(), "http" | "https") && u.host().is_some() && u.path() == "/"
            });
            if !ok {
                p.push(format!(
                    "batch.webhook_private_origins: {origin:?} is not an origin \
                     (scheme://host[:port], e.g. \"http://10.0.0.7:8080\")"
                ));
            }
        }
        let s = &self.server;
        if s.max_concurrent_requests == 0 {
            p.push("server.max_concurrent_requests: must be at least 1".into());
        }
        if s.max_request_bytes < 1024 {
            p.push("server.max_request_bytes: must be at least 1024".into());
        }
        if s.request_timeout.is_zero() {
            p.push("server.request_timeout: must be more than zero".into());
        }
        if s.max_connections == 0 {
            p.push("server.max_connections: must be at least 1".into());
        }
        if s.max_connections_per_address == 0 {
            p.push("server.max_connections_per_address: must be at least 1".into());
        }
        // The HTTP port speaks plain HTTP/1.1: beside a TLS gRPC port, off
        // loopback, it would take the same API keys in the clear.
        if let (Some(_), Some(addr)) = (&s.tls, s.http_listen)
            && !addr.ip().is_loopback()
        {
            p.push(format!(
                "server.http_listen: {addr} would serve plain HTTP (API keys in the clear) while \
                 [server.tls] protects the gRPC port; listen on a loopback address behind a \
                 TLS-terminating proxy, or leave it unset"
            ));
        }
        if s.max_concurrent_streams == 0 {
            p.push("server.max_concurrent_streams: must be at least 1".into());
        }
        for (name, value) in [
            ("idle_timeout", s.idle_timeout),
            ("first_call_within", s.first_call_within),
            ("http2_keepalive_interval", s.http2_keepalive_interval),
            ("http2_keepalive_timeout", s.http2_keepalive_timeout),
            ("stream_idle_timeout", s.stream_idle_timeout),
            ("stream_max_duration", s.stream_max_duration),
        ] {
            if value.is_zero() {
                p.push(format!("server.{name}: must be more than zero"));
            }
        }
        if let Some(problem) = self.anonymous_problem() {
            p.push(problem);
        }
        for (name, client) in &self.auth.clients {
            if client.scopes.is_empty() {
                p.push(format!(
                    "auth.clients.{name:?}.scopes: name at least one scope"
                ));
            }
            for purpose in &client.purposes {
                if !self.purposes.contains_key(purpose) {
                    p.push(format!(
                        "auth.clients.{name:?}.purposes: {purpose:?} is not a declared purpose"
                    ));
                }
            }
        }
        if !self.auth.clients.is_empty()
            && self
                .server
                .tls
                .as_ref()
                .is_none_or(|t| t.client_ca.is_none())
        {
            p.push("auth.clients: client certificates need server.tls.client_ca".into());
        }
        p.extend(self.cluster.problems(&self.ledger.url));
        for (name, value) in [
            ("sweep_every", self.ledger.sweep_every),
            ("follow_every", self.ledger.follow_every),
        ] {
            if value.is_zero() {
                p.push(format!("ledger.{name}: must be more than zero"));
            }
        }
        if self.sources.max_depth > 5 {
            p.push("sources.max_depth: at most 5".into());
        }
        if self.sources.deadline.is_zero() {
            p.push("sources.deadline: must be more than zero".into());
        }
        if self.http.max_requests_in_flight == 0 {
            p.push("http.max_requests_in_flight: must be at least 1".into());
        }
        if self.http.max_body_bytes < 1024 {
            p.push("http.max_body_bytes: must be at least 1024".into());
        }
        let b = &self.resilience.breaker;
        if b.consecutive_failures == 0 || b.window == 0 || b.trial_calls == 0 {
            p.push("resilience.breaker: consecutive_failures, window and trial_calls must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&b.failure_rate) {
            p.push("resilience.breaker.failure_rate: must be within 0..=1".into());
        }
        if !(0.0..=1.0).contains(&self.sources.min_coverage) {
            p.push("sources.min_coverage: must be within 0..=1".into());
        }
        if !(0.0..=1.0).contains(&self.resilience.retry_ratio) {
            p.push("resilience.retry_ratio: must be within 0..=1".into());
        }
        if self.dns.timeout.is_zero() {
            p.push("dns.timeout: must be more than zero".into());
        }
        if let Some(key) = &self.privacy.hash_key
            && (key.split_whitespace().next().is_none()
                || key.split_whitespace().any(|k| k.len() < 32))
        {
            p.push(
                "privacy.hash_key: must be at least 32 characters (after a rotation: keys of \
                 at least 32 characters separated by spaces)"
                    .into(),
            );
        }
        if let Some(region) = &self.phone.default_region
            && let Err(e) = region.parse::<Region>()
        {
            p.push(format!("phone.default_region: {e}"));
        }
        if self.purposes.is_empty() {
            p.push("purposes: at least one purpose must be declared".into());
        }
        for (id, purpose) in &self.purposes {
            if id.is_empty()
                || !id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                p.push(format!(
                    "purposes.{id}: ids use lowercase letters, digits and '_' only"
                ));
            }
            if purpose.description.trim().is_empty() {
                p.push(format!("purposes.{id}.description: must not be empty"));
            }
            if let Some(v) = purpose.verdict
                && (v.review > v.decline || v.decline > 100)
            {
                p.push(format!(
                    "purposes.{id}.verdict: review ({}) must be at most decline ({}), and \
                     decline at most 100",
                    v.review, v.decline
                ));
            }
            if purpose.lawful_bases.is_empty() {
                p.push(format!(
                    "purposes.{id}.lawful_bases: at least one lawful basis is required"
                ));
            }
            if purpose.lawful_bases.contains(&LawfulBasis::VitalInterests) {
                p.push(format!(
                    "purposes.{id}.lawful_bases: vital_interests never justifies enrichment"
                ));
            }
            for field in &purpose.fields {
                if !FIELDS.contains(&field.as_str()) {
                    p.push(format!(
                        "purposes.{id}.fields: {field:?} is not a response field ({})",
                        FIELDS.join(", ")
                    ));
                }
            }
            if purpose.retention.is_zero() {
                p.push(format!("purposes.{id}.retention: must be more than zero"));
            }
        }
        p
    }
}
