//! The sandbox crowd: a few thousand synthetic people, each drawn from one
//! of five planted archetypes (the platforms they are on, what their bios
//! say, how old their accounts are), so that audience reports and their
//! segments can be tried and tested offline. Deterministic: person `n` is
//! the same in every run (a seeded xoshiro256++, whose sequence is fixed by
//! its algorithm), and `data/sandbox/crowd.csv` is the first 2,000 of them.
//!
//! A person's address is `crowd.<n>@crowd.example`; their avatar profile
//! (`sb-avatar`, by the address's MD5) names their handle `cr<n>x`, which
//! the engine then asks of every username site (a pivot): the sites of
//! their archetype answer, the rest do not. Runners are found by the
//! address's SHA-256 (`sb-runner`). Their local part is nobody's handle,
//! so guessed usernames find nothing.
use std::collections::HashMap;

use rand_xoshiro::Xoshiro256PlusPlus;
use rand_xoshiro::rand_core::{RngCore, SeedableRng};

/// The crowd's domain.
pub const DOMAIN: &str = "crowd.example";
/// How many people the sandbox knows (the shipped CSV holds the first
/// `CSV_PEOPLE`).
pub const PEOPLE: usize = 5_000;
pub const CSV_PEOPLE: usize = 2_000;

/// The username sites a person can be on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Site {
    CodeHub,
    Photogram,
    Forum,
    Blog,
    Gamer,
    /// Found by the address (SHA-256), not a username.
    Runner,
}

/// One planted archetype.
pub struct Archetype {
    pub name: &'static str,
    pub sites: &'static [Site],
    /// Bio phrases; each person's bios use some of them.
    pub phrases: &'static [&'static str],
    /// The years their accounts were made in.
    pub since: (u32, u32),
}

pub const ARCHETYPES: [Archetype; 5] = [
    Archetype {
        name: "developer",
        sites: &[Site::CodeHub, Site::Blog],
        phrases: &[
            "Rust developer",
            "open source maintainer",
            "machine learning hobbyist",
            "python programming",
            "technology and gadgets",
        ],
        since: (2009, 2014),
    },
    Archetype {
        name: "outdoor-fitness",
        sites: &[Site::Runner, Site::Photogram],
        phrases: &[
            "marathon runner",
            "hiking every weekend",
            "cycling to work",
            "gym and yoga",
            "half marathon next spring",
        ],
        since: (2016, 2020),
    },
    Archetype {
        name: "gamer",
        sites: &[Site::Gamer, Site::Forum],
        phrases: &[
            "video games every night",
            "strategy games",
            "RPG fan",
            "chess puzzles",
            "twitch streamer",
        ],
        since: (2020, 2024),
    },
    Archetype {
        name: "home-and-food",
        sites: &[Site::Forum, Site::Blog],
        phrases: &[
            "baking sourdough",
            "gardening on my allotment",
            "cooking for friends",
            "family recipes",
            "my two dogs",
        ],
        since: (2006, 2012),
    },
    Archetype {
        name: "travel-photography",
        sites: &[Site::Photogram, Site::Blog],
        phrases: &[
            "travel photography",
            "backpacking",
            "camera in my bag",
            "europe by interrail",
            "films and cinema",
        ],
        since: (2013, 2018),
    },
];

/// A health condition some outdoor people mention: an Art. 9 category
/// that must never reach a report.
const CONDITION: &str = "living with type 1 diabetes";

/// One synthetic person.
#[derive(Debug, Clone)]
pub struct Person {
    pub n: usize,
    pub archetype: usize,
    pub name: String,
    pub handle: String,
    pub sites: Vec<Site>,
    /// Their bio (the same on every site).
    pub bio: String,
    pub since_year: u32,
}

impl Person {
    pub fn email(&self) -> String {
        format!("crowd.{}@{DOMAIN}", self.n)
    }

    pub fn on(&self, site: Site) -> bool {
        self.sites.contains(&site)
    }

    /// When their accounts were made.
    pub fn created(&self) -> String {
        format!("{}-{:02}-15T12:00:00Z", self.since_year, 1 + self.n % 12)
    }
}

const FIRST: [&str; 12] = [
    "Alex", "Sam", "Robin", "Charlie", "Jamie", "Morgan", "Kim", "Noa", "Luca", "Mika", "Yuki",
    "Rene",
];
const LAST: [&str; 10] = [
    "Smith", "Okafor", "Novak", "Garcia", "Chen", "Haddad", "Kowalski", "Silva", "Berg", "Moreau",
];

fn below(rng: &mut Xoshiro256PlusPlus, n: usize) -> usize {
    (rng.next_u64() % n as u64) as usize
}

fn chance(rng: &mut Xoshiro256PlusPlus, percent: u64) -> bool {
    rng.next_u64() % 100 < percent
}

