//! Stage 3, suppress: an erased or objecting person stops here, before the
//! cache and before any source (`compliance::suppression`).
use super::Enricher;
use super::unavailable;
use crate::compliance::suppression;
use crate::error::Error;
use crate::model::LawfulGround;

impl Enricher {
    /// Whether the person is suppressed for the ground's purpose.
    pub(super) async fn suppressed(
        &self,
        ground: &LawfulGround,
        subject: &str,
    ) -> Result<bool, Error> {
        let scopes = self.ledger.suppressions(subject).map_err(unavailable)?;
        Ok(suppression::stops(&scopes, &ground.purpose.id))
    }
}
