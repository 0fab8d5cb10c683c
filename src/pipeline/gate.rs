//! Stage 1, gate: no processing without a declared purpose, an Art. 6(1)
//! lawful basis with its evidence, a caller allowed that purpose, and a
//! field mask that names real fields (`compliance::gate`,
//! `compliance::policy`). A refusal is recorded too.
use super::Enricher;
use super::query::EnrichQuery;
use crate::compliance::policy;
use crate::error::Error;
use crate::ledger::Refusal;
use crate::model::LawfulGround;

impl Enricher {
    pub(super) async fn gate(&self, query: &EnrichQuery) -> Result<LawfulGround, Error> {
        match self.check_claim(query) {
            Ok(ground) => Ok(ground),
            Err((refusal, error)) => {
                Box::pin(self.record_refusal(query, refusal)).await?;
                Err(error)
            }
        }
    }

    /// Whether `query`'s claim (purpose, lawful basis and evidence, the
    /// caller's purposes, the field mask) lets it run, without recording
    /// anything: batch jobs check a claim once before their first row.
    pub fn check_claim(&self, query: &EnrichQuery) -> Result<LawfulGround, (Refusal, Error)> {
        let ground = self
            .purposes
            .check(&query.claim)
            .map_err(|violations| (Refusal::NoLawfulGround, Error::NoLawfulGround(violations)))?;
        if !query.caller.allows_purpose(&ground.purpose.id) {
            return Err((
                Refusal::PurposeNotAllowed,
                Error::PermissionDenied(format!(
                    "caller {:?} may not enrich for purpose {:?}",
                    query.caller.name, ground.purpose.id
                )),
            ));
        }
        policy::check_mask(&query.field_mask).map_err(|violations| {
            (
                Refusal::InvalidFieldMask,
                Error::InvalidArgument(violations),
            )
        })?;
        Ok(ground)
    }
}
