//! `Email`: an address valid by construction, parsed once at the edge.
//!
//! The syntax is what real mail servers accept (RFC 5321/5322 dot-atoms, with
//! RFC 6531 UTF-8 local parts), not everything the RFCs allow: quoted local
//! parts, comments, display names and IP-literal domains are rejected with a
//! reason, because no public mailbox a caller wants enriched looks like that.
//! The local-part grammar is the `email_address` crate's; the domain goes
//! through IDNA (UTS #46, STD3 rules) to punycode.
//!
//! (Over 400 lines: the second half is the table of test cases that pins
//! the syntax down, kept beside the code it describes.)
use std::fmt;

use email_address::{EmailAddress, Options};

/// RFC 5321 §4.5.3.1.1.
const MAX_LOCAL_OCTETS: usize = 64;
/// RFC 5321 path limit (256) less the angle brackets.
const MAX_ADDRESS_OCTETS: usize = 254;
/// Inputs beyond this are refused before any parsing work.
const MAX_INPUT_BYTES: usize = 1024;

/// Why an email address was refused. Each message is written for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("is empty")]
    Empty,
    #[error("is {0} bytes long; an address has at most {MAX_ADDRESS_OCTETS}")]
    TooLong(usize),
    #[error("contains whitespace or control characters")]
    Whitespace,
    #[error("has no '@' separating local part and domain")]
    MissingAt,
    #[error("uses a display name (\"Name <address>\"); send the bare address")]
    DisplayName,
    #[error("has a quoted local part, which enrichd does not accept")]
    QuotedLocalPart,
    #[error("has a comment in parentheses, which enrichd does not accept")]
    Comment,
    #[error("has an IP-literal domain ([...]), which enrichd does not accept")]
    DomainLiteral,
    #[error("has an empty local part")]
    LocalPartEmpty,
    #[error("has a local part of {0} bytes; at most {MAX_LOCAL_OCTETS} are allowed")]
    LocalPartTooLong(usize),
    #[error("has an invalid local part: {0}")]
    InvalidLocalPart(&'static str),
    #[error("has an empty domain")]
    DomainEmpty,
    #[error("has a domain without a top-level domain (e.g. 'example.com')")]
    DomainWithoutTld,
    #[error("has a domain that looks like an IP address")]
    NumericDomain,
    #[error("has an invalid domain: {0}")]
    InvalidDomain(String),
}

/// A syntactically valid email address.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Email {
    local: String,
    domain: String,
    domain_unicode: String,
    canonical: String,
}

// Personal data: never print the address through Debug.
impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Email(<redacted>)")
    }
}

impl Email {
    /// Parses what a caller sent. Tolerates surrounding whitespace and a
    /// `mailto:` prefix (with any `?query` after it).
    pub fn parse(input: &str) -> Result<Self, EmailError> {
        if input.len() > MAX_INPUT_BYTES {
            return Err(EmailError::TooLong(input.len()));
        }
        let mut s = input.trim();
        if let Some(rest) = strip_prefix_ignore_case(s, "mailto:") {
            s = rest.split('?').next().unwrap_or_default().trim();
        }
        if s.is_empty() {
            return Err(EmailError::Empty);
        }
        if s.contains('<') || s.contains('>') {
            return Err(EmailError::DisplayName);
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(EmailError::Whitespace);
        }
        let (local, domain) = s.rsplit_once('@').ok_or(EmailError::MissingAt)?;
        if local.starts_with('"') || local.ends_with('"') {
            return Err(EmailError::QuotedLocalPart);
        }
        if local.contains('(') || local.contains(')') || domain.contains('(') {
            return Err(EmailError::Comment);
        }
        if domain.starts_with('[') {
            return Err(EmailError::DomainLiteral);
        }
        if local.is_empty() {
            return Err(EmailError::LocalPartEmpty);
        }
        if local.len() > MAX_LOCAL_OCTETS {
            return Err(EmailError::LocalPartTooLong(local.len()));
        }
        if domain.is_empty() {
            return Err(EmailError::DomainEmpty);
        }

        let options = Options::default()
            .with_required_tld()
            .without_domain_literal()
            .without_display_text();
        if domain.ends_with('.') {
            return Err(EmailError::InvalidDomain(
                "ends with a dot; send it without (example.com)".into(),
            ));
        }
        EmailAddress::parse_with_options(&format!("{local}@{domain}"), options).map_err(|e| {
            // The crate names one error for a bad character on either side:
            // the domain's, when the local part passes on its own.
            let local_ok =
                EmailAddress::parse_with_options(&format!("{local}@example.com"), options).is_ok();
            match e {
                email_address::Error::InvalidCharacter if local_ok => EmailError::InvalidDomain(
                    "contains a character domain names do not allow".into(),
                ),
                e => map_crate_error(&e),
            }
        })?;

        let ascii = idna::domain_to_ascii_strict(domain).map_err(|_| {
            EmailError::InvalidDomain("not a valid (internationalised) domain name".into())
        })?;
        let (tld_less, tld) = ascii.rsplit_once('.').ok_or(EmailError::DomainWithoutTld)?;
        if tld_less.is_empty() || tld.is_empty() {
            return Err(EmailError::DomainWithoutTld);
        }
        if tld.chars().all(|c| c.is_ascii_digit()) {
            return Err(EmailError::NumericDomain);
        }
        let total = local.len() + 1 + ascii.len();
        if total > MAX_ADDRESS_OCTETS {
            return Err(EmailError::TooLong(total));
        }
        let (domain_unicode, _) = idna::domain_to_unicode(&ascii);
        let canonical = canonicalize(local, &ascii);
        Ok(Self {
            local: local.to_owned(),
            domain: ascii,
            domain_unicode,
            canonical,
        })
    }

