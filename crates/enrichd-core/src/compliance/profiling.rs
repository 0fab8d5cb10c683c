//! GDPR Art. 15(1)(h) and Art. 22: the existence of profiling and the logic
//! of the scores, in words a person can read in their access report. The
//! scores support a human decision; enrichd never makes one.

/// The logic of the scores, one paragraph each.
pub const LOGIC: &[&str] = &[
    "Profiles: public sources of the catalog were asked about the identifier (or its hash); handles and links they published were asked of other sources. Each finding carries its source, URL, time and how closely it is tied to the identifier (exact, through a pivot, or a guess from the email's local part).",
    "Interests: each site the person was found on has topics (tags) and each bio is matched against a term list per interest of the IAB Audience Taxonomy; evidence combines within a source, then across sources, into a score between 0 and 1. Health, political and religious interests are never kept.",
    "Digital footprint: 0 to 100 from the platforms found (weighted), the breadth of their topics, the age of the oldest account, how complete the profiles are and public activity counts.",
    "Contact risk: 0 to 100, the sum of the weights of the reasons found (for example a disposable email domain, a domain without mail servers, an invalid or VoIP number, no online presence, a name that does not match). It supports a human decision and is never a decision by itself.",
];

/// The logic as owned strings, for an access report.
pub fn logic() -> Vec<String> {
    LOGIC.iter().map(|s| s.to_string()).collect()
}
