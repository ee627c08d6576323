//! Batched webhooks: one queue per webhook on this node gathers the deliveries of every socket
//! and sends them as one signed POST, within the webhook's `batch` bounds (events, bytes, wait).
//!
//! A webhook has `max_in_flight` lanes on a node (1 by default), each sending one batch at a
//! time, the next once the last has ended (delivered or given up). The deliveries that share an
//! ordered queue on the unbatched path (one socket's, one room's) always take the same lane, so
//! they reach the backend in that order across batches as well as within one; more lanes lift
//! the ceiling of one batch per round trip. A durable batch is attempted once from here and then
//! retried by the outbox's worker, which claims due rows of a batched webhook together
//! ([`group_claimed`]).
//!
//! The body is `{"type":"batch","deliveries":[{"id":"msg_…","body":{…}},…]}`: each delivery's
//! usual body as it was serialized, beside its own id. The batch's `webhook-id` is derived from
//! the ids it holds, so a retry of the same deliveries carries the same id.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use admin_api::model::{Batch, Webhook};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::dispatch::{Dispatcher, Job, Mode, Outcome, Queued, Queues};
use super::outbox::Prior;
use super::sender::{Attempt, Message};

/// Deliveries waiting per lane of a batched webhook on this node; more are refused
/// (`queue_full`). Their bytes are bounded by the queue budget (per webhook and per node); this
/// bounds the count of small ones.
pub const BATCH_QUEUE_CAPACITY: usize = 65_536;
/// Most lanes of a webhook (`batch.max_in_flight`'s bound).
const MAX_LANES: usize = admin_api::model::BATCH_MAX_IN_FLIGHT as usize;
/// Event name a batch is logged and counted under.
pub const BATCH_EVENT: &str = "$batch";
/// What the envelope adds to the bodies: `{"type":"batch","deliveries":[]}` and, per delivery,
/// `{"id":"msg_<32 hex>","body":},`.
const ENVELOPE_BYTES: usize = 36;
const PER_DELIVERY_BYTES: usize = 56;

/// The batch queues of this node: lane `n` holds one queue per batched webhook with more than
/// `n` lanes.
#[derive(Default)]
pub struct Batchers([Queues; MAX_LANES]);

impl Batchers {
    /// Whether lane `lane` of `job`'s webhook can take one more delivery now.
    pub fn has_room(&self, job: &Job, lane: u64) -> bool {
        self.lane(job, lane).has_room(&job.webhook.id)
    }

    /// Queues `job` (for a webhook with `batch` set) in lane `lane` (a [`SocketQueues`]'s),
    /// behind every earlier delivery there. A full queue, or one over the byte budget, refuses
    /// the job and returns it.
    ///
    /// [`SocketQueues`]: super::SocketQueues
    pub fn enqueue(
        &self,
        dispatcher: &Arc<Dispatcher>,
        job: Job,
        lane: u64,
    ) -> Result<(), Box<Job>> {
        self.lane(&job, lane)
            .enqueue(dispatcher, job, || spawn_worker(dispatcher.clone()))
    }

    /// Forgets the queues of webhooks not in `live`: their workers send what they hold and stop.
    pub fn retain(&self, live: &std::collections::HashSet<&str>) {
        for lane in &self.0 {
            lane.retain(live);
        }
    }

    /// The queue of `lane` among the lanes of `job`'s webhook: the same for one lane number
    /// while the webhook's `max_in_flight` stays.
    fn lane(&self, job: &Job, lane: u64) -> &Queues {
        let index = lane % lanes_of(&job.webhook) as u64;
        &self.0[usize::try_from(index).unwrap_or(0)]
    }
}

/// How many lanes `webhook` has on a node.
fn lanes_of(webhook: &Webhook) -> usize {
    let wanted = webhook.batch.map_or(1, |b| b.max_in_flight);
    usize::try_from(wanted).unwrap_or(1).clamp(1, MAX_LANES)
}

fn spawn_worker(dispatcher: Arc<Dispatcher>) -> mpsc::Sender<Queued> {
    let (tx, rx) = mpsc::channel(BATCH_QUEUE_CAPACITY);
    tokio::spawn(run(dispatcher, rx));
    tx
}

/// Gathers and sends batches until the queue is forgotten and empty.
async fn run(dispatcher: Arc<Dispatcher>, mut rx: mpsc::Receiver<Queued>) {
    let mut carried = None;
    loop {
        let first = match carried.take() {
            Some(item) => item,
            None => match rx.recv().await {
                Some(item) => item,
                None => return,
            },
        };
        let (items, next) = gather(&mut rx, first).await;
        carried = next;
        let count = items.len();
        send(&dispatcher, items).await;
        dispatcher.outstanding.fetch_sub(count, Ordering::AcqRel);
    }
}

