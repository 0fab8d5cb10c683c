//! `PhoneNumber`: a number parsed once at the edge with libphonenumber's
//! metadata (the `phonenumber` crate), so region rules, number types and
//! vanity letters ("1-800-FLOWERS") behave as in every other libphonenumber
//! user.
use std::fmt;
use std::str::FromStr;

use phonenumber::{Mode, country};

/// Inputs beyond this are refused before parsing (E.164 has at most 15 digits;
/// formatting and an extension fit easily).
const MAX_INPUT_CHARS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("is empty")]
    Empty,
    #[error("is {0} characters long; at most {MAX_INPUT_CHARS} are accepted")]
    TooLong(usize),
    #[error("is not a phone number")]
    NotANumber,
    #[error(
        "has no country code; send E.164 (\"+447700900123\") or set a default region (e.g. \"GB\")"
    )]
    NeedsRegion,
    #[error("has an unknown country calling code")]
    InvalidCountryCode,
    #[error("is too short to be a phone number")]
    TooShort,
    #[error("is too long to be a phone number")]
    TooLongNumber,
    #[error("has {digits} digits after the country code; numbers in {region} have {lengths}")]
    LengthForRegion {
        digits: usize,
        region: String,
        lengths: String,
    },
}

/// `default_region` is not an ISO 3166-1 alpha-2 region libphonenumber knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an ISO 3166-1 alpha-2 region code (e.g. \"GB\", \"US\")")]
pub struct RegionError(pub String);

/// A parsed ISO 3166-1 alpha-2 region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region(country::Id);

impl FromStr for Region {
    type Err = RegionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let code = s.trim().to_ascii_uppercase();
        country::Id::from_str(&code)
            .map(Region)
            .map_err(|_| RegionError(s.to_owned()))
    }
}

/// The kind of line a number belongs to, per libphonenumber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NumberType {
    FixedLine,
    Mobile,
    FixedLineOrMobile,
    TollFree,
    PremiumRate,
    SharedCost,
    Voip,
    PersonalNumber,
    Pager,
    Uan,
    Voicemail,
    Unknown,
}

impl From<phonenumber::Type> for NumberType {
    fn from(t: phonenumber::Type) -> Self {
        use phonenumber::Type as T;
        match t {
            T::FixedLine => Self::FixedLine,
            T::Mobile => Self::Mobile,
            T::FixedLineOrMobile => Self::FixedLineOrMobile,
            T::TollFree => Self::TollFree,
            T::PremiumRate => Self::PremiumRate,
            T::SharedCost => Self::SharedCost,
            T::Voip => Self::Voip,
            T::PersonalNumber => Self::PersonalNumber,
            T::Pager => Self::Pager,
            T::Uan => Self::Uan,
            T::Voicemail => Self::Voicemail,
            _ => Self::Unknown,
        }
    }
}

/// A phone number that parsed. It may still be *invalid* for its region (a
/// number that cannot be assigned): that is a verification result, not a
/// parse error, because fraud teams want to see it.
#[derive(Clone, PartialEq, Eq)]
pub struct PhoneNumber {
    e164: String,
    international: String,
    national: String,
    region: Option<String>,
    country_code: u16,
    valid: bool,
    number_type: NumberType,
}

// Personal data: never print the number through Debug.
impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PhoneNumber(<redacted>)")
    }
}

