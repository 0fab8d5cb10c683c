//! Console sessions: an API key exchanged at sign-in for a random session
//! token (the cookie), kept in this process only. The key stays on the
//! server, so every action the console takes is an API call made with it:
//! the same authentication, scopes, purposes and quotas as any caller, and
//! a revoked key stops its sessions at their next action.
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use axum::http::HeaderMap;
use base64::Engine as _;
use enrichd_core::clock::SharedClock;
use sha2::{Digest, Sha256};

use crate::auth::Caller;

/// The session cookie's name. `__Host-` would pin it to Secure, which a
/// plain-HTTP loopback console cannot set; the attributes do the rest.
pub const COOKIE: &str = "enrichd_console";

/// `[console]` settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize, eserde::Deserialize)]
pub struct ConsoleConfig {
    /// Serve the console under `/console/` on the HTTP listener.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// A session unused this long is over.
    #[serde(default = "idle", with = "humantime_serde")]
    pub session_idle: Duration,
    /// A session is over this long after sign-in, used or not.
    #[serde(default = "absolute", with = "humantime_serde")]
    pub session_max: Duration,
    /// Sessions held at once (the oldest unused go first).
    #[serde(default = "capacity")]
    pub max_sessions: u64,
}

fn yes() -> bool {
    true
}
fn idle() -> Duration {
    Duration::from_secs(30 * 60)
}
fn absolute() -> Duration {
    Duration::from_secs(12 * 3600)
}
fn capacity() -> u64 {
    10_000
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            enabled: yes(),
            session_idle: idle(),
            session_max: absolute(),
            max_sessions: capacity(),
        }
    }
}

/// One signed-in person.
pub struct Session {
    /// The API key the console calls with; `None` on a keyless (loopback)
    /// server.
    pub key: Option<String>,
    /// Who the key is: what the pages show and offer.
    pub caller: Caller,
    /// The token every form and action must carry.
    pub csrf: String,
    started_ms: i64,
    used_ms: AtomicI64,
}

/// The sessions of this process.
#[derive(Clone)]
pub struct Sessions {
    held: moka::sync::Cache<[u8; 32], Arc<Session>>,
    clock: SharedClock,
    config: ConsoleConfig,
}

impl Sessions {
    pub fn new(config: ConsoleConfig, clock: SharedClock) -> Self {
        Self {
            held: moka::sync::Cache::builder()
                .max_capacity(config.max_sessions)
                // A memory bound only: expiry is decided on the injected clock.
                .time_to_idle(config.session_idle)
                .build(),
            clock,
            config,
        }
    }

    /// A new session for `caller`; returns its token (the cookie's value).
    pub fn start(&self, key: Option<String>, caller: Caller) -> (String, Arc<Session>) {
        let token = random_token();
        let now = self.clock.utc().timestamp_millis();
        let session = Arc::new(Session {
            key,
            caller,
            csrf: random_token(),
            started_ms: now,
            used_ms: AtomicI64::new(now),
        });
        self.held.insert(digest(&token), Arc::clone(&session));
        (token, session)
    }

    /// The live session a request's cookie names, marked as used now.
    pub fn of(&self, headers: &HeaderMap) -> Option<Arc<Session>> {
        let token = cookie(headers)?;
        let id = digest(&token);
        let session = self.held.get(&id)?;
        let now = self.clock.utc().timestamp_millis();
        let idle = now - session.used_ms.load(Ordering::Relaxed);
        let age = now - session.started_ms;
        if idle > millis(self.config.session_idle) || age > millis(self.config.session_max) {
            self.held.invalidate(&id);
            return None;
        }
        session.used_ms.store(now, Ordering::Relaxed);
        Some(session)
    }

    /// Ends the session a request's cookie names.
    pub fn end(&self, headers: &HeaderMap) {
        if let Some(token) = cookie(headers) {
            self.held.invalidate(&digest(&token));
        }
    }

    /// The `Set-Cookie` value for `token` (`None`: the one that clears it).
    pub fn set_cookie(&self, token: Option<&str>, secure: bool) -> String {
        let secure = if secure { "; Secure" } else { "" };
        match token {
            Some(token) => format!(
                "{COOKIE}={token}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
                self.config.session_max.as_secs()
            ),
            None => {
                format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
            }
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// 256 random bits, URL-safe.
fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Sessions are held by the token's digest: a memory dump names none.
fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The session cookie's value, if the request carries exactly one.
fn cookie(headers: &HeaderMap) -> Option<String> {
    let mut found = headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned());
    let first = found.next()?;
    // Two cookies of that name (one planted for a parent path): neither.
    found.next().is_none().then_some(first)
}

/// Whether `given` is the session's CSRF token (in constant time).
pub fn csrf_matches(session: &Session, given: &str) -> bool {
    use subtle::ConstantTimeEq;
    given.len() == session.csrf.len() && bool::from(given.as_bytes().ct_eq(session.csrf.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use enrichd_core::clock::ManualClock;

    fn with_cookie(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            axum::http::header::COOKIE,
            format!("other=1; {COOKIE}={token}").parse().unwrap(),
        );
        headers
    }

    #[test]
    fn a_session_ends_when_idle_and_after_its_maximum_age() {
        let manual = ManualClock::new();
        let clock = manual.shared();
        let config = ConsoleConfig {
            session_idle: Duration::from_secs(60),
            session_max: Duration::from_secs(150),
            ..ConsoleConfig::default()
        };
        let sessions = Sessions::new(config, clock);
        let (token, _) = sessions.start(None, Caller::anonymous());
        let headers = with_cookie(&token);
        manual.advance(Duration::from_secs(50));
        assert!(sessions.of(&headers).is_some(), "used within the idle time");
        manual.advance(Duration::from_secs(50));
        assert!(sessions.of(&headers).is_some(), "idle 50 s, not 100");
        manual.advance(Duration::from_secs(55));
        assert!(sessions.of(&headers).is_none(), "past its maximum age");

        let (token, _) = sessions.start(None, Caller::anonymous());
        manual.advance(Duration::from_secs(61));
        assert!(sessions.of(&with_cookie(&token)).is_none(), "idle too long");
    }

    #[test]
    fn a_signed_out_or_unknown_or_doubled_cookie_is_no_session() {
        let sessions = Sessions::new(ConsoleConfig::default(), SharedClock::system());
        let (token, session) = sessions.start(None, Caller::anonymous());
        assert!(csrf_matches(&session, &session.csrf));
        assert!(!csrf_matches(&session, &token));
        assert!(sessions.of(&with_cookie("forged")).is_none());
        let mut doubled = with_cookie(&token);
        doubled.append(
            axum::http::header::COOKIE,
            format!("{COOKIE}=x").parse().unwrap(),
        );
        assert!(sessions.of(&doubled).is_none());
        sessions.end(&with_cookie(&token));
        assert!(sessions.of(&with_cookie(&token)).is_none());
    }
}
