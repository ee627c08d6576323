//! Delivery scheduling: one ordered queue per socket and webhook, a concurrency limit per
//! endpoint, retries with backoff, and a record of what failed for good.
//!
//! A durable job (its row already queued for the store) waits for its receipt, then makes one
//! attempt from the queue; what follows a failure is the outbox's schedule, not this loop.
//!
//! Each (socket, webhook) pair has its own bounded queue and worker, so a slow or dead endpoint
//! holds up only its own queue: other endpoints and the sockets go on. A full queue drops the
//! new message (counted in `bridge_webhook_dropped_total` and logged) instead of blocking.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use admin_api::model::{AttemptRecord, DeliveryStatus, Timestamp, Webhook};
use admin_api::store::NewDelivery;
use bytes::Bytes;
use tokio::sync::{Semaphore, mpsc};

use super::batcher::Batchers;
use super::outbox::{Outbox, Prior, Receipt, Refused};
use super::queue_budget::{Charge, QueueBudget};
use super::sender::{Attempt, Message, Sender, loggable_url};
use crate::stats::Counters;

/// Messages waiting per (socket, webhook) before new ones are dropped.
pub const QUEUE_CAPACITY: usize = 1024;
/// Largest body kept in the failure log of non-durable webhooks; larger ones are recorded
/// without it.
pub const FAILURE_PAYLOAD_LIMIT: usize = 64 * 1024;
/// Attempts of a retried (non-reply) delivery.
const MAX_ATTEMPTS: u32 = 5;
/// First retry delay; doubled each time, with jitter.
const BASE_DELAY: Duration = Duration::from_millis(500);
/// Longest delay between two attempts.
const MAX_DELAY: Duration = Duration::from_secs(30);

/// Whether a failed attempt is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Retry on network errors, timeouts, 408, 429 and 5xx.
    Retry,
    /// One attempt: a client waits on its acknowledgement.
    Once,
}

/// How a delivery ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// A 2xx answer, with its body.
    Delivered(Bytes),
    /// Failed for good; the last status when one came back.
    Failed(Option<u16>),
    /// Never sent: the outbox did not accept it.
    Refused(Refused),
}

/// Called with the outcome, in queue order.
pub type OnDone = Box<dyn FnOnce(Outcome) + Send + Sync>;

/// One message for one webhook.
pub struct Job {
    /// The webhook, as the catalog had it when the event arrived.
    pub webhook: Arc<Webhook>,
    /// The message.
    pub message: Message,
    /// Retry or not.
    pub mode: Mode,
    /// What to do with the answer.
    pub on_done: Option<OnDone>,
    /// For a durable webhook: resolves once its row is written.
    pub durable: Option<Receipt>,
}

/// Sends jobs; shared by every socket.
pub struct Dispatcher {
    sender: Sender,
    limits: Mutex<HashMap<String, Arc<Semaphore>>>,
    concurrency: usize,
    counters: Arc<Counters>,
    /// Jobs queued or in flight, so that shutdown can wait for them.
    pub(super) outstanding: AtomicUsize,
    /// The durable outbox.
    pub outbox: Arc<Outbox>,
    /// Bytes queued in memory.
    budget: Arc<QueueBudget>,
    /// The queues of batched webhooks.
    batchers: Batchers,
}

impl Dispatcher {
    /// A dispatcher allowing `concurrency` requests in flight per webhook.
    pub fn new(
        outbox: Arc<Outbox>,
        counters: Arc<Counters>,
        concurrency: usize,
        sender: Sender,
        budget: Arc<QueueBudget>,
    ) -> Self {
        Self {
            sender,
            budget,
            limits: Mutex::new(HashMap::new()),
            concurrency: concurrency.max(1),
            counters,
            outstanding: AtomicUsize::new(0),
            outbox,
            batchers: Batchers::default(),
        }
    }