impl PhoneNumber {
    /// Parses what a caller sent: E.164, international or (with a region)
    /// national format; `tel:` URIs; spaces, dashes, dots and brackets.
    pub fn parse(input: &str, default_region: Option<Region>) -> Result<Self, PhoneError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(PhoneError::Empty);
        }
        let chars = s.chars().count();
        if chars > MAX_INPUT_CHARS {
            return Err(PhoneError::TooLong(chars));
        }
        if !s.chars().any(|c| c.is_ascii_digit()) {
            return Err(PhoneError::NotANumber);
        }
        let international = s.starts_with('+') || s.to_ascii_lowercase().starts_with("tel:+");
        let database = &*phonenumber::metadata::DATABASE;
        let region_id = default_region.map(|r| r.0);
        let as_written = phonenumber::parse(region_id, s);
        let parsed = match as_written {
            Ok(ref p) if p.is_valid_with(database) => as_written,
            _ => without_trunk_prefix(s)
                .and_then(|alt| phonenumber::parse(region_id, alt).ok())
                .map_or(as_written, Ok),
        };
        let parsed = parsed.map_err(|e| {
            use phonenumber::ParseError as P;
            match e {
                P::InvalidCountryCode if !international && default_region.is_none() => {
                    PhoneError::NeedsRegion
                }
                P::InvalidCountryCode => PhoneError::InvalidCountryCode,
                P::TooShortAfterIdd | P::TooShortNsn => PhoneError::TooShort,
                P::TooLong => PhoneError::TooLongNumber,
                _ => PhoneError::NotANumber,
            }
        })?;
        // The subject is keyed on the E.164 form, and the same person must
        // come back from it: a parse that yields a form that does not read
        // back as itself ("0002" in DE became +4902, itself "too short") is
        // no number.
        let e164 = parsed.format().mode(Mode::E164).to_string();
        if !phonenumber::parse(None, &e164)
            .is_ok_and(|again| again.format().mode(Mode::E164).to_string() == e164)
        {
            return Err(PhoneError::TooShort);
        }
        // A number that fits no range has no region of its own; its country
        // code still names a main region (+44: GB), which is worth reporting.
        let region = parsed
            .country()
            .id()
            .map(|id| id.as_ref().to_owned())
            .or_else(|| {
                database
                    .by_code(&parsed.code().value())?
                    .into_iter()
                    .find(|m| m.is_main_country_for_code())
                    .map(|m| m.id().to_owned())
            })
            .filter(|id| id != "001");
        // Too short or too long for every number of its region (a local
        // number without its area code is not a contact detail).
        // A valid number is never refused here.
        if let Some(meta) = region
            .as_deref()
            .filter(|_| !parsed.is_valid_with(database))
            .and_then(|r| database.by_id(r))
        {
            // Every length a number of some type may have there (the general
            // descriptor's list is empty in this metadata).
            let d = meta.descriptors();
            let mut possible: Vec<u16> = [
                d.fixed_line(),
                d.mobile(),
                d.toll_free(),
                d.premium_rate(),
                d.shared_cost(),
                d.personal_number(),
                d.voip(),
                d.pager(),
                d.uan(),
                d.voicemail(),
            ]
            .into_iter()
            .flatten()
            .chain(std::iter::once(d.general()))
            .flat_map(|desc| desc.possible_length().iter().copied())
            .collect();
            possible.sort_unstable();
            possible.dedup();
            let digits = parsed.national().to_string().len();
            if !possible.is_empty() && !possible.contains(&(digits as u16)) {
                let mut lengths: Vec<String> = possible.iter().map(u16::to_string).collect();
                let last = lengths.pop().unwrap_or_default();
                let lengths = if lengths.is_empty() {
                    format!("{last} digits")
                } else {
                    format!("{} or {last} digits", lengths.join(", "))
                };
                return Err(PhoneError::LengthForRegion {
                    digits,
                    region: region.clone().unwrap_or_default(),
                    lengths,
                });
            }
        }
        Ok(Self {
            e164,
            international: parsed.format().mode(Mode::International).to_string(),
            national: parsed.format().mode(Mode::National).to_string(),
            region,
            country_code: parsed.code().value(),
            valid: parsed.is_valid_with(database),
            number_type: parsed.number_type(database).into(),
        })
    }

    pub fn e164(&self) -> &str {
        &self.e164
    }
    pub fn international(&self) -> &str {
        &self.international
    }
    pub fn national(&self) -> &str {
        &self.national
    }
    pub fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }
    pub fn country_code(&self) -> u16 {
        self.country_code
    }
    pub fn is_valid(&self) -> bool {
        self.valid
    }
    pub fn number_type(&self) -> NumberType {
        self.number_type
    }
}

