//! `haven serve`: the sync server, until SIGINT or SIGTERM.

use haven_server::{Authenticator, EmbeddedStorage, Server};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// `haven serve`'s options.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// The address to listen on (port 0: any free port; the line
    /// `haven listening on ws://ADDR` says which).
    #[arg(long, default_value = "127.0.0.1:7878")]
    listen: SocketAddr,
    /// Where the embedded storage keeps its file.
    #[arg(long, default_value = "./haven-data")]
    data_dir: PathBuf,
    /// Accept HS256 JWTs signed with this secret (claims: `sub`, `exp`,
    /// `partitions`). Without it the server runs in dev mode. Prefer the
    /// environment variable: a command line is visible to every user.
    #[arg(long, env = "HAVEN_JWT_SECRET", hide_env_values = true, conflicts_with = "dev")]
    jwt_secret: Option<String>,
    /// Dev mode: accept any token, on loopback only (the default without
    /// --jwt-secret).
    #[arg(long)]
    dev: bool,
    /// Turns on the admin API (`/admin/v1`) for requests that send
    /// `Authorization: Bearer <token>`.
    #[arg(long, env = "HAVEN_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
}

pub fn run(args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let auth = match &args.jwt_secret {
            Some(secret) if secret.is_empty() => return Err("--jwt-secret must not be empty".into()),
            Some(secret) => Authenticator::jwt(secret.as_bytes()),
            None => {
                eprintln!("warning: dev mode: any token is accepted (loopback only); give --jwt-secret in production");
                Authenticator::Dev
            }
        };
        Server::check_listen(&auth, args.listen)?;
        let storage = Arc::new(EmbeddedStorage::open(&args.data_dir)?);
        let server = Server::start_with_admin(storage, auth, args.listen, args.admin_token.clone()).await?;
        println!("haven listening on {}", server.url());
        std::io::stdout().flush()?;
        stop_signal().await?;
        eprintln!("shutting down");
        server.shutdown().await;
        Ok(())
    })
}

/// SIGINT (Ctrl-C) or SIGTERM.
async fn stop_signal() -> std::io::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r,
        _ = term.recv() => Ok(()),
    }
}