/// Person `n`: archetype `n % 5`, the rest drawn from a generator seeded
/// with `n`.
pub fn person(n: usize) -> Person {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0x5eed_c0de ^ n as u64);
    let archetype = n % ARCHETYPES.len();
    let a = &ARCHETYPES[archetype];
    // Mostly the archetype's sites; now and then one of them missing, or
    // one more.
    let mut sites: Vec<Site> = a
        .sites
        .iter()
        .copied()
        .filter(|_| !chance(&mut rng, 10))
        .collect();
    if chance(&mut rng, 10) {
        let all = [
            Site::CodeHub,
            Site::Photogram,
            Site::Forum,
            Site::Blog,
            Site::Gamer,
        ];
        let extra = all[below(&mut rng, all.len())];
        if !sites.contains(&extra) {
            sites.push(extra);
        }
    }
    // Three of the five phrases, in an order of their own.
    let mut phrases: Vec<&str> = a.phrases.to_vec();
    for i in (1..phrases.len()).rev() {
        phrases.swap(i, below(&mut rng, i + 1));
    }
    phrases.truncate(3);
    if archetype == 1 && chance(&mut rng, 20) {
        phrases.push(CONDITION);
    }
    let since_year = a.since.0 + below(&mut rng, (a.since.1 - a.since.0 + 1) as usize) as u32;
    Person {
        n,
        archetype,
        name: format!(
            "{} {}",
            FIRST[below(&mut rng, FIRST.len())],
            LAST[below(&mut rng, LAST.len())]
        ),
        handle: format!("cr{n}x"),
        sites,
        bio: format!("{}.", phrases.join(", ")),
        since_year,
    }
}

/// The crowd, looked up as the sandbox sites are asked.
pub struct Crowd {
    by_md5: HashMap<String, usize>,
    by_sha256: HashMap<String, usize>,
    by_email: HashMap<String, usize>,
}

impl Crowd {
    pub fn new() -> Self {
        let mut crowd = Self {
            by_md5: HashMap::with_capacity(PEOPLE),
            by_sha256: HashMap::with_capacity(PEOPLE),
            by_email: HashMap::with_capacity(PEOPLE),
        };
        for n in 0..PEOPLE {
            let email = person(n).email();
            crowd.by_md5.insert(super::md5_hex(&email), n);
            crowd.by_sha256.insert(super::sha256_hex(&email), n);
            crowd.by_email.insert(email, n);
        }
        crowd
    }

    pub fn by_md5(&self, hash: &str) -> Option<Person> {
        self.by_md5.get(hash).map(|&n| person(n))
    }

    pub fn by_sha256(&self, hash: &str) -> Option<Person> {
        self.by_sha256.get(hash).map(|&n| person(n))
    }

    pub fn by_email(&self, email: &str) -> Option<Person> {
        self.by_email.get(email).map(|&n| person(n))
    }

    /// The person whose handle this is, if they are on `site`.
    pub fn on(&self, site: Site, handle: &str) -> Option<Person> {
        let n: usize = handle.strip_prefix("cr")?.strip_suffix('x')?.parse().ok()?;
        (n < PEOPLE).then(|| person(n)).filter(|p| p.on(site))
    }
}

impl Default for Crowd {
    fn default() -> Self {
        Self::new()
    }
}

/// The first `count` people as CSV: `email,name,archetype` (the archetype
/// is the planted label, for checking segments; enrichd never reads it).
pub fn csv(count: usize) -> String {
    let mut out = String::from("email,name,archetype\n");
    for n in 0..count {
        let p = person(n);
        out.push_str(&format!(
            "{},{},{}\n",
            p.email(),
            p.name,
            ARCHETYPES[p.archetype].name
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_person_is_the_same_in_every_run_and_the_shipped_csv_is_the_crowd() {
        let (a, b) = (person(42), person(42));
        assert_eq!(
            (a.bio.clone(), a.sites.clone(), a.name.clone()),
            (b.bio, b.sites, b.name)
        );
        assert_eq!(a.archetype, 2);
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/sandbox/crowd.csv");
        if std::env::var_os("ENRICHD_WRITE_CROWD").is_some() {
            std::fs::write(path, csv(CSV_PEOPLE)).expect("writes the crowd");
        }
        let shipped = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            shipped == csv(CSV_PEOPLE),
            "data/sandbox/crowd.csv is not the crowd's first {CSV_PEOPLE}: \
             ENRICHD_WRITE_CROWD=1 cargo test --lib crowd writes it"
        );
    }

    #[test]
    fn handles_are_found_on_their_archetype_s_sites_only() {
        let crowd = Crowd::new();
        let dev = person(0);
        assert!(dev.on(Site::CodeHub) || dev.on(Site::Blog));
        for site in [Site::CodeHub, Site::Blog, Site::Gamer] {
            assert_eq!(crowd.on(site, &dev.handle).is_some(), dev.on(site));
        }
        assert!(crowd.on(Site::CodeHub, "cr99999999x").is_none());
        assert!(crowd.by_email(&dev.email()).is_some());
    }
}
