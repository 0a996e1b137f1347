//! The SQLite store's writer: one thread owns the connection every write goes through
//! and commits the writes queued while it was busy in one transaction — one fsync for
//! all of them (group commit).
//!
//! Each write runs in a savepoint of the batch's transaction, so one that fails is
//! rolled back alone and the others still commit. A **durable** write is answered once
//! its batch committed (the ingest commit: a 2xx means the event is on disk, with
//! `synchronous=FULL`). An **early** write is answered as soon as it ran, before its
//! batch commits; the action worker uses them, so its writes for a whole round of events
//! share commits instead of waiting for one each. Early writes belong to the worker's
//! [`Session`]: if a batch holding one of them fails to commit, the session is poisoned
//! and every later write of it fails instead of running, so what the worker committed
//! is always a prefix of what it wrote — the same state a crash at that point leaves,
//! which the executor resumes from. Writes whose answer the worker does not need (an
//! action's outcome, closing an outbox row) are only queued ([`Writer::queue_early`]);
//! one that fails is logged and poisons the session the same way. [`Writer::settle`]
//! waits until every write queued so far has committed (and reports, then clears, a
//! poisoned session); reads that must see early writes call it first.

use crate::connection::{Cached, Handle, needs_reopen, store_error};
use inlet_core::store::StoreError;
use rusqlite::Connection;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Most writes committed together.
const MAX_BATCH: usize = 512;
/// How long a batch of only early writes waits for the next write, and how long such a
/// batch stays open at most (see [`write_batches`]).
const LINGER: Duration = Duration::from_micros(500);
const LINGER_CAP: Duration = Duration::from_millis(20);

/// A run of early writes whose committed part must stay a prefix (see the module docs).
#[derive(Clone, Default)]
pub(crate) struct Session(Arc<AtomicBool>);

