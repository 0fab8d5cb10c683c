//! Scores: tables of cases over hand-made findings, and a golden test on the
//! sandbox's Jane.
use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use enrichd::identity::NumberType;
use enrichd::model::{
    Confidence, EmailVerification, Field, Method, MxCheck, MxStatus, PhoneVerification, Profile,
    Provenance, RiskLevel, ScoredInterests, Sourced, Value, Verification,
};
use enrichd::proto::v1 as pb;
use enrichd::scoring::interests::{InterestOptions, score as interests};
use enrichd::scoring::{ScoringData, ScoringPaths, footprint, risk};

fn data() -> ScoringData {
    ScoringData::load(&ScoringPaths::default()).expect("shipped scoring data is valid")
}

fn catalog() -> enrichd::catalog::Catalog {
    let mut text = String::new();
    for (id, tags, weight) in [
        ("code", "[\"technology\", \"programming\"]", 1.0),
        ("fit", "[\"fitness\", \"running\"]", 0.6),
        ("misc", "[\"identity\"]", 0.2),
    ] {
        text.push_str(&format!(
            "[[source]]\nid = \"{id}\"\nname = \"{id}\"\nplatform = \"{id}\"\ntags = {tags}\nweight = {weight}\npurposes = [\"marketing\"]\ninput = \"username\"\n[source.request]\nurl = \"https://{id}.test/{{input}}\"\n"
        ));
    }
    common::catalog_from(&text)
}

fn profile(source: &str, confidence: Confidence, fields: &[(Field, Value)]) -> Profile {
    let provenance = Provenance {
        source_id: source.into(),
        url: format!("https://{source}.test/x"),
        retrieved_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        method: Method::JsonPointer,
        selector: "/x".into(),
        confidence,
    };
    Profile {
        source_id: source.into(),
        platform: source.into(),
        provenance: provenance.clone(),
        fields: fields
            .iter()
            .map(|(f, v)| {
                (
                    *f,
                    Sourced {
                        value: v.clone(),
                        provenance: provenance.clone(),
                    },
                )
            })
            .collect::<BTreeMap<_, _>>(),
        extra: BTreeMap::new(),
        accounts: Vec::new(),
        corroborated_by: Vec::new(),
        breaches: Vec::new(),
        sensitive_breaches_withheld: 0,
        found_via: None,
        doubt: None,
    }
}

fn bio(text: &str) -> (Field, Value) {
    (Field::Bio, Value::Text(text.into()))
}

const OPTIONS: InterestOptions = InterestOptions {
    min_score: 0.0,
    max: 100,
};

fn score_of(found: &ScoredInterests, id: &str) -> f64 {
    found
        .ranked
        .iter()
        .find(|i| i.id == id)
        .map_or(0.0, |i| i.score)
}

#[test]
fn interests_come_from_tags_and_terms_with_evidence() {
    let d = data();
    let c = catalog();
    // Weights (data/scoring/weights.toml): tag 0.35, term 0.6; exact 1.0,
    // guess 0.4; roll-up 0.7. Evidence w combines as 1 - prod(1 - w).
    // (profiles, node, score computed by hand)
    let cases: Vec<(Vec<Profile>, &str, f64)> = vec![
        // A coding site alone: its tag "programming" only.
        (vec![profile("code", Confidence::Exact, &[])], "702", 0.35),
        // Its bio names the trade twice more: 1 - 0.65 * 0.4 * 0.4.
        (
            vec![profile("code", Confidence::Exact, &[bio("Rust developer")])],
            "702",
            0.896,
        ),
        // German works too: one term each.
        (
            vec![profile(
                "misc",
                Confidence::Exact,
                &[bio("Leidenschaftliche Fotografin und Läuferin")],
            )],
            "431",
            0.6,
        ),
        (
            vec![profile(
                "misc",
                Confidence::Exact,
                &[bio("Leidenschaftliche Fotografin und Läuferin")],
            )],
            "410",
            0.6,
        ),
        // A guess weighs less than an exact match: 0.6 * 0.4.
        (
            vec![profile("misc", Confidence::Guess, &[bio("photography")])],
            "431",
            0.24,
        ),
        // A term inside a longer word is no evidence ("rust" in "trust").
        (
            vec![profile(
                "misc",
                Confidence::Exact,
                &[bio("I trust my instincts")],
            )],
            "702",
            0.0,
        ),
        // Running: "marathon" and "runner", 1 - 0.4 * 0.4 ...
        (
            vec![profile(
                "misc",
                Confidence::Exact,
                &[bio("marathon runner")],
            )],
            "410",
            0.84,
        ),
        // ... rolls up to its parent Fitness and Exercise: 0.7 * 0.84.
        (
            vec![profile(
                "misc",
                Confidence::Exact,
                &[bio("marathon runner")],
            )],
            "408",
            0.588,
        ),
    ];
    for (profiles, node, want) in cases {
        let found = interests(&profiles, &c, &d, OPTIONS);
        let s = score_of(&found, node);
        assert_eq!(s, want, "{node}: {:?}", found.ranked);
        if s > 0.0 {
            let i = found.ranked.iter().find(|i| i.id == node).unwrap();
            assert!(!i.evidence.is_empty());
            assert_eq!(i.tier_path[0], "Interest");
        }
    }
}

