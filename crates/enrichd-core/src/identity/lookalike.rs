//! Email domains that are probably not what the person meant: a typo of a
//! well-known domain (one edit, a swap of neighbours included: `gmial.com`,
//! `exmaple.com`), a look-alike of one (Unicode confusables: `exаmple.com`
//! with a Cyrillic `а`), or a label that mixes scripts. Confusables and
//! script mixing follow Unicode TR39 (the `unicode-security` crate).
use unicode_security::{MixedScript, skeleton};

/// Domains people mean most often: the large mail providers, and the
/// documentation domains.
const WELL_KNOWN: &[&str] = &[
    "gmail.com",
    "googlemail.com",
    "yahoo.com",
    "yahoo.co.uk",
    "yahoo.fr",
    "ymail.com",
    "hotmail.com",
    "hotmail.co.uk",
    "hotmail.fr",
    "outlook.com",
    "live.com",
    "msn.com",
    "icloud.com",
    "me.com",
    "mac.com",
    "aol.com",
    "proton.me",
    "protonmail.com",
    "gmx.de",
    "gmx.net",
    "gmx.com",
    "web.de",
    "t-online.de",
    "orange.fr",
    "free.fr",
    "laposte.net",
    "libero.it",
    "mail.ru",
    "yandex.ru",
    "qq.com",
    "163.com",
    "comcast.net",
    "verizon.net",
    "btinternet.com",
    "example.com",
    "example.org",
    "example.net",
];

/// The well-known domains with their TR39 skeletons, computed once: every
/// address an enrichment verifies is compared with all of them.
static SKELETONS: std::sync::LazyLock<Vec<(&'static str, String)>> =
    std::sync::LazyLock::new(|| {
        WELL_KNOWN
            .iter()
            .map(|known| (*known, skeleton(known).collect()))
            .collect()
    });

/// The well-known domain `domain` (its Unicode form) is probably a typo or
/// a look-alike of; `None` when it is one of them, or near none.
pub fn meant(domain: &str) -> Option<&'static str> {
    let domain = domain.to_lowercase();
    if WELL_KNOWN.contains(&domain.as_str()) {
        return None;
    }
    let shape: String = skeleton(&domain).collect();
    let chars = domain.chars().count();
    SKELETONS.iter().find_map(|(known, known_shape)| {
        // One edit changes the length by one at most: most domains are
        // ruled out without the edit distance.
        let near =
            chars.abs_diff(known.len()) <= 1 && strsim::damerau_levenshtein(&domain, known) == 1;
        (near || *known_shape == shape).then_some(*known)
    })
}

/// Whether a label of the domain mixes scripts (Latin with Cyrillic, say).
pub fn mixed_script(domain: &str) -> bool {
    domain.split('.').any(|label| !label.is_single_script())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_and_look_alikes_point_to_the_domain_meant() {
        for (typed, want) in [
            ("gmial.com", "gmail.com"),
            ("gmail.con", "gmail.com"),
            ("hotmial.com", "hotmail.com"),
            ("yaho.com", "yahoo.com"),
            ("exmaple.com", "example.com"),
            ("ex\u{430}mple.com", "example.com"),
            ("GMIAL.COM", "gmail.com"),
        ] {
            assert_eq!(meant(typed), Some(want), "{typed}");
        }
        for fine in [
            "gmail.com",
            "example.com",
            "acme-corp.io",
            "bücher.de",
            "gmx.at",
        ] {
            assert_eq!(meant(fine), None, "{fine}");
        }
    }

    #[test]
    fn a_label_that_mixes_scripts_is_flagged() {
        assert!(mixed_script("ex\u{430}mple.com"));
        assert!(!mixed_script("example.com"));
        assert!(!mixed_script("пример.рф"), "one script throughout");
        assert!(!mixed_script("bücher.de"));
    }
}
