//! `haven serve`: the sync server, until SIGINT or SIGTERM.

use haven_server::{
    Authenticator, EmbeddedStorage, JwtVerifier, PostgresStorage, Server, ServerOptions, Storage, TlsFiles,
};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// `haven serve`'s options.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// The address to listen on (port 0: any free port; the line
    /// `haven listening on ws://ADDR`, or `wss://ADDR` with TLS, says which).
    #[arg(long, default_value = "127.0.0.1:7878")]
    listen: SocketAddr,
    /// Where the embedded storage keeps its file.
    #[arg(long, default_value = "./haven-data")]
    data_dir: PathBuf,
    /// Keep the data in PostgreSQL instead (`postgres://user@host:port/db`):
    /// any number of servers can share it. Prefer the environment variable
    /// when the URL holds a password.
    #[arg(long, env = "HAVEN_POSTGRES_URL", hide_env_values = true, conflicts_with = "data_dir")]
    postgres: Option<String>,
    /// With --postgres: the PostgreSQL schema for Haven's tables (created
    /// if needed; default: the connection's search path).
    #[arg(long, requires = "postgres")]
    postgres_schema: Option<String>,
    /// Accept HS256 JWTs signed with this secret (claims: `sub`, `exp`,
    /// `partitions`). Without it the server runs in dev mode. Prefer the
    /// environment variable: a command line is visible to every user.
    #[arg(long, env = "HAVEN_JWT_SECRET", hide_env_values = true, conflicts_with = "dev")]
    jwt_secret: Option<String>,
    /// Accept RS256 or ES256 JWTs signed by an identity provider: its
    /// public key, a PEM file (RSA or P-256).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["jwt_secret", "dev"])]
    jwt_public_key: Option<PathBuf>,
    /// Accept RS256 or ES256 JWTs signed with one of an identity
    /// provider's keys, chosen by the token's `kid`: its JWKS, as an
    /// `https://` URL (fetched at start, every 10 minutes, and when a
    /// token names an unknown key, at most 3 times a minute) or a file.
    #[arg(long, value_name = "FILE|URL", conflicts_with_all = ["jwt_secret", "jwt_public_key", "dev"])]
    jwks: Option<String>,
    /// Tokens must carry this issuer (`iss`).
    #[arg(long, value_name = "ISS")]
    jwt_issuer: Option<String>,
    /// Tokens must carry this audience (`aud`).
    #[arg(long, value_name = "AUD")]
    jwt_audience: Option<String>,
    /// The claim that lists a token's partitions: a top-level claim of
    /// this name, else a dotted path into nested claims
    /// (`app_metadata.partitions`).
    #[arg(long, value_name = "NAME", default_value = haven_server::DEFAULT_PARTITIONS_CLAIM)]
    partitions_claim: String,
    /// The clock skew allowed on a token's `exp` and `nbf`, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = haven_server::DEFAULT_LEEWAY_SECS)]
    jwt_leeway: u64,
    /// Serve `wss://` and HTTPS with this certificate chain (PEM, the
    /// server's own certificate first); re-read on SIGHUP.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM); re-read on SIGHUP.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Dev mode: accept any token, on loopback only (the default without
    /// --jwt-secret, --jwt-public-key or --jwks).
    #[arg(long)]
    dev: bool,
    /// Turns on the admin API (`/admin/v1`) for requests that send
    /// `Authorization: Bearer <token>`.
    #[arg(long, env = "HAVEN_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// The embedded store's page cache, in MiB (default: redb's, 1 GiB at
    /// most). The cache grows with the data up to this, on top of the
    /// server's own memory (about 20 MiB, plus 10 KiB a connection).
    #[arg(long = "cache-mib", value_name = "MIB", conflicts_with = "postgres", value_parser = parse_mib)]
    cache_bytes: Option<usize>,
    /// A client out of touch for longer (`30d`, `12h`, `90m`, `45s`) is
    /// reset when it comes back, and history only such clients would need
    /// is trimmed. Without it, history is kept until `haven admin compact`.
    #[arg(long, value_parser = parse_duration)]
    max_offline_time: Option<std::time::Duration>,
}

/// `30d`, `12h`, `90m`, `45s`, `250ms`: a whole number and a unit, above 0.
pub(crate) fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("'{text}' is not a duration: give a number and a unit, as 30d, 12h, 90m, 45s or 250ms");
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let n: u64 = number.parse().map_err(|_| bad())?;
    let millis_per_unit = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad()),
    };
    let millis = n.checked_mul(millis_per_unit).ok_or_else(|| format!("'{text}' is too long a duration"))?;
    if millis == 0 {
        return Err(format!("a duration must be more than 0 (got '{text}')"));
    }
    Ok(std::time::Duration::from_millis(millis))
}