    /// The address as used: local part as given, ASCII lowercase domain.
    pub fn address(&self) -> String {
        format!("{}@{}", self.local, self.domain)
    }

    pub fn local_part(&self) -> &str {
        &self.local
    }

    /// The ASCII (punycode) domain, lowercase.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The domain in Unicode (equal to `domain()` for ASCII domains).
    pub fn domain_unicode(&self) -> &str {
        &self.domain_unicode
    }

    /// The matching form: the same mailbox always gives the same string.
    pub fn canonical(&self) -> &str {
        &self.canonical
    }

    /// The local part lowercased without its `+tag`: what role lists and
    /// username guesses look at.
    pub fn local_base(&self) -> String {
        let lower = self.local.to_lowercase();
        match lower.split_once('+') {
            Some((base, _)) if !base.is_empty() => base.to_owned(),
            _ => lower,
        }
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

fn map_crate_error(e: &email_address::Error) -> EmailError {
    use email_address::Error as E;
    match e {
        E::LocalPartEmpty => EmailError::LocalPartEmpty,
        E::LocalPartTooLong => EmailError::InvalidLocalPart("too long"),
        E::DomainEmpty => EmailError::DomainEmpty,
        E::DomainTooFew => EmailError::DomainWithoutTld,
        E::DomainTooLong => EmailError::InvalidDomain("too long".into()),
        E::SubDomainEmpty => EmailError::InvalidDomain("has an empty label (\"..\")".into()),
        E::SubDomainTooLong => EmailError::InvalidDomain("has a label over 63 characters".into()),
        E::UnsupportedDomainLiteral | E::InvalidIPAddress => EmailError::DomainLiteral,
        E::UnbalancedQuotes => EmailError::QuotedLocalPart,
        E::InvalidComment => EmailError::Comment,
        E::UnsupportedDisplayName | E::MissingDisplayName | E::MissingEndBracket => {
            EmailError::DisplayName
        }
        E::MissingSeparator => EmailError::MissingAt,
        E::InvalidCharacter | E::DomainInvalidSeparator => EmailError::InvalidLocalPart(
            "contains a character mail servers do not accept, or a misplaced dot",
        ),
    }
}

/// How a provider treats variants of one mailbox.
struct ProviderRule {
    domains: &'static [&'static str],
    /// The domain every alias maps to.
    canonical_domain: Option<&'static str>,
    ignores_dots: bool,
    plus_tags: bool,
}

/// Providers whose aliasing rules are documented and stable. Elsewhere only
/// case is folded: a `+tag` may be a different mailbox on an unknown server.
const PROVIDERS: &[ProviderRule] = &[
    ProviderRule {
        domains: &["gmail.com", "googlemail.com"],
        canonical_domain: Some("gmail.com"),
        ignores_dots: true,
        plus_tags: true,
    },
    ProviderRule {
        domains: &[
            "outlook.com",
            "hotmail.com",
            "live.com",
            "msn.com",
            "hotmail.co.uk",
            "outlook.de",
            "hotmail.fr",
        ],
        canonical_domain: None,
        ignores_dots: false,
        plus_tags: true,
    },
    ProviderRule {
        domains: &["icloud.com", "me.com", "mac.com"],
        canonical_domain: Some("icloud.com"),
        ignores_dots: false,
        plus_tags: true,
    },
    ProviderRule {
        domains: &[
            "protonmail.com",
            "protonmail.ch",
            "proton.me",
            "pm.me",
            "fastmail.com",
            "fastmail.fm",
        ],
        canonical_domain: None,
        ignores_dots: false,
        plus_tags: true,
    },
];

/// The matching form of a mailbox. The local part is folded to Unicode
/// compatibility form (NFKC) before its case: `ｊａｎｅ` (fullwidth), `ﬁ`
/// (a ligature) and `𝐣` (mathematical bold) are the letters they stand
/// for, as the domain's own folding (UTS #46) already makes them, so an
/// erasure or objection holds however the address is typed. The address
/// sent to sources stays as given.
fn canonicalize(local: &str, ascii_domain: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    // ASCII is its own compatibility form: most addresses skip the tables.
    let mut local = if local.is_ascii() {
        local.to_ascii_lowercase()
    } else {
        local.nfkc().collect::<String>().to_lowercase()
    };
    let mut domain = ascii_domain;
    if let Some(rule) = PROVIDERS.iter().find(|r| r.domains.contains(&ascii_domain)) {
        if rule.plus_tags
            && let Some((base, _)) = local.split_once('+')
            && !base.is_empty()
        {
            local = base.to_owned();
        }
        if rule.ignores_dots {
            local.retain(|c| c != '.');
        }
        if let Some(d) = rule.canonical_domain {
            domain = d;
        }
    }
    format!("{local}@{domain}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_addresses_normalise() {
        // (input, address, canonical)
        let cases = [
            (
                "jane.doe@example.com",
                "jane.doe@example.com",
                "jane.doe@example.com",
            ),
            (
                "  Jane.Doe@Example.COM \n",
                "Jane.Doe@example.com",
                "jane.doe@example.com",
            ),
            (
                "mailto:jane@example.com",
                "jane@example.com",
                "jane@example.com",
            ),
            (
                "MAILTO:jane@example.com?subject=hi",
                "jane@example.com",
                "jane@example.com",
            ),
            (
                "J.A.N.E+news@googlemail.com",
                "J.A.N.E+news@googlemail.com",
                "jane@gmail.com",
            ),
            (
                "jane.doe+x@gmail.com",
                "jane.doe+x@gmail.com",
                "janedoe@gmail.com",
            ),
            (
                "jane.doe+x@outlook.com",
                "jane.doe+x@outlook.com",
                "jane.doe@outlook.com",
            ),
            ("jane+x@me.com", "jane+x@me.com", "jane@icloud.com"),
            // Unknown servers: a +tag may be a different mailbox, so it stays.
            (
                "jane+x@example.com",
                "jane+x@example.com",
                "jane+x@example.com",
            ),
            (
                "o'brien@example.ie",
                "o'brien@example.ie",
                "o'brien@example.ie",
            ),
            ("a@b.co", "a@b.co", "a@b.co"),
            // IDN domain to punycode; UTF-8 local part (RFC 6531) accepted.
            (
                "jürgen@bücher.de",
                "jürgen@xn--bcher-kva.de",
                "jürgen@xn--bcher-kva.de",
            ),
            // Compatibility characters are the letters they stand for
            // (NFKC), in the local part as in the domain: one mailbox.
            (
                "ｊａｎｅ.doe@ｅｘａｍｐｌｅ.com",
                "ｊａｎｅ.doe@example.com",
                "jane.doe@example.com",
            ),
            (
                "ＪＡＮＥ.ＤＯＥ+ｘ@gmail.com",
                "ＪＡＮＥ.ＤＯＥ+ｘ@gmail.com",
                "janedoe@gmail.com",
            ),
            (
                "\u{1d423}ane@example.com",
                "\u{1d423}ane@example.com",
                "jane@example.com",
            ),
            ("ﬁona@example.com", "ﬁona@example.com", "fiona@example.com"),
            (
                "用户@例子.广告",
                "用户@xn--fsqu00a.xn--4rr70v",
                "用户@xn--fsqu00a.xn--4rr70v",
            ),
        ];
        for (input, address, canonical) in cases {
            let e = Email::parse(input).unwrap_or_else(|err| panic!("{input:?}: {err}"));
            assert_eq!(e.address(), address, "{input:?}");
            assert_eq!(e.canonical(), canonical, "{input:?}");
        }
    }

    #[test]
    fn unicode_domain_is_kept_for_display() {
        let e = Email::parse("x@bücher.de").expect("valid");
        assert_eq!(e.domain(), "xn--bcher-kva.de");
        assert_eq!(e.domain_unicode(), "bücher.de");
    }

    #[test]
    fn invalid_addresses_say_why() {
        let long_local = format!("{}@example.com", "a".repeat(65));
        let long_total = format!(
            "{}@{}.com",
            "a".repeat(64),
            vec!["b".repeat(60); 4].join(".")
        );
        let huge = "a".repeat(5000);
        let cases: Vec<(&str, EmailError)> = vec![
            ("", EmailError::Empty),
            ("   ", EmailError::Empty),
            ("mailto:", EmailError::Empty),
            ("jane.example.com", EmailError::MissingAt),
            ("jane doe@example.com", EmailError::Whitespace),
            ("jane@exa\u{0}mple.com", EmailError::Whitespace),
            ("Jane <jane@example.com>", EmailError::DisplayName),
            ("<jane@example.com>", EmailError::DisplayName),
            ("\"jane\"@example.com", EmailError::QuotedLocalPart),
            ("jane(comment)@example.com", EmailError::Comment),
            ("jane@[127.0.0.1]", EmailError::DomainLiteral),
            ("jane@[IPv6:::1]", EmailError::DomainLiteral),
            ("@example.com", EmailError::LocalPartEmpty),
            ("jane@", EmailError::DomainEmpty),
            ("jane@localhost", EmailError::DomainWithoutTld),
            ("jane@1.2.3.4", EmailError::NumericDomain),
            (
                "jane@example.com.",
                EmailError::InvalidDomain("ends with a dot; send it without (example.com)".into()),
            ),
            // An invisible character names the side it is on.
            (
                "an\u{200b}n@example.com",
                EmailError::InvalidLocalPart(
                    "contains a character mail servers do not accept, or a misplaced dot",
                ),
            ),
            (
                "ann@exa\u{200b}mple.com",
                EmailError::InvalidDomain("contains a character domain names do not allow".into()),
            ),
            (long_local.as_str(), EmailError::LocalPartTooLong(65)),
            (long_total.as_str(), EmailError::TooLong(312)),
            (huge.as_str(), EmailError::TooLong(5000)),
        ];
        for (input, want) in cases {
            assert_eq!(
                Email::parse(input).map(|e| e.address()),
                Err(want),
                "{input:?}"
            );
        }
    }

    #[test]
    fn malformed_local_parts_and_domains_are_rejected() {
        for input in [
            ".jane@example.com",
            "jane.@example.com",
            "ja..ne@example.com",
            "ja,ne@example.com",
            "jane@@example.com",
            "jane@-example.com",
            "jane@example-.com",
            "jane@exa_mple.com",
            "jane@example..com",
            "jane@.example.com",
            "jane@ex!ample.com",
        ] {
            assert!(Email::parse(input).is_err(), "{input:?} should be rejected");
        }
    }

    #[test]
    fn debug_never_shows_the_address() {
        let e = Email::parse("jane@example.com").expect("valid");
        assert_eq!(format!("{e:?}"), "Email(<redacted>)");
    }

    #[test]
    fn local_base_drops_tag_and_case() {
        let e = Email::parse("Info+Billing@example.com").expect("valid");
        assert_eq!(e.local_base(), "info");
    }
}
