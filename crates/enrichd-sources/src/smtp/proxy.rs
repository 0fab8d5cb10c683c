//! A SOCKS5 proxy for the probes (`smtp.proxy`): many clouds block port 25.
use std::net::SocketAddr;

/// A SOCKS5 proxy: where it is, and the credentials it wants, if any.
#[derive(Clone, PartialEq)]
pub struct Proxy {
    host: String,
    port: u16,
    pub(super) login: Option<(String, String)>,
}

impl std::fmt::Debug for Proxy {
    /// Never the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("login", &self.login.as_ref().map(|(user, _)| user))
            .finish()
    }
}

impl Proxy {
    /// `socks5://[user:password@]host:port`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let url = url::Url::parse(text).map_err(|e| format!("not a URL ({e})"))?;
        if url.scheme() != "socks5" {
            return Err(format!(
                "the scheme must be socks5 (socks5://host:port), not {}",
                url.scheme()
            ));
        }
        let host = url
            .host_str()
            .ok_or("a host is required (socks5://host:port)")?
            .trim_matches(['[', ']'])
            .to_owned();
        let port = url
            .port()
            .ok_or("a port is required (socks5://host:port)")?;
        let login = (!url.username().is_empty()).then(|| {
            let decode = |s: &str| {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            (
                decode(url.username()),
                decode(url.password().unwrap_or_default()),
            )
        });
        Ok(Self { host, port, login })
    }

    /// A stream to `target` through the proxy.
    pub(super) async fn connect(
        &self,
        target: SocketAddr,
    ) -> Result<tokio_socks::tcp::Socks5Stream<tokio::net::TcpStream>, tokio_socks::Error> {
        let proxy = (self.host.as_str(), self.port);
        match &self.login {
            Some((user, password)) => {
                tokio_socks::tcp::Socks5Stream::connect_with_password(proxy, target, user, password)
                    .await
            }
            None => tokio_socks::tcp::Socks5Stream::connect(proxy, target).await,
        }
    }
}
