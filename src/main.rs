//! `strata`: the one binary. `serve` runs the cloud; `replay`, `log`, `audit` and `bench` are the operator's
//! tools.

mod audit;
mod bench;
mod config;
mod debug;
mod docs;
mod serve;
mod tools;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "strata",
    version,
    about = "An OpenStack-compatible, event-sourced cloud control plane"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every service in this process, with the event log in the data dir.
    Serve(Box<config::ServeArgs>),
    /// Rebuild every projection from position 0 and compare it with the live one.
    Replay {
        /// Compare digests and exit non-zero on any difference.
        #[arg(long)]
        verify: bool,
        #[arg(long, default_value = "./strata-data")]
        data_dir: PathBuf,
    },
    /// Inspect the event log of a data dir.
    Log {
        #[command(subcommand)]
        command: tools::LogCommand,
    },
    /// Measure throughput and latency (figures go to docs/PERFORMANCE.md).
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
    /// Resource timelines, point-in-time state, event queries and the hash-chain check, through the running
    /// audit API (clouds.yaml) or offline on a data dir (`--data-dir`).
    Audit(Box<audit::AuditArgs>),
    /// Generate documentation from the sources (docs/EVENTS.md from proto/).
    #[command(hide = true)]
    Docs {
        #[command(subcommand)]
        command: docs::DocsCommand,
    },
    /// Test-only tools that damage a copy of a data dir on purpose.
    #[command(hide = true)]
    Debug {
        #[command(subcommand)]
        command: debug::DebugCommand,
    },
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("STRATA_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,actix_web=warn,actix_server=warn")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    init_tracing();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Replay { verify, data_dir } => tools::replay(&data_dir, verify),
        Command::Log { command } => tools::log(command),
        Command::Bench { command } => bench::run(command),
        Command::Audit(args) => audit::run(*args),
        Command::Docs { command } => docs::run(command),
        Command::Debug { command } => debug::run(command),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("strata: {e:#}");
            ExitCode::FAILURE
        }
    }
}
