//! Turning accepted appends into sealed envelopes: ids, positions, times and the hash chain.
//! Used by every backend's single writer, so all of them produce identical records.

use chrono::{TimeZone, Utc};
use prost::Message;
use sha2::{Digest, Sha256};
use strata_proto::envelope::{self as pb, EventEnvelope};
use uuid::Uuid;

use crate::{Head, Metadata, NewEvent, Principal, RecordedEvent};

pub(crate) struct Sealer {
    pub head: Head,
    last_micros: i64,
}

/// One sealed event: the exact bytes to store, where it went, and (when asked for) the decoded record.
pub(crate) struct Sealed {
    pub bytes: Vec<u8>,
    pub position: u64,
    pub stream_version: u64,
    pub event: Option<RecordedEvent>,
}

/// Protobuf key of `EventEnvelope.hash` (field 12, length-delimited) followed by the length 32.
const HASH_FIELD_PREFIX: [u8; 2] = [(12 << 3) | 2, 32];

impl Sealer {
    pub fn new(head: Head, last_micros: i64) -> Self {
        Sealer { head, last_micros }
    }

    /// Seal `events` as versions `first_version..` of `stream`, continuing the chain from `self.head`.
    /// `keep` also returns each decoded record (the memory backend stores those).
    pub fn seal(
        &mut self,
        stream: &str,
        first_version: u64,
        events: Vec<NewEvent>,
        meta: &Metadata,
        keep: bool,
    ) -> Vec<Sealed> {
        let principal = pb::Principal {
            user_id: meta.principal.user_id.clone(),
            project_id: meta.principal.project_id.clone(),
            domain_id: meta.principal.domain_id.clone(),
            roles: meta.principal.roles.clone(),
            user_name: meta.principal.user_name.clone(),
        };
        let mut out = Vec::with_capacity(events.len());
        for (i, e) in events.into_iter().enumerate() {
            // Recorded times never go backwards along the log, even if the wall clock does.
            let now = Utc::now().timestamp_micros().max(self.last_micros);
            self.last_micros = now;
            let id = Uuid::now_v7();
            let position = self.head.position + 1;
            let stream_version = first_version + i as u64;
            let env = EventEnvelope {
                event_id: id
                    .hyphenated()
                    .encode_lower(&mut Uuid::encode_buffer())
                    .to_owned(),
                stream_id: stream.to_string(),
                stream_version,
                position,
                recorded_at_micros: now,
                event_type: e.event_type,
                payload: e.payload,
                correlation_id: meta.correlation_id.clone(),
                causation_id: meta.causation_id.clone(),
                principal: Some(principal.clone()),
                prev_hash: self.head.hash.to_vec(),
                hash: Vec::new(),
            };
            // prost writes fields in number order and `hash` (12) is the last one, so the stored encoding
            // is the unhashed encoding followed by the hash field: one encode, not two.
            let mut bytes = Vec::with_capacity(env.encoded_len() + 34);
            env.encode_raw(&mut bytes);
            let mut h = Sha256::new();
            h.update(self.head.hash);
            h.update(&bytes);
            let hash: [u8; 32] = h.finalize().into();
            bytes.extend_from_slice(&HASH_FIELD_PREFIX);
            bytes.extend_from_slice(&hash);
            let event = keep.then(|| RecordedEvent {
                id,
                stream_id: env.stream_id,
                stream_version,
                position,
                recorded_at: Utc.timestamp_micros(now).single().unwrap_or_default(),
                event_type: env.event_type,
                payload: env.payload,
                correlation_id: env.correlation_id,
                causation_id: env.causation_id,
                principal: Principal {
                    user_id: meta.principal.user_id.clone(),
                    user_name: meta.principal.user_name.clone(),
                    project_id: meta.principal.project_id.clone(),
                    domain_id: meta.principal.domain_id.clone(),
                    roles: meta.principal.roles.clone(),
                },
                prev_hash: self.head.hash,
                hash,
            });
            self.head = Head { position, hash };
            out.push(Sealed {
                bytes,
                position,
                stream_version,
                event,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::envelope_hash;

    #[test]
    fn single_encode_matches_prost_and_the_chain_rule() {
        let mut s = Sealer::new(
            Head {
                position: 0,
                hash: crate::GENESIS_HASH,
            },
            0,
        );
        let sealed = s.seal(
            "thing-1",
            1,
            vec![NewEvent::new("t.A.v1", b"x".to_vec())],
            &Metadata::system("r"),
            true,
        );
        let stored = &sealed[0];
        let env = EventEnvelope::decode(stored.bytes.as_slice()).unwrap();
        assert_eq!(
            env.encode_to_vec(),
            stored.bytes,
            "identical to prost's own encoding"
        );
        assert_eq!(env.hash, envelope_hash(&env).to_vec());
        assert_eq!(
            RecordedEvent::try_from(env).unwrap(),
            stored.event.clone().unwrap()
        );
    }
}
