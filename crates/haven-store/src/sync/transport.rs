//! The stream under a session: TCP, TLS over it for `wss://`, and the
//! WebSocket handshake on top.

use super::config::SyncConfig;
use super::liveness::{Liveness, Stamped};
use super::SyncError;
use haven_sync::protocol::MAX_FRAME_BYTES;
use std::sync::Arc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::{Error, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// A WebSocket to the server.
pub(crate) type Socket = tokio_tungstenite::WebSocketStream<Stamped>;

/// Where a session connects, checked when its database opens: the URL's
/// parts, and the TLS set-up for `wss://`.
pub(crate) struct Endpoint {
    /// The sync URL (`…/sync`).
    url: String,
    host: String,
    port: u16,
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// Why connecting failed.
pub(crate) enum ConnectError {
    /// Worth retrying as is (refused, cut, timed out).
    Lost(String),
    /// The server was reached but TLS failed: a certificate it presents
    /// that is not trusted, or one end not speaking TLS. Retrying helps
    /// only once someone fixes it, so it is reported.
    Tls(SyncError),
}

impl Endpoint {
    /// Checks `config`'s URL and trusted certificates.
    pub fn of(config: &SyncConfig) -> Result<Endpoint, SyncError> {
        let bad = |why: String| SyncError::Config(format!("the server URL '{}' {why}", config.url));
        let url = format!("{}/sync", config.url.trim_end_matches('/'));
        let request = url.as_str().into_client_request().map_err(|e| bad(format!("is not a URL: {e}")))?;
        let uri = request.uri();
        let (secure, default_port) = match uri.scheme_str() {
            Some("wss") => (true, 443),
            Some("ws") => (false, 80),
            _ => return Err(bad("must start with wss:// (or ws:// for a server without TLS)".into())),
        };
        let host = uri.host().ok_or_else(|| bad("has no host".into()))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        let port = uri.port_u16().unwrap_or(default_port);
        // Built only when it may be used (or to check the app's roots):
        // the root store is not free.
        let tls = match secure || !config.tls_roots.is_empty() {
            true => Some(
                haven_sync::tls::client_config(&config.tls_roots)
                    .map_err(|e| SyncError::Config(format!("tls_root_certificates: {e}")))?,
            ),
            false => None,
        };
        Ok(Endpoint { url, host, port, tls: tls.filter(|_| secure) })
    }

    /// Warns, once per session, that a plain `ws://` URL reaches past this
    /// machine: tokens and data would cross the network unencrypted.
    pub fn warn_if_plain_over_network(&self) {
        if self.tls.is_none() && !is_loopback(&self.host) {
            tracing::warn!(url = %self.url, "syncing over plain ws:// with a host that is not this machine: tokens and data cross the network unencrypted; use wss://");
        }
    }

    /// Opens the WebSocket over a [`Stamped`] stream.
    pub async fn connect(&self, liveness: Arc<Liveness>) -> Result<Socket, ConnectError> {
        let failed = |e: String| ConnectError::Lost(format!("cannot connect to {}: {e}", self.url));
        let tcp =
            tokio::net::TcpStream::connect((self.host.as_str(), self.port)).await.map_err(|e| failed(e.to_string()))?;
        tcp.set_nodelay(true).map_err(|e| failed(e.to_string()))?;
        let stream: Box<dyn super::liveness::Transport> = match &self.tls {
            None => Box::new(tcp),
            Some(tls) => Box::new(self.handshake(tls.clone(), tcp).await?),
        };
        let limits =
            WebSocketConfig::default().max_message_size(Some(MAX_FRAME_BYTES)).max_frame_size(Some(MAX_FRAME_BYTES));
        let request = self.url.as_str().into_client_request().map_err(|e| failed(e.to_string()))?;
        let upgraded =
            tokio_tungstenite::client_async_with_config(request, Stamped::new(stream, liveness), Some(limits)).await;
        match upgraded {
            Ok((socket, _)) => Ok(socket),
            // An answer that is not HTTP at all: a TLS server's alert, most likely.
            Err(Error::Protocol(ProtocolError::HttparseError(_))) if self.tls.is_none() => {
                Err(ConnectError::Tls(SyncError::Tls {
                    host: self.host.clone(),
                    reason: "the server did not answer plain HTTP: if it serves TLS, use a wss:// URL".into(),
                }))
            }
            Err(Error::Http(response)) => Err(failed(format!("the server answered HTTP {}", response.status()))),
            Err(e) => Err(failed(e.to_string())),
        }
    }

    async fn handshake(
        &self,
        tls: Arc<rustls::ClientConfig>,
        tcp: tokio::net::TcpStream,
    ) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, ConnectError> {
        let name = rustls::pki_types::ServerName::try_from(self.host.clone())
            .map_err(|e| ConnectError::Lost(format!("'{}' is not a host name TLS can check: {e}", self.host)))?;
        use std::io::ErrorKind::{ConnectionAborted, ConnectionReset, UnexpectedEof};
        let refused = |reason: String| ConnectError::Tls(SyncError::Tls { host: self.host.clone(), reason });
        tokio_rustls::TlsConnector::from(tls).connect(name, tcp).await.map_err(|e| {
            match haven_sync::tls::handshake_failure(&e) {
                Some(reason) => refused(reason),
                // A plain server drops a client that opens with TLS.
                None if matches!(e.kind(), UnexpectedEof | ConnectionReset | ConnectionAborted) => refused(
                    "the server closed the connection during the TLS handshake: if it serves plain ws://, use a ws:// URL"
                        .into(),
                ),
                None => ConnectError::Lost(format!("TLS with {} failed: {e}", self.host)),
            }
        })
    }
}

/// Whether `host` names this machine.
fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_plain_url_to_another_machine_is_warned_about() {
        for host in ["localhost", "127.0.0.1", "127.1.2.3", "::1"] {
            assert!(is_loopback(host), "{host}");
        }
        for host in ["sync.example.com", "10.0.0.5", "localhost.example.com"] {
            assert!(!is_loopback(host), "{host}");
        }
        let endpoint = |url: &str| Endpoint::of(&SyncConfig::new(url, "t", "p")).unwrap();
        assert!(endpoint("wss://sync.example.com").tls.is_some());
        assert_eq!(endpoint("wss://sync.example.com").port, 443);
        let v6 = endpoint("ws://[::1]:7878");
        assert_eq!((v6.host.as_str(), v6.port, v6.tls.is_none()), ("::1", 7878, true));
    }
}
