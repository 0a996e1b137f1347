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
//! which the executor resumes from. [`Writer::settle`] waits until every write queued so
//! far has committed (and reports, then clears, a poisoned session); reads that must see
//! early writes call it first.

use crate::sqlite::{Handle, needs_reopen, store_error};
use inlet_core::store::StoreError;
use rusqlite::Connection;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;
use tokio::sync::oneshot;

/// Most writes committed together.
const MAX_BATCH: usize = 512;

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
}

struct Write<T, F> {
    work: Option<F>,
    outcome: Option<WriteResult<T>>,
    reply: Option<oneshot::Sender<WriteResult<T>>>,
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

    fn finish(mut self: Box<Self>, commit: WriteResult<()>) {
        if let Some((session, outstanding)) = self.early.take() {
            outstanding.fetch_sub(1, Ordering::SeqCst);
            if self.reply.is_some() {
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
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(outcome);
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
        let early = early.then(|| {
            self.outstanding.fetch_add(1, Ordering::SeqCst);
            let session = self.session.lock().expect("session lock").clone();
            (session, self.outstanding.clone())
        });
        let job = Box::new(Write {
            work: Some(work),
            outcome: None,
            reply: Some(reply),
            early,
        });
        if let Err(mpsc::SendError(job)) = self.jobs.send(job) {
            job.finish(Err(StoreError::Unavailable(
                "the store's writer stopped".into(),
            )));
        }
        answer
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
fn write_batches(
    mut handle: Handle,
    path: &std::path::Path,
    busy_timeout: Duration,
    queue: mpsc::Receiver<Box<dyn Job>>,
) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut reopen = false;
        let committed = {
            let conn = handle.ready(path, busy_timeout);
            match conn.execute_batch("BEGIN IMMEDIATE") {
                Err(e) => {
                    reopen = needs_reopen(&e);
                    Err(store_error(e))
                }
                Ok(()) => {
                    for job in batch.iter_mut() {
                        if conn.execute_batch("SAVEPOINT job").is_err() {
                            continue;
                        }
                        match job.run(conn) {
                            Ok(()) => {
                                let _ = conn.execute_batch("RELEASE job");
                            }
                            Err(stale) => {
                                reopen |= stale;
                                let _ = conn.execute_batch("ROLLBACK TO job; RELEASE job");
                            }
                        }
                    }
                    match conn.execute_batch("COMMIT") {
                        Ok(()) => Ok(()),
                        Err(e) => {
                            reopen |= needs_reopen(&e);
                            let _ = conn.execute_batch("ROLLBACK");
                            Err(store_error(e))
                        }
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