    /// Waits until every queued delivery has finished, or `deadline` has passed; returns how
    /// many were still outstanding.
    pub async fn drain(&self, deadline: Duration) -> usize {
        let until = tokio::time::Instant::now() + deadline;
        // Disconnect handlers run in tasks socketioxide spawns: let the last ones enqueue.
        tokio::time::sleep(Duration::from_millis(100)).await;
        loop {
            let left = self.outstanding.load(Ordering::Acquire);
            if left == 0 || tokio::time::Instant::now() >= until {
                return left;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Queues `job` in `queues` behind the earlier messages to the same webhook; a durable
    /// webhook's row is handed to the outbox first (recorded with `socket_id` and `seq`).
    /// Returns the receipt of a durable job; a refusal has already been passed to the job's
    /// `on_done`.
    pub fn submit(
        self: &Arc<Self>,
        queues: &SocketQueues,
        mut job: Job,
        socket_id: Option<&str>,
        seq: Option<u64>,
    ) -> Result<Option<Receipt>, Refused> {
        let refuse = |mut job: Job, why: Refused| {
            if let Some(on_done) = job.on_done.take() {
                on_done(Outcome::Refused(why));
            }
            Err(why)
        };
        let batched = is_batched(&job.webhook);
        let has_room = if batched {
            self.batchers.has_room(&job, queues.lane())
        } else {
            queues.has_room(&job.webhook.id)
        };
        if !has_room {
            metrics::counter!(crate::metrics::WEBHOOK_DROPPED, "reason" => "queue_full")
                .increment(1);
            return refuse(job, Refused::QueueFull);
        }
        if job.webhook.durable {
            match self
                .outbox
                .submit(&job.webhook, &job.message, socket_id, seq)
            {
                Ok(receipt) => job.durable = Some(receipt),
                Err(why) => return refuse(job, why),
            }
        }
        let receipt = job.durable.clone();
        let queued = if batched {
            self.batchers.enqueue(self, job, queues.lane())
        } else {
            queues.enqueue(self, job)
        };
        if let Err(mut dropped) = queued {
            if receipt.is_some() {
                // Written anyway: the outbox worker sends it once this process lets go of it.
                self.outbox.let_go(&dropped.message.id);
                return Ok(receipt);
            }
            if let Some(on_done) = dropped.on_done.take() {
                on_done(Outcome::Refused(Refused::QueueFull));
            }
            return Err(Refused::QueueFull);
        }
        Ok(receipt)
    }

    /// Sends `job` now (waiting for its outcome), outside any queue: for `$connect` gates.
    pub async fn deliver(&self, job: &Job) -> Outcome {
        if let Some(receipt) = &job.durable {
            return self.deliver_durable(job, receipt.clone()).await;
        }
        let (outcome, history) = self.attempts(job).await;
        if matches!(outcome, Outcome::Failed(_)) {
            self.record_failure(&job.webhook, &job.message, history);
        }
        outcome
    }

    /// The attempts of a non-durable job as its mode allows, and their history.
    pub(super) async fn attempts(&self, job: &Job) -> (Outcome, Vec<AttemptRecord>) {
        let mut history = Vec::new();
        loop {
            let (attempt, record) = self.attempt_once(&job.webhook, &job.message).await;
            history.push(record);
            let tries = history.len() as u32;
            match attempt {
                Attempt::Success { body, .. } => return (Outcome::Delivered(body), history),
                Attempt::Final { status, .. } => {
                    return (Outcome::Failed(Some(status).filter(|s| *s != 0)), history);
                }
                Attempt::Retryable {
                    status,
                    retry_after,
                    error,
                } => {
                    if job.mode == Mode::Once || tries >= MAX_ATTEMPTS {
                        return (Outcome::Failed(status), history);
                    }
                    tracing::debug!(webhook = %job.webhook.id, id = %job.message.id, %error, tries, "retrying delivery");
                    tokio::time::sleep(retry_after.unwrap_or_else(|| backoff(tries))).await;
                }
            }
        }
    }

    /// The first attempt of a durable job, once its row is written; the outbox takes it from there.
    async fn deliver_durable(&self, job: &Job, receipt: Receipt) -> Outcome {
        match receipt.await {
            Ok(Ok(())) => {}
            Ok(Err(why)) => return Outcome::Refused(why),
            Err(_) => return Outcome::Refused(Refused::StoreUnavailable),
        }
        if !self.outbox.lease_valid() {
            // Leases could not be renewed lately: another process may own the row by now.
            self.outbox.let_go(&job.message.id);
            return Outcome::Failed(None);
        }
        let (attempt, record) = self.attempt_once(&job.webhook, &job.message).await;
        self.outbox
            .complete(&job.message.id, Prior::default(), &attempt, record);
        match attempt {
            Attempt::Success { body, .. } => Outcome::Delivered(body),
            Attempt::Final { status, .. } => Outcome::Failed(Some(status).filter(|s| *s != 0)),
            Attempt::Retryable { status, .. } => Outcome::Failed(status),
        }
    }

    /// One HTTP attempt within the webhook's concurrency limit, with its record.
    pub async fn attempt_once(
        &self,
        webhook: &Webhook,
        message: &Message,
    ) -> (Attempt, AttemptRecord) {
        let limit = self.limit(&webhook.id);
        let _permit = limit.acquire().await;
        let at = Timestamp::now();
        let started = std::time::Instant::now();
        let attempt = self.sender.attempt(webhook, message).await;
        let (status, error) = match &attempt {
            Attempt::Success { status, .. } => {
                self.counters.webhook_sent();
                (Some(*status), None)
            }
            Attempt::Final { status, error } => {
                (Some(*status).filter(|s| *s != 0), Some(error.clone()))
            }
            Attempt::Retryable { status, error, .. } => (*status, Some(error.clone())),
        };
        let took = started.elapsed();
        self.counters.webhook_attempt(took);
        let record = AttemptRecord {
            at,
            status: status.map(i64::from),
            error,
            duration_ms: i64::try_from(took.as_millis()).unwrap_or(i64::MAX),
        };
        (attempt, record)
    }

    /// Forgets the limits of webhooks not in `live` (deleted ones).
    pub fn retain_webhooks(&self, live: &std::collections::HashSet<&str>) {
        self.limits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|id, _| live.contains(id.as_str()));
        self.batchers.retain(live);
    }

    /// Takes the bytes of `job` from the queue budget, or counts and logs its refusal.
    pub(super) fn charge(&self, job: &Job) -> Option<Charge> {
        let charge = self.budget.charge(&job.webhook.id, job.message.body.len());
        if charge.is_none() {
            metrics::counter!(crate::metrics::WEBHOOK_DROPPED, "reason" => "queue_bytes")
                .increment(1);
            tracing::warn!(webhook = %job.webhook.id, event = %job.message.event, "webhook queue over its byte budget; message refused");
        }
        charge
    }

    fn limit(&self, webhook_id: &str) -> Arc<Semaphore> {
        let mut limits = self.limits.lock().unwrap_or_else(|e| e.into_inner());
        limits
            .entry(webhook_id.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.concurrency)))
            .clone()
    }

