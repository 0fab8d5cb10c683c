//! What a source takes, and how a request's identifier (or a pivot) provides it.
use md5::Md5;
use sha2::Digest as _;
use sha2::Sha256;

use crate::identity::Identifier;
use crate::model::{Confidence, InputKind};

/// One value a source can be asked with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Input {
    pub kind: InputKind,
    pub value: String,
    pub confidence: Confidence,
    /// 0 for values derived from the identifier, n for the n-th pivot round.
    pub depth: u32,
    /// The source whose profile published it (a pivot); `None` for the
    /// identifier's own values.
    pub via: Option<std::sync::Arc<str>>,
}

/// The inputs the identifier itself provides (depth 0).
pub fn seed_inputs(identifier: &Identifier) -> Vec<Input> {
    let seed = |kind, value: String, confidence| Input {
        kind,
        value,
        confidence,
        depth: 0,
        via: None,
    };
    match identifier {
        Identifier::Email(email) => {
            let hashed = email.address().trim().to_lowercase();
            vec![
                seed(InputKind::Email, email.address(), Confidence::Exact),
                seed(
                    InputKind::EmailMd5,
                    hex::encode(Md5::digest(hashed.as_bytes())),
                    Confidence::Exact,
                ),
                seed(
                    InputKind::EmailSha256,
                    hex::encode(Sha256::digest(hashed.as_bytes())),
                    Confidence::Exact,
                ),
                seed(InputKind::EmailLocal, email.local_base(), Confidence::Exact),
                seed(
                    InputKind::EmailDomain,
                    email.domain().to_owned(),
                    Confidence::Exact,
                ),
                // A handle spelled like the local part may be someone else's.
                seed(InputKind::Username, email.local_base(), Confidence::Guess),
            ]
        }
        Identifier::Phone(phone) => vec![
            seed(
                InputKind::PhoneE164,
                phone.e164().to_owned(),
                Confidence::Exact,
            ),
            seed(
                InputKind::PhoneNational,
                phone
                    .national()
                    .chars()
                    .filter(char::is_ascii_digit)
                    .collect(),
                Confidence::Exact,
            ),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Email;

    #[test]
    fn email_seeds_hash_the_lowercased_address() {
        let id = Identifier::Email(Email::parse(" MyEmailAddress@example.com ").unwrap());
        let seeds = seed_inputs(&id);
        let md5 = seeds
            .iter()
            .find(|i| i.kind == InputKind::EmailMd5)
            .unwrap();
        // Gravatar's documented example hash.
        assert_eq!(md5.value, "0bc83cb571cd1c50ba6f3e8a78ef1346");
        let guess = seeds
            .iter()
            .find(|i| i.kind == InputKind::Username)
            .unwrap();
        assert_eq!(
            (guess.value.as_str(), guess.confidence),
            ("myemailaddress", Confidence::Guess)
        );
    }
}