#[test]
fn independent_evidence_counts_more_than_repeated_evidence() {
    let d = data();
    let c = catalog();
    let once = interests(
        &[profile("misc", Confidence::Exact, &[bio("photography")])],
        &c,
        &d,
        OPTIONS,
    );
    let repeated = interests(
        &[profile(
            "misc",
            Confidence::Exact,
            &[bio("photography photography photography")],
        )],
        &c,
        &d,
        OPTIONS,
    );
    let two_sources = interests(
        &[
            profile("misc", Confidence::Exact, &[bio("photography")]),
            profile("fit", Confidence::Exact, &[bio("photography")]),
        ],
        &c,
        &d,
        OPTIONS,
    );
    assert_eq!(score_of(&once, "431"), score_of(&repeated, "431"));
    assert!(score_of(&two_sources, "431") > score_of(&once, "431"));
}

#[test]
fn special_categories_are_counted_and_never_returned_or_rolled_up() {
    let d = data();
    let c = catalog();
    let found = interests(
        &[profile(
            "misc",
            Confidence::Exact,
            &[bio("type 1 diabetes, pregnant, Labour party campaigner")],
        )],
        &c,
        &d,
        OPTIONS,
    );
    assert!(
        found.ranked.iter().all(|i| !d.is_special(&i.id)),
        "{:?}",
        found.ranked
    );
    assert_eq!(found.special.len(), 3, "health, women's health, politics");
    // Women's Health must not leak into Healthy Living, nor Politics into News.
    assert_eq!(score_of(&found, "406"), 0.0);
    assert_eq!(score_of(&found, "522"), 0.0);
}

#[test]
fn same_findings_same_interests() {
    let d = data();
    let c = catalog();
    let profiles = [
        profile(
            "code",
            Confidence::Exact,
            &[bio("Rust developer, chess and photography")],
        ),
        profile("fit", Confidence::Pivot, &[bio("marathon runner")]),
    ];
    assert_eq!(
        interests(&profiles, &c, &d, OPTIONS),
        interests(&profiles, &c, &d, OPTIONS)
    );
}

#[test]
fn min_score_and_top_n_apply() {
    let d = data();
    let c = catalog();
    let profiles = [profile(
        "code",
        Confidence::Exact,
        &[bio("developer, photographer, runner, chess, gardening")],
    )];
    let all = interests(&profiles, &c, &d, OPTIONS);
    let top = interests(
        &profiles,
        &c,
        &d,
        InterestOptions {
            min_score: 0.0,
            max: 2,
        },
    );
    assert_eq!(top.ranked.len(), 2);
    assert_eq!(top.ranked[0], all.ranked[0]);
    let strong = interests(
        &profiles,
        &c,
        &d,
        InterestOptions {
            min_score: 0.8,
            max: 100,
        },
    );
    assert!(strong.ranked.iter().all(|i| i.score >= 0.8));
    assert!(strong.ranked.len() < all.ranked.len());
}