/// `first` and what follows it within the bounds of its webhook's batch settings; a delivery
/// that would pass the byte bound is handed back to start the next batch.
async fn gather(rx: &mut mpsc::Receiver<Queued>, first: Queued) -> (Vec<Queued>, Option<Queued>) {
    let bounds = bounds_of(&first.0.webhook);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(bounds.max_wait_ms.into());
    let mut bytes = framed_size(&first.0.message);
    let mut items = vec![first];
    while items.len() < bounds.max_events as usize {
        let next = tokio::select! {
            biased;
            item = rx.recv() => item,
            () = tokio::time::sleep_until(deadline) => None,
        };
        let Some(item) = next else {
            break;
        };
        let size = framed_size(&item.0.message);
        if bytes + size > bounds.max_bytes as usize {
            return (items, Some(item));
        }
        bytes += size;
        items.push(item);
    }
    (items, None)
}

/// The batch settings of `webhook`; a webhook whose batching was just turned off sends what it
/// had queued as batches of the default bounds, without waiting.
fn bounds_of(webhook: &Webhook) -> Batch {
    webhook.batch.unwrap_or(Batch {
        max_wait_ms: 0,
        ..Batch::default()
    })
}

/// Bytes one delivery adds to a batch body.
fn framed_size(message: &Message) -> usize {
    message.body.len() + PER_DELIVERY_BYTES
}

/// Sends one batch and hands each delivery its outcome.
async fn send(dispatcher: &Dispatcher, items: Vec<Queued>) {
    let Some(last) = items.last() else {
        return;
    };
    // The newest settings (URL, secret, timeout) win, as a PATCH does for unbatched deliveries.
    let webhook = last.0.webhook.clone();
    if webhook.durable {
        return send_durable(dispatcher, &webhook, items).await;
    }
    let messages: Vec<&Message> = items.iter().map(|(job, _)| &job.message).collect();
    let batch = Job {
        webhook: webhook.clone(),
        message: batch_message(&messages),
        mode: Mode::Retry,
        on_done: None,
        durable: None,
    };
    let (outcome, history) = dispatcher.attempts(&batch).await;
    record_size(items.len());
    if matches!(outcome, Outcome::Failed(_)) {
        for message in &messages {
            dispatcher.record_failure(&webhook, message, history.clone());
        }
    }
    for (mut job, _charge) in items {
        if let Some(on_done) = job.on_done.take() {
            on_done(outcome.clone());
        }
    }
}

/// The first attempt of durable deliveries once their rows are written; each row's outcome is
/// recorded, and the outbox's worker retries the failed ones together.
async fn send_durable(dispatcher: &Dispatcher, webhook: &Webhook, items: Vec<Queued>) {
    let mut written = Vec::with_capacity(items.len());
    for (job, _charge) in items {
        let Some(receipt) = job.durable.clone() else {
            continue;
        };
        // A refused row was answered to its client and is not sent.
        if let Ok(Ok(())) = receipt.await {
            written.push(job.message);
        }
    }
    if written.is_empty() {
        return;
    }
    let outbox = &dispatcher.outbox;
    if !outbox.lease_valid() {
        // Leases could not be renewed lately: another process may own these rows by now.
        for message in &written {
            outbox.let_go(&message.id);
        }
        return;
    }
    let rows: Vec<(String, Prior)> = written
        .iter()
        .map(|message| (message.id.clone(), Prior::default()))
        .collect();
    let messages: Vec<&Message> = written.iter().collect();
    attempt_rows(dispatcher, webhook, &messages, rows).await;
}

/// One attempt of durable rows as one batch, and each row's outcome written back.
pub async fn attempt_rows(
    dispatcher: &Dispatcher,
    webhook: &Webhook,
    messages: &[&Message],
    rows: Vec<(String, Prior)>,
) {
    let message = batch_message(messages);
    let (attempt, record) = dispatcher.attempt_once(webhook, &message).await;
    record_size(messages.len());
    dispatcher.outbox.complete_all(rows, &attempt, record);
    if let Attempt::Retryable { error, .. } | Attempt::Final { error, .. } = &attempt {
        tracing::debug!(webhook = %webhook.id, id = %message.id, %error, rows = messages.len(), "batch attempt failed");
    }
}

