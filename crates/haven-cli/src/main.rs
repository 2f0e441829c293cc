//! `haven`: the command-line tool.

mod bench;
mod demo;

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
    /// Opens a database, writes, queries and listens, printing each step.
    Demo {
        /// Where to put the database (default: a temporary directory).
        #[arg(long)]
        path: Option<std::path::PathBuf>,
    },
    /// Runs benchmarks side by side with SQLite.
    Bench {
        #[command(subcommand)]
        suite: bench::Suite,
    },
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let result = match Cli::parse().command {
        Command::Demo { path } => demo::run(path),
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
