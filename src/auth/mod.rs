//! Who is calling, and what they may do. Every RPC of `enrichd.v1` is
//! authenticated (an API key, or a client certificate over mTLS) and
//! authorised (its scope, the caller's quota) by [`layer`] before any
//! handler runs; the purposes a caller may enrich for are checked by the
//! pipeline's gate. Health and reflection stay open.
mod caller;
pub mod keys;
pub mod layer;
mod quota;

use std::collections::BTreeMap;

use serde::Serialize;

pub use caller::{Caller, Scope};
pub use quota::Meter;

/// `[auth]` settings.
#[derive(Debug, Clone, PartialEq, Serialize, eserde::Deserialize)]
pub struct AuthConfig {
    /// Every call must carry a valid key or client certificate. Anonymous
    /// mode (`false`) is refused unless the server listens on loopback only.
    pub required: bool,
    /// Client certificates (mTLS, `[server.tls] client_ca`): the subject's
    /// common name, and what that caller may do.
    #[serde(default)]
    pub clients: BTreeMap<String, ClientConfig>,
}

/// What a caller identified by its client certificate may do.
#[derive(Debug, Clone, PartialEq, Serialize, eserde::Deserialize)]
pub struct ClientConfig {
    pub scopes: Vec<Scope>,
    /// Empty: any declared purpose.
    #[serde(default)]
    pub purposes: Vec<String>,
    /// Requests per second; none: no quota of its own.
    #[serde(default)]
    pub quota_per_second: Option<f64>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            required: true,
            clients: BTreeMap::new(),
        }
    }
}
