//! Findings that are not profiles: the breaches an address is in, what the
//! phone network says of a number, a verifier's mailbox check (sources
//! whose catalog `role` is not `profile`), and the messaging platforms
//! asked about the identifier (sources tagged `messaging`). Role findings
//! leave the profile list: they count for no footprint, interest or
//! attribute. Only findings on the identifier itself (EXACT) are kept: a
//! breach of an address some pivot turned up may be someone else's.
use chrono::{DateTime, Utc};

use crate::catalog::Catalog;
use crate::catalog::source::Role;
use crate::model::{
    Breach, Confidence, Field, InputKind, Mailbox, MessagingApp, Outcome, PhoneLine, Profile,
    SourceOutcome, Sourced, Value,
};

/// The tag that marks a messaging platform in the catalog.
pub const MESSAGING_TAG: &str = "messaging";

#[derive(Debug, Clone, Default)]
pub(super) struct RoleFindings {
    pub breaches: Vec<Breach>,
    /// Boxed, as are the mailbox check's: most people have neither, and a
    /// phone line is about 800 bytes inline (a memo keeps these findings).
    pub phone_line: Option<Box<PhoneLine>>,
    pub mailbox: Option<Box<Mailbox>>,
    /// Breaches of sensitive sites the breach sources did not keep (Art. 9).
    pub sensitive_breaches_withheld: u32,
    /// What phone-intelligence APIs said of the number's messaging apps.
    pub messaging_apps: Vec<MessagingApp>,
    /// The sources whose findings these are (for the notice duty).
    pub sources: Vec<String>,
}

/// A phone-intelligence API's word for registered (`Some(true)`), not
/// registered (`Some(false)`), or neither (unknown: `None`).
fn registered(said: &str) -> Option<bool> {
    match said.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" | "registered" | "found" => Some(true),
        "no" | "false" | "not_registered" | "not registered" | "not_found" => Some(false),
        _ => None,
    }
}

fn role(catalog: &Catalog, p: &Profile) -> Role {
    catalog.get(&p.source_id).map_or(Role::Profile, |s| s.role)
}

/// Takes the role sources' findings out of `profiles`.
pub(super) fn split(profiles: &mut Vec<Profile>, catalog: &Catalog) -> RoleFindings {
    let (mut taken, kept): (Vec<Profile>, Vec<Profile>) = std::mem::take(profiles)
        .into_iter()
        .partition(|p| role(catalog, p) != Role::Profile);
    *profiles = kept;
    taken.retain(|p| p.confidence() == Confidence::Exact);
    // The heavier source first, so its value wins where two give one.
    let weight = |p: &Profile| catalog.get(&p.source_id).map_or(0.0, |s| s.weight);
    taken.sort_by(|a, b| {
        weight(b)
            .total_cmp(&weight(a))
            .then(a.source_id.cmp(&b.source_id))
    });
    let mut out = RoleFindings::default();
    let mut line = PhoneLine::default();
    for p in taken {
        let extra = |name: &str| p.extra.get(name).cloned();
        match role(catalog, &p) {
            Role::Profile => continue,
            Role::Breaches => {
                out.sensitive_breaches_withheld += p.sensitive_breaches_withheld;
                for b in &p.breaches {
                    if !out.breaches.iter().any(|known| known.name == b.name) {
                        out.breaches.push(b.clone());
                    }
                }
            }
            Role::PhoneLine => {
                line.carrier = line.carrier.take().or_else(|| extra("carrier"));
                line.line_type = line.line_type.take().or_else(|| extra("line_type"));
                line.caller_name = line.caller_name.take().or_else(|| extra("caller_name"));
                line.last_sim_swap = line
                    .last_sim_swap
                    .take()
                    .or_else(|| extra("last_sim_swap").map(as_time));
                line.sim_swapped_in_period = line
                    .sim_swapped_in_period
                    .take()
                    .or_else(|| extra("sim_swapped_in_period"));
                line.sim_swap_period = line
                    .sim_swap_period
                    .take()
                    .or_else(|| extra("sim_swap_period"));
                line.call_forwarding = line
                    .call_forwarding
                    .take()
                    .or_else(|| extra("call_forwarding"));
            }
            Role::MessagingApps => {
                for (platform, said) in &p.extra {
                    let Some(present) = registered(&said.value.as_text()) else {
                        continue;
                    };
                    out.messaging_apps.push(MessagingApp {
                        platform: platform.clone(),
                        source_id: p.source_id.to_string(),
                        present,
                        url: None,
                        checked_at: said.provenance.retrieved_at,
                        confidence: Confidence::Exact,
                    });
                }
            }
            Role::Mailbox => {
                if out.mailbox.is_none()
                    && let Some(status) = extra("status")
                {
                    out.mailbox = Some(Box::new(Mailbox {
                        status: Sourced {
                            value: Value::Text(status.value.as_text().to_lowercase()),
                            provenance: status.provenance,
                        },
                        score: extra("score"),
                    }));
                }
            }
        }
        if !out.sources.iter().any(|s| **s == *p.source_id) {
            out.sources.push(p.source_id.to_string());
        }
    }
    if line != PhoneLine::default() {
        out.phone_line = Some(Box::new(line));
    }
    out.breaches
        .sort_by(|a, b| b.date.cmp(&a.date).then(a.name.cmp(&b.name)));
    out
}

