//! `strata bench`: throughput and latency figures for docs/PERFORMANCE.md.

use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// Durable append throughput, replay throughput, cold actor activation.
    Log,
}

pub fn run(_cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not yet")
}