/// Splits claimed rows of one batched webhook (in claim order) into batches within its bounds.
pub fn group_claimed<T>(
    webhook: &Webhook,
    rows: Vec<T>,
    size: impl Fn(&T) -> usize,
) -> Vec<Vec<T>> {
    let bounds = bounds_of(webhook);
    let mut batches: Vec<Vec<T>> = Vec::new();
    let mut bytes = 0;
    for row in rows {
        let framed = size(&row) + PER_DELIVERY_BYTES;
        match batches.last_mut() {
            Some(batch)
                if batch.len() < bounds.max_events as usize
                    && bytes + framed <= bounds.max_bytes as usize =>
            {
                bytes += framed;
                batch.push(row);
            }
            _ => {
                bytes = framed;
                batches.push(vec![row]);
            }
        }
    }
    batches
}

/// The POST of a batch: its bodies as they were serialized, each beside its id, under an id
/// derived from theirs.
pub fn batch_message(messages: &[&Message]) -> Message {
    let size = ENVELOPE_BYTES + messages.iter().map(|m| framed_size(m)).sum::<usize>();
    let mut body = Vec::with_capacity(size);
    let mut digest = Sha256::new();
    body.extend_from_slice(br#"{"type":"batch","deliveries":["#);
    for (idx, message) in messages.iter().enumerate() {
        if idx > 0 {
            body.push(b',');
        }
        // Ids are `msg_` and hex: nothing to escape.
        body.extend_from_slice(br#"{"id":""#);
        body.extend_from_slice(message.id.as_bytes());
        body.extend_from_slice(br#"","body":"#);
        body.extend_from_slice(&message.body);
        body.push(b'}');
        digest.update(message.id.as_bytes());
        digest.update(b"\n");
    }
    body.extend_from_slice(b"]}");
    let hash = digest.finalize();
    let id: String = hash[..16].iter().map(|b| format!("{b:02x}")).collect();
    Message {
        id: format!("msg_{id}"),
        event: BATCH_EVENT.to_owned(),
        body: Bytes::from(body),
    }
}

fn record_size(deliveries: usize) {
    metrics::histogram!(crate::metrics::WEBHOOK_BATCH_SIZE).record(deliveries as f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: &str, body: &str) -> Message {
        Message {
            id: id.into(),
            event: "e".into(),
            body: Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn a_batch_holds_each_body_beside_its_id_under_a_stable_id() {
        let (a, b) = (
            message("msg_01", r#"{"seq":1}"#),
            message("msg_02", r#"{"seq":2,"args":["é"]}"#),
        );
        let batch = batch_message(&[&a, &b]);
        let value: serde_json::Value = serde_json::from_slice(&batch.body).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"type": "batch", "deliveries": [
                {"id": "msg_01", "body": {"seq": 1}},
                {"id": "msg_02", "body": {"seq": 2, "args": ["é"]}},
            ]})
        );
        assert_eq!(
            batch.id,
            batch_message(&[&a, &b]).id,
            "same deliveries, same id"
        );
        assert_ne!(batch.id, batch_message(&[&a]).id);
        assert_ne!(batch.id, batch_message(&[&b, &a]).id);
        assert!(batch.id.starts_with("msg_") && batch.id.len() == 36);
        assert!(batch.body.len() <= ENVELOPE_BYTES + framed_size(&a) + framed_size(&b));
    }

    #[test]
    fn claimed_rows_are_grouped_within_the_bounds() {
        let webhook = Webhook {
            batch: Some(Batch {
                max_events: 3,
                max_bytes: 1024,
                max_wait_ms: 0,
                max_in_flight: 1,
            }),
            ..test_webhook()
        };
        let sizes = vec![10, 10, 10, 10, 900, 2000, 10];
        let groups = group_claimed(&webhook, sizes, |s| *s);
        assert_eq!(
            groups,
            vec![vec![10, 10, 10], vec![10, 900], vec![2000], vec![10]]
        );
    }

    fn test_webhook() -> Webhook {
        let now = admin_api::model::Timestamp::now();
        Webhook {
            id: "w".into(),
            namespace_id: "n".into(),
            url: "http://127.0.0.1:9/".into(),
            events: vec!["*".into()],
            secret: String::new(),
            previous_secret: None,
            reply: false,
            durable: false,
            timeout_ms: 1000,
            headers: Default::default(),
            enabled: true,
            batch: None,
            created_at: now,
            updated_at: now,
        }
    }
}
