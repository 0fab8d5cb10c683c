//! Guesses must be corroborated. A username guessed from the email's local
//! part belongs to whoever registered it: `jane.doe@exmaple.com` (a typo)
//! would otherwise pick up the forum profile of some other Jane. A profile
//! found only through such a guess counts as the person's (profiles,
//! attributes, interests, footprint, risk) when something ties it to them:
//! the same avatar as a confirmed profile, a link between it and a
//! confirmed profile, or a display name that matches the caller's name
//! hint. Otherwise it is a *possible match*, reported apart with no more
//! than where it is (platform, URL, username): it may be someone else, and
//! what is not known to be the person's is not collected about them.
use std::collections::HashSet;

use crate::model::{Confidence, Corroboration, Doubt, Field, Profile};

/// What feedback and the sources' standing say against one person's
/// findings (`Feedback`, the sources' precision and canary).
#[derive(Debug, Clone, Default)]
pub(crate) struct Doubts {
    /// Findings held out of this person's profiles.
    pub refuted: Vec<crate::ledger::Refuted>,
    /// Sources whose findings count only when corroborated.
    pub demoted: std::sync::Arc<HashSet<String>>,
}

impl Doubts {
    fn refutes(&self, profile: &Profile) -> bool {
        let url = link_key(&profile_url(profile));
        self.refuted.iter().any(|r| {
            r.kind == crate::ledger::FindingKind::Profile
                && *r.source_id == *profile.source_id
                && link_key(&r.finding) == url
        })
    }

    /// Removes the attribute values refuted for this profile's source.
    fn strip_attributes(&self, profile: &mut Profile) {
        for r in &self.refuted {
            if r.kind != crate::ledger::FindingKind::Attribute || *r.source_id != *profile.source_id
            {
                continue;
            }
            let Some((name, value)) = r.finding.split_once('=') else {
                continue;
            };
            let Some(field) = super::merge::field_named(name) else {
                continue;
            };
            if text(profile, field).is_some_and(|v| same_value(&v, value)) {
                profile.fields.remove(&field);
            }
        }
    }
}

/// Values compared as attributes are merged: ignoring case and spacing.
fn same_value(a: &str, b: &str) -> bool {
    let squash = |s: &str| {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    };
    squash(a) == squash(b)
}

/// A profile's URL as feedback names it: its URL field, else where it was
/// found.
pub(crate) fn profile_url(profile: &Profile) -> String {
    text(profile, Field::Url).unwrap_or_else(|| profile.provenance.url.clone())
}