/// A size in MiB, in bytes.
fn parse_mib(text: &str) -> Result<usize, String> {
    let mib: usize = text.parse().map_err(|_| format!("'{text}' is not a whole number of MiB"))?;
    match mib.checked_mul(1 << 20) {
        Some(0) => Err("the cache needs at least 1 MiB".into()),
        Some(bytes) => Ok(bytes),
        None => Err(format!("{mib} MiB is more than this machine can address")),
    }
}

/// How tokens are checked, from the `--jwt-*` and `--jwks` flags.
async fn authenticator(args: &ServeArgs) -> Result<Authenticator, Box<dyn std::error::Error>> {
    let verifier = match (&args.jwt_secret, &args.jwt_public_key, &args.jwks) {
        (Some(secret), ..) if secret.is_empty() => return Err("--jwt-secret must not be empty".into()),
        (Some(secret), ..) => JwtVerifier::from_secret(secret.as_bytes()),
        (None, Some(path), _) => {
            let pem =
                std::fs::read(path).map_err(|e| format!("cannot read --jwt-public-key {}: {e}", path.display()))?;
            JwtVerifier::from_public_key_pem(&pem).map_err(|e| format!("--jwt-public-key {}: {e}", path.display()))?
        }
        (None, None, Some(location)) => JwtVerifier::from_jwks(location).await.map_err(|e| format!("--jwks: {e}"))?,
        (None, None, None) if args.jwt_issuer.is_some() || args.jwt_audience.is_some() => {
            return Err("--jwt-issuer and --jwt-audience need --jwt-secret, --jwt-public-key or --jwks".into())
        }
        (None, None, None) => {
            eprintln!("warning: dev mode: any token is accepted (loopback only); give --jwt-secret, --jwt-public-key or --jwks in production");
            return Ok(Authenticator::Dev);
        }
    };
    let mut verifier = verifier.partitions_claim(&args.partitions_claim).leeway_secs(args.jwt_leeway);
    if let Some(issuer) = &args.jwt_issuer {
        verifier = verifier.issuer(issuer);
    }
    if let Some(audience) = &args.jwt_audience {
        verifier = verifier.audience(audience);
    }
    Ok(Authenticator::Jwt(verifier))
}

pub fn run(args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let auth = authenticator(&args).await?;
        Server::check_listen(&auth, args.listen)?;
        let storage: Arc<dyn Storage> = match &args.postgres {
            Some(url) => {
                let (url, schema) = (url.clone(), args.postgres_schema.clone());
                // Connecting blocks: off the runtime's threads.
                let storage =
                    tokio::task::spawn_blocking(move || PostgresStorage::connect_in_schema(&url, schema.as_deref()))
                        .await??;
                Arc::new(storage)
            }
            None => Arc::new(EmbeddedStorage::open_with_cache(&args.data_dir, args.cache_bytes)?),
        };
        let options = ServerOptions {
            admin_token: args.admin_token.clone(),
            max_offline: args.max_offline_time,
            tls: args.tls_cert.clone().zip(args.tls_key.clone()).map(|(cert, key)| TlsFiles { cert, key }),
            ..ServerOptions::default()
        };
        let server = Server::start_with_options(storage, auth, args.listen, options).await?;
        println!("haven listening on {}", server.url());
        std::io::stdout().flush()?;
        serve_until_stopped(&server, args.tls_cert.is_some()).await?;
        eprintln!("shutting down");
        server.shutdown().await;
        Ok(())
    })
}

/// Until SIGINT (Ctrl-C) or SIGTERM; with TLS, SIGHUP re-reads the
/// certificate files (without, SIGHUP keeps its default: it ends the
/// process).
async fn serve_until_stopped(server: &Server, tls: bool) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut hangup = if tls { Some(signal(SignalKind::hangup())?) } else { None };
    loop {
        tokio::select! {
            r = tokio::signal::ctrl_c() => return r,
            _ = term.recv() => return Ok(()),
            Some(_) = hung_up(&mut hangup) => match server.reload_tls() {
                Ok(()) => tracing::info!("SIGHUP: TLS certificate files read again"),
                Err(e) => tracing::error!(error = %e, "SIGHUP: keeping the current certificate"),
            },
        }
    }
}

/// The next SIGHUP, when it is handled; never otherwise.
async fn hung_up(hangup: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match hangup {
        Some(signal) => signal.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration("90m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("45s"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        for bad in ["", "d", "12", "3w", "-1h", "1.5h", "5µ", "5 s", "ms"] {
            assert!(parse_duration(bad).unwrap_err().contains("not a duration"), "{bad}");
        }
        assert!(parse_duration("0h").unwrap_err().contains("more than 0"));
        assert!(parse_duration("99999999999999999d").unwrap_err().contains("too long"));
    }

    #[test]
    fn cache_sizes() {
        assert_eq!(super::parse_mib("16"), Ok(16 << 20));
        assert!(super::parse_mib("0").unwrap_err().contains("at least 1 MiB"));
        assert!(super::parse_mib("x").unwrap_err().contains("not a whole number"));
        assert!(super::parse_mib(&usize::MAX.to_string()).unwrap_err().contains("more than"));
    }
}
