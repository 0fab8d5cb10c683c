//! Stage 4, policy: what this request may do under its ground: the response
//! fields it may carry, from the purpose and the caller's field mask
//! (`compliance::policy`). The sources a purpose may ask are decided per
//! source in the gather stage by the same module.
use super::query::EnrichQuery;
use crate::compliance::policy::FieldPolicy;
use crate::model::LawfulGround;

/// The ground a request was accepted on, and the fields it may return.
pub(super) struct Permitted {
    pub ground: LawfulGround,
    pub fields: FieldPolicy,
}

pub(super) fn policy(ground: LawfulGround, query: &EnrichQuery) -> Permitted {
    let fields = FieldPolicy::decide(&ground.purpose, &query.field_mask);
    Permitted { ground, fields }
}
