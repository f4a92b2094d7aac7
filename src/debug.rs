//! `strata debug ...` (hidden): tools for tests that must damage things on purpose. Never for a real cloud.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use strata_events::{EventLog, RocksLog, RocksOptions};
use strata_proto::Message;

use crate::serve::log_dir;

#[derive(clap::Subcommand)]
pub enum DebugCommand {
    /// TEST ONLY: rewrite one stored event of a COPY of a data dir (no server may hold it), keeping its stored
    /// hash, so that the chain check must find it. By default one payload byte is flipped; `--garbage`
    /// stores bytes that are not an envelope at all (a storage-level corruption).
    RewriteEvent {
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        #[arg(long)]
        position: u64,
        /// Which payload byte to flip (its lowest bit); past the end: the last one.
        #[arg(long, default_value_t = 0)]
        payload_byte: usize,
        /// Store bytes that do not decode as an envelope instead.
        #[arg(long)]
        garbage: bool,
    },
}

pub fn run(cmd: DebugCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DebugCommand::RewriteEvent {
            data_dir,
            position,
            payload_byte,
            garbage,
        } => {
            let dir = log_dir(&data_dir);
            if !dir.join("CURRENT").exists() {
                bail!("no event log in {}", dir.display());
            }
            let log = RocksLog::open(&dir, RocksOptions::default()).with_context(|| {
                format!(
                    "opening {} for writing (it must be a copy that no server holds)",
                    dir.display()
                )
            })?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .context("starting the async runtime")?;
            let event = rt
                .block_on(log.read_all(position, 1))
                .with_context(|| format!("reading the event at position {position}"))?
                .into_iter()
                .next()
                .filter(|e| e.position == position)
                .with_context(|| format!("no event is stored at position {position}"))?;
            let bytes = if garbage {
                b"\xff\xff\xff\xff not an envelope".to_vec()
            } else {
                let mut env = event.to_envelope();
                if env.payload.is_empty() {
                    env.payload.push(0);
                } else {
                    let i = payload_byte.min(env.payload.len() - 1);
                    env.payload[i] ^= 0x01;
                }
                env.encode_to_vec()
            };
            log.overwrite_event_for_tests(position, &bytes)
                .with_context(|| format!("rewriting the event at position {position}"))?;
            println!(
                "rewrote the event at position {position} ({} of {}){}; its stored hash is unchanged",
                event.event_type,
                event.stream_id,
                if garbage {
                    " with bytes that are not an envelope"
                } else {
                    ": one payload byte flipped"
                }
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
