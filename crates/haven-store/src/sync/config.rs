//! How a database syncs: [`SyncConfig`].

use super::SyncError;
use crate::client_reset::ClientResetMode;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// A callback for sync errors.
pub(crate) type ErrorHandler = Arc<dyn Fn(&SyncError) + Send + Sync>;

/// What a token provider's call returns: a token, or why there is none.
pub(crate) type TokenFuture = Pin<Box<dyn Future<Output = Result<String, String>> + Send>>;

/// The app's way to get a fresh token.
pub(crate) type TokenProvider = Arc<dyn Fn() -> TokenFuture + Send + Sync>;

/// Where and how a database syncs; give it to
/// [`Config::sync`](crate::Config::sync) and open with
/// [`Database::open_synced`](crate::Database::open_synced).
///
/// ```
/// use haven_store::SyncConfig;
/// let sync = SyncConfig::new("ws://127.0.0.1:7878", "dev-token", "my-partition")
///     .on_error(|err| eprintln!("sync: {err}"));
/// assert_eq!(sync.partition(), "my-partition");
/// ```
#[derive(Clone)]
pub struct SyncConfig {
    pub(crate) url: String,
    pub(crate) token: String,
    pub(crate) partition: String,
    pub(crate) wait_for_download: bool,
    pub(crate) on_error: Option<ErrorHandler>,
    pub(crate) client_reset: Arc<ClientResetMode>,
    pub(crate) first_retry: Duration,
    pub(crate) max_retry: Duration,
    pub(crate) ping_interval: Duration,
    pub(crate) tls_roots: Vec<Vec<u8>>,
    pub(crate) token_provider: Option<TokenProvider>,
}

impl std::fmt::Debug for SyncConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a secret: never print it.
        f.debug_struct("SyncConfig")
            .field("url", &self.url)
            .field("partition", &self.partition)
            .field("wait_for_download", &self.wait_for_download)
            .field("client_reset", &self.client_reset)
            .field("token_provider", &self.token_provider.is_some())
            .finish_non_exhaustive()
    }
}

impl SyncConfig {
    /// Syncs `partition` with the server at `url` (`wss://HOST:PORT` or
    /// `ws://HOST:PORT`, as `haven serve` prints it), authenticated by
    /// `token`: a JWT, or any string for a server in dev mode. A token
    /// that expires needs a [`token_provider`](SyncConfig::token_provider)
    /// (then `token` may be empty).
    pub fn new(url: impl Into<String>, token: impl Into<String>, partition: impl Into<String>) -> SyncConfig {
        SyncConfig {
            url: url.into(),
            token: token.into(),
            partition: partition.into(),
            wait_for_download: true,
            on_error: None,
            client_reset: Arc::new(ClientResetMode::default()),
            first_retry: Duration::from_secs(1),
            max_retry: Duration::from_secs(300),
            ping_interval: Duration::from_secs(10),
            tls_roots: Vec::new(),
            token_provider: None,
        }
    }

    /// The partition synced.
    pub fn partition(&self) -> &str {
        &self.partition
    }

    /// Whether [`Database::open_synced`](crate::Database::open_synced)
    /// waits for everything the server has (the default) or returns at
    /// once with what the file holds, syncing in the background. An app
    /// that must start offline opens at once; the one exception is an app
    /// whose schema breaks the file's (its update after an operator's
    /// breaking change): the file starts again from the server's state,
    /// which needs the server once, so that open fails offline (within
    /// 30 s) and changes nothing.
    pub fn wait_for_download(mut self, wait: bool) -> SyncConfig {
        self.wait_for_download = wait;
        self
    }

    /// Called (on a sync thread) for each error the session reports:
    /// errors sent by the server and local failures. Lost connections are
    /// not errors: the session reconnects (see
    /// [`SyncSession::connection_state`](crate::SyncSession::connection_state)).
    pub fn on_error(mut self, handler: impl Fn(&SyncError) + Send + Sync + 'static) -> SyncConfig {
        self.on_error = Some(Arc::new(handler));
        self
    }

    /// What to do when the server can no longer continue this file's
    /// history (a client reset); the default is
    /// [`ClientResetMode::RecoverUnsynced`] with `LatestWins`. See
    /// `docs/client-reset.md`.
    pub fn client_reset(mut self, mode: ClientResetMode) -> SyncConfig {
        self.client_reset = Arc::new(mode);
        self
    }

    /// The reconnect backoff: the first wait after a lost connection and
    /// the longest (default 1 s and 5 min). Each wait doubles the last,
    /// times a random factor between ½ and 1.
    pub fn reconnect_delays(mut self, first: Duration, max: Duration) -> SyncConfig {
        self.first_retry = first;
        self.max_retry = max.max(first);
        self
    }

    /// How often the session pings the server (default 10 s). Two
    /// intervals in which no byte came from the server and no byte of an
    /// upload went out count as a lost connection (a half-open one, or a
    /// server that stopped answering): the session reconnects. The server
    /// disconnects a client silent for 60 s, so keep it well below that.
    ///
    /// ```
    /// use haven_store::SyncConfig;
    /// use std::time::Duration;
    /// let sync = SyncConfig::new("ws://127.0.0.1:7878", "dev", "p").ping_interval(Duration::from_secs(5));
    /// # let _ = sync;
    /// ```
    pub fn ping_interval(mut self, interval: Duration) -> SyncConfig {
        self.ping_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// Trusts the certificates in `pem` (PEM, one or more) for `wss://`
    /// URLs, in addition to the webpki roots: a private certificate
    /// authority, or a self-signed server. Several calls add up. A file
    /// that holds no certificate makes
    /// [`Database::open_synced`](crate::Database::open_synced) fail.
    ///
    /// ```no_run
    /// use haven_store::SyncConfig;
    /// let sync = SyncConfig::new("wss://sync.example.com", "token", "p")
    ///     .tls_root_certificates(std::fs::read("ca.pem")?);
    /// # let _ = sync;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn tls_root_certificates(mut self, pem: impl Into<Vec<u8>>) -> SyncConfig {
        self.tls_roots.push(pem.into());
        self
    }

    /// Gets tokens from the app, for tokens that expire (an identity
    /// provider's JWTs). The session calls `provider` before connecting
    /// when it has no token or its token expires within a minute, and
    /// again when the server says the token expired or refuses it; then
    /// it reconnects, and nothing is lost or sent twice. An `Err` is
    /// reported to [`on_error`](SyncConfig::on_error) and the session
    /// tries again after its reconnect backoff.
    ///
    /// ```
    /// use haven_store::SyncConfig;
    /// async fn sign_in() -> Result<String, std::io::Error> {
    ///     Ok("a JWT from the identity provider".into())
    /// }
    /// let sync = SyncConfig::new("wss://sync.example.com", "", "p").token_provider(|| sign_in());
    /// # let _ = sync;
    /// ```
    pub fn token_provider<F, Fut, E>(mut self, provider: F) -> SyncConfig
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, E>> + Send + 'static,
        E: std::fmt::Display,
    {
        let provider = Arc::new(provider);
        self.token_provider = Some(Arc::new(move || {
            let call = provider();
            Box::pin(async move { call.await.map_err(|e| e.to_string()) }) as TokenFuture
        }));
        self
    }
}