/// A date a source gave as text (RFC 3339), as a time; kept as text when it
/// is not one.
fn as_time(s: Sourced) -> Sourced {
    match chrono::DateTime::parse_from_rfc3339(&s.value.as_text()) {
        Ok(t) => Sourced {
            value: Value::Time(t.with_timezone(&Utc)),
            provenance: s.provenance,
        },
        Err(_) => s,
    }
}

/// The identifier's own inputs: a "not found" for one of them says the
/// identifier has no account there (a missing guessed username does not).
fn on_identifier(kind: InputKind) -> bool {
    matches!(
        kind,
        InputKind::Email
            | InputKind::EmailMd5
            | InputKind::EmailSha256
            | InputKind::PhoneE164
            | InputKind::PhoneNational
    )
}

/// One entry per messaging platform that answered: present when one of the
/// person's profiles is there, absent when it said so of the identifier
/// itself. Platforms that could not answer, or answered only for a guess,
/// are left out: unknown is not absent. Then what phone-intelligence APIs
/// (`from_intel`, role `messaging_apps`) said, platform by platform.
pub(super) fn messaging_apps(
    profiles: &[Profile],
    outcomes: &[SourceOutcome],
    catalog: &Catalog,
    from_intel: &[MessagingApp],
    now: DateTime<Utc>,
) -> Vec<MessagingApp> {
    let mut out: Vec<MessagingApp> = Vec::new();
    let messaging = catalog
        .sources()
        .iter()
        .filter(|s| s.tags.iter().any(|t| t.eq_ignore_ascii_case(MESSAGING_TAG)));
    for source in messaging {
        if let Some(p) = profiles.iter().find(|p| p.source_id == source.id) {
            out.push(MessagingApp {
                platform: source.platform.to_string(),
                source_id: source.id.to_string(),
                present: true,
                url: p
                    .fields
                    .get(&Field::Url)
                    .map(|u| u.value.as_text())
                    .or_else(|| Some(p.provenance.url.clone())),
                checked_at: p.provenance.retrieved_at,
                confidence: p.confidence(),
            });
            continue;
        }
        let asked: Vec<&SourceOutcome> = outcomes
            .iter()
            .filter(|o| *o.source_id == *source.id && on_identifier(o.input))
            .collect();
        if !asked.is_empty() && asked.iter().all(|o| o.outcome == Outcome::NotFound) {
            let age = asked.iter().filter_map(|o| o.cache_age).max();
            let checked_at = age
                .and_then(|a| chrono::Duration::from_std(a).ok())
                .map_or(now, |a| now - a);
            out.push(MessagingApp {
                platform: source.platform.to_string(),
                source_id: source.id.to_string(),
                present: false,
                url: None,
                checked_at,
                confidence: Confidence::Exact,
            });
        }
    }
    out.extend(from_intel.iter().cloned());
    out
}
