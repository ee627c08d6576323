//! The durable outbox: deliveries of `durable: true` webhooks live in the store until sent.
//!
//! An accepted event is written (group commit, [`batch`]) before the client hears `ok`; this
//! process then holds the row under a lease and makes the first attempt from the socket's
//! ordered queue. A failed attempt puts the row on the retry [`schedule`](crate::schedule); due
//! rows are claimed by any process's [`worker`] (`FOR UPDATE SKIP LOCKED` on Postgres). Leases
//! are renewed while held, so rows of a process that died are taken over once its lease runs
//! out. The byte [`budget`] refuses new events rather than letting a dead backend fill the disk,
//! and [`prune`] enforces retention.

pub mod batch;
pub mod budget;
pub mod prune;
pub mod worker;

use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use admin_api::Store;
use admin_api::model::{AttemptRecord, DeliveryStatus, Timestamp, Webhook, push_history};
use admin_api::store::Engine;
use admin_api::store::{DeliveryUpdate, MAX_BATCH_ROWS, OutboxRow};
use futures_util::FutureExt;
use futures_util::future::Shared;
use tokio::sync::{Mutex as AsyncMutex, mpsc, oneshot, watch};

use super::sender::{Attempt, Message};
use crate::config::OutboxConfig;
use crate::stats::Counters;
use batch::Weighed;
use budget::Budget;

/// New rows waiting for their insert; more are refused with `queue_full`. (Their bytes are
/// bounded by the budget; this bounds the count of small ones.)
const INSERT_QUEUE: usize = 65_536;
/// Outcomes waiting to be written; more are dropped (the row is sent again after its lease).
const COMPLETION_QUEUE: usize = 65_536;
/// Insert and outcome writers each, on Postgres.
const POSTGRES_WRITERS: usize = 3;

/// Why a durable event was not accepted; the client's ack carries the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The outbox is over its byte budget (per webhook or in total).
    #[error("outbox_full")]
    OutboxFull,
    /// The store could not be written.
    #[error("store_unavailable")]
    StoreUnavailable,
    /// Too many events are waiting to be written or sent.
    #[error("queue_full")]
    QueueFull,
}

impl Refused {
    /// Counts `n` refusals of this kind in `counters`, which keep no count of full queues.
    fn count(self, counters: &Counters, n: usize) {
        match self {
            Self::OutboxFull => counters.refused_outbox_full(n),
            Self::StoreUnavailable => counters.refused_store_unavailable(n),
            Self::QueueFull => {}
        }
    }

    /// The code clients see.
    pub fn code(self) -> &'static str {
        match self {
            Self::OutboxFull => "outbox_full",
            Self::StoreUnavailable => "store_unavailable",
            Self::QueueFull => "queue_full",
        }
    }
}

/// Resolves once the row is written (or refused); cheap to clone.
pub type Receipt = Shared<oneshot::Receiver<Result<(), Refused>>>;

/// Where a delivery stood before an attempt.
#[derive(Debug, Clone, Default)]
pub struct Prior {
    /// Attempts made.
    pub attempts: i64,
    /// Whether this attempt is a single manual one.
    pub manual: bool,
    /// Their history.
    pub history: Vec<AttemptRecord>,
}

struct PendingInsert {
    row: OutboxRow,
    done: oneshot::Sender<Result<(), Refused>>,
}

impl Weighed for PendingInsert {
    fn bytes(&self) -> usize {
        self.row.payload.len()
    }
}

impl Weighed for DeliveryUpdate {
    fn bytes(&self) -> usize {
        self.history.len() * 64
    }
}

/// The outbox of this process; shared by the dispatcher and the worker.
pub struct Outbox {
    store: Store,
    config: OutboxConfig,
    /// Lease owner of this process: unique per start, so a restarted node never renews rows it
    /// no longer holds in memory.
    owner: String,
    inserts: mpsc::Sender<PendingInsert>,
    completions: mpsc::Sender<DeliveryUpdate>,
    /// Writes queued or under way, so shutdown can wait for them.
    unwritten: AtomicUsize,
    /// Claimed rows the worker is sending.
    in_flight: AtomicUsize,
    /// Rows this process holds (queued, in flight, or waiting for their outcome to be written).
    held: Mutex<HashSet<String>>,
    /// When every held lease was last renewed (unix ms).
    renewed_at: AtomicI64,
    budget: Budget,
    counters: Arc<Counters>,
    stop: watch::Sender<bool>,
}

