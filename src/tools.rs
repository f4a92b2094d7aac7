//! Offline tools on a data dir: `replay --verify`, `log verify`, `log dump`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use serde_json::json;
use strata_events::{verify_log, EventLog, Head, LogError, RocksLog, RocksOptions, GENESIS_HASH};
use strata_projections::audit::AuditIndex;
use strata_projections::compute::ComputeView;
use strata_projections::identity::IdentityView;
use strata_projections::image::ImageView;
use strata_projections::network::NetworkView;
use strata_projections::object::ObjectView;
use strata_projections::volume::VolumeView;
use strata_projections::{runner, Projection};

use crate::serve::log_dir;

#[derive(clap::Subcommand)]
pub enum LogCommand {
    /// Check the hash chain from position 1 (or from a checkpoint) and print the head digest.
    Verify {
        #[arg(long, default_value = "./strata-data")]
        data_dir: PathBuf,
        /// Start from this trusted position (with --from-hash) instead of position 1.
        #[arg(long, requires = "from_hash")]
        from_position: Option<u64>,
        /// Hex hash of the event at --from-position.
        #[arg(long)]
        from_hash: Option<String>,
    },
    /// Print events in global order.
    Dump {
        #[arg(long, default_value = "./strata-data")]
        data_dir: PathBuf,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
        #[arg(long, default_value_t = 1)]
        from: u64,
        #[arg(long)]
        limit: Option<usize>,
    },
}

/// Open the log of a data dir for reading and writing if no server holds it, read-only otherwise.
pub fn open_log(data_dir: &Path) -> anyhow::Result<(Arc<dyn EventLog>, bool)> {
    let dir = log_dir(data_dir);
    if !dir.join("CURRENT").exists() {
        anyhow::bail!("no event log in {}", dir.display());
    }
    match RocksLog::open(&dir, RocksOptions::default()) {
        Ok(l) => Ok((Arc::new(l), true)),
        Err(LogError::Storage(m)) if m.to_lowercase().contains("lock") => {
            let l = RocksLog::open_read_only(&dir)
                .with_context(|| format!("opening {} read-only", dir.display()))?;
            Ok((Arc::new(l), false))
        }
        Err(e) => Err(e).with_context(|| format!("opening {}", dir.display())),
    }
}

fn block_on<F: std::future::Future>(f: F) -> anyhow::Result<F::Output> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    Ok(rt.block_on(f))
}

/// The result of checking one projection.
struct Verdict {
    name: &'static str,
    position: u64,
    live: [u8; 32],
    rebuilt: [u8; 32],
}

/// Bring the stored projection up to the head (saving its checkpoint when writable), rebuild it from zero
/// in memory, and compare the two at the same position.
async fn verify_one<P: Projection>(
    log: &Arc<dyn EventLog>,
    writable: bool,
) -> anyhow::Result<Verdict> {
    let (live, position) = runner::catch_up::<P>(log).await?;
    if writable {
        let state = live.encode_state()?;
        log.save_checkpoint(
            P::NAME,
            strata_events::Checkpoint {
                version: P::VERSION,
                position,
                state,
            },
        )
        .await?;
    }
    let rebuilt: P = runner::rebuild(log, position).await?;
    Ok(Verdict {
        name: P::NAME,
        position,
        live: live.digest()?,
        rebuilt: rebuilt.digest()?,
    })
}

pub fn replay(data_dir: &Path, verify: bool) -> anyhow::Result<ExitCode> {
    let (log, writable) = open_log(data_dir)?;
    block_on(async move {
        let head = log.head().await?;
        // Every projection of the system is listed here.
        let verdicts = vec![
            verify_one::<IdentityView>(&log, writable).await?,
            verify_one::<ImageView>(&log, writable).await?,
            verify_one::<ComputeView>(&log, writable).await?,
            verify_one::<VolumeView>(&log, writable).await?,
            verify_one::<NetworkView>(&log, writable).await?,
            verify_one::<ObjectView>(&log, writable).await?,
            verify_one::<AuditIndex>(&log, writable).await?,
        ];
        let mut ok = true;
        println!(
            "log head: position {} hash {}",
            head.position,
            hex::encode(head.hash)
        );
        for v in &verdicts {
            let same = v.live == v.rebuilt;
            ok &= same;
            println!(
                "{:<12} position {:<10} live {}  rebuilt {}  {}",
                v.name,
                v.position,
                &hex::encode(v.live)[..16],
                &hex::encode(v.rebuilt)[..16],
                if same { "OK" } else { "MISMATCH" }
            );
        }
        if verify && !ok {
            eprintln!("replay --verify: some projections differ from a rebuild from position 0");
            return Ok(ExitCode::FAILURE);
        }
        Ok(ExitCode::SUCCESS)
    })?
}

