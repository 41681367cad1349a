//! The bounded inference pool: a fixed number of worker threads, off the
//! async runtime, share one [`Ager`] (loaded once) and take jobs from a
//! queue of bounded length.
//!
//! Admission is counted, not left to a channel's capacity: a job is let in
//! when fewer than `workers + queue` jobs are waiting or running, and its
//! place is given back *before* its result is sent, so a client that waits
//! for each answer before asking again never finds the pool full while
//! there are at most `workers + queue` such clients. Beyond that,
//! [`InferencePool::run`] fails at once with [`PoolError::Busy`] (the
//! server answers 503 with `Retry-After`): there is never an unbounded
//! backlog.
//!
//! Each job runs inside a rayon pool (the parallel CPU kernels run there,
//! see `agesynth_nn::runtime::run_on_pool`) and under `catch_unwind`: a
//! panic becomes [`PoolError::Panicked`] for that request, and the worker
//! lives on. A job whose requester has gone (timed out, disconnected) before
//! a worker reached it is dropped unrun.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agesynth_pipeline::Ager;
use serde::Serialize;

use crate::error::ServeError;

type Job = Box<dyn FnOnce(&Ager) + Send + 'static>;

/// Why a job did not give a result.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PoolError {
    /// `workers + queue` jobs are already in; try again after `retry_after`.
    #[error("every worker is busy and {queued} request(s) are queued (the limit)")]
    Busy {
        /// Jobs waiting (the queue limit).
        queued: usize,
        /// An estimate of when a place will be free.
        retry_after: Duration,
    },
    /// The job panicked (the message of the panic); the worker lives on.
    #[error("the job panicked: {0}")]
    Panicked(String),
    /// The pool is shutting down.
    #[error("the inference pool is shut down")]
    Closed,
}

/// Counters of the pool, as `GET /api/health` reports them.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct PoolStats {
    /// Worker threads (jobs that run at once).
    pub workers: usize,
    /// Jobs that may wait beyond those running.
    pub queue_limit: usize,
    /// Jobs waiting now.
    pub queued: usize,
    /// Jobs running now.
    pub running: usize,
    /// Jobs finished since start (including failed ones).
    pub completed: u64,
    /// Jobs refused because the queue was full.
    pub rejected: u64,
    /// Jobs dropped unrun because their requester had gone.
    pub abandoned: u64,
    /// Jobs that panicked.
    pub panicked: u64,
    /// Moving average of a job's run time, in milliseconds.
    pub mean_job_ms: f64,
}

struct Inner {
    ager: Arc<Ager>,
    workers: usize,
    queue: usize,
    /// Jobs waiting or running.
    admitted: AtomicUsize,
    running: AtomicUsize,
    completed: AtomicU64,
    rejected: AtomicU64,
    abandoned: AtomicU64,
    panicked: AtomicU64,
    /// Exponential moving average of a job's time, in microseconds.
    mean_us: AtomicU64,
}

impl Inner {
    fn release(&self) {
        self.admitted.fetch_sub(1, Ordering::AcqRel);
    }

    fn record(&self, took: Duration) {
        let us = took.as_micros().min(u64::MAX as u128) as u64;
        let old = self.mean_us.load(Ordering::Relaxed);
        let new = if old == 0 { us } else { (old * 7 + us) / 8 };
        self.mean_us.store(new, Ordering::Relaxed);
    }

    /// How long until a place is likely free: the queue's worth of jobs
    /// shared among the workers, at least a second.
    fn retry_after(&self) -> Duration {
        let job = Duration::from_micros(self.mean_us.load(Ordering::Relaxed));
        let rounds = (self.queue + self.workers).div_ceil(self.workers) as u32;
        let secs = (job * rounds).as_secs_f64().ceil();
        Duration::from_secs_f64(secs.clamp(1.0, 120.0))
    }
}

/// A fixed set of worker threads sharing one [`Ager`], with a bounded queue
/// (see the module docs).
pub struct InferencePool {
    inner: Arc<Inner>,
    tx: Sender<Job>,
}

impl std::fmt::Debug for InferencePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InferencePool")
            .field("stats", &self.stats())
            .finish()
    }
}

