//! Scripts off the async threads: a bounded set of blocking threads with a bounded
//! queue, for servers that serve many requests at once (`inlet dev`).
//!
//! A script runs for up to its wall-time budget without yielding, so run on an async
//! worker thread it would hold up every other request on that thread (`/healthz`
//! included). The pipeline first runs each script on the serving thread for a slice of
//! a millisecond (nearly all finish in microseconds, with no thread hand-off), and only
//! one that needs longer runs again here. The pool runs at most `threads` scripts at
//! once on tokio's blocking threads; up to `max_waiting` more wait their turn, and a request beyond that is
//! answered 503 `busy` at once rather than queued without bound. The ingest Lambda
//! function runs scripts inline: an execution environment serves one request at a time,
//! so a slow script only ever holds up its own request.

use super::{CompiledScript, ScriptEngine, ScriptInput, ScriptOutput, ScriptRunError};
use crate::vars::Vars;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::Semaphore;

pub struct ScriptPool {
    engine: Arc<ScriptEngine>,
    running: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_waiting: usize,
}

/// Every thread is busy and the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("every script thread is busy and {0} scripts are waiting")]
pub struct PoolFull(pub usize);

/// A script run's input, owned, so it can move to another thread.
pub struct OwnedScriptInput {
    pub vars: Arc<Vars>,
    pub body: Arc<Value>,
    pub raw_body: String,
    pub headers: Arc<Value>,
    pub query: Arc<Value>,
    pub method: String,
    pub received_at: i64,
    pub now_ms: i64,
}

impl ScriptPool {
    pub fn new(engine: Arc<ScriptEngine>, threads: usize, max_waiting: usize) -> Self {
        ScriptPool {
            engine,
            running: Arc::new(Semaphore::new(threads.max(1))),
            waiting: AtomicUsize::new(0),
            max_waiting,
        }
    }

    /// A pool with one thread per core and room for 64 waiting scripts.
    pub fn for_this_machine(engine: Arc<ScriptEngine>) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self::new(engine, cores, 64)
    }

    /// Runs `script` on a pool thread; hands the raw body back with the outcome.
    pub async fn run(
        &self,
        script: Arc<CompiledScript>,
        input: OwnedScriptInput,
    ) -> Result<(Result<ScriptOutput, ScriptRunError>, String), PoolFull> {
        let waiting = self.waiting.fetch_add(1, Ordering::SeqCst);
        if waiting >= self.max_waiting + self.running.available_permits() {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(PoolFull(waiting));
        }
        let permit = self.running.clone().acquire_owned().await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        let permit = permit.expect("the pool's semaphore is never closed");
        let engine = self.engine.clone();
        let ran = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let outcome = engine.run(
                &script,
                ScriptInput {
                    vars: input.vars,
                    body: input.body,
                    raw_body: &input.raw_body,
                    headers: input.headers,
                    query: input.query,
                    method: &input.method,
                    received_at: input.received_at,
                    now_ms: input.now_ms,
                },
            );
            (outcome, input.raw_body)
        })
        .await;
        match ran {
            Ok(done) => Ok(done),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // The runtime is shutting down.
            Err(_) => Err(PoolFull(0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::ScriptLimits;
    use std::time::Duration;

    fn input() -> OwnedScriptInput {
        OwnedScriptInput {
            vars: Arc::new(Vars::default()),
            body: Arc::new(serde_json::json!({})),
            raw_body: "{}".into(),
            headers: Arc::new(serde_json::json!({})),
            query: Arc::new(serde_json::json!({})),
            method: "POST".into(),
            received_at: 0,
            now_ms: 0,
        }
    }

    /// With every thread busy and the queue full, a run is refused at once; the raw
    /// body comes back with every outcome.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_pool_refuses_at_once() {
        let engine = Arc::new(ScriptEngine::new(ScriptLimits {
            wall_time: Duration::from_millis(500),
            max_operations: 0,
            ..ScriptLimits::default()
        }));
        let slow = engine.compile("slow", "fn main(ctx) { loop {} }").unwrap();
        let quick = engine
            .compile("quick", "fn main(ctx) { #{ verified: true } }")
            .unwrap();
        let pool = Arc::new(ScriptPool::new(engine, 1, 0));
        let running = {
            let (pool, slow) = (pool.clone(), slow.clone());
            tokio::spawn(async move { pool.run(slow, input()).await })
        };
        // Running, and no longer counted as waiting (it takes its permit, then leaves
        // the queue: on another thread, between the two, it is still counted).
        while pool.running.available_permits() > 0 || pool.waiting.load(Ordering::SeqCst) > 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            pool.run(quick.clone(), input()).await.unwrap_err(),
            PoolFull(0)
        );
        let (outcome, raw_body) = running.await.unwrap().unwrap();
        assert!(outcome.unwrap_err().message.contains("wall time"));
        assert_eq!(raw_body, "{}");
        let (outcome, _) = pool.run(quick, input()).await.unwrap();
        assert_eq!(outcome.unwrap().verified, Some(true));
    }
}