pub fn log(cmd: LogCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        LogCommand::Verify {
            data_dir,
            from_position,
            from_hash,
        } => {
            let start = match (from_position, from_hash) {
                (Some(position), Some(h)) => {
                    let bytes = hex::decode(h.trim()).context("--from-hash is not hex")?;
                    let hash: [u8; 32] = bytes
                        .try_into()
                        .map_err(|_| anyhow::anyhow!("--from-hash must be 32 bytes"))?;
                    Head { position, hash }
                }
                _ => Head {
                    position: 0,
                    hash: GENESIS_HASH,
                },
            };
            let (log, _) = open_log(&data_dir)?;
            block_on(async move {
                match verify_log(log.as_ref(), start).await {
                    Ok((head, events)) => {
                        println!(
                            "{}",
                            json!({ "ok": true, "head_position": head.position, "head_hash": hex::encode(head.hash), "events": events })
                        );
                        Ok(ExitCode::SUCCESS)
                    }
                    Err(e) => {
                        println!(
                            "{}",
                            json!({ "ok": false, "broken_at": e.position, "reason": e.reason })
                        );
                        Ok(ExitCode::FAILURE)
                    }
                }
            })?
        }
        LogCommand::Dump {
            data_dir,
            json,
            from,
            limit,
        } => {
            let (log, _) = open_log(&data_dir)?;
            block_on(async move {
                let mut next = from.max(1);
                let mut left = limit.unwrap_or(usize::MAX);
                while left > 0 {
                    let batch = log.read_all(next, left.min(4096)).await?;
                    let Some(last) = batch.last() else { break };
                    next = last.position + 1;
                    left -= batch.len();
                    for e in &batch {
                        if json {
                            let payload =
                                match strata_proto::codec::event_json(&e.event_type, &e.payload) {
                                    Some(Ok(mut v)) => {
                                        redact(&mut v);
                                        v
                                    }
                                    Some(Err(err)) => json!({ "error": err.to_string() }),
                                    None => {
                                        json!({ "unknown_type": true, "bytes": e.payload.len() })
                                    }
                                };
                            println!(
                                "{}",
                                json!({
                                    "position": e.position,
                                    "event_id": e.id.to_string(),
                                    "stream_id": e.stream_id,
                                    "stream_version": e.stream_version,
                                    "event_type": e.event_type,
                                    "recorded_at": e.recorded_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                                    "correlation_id": e.correlation_id,
                                    "causation_id": e.causation_id,
                                    "principal": { "user_id": e.principal.user_id, "user_name": e.principal.user_name, "project_id": e.principal.project_id, "roles": e.principal.roles },
                                    "hash": hex::encode(e.hash),
                                    "payload": payload,
                                })
                            );
                        } else {
                            println!(
                                "{:>8}  {}  {:<40} v{:<4} {:<36} {}",
                                e.position,
                                e.recorded_at.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
                                e.stream_id,
                                e.stream_version,
                                e.event_type,
                                e.correlation_id
                            );
                        }
                    }
                }
                Ok(ExitCode::SUCCESS)
            })?
        }
    }
}

/// Secrets never leave through tools, even hashed.
fn redact(v: &mut serde_json::Value) {
    if let Some(o) = v.as_object_mut() {
        if o.contains_key("password_hash") {
            o.insert("password_hash".into(), json!("<redacted>"));
        }
    }
}