    /// Counts, logs and records (in the background) a delivery that failed for good.
    pub(super) fn record_failure(
        &self,
        webhook: &Webhook,
        message: &Message,
        history: Vec<AttemptRecord>,
    ) {
        self.counters.webhook_failed();
        let last = history.last();
        tracing::warn!(
            webhook = %webhook.id, url = %loggable_url(&webhook.url), id = %message.id,
            event = %message.event, status = ?last.and_then(|a| a.status),
            error = ?last.and_then(|a| a.error.as_deref()), attempts = history.len(),
            "webhook delivery failed"
        );
        let body: serde_json::Value = serde_json::from_slice(&message.body).unwrap_or_default();
        // A large body is not kept: the failure log records that it failed, not what it carried
        // (a client with 1 MB events and a dead endpoint would fill the disk otherwise).
        let payload = if message.body.len() <= FAILURE_PAYLOAD_LIMIT {
            String::from_utf8_lossy(&message.body).into_owned()
        } else {
            "null".to_owned()
        };
        let record = NewDelivery {
            id: message.id.clone(),
            webhook_id: webhook.id.clone(),
            event: message.event.clone(),
            payload,
            size: i64::try_from(message.body.len()).unwrap_or(i64::MAX),
            socket_id: body["socket"]["id"].as_str().map(str::to_owned),
            seq: body["seq"].as_i64(),
            status: DeliveryStatus::Failed,
            next_attempt_at: None,
            history,
        };
        let store = self.outbox.store().clone();
        tokio::spawn(async move {
            if let Err(err) = store.insert_delivery(&record).await {
                tracing::warn!(%err, id = %record.id, "cannot record the failed delivery");
            }
        });
    }
}

/// Whether deliveries to `webhook` go out in batches (a reply webhook never does).
pub(crate) fn is_batched(webhook: &Webhook) -> bool {
    webhook.batch.is_some() && !webhook.reply
}

/// Exponential backoff with jitter: `BASE * 2^(n-1)`, capped, times a random 50–100 %.
fn backoff(attempt: u32) -> Duration {
    let exp = BASE_DELAY.saturating_mul(1 << attempt.saturating_sub(1).min(16));
    exp.min(MAX_DELAY).mul_f64(rand::random_range(0.5..=1.0))
}

