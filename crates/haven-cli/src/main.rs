//! `haven`: the command-line tool.

mod admin;
mod bench;
mod demo;
mod demo_local;
mod demo_reset;
mod inspect;
mod serve;

use clap::{Parser, Subcommand};

/// Haven: an offline-first object database with a sync server.
#[derive(Parser)]
#[command(name = "haven", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the sync server.
    Serve(Box<serve::ServeArgs>),
    /// Operates a running server through its admin API.
    Admin(admin::AdminArgs),
    /// Starts a server and two devices in this process, edits offline on
    /// both, reconnects and shows how they converged.
    Demo {
        /// Instead: open a local database, write, query and listen,
        /// printing each step.
        #[arg(long)]
        local: bool,
        /// Where to put the databases (default: a temporary directory).
        #[arg(long)]
        path: Option<std::path::PathBuf>,
    },
    /// Shows what a database file holds: schema, object counts, sync state.
    Inspect {
        /// The database file.
        file: std::path::PathBuf,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Runs benchmarks side by side with SQLite.
    Bench {
        #[command(subcommand)]
        suite: bench::Suite,
    },
}

fn main() -> std::process::ExitCode {
    let command = Cli::parse().command;
    // The demo and the benchmarks tell their own story: the warnings a
    // reset logs would only repeat it (RUST_LOG=warn shows them).
    let default_level = if matches!(command, Command::Demo { .. } | Command::Bench { .. }) { "error" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default_level.into()))
        .with_writer(std::io::stderr)
        .init();
    let result = match command {
        Command::Serve(args) => serve::run(*args),
        Command::Admin(args) => admin::run(args),
        Command::Inspect { file, json } => inspect::run(&file, json),
        Command::Demo { local: true, path } => demo_local::run(path),
        Command::Demo { local: false, path } => demo::run(path),
        Command::Bench { suite } => bench::run(suite),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
