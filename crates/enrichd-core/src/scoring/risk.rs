//! Contact risk for fraud review, 0-100, with a reason code and weight for
//! every point. It supports a human decision; it is not one (GDPR Art. 22).
use chrono::{DateTime, Utc};

use super::data::ScoringData;

use crate::identity::NumberType;
use crate::model::{Confidence, Field, Mailbox, PhoneLine, Profile};
use crate::model::{
    Footprint, MxStatus, Reason, Risk, RiskLevel, Verdict, VerdictThresholds, Verification,
};

/// Below this footprint score, a footprint is thin.
const THIN_FOOTPRINT: u32 = 20;

/// Lowercase name tokens of three letters or more.
fn tokens(name: &str) -> Vec<String> {
    name.split(|c: char| !c.is_alphanumeric())
        .filter(|t| t.chars().count() >= 3)
        .map(str::to_lowercase)
        .collect()
}

/// What the sources gave: the profiles, their footprint, and whether
/// enough sources answered for an empty result to be evidence.
pub struct Evidence<'a> {
    pub profiles: &'a [Profile],
    pub footprint: &'a Footprint,
    pub coverage_sufficient: bool,
    /// What the phone network said of the number, when a source did.
    pub phone_line: Option<&'a PhoneLine>,
    /// A verifier's mailbox check, when a source made one.
    pub mailbox: Option<&'a Mailbox>,
    /// The breaches the address is in (a breach source's).
    pub breaches: &'a [crate::model::Breach],
}

