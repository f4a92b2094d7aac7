//! The reconciler: the one loop that turns log events into work, used by every agent that acts on what the
//! log says (the conductor and compute agents, the volume service, the network datapath, and whatever
//! follows the log later).
//!
//! It follows the log with [`strata_events::follow`] (so a read error is retried from the next position with
//! backoff and reported, never the end of the agent), asks the [`Reconcile`] implementation which key each
//! event wakes, and runs `reconcile(key)` for each woken key on the agent's runtime:
//! - one run per key at a time; a wake while the key runs makes it run once more afterwards (coalescing:
//!   ten events for one server during a step mean one more run, not ten);
//! - before each run it waits (bounded, by the implementation) until what the agent reads has the position
//!   of the latest event that woke the key, so a run never acts on a view older than its wake.
//!
//! A run reads the current state itself (the aggregate, a snapshot of a view): it is told only *which* key
//! may need work, never *what* happened, so a missed or repeated wake costs nothing but a run.

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use parking_lot::Mutex;
use strata_events::{EventLog, Position, RecordedEvent};

/// What a log-following agent does.
#[async_trait::async_trait]
pub trait Reconcile: Send + Sync + 'static {
    /// The key an event wakes (`None`: the event is not this agent's business). Called for every event in
    /// log order, on the follower's task: keep it cheap and never block.
    fn wakes(&self, event: &RecordedEvent) -> Option<String>;

    /// Return once what `reconcile` reads has reached `position` (or after a bounded wait).
    async fn caught_up(&self, position: Position);

    /// Bring `key` to where the log says it should be.
    async fn reconcile(&self, key: &str);
}

/// Keys with a run in progress, each with the position of a wake that came during the run (`Some`: run
/// again once caught up to it).
type Inflight = Mutex<HashMap<String, Option<Position>>>;

pub struct Reconciler<R: Reconcile> {
    agent: Arc<R>,
    inflight: Inflight,
    rt: tokio::runtime::Handle,
}

impl<R: Reconcile> Reconciler<R> {
    /// Follow the log from `from` on runtime `rt`, waking `agent`'s keys. `name` names the follower in logs,
    /// `/metrics` and `/healthcheck`.
    pub fn start(
        name: &str,
        log: Arc<dyn EventLog>,
        from: Position,
        agent: Arc<R>,
        rt: tokio::runtime::Handle,
    ) -> Arc<Self> {
        let me = Arc::new(Reconciler {
            agent,
            inflight: Mutex::new(HashMap::new()),
            rt: rt.clone(),
        });
        let follower = me.clone();
        let mut events = strata_events::follow(log, from, name);
        rt.spawn(async move {
            while let Some(e) = events.next().await {
                if let Some(key) = follower.agent.wakes(&e) {
                    follower.wake(key, e.position);
                }
            }
        });
        me
    }

    /// Run `key` once caught up to `position` (also used at start for work a restart left in progress).
    pub fn wake(self: &Arc<Self>, key: String, position: Position) {
        {
            let mut inflight = self.inflight.lock();
            if let Some(again) = inflight.get_mut(&key) {
                *again = Some(again.map_or(position, |p| p.max(position)));
                return;
            }
            inflight.insert(key.clone(), None);
        }
        let me = self.clone();
        self.rt.spawn(async move {
            let mut wait_for = position;
            loop {
                me.agent.caught_up(wait_for).await;
                me.agent.reconcile(&key).await;
                let mut inflight = me.inflight.lock();
                match inflight.get_mut(&key) {
                    Some(again @ Some(_)) => {
                        wait_for = again.take().unwrap_or(wait_for);
                    }
                    _ => {
                        inflight.remove(&key);
                        break;
                    }
                }
            }
        });
    }

    /// Keys with a run in progress (for tests and diagnostics).
    pub fn busy(&self) -> usize {
        self.inflight.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use strata_events::fault::FaultyLog;
    use strata_events::{ExpectedVersion, MemoryLog, Metadata, NewEvent};

    /// Counts runs per key; each run takes a while, so wakes pile up during it.
    #[derive(Default)]
    struct Counter {
        runs: Mutex<HashMap<String, u32>>,
        concurrent: Mutex<HashMap<String, u32>>,
    }

    #[async_trait::async_trait]
    impl Reconcile for Counter {
        fn wakes(&self, event: &RecordedEvent) -> Option<String> {
            event.stream_id.strip_prefix("thing-").map(str::to_string)
        }
        async fn caught_up(&self, _position: Position) {}
        async fn reconcile(&self, key: &str) {
            {
                let mut c = self.concurrent.lock();
                let n = c.entry(key.to_string()).or_default();
                *n += 1;
                assert_eq!(*n, 1, "two runs of one key at once");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            *self.concurrent.lock().entry(key.to_string()).or_default() -= 1;
            *self.runs.lock().entry(key.to_string()).or_default() += 1;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wakes_coalesce_per_key_and_read_errors_do_not_stop_the_agent() {
        let memory: Arc<dyn EventLog> = Arc::new(MemoryLog::new());
        let faulty = Arc::new(FaultyLog::new(memory.clone()));
        faulty.fail_reads_every(2);
        let agent = Arc::new(Counter::default());
        let reconciler = Reconciler::start(
            "test-reconciler",
            faulty.clone(),
            1,
            agent.clone(),
            tokio::runtime::Handle::current(),
        );
        for v in 0..20u64 {
            for key in ["a", "b"] {
                memory
                    .append(
                        &format!("thing-{key}"),
                        ExpectedVersion::Exact(v),
                        vec![NewEvent::new("test.Changed.v1", vec![])],
                        Metadata::system("test"),
                    )
                    .await
                    .expect("append");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // Every event reaches the agent despite the failed reads, and every woken key runs after it.
        let status = strata_events::follower_status("test-reconciler");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while (status.position() < 40 || reconciler.busy() > 0)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let runs = agent.runs.lock().clone();
        for key in ["a", "b"] {
            let n = runs.get(key).copied().unwrap_or(0);
            assert!(n >= 1, "{key} never ran");
            assert!(n < 20, "{key} ran {n} times: wakes did not coalesce");
        }
        assert!(faulty.injected() > 0);
        assert!(status.errors() > 0);
        assert_eq!(status.position(), 40);
    }
}
