//! The log contract, run against the in-memory backend.
use std::sync::Arc;
use strata_events::{EventLog, MemoryLog};

fn fresh() -> (Arc<dyn EventLog>, ()) {
    (Arc::new(MemoryLog::new()), ())
}

strata_events::log_contract_tests!(fresh());