/// "+44 (0) 7700 900123", "+44 07700 900123": a national trunk prefix kept
/// after the country code. As libphonenumber does, the prefix is dropped
/// when the number as written is not valid (in a country with a trunk
/// prefix no national number starts with it), so every written form of one
/// number is one subject. The candidate without the prefix, for an
/// international number of digits and punctuation only.
fn without_trunk_prefix(input: &str) -> Option<String> {
    let rest = input
        .strip_prefix("tel:")
        .unwrap_or(input)
        .strip_prefix('+')?;
    if rest.chars().any(|c| c.is_alphabetic()) {
        return None;
    }
    let digits: String = rest.chars().filter(char::is_ascii_digit).collect();
    let database = &*phonenumber::metadata::DATABASE;
    (1..=3.min(digits.len())).find_map(|len| {
        let (code, national) = digits.split_at(len);
        let main = database
            .by_code(&code.parse::<u16>().ok()?)?
            .into_iter()
            .find(|m| m.is_main_country_for_code())?;
        let national = national
            .strip_prefix(main.national_prefix()?)
            .filter(|n| !n.is_empty())?;
        Some(format!("+{code}{national}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gb() -> Option<Region> {
        Some("GB".parse().expect("GB is a region"))
    }

    #[test]
    fn a_trunk_prefix_after_the_country_code_is_the_same_number() {
        for written in [
            "+44 (0) 7700 900123",
            "+44 (0)7700 900123",
            "+44 07700 900123",
            "+447700900123",
        ] {
            for region in [gb(), None] {
                let p = PhoneNumber::parse(written, region).expect(written);
                assert_eq!(p.e164(), "+447700900123", "{written}");
            }
        }
        let london = PhoneNumber::parse("+44 (0) 20 7946 0018", None).expect("London");
        assert_eq!(london.e164(), "+442079460018");
        assert!(london.is_valid());
        // Italian numbers keep their leading zero: it is not a trunk prefix.
        let it = PhoneNumber::parse("+39 06 6982 0000", None).expect("Rome");
        assert_eq!(it.e164(), "+390669820000");
    }

    #[test]
    fn valid_numbers_normalise_to_e164() {
        // (input, region, e164, valid, type, region code)
        let cases = [
            (
                "+447400123456",
                None,
                "+447400123456",
                true,
                NumberType::Mobile,
                "GB",
            ),
            (
                "+44 7400 123456",
                None,
                "+447400123456",
                true,
                NumberType::Mobile,
                "GB",
            ),
            (
                " 07400 123456 ",
                gb(),
                "+447400123456",
                true,
                NumberType::Mobile,
                "GB",
            ),
            (
                "(020) 7946 0018",
                gb(),
                "+442079460018",
                true,
                NumberType::FixedLine,
                "GB",
            ),
            (
                "tel:+44-20-7946-0018",
                None,
                "+442079460018",
                true,
                NumberType::FixedLine,
                "GB",
            ),
            (
                "0800 890 567",
                gb(),
                "+44800890567",
                true,
                NumberType::TollFree,
                "GB",
            ),
            (
                "09065 123456",
                gb(),
                "+449065123456",
                true,
                NumberType::PremiumRate,
                "GB",
            ),
            (
                "056 1234 5678",
                gb(),
                "+445612345678",
                true,
                NumberType::Voip,
                "GB",
            ),
            (
                "+1 650-253-0000",
                None,
                "+16502530000",
                true,
                NumberType::FixedLineOrMobile,
                "US",
            ),
            (
                "+49 30 901820",
                None,
                "+4930901820",
                true,
                NumberType::FixedLine,
                "DE",
            ),
            // Vanity letters are dialled digits (libphonenumber's rule).
            (
                "+1 800 FLOWERS",
                None,
                "+18003569377",
                true,
                NumberType::TollFree,
                "US",
            ),
        ];
        for (input, region, e164, valid, kind, code) in cases {
            let p = PhoneNumber::parse(input, region).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(p.e164(), e164, "{input:?}");
            assert_eq!(p.is_valid(), valid, "{input:?}");
            assert_eq!(p.number_type(), kind, "{input:?}");
            assert_eq!(p.region(), Some(code), "{input:?}");
        }
    }

    #[test]
    fn parsable_but_unassignable_numbers_are_marked_invalid() {
        // Ofcom reserves 07700 900000-900999 for drama: the shape of a UK mobile,
        // never assigned, so libphonenumber's metadata rejects it.
        let p = PhoneNumber::parse("+44 7700 900123", None).expect("parses");
        assert_eq!(p.e164(), "+447700900123");
        assert_eq!(p.region(), Some("GB"));
        assert!(!p.is_valid());
        assert_eq!(p.number_type(), NumberType::Unknown);
    }

    #[test]
    fn bad_numbers_say_why() {
        let long = "1".repeat(80);
        let cases: Vec<(&str, Option<Region>, PhoneError)> = vec![
            ("", None, PhoneError::Empty),
            ("   ", None, PhoneError::Empty),
            ("not a number", None, PhoneError::NotANumber),
            ("07700 900123", None, PhoneError::NeedsRegion),
            ("+999 1234 5678", None, PhoneError::InvalidCountryCode),
            ("+44 1", None, PhoneError::TooShort),
            (long.as_str(), None, PhoneError::TooLong(80)),
            (
                "+44 7700 900123 4567 8901 2345",
                None,
                PhoneError::TooLongNumber,
            ),
        ];
        for (input, region, want) in cases {
            assert_eq!(
                PhoneNumber::parse(input, region).map(|p| p.e164().to_owned()),
                Err(want),
                "{input:?}"
            );
        }
    }

    #[test]
    fn a_number_too_short_or_long_for_its_region_is_refused_with_the_lengths() {
        let gb = "GB".parse::<Region>().ok();
        let err = PhoneNumber::parse("12345", gb).expect_err("five digits in GB");
        assert!(
            matches!(&err, PhoneError::LengthForRegion { digits: 5, region, .. } if region == "GB"),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .starts_with("has 5 digits after the country code; numbers in GB have "),
            "{err}"
        );
        // Valid and merely unassigned numbers still parse.
        assert!(PhoneNumber::parse("+44 7700 900123", None).is_ok());
        assert!(PhoneNumber::parse("+1 202 555 0143", None).is_ok());
    }

    #[test]
    fn region_codes_parse_case_insensitively() {
        assert!("gb".parse::<Region>().is_ok());
        assert_eq!(
            "XX".parse::<Region>().expect_err("unknown").to_string(),
            "\"XX\" is not an ISO 3166-1 alpha-2 region code (e.g. \"GB\", \"US\")"
        );
    }

    #[test]
    fn debug_never_shows_the_number() {
        let p = PhoneNumber::parse("+447700900123", None).expect("valid");
        assert_eq!(format!("{p:?}"), "PhoneNumber(<redacted>)");
    }

    #[test]
    fn a_number_whose_e164_form_does_not_read_back_is_refused() {
        // Found by tests/properties.rs: "0002" with region DE read as +4902.
        let de = "DE".parse::<Region>().ok();
        assert_eq!(PhoneNumber::parse("0002", de), Err(PhoneError::TooShort));
        assert_eq!(PhoneNumber::parse("000a", de), Err(PhoneError::TooShort));
    }
}
