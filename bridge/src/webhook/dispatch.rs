//! Delivery scheduling: one ordered queue per socket and webhook, a concurrency limit per
//! endpoint, retries with backoff, and a record of what failed for good.
//!
//! Each (socket, webhook) pair has its own bounded queue and worker, so a slow or dead endpoint
//! holds up only its own queue: other endpoints and the sockets go on. A full queue drops the
//! new message (counted in `bridge_webhook_dropped_total` and logged) instead of blocking.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use admin_api::Store;
use admin_api::model::{DeliveryStatus, Webhook};
use admin_api::store::NewDelivery;
use bytes::Bytes;
use tokio::sync::{Semaphore, mpsc};

use super::sender::{Attempt, Message, Sender};
use crate::stats::Counters;

/// Messages waiting per (socket, webhook) before new ones are dropped.
pub const QUEUE_CAPACITY: usize = 1024;
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
}

/// Sends jobs; shared by every socket.
pub struct Dispatcher {
    sender: Sender,
    limits: Mutex<HashMap<String, Arc<Semaphore>>>,
    concurrency: usize,
    store: Store,
    counters: Arc<Counters>,
    /// Jobs queued or in flight, so that shutdown can wait for them.
    outstanding: AtomicUsize,
}

impl Dispatcher {
    /// A dispatcher allowing `concurrency` requests in flight per webhook.
    pub fn new(store: Store, counters: Arc<Counters>, concurrency: usize) -> Self {
        Self {
            sender: Sender::new(),
            limits: Mutex::new(HashMap::new()),
            concurrency: concurrency.max(1),
            store,
            counters,
            outstanding: AtomicUsize::new(0),
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

    /// Sends `job` now (waiting for its outcome), outside any queue: for `$connect` gates.
    pub async fn deliver(&self, job: &Job) -> Outcome {
        let (outcome, attempts, last) = self.attempts(job).await;
        if let Outcome::Failed(status) = &outcome {
            self.record_failure(job, attempts, *status, last);
        }
        outcome
    }

    async fn attempts(&self, job: &Job) -> (Outcome, u32, String) {
        let limit = self.limit(&job.webhook.id);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = {
                let _permit = limit.acquire().await;
                self.sender.attempt(&job.webhook, &job.message).await
            };
            match result {
                Attempt::Success { body, .. } => {
                    self.counters.webhook_sent();
                    return (Outcome::Delivered(body), attempt, String::new());
                }
                Attempt::Final { status, error } => {
                    return (
                        Outcome::Failed(Some(status).filter(|s| *s != 0)),
                        attempt,
                        error,
                    );
                }
                Attempt::Retryable {
                    status,
                    error,
                    retry_after,
                } => {
                    if job.mode == Mode::Once || attempt >= MAX_ATTEMPTS {
                        return (Outcome::Failed(status), attempt, error);
                    }
                    tracing::debug!(webhook = %job.webhook.id, id = %job.message.id, %error, attempt, "retrying delivery");
                    tokio::time::sleep(retry_after.unwrap_or_else(|| backoff(attempt))).await;
                }
            }
        }
    }

    /// Forgets the limits of webhooks not in `live` (deleted ones).
    pub fn retain_webhooks(&self, live: &std::collections::HashSet<&str>) {
        self.limits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|id, _| live.contains(id.as_str()));
    }

    fn limit(&self, webhook_id: &str) -> Arc<Semaphore> {
        let mut limits = self.limits.lock().unwrap_or_else(|e| e.into_inner());
        limits
            .entry(webhook_id.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.concurrency)))
            .clone()
    }

    /// Counts, logs and records (in the background) a delivery that failed for good.
    fn record_failure(&self, job: &Job, attempts: u32, status: Option<u16>, error: String) {
        self.counters.webhook_failed();
        tracing::warn!(
            webhook = %job.webhook.id, url = %job.webhook.url, id = %job.message.id,
            event = %job.message.event, ?status, %error, attempts, "webhook delivery failed"
        );
        let record = NewDelivery {
            id: job.message.id.clone(),
            webhook_id: job.webhook.id.clone(),
            event: job.message.event.clone(),
            payload: serde_json::from_slice(&job.message.body).unwrap_or_default(),
            status: DeliveryStatus::Failed,
            attempts: i64::from(attempts),
            next_attempt_at: None,
            last_status: status.map(i64::from),
            last_error: Some(error),
        };
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(err) = store.insert_delivery(&record).await {
                tracing::warn!(%err, id = %record.id, "cannot record the failed delivery");
            }
        });
    }
}

/// Exponential backoff with jitter: `BASE * 2^(n-1)`, capped, times a random 50–100 %.
fn backoff(attempt: u32) -> Duration {
    let exp = BASE_DELAY.saturating_mul(1 << attempt.saturating_sub(1).min(16));
    exp.min(MAX_DELAY).mul_f64(rand::random_range(0.5..=1.0))
}

/// The queues of one socket, one per webhook; dropping them lets the workers finish and stop.
#[derive(Default)]
pub struct SocketQueues {
    senders: Mutex<HashMap<String, mpsc::Sender<Job>>>,
}

impl SocketQueues {
    /// Queues `job` behind this socket's earlier messages to the same webhook.
    /// A full queue drops the job (counted and logged) and returns it.
    pub fn enqueue(&self, dispatcher: &Arc<Dispatcher>, job: Job) -> Result<(), Box<Job>> {
        let tx = {
            let mut senders = self.senders.lock().unwrap_or_else(|e| e.into_inner());
            senders
                .entry(job.webhook.id.clone())
                .or_insert_with(|| spawn_worker(dispatcher.clone()))
                .clone()
        };
        dispatcher.outstanding.fetch_add(1, Ordering::AcqRel);
        tx.try_send(job).map_err(|err| {
            dispatcher.outstanding.fetch_sub(1, Ordering::AcqRel);
            let job = match err {
                mpsc::error::TrySendError::Full(job) | mpsc::error::TrySendError::Closed(job) => job,
            };
            metrics::counter!(crate::metrics::WEBHOOK_DROPPED, "reason" => "queue_full").increment(1);
            tracing::warn!(webhook = %job.webhook.id, event = %job.message.event, "webhook queue full; message dropped");
            Box::new(job)
        })
    }
}

fn spawn_worker(dispatcher: Arc<Dispatcher>) -> mpsc::Sender<Job> {
    let (tx, mut rx) = mpsc::channel::<Job>(QUEUE_CAPACITY);
    tokio::spawn(async move {
        while let Some(mut job) = rx.recv().await {
            let outcome = dispatcher.deliver(&job).await;
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
