//! The hash chain over the global order: `hash = SHA-256(prev_hash || envelope encoded with hash empty)`.

use prost::Message;
use sha2::{Digest, Sha256};
use strata_proto::envelope::EventEnvelope;

use crate::{Head, Position, RecordedEvent};

/// The `prev_hash` of the event at position 1.
pub const GENESIS_HASH: [u8; 32] = [0u8; 32];

/// Compute an envelope's hash; `env.hash` is ignored (treated as empty).
pub fn envelope_hash(env: &EventEnvelope) -> [u8; 32] {
    let mut unhashed = env.clone();
    unhashed.hash.clear();
    let mut h = Sha256::new();
    h.update(&env.prev_hash);
    h.update(unhashed.encode_to_vec());
    h.finalize().into()
}

/// The first broken link found by [`verify_chain`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("hash chain broken at position {position}: {reason}")]
pub struct ChainError {
    pub position: Position,
    pub reason: String,
}

/// Check that `events` continue the chain from `start` (position and hash of the event before the first one):
/// dense positions, each `prev_hash` equal to the previous hash, each hash recomputed from the bytes.
/// Returns the head reached.
pub fn verify_chain<'a>(
    start: Head,
    events: impl IntoIterator<Item = &'a RecordedEvent>,
) -> Result<Head, ChainError> {
    let mut head = start;
    for e in events {
        let fail = |reason: String| ChainError {
            position: e.position,
            reason,
        };
        if e.position != head.position + 1 {
            return Err(fail(format!(
                "expected position {}, found {}",
                head.position + 1,
                e.position
            )));
        }
        if e.prev_hash != head.hash {
            return Err(fail(format!(
                "prev_hash {} does not match hash {} of position {}",
                hex::encode(e.prev_hash),
                hex::encode(head.hash),
                head.position
            )));
        }
        let recomputed = envelope_hash(&e.to_envelope());
        if recomputed != e.hash {
            return Err(fail(format!(
                "stored hash {} but the content hashes to {}",
                hex::encode(e.hash),
                hex::encode(recomputed)
            )));
        }
        head = Head {
            position: e.position,
            hash: e.hash,
        };
    }
    Ok(head)
}

/// Check the whole log's chain from `start` (position 0 and [`GENESIS_HASH`] for all of it) to its head.
/// A stored event that cannot even be read counts as a broken link at the position being read.
pub async fn verify_log(log: &dyn crate::EventLog, start: Head) -> Result<(Head, u64), ChainError> {
    let mut head = start;
    let mut checked = 0u64;
    loop {
        let batch = match log.read_all(head.position + 1, 8192).await {
            Ok(batch) => batch,
            // Some event of the batch cannot be read: go one by one, checking the chain up to it, so the
            // report names that event's position (and a broken link before it comes first).
            Err(_) => loop {
                let one = log
                    .read_all(head.position + 1, 1)
                    .await
                    .map_err(|e| ChainError {
                        position: head.position + 1,
                        reason: format!("cannot read the stored event: {e}"),
                    })?;
                if one.is_empty() {
                    return Ok((head, checked));
                }
                checked += 1;
                head = verify_chain(head, &one)?;
            },
        };
        if batch.is_empty() {
            return Ok((head, checked));
        }
        checked += batch.len() as u64;
        head = verify_chain(head, &batch)?;
    }
}