/// Splits `profiles` into the person's (confirmed, and guesses corroborated,
/// each saying by what) and possible matches (guesses nothing ties to them,
/// refuted findings, uncorroborated finds of demoted sources, each reduced
/// to where it is and saying why).
pub(super) fn corroborate(
    profiles: Vec<Profile>,
    name_hint: Option<&str>,
    doubts: &Doubts,
) -> (Vec<Profile>, Vec<Profile>) {
    let mut possible = Vec::new();
    let mut refuted_sources = HashSet::new();
    let mut standing = Vec::with_capacity(profiles.len());
    for mut profile in profiles {
        if doubts.refutes(&profile) {
            refuted_sources.insert(profile.source_id.clone());
            profile.doubt = Some(Doubt::Refuted);
            possible.push(where_only(profile));
        } else {
            doubts.strip_attributes(&mut profile);
            standing.push(profile);
        }
    }
    // A source with a refuted profile and no other: what was found by a
    // pivot from it stands on its own, as a guess does.
    refuted_sources.retain(|s| !standing.iter().any(|p| p.source_id == *s));
    let doubt_of = |p: &Profile| {
        if p.found_via
            .as_ref()
            .is_some_and(|v| refuted_sources.contains(v))
        {
            Some(Doubt::RefutedOrigin)
        } else if doubts.demoted.contains(&*p.source_id) {
            Some(Doubt::SourceDemoted)
        } else if p.confidence() <= Confidence::Guess {
            Some(Doubt::Uncorroborated)
        } else {
            None
        }
    };
    let (confirmed, guesses): (Vec<Profile>, Vec<Profile>) =
        standing.into_iter().partition(|p| doubt_of(p).is_none());
    let avatars: HashSet<String> = confirmed
        .iter()
        .filter_map(|p| text(p, Field::AvatarUrl))
        .flat_map(|a| avatar_keys(&a))
        .collect();
    let urls: HashSet<String> = confirmed
        .iter()
        .filter_map(|p| text(p, Field::Url))
        .map(|u| link_key(&u))
        .collect();
    let linked: HashSet<String> = confirmed
        .iter()
        .flat_map(|p| p.accounts.iter().filter_map(|a| a.url.as_deref()))
        .map(link_key)
        .collect();
    let hint = name_hint.map(tokens).unwrap_or_default();

    let mut kept = confirmed;
    for mut guess in guesses {
        let mut by = Vec::new();
        if text(&guess, Field::AvatarUrl)
            .is_some_and(|a| avatar_keys(&a).iter().any(|k| avatars.contains(k)))
        {
            by.push(Corroboration::Avatar);
        }
        let links_out = guess
            .accounts
            .iter()
            .filter_map(|a| a.url.as_deref())
            .any(|u| urls.contains(&link_key(u)));
        let linked_in = text(&guess, Field::Url).is_some_and(|u| linked.contains(&link_key(&u)));
        if links_out || linked_in {
            by.push(Corroboration::Link);
        }
        if text(&guess, Field::DisplayName).is_some_and(|n| names_match(&hint, &tokens(&n))) {
            by.push(Corroboration::NameHint);
        }
        if by.is_empty() {
            guess.doubt = doubt_of(&guess);
            possible.push(where_only(guess));
        } else {
            guess.corroborated_by = by;
            kept.push(guess);
        }
    }
    (kept, possible)
}

fn text(profile: &Profile, field: Field) -> Option<String> {
    profile.fields.get(&field).map(|s| s.value.as_text())
}

/// Where a possible match is, and nothing it says about anyone.
fn where_only(mut profile: Profile) -> Profile {
    profile
        .fields
        .retain(|f, _| matches!(f, Field::Url | Field::Username));
    profile.extra.clear();
    profile.accounts.clear();
    profile
}

/// Keys under which two avatar URLs show the same image: the URL without
/// scheme, query or fragment, and any hex run of 32 or 64 characters in its
/// path (Gravatar's and Libravatar's MD5/SHA-256 image hashes).
fn avatar_keys(url: &str) -> Vec<String> {
    let mut keys = vec![link_key(url)];
    if let Ok(parsed) = url::Url::parse(url) {
        keys.extend(
            parsed
                .path()
                .split(['/', '.'])
                .filter(|s| matches!(s.len(), 32 | 64) && s.chars().all(|c| c.is_ascii_hexdigit()))
                .map(|s| format!("hash:{}", s.to_ascii_lowercase())),
        );
    }
    keys
}

/// A URL as links are compared: no scheme, `www.`, query, fragment or
/// trailing slash, lowercased.
fn link_key(url: &str) -> String {
    let Ok(parsed) = url::Url::parse(url.trim()) else {
        return url.trim().trim_end_matches('/').to_lowercase();
    };
    let host = parsed.host_str().unwrap_or_default();
    let host = host.strip_prefix("www.").unwrap_or(host);
    format!("{host}{}", parsed.path().trim_end_matches('/')).to_lowercase()
}

/// The words of a name that say something (three letters or more).
fn tokens(name: &str) -> Vec<String> {
    name.split(|c: char| !c.is_alphanumeric())
        .filter(|t| t.chars().count() >= 3)
        .map(str::to_lowercase)
        .collect()
}

