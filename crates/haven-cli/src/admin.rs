//! `haven admin`: the admin HTTP API (`docs/admin.md`) from the command line.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{header, Method, Request};
use hyper_util::rt::TokioIo;

/// `haven admin`'s options.
#[derive(clap::Args)]
pub struct AdminArgs {
    /// The server, as `http://HOST:PORT` (the address `haven serve` listens on).
    #[arg(long)]
    server: String,
    /// The server's `--admin-token`.
    #[arg(long, env = "HAVEN_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: String,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(clap::Subcommand)]
enum AdminCommand {
    /// Lists partitions, their versions and connected clients.
    Partitions,
    /// Makes one client start again from the server's state.
    ResetClient {
        /// The client's file ident (see `partitions`).
        ident: u64,
    },
    /// Makes every client of a partition start again from its state.
    Terminate {
        /// The partition.
        partition: String,
    },
    /// Drops a partition's history but its last versions.
    Compact {
        /// The partition.
        partition: String,
        /// How many of the latest versions to keep.
        #[arg(long)]
        keep_versions: u64,
    },
    /// Allows or forbids recovery of unsynced writes in client resets.
    Recovery {
        /// The partition.
        partition: String,
        /// `true` or `false`.
        #[arg(long, action = clap::ArgAction::Set)]
        allowed: bool,
    },
    /// Changes the server's schema (additions reset nobody; a breaking
    /// change resets every client, which recovers what still fits).
    Schema {
        /// The schema, as JSON (the form `Schema::from_json` reads).
        file: std::path::PathBuf,
    },
}

pub fn run(args: AdminArgs) -> Result<(), Box<dyn std::error::Error>> {
    let (method, path, body) = match &args.command {
        AdminCommand::Schema { file } => {
            let json = std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            (Method::PUT, "schema".to_owned(), json)
        }
        AdminCommand::Partitions => (Method::GET, "partitions".to_owned(), String::new()),
        AdminCommand::ResetClient { ident } => (Method::POST, format!("clients/{ident}/reset"), String::new()),
        AdminCommand::Terminate { partition } => {
            (Method::POST, format!("partitions/{}/terminate", segment(partition)), String::new())
        }
        AdminCommand::Compact { partition, keep_versions } => (
            Method::POST,
            format!("partitions/{}/compact", segment(partition)),
            serde_json::json!({ "keep_versions": keep_versions }).to_string(),
        ),
        AdminCommand::Recovery { partition, allowed } => (
            Method::POST,
            format!("partitions/{}/recovery", segment(partition)),
            serde_json::json!({ "allowed": allowed }).to_string(),
        ),
    };
    let host = args
        .server
        .strip_prefix("http://")
        .ok_or("--server must be http://HOST:PORT (for TLS, put a proxy in front and talk to it over http on the same host)")?
        .trim_end_matches('/');
    let (status, answer) =
        tokio::runtime::Runtime::new()?.block_on(request(host, &args.admin_token, method, &path, body))?;
    let json: serde_json::Value = serde_json::from_slice(&answer).unwrap_or(serde_json::Value::Null);
    if !status.is_success() {
        let message =
            json["error"].as_str().map_or_else(|| String::from_utf8_lossy(&answer).into_owned(), str::to_owned);
        return Err(format!("the server answered {status}: {message}").into());
    }
    println!("{}", serde_json::to_string_pretty(&json)?);
    Ok(())
}

/// A partition name as one path segment (percent-encoding what a path
/// cannot hold as is).
fn segment(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn request(
    host: &str,
    token: &str,
    method: Method,
    path: &str,
    body: String,
) -> Result<(hyper::StatusCode, Bytes), Box<dyn std::error::Error>> {
    let stream = tokio::net::TcpStream::connect(host).await.map_err(|e| format!("cannot reach {host}: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = Request::builder()
        .method(method)
        .uri(format!("/admin/v1/{path}"))
        .header(header::HOST, host)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    Ok((status, response.into_body().collect().await?.to_bytes()))
}
