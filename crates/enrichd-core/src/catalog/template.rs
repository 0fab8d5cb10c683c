//! Request templates: `{input}` and `{env.NAME}` placeholders, each value
//! percent-encoded for the position it lands in (path segment, query,
//! fragment), so no input can change the shape of the request.
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Everything but RFC 3986 unreserved characters is encoded: a value stays
/// one path segment or one query value, whatever it contains.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Input,
    /// The ISO 3166 region of a phone-number input ("GB"), for APIs that
    /// want the country beside the number.
    InputRegion,
    Env(String),
}

/// Where a placeholder lands in a URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    Path,
    Query,
    Fragment,
    /// Header values and bodies: inserted as is (headers are checked for CR/LF).
    Raw,
    /// A JSON body: the value is JSON-string-escaped.
    Json,
    /// An `application/x-www-form-urlencoded` body: percent-encoded.
    Form,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unclosed '{{' at byte {0}")]
    Unclosed(usize),
    #[error("unknown placeholder {{{0}}}; use {{input}}, {{input_region}} or {{env.NAME}}")]
    UnknownPlaceholder(String),
    #[error("'}}' without '{{' at byte {0}")]
    StrayClose(usize),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("the input {0:?} cannot stand as a path segment")]
    DotSegment(String),
    #[error("the input is not an http(s) URL")]
    NotAUrl,
    #[error("the value contains a line break")]
    LineBreak,
    #[error("environment variable {0} is not set")]
    MissingEnv(String),
    #[error("the input is not a phone number with a region")]
    NoRegion,
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                // `{{` and `}}` are literal braces (JSON bodies).
                '{' if chars.peek().map(|&(_, c)| c) == Some('{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek().map(|&(_, c)| c) == Some('}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    let mut closed = false;
                    for (_, c) in chars.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        name.push(c);
                    }
                    if !closed {
                        return Err(TemplateError::Unclosed(i));
                    }
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    }
                    parts.push(match name.as_str() {
                        "input" => Part::Input,
                        "input_region" => Part::InputRegion,
                        env if env.starts_with("env.")
                            && env.len() > 4
                            && env[4..]
                                .chars()
                                .all(|c| c.is_ascii_alphanumeric() || c == '_') =>
                        {
                            Part::Env(env[4..].to_owned())
                        }
                        _ => return Err(TemplateError::UnknownPlaceholder(name)),
                    });
                }
                '}' => return Err(TemplateError::StrayClose(i)),
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Self { parts })
    }

    /// Environment variables the template reads.
    pub fn env_vars(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Env(name) => Some(name.as_str()),
            _ => None,
        })
    }

    pub fn uses_input(&self) -> bool {
        self.parts.contains(&Part::Input)
    }

    pub fn uses_input_region(&self) -> bool {
        self.parts.contains(&Part::InputRegion)
    }

    /// For a URL template: its origin when the scheme, host and port are
    /// literal and closed by '/', '?' or '#' before any placeholder, so no
    /// input can change where the request goes.
    pub fn fixed_origin(&self) -> Option<url::Origin> {
        let Some(Part::Literal(prefix)) = self.parts.first() else {
            return None;
        };
        let (scheme, rest) = prefix.split_once("://")?;
        let end = rest.find(['/', '?', '#']).filter(|&i| i > 0)?;
        if !matches!(scheme, "http" | "https") {
            return None;
        }
        let origin = url::Url::parse(&format!("{scheme}://{}/", &rest[..end]))
            .ok()?
            .origin();
        origin.is_tuple().then_some(origin)
    }

    fn is_whole_input(&self) -> bool {
        self.parts == [Part::Input]
    }

    fn render(
        &self,
        input: &str,
        env: &dyn Fn(&str) -> Option<String>,
        url: bool,
        body: Position,
    ) -> Result<String, RenderError> {
        if url && self.is_whole_input() {
            let parsed = url::Url::parse(input).map_err(|_| RenderError::NotAUrl)?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(RenderError::NotAUrl);
            }
            return Ok(parsed.to_string());
        }
        let mut out = String::new();
        let mut position = if url { Position::Path } else { body };
        for part in &self.parts {
            match part {
                Part::Literal(s) => {
                    if url {
                        if s.contains('#') {
                            position = Position::Fragment;
                        } else if s.contains('?') && position == Position::Path {
                            position = Position::Query;
                        }
                    }
                    out.push_str(s);
                }
                Part::Input => out.push_str(&encode(input, position)?),
                Part::InputRegion => {
                    let phone = crate::identity::PhoneNumber::parse(input, None)
                        .map_err(|_| RenderError::NoRegion)?;
                    let region = phone.region().ok_or(RenderError::NoRegion)?;
                    out.push_str(&encode(region, position)?);
                }
                Part::Env(name) => {
                    let value = env(name).ok_or_else(|| RenderError::MissingEnv(name.clone()))?;
                    out.push_str(&encode(&value, position)?);
                }
            }
        }
        Ok(out)
    }

    /// Renders a URL template.
    pub fn render_url(
        &self,
        input: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<String, RenderError> {
        self.render(input, env, true, Position::Raw)
    }

    /// Renders a header value or a plain body.
    pub fn render_raw(
        &self,
        input: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<String, RenderError> {
        let value = self.render(input, env, false, Position::Raw)?;
        if value.contains(['\r', '\n']) {
            return Err(RenderError::LineBreak);
        }
        Ok(value)
    }

    /// Renders a JSON body: values are escaped as JSON string contents.
    pub fn render_json(
        &self,
        input: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<String, RenderError> {
        self.render(input, env, false, Position::Json)
    }

    /// Renders an `application/x-www-form-urlencoded` body: values are
    /// percent-encoded, so none can add a field.
    pub fn render_form(
        &self,
        input: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<String, RenderError> {
        self.render(input, env, false, Position::Form)
    }
}

fn encode(value: &str, position: Position) -> Result<String, RenderError> {
    Ok(match position {
        Position::Path => {
            if value.is_empty() || value == "." || value == ".." {
                return Err(RenderError::DotSegment(value.to_owned()));
            }
            utf8_percent_encode(value, COMPONENT).to_string()
        }
        Position::Query | Position::Fragment | Position::Form => {
            utf8_percent_encode(value, COMPONENT).to_string()
        }
        Position::Json => {
            let quoted = serde_json::Value::String(value.to_owned()).to_string();
            quoted[1..quoted.len() - 1].to_owned()
        }
        Position::Raw => value.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn a_form_body_cannot_gain_a_field_and_names_the_number_s_region() {
        let t = Template::parse("number={input}&country={input_region}").unwrap();
        assert!(t.uses_input() && t.uses_input_region());
        assert_eq!(
            t.render_form("+447400123456", &no_env).unwrap(),
            "number=%2B447400123456&country=GB"
        );
        let evil = Template::parse("number={input}").unwrap();
        assert_eq!(
            evil.render_form("1&admin=true", &no_env).unwrap(),
            "number=1%26admin%3Dtrue"
        );
        assert_eq!(
            t.render_form("not a number", &no_env),
            Err(RenderError::NoRegion)
        );
    }

    #[test]
    fn values_cannot_change_the_shape_of_the_url() {
        let t =
            Template::parse("https://site.test/users/{input}/profile?q={input}#{input}").unwrap();
        let cases = [
            ("jane", "https://site.test/users/jane/profile?q=jane#jane"),
            (
                "a/../b",
                "https://site.test/users/a%2F..%2Fb/profile?q=a%2F..%2Fb#a%2F..%2Fb",
            ),
            (
                "x?y=1#z",
                "https://site.test/users/x%3Fy%3D1%23z/profile?q=x%3Fy%3D1%23z#x%3Fy%3D1%23z",
            ),
            (
                "jane doe",
                "https://site.test/users/jane%20doe/profile?q=jane%20doe#jane%20doe",
            ),
            (
                "jürgen",
                "https://site.test/users/j%C3%BCrgen/profile?q=j%C3%BCrgen#j%C3%BCrgen",
            ),
            (
                "a&b=c+d",
                "https://site.test/users/a%26b%3Dc%2Bd/profile?q=a%26b%3Dc%2Bd#a%26b%3Dc%2Bd",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(t.render_url(input, &no_env).unwrap(), want, "{input:?}");
            // The rendered URL parses to the same path segments.
            let url = url::Url::parse(want).unwrap();
            assert_eq!(url.path_segments().unwrap().count(), 3, "{input:?}");
        }
    }

    #[test]
    fn dot_segments_are_refused_in_paths() {
        let t = Template::parse("https://site.test/{input}").unwrap();
        for input in ["..", ".", ""] {
            assert!(matches!(
                t.render_url(input, &no_env),
                Err(RenderError::DotSegment(_))
            ));
        }
        // In a query a dot is harmless.
        let q = Template::parse("https://site.test/?u={input}").unwrap();
        assert_eq!(
            q.render_url("..", &no_env).unwrap(),
            "https://site.test/?u=.."
        );
    }

    #[test]
    fn whole_url_inputs_must_be_http() {
        let t = Template::parse("{input}").unwrap();
        assert_eq!(
            t.render_url("https://x.test/a b", &no_env).unwrap(),
            "https://x.test/a%20b"
        );
        assert_eq!(
            t.render_url("file:///etc/passwd", &no_env),
            Err(RenderError::NotAUrl)
        );
        assert_eq!(
            t.render_url("not a url", &no_env),
            Err(RenderError::NotAUrl)
        );
    }

    #[test]
    fn env_placeholders_read_the_environment() {
        let t = Template::parse("token {env.API_TOKEN}").unwrap();
        assert_eq!(t.env_vars().collect::<Vec<_>>(), ["API_TOKEN"]);
        let env = |n: &str| (n == "API_TOKEN").then(|| "s3cret".to_string());
        assert_eq!(t.render_raw("", &env).unwrap(), "token s3cret");
        assert_eq!(
            t.render_raw("", &no_env),
            Err(RenderError::MissingEnv("API_TOKEN".into()))
        );
    }

    #[test]
    fn headers_refuse_line_breaks_and_json_bodies_escape() {
        let h = Template::parse("{input}").unwrap();
        assert_eq!(
            h.render_raw("a\r\nX-Evil: 1", &no_env),
            Err(RenderError::LineBreak)
        );
        // `{{` and `}}` are literal braces.
        let b = Template::parse(r#"{{"q":"{input}"}}"#).unwrap();
        assert_eq!(b.render_json("a\"b", &no_env).unwrap(), r#"{"q":"a\"b"}"#);
    }

    #[test]
    fn malformed_templates_say_why() {
        assert_eq!(Template::parse("x{input"), Err(TemplateError::Unclosed(1)));
        assert_eq!(
            Template::parse("{user}"),
            Err(TemplateError::UnknownPlaceholder("user".into()))
        );
        assert_eq!(Template::parse("a}"), Err(TemplateError::StrayClose(1)));
    }
}
