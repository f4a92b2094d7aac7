//! What the projections' tests share: appending events to an in-memory log as a service would.

use strata_events::{EventLog, ExpectedVersion, Metadata, NewEvent};
use strata_proto::codec::DomainEvent;

/// Append `e` to `stream`, whatever the stream's version.
pub(crate) async fn put<E: DomainEvent>(log: &dyn EventLog, stream: &str, e: E) {
    put_raw(log, stream, e.event_type(), e.encode()).await;
}

/// Append an event of `event_type` with `payload` as it is (an undecodable or foreign event).
pub(crate) async fn put_raw(log: &dyn EventLog, stream: &str, event_type: &str, payload: Vec<u8>) {
    log.append(
        stream,
        ExpectedVersion::Any,
        vec![NewEvent::new(event_type, payload)],
        Metadata::system("t"),
    )
    .await
    .expect("the in-memory log appends");
}