impl Outbox {
    /// An outbox on `store`, with its writers running.
    pub fn start(store: Store, config: OutboxConfig, counters: Arc<Counters>) -> Arc<Self> {
        let (inserts, insert_rx) = mpsc::channel(INSERT_QUEUE);
        let (completions, completion_rx) = mpsc::channel(COMPLETION_QUEUE);
        let outbox = Arc::new(Self {
            store,
            budget: Budget::new(config.webhook_bytes, config.total_bytes),
            config,
            owner: format!("node-{}", uuid::Uuid::new_v4().simple()),
            inserts,
            completions,
            unwritten: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            held: Mutex::new(HashSet::new()),
            renewed_at: AtomicI64::new(Timestamp::now().0),
            counters,
            stop: watch::channel(false).0,
        });
        // Postgres overlaps the commits of several connections; SQLite has one writer anyway.
        let writers = match outbox.store.engine() {
            Engine::Postgres => POSTGRES_WRITERS,
            Engine::Sqlite => 1,
        };
        let (insert_rx, completion_rx) = (
            Arc::new(AsyncMutex::new(insert_rx)),
            Arc::new(AsyncMutex::new(completion_rx)),
        );
        for _ in 0..writers {
            let weak = Arc::downgrade(&outbox);
            tokio::spawn(batch::run(
                insert_rx.clone(),
                MAX_BATCH_ROWS,
                move |batch| write_inserts(weak.clone(), batch),
            ));
            let weak = Arc::downgrade(&outbox);
            tokio::spawn(batch::run(
                completion_rx.clone(),
                MAX_BATCH_ROWS,
                move |batch| write_completions(weak.clone(), batch),
            ));
        }
        outbox
    }

    /// The store it writes to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Accepts `message` for a durable `webhook`: checks the budget and queues the insert.
    pub fn submit(
        &self,
        webhook: &Webhook,
        message: &Message,
        socket_id: Option<&str>,
        seq: Option<u64>,
    ) -> Result<Receipt, Refused> {
        let size = message.body.len() as u64;
        if !self.budget.try_reserve(&webhook.id, size) {
            return Err(self.refuse(Refused::OutboxFull));
        }
        let row = OutboxRow {
            id: message.id.clone(),
            webhook_id: webhook.id.clone(),
            event: message.event.clone(),
            payload: String::from_utf8_lossy(&message.body).into_owned(),
            socket_id: socket_id.map(str::to_owned),
            seq: seq.and_then(|seq| i64::try_from(seq).ok()),
            created_at: Timestamp::now().0,
        };
        let (done, receipt) = oneshot::channel();
        self.hold(&row.id);
        self.unwritten.fetch_add(1, Ordering::AcqRel);
        if let Err(err) = self.inserts.try_send(PendingInsert { row, done }) {
            self.unwritten.fetch_sub(1, Ordering::AcqRel);
            let pending = match err {
                mpsc::error::TrySendError::Full(p) | mpsc::error::TrySendError::Closed(p) => p,
            };
            self.let_go(&pending.row.id);
            return Err(self.refuse(Refused::QueueFull));
        }
        Ok(receipt.shared())
    }

    fn refuse(&self, why: Refused) -> Refused {
        why.count(&self.counters, 1);
        metrics::counter!(crate::metrics::OUTBOX_REFUSED, "reason" => why.code()).increment(1);
        why
    }

    /// Whether this process's leases are fresh enough to start an attempt of a held row.
    pub fn lease_valid(&self) -> bool {
        let age = Timestamp::now().0 - self.renewed_at.load(Ordering::Acquire);
        u128::try_from(age).unwrap_or(0) < self.config.lease.as_millis() / 2
    }

    /// Records an attempt's outcome: delivered, failed (final 4xx), on the schedule, or dead.
    pub fn complete(&self, id: &str, prior: Prior, attempt: &Attempt, record: AttemptRecord) {
        self.complete_all(vec![(id.to_owned(), prior)], attempt, record);
    }

    /// Records the outcome of one attempt that carried every row of `rows` (a batch): rows with
    /// as many attempts share the delay to their next one, so they stay due together.
    pub fn complete_all(
        &self,
        rows: Vec<(String, Prior)>,
        attempt: &Attempt,
        record: AttemptRecord,
    ) {
        let now = record.at.0;
        let mut delays: Vec<(i64, Option<Duration>)> = Vec::new();
        for (id, prior) in rows {
            let attempts = prior.attempts + 1;
            let delay = match attempt {
                Attempt::Retryable { retry_after, .. } if !prior.manual => {
                    match delays.iter().find(|(n, _)| *n == attempts) {
                        Some((_, delay)) => *delay,
                        None => {
                            let delay = self.config.schedule.next_delay(attempts, *retry_after);
                            delays.push((attempts, delay));
                            delay
                        }
                    }
                }
                _ => None,
            };
            let mut history = prior.history;
            push_history(&mut history, record.clone());
            let (status, next) = match attempt {
                Attempt::Success { .. } => (DeliveryStatus::Delivered, None),
                Attempt::Final { .. } => (DeliveryStatus::Failed, None),
                Attempt::Retryable { .. } => match delay {
                    Some(delay) => (DeliveryStatus::Pending, Some(now + millis(delay))),
                    None => (DeliveryStatus::Dead, None),
                },
            };
            let outcome = match status {
                DeliveryStatus::Pending => "retry",
                DeliveryStatus::Delivered => "delivered",
                DeliveryStatus::Failed => "failed",
                DeliveryStatus::Dead => "dead",
            };
            metrics::counter!(crate::metrics::OUTBOX_OUTCOMES, "outcome" => outcome).increment(1);
            if matches!(status, DeliveryStatus::Failed | DeliveryStatus::Dead) {
                self.counters.webhook_failed();
                tracing::warn!(%id, attempts, outcome, "durable delivery gave up");
            }
            self.write(DeliveryUpdate {
                id,
                status,
                attempts,
                next_attempt_at: next,
                history,
            });
        }
    }