#[test]
fn footprint_components_match_hand_computed_values() {
    let d = data();
    let c = catalog();
    let now = Utc.with_ymd_and_hms(2026, 11, 22, 0, 0, 0).unwrap();
    let rich = vec![
        profile(
            "code",
            Confidence::Exact,
            &[
                (Field::DisplayName, Value::Text("Ann".into())),
                bio("developer"),
                (Field::AvatarUrl, Value::Text("https://a".into())),
                (Field::Url, Value::Text("https://code.test/ann".into())),
                (
                    Field::CreatedAt,
                    Value::Time(Utc.with_ymd_and_hms(2012, 1, 1, 0, 0, 0).unwrap()),
                ),
                (Field::Followers, Value::Count(5000)),
            ],
        ),
        profile(
            "fit",
            Confidence::Pivot,
            &[(Field::DisplayName, Value::Text("Ann".into()))],
        ),
    ];
    let f = footprint::score(&rich, &c, &d, now);
    // By hand, from data/scoring/weights.toml:
    // platforms: weights 1.0 (exact) + 0.6 * 0.8 (pivot) = 1.48;
    //   40 * (1 - e^(-1.48 / 3)) = 15.58
    // breadth: technology, programming, fitness, running: 15 * 4/5 = 12
    // account_age: 14 years, full at 10: 20
    // completeness: (4/4 + 1/4) / 2 = 0.625 of 15 = 9.38
    // activity: log10(5001) / 4 of 10 = 9.25
    let got: Vec<(&str, f64)> = f
        .components
        .iter()
        .map(|c| (c.name, c.contribution))
        .collect();
    assert_eq!(
        got,
        [
            ("platforms", 15.58),
            ("breadth", 12.0),
            ("account_age", 20.0),
            ("completeness", 9.38),
            ("activity", 9.25)
        ]
    );
    assert_eq!(f.score, 66, "15.58 + 12 + 20 + 9.38 + 9.25 = 66.21");
    assert_eq!(f, footprint::score(&rich, &c, &d, now), "deterministic");
    let empty = footprint::score(&[], &c, &d, now);
    assert_eq!(empty.score, 0);
}

fn email(disposable: bool, free: bool, role: bool, mx: MxStatus) -> Verification {
    Verification::Email(EmailVerification {
        smtp: None,
        syntax_valid: true,
        disposable,
        free_provider: free,
        role_account: role,
        mx: MxCheck {
            status: mx,
            latency: Duration::ZERO,
        },
        did_you_mean: None,
        mixed_script: false,
    })
}

#[test]
fn risk_reasons_and_levels() {
    let d = data();
    let c = catalog();
    let now = Utc.with_ymd_and_hms(2026, 11, 22, 0, 0, 0).unwrap();
    let found_mx = MxStatus::Found { hosts: vec![] };
    let ann = vec![profile(
        "code",
        Confidence::Exact,
        &[
            (Field::DisplayName, Value::Text("Ann Smith".into())),
            (
                Field::CreatedAt,
                Value::Time(Utc.with_ymd_and_hms(2015, 1, 1, 0, 0, 0).unwrap()),
            ),
        ],
    )];
    let fresh = vec![profile(
        "code",
        Confidence::Exact,
        &[(
            Field::CreatedAt,
            Value::Time(Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap()),
        )],
    )];
    let phone = |valid, t| {
        Verification::Phone(PhoneVerification {
            valid,
            number_type: t,
            region: Some("GB".into()),
        })
    };
    // (verification, profiles, name hint, expected codes, expected level)
    // (verification, profiles, name hint, expected codes, expected level)
    type Case<'a> = (
        Verification,
        Vec<Profile>,
        Option<&'a str>,
        Vec<&'a str>,
        RiskLevel,
    );
    let cases: Vec<Case> = vec![
        (
            email(false, false, false, found_mx.clone()),
            ann.clone(),
            Some("Ann Smith"),
            vec![],
            RiskLevel::Low,
        ),
        (
            email(true, false, false, found_mx.clone()),
            vec![],
            None,
            vec!["disposable_domain", "no_digital_footprint"],
            RiskLevel::High,
        ),
        (
            email(
                false,
                true,
                true,
                MxStatus::None {
                    detail: "NXDOMAIN".into(),
                },
            ),
            ann.clone(),
            None,
            vec!["no_mx", "free_provider", "role_account"],
            RiskLevel::Medium,
        ),
        (
            email(false, false, false, found_mx.clone()),
            ann.clone(),
            Some("Bob Jones"),
            vec!["name_mismatch"],
            RiskLevel::Low,
        ),
        (
            email(false, false, false, found_mx.clone()),
            fresh,
            None,
            vec!["thin_digital_footprint", "only_recent_accounts"],
            // 25 points score 32 (the score is no longer the points cut at 100).
            RiskLevel::Medium,
        ),
        (
            phone(false, NumberType::Unknown),
            vec![],
            None,
            vec!["phone_invalid", "no_digital_footprint"],
            RiskLevel::High,
        ),
        (
            phone(true, NumberType::Voip),
            vec![],
            None,
            vec!["phone_voip", "no_digital_footprint"],
            RiskLevel::Medium,
        ),
        (
            phone(true, NumberType::PremiumRate),
            ann.clone(),
            None,
            vec!["phone_premium_rate"],
            RiskLevel::Medium,
        ),
        (
            email(false, false, false, found_mx),
            vec![profile("code", Confidence::Guess, &[])],
            None,
            vec!["only_guessed_matches"],
            RiskLevel::Low,
        ),
    ];
    for (v, profiles, hint, codes, level) in cases {
        let fp = footprint::score(&profiles, &c, &d, now);
        let evidence = risk::Evidence {
            profiles: &profiles,
            footprint: &fp,
            coverage_sufficient: true,
            phone_line: None,
            mailbox: None,
            breaches: &[],
        };
        let r = risk::score(&v, &evidence, hint, &d, None, now);
        let got: Vec<&str> = r.reasons.iter().map(|x| x.code).collect();
        let mut sorted_got = got.clone();
        sorted_got.sort_unstable();
        let mut wanted = codes.clone();
        wanted.sort_unstable();
        assert_eq!(sorted_got, wanted, "{v:?}");
        // When too few sources answered, an empty result is not evidence.
        let unsure = risk::score(
            &v,
            &risk::Evidence {
                coverage_sufficient: false,
                ..evidence
            },
            hint,
            &d,
            None,
            now,
        );
        let mut unsure: Vec<&str> = unsure.reasons.iter().map(|x| x.code).collect();
        unsure.sort_unstable();
        let expected: Vec<&str> = wanted
            .iter()
            .copied()
            .filter(|c| *c != "no_digital_footprint")
            .collect();
        assert_eq!(unsure, expected, "{v:?}");
        assert_eq!(r.level, level, "{got:?} score {}", r.score);
        let sum: f64 = r.reasons.iter().map(|x| x.weight).sum();
        assert_eq!(r.points, sum);
        assert_eq!(r.score, risk::calibrated(sum, d.weights.risk.scale));
        assert!(
            r.reasons.windows(2).all(|w| w[0].weight >= w[1].weight),
            "heaviest first: {got:?}"
        );
    }
}

