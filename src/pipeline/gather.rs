//! Stage 5, gather: the identifier is verified while the sources run
//! (each through the cache, under its rate limit and breaker, pivots in
//! rounds; see `engine`). Sources are asked only when a wanted field needs
//! them, and only those the purpose allows.
use super::Enricher;
use super::parse::Subject;
use super::policy::Permitted;
use super::query::EnrichQuery;
use crate::compliance::policy::FieldPolicy;
use crate::engine::Findings;
use crate::identity::Identifier;
use crate::model::Verification;

/// What the outside world said.
pub(super) struct Gathered {
    pub verification: Option<Verification>,
    pub findings: Findings,
}

impl Enricher {
    /// The identifier's verification, when a wanted field needs it.
    pub(super) async fn verify(
        &self,
        subject: &Subject,
        fields: &FieldPolicy,
        deadline: tokio::time::Instant,
    ) -> Option<Verification> {
        if !fields.needs_verification() {
            return None;
        }
        Some(match &subject.identifier {
            Identifier::Email(email) => {
                let checked = self.verifier.check_email(email, &subject.hash, deadline);
                Verification::Email(checked.await)
            }
            Identifier::Phone(phone) => Verification::Phone(self.verifier.check_phone(phone)),
        })
    }

    pub(super) async fn gather(
        &self,
        subject: &Subject,
        permitted: &Permitted,
        query: &EnrichQuery,
    ) -> Gathered {
        let fields = &permitted.fields;
        let verification = self.verify(subject, fields, query.deadline);
        let sources = async {
            if !fields.needs_sources() {
                return Findings::default();
            }
            self.engine
                .run(
                    &subject.identifier,
                    &permitted.ground.purpose,
                    fields,
                    &subject.hash,
                    query.deadline,
                    query.cache,
                )
                .await
        };
        let (verification, findings) = tokio::join!(verification, sources);
        Gathered {
            verification,
            findings,
        }
    }
}