impl Session {
    fn poison(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    fn poisoned(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

type WriteResult<T> = Result<T, StoreError>;

/// One queued write.
trait Job: Send {
    /// Runs inside the batch's transaction; `Err(reopen)` when it failed (its savepoint
    /// is rolled back), `reopen` when the connection should be opened again.
    fn run(&mut self, conn: &Connection) -> Result<(), bool>;
    /// Called once the batch's commit is known.
    fn finish(self: Box<Self>, commit: WriteResult<()>);
    /// Whether its sender waits for the commit (not an early write).
    fn durable(&self) -> bool;
}

struct Write<T, F> {
    work: Option<F>,
    outcome: Option<WriteResult<T>>,
    /// Where the outcome goes; a queued write has none and logs a failure instead,
    /// saying what it was doing.
    reply: Result<oneshot::Sender<WriteResult<T>>, &'static str>,
    answered: bool,
    /// For an early write: its session, and the count of early writes not yet settled.
    early: Option<(Session, Arc<AtomicUsize>)>,
}

impl<T, F> Job for Write<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
{
    fn run(&mut self, conn: &Connection) -> Result<(), bool> {
        if let Some((session, _)) = &self.early
            && session.poisoned()
        {
            if self.reply.is_err() {
                // Queued: the write that poisoned the session was logged already.
                self.answered = true;
            }
            self.answer(Err(StoreError::Unavailable(
                "an earlier write of this run was not committed; the run starts over".into(),
            )));
            return Err(false);
        }
        let work = self.work.take().expect("a job runs once");
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(conn)));
        let (outcome, failed) = match ran {
            Ok(Ok(value)) => (Ok(value), None),
            Ok(Err(e)) => {
                let reopen = needs_reopen(&e);
                (Err(store_error(e)), Some(reopen))
            }
            Err(_) => (
                Err(StoreError::Failed("a store write panicked".into())),
                Some(false),
            ),
        };
        if failed.is_some()
            && let Some((session, _)) = &self.early
        {
            session.poison();
        }
        if self.early.is_some() {
            self.answer(outcome);
        } else {
            self.outcome = Some(outcome);
        }
        match failed {
            None => Ok(()),
            Some(reopen) => Err(reopen),
        }
    }

    fn durable(&self) -> bool {
        self.early.is_none()
    }

    fn finish(mut self: Box<Self>, commit: WriteResult<()>) {
        if let Some((session, outstanding)) = self.early.take() {
            outstanding.fetch_sub(1, Ordering::SeqCst);
            if !self.answered {
                // It never ran (the batch could not begin, or its savepoint failed).
                session.poison();
                let error = commit
                    .err()
                    .unwrap_or_else(|| StoreError::Failed("a store write did not run".into()));
                self.answer(Err(error));
            } else if commit.is_err() {
                session.poison();
            }
            return;
        }
        let outcome = match (self.outcome.take(), commit) {
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (_, Err(e)) => Err(e),
            (None, Ok(())) => Err(StoreError::Failed("a store write did not run".into())),
        };
        self.answer(outcome);
    }
}

impl<T, F> Write<T, F> {
    fn answer(&mut self, outcome: WriteResult<T>) {
        if std::mem::replace(&mut self.answered, true) {
            return;
        }
        match std::mem::replace(&mut self.reply, Err("")) {
            Ok(reply) => {
                let _ = reply.send(outcome);
            }
            Err(doing) => {
                if let Err(error) = outcome {
                    tracing::warn!(%error, "{doing} failed; the action worker's later writes are dropped and it starts over from what was committed");
                }
            }
        }
    }
}

/// The handle the store keeps on its writer thread.
pub(crate) struct Writer {
    jobs: mpsc::Sender<Box<dyn Job>>,
    session: Mutex<Session>,
    outstanding: Arc<AtomicUsize>,
}

impl Writer {
    /// Starts the thread on `conn` (the store's write connection).
    pub(crate) fn start(conn: Connection, path: PathBuf, busy_timeout: Duration) -> Self {
        let (jobs, queue) = mpsc::channel::<Box<dyn Job>>();
        std::thread::Builder::new()
            .name("inlet-sqlite-writer".into())
            .spawn(move || write_batches(Handle::new(conn), &path, busy_timeout, queue))
            .expect("the writer thread starts");
        Writer {
            jobs,
            session: Mutex::default(),
            outstanding: Arc::default(),
        }
    }

    fn submit<T, F>(&self, work: F, early: bool) -> oneshot::Receiver<WriteResult<T>>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.enqueue(work, early, Ok(reply));
        answer
    }

    fn enqueue<T, F>(
        &self,
        work: F,
        early: bool,
        reply: Result<oneshot::Sender<WriteResult<T>>, &'static str>,
    ) where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let early = early.then(|| {
            self.outstanding.fetch_add(1, Ordering::SeqCst);
            let session = self.session.lock().expect("session lock").clone();
            (session, self.outstanding.clone())
        });
        let job = Box::new(Write {
            work: Some(work),
            outcome: None,
            reply,
            answered: false,
            early,
        });
        if let Err(mpsc::SendError(job)) = self.jobs.send(job) {
            job.finish(Err(StoreError::Unavailable(
                "the store's writer stopped".into(),
            )));
        }
    }

    async fn answer<T>(answer: oneshot::Receiver<WriteResult<T>>) -> WriteResult<T> {
        answer
            .await
            .unwrap_or_else(|_| Err(StoreError::Unavailable("the store's writer stopped".into())))
    }

    /// A write answered once its batch committed.
    pub(crate) async fn write<T, F>(&self, work: F) -> WriteResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        Self::answer(self.submit(work, false)).await
    }

    /// A write of the worker's session, answered once it ran (see the module docs).
    pub(crate) async fn write_early<T, F>(&self, work: F) -> WriteResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        Self::answer(self.submit(work, true)).await
    }

    /// An early write of the worker's session that is not waited for: it runs after
    /// everything queued before it, and if it fails (`doing` says what it was, in the
    /// log) the session is poisoned, so nothing the worker writes after it commits and
    /// the worker's next [`Writer::settle`] reports it. Saves the worker a hand-off to
    /// the writer thread and back for each write whose answer it does not need.
    pub(crate) fn queue_early<F>(&self, doing: &'static str, work: F)
    where
        F: FnOnce(&Connection) -> rusqlite::Result<()> + Send + 'static,
    {
        self.enqueue(work, true, Err(doing));
    }

    /// Waits until every write queued so far has committed or failed.
    pub(crate) async fn barrier(&self) {
        let _ = self.write(|_| Ok(())).await;
    }

    /// Whether early writes have not all committed yet.
    pub(crate) fn unsettled(&self) -> bool {
        self.outstanding.load(Ordering::SeqCst) > 0
    }

    /// Waits until every write queued so far has committed. If an early write was lost,
    /// starts a new session and says so.
    pub(crate) async fn settle(&self) -> WriteResult<()> {
        self.barrier().await;
        let mut session = self.session.lock().expect("session lock");
        if session.poisoned() {
            *session = Session::default();
            return Err(StoreError::Unavailable(
                "writes of the action worker were not committed; it starts over from the stored state".into(),
            ));
        }
        Ok(())
    }
}

