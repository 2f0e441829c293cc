//! What the server accepts connections with: TCP, with TLS when it has a
//! certificate. Handshakes run in tasks of their own, so that a slow or
//! hostile client cannot hold up the others' accepts; a client that
//! speaks TLS to a plain port, or plain HTTP to a TLS port, is logged and
//! dropped.

use crate::serve::ServeError;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// How long a client may take to start talking (TLS: to finish its handshake).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshaken connections waiting for the HTTP server to take them.
const ACCEPTED_QUEUE: usize = 64;

/// Handshakes under way at once; a connection beyond them is dropped, so
/// that clients that connect and stall cannot use up the server's memory
/// and file descriptors.
const MAX_HANDSHAKES: usize = 1024;

/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

/// The certificate chain and private key a server serves TLS with: PEM
/// files (`haven serve --tls-cert --tls-key`), read at start and again by
/// [`Server::reload_tls`](crate::Server::reload_tls).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, the server's own first.
    pub cert: PathBuf,
    /// Its private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// The certificate being served, replaceable while the server runs:
/// sessions already connected keep the one they were handshaken with.
#[derive(Debug)]
pub(crate) struct ServerCertificate {
    files: TlsFiles,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ServerCertificate {
    /// Reads `files`; an error names the file at fault.
    pub fn load(files: TlsFiles) -> Result<ServerCertificate, ServeError> {
        let current = RwLock::new(read(&files)?);
        Ok(ServerCertificate { files, current })
    }

    /// Reads the files again; on an error the current certificate stays.
    pub fn reload(&self) -> Result<(), ServeError> {
        let fresh = read(&self.files)?;
        *self.current.write().expect("certificate") = fresh;
        Ok(())
    }
}

impl ResolvesServerCert for ServerCertificate {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().expect("certificate").clone())
    }
}

fn read(files: &TlsFiles) -> Result<Arc<CertifiedKey>, ServeError> {
    let bad = |path: &Path, reason: String| ServeError::Tls { path: path.to_owned(), reason };
    let pem = |path: &Path| std::fs::read(path).map_err(|e| bad(path, e.to_string()));
    let (cert_pem, key_pem) = (pem(&files.cert)?, pem(&files.key)?);
    let chain =
        haven_sync::tls::certificates(&cert_pem, "the certificate file").map_err(|e| bad(&files.cert, e.reason))?;
    let key = haven_sync::tls::private_key(&key_pem, "the key file").map_err(|e| bad(&files.key, e.reason))?;
    let certified = CertifiedKey::from_der(chain, key, &haven_sync::tls::provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => {
            bad(&files.key, format!("this key does not belong to the certificate in {}", files.cert.display()))
        }
        e => bad(&files.key, e.to_string()),
    })?;
    Ok(Arc::new(certified))
}

/// A connection handed to the HTTP server: TCP, or TLS over it.
pub(crate) trait Connection: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Connection for T {}

/// An [`axum::serve::Listener`] whose connections arrive handshaken.
pub(crate) struct Accepting {
    accepted: mpsc::Receiver<(Box<dyn Connection>, SocketAddr)>,
    addr: SocketAddr,
    accept_task: tokio::task::JoinHandle<()>,
}

impl Accepting {
    /// Accepts on `tcp`, with TLS when `certificate` is given.
    pub fn new(tcp: TcpListener, certificate: Option<Arc<ServerCertificate>>) -> std::io::Result<Accepting> {
        let addr = tcp.local_addr()?;
        let tls = certificate.map(|certificate| {
            let config = rustls::ServerConfig::builder_with_provider(haven_sync::tls::provider())
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions")
                .with_no_client_auth()
                .with_cert_resolver(certificate);
            tokio_rustls::TlsAcceptor::from(Arc::new(config))
        });
        let (queue, accepted) = mpsc::channel(ACCEPTED_QUEUE);
        let accept_task = tokio::spawn(accept(tcp, tls, queue));
        Ok(Accepting { accepted, addr, accept_task })
    }
}

impl Drop for Accepting {
    fn drop(&mut self) {
        // The accept loop owns the socket: the port is free once it ends.
        self.accept_task.abort();
    }
}

impl axum::serve::Listener for Accepting {
    type Io = Box<dyn Connection>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(connection) => connection,
            None => std::future::pending().await, // the accept loop ended: the server is stopping
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.addr)
    }
}

async fn accept(
    tcp: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    queue: mpsc::Sender<(Box<dyn Connection>, SocketAddr)>,
) {
    let handshakes = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
    loop {
        let (stream, peer) = match tcp.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, say: wait rather than spin.
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Small frames (a one-field change) must leave at once, not wait for Nagle.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let Ok(permit) = handshakes.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "{MAX_HANDSHAKES} handshakes under way: connection dropped");
            continue;
        };
        let (tls, queue) = (tls.clone(), queue.clone());
        tokio::spawn(async move {
            let handed_over = async {
                let connection = handshake(stream, tls).await?;
                queue.send((connection, peer)).await.map_err(|_| "the server is stopping".to_owned())
            };
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, handed_over).await {
                Ok(Ok(())) => {}
                // Info, not warn: scanners make these by the thousand.
                Ok(Err(why)) => tracing::info!(%peer, "connection refused: {why}"),
                Err(_) => tracing::debug!(%peer, "no handshake within {HANDSHAKE_TIMEOUT:?}: connection dropped"),
            }
            drop(permit);
        });
    }
}

async fn handshake(stream: TcpStream, tls: Option<tokio_rustls::TlsAcceptor>) -> Result<Box<dyn Connection>, String> {
    match tls {
        Some(tls) => match tls.accept(stream).await {
            Ok(stream) => Ok(Box::new(stream)),
            Err(e) => Err(format!(
                "TLS handshake failed: {}",
                haven_sync::tls::handshake_failure(&e).unwrap_or_else(|| e.to_string())
            )),
        },
        None => {
            let mut first = [0u8; 1];
            stream.peek(&mut first).await.map_err(|e| e.to_string())?;
            if first[0] == TLS_HANDSHAKE {
                return Err("the client speaks TLS to this plain port: connect with ws:// (or serve TLS with --tls-cert and --tls-key)".into());
            }
            Ok(Box::new(stream))
        }
    }
}
