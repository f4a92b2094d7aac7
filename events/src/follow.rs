//! Following the log for as long as the process runs.
//!
//! [`subscribe_all`] ends at the first read error. Every long-lived follower (projections, the conductor, the
//! volume service, the network datapath, anything later) instead uses [`follow`]: on an error it records it,
//! waits (exponential backoff, 50 ms doubling up to 5 s), and subscribes again from the position after the
//! last event it delivered, so no event is skipped or repeated. It ends only when the log itself has closed
//! (the process is shutting down).
//!
//! Each follower reports its state in a [`FollowerStatus`], registered by name in a process-wide registry
//! ([`followers`]) that the HTTP layer serves as `/metrics` and `/healthcheck`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::{Stream, StreamExt};
use parking_lot::Mutex;

use crate::{subscribe_all, EventLog, EventStream, LogError, Position, RecordedEvent};

/// First wait after an error; doubled after every further error, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What one log follower is doing, for operators.
#[derive(Debug)]
pub struct FollowerStatus {
    name: String,
    /// The last position delivered.
    position: AtomicU64,
    /// Read errors seen.
    errors: AtomicU64,
    /// Times it subscribed again after an error.
    resumes: AtomicU64,
    /// False between an error and the next successful read.
    healthy: AtomicBool,
    last_error: Mutex<String>,
}

impl FollowerStatus {
    fn new(name: &str) -> Self {
        FollowerStatus {
            name: name.to_string(),
            position: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            resumes: AtomicU64::new(0),
            healthy: AtomicBool::new(true),
            last_error: Mutex::new(String::new()),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn position(&self) -> Position {
        self.position.load(Ordering::Relaxed)
    }

    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    pub fn resumes(&self) -> u64 {
        self.resumes.load(Ordering::Relaxed)
    }

    /// Following the log (false while it waits to resume after an error).
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// The last read error ("" when none).
    pub fn last_error(&self) -> String {
        self.last_error.lock().clone()
    }
}

fn registry() -> &'static Mutex<BTreeMap<String, Arc<FollowerStatus>>> {
    static REGISTRY: OnceLock<Mutex<BTreeMap<String, Arc<FollowerStatus>>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// The status of follower `name`, registered on first use (a second follower of the same name shares it).
pub fn follower_status(name: &str) -> Arc<FollowerStatus> {
    registry()
        .lock()
        .entry(name.to_string())
        .or_insert_with(|| Arc::new(FollowerStatus::new(name)))
        .clone()
}

/// Every registered follower, by name.
pub fn followers() -> Vec<Arc<FollowerStatus>> {
    registry().lock().values().cloned().collect()
}

struct State {
    log: Arc<dyn EventLog>,
    next: Position,
    inner: Option<EventStream>,
    backoff: Duration,
    status: Arc<FollowerStatus>,
}

/// Every event with position >= `from`, in order, for as long as the log is open: catch-up, then live, like
/// [`subscribe_all`], but a read error never ends it (see the module docs). `name` identifies the follower
/// in logs, `/metrics` and `/healthcheck`.
pub fn follow(
    log: Arc<dyn EventLog>,
    from: Position,
    name: &str,
) -> impl Stream<Item = RecordedEvent> + Send + Unpin + 'static {
    let state = State {
        log,
        next: from.max(1),
        inner: None,
        backoff: FIRST_BACKOFF,
        status: follower_status(name),
    };
    Box::pin(futures::stream::unfold(state, |mut st| async move {
        loop {
            let inner = st
                .inner
                .get_or_insert_with(|| subscribe_all(st.log.clone(), st.next));
            match inner.next().await {
                Some(Ok(e)) => {
                    st.next = e.position + 1;
                    st.status.position.store(e.position, Ordering::Relaxed);
                    if !st.status.healthy.swap(true, Ordering::Relaxed) {
                        tracing::info!(
                            follower = %st.status.name,
                            position = e.position,
                            "following the log again"
                        );
                    }
                    st.backoff = FIRST_BACKOFF;
                    return Some((e, st));
                }
                Some(Err(LogError::Closed)) | None => {
                    tracing::info!(follower = %st.status.name, "the log closed; the follower stops");
                    return None;
                }
                Some(Err(err)) => {
                    st.inner = None;
                    st.status.errors.fetch_add(1, Ordering::Relaxed);
                    st.status.healthy.store(false, Ordering::Relaxed);
                    *st.status.last_error.lock() = err.to_string();
                    tracing::warn!(
                        follower = %st.status.name,
                        error = %err,
                        resume_at = st.next,
                        retry_in_ms = st.backoff.as_millis() as u64,
                        "reading the log failed; resuming after a pause"
                    );
                    tokio::time::sleep(st.backoff).await;
                    st.backoff = (st.backoff * 2).min(MAX_BACKOFF);
                    st.status.resumes.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::FaultyLog;
    use crate::{ExpectedVersion, MemoryLog, Metadata, NewEvent};

    async fn append(log: &dyn EventLog, batch: &str, n: u64) {
        for i in 0..n {
            log.append(
                &format!("s-{batch}{i}"),
                ExpectedVersion::Exact(0),
                vec![NewEvent::new("test.Happened.v1", vec![i as u8])],
                Metadata::system("test"),
            )
            .await
            .expect("append");
        }
    }

    #[tokio::test]
    async fn read_errors_are_retried_from_the_next_position_without_gaps_or_duplicates() {
        let memory: Arc<dyn EventLog> = Arc::new(MemoryLog::new());
        append(memory.as_ref(), "a", 50).await;
        let faulty = Arc::new(FaultyLog::new(memory.clone()));
        // Every second read fails, from the start.
        faulty.fail_reads_every(2);
        let log: Arc<dyn EventLog> = faulty.clone();
        let mut events = follow(log, 1, "test-follow-retries");
        let mut seen = Vec::new();
        while seen.len() < 50 {
            let e = tokio::time::timeout(Duration::from_secs(10), events.next())
                .await
                .expect("the follower keeps going")
                .expect("the log stays open");
            seen.push(e.position);
        }
        // Live events after errors too.
        append(memory.as_ref(), "b", 5).await;
        while seen.len() < 55 {
            let e = tokio::time::timeout(Duration::from_secs(10), events.next())
                .await
                .expect("live events arrive")
                .expect("open");
            seen.push(e.position);
        }
        assert_eq!(seen, (1..=55).collect::<Vec<_>>());
        let status = follower_status("test-follow-retries");
        assert!(status.errors() > 0, "faults were injected");
        assert_eq!(status.resumes(), status.errors());
        assert_eq!(status.position(), 55);
        assert!(status.healthy());
        assert!(status.last_error().contains("injected"));
        assert!(faulty.injected() > 0);
    }
}
