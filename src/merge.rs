//! Merging findings: profiles ordered best first, and attributes that keep
//! every distinct value with all of its provenance (none is silently dropped).
use std::collections::HashMap;

use crate::catalog::Catalog;
use crate::catalog::source::Field;
use crate::model::{Attribute, AttributeValue, Profile};

/// Fields merged across profiles, and the attribute names they get.
const MERGED: [(Field, &str); 5] = [
    (Field::DisplayName, "name"),
    (Field::Username, "username"),
    (Field::Location, "location"),
    (Field::AvatarUrl, "avatar_url"),
    (Field::Url, "profile_url"),
];

/// Best match first: confidence, then the source's catalog weight.
pub fn order_profiles(profiles: &mut [Profile], catalog: &Catalog) {
    let weight = |p: &Profile| catalog.get(&p.source_id).map_or(0.0, |s| s.weight);
    profiles.sort_by(|a, b| {
        b.confidence()
            .cmp(&a.confidence())
            .then(weight(b).total_cmp(&weight(a)))
            .then(a.source_id.cmp(&b.source_id))
    });
}

/// Distinct values per attribute (compared case- and space-insensitively),
/// the most supported first.
pub fn attributes(profiles: &[Profile]) -> Vec<Attribute> {
    let mut out = Vec::new();
    for (field, name) in MERGED {
        let mut values: Vec<AttributeValue> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for profile in profiles {
            let Some(found) = profile.fields.get(&field) else {
                continue;
            };
            let text = found.value.as_text();
            let key = text
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_lowercase();
            match index.get(&key) {
                Some(&i) => values[i].provenance.push(found.provenance.clone()),
                None => {
                    index.insert(key, values.len());
                    values.push(AttributeValue {
                        value: text,
                        provenance: vec![found.provenance.clone()],
                    });
                }
            }
        }
        if values.is_empty() {
            continue;
        }
        values.sort_by(|a, b| {
            let best = |v: &AttributeValue| v.provenance.iter().map(|p| p.confidence).max();
            b.provenance
                .len()
                .cmp(&a.provenance.len())
                .then(best(b).cmp(&best(a)))
        });
        out.push(Attribute { name, values });
    }
    out
}