    /// Puts a held row back, unchanged but due after `delay`, without an attempt.
    pub fn release(&self, id: &str, prior: Prior, delay: Duration) {
        self.write(DeliveryUpdate {
            id: id.to_owned(),
            status: DeliveryStatus::Pending,
            attempts: prior.attempts,
            next_attempt_at: Some(Timestamp::now().0 + millis(delay)),
            history: prior.history,
        });
    }

    fn write(&self, update: DeliveryUpdate) {
        let id = update.id.clone();
        self.unwritten.fetch_add(1, Ordering::AcqRel);
        if self.completions.try_send(update).is_err() {
            self.unwritten.fetch_sub(1, Ordering::AcqRel);
            tracing::warn!(%id, "outbox outcome queue full; the delivery will be sent again after its lease");
        }
        self.let_go(&id);
    }

    /// Stops holding a row: its lease runs out and any process's worker takes it.
    pub fn let_go(&self, id: &str) {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    fn hold(&self, id: &str) {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_owned());
    }

    fn held_ids(&self) -> Vec<String> {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// Stops the worker, waits up to `deadline` for the attempts it has in flight and for queued
    /// writes, then releases every row this process still holds so another process (or the next
    /// start) sends it.
    pub async fn shutdown(&self, deadline: Duration) {
        let _ = self.stop.send(true);
        let until = tokio::time::Instant::now() + deadline;
        let busy = || {
            self.in_flight.load(Ordering::Acquire) > 0 || self.unwritten.load(Ordering::Acquire) > 0
        };
        while busy() && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        match self.store.release_leases(&self.owner).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "released durable deliveries for another process"),
            Err(err) => {
                tracing::warn!(%err, "could not release durable deliveries; they are taken over when their lease ends")
            }
        }
    }

    fn lease_until(&self) -> i64 {
        Timestamp::now().0 + millis(self.config.lease)
    }
}

/// Sleeps for `d`; false once the outbox is shutting down.
async fn pause(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    let slept = tokio::select! {
        () = tokio::time::sleep(d) => true,
        _ = stop.wait_for(|s| *s) => false,
    };
    slept && !*stop.borrow()
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

async fn write_inserts(outbox: Weak<Outbox>, batch: Vec<PendingInsert>) {
    let Some(outbox) = outbox.upgrade() else {
        return;
    };
    let (rows, waiters): (Vec<_>, Vec<_>) = batch.into_iter().map(|p| (p.row, p.done)).unzip();
    let result = outbox
        .store
        .insert_outbox(&rows, &outbox.owner, outbox.lease_until())
        .await;
    let answer = match result {
        Ok(written) => {
            if written.len() < rows.len() {
                // Their webhook was deleted meanwhile: nothing to hold.
                let written: HashSet<&String> = written.iter().collect();
                for row in rows.iter().filter(|r| !written.contains(&r.id)) {
                    outbox.let_go(&row.id);
                }
            }
            Ok(())
        }
        Err(err) => {
            tracing::warn!(%err, rows = rows.len(), "cannot write durable deliveries; refusing them");
            for row in &rows {
                outbox.let_go(&row.id);
            }
            Refused::StoreUnavailable.count(&outbox.counters, rows.len());
            metrics::counter!(crate::metrics::OUTBOX_REFUSED, "reason" => Refused::StoreUnavailable.code())
                .increment(rows.len() as u64);
            Err(Refused::StoreUnavailable)
        }
    };
    for done in waiters {
        let _ = done.send(answer);
    }
    outbox.unwritten.fetch_sub(rows.len(), Ordering::AcqRel);
}

async fn write_completions(outbox: Weak<Outbox>, batch: Vec<DeliveryUpdate>) {
    let Some(outbox) = outbox.upgrade() else {
        return;
    };
    // Outcomes are small: keep trying while the store is away (the queue in front is bounded).
    let mut delay = Duration::from_millis(100);
    loop {
        match outbox
            .store
            .complete_deliveries(&batch, &outbox.owner, Timestamp::now().0)
            .await
        {
            Ok(_) => break,
            Err(err) => {
                tracing::warn!(%err, rows = batch.len(), "cannot record delivery outcomes; retrying");
                if *outbox.stop.borrow() {
                    break;
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
    outbox.unwritten.fetch_sub(batch.len(), Ordering::AcqRel);
}