impl InferencePool {
    /// Starts `workers` threads (at least 1) sharing `ager`; up to `queue`
    /// jobs may wait beyond those running. The parallel kernels of every job
    /// run on one rayon pool of `threads` threads (0: rayon's default, one
    /// per core).
    pub fn new(
        ager: Arc<Ager>,
        workers: usize,
        queue: usize,
        threads: usize,
    ) -> Result<Self, ServeError> {
        if workers == 0 {
            return Err(ServeError::Config("at least one worker is needed".into()));
        }
        let rayon = Arc::new(
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .thread_name(|i| format!("agesynth-kernel-{i}"))
                .build()
                .map_err(|e| ServeError::Start {
                    what: "kernel thread pool",
                    source: std::io::Error::other(e.to_string()),
                })?,
        );
        let inner = Arc::new(Inner {
            ager,
            workers,
            queue,
            admitted: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            completed: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            abandoned: AtomicU64::new(0),
            panicked: AtomicU64::new(0),
            mean_us: AtomicU64::new(0),
        });
        let (tx, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..workers {
            let (inner, rx, rayon) = (inner.clone(), rx.clone(), rayon.clone());
            std::thread::Builder::new()
                .name(format!("agesynth-infer-{i}"))
                .spawn(move || worker(inner, rx, rayon))
                .map_err(|source| ServeError::Start {
                    what: "inference workers",
                    source,
                })?;
        }
        Ok(InferencePool { inner, tx })
    }

    /// The shared ager.
    pub fn ager(&self) -> &Arc<Ager> {
        &self.inner.ager
    }

    /// The pool's counters now.
    pub fn stats(&self) -> PoolStats {
        let i = &self.inner;
        let admitted = i.admitted.load(Ordering::Acquire);
        let running = i.running.load(Ordering::Acquire);
        PoolStats {
            workers: i.workers,
            queue_limit: i.queue,
            queued: admitted.saturating_sub(running),
            running,
            completed: i.completed.load(Ordering::Relaxed),
            rejected: i.rejected.load(Ordering::Relaxed),
            abandoned: i.abandoned.load(Ordering::Relaxed),
            panicked: i.panicked.load(Ordering::Relaxed),
            mean_job_ms: i.mean_us.load(Ordering::Relaxed) as f64 / 1000.0,
        }
    }

    /// Runs `f` with the shared ager on a worker and waits for its result;
    /// fails at once with [`PoolError::Busy`] when the queue is full. If the
    /// returned future is dropped before a worker reaches the job, the job
    /// is not run.
    pub async fn run<R, F>(&self, f: F) -> Result<R, PoolError>
    where
        R: Send + 'static,
        F: FnOnce(&Ager) -> R + Send + 'static,
    {
        let inner = &self.inner;
        let limit = inner.workers + inner.queue;
        if inner
            .admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_err()
        {
            inner.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(PoolError::Busy {
                queued: inner.queue,
                retry_after: inner.retry_after(),
            });
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        let shared = inner.clone();
        let job: Job = Box::new(move |ager: &Ager| {
            if reply.is_closed() {
                shared.abandoned.fetch_add(1, Ordering::Relaxed);
                shared.release();
                return;
            }
            shared.running.fetch_add(1, Ordering::AcqRel);
            let t0 = Instant::now();
            let out = catch_unwind(AssertUnwindSafe(|| f(ager))).map_err(|p| {
                shared.panicked.fetch_add(1, Ordering::Relaxed);
                panic_message(p.as_ref())
            });
            shared.record(t0.elapsed());
            shared.completed.fetch_add(1, Ordering::Relaxed);
            shared.running.fetch_sub(1, Ordering::AcqRel);
            // The place is free before the answer leaves.
            shared.release();
            let _ = reply.send(out);
        });
        if self.tx.send(job).is_err() {
            inner.release();
            return Err(PoolError::Closed);
        }
        match answer.await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(msg)) => Err(PoolError::Panicked(msg)),
            Err(_) => Err(PoolError::Closed),
        }
    }
}

fn worker(inner: Arc<Inner>, rx: Arc<Mutex<Receiver<Job>>>, rayon: Arc<rayon::ThreadPool>) {
    loop {
        let job = {
            let rx = rx.lock().unwrap_or_else(|p| p.into_inner());
            rx.recv()
        };
        let Ok(job) = job else {
            return; // the pool is gone
        };
        // The job catches its own panics; this one only guards the
        // bookkeeping around it.
        let ager = inner.ager.clone();
        let _ = catch_unwind(AssertUnwindSafe(|| rayon.install(|| job(&ager))));
    }
}

/// The text of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}