/// A name matches the hint when it holds the hint's words: all of them for
/// a one-word hint, at least two otherwise (a first name alone is shared by
/// too many people).
fn names_match(hint: &[String], name: &[String]) -> bool {
    let shared = hint.iter().filter(|t| name.contains(t)).count();
    !hint.is_empty() && shared >= hint.len().min(2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{LinkedAccount, Method, Provenance, Sourced, Value};

    fn profile(source: &str, confidence: Confidence, fields: &[(Field, &str)]) -> Profile {
        let provenance = Provenance {
            source_id: source.into(),
            url: format!("https://{source}.example/p"),
            retrieved_at: chrono::DateTime::UNIX_EPOCH,
            confidence,
            method: Method::Detection,
            selector: String::new(),
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
                            value: Value::Text((*v).into()),
                            provenance: provenance.clone(),
                        },
                    )
                })
                .collect(),
            extra: Default::default(),
            accounts: Vec::new(),
            corroborated_by: Vec::new(),
            breaches: Vec::new(),
            sensitive_breaches_withheld: 0,
            found_via: None,
            doubt: None,
        }
    }

    #[test]
    fn a_guess_nothing_ties_to_the_person_is_a_possible_match_with_where_only() {
        let confirmed = profile(
            "gravatar",
            Confidence::Exact,
            &[(Field::DisplayName, "Jane Doe")],
        );
        let guess = profile(
            "forum",
            Confidence::Guess,
            &[
                (Field::Url, "https://forum.example/u/jane.doe"),
                (Field::Username, "jane.doe"),
                (Field::DisplayName, "Jane Smith"),
                (Field::Bio, "I love knitting"),
            ],
        );
        let (kept, possible) =
            corroborate(vec![confirmed, guess], Some("Jane Doe"), &Doubts::default());
        assert_eq!(kept.len(), 1);
        assert_eq!(possible.len(), 1);
        let fields: Vec<Field> = possible[0].fields.keys().copied().collect();
        assert_eq!(fields, [Field::Url, Field::Username]);
    }

    #[test]
    fn an_avatar_a_link_or_the_hinted_name_corroborates_a_guess() {
        let mut confirmed = profile(
            "gravatar",
            Confidence::Exact,
            &[
                (Field::Url, "https://gravatar.com/janedoe"),
                (
                    Field::AvatarUrl,
                    "https://gravatar.com/avatar/0bc83cb571cd1c50ba6f3e8a78ef1346?s=80",
                ),
            ],
        );
        confirmed.accounts.push(LinkedAccount {
            platform: Some("Forum".into()),
            url: Some("http://www.forum.example/u/jdoe/".into()),
            username: None,
            provenance: confirmed.provenance.clone(),
        });
        let avatar = profile(
            "chat",
            Confidence::Guess,
            &[(
                Field::AvatarUrl,
                "https://seccdn.libravatar.org/avatar/0BC83CB571CD1C50BA6F3E8A78EF1346",
            )],
        );
        let linked = profile(
            "forum",
            Confidence::Guess,
            &[(Field::Url, "https://forum.example/u/jdoe")],
        );
        let named = profile(
            "blog",
            Confidence::Guess,
            &[(Field::DisplayName, "Doe, Jane")],
        );
        let first_name_only = profile("games", Confidence::Guess, &[(Field::DisplayName, "Jane")]);
        let (kept, possible) = corroborate(
            vec![confirmed, avatar, linked, named, first_name_only],
            Some("Jane Doe"),
            &Doubts::default(),
        );
        let by: Vec<(&str, Vec<Corroboration>)> = kept
            .iter()
            .map(|p| (&*p.source_id, p.corroborated_by.clone()))
            .collect();
        assert_eq!(
            by,
            [
                ("gravatar", vec![]),
                ("chat", vec![Corroboration::Avatar]),
                ("forum", vec![Corroboration::Link]),
                ("blog", vec![Corroboration::NameHint]),
            ]
        );
        assert_eq!(possible.len(), 1);
        assert_eq!(&*possible[0].source_id, "games");
    }
}
