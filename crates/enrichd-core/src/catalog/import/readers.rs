//! The three site lists as read: Maigret's and Sherlock's JSON and
//! WhatsMyName's, each site becoming a `Site` with its detection.

use serde_json::Value;

use super::{Site, escape_braces, headers, strings, template, with_root_path};

/// A WhatsMyName category as interest tags (`data/scoring/tags.toml`), or
/// the Art. 9 category that presence on such a site reveals.
pub(crate) fn wmn_category(cat: &str) -> (Vec<String>, Option<&'static str>) {
    let tags = |t: &[&str]| t.iter().map(|s| (*s).to_owned()).collect();
    match cat {
        "political" => (Vec::new(), Some("political_opinions")),
        "health" => (Vec::new(), Some("health")),
        "dating" | "xx NSFW xx" => (Vec::new(), Some("sex_life")),
        "tech" => (tags(&["technology"]), None),
        "images" => (tags(&["photography"]), None),
        "blog" => (tags(&["blogging"]), None),
        "finance" => (tags(&["personal finance"]), None),
        "archived" | "misc" | "search" => (Vec::new(), None),
        other => (tags(&[other]), None),
    }
}

pub(crate) fn maigret(doc: &Value, skipped: &mut Vec<(String, String)>) -> Vec<Site> {
    let Some(sites) = doc.get("sites").and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, s) in sites {
        if s.get("disabled").and_then(Value::as_bool) == Some(true) {
            skipped.push((name.clone(), "disabled in the list".into()));
            continue;
        }
        let raw = s
            .get("urlProbe")
            .or_else(|| s.get("url"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some(url) = template(raw, "{username}") else {
            skipped.push((
                name.clone(),
                "no {username} URL (engine-based entries are not supported)".into(),
            ));
            continue;
        };
        let url = url.replace(
            "{{urlMain}}",
            s.get("urlMain")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .trim_end_matches('/'),
        );
        let check = s
            .get("checkType")
            .and_then(Value::as_str)
            .unwrap_or("status_code");
        let mut site = Site::new(
            name,
            url,
            strings(s.get("tags")),
            s.get("regexCheck").and_then(Value::as_str),
        );
        site.headers = headers(s.get("headers"));
        match check {
            "message" => {
                site.absent = strings(s.get("absenceStrs"));
                site.present = strings(s.get("presenseStrs"));
            }
            "response_url" => site.redirect_means_absent = true,
            "status_code" => {}
            other => {
                skipped.push((
                    name.clone(),
                    format!("check type {other:?} is not supported"),
                ));
                continue;
            }
        }
        out.push(site);
    }
    out
}

pub(crate) fn sherlock(doc: &Value, skipped: &mut Vec<(String, String)>) -> Vec<Site> {
    let Some(sites) = doc.as_object() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, s) in sites.iter().filter(|(k, _)| !k.starts_with('$')) {
        let raw = s
            .get("urlProbe")
            .or_else(|| s.get("url"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some(url) = template(raw, "{}") else {
            skipped.push((name.clone(), "no {} in the URL".into()));
            continue;
        };
        let nsfw = s.get("isNSFW").and_then(Value::as_bool) == Some(true);
        let mut site = Site::new(
            name,
            url,
            if nsfw {
                vec!["adult".into()]
            } else {
                Vec::new()
            },
            s.get("regexCheck").and_then(Value::as_str),
        );
        site.headers = headers(s.get("headers"));
        if let Some(m) = s.get("request_method").and_then(Value::as_str) {
            site.method = m.to_owned();
        }
        site.body = s
            .get("request_payload")
            .map(|p| escape_braces(&p.to_string()).replace("{{}}", "{input}"));
        match strings(s.get("errorType")).first().map(String::as_str) {
            Some("message") => site.absent = strings(s.get("errorMsg")),
            Some("response_url") => site.redirect_means_absent = true,
            Some("status_code") => {
                if let Some(code) = s.get("errorCode").and_then(Value::as_u64) {
                    site.not_found_status = vec![code as u16];
                }
            }
            other => {
                skipped.push((
                    name.clone(),
                    format!("error type {other:?} is not supported"),
                ));
                continue;
            }
        }
        out.push(site);
    }
    out
}

pub(crate) fn whatsmyname(doc: &Value, skipped: &mut Vec<(String, String)>) -> Vec<Site> {
    let Some(sites) = doc.get("sites").and_then(Value::as_array) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for s in sites {
        let name = s
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned();
        if s.get("valid").and_then(Value::as_bool) == Some(false) {
            skipped.push((name, "marked invalid in the list".into()));
            continue;
        }
        let raw = s
            .get("uri_check")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let post_body = s.get("post_body").and_then(Value::as_str);
        // The account goes in the URL, or in the POST body.
        let Some(url) = template(raw, "{account}").or_else(|| {
            post_body
                .filter(|b| b.contains("{account}"))
                .map(|_| escape_braces(raw))
        }) else {
            skipped.push((name, "no {account} in uri_check or post_body".into()));
            continue;
        };
        let url = with_root_path(url);
        let e_code = s.get("e_code").and_then(Value::as_u64).unwrap_or(200) as u16;
        let m_code = s.get("m_code").and_then(Value::as_u64).unwrap_or(404) as u16;
        // WhatsMyName reads the first answer's status: a redirect there is
        // the answer, never followed.
        if (300..400).contains(&e_code) {
            skipped.push((
                name,
                format!(
                    "an account is a redirect ({e_code}), which enrichd does not read as found"
                ),
            ));
            continue;
        }
        // An empty string is no marker (every page holds it).
        let markers = |key: &str| -> Vec<String> {
            strings(s.get(key))
                .into_iter()
                .filter(|m| !m.is_empty())
                .collect()
        };
        let e_string = markers("e_string");
        let m_string = markers("m_string");
        // Same status both ways and nothing that says "no such account":
        // a missing account could not be told from a bot wall.
        if e_code == m_code && m_string.is_empty() {
            skipped.push((
                name,
                format!(
                    "no m_string and one status ({e_code}) for both answers: absence cannot be read"
                ),
            ));
            continue;
        }
        let body = post_body.map(|b| template(b, "{account}").unwrap_or_else(|| escape_braces(b)));
        let (tags, special_category) =
            wmn_category(s.get("cat").and_then(Value::as_str).unwrap_or(""));
        // "user-agent" asks for a browser's User-Agent, which every request
        // carries; any other shield (Cloudflare, a captcha...) answers a
        // challenge page instead of the profile.
        let protection: Vec<String> = strings(s.get("protection"))
            .into_iter()
            .filter(|p| p != "user-agent")
            .collect();
        let disabled_reason = (!protection.is_empty()).then(|| {
            format!(
                "behind {} (WhatsMyName's protection field): its answers cannot be read reliably",
                protection.join(", ")
            )
        });
        out.push(Site {
            name,
            url,
            method: if body.is_some() {
                "POST".into()
            } else {
                "GET".into()
            },
            body,
            headers: headers(s.get("headers")),
            tags,
            pattern: None,
            found_status: vec![e_code],
            // The same status for both answers: the strings tell them apart.
            not_found_status: if m_code == e_code {
                Vec::new()
            } else {
                vec![m_code]
            },
            present: e_string,
            absent: if m_code == e_code {
                m_string
            } else {
                Vec::new()
            },
            redirect_means_absent: (300..400).contains(&m_code),
            special_category,
            disabled_reason,
            known_present: strings(s.get("known")),
        });
    }
    out
}