/// An identity is as old as its oldest evidence: fresh accounts on an
/// address breached years ago are not a new identity; a breach that exposed
/// passwords is a reason of its own.
#[test]
fn an_old_breach_makes_an_identity_old_and_exposed_passwords_count() {
    let d = data();
    let c = catalog();
    let now = Utc.with_ymd_and_hms(2026, 11, 22, 0, 0, 0).unwrap();
    let fresh = vec![profile(
        "code",
        Confidence::Exact,
        &[(
            Field::CreatedAt,
            Value::Time(Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap()),
        )],
    )];
    let breach = |date: &str, classes: &[&str]| enrichd::model::Breach {
        name: format!("B{date}"),
        title: None,
        domain: None,
        date: Some(date.into()),
        data_classes: classes.iter().map(|c| c.to_string()).collect(),
        provenance: fresh[0].provenance.clone(),
    };
    let fp = footprint::score(&fresh, &c, &d, now);
    let v = email(false, false, false, MxStatus::Found { hosts: vec![] });
    let codes = |breaches: &[enrichd::model::Breach]| {
        let evidence = risk::Evidence {
            profiles: &fresh,
            footprint: &fp,
            coverage_sufficient: true,
            phone_line: None,
            mailbox: None,
            breaches,
        };
        let r = risk::score(&v, &evidence, None, &d, None, now);
        r.reasons.iter().map(|x| x.code).collect::<Vec<_>>()
    };
    assert!(codes(&[]).contains(&"only_recent_accounts"));
    let old = [breach("2014-03-01", &["Email addresses"])];
    assert!(!codes(&old).contains(&"only_recent_accounts"));
    assert!(!codes(&old).contains(&"breached_credentials"));
    let exposed = [breach("2026-09-01", &["Passwords"])];
    let got = codes(&exposed);
    assert!(
        got.contains(&"only_recent_accounts") && got.contains(&"breached_credentials"),
        "{got:?}"
    );
}

