//! Turning accepted appends into sealed envelopes: ids, positions, times and the hash chain.
//! Used by every backend's single writer, so all of them produce identical records.

use chrono::Utc;
use prost::Message;
use sha2::{Digest, Sha256};
use strata_proto::envelope::{self as pb, EventEnvelope};
use uuid::Uuid;

use crate::{Head, Metadata, NewEvent, RecordedEvent};

pub(crate) struct Sealer {
    pub head: Head,
    last_micros: i64,
}

/// One sealed event: the exact bytes to store and the decoded record.
pub(crate) struct Sealed {
    pub bytes: Vec<u8>,
    pub event: RecordedEvent,
}

impl Sealer {
    pub fn new(head: Head, last_micros: i64) -> Self {
        Sealer { head, last_micros }
    }

    /// Seal `events` as versions `first_version..` of `stream`, continuing the chain from `self.head`.
    pub fn seal(&mut self, stream: &str, first_version: u64, events: Vec<NewEvent>, meta: &Metadata) -> Vec<Sealed> {
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
            let mut env = EventEnvelope {
                event_id: Uuid::now_v7().to_string(),
                stream_id: stream.to_string(),
                stream_version: first_version + i as u64,
                position: self.head.position + 1,
                recorded_at_micros: now,
                event_type: e.event_type,
                payload: e.payload,
                correlation_id: meta.correlation_id.clone(),
                causation_id: meta.causation_id.clone(),
                principal: Some(principal.clone()),
                prev_hash: self.head.hash.to_vec(),
                hash: Vec::new(),
            };
            let unhashed = env.encode_to_vec();
            let mut h = Sha256::new();
            h.update(self.head.hash);
            h.update(&unhashed);
            let hash: [u8; 32] = h.finalize().into();
            env.hash = hash.to_vec();
            let bytes = env.encode_to_vec();
            self.head = Head { position: env.position, hash };
            // The envelope was built from valid parts just above, so conversion cannot fail.
            let event = match RecordedEvent::try_from(env) {
                Ok(ev) => ev,
                Err(err) => unreachable!("freshly sealed envelope failed to convert: {err}"),
            };
            out.push(Sealed { bytes, event });
        }
        out
    }
}
