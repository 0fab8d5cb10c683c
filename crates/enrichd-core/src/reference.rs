//! Reference lists used to classify email addresses: disposable domains, free
//! webmail providers and role-account local parts.
//!
//! The lists ship inside the binary (`data/email/`), so enrichd works with no
//! files beside it; lists go stale, so an operator can point the config at
//! fresher copies.
use std::collections::HashSet;
use std::path::{Path, PathBuf};

const DISPOSABLE: &str = include_str!("../../../data/email/disposable-domains.txt");
const FREE: &str = include_str!("../../../data/email/free-provider-domains.txt");
const ROLE: &str = include_str!("../../../data/email/role-accounts.txt");

/// Where to load each list from; `None` uses the copy shipped in the binary.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
#[serde(default)]
pub struct ReferencePaths {
    pub disposable_domains: Option<PathBuf>,
    pub free_provider_domains: Option<PathBuf>,
    pub role_accounts: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
/// (The cause is in the message, not the error's chain: printed with its
/// chain, it said it twice.)
#[error("cannot read reference list {path}: {cause}")]
pub struct ReferenceError {
    pub path: PathBuf,
    pub cause: std::io::Error,
}

/// The loaded lists. Lookups are case-insensitive (entries are stored lowercased).
#[derive(Debug, Clone)]
pub struct DomainLists {
    disposable: HashSet<String>,
    free: HashSet<String>,
    role: HashSet<String>,
}

impl Default for DomainLists {
    fn default() -> Self {
        Self {
            disposable: parse_list(DISPOSABLE),
            free: parse_list(FREE),
            role: parse_list(ROLE),
        }
    }
}

/// The disposable list without the domains that are one edit from (or a
/// look-alike of) a well-known provider: some lists register `gmial.com`
/// and `hotmial.com`, and a typo of a well-known provider is a typo (the
/// `domain_typo` reason, with `didYouMean`), not a throw-away service.
fn without_typos(mut list: HashSet<String>) -> HashSet<String> {
    list.retain(|domain| crate::identity::lookalike::meant(domain).is_none());
    list
}

impl DomainLists {
    /// Loads the configured lists, falling back to the shipped copies.
    pub fn load(paths: &ReferencePaths) -> Result<Self, ReferenceError> {
        let read = |configured: &Option<PathBuf>, shipped: &str| match configured {
            Some(path) => read_list(path),
            None => Ok(parse_list(shipped)),
        };
        // The shipped disposable list holds no typo (a test keeps it so);
        // one of the operator's is checked as it is read.
        let disposable = match &paths.disposable_domains {
            Some(path) => without_typos(read_list(path)?),
            None => parse_list(DISPOSABLE),
        };
        Ok(Self {
            disposable,
            free: read(&paths.free_provider_domains, FREE)?,
            role: read(&paths.role_accounts, ROLE)?,
        })
    }

    /// The domain or one of its parent domains is disposable
    /// (`x.mailinator.com` is as throw-away as `mailinator.com`).
    pub fn is_disposable(&self, ascii_domain: &str) -> bool {
        parent_domains(ascii_domain).any(|d| self.disposable.contains(d))
    }

    /// The domain itself is a free webmail provider.
    pub fn is_free_provider(&self, ascii_domain: &str) -> bool {
        self.free.contains(ascii_domain)
    }

    /// The local part (lowercased, without +tag) names a role, not a person.
    pub fn is_role_account(&self, local_base: &str) -> bool {
        self.role.contains(local_base)
    }

    pub fn len(&self) -> (usize, usize, usize) {
        (self.disposable.len(), self.free.len(), self.role.len())
    }
}

fn read_list(path: &Path) -> Result<HashSet<String>, ReferenceError> {
    std::fs::read_to_string(path)
        .map(|text| parse_list(&text))
        .map_err(|cause| ReferenceError {
            path: path.to_owned(),
            cause,
        })
}

fn parse_list(text: &str) -> HashSet<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_ascii_lowercase)
        .collect()
}

/// `a.b.example.com`, `b.example.com`, `example.com`, `com`.
fn parent_domains(domain: &str) -> impl Iterator<Item = &str> {
    std::iter::successors(Some(domain), |d| d.split_once('.').map(|(_, rest)| rest))
}

#[cfg(test)]
mod tests {
    #[test]
    fn no_typo_of_a_well_known_provider_counts_as_disposable_or_free() {
        let lists = super::DomainLists::default();
        // Real providers one edit from another (mail.com, yahoo.gr) stay
        // on the free list: a listed provider is never read as a typo.
        let left: Vec<_> = lists
            .disposable
            .iter()
            .filter(|d| crate::identity::lookalike::meant(d).is_some())
            .collect();
        assert!(
            left.is_empty(),
            "typos in the shipped lists (remove them from data/email/): {left:?}"
        );
        for typo in ["gmial.com", "hotmial.com", "outiook.com", "yaho.com"] {
            assert!(!lists.is_disposable(typo), "{typo}");
            assert!(!lists.is_free_provider(typo), "{typo}");
        }
        // The real ones stay.
        assert!(lists.is_disposable("mailinator.com"));
        assert!(lists.is_free_provider("gmail.com") && lists.is_free_provider("mail.com"));
    }

    use super::*;

    #[test]
    fn shipped_lists_load_and_classify() {
        let lists = DomainLists::default();
        let (disposable, free, role) = lists.len();
        assert!(disposable > 8000 && free > 13000 && role > 50);
        assert!(lists.is_disposable("mailinator.com"));
        assert!(lists.is_disposable("inbox.mailinator.com"));
        assert!(!lists.is_disposable("example.com"));
        assert!(lists.is_free_provider("gmail.com") && lists.is_free_provider("mail.com"));
        assert!(!lists.is_free_provider("mail.gmail.com.evil.test"));
        assert!(lists.is_role_account("postmaster"));
        assert!(!lists.is_role_account("jane.doe"));
    }

    #[test]
    fn configured_list_replaces_the_shipped_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("disposable.txt");
        std::fs::write(&path, "# fresh copy\nFresh-Throwaway.test\n").expect("write");
        let lists = DomainLists::load(&ReferencePaths {
            disposable_domains: Some(path),
            ..Default::default()
        })
        .expect("load");
        assert!(lists.is_disposable("fresh-throwaway.test"));
        assert!(!lists.is_disposable("mailinator.com"));
    }

    #[test]
    fn missing_list_names_the_path() {
        let err = DomainLists::load(&ReferencePaths {
            role_accounts: Some("/nonexistent/roles.txt".into()),
            ..Default::default()
        })
        .expect_err("missing file");
        assert!(err.to_string().contains("/nonexistent/roles.txt"));
    }
}
