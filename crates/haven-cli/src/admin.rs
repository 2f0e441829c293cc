//! `haven admin`: the admin HTTP API (`docs/admin.md`) from the command line.

use haven_server::Method;

/// `haven admin`'s options.
#[derive(clap::Args)]
pub struct AdminArgs {
    /// The server, as `https://HOST:PORT` (or `http://` for a server
    /// without TLS): the address `haven serve` listens on.
    #[arg(long)]
    server: String,
    /// Trust this certificate authority (PEM) for an `https://` server,
    /// besides the webpki roots: a private CA or a self-signed server.
    #[arg(long, value_name = "FILE")]
    ca_cert: Option<std::path::PathBuf>,
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
    /// Signs a user out: closes their sessions now and refuses their
    /// tokens issued until now (until the server restarts).
    RevokeUser {
        /// The user: the tokens' `sub`.
        sub: String,
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
        AdminCommand::RevokeUser { sub } => (Method::POST, format!("users/{}/revoke", segment(sub)), String::new()),
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
    let roots = match &args.ca_cert {
        Some(path) => vec![std::fs::read(path).map_err(|e| format!("cannot read --ca-cert {}: {e}", path.display()))?],
        None => vec![],
    };
    let url = format!("{}/admin/v1/{path}", args.server.trim_end_matches('/'));
    let request = haven_server::http_request(method, &url, Some(&args.admin_token), body, &roots);
    let (status, answer) = tokio::runtime::Runtime::new()?.block_on(request)?;
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
