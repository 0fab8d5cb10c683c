//! Converts the site lists of community username checkers (Maigret, Sherlock,
//! WhatsMyName) into catalog files. Their check types map onto `detect`,
//! their tags and categories onto `tags`; the sites then run as `username`
//! sources: on pivots, and on the email's local part as guesses.
mod readers;

use std::collections::BTreeSet;

use serde_json::Value;
use toml::Table;

use readers::{maigret, sherlock, whatsmyname};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Maigret,
    Sherlock,
    Whatsmyname,
}

impl Format {
    pub const ALL: [Format; 3] = [Format::Maigret, Format::Sherlock, Format::Whatsmyname];

    /// The format's name, as the command line spells it.
    pub fn name(self) -> &'static str {
        match self {
            Format::Maigret => "maigret",
            Format::Sherlock => "sherlock",
            Format::Whatsmyname => "whatsmyname",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Format::Maigret => "maigret",
            Format::Sherlock => "sherlock",
            Format::Whatsmyname => "wmn",
        }
    }
}

/// The result of an import: the catalog text and what was left out, and why.
#[derive(Debug, Default)]
pub struct Imported {
    pub toml: String,
    pub count: usize,
    pub skipped: Vec<(String, String)>,
}

/// One site, in the catalog's terms.
struct Site {
    name: String,
    url: String,
    method: String,
    body: Option<String>,
    headers: Table,
    tags: Vec<String>,
    pattern: Option<String>,
    found_status: Vec<u16>,
    not_found_status: Vec<u16>,
    present: Vec<String>,
    absent: Vec<String>,
    redirect_means_absent: bool,
    /// The Art. 9 category presence on the site reveals (never asked).
    special_category: Option<&'static str>,
    /// Why the site is off, if it is.
    disabled_reason: Option<String>,
    /// Usernames known to have an account there.
    known_present: Vec<String>,
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

fn headers(v: Option<&Value>) -> Table {
    v.and_then(Value::as_object)
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| {
                    Some((k.clone(), toml::Value::String(escape_braces(v.as_str()?))))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Literal braces in a catalog template are doubled.
fn escape_braces(s: &str) -> String {
    s.replace('{', "{{").replace('}', "}}")
}

/// Replaces the list's username placeholder with `{input}`, escaping the rest.
fn template(url: &str, placeholder: &str) -> Option<String> {
    url.contains(placeholder).then(|| {
        url.split(placeholder)
            .map(escape_braces)
            .collect::<Vec<_>>()
            .join("{input}")
    })
}

/// `https://host` (an origin with no path) as `https://host/`: the catalog
/// wants the host closed by a '/' (WhatsMyName's AniList check is such a URL).
fn with_root_path(url: String) -> String {
    match url.split_once("://") {
        Some((_, rest)) if !rest.contains('/') => url + "/",
        _ => url,
    }
}

fn slug(name: &str) -> String {
    let mut s: String = name
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    while s.contains("--") {
        s = s.replace("--", "-");
    }
    s.trim_matches('-').to_owned()
}

impl Site {
    /// A GET username check found on 200 and missing on 404/410.
    fn new(name: &str, url: String, tags: Vec<String>, pattern: Option<&str>) -> Self {
        Self {
            name: name.to_owned(),
            url,
            method: "GET".into(),
            body: None,
            headers: Table::new(),
            tags,
            pattern: pattern.map(str::to_owned),
            found_status: vec![200],
            not_found_status: vec![404, 410],
            present: Vec::new(),
            absent: Vec::new(),
            redirect_means_absent: false,
            special_category: None,
            disabled_reason: None,
            known_present: Vec::new(),
        }
    }
}

fn to_toml(format: Format, site: Site, purposes: &[String]) -> Table {
    let mut source = Table::new();
    let s = |v: &str| toml::Value::String(v.to_owned());
    let list = |v: &[String]| {
        toml::Value::Array(v.iter().map(|x| toml::Value::String(x.clone())).collect())
    };
    // A name in another script ("Военное обозрение") names the site by
    // its host instead, so every id says something.
    let named = if site.name.is_ascii() {
        slug(&site.name)
    } else {
        let host = site.url.split("://").nth(1).unwrap_or(&site.url);
        slug(host.split('/').next().unwrap_or(host))
    };
    source.insert("id".into(), s(&format!("{}-{named}", format.prefix())));
    source.insert("name".into(), s(&site.name));
    source.insert("platform".into(), s(&site.name));
    let tags: BTreeSet<String> = site.tags.iter().map(|t| t.to_lowercase()).collect();
    source.insert("tags".into(), list(&tags.into_iter().collect::<Vec<_>>()));
    source.insert("weight".into(), toml::Value::Float(0.3));
    source.insert("data_categories".into(), list(&["profile".to_owned()]));
    source.insert("purposes".into(), list(purposes));
    source.insert("input".into(), s("username"));
    if let Some(category) = site.special_category {
        source.insert("special_category".into(), s(category));
    }
    if let Some(reason) = &site.disabled_reason {
        source.insert("enabled".into(), toml::Value::Boolean(false));
        source.insert("disabled_reason".into(), s(reason));
    }
    if !site.known_present.is_empty() {
        source.insert("known_present".into(), list(&site.known_present));
    }
    if let Some(p) = site.pattern {
        source.insert("input_pattern".into(), s(&p));
    }
    let mut request = Table::new();
    request.insert("method".into(), s(&site.method));
    request.insert("url".into(), s(&site.url));
    if !site.headers.is_empty() {
        request.insert("headers".into(), toml::Value::Table(site.headers));
    }
    if let Some(b) = site.body {
        request.insert("body".into(), s(&b));
    }
    request.insert("response_format".into(), s("text"));
    source.insert("request".into(), toml::Value::Table(request));
    let mut detect = Table::new();
    let codes = |v: &[u16]| {
        toml::Value::Array(
            v.iter()
                .map(|c| toml::Value::Integer(i64::from(*c)))
                .collect(),
        )
    };
    detect.insert("found_status".into(), codes(&site.found_status));
    detect.insert("not_found_status".into(), codes(&site.not_found_status));
    if !site.present.is_empty() {
        detect.insert("present".into(), list(&site.present));
    }
    if !site.absent.is_empty() {
        detect.insert("absent".into(), list(&site.absent));
    }
    if site.redirect_means_absent {
        detect.insert("redirect_means_absent".into(), toml::Value::Boolean(true));
    }
    source.insert("detect".into(), toml::Value::Table(detect));
    source
}

/// Converts a site list. Every generated source is compiled before it is
/// kept; one that does not compile (a host-name placeholder, a regex Rust
/// cannot run) is listed in `skipped` with the reason.
pub fn import(format: Format, text: &str, purposes: &[String]) -> Result<Imported, String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let mut out = Imported::default();
    let sites = match format {
        Format::Maigret => maigret(&doc, &mut out.skipped),
        Format::Sherlock => sherlock(&doc, &mut out.skipped),
        Format::Whatsmyname => whatsmyname(&doc, &mut out.skipped),
    };
    let mut kept = Vec::new();
    let mut ids = BTreeSet::new();
    for site in sites {
        let name = site.name.clone();
        let table = to_toml(format, site, purposes);
        let id = table
            .get("id")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned();
        if !ids.insert(id.clone()) {
            out.skipped.push((name, format!("duplicate id {id}")));
            continue;
        }
        let mut file = Table::new();
        file.insert(
            "source".into(),
            toml::Value::Array(vec![toml::Value::Table(table.clone())]),
        );
        let one = toml::to_string(&file).map_err(|e| e.to_string())?;
        match super::Catalog::from_files(&[("import".into(), one)], purposes, &|_| {
            Some(String::new())
        }) {
            Ok(_) => kept.push(toml::Value::Table(table)),
            Err(e) => {
                let why = e
                    .problems
                    .iter()
                    .map(|p| p.split(": ").skip(2).collect::<Vec<_>>().join(": "))
                    .collect::<Vec<_>>();
                out.skipped.push((name, why.join("; ")));
            }
        }
    }
    out.count = kept.len();
    let mut file = Table::new();
    file.insert("source".into(), toml::Value::Array(kept));
    out.toml = format!(
        "# Imported from a {} site list by `enrichd sources import`.\n# {} sources; review before use.\n\n{}",
        format.prefix(),
        out.count,
        toml::to_string(&file).map_err(|e| e.to_string())?
    );
    Ok(out)
}
