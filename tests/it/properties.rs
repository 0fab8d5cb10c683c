//! Property tests over what hostile callers and sites control: identifiers,
//! values substituted into request templates, and the addresses and URLs the
//! destination filter judges. Each runs a bounded number of generated cases
//! (proptest's default 256) in the ordinary suite; none may panic, and the
//! invariants below must hold for every case. A failure prints the smallest
//! input that breaks it.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use enrichd::api::request::enrich_query;
use enrichd::auth::Caller;
use enrichd::catalog::template::Template;
use enrichd::error::Error;
use enrichd::fetch::{check_destination, is_public};
use enrichd::identity::{Email, PhoneNumber, Region};
use enrichd::proto::v1 as pb;
use proptest::prelude::*;
use url::Url;

/// Strings near the shape of an email address, with Unicode, dots, quotes,
/// brackets, controls and the characters that separate parts.
fn email_like() -> impl Strategy<Value = String> {
    let part = "[a-zA-Z0-9._%+\\-\"()\\[\\]<> \\t\\u{0}\\u{200b}\\u{202e}äöüß中文é]{0,24}";
    let domain = "[a-zA-Z0-9.\\-äöü中文\\[\\]:]{0,24}";
    (part, domain, prop::bool::ANY).prop_map(|(local, domain, mailto)| {
        let address = format!("{local}@{domain}");
        if mailto {
            format!("mailto:{address}")
        } else {
            address
        }
    })
}

/// Strings near the shape of a phone number in any format.
fn phone_like() -> impl Strategy<Value = String> {
    "(\\+|00|tel:\\+|tel:)?[0-9 ()\\-.+x#*/a-zA-Z\\u{0}\\u{200b}٠-٩０-９]{0,30}"
}