#[tokio::test]
async fn golden_jane_has_interests_with_evidence_a_suppressed_health_interest_a_footprint_and_a_risk()
 {
    let (app, _sandbox) = common::sandbox_app().await;
    let mut client = app.client().await;
    let mut request = common::email_request("jane.doe@example.com");
    request.hints = Some(pb::Hints {
        name: "Jane Doe".into(),
        ..Default::default()
    });
    let a = client.enrich(request.clone()).await.unwrap().into_inner();

    let ids: Vec<&str> = a.interests.iter().map(|i| i.id.as_str()).collect();
    for id in ["702", "431", "410", "719", "534"] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
    for i in &a.interests {
        assert!(
            !i.evidence.is_empty() && i.score > 0.0 && i.score <= 1.0,
            "{i:?}"
        );
        assert!(i.tier_path.len() >= 2);
    }
    let programming = a.interests.iter().find(|i| i.id == "702").unwrap();
    assert_eq!(programming.name, "Programming Languages");
    assert!(
        programming
            .evidence
            .iter()
            .any(|e| e.source_id == "sb-codehub"
                && e.kind() == pb::interest_evidence::Kind::TextTerm
                && e.matched == "developer"
                && e.span.contains("Python developer"))
    );
    // Her diabetes is found, suppressed and counted, never returned.
    assert!(!ids.contains(&"466"));
    let compliance = a.compliance.as_ref().unwrap();
    assert!(compliance.special_categories_suppressed >= 1);
    assert_eq!(
        compliance.suppressed[0].reason(),
        pb::suppression::Reason::SpecialCategory
    );
    let footprint = a.footprint.as_ref().unwrap();
    assert!(footprint.score >= 60, "{footprint:?}");
    assert_eq!(footprint.components.len(), 5);
    let risk = a.risk.as_ref().unwrap();
    assert!(
        risk.reasons
            .iter()
            .all(|r| r.code != "name_mismatch" && r.code != "no_digital_footprint"),
        "{risk:?}"
    );
}

#[tokio::test]
async fn a_disposable_address_with_no_footprint_is_high_risk_with_both_reasons() {
    let (app, _sandbox) = common::sandbox_app().await;
    let mut client = app.client().await;
    let resp = client
        .enrich(common::email_request("x7@mailinator.com"))
        .await
        .unwrap()
        .into_inner();
    let risk = resp.risk.unwrap();
    assert_eq!(risk.level(), pb::risk::Level::High);
    let codes: Vec<&str> = risk.reasons.iter().map(|r| r.code.as_str()).collect();
    assert!(
        codes.contains(&"disposable_domain") && codes.contains(&"no_digital_footprint"),
        "{codes:?}"
    );
    assert!(risk.reasons.iter().all(|r| r.weight > 0.0));
}

/// A fraud analyst can rank a queue: three risky addresses whose reasons
/// add up to 100 or more (a disposable domain, a typo of gmail.com, a Cyrillic
/// look-alike of example.com) get three different scores, in the order of
/// their points, each with a verdict and the reasons that decided it; the
/// typo is a typo (with its `didYouMean`), not a disposable service.
#[tokio::test]
async fn risky_addresses_rank_by_their_evidence_with_a_verdict_each() {
    let (app, _sandbox) = common::sandbox_app().await;
    let mut client = app.client().await;
    let mut seen = Vec::new();
    for email in [
        "x@mailinator.com",
        "jane@gmial.com",
        "jane@ex\u{430}mple.com",
    ] {
        let mut request = common::email_request(email);
        request.purpose = "fraud_prevention".into();
        let answer = client.enrich(request).await.unwrap().into_inner();
        let risk = answer.risk.expect("a risk");
        let summary = answer.summary.expect("a summary");
        assert!(risk.points >= 100.0, "{email}: {risk:?}");
        assert_eq!(risk.verdict, summary.verdict, "{email}");
        assert_eq!(
            pb::risk::Verdict::try_from(risk.verdict).unwrap(),
            pb::risk::Verdict::Decline,
            "{email}: {risk:?}"
        );
        let deciding: Vec<String> = risk
            .reasons
            .iter()
            .take(3)
            .map(|r| r.code.clone())
            .collect();
        assert_eq!(summary.risk_reasons, deciding, "{email}");
        let codes: Vec<&str> = risk.reasons.iter().map(|r| r.code.as_str()).collect();
        if email.contains("gmial") {
            assert_eq!(summary.did_you_mean, "gmail.com");
            assert!(
                !codes.contains(&"disposable_domain") && !codes.contains(&"free_provider"),
                "a typo is not counted twice: {codes:?}"
            );
        }
        seen.push((risk.points, risk.score, email));
    }
    seen.sort_by(|a, b| a.0.total_cmp(&b.0));
    let scores: Vec<u32> = seen.iter().map(|s| s.1).collect();
    assert!(
        scores.windows(2).all(|w| w[0] < w[1]),
        "more points, a higher score, no two alike: {seen:?}"
    );
    assert!(scores.iter().all(|s| *s < 100), "{seen:?}");
}
