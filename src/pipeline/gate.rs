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
        let ground = match self.purposes.check(&query.claim) {
            Ok(ground) => ground,
            Err(violations) => {
                self.record_refusal(query, Refusal::NoLawfulGround).await?;
                return Err(Error::NoLawfulGround(violations));
            }
        };
        if !query.caller.allows_purpose(&ground.purpose.id) {
            self.record_refusal(query, Refusal::PurposeNotAllowed)
                .await?;
            return Err(Error::PermissionDenied(format!(
                "caller {:?} may not enrich for purpose {:?}",
                query.caller.name, ground.purpose.id
            )));
        }
        if let Err(violations) = policy::check_mask(&query.field_mask) {
            self.record_refusal(query, Refusal::InvalidFieldMask)
                .await?;
            return Err(Error::InvalidArgument(violations));
        }
        Ok(ground)
    }
}