pub fn score(
    verification: &Verification,
    evidence: &Evidence<'_>,
    name_hint: Option<&str>,
    data: &ScoringData,
    verdict_at: Option<VerdictThresholds>,
    now: DateTime<Utc>,
) -> Risk {
    let (profiles, footprint) = (evidence.profiles, evidence.footprint);
    let weights = &data.weights.risk;
    let mut reasons = Vec::new();
    let mut add = |code: &'static str, detail: String| {
        let weight = weights.reasons.get(code).copied().unwrap_or(0.0);
        if weight > 0.0 {
            reasons.push(Reason {
                code,
                weight,
                detail,
            });
        }
    };
    match verification {
        Verification::Email(e) => {
            match &e.mx.status {
                MxStatus::None { detail } => {
                    add("no_mx", format!("the domain cannot receive mail: {detail}"))
                }
                MxStatus::Error { detail } => add(
                    "mx_lookup_failed",
                    format!("the MX lookup failed: {detail}"),
                ),
                _ => {}
            }
            // A typo of a well-known provider is a typo: the lists that
            // hold it (some disposable lists register typo domains) do not
            // count it twice.
            let typo = e.did_you_mean.is_some();
            if e.disposable && !typo {
                add(
                    "disposable_domain",
                    "the domain is a disposable-address service".into(),
                );
            }
            if e.free_provider && !typo {
                add(
                    "free_provider",
                    "the domain is a free webmail provider".into(),
                );
            }
            if let Some(meant) = &e.did_you_mean {
                add(
                    "domain_typo",
                    format!("the domain looks like a typo or look-alike of {meant}"),
                );
            }
            if e.mixed_script {
                add(
                    "mixed_script_domain",
                    "the domain mixes scripts (e.g. a Cyrillic letter among Latin ones)".into(),
                );
            }
            match e.smtp.as_ref().map(|c| (c.status, c)) {
                Some((crate::model::Deliverability::Undeliverable, c)) => add(
                    "undeliverable_mailbox",
                    format!(
                        "the mail exchanger {} refused the address ({} {})",
                        c.host,
                        c.code.unwrap_or_default(),
                        c.reason
                    ),
                ),
                Some((crate::model::Deliverability::CatchAll, c)) => add(
                    "catch_all_domain",
                    format!(
                        "the domain takes any address ({}): this one's existence is unknown",
                        c.host
                    ),
                ),
                _ => {}
            }
            if e.role_account {
                add(
                    "role_account",
                    "the address names a role, not a person".into(),
                );
            }
        }
        Verification::Phone(p) => {
            if !p.valid {
                add(
                    "phone_invalid",
                    "the number fits no assignable range of its region".into(),
                );
            }
            match p.number_type {
                NumberType::Voip => add("phone_voip", "a VoIP number".into()),
                NumberType::PremiumRate => {
                    add("phone_premium_rate", "a premium-rate number".into())
                }
                NumberType::TollFree => add("phone_toll_free", "a toll-free number".into()),
                NumberType::Unknown if p.valid => {
                    add("phone_unknown_type", "the line type is unknown".into())
                }
                _ => {}
            }
            if let Some(line) = evidence.phone_line {
                if line.sim_swapped_within(weights.sim_swap_days, now) {
                    let when = line
                        .last_sim_swap
                        .as_ref()
                        .or(line.sim_swapped_in_period.as_ref());
                    add(
                        "recent_sim_swap",
                        match when {
                            Some(s) => format!(
                                "the SIM changed recently ({}: {})",
                                s.provenance.source_id,
                                s.value.as_text()
                            ),
                            None => "the SIM changed recently".into(),
                        },
                    );
                }
                if line.forwarded() {
                    add(
                        "call_forwarding",
                        "calls to the number are forwarded elsewhere".into(),
                    );
                }
            }
            if p.number_type != NumberType::Voip
                && let Some(line) = evidence.phone_line.filter(|l| l.is_voip())
                && let Some(t) = &line.line_type
            {
                add(
                    "phone_voip",
                    format!(
                        "a VoIP number: line type {} ({})",
                        t.value.as_text(),
                        t.provenance.source_id
                    ),
                );
            }
        }
    }
    // One undeliverable mailbox, however many checks said so.
    let smtp_refused = matches!(verification, Verification::Email(e)
        if e.smtp.as_ref().is_some_and(|c| c.status == crate::model::Deliverability::Undeliverable));
    if let Some(m) = evidence
        .mailbox
        .filter(|m| m.undeliverable() && !smtp_refused)
    {
        add(
            "undeliverable_mailbox",
            format!(
                "the mailbox is undeliverable ({})",
                m.status.provenance.source_id
            ),
        );
    }
    let grounded: Vec<&Profile> = profiles
        .iter()
        .filter(|p| p.confidence() >= Confidence::Pivot)
        .collect();
    if grounded.is_empty() {
        if profiles.is_empty() {
            // When too few sources answered, absence is not evidence.
            if evidence.coverage_sufficient {
                add(
                    "no_digital_footprint",
                    "no profile was found on any source".into(),
                );
            }
        } else {
            add(
                "only_guessed_matches",
                format!(
                    "{} profiles, all guessed from the local part",
                    profiles.len()
                ),
            );
        }
    } else if footprint.score < THIN_FOOTPRINT {
        add(
            "thin_digital_footprint",
            format!("footprint score {}", footprint.score),
        );
    }
    // The identity's age: its oldest account or breach. New identities are
    // what fraud looks like; an address breached years ago is not new.
    if let Some(first) = crate::model::first_seen(
        grounded.iter().copied(),
        evidence.breaches,
        Confidence::Pivot,
    ) && (now - first.at).num_days() < weights.new_identity_days
    {
        add(
            "only_recent_accounts",
            format!(
                "the oldest evidence of the identity ({} on {}, {}) is less than {} days old",
                first.kind,
                first.provenance.source_id,
                first.at.date_naive(),
                weights.new_identity_days
            ),
        );
    }
    let exposed: Vec<&crate::model::Breach> = evidence
        .breaches
        .iter()
        .filter(|b| {
            b.data_classes
                .iter()
                .any(|c| c.eq_ignore_ascii_case("passwords"))
        })
        .collect();
    if !exposed.is_empty() {
        add(
            "breached_credentials",
            format!(
                "the address is in {} breach(es) that exposed passwords ({}); {} breach(es) in all",
                exposed.len(),
                exposed
                    .iter()
                    .map(|b| b.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                evidence.breaches.len()
            ),
        );
    }
    if let Some(hint) = name_hint {
        let wanted = tokens(hint);
        // The network's caller name is a name found for the identifier too.
        let caller_name = evidence
            .phone_line
            .and_then(|l| l.caller_name.as_ref())
            .map(|s| s.value.as_text());
        let names: Vec<String> = grounded
            .iter()
            .filter_map(|p| p.fields.get(&Field::DisplayName).map(|s| s.value.as_text()))
            .chain(caller_name)
            .collect();
        if !wanted.is_empty()
            && !names.is_empty()
            && !names
                .iter()
                .any(|n| tokens(n).iter().any(|t| wanted.contains(t)))
        {
            add(
                "name_mismatch",
                format!(
                    "none of the {} names found shares a word with the name given",
                    names.len()
                ),
            );
        }
    }
    let points: f64 = reasons.iter().map(|r| r.weight).sum();
    let score = calibrated(points, weights.scale);
    let level = if score >= weights.high {
        RiskLevel::High
    } else if score >= weights.medium {
        RiskLevel::Medium
    } else {
        RiskLevel::Low
    };
    let at = verdict_at.unwrap_or(VerdictThresholds {
        review: weights.medium,
        decline: weights.high,
    });
    let verdict = if score >= at.decline {
        Verdict::Decline
    } else if score >= at.review {
        Verdict::Review
    } else {
        Verdict::Accept
    };
    // Heaviest first; equal weights keep the order they were found in.
    reasons.sort_by(|a, b| b.weight.total_cmp(&a.weight));
    Risk {
        score,
        points,
        level,
        verdict,
        reasons,
    }
}

/// The 0-100 score of `points`: `100 * (1 - exp(-points / scale))`,
/// rounded, and 99 at most while it is short of 100 (so that even the
/// largest sums keep their order on screen as long as they can).
pub fn calibrated(points: f64, scale: f64) -> u32 {
    if points <= 0.0 || scale <= 0.0 {
        return 0;
    }
    let score = 100.0 * (1.0 - (-points / scale).exp());
    (score.round() as u32).min(99)
}

#[cfg(test)]
mod tests {
    use super::calibrated;

    #[test]
    fn more_points_never_score_lower_and_sums_past_100_stay_apart() {
        let scores: Vec<u32> = (0..=400).map(|p| calibrated(f64::from(p), 65.0)).collect();
        assert!(scores.windows(2).all(|w| w[0] <= w[1]), "monotone");
        assert_eq!(calibrated(0.0, 65.0), 0);
        // The three addresses: 115, 145 and 180 points were all 100.
        let three = [115.0, 145.0, 180.0].map(|p| calibrated(p, 65.0));
        assert!(three[0] < three[1] && three[1] < three[2], "{three:?}");
        assert!(scores.iter().all(|s| *s <= 99));
    }
}