/// The writer thread: takes what is queued, runs it in one transaction, commits once.
///
/// A batch of only early writes (the action worker's) is kept open a little while
/// ([`LINGER`], at most [`LINGER_CAP`] in all) for the worker's next write, which comes
/// as soon as the last one was answered: the writes of a whole round of events then
/// share one commit instead of paying an fsync each. A durable write ends the wait — it
/// joins the open transaction and the batch commits at once.
fn write_batches(
    mut handle: Handle,
    path: &std::path::Path,
    busy_timeout: Duration,
    queue: mpsc::Receiver<Box<dyn Job>>,
) {
    while let Ok(first) = queue.recv() {
        let mut batch: Vec<Box<dyn Job>> = Vec::new();
        let mut next = Some(first);
        let mut reopen = false;
        let conn = handle.ready(path, busy_timeout);
        let committed = match conn.exec("BEGIN IMMEDIATE", []) {
            Err(e) => {
                reopen = needs_reopen(&e);
                batch.extend(next.take());
                batch.extend(queue.try_iter().take(MAX_BATCH - 1));
                Err(store_error(e))
            }
            Ok(_) => {
                let opened = Instant::now();
                loop {
                    while let Some(mut job) = next.take() {
                        reopen |= run_in_savepoint(conn, job.as_mut());
                        batch.push(job);
                        if batch.len() < MAX_BATCH {
                            next = queue.try_recv().ok();
                        }
                    }
                    if batch.len() >= MAX_BATCH
                        || batch.iter().any(|job| job.durable())
                        || opened.elapsed() >= LINGER_CAP
                    {
                        break;
                    }
                    match queue.recv_timeout(LINGER) {
                        Ok(job) => next = Some(job),
                        Err(_) => break,
                    }
                }
                match conn.exec("COMMIT", []) {
                    Ok(_) => Ok(()),
                    Err(e) => {
                        reopen |= needs_reopen(&e);
                        let _ = conn.execute_batch("ROLLBACK");
                        Err(store_error(e))
                    }
                }
            }
        };
        if reopen {
            handle.mark_stale();
        }
        if let Err(error) = &committed {
            tracing::error!(%error, writes = batch.len(), "a batch of store writes did not commit");
        }
        for job in batch {
            job.finish(committed.clone());
        }
    }
}

/// Runs one job in its own savepoint of the open transaction, rolled back alone if it
/// fails. Returns whether the connection should be opened again.
fn run_in_savepoint(conn: &Connection, job: &mut dyn Job) -> bool {
    if conn.exec("SAVEPOINT job", []).is_err() {
        return false;
    }
    match job.run(conn) {
        Ok(()) => {
            let _ = conn.exec("RELEASE job", []);
            false
        }
        Err(stale) => {
            let _ = conn.exec("ROLLBACK TO job", []);
            let _ = conn.exec("RELEASE job", []);
            stale
        }
    }
}