proptest! {
    // 256 cases a property (PROPTEST_CASES=N for a longer hunt); failures
    // are printed, not saved to files.
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn email_parsing_never_panics_and_its_canonical_form_is_a_fixed_point(
        input in prop_oneof![email_like(), any::<String>()]
    ) {
        if let Ok(email) = Email::parse(&input) {
            let again = Email::parse(&email.address())
                .expect("an accepted address parses again in the form enrichd uses");
            prop_assert_eq!(again.canonical(), email.canonical());
            prop_assert!(!email.canonical().chars().any(char::is_control));
            prop_assert!(email.address().len() <= 254);
        }
    }

    #[test]
    fn phone_parsing_never_panics_and_e164_is_a_fixed_point(
        input in prop_oneof![phone_like(), any::<String>()],
        region in prop::sample::select(vec![None, Some("GB"), Some("US"), Some("DE"), Some("IN")]),
    ) {
        let region = region.map(|r| r.parse::<Region>().unwrap());
        if let Ok(phone) = PhoneNumber::parse(&input, region) {
            prop_assert!(phone.e164().starts_with('+'));
            prop_assert!(phone.e164()[1..].chars().all(|c| c.is_ascii_digit()));
            let again = PhoneNumber::parse(phone.e164(), None)
                .expect("an accepted number parses again from its E.164 form");
            prop_assert_eq!(again.e164(), phone.e164());
        }
    }

    #[test]
    fn identifiers_and_references_with_controls_are_refused_naming_the_field(
        prefix in "[a-z]{1,8}",
        control in prop::sample::select(vec!['\u{0}', '\r', '\n', '\t', '\u{7f}', '\u{200b}', '\u{202e}', '\u{2066}', '\u{feff}']),
        field in prop::sample::select(vec!["email", "phone", "purpose", "request_id"]),
    ) {
        let value = format!("{prefix}{control}x");
        let mut request = pb::EnrichRequest {
            purpose: "marketing".into(),
            identifier: Some(pb::enrich_request::Identifier::Email("a@example.com".into())),
            ..Default::default()
        };
        match field {
            "email" => request.identifier = Some(pb::enrich_request::Identifier::Email(value.clone())),
            "phone" => request.identifier = Some(pb::enrich_request::Identifier::Phone(value.clone())),
            "purpose" => request.purpose = value.clone(),
            _ => request.request_id = value.clone(),
        }
        match enrich_query(request, tokio::time::Instant::now(), Caller::anonymous()) {
            Err(Error::InvalidArgument(violations)) => {
                prop_assert!(violations.iter().any(|v| v.field == field), "{:?}", violations);
                prop_assert!(violations.iter().all(|v| !v.description.contains(&value)));
            }
            other => prop_assert!(false, "{field}: {:?} accepted: {:?}", value, other.is_ok()),
        }
    }

    #[test]
    fn template_parsing_never_panics(text in any::<String>()) {
        let _ = Template::parse(&text);
    }

    #[test]
    fn no_input_changes_the_shape_or_destination_of_a_request(input in any::<String>()) {
        let template = Template::parse("https://site.test/u/{input}/p?q={input}#f{input}").unwrap();
        let no_env = |_: &str| None;
        if let Ok(rendered) = template.render_url(&input, &no_env) {
            let url = Url::parse(&rendered).expect("a rendered URL parses");
            prop_assert_eq!(url.origin().ascii_serialization(), "https://site.test");
            let segments: Vec<_> = url.path_segments().unwrap().collect();
            prop_assert_eq!(segments.len(), 3, "{}", rendered);
            prop_assert_eq!(segments[0], "u");
            prop_assert_eq!(segments[2], "p");
            let decoded = percent_encoding::percent_decode_str(segments[1]).decode_utf8_lossy();
            prop_assert_eq!(decoded.as_ref(), input.as_str());
            let query: Vec<_> = url.query_pairs().collect();
            prop_assert_eq!(query.len(), 1, "{}", rendered);
            prop_assert_eq!(query[0].0.as_ref(), "q");
            prop_assert_eq!(query[0].1.as_ref(), input.as_str());
        } else {
            // Only a value that cannot stand as a path segment is refused.
            prop_assert!(input.is_empty() || input == "." || input == "..");
        }
        let header = Template::parse("Bearer {input}").unwrap();
        if let Ok(value) = header.render_raw(&input, &no_env) {
            prop_assert!(!value.contains(['\r', '\n']));
        }
        let body = Template::parse("{{\"q\": \"{input}\"}}").unwrap();
        let json = body.render_json(&input, &no_env).unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&json).expect("the body stays JSON");
        prop_assert_eq!(parsed["q"].as_str(), Some(input.as_str()));
    }

    #[test]
    fn every_ipv6_form_of_an_ipv4_address_is_judged_as_that_address(bits in any::<u32>()) {
        let v4 = Ipv4Addr::from(bits);
        let public = is_public(IpAddr::V4(v4));
        let [a, b, c, d] = v4.octets();
        let hi = u16::from_be_bytes([a, b]);
        let lo = u16::from_be_bytes([c, d]);
        for v6 in [
            v4.to_ipv6_mapped(),
            Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, hi, lo),
            Ipv6Addr::new(0x2002, hi, lo, 0, 0, 0, 0, 1),
        ] {
            prop_assert_eq!(is_public(IpAddr::V6(v6)), public, "{} for {}", v6, v4);
        }
        // IPv4-compatible (::a.b.c.d) and Teredo are never public.
        prop_assert!(!is_public(IpAddr::V6(v4.to_ipv6_compatible())));
        prop_assert!(!is_public(IpAddr::V6(Ipv6Addr::new(0x2001, 0, hi, lo, 0, 0, !hi, !lo))));
    }

    #[test]
    fn a_public_ipv6_address_is_global_unicast_or_carries_a_public_ipv4(bits in any::<u128>()) {
        let v6 = Ipv6Addr::from(bits);
        if is_public(IpAddr::V6(v6)) {
            let global_unicast = v6.segments()[0] & 0xe000 == 0x2000;
            let embedded = v6.to_ipv4_mapped().is_some()
                || v6.segments()[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
            prop_assert!(global_unicast || embedded, "{}", v6);
        }
        let url = Url::parse(&format!("http://[{v6}]:8080/")).unwrap();
        prop_assert_eq!(check_destination(&url, &[]).is_ok(), is_public(IpAddr::V6(v6)));
    }

    #[test]
    fn the_destination_filter_never_panics_and_refuses_what_is_not_http(text in any::<String>()) {
        for candidate in [text.clone(), format!("http://{text}/"), format!("http://{text}:81/x")] {
            if let Ok(url) = Url::parse(&candidate) {
                let verdict = check_destination(&url, &[]);
                if !matches!(url.scheme(), "http" | "https") {
                    prop_assert!(verdict.is_err());
                }
                if let Some(url::Host::Ipv4(ip)) = url.host() {
                    prop_assert_eq!(verdict.is_ok(), is_public(IpAddr::V4(ip)));
                }
            }
        }
    }
}