/// A queued job and the bytes it holds in the budget until its delivery ends.
pub(super) type Queued = (Job, Charge);

/// Queues by webhook id, each drained in order by a worker task of its own; dropping one lets
/// its worker finish what it holds and stop. A socket has one set ([`SocketQueues`]); the batched
/// webhooks of a node share another (`batcher`).
#[derive(Default)]
pub(super) struct Queues {
    senders: Mutex<HashMap<String, mpsc::Sender<Queued>>>,
}

impl Queues {
    /// Whether the queue to `webhook_id` can take one more job now.
    pub(super) fn has_room(&self, webhook_id: &str) -> bool {
        self.lock()
            .get(webhook_id)
            .is_none_or(|tx| tx.capacity() > 0)
    }

    /// Queues `job` behind the earlier jobs to the same webhook, starting that queue's worker
    /// with `spawn` when it has none. A full queue, or one over the byte budget, drops the job
    /// (counted and logged) and returns it.
    pub(super) fn enqueue(
        &self,
        dispatcher: &Arc<Dispatcher>,
        job: Job,
        spawn: impl FnOnce() -> mpsc::Sender<Queued>,
    ) -> Result<(), Box<Job>> {
        let Some(charge) = dispatcher.charge(&job) else {
            return Err(Box::new(job));
        };
        let tx = self
            .lock()
            .entry(job.webhook.id.clone())
            .or_insert_with(spawn)
            .clone();
        dispatcher.outstanding.fetch_add(1, Ordering::AcqRel);
        tx.try_send((job, charge)).map_err(|err| {
            dispatcher.outstanding.fetch_sub(1, Ordering::AcqRel);
            let (job, _charge) = match err {
                mpsc::error::TrySendError::Full(queued)
                | mpsc::error::TrySendError::Closed(queued) => queued,
            };
            metrics::counter!(crate::metrics::WEBHOOK_DROPPED, "reason" => "queue_full").increment(1);
            tracing::warn!(webhook = %job.webhook.id, event = %job.message.event, "webhook queue full; message dropped");
            Box::new(job)
        })
    }

    /// Forgets the queues of webhooks not in `live`.
    pub(super) fn retain(&self, live: &std::collections::HashSet<&str>) {
        self.lock().retain(|id, _| live.contains(id.as_str()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::Sender<Queued>>> {
        self.senders.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The queues of one socket (or of the rooms that share one room queue), one per webhook;
/// dropping them lets the workers finish and stop.
pub struct SocketQueues {
    queues: Queues,
    /// The lane their deliveries take on a batched webhook (random, fixed for their life), so
    /// that what keeps its order here keeps it there too.
    lane: u64,
}

impl Default for SocketQueues {
    fn default() -> Self {
        Self {
            queues: Queues::default(),
            lane: rand::random(),
        }
    }
}

impl SocketQueues {
    /// Whether the queue to `webhook_id` can take one more job now.
    pub fn has_room(&self, webhook_id: &str) -> bool {
        self.queues.has_room(webhook_id)
    }

    /// Queues `job` behind this socket's earlier messages to the same webhook.
    /// A full queue, or one over the byte budget, drops the job (counted and logged) and
    /// returns it.
    pub fn enqueue(&self, dispatcher: &Arc<Dispatcher>, job: Job) -> Result<(), Box<Job>> {
        self.queues
            .enqueue(dispatcher, job, || spawn_worker(dispatcher.clone()))
    }

    /// The lane of these deliveries on a batched webhook.
    pub(super) fn lane(&self) -> u64 {
        self.lane
    }
}

fn spawn_worker(dispatcher: Arc<Dispatcher>) -> mpsc::Sender<Queued> {
    let (tx, mut rx) = mpsc::channel::<Queued>(QUEUE_CAPACITY);
    tokio::spawn(async move {
        while let Some((mut job, charge)) = rx.recv().await {
            let outcome = dispatcher.deliver(&job).await;
            drop(charge);
            if let Some(on_done) = job.on_done.take() {
                on_done(outcome);
            }
            dispatcher.outstanding.fetch_sub(1, Ordering::AcqRel);
        }
    });
    tx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        for attempt in 1..=10 {
            let d = backoff(attempt);
            let full = BASE_DELAY.saturating_mul(1 << (attempt - 1)).min(MAX_DELAY);
            assert!(d >= full.mul_f64(0.5) && d <= full, "{attempt}: {d:?}");
        }
    }
}
