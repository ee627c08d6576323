//! The background loops of the outbox: the worker that claims due rows and sends them, lease
//! renewal, and the usage read behind the budget, stats and gauges.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use admin_api::model::{Timestamp, Webhook};
use admin_api::store::ClaimedDelivery;
use bytes::Bytes;

use super::{Outbox, Prior, millis, pause};
use crate::catalog::Catalog;
use crate::webhook::Dispatcher;
use crate::webhook::batcher::{attempt_rows, group_claimed};
use crate::webhook::dispatch::is_batched;
use crate::webhook::sender::Message;

/// How often due rows are looked for (a manual retry on this node wakes the worker at once).
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// Rows claimed per query.
const CLAIM_BATCH: usize = 64;
/// Claimed rows in flight per process.
const MAX_IN_FLIGHT: usize = 512;
/// How often the usage is read.
const USAGE_INTERVAL: Duration = Duration::from_secs(1);

/// Starts the worker, lease renewal and usage loops; they end when the outbox shuts down.
pub fn spawn(outbox: Arc<Outbox>, dispatcher: Arc<Dispatcher>, catalog: Catalog) {
    tokio::spawn(claim_loop(outbox.clone(), dispatcher, catalog));
    tokio::spawn(renew_loop(outbox.clone()));
    tokio::spawn(usage_loop(outbox.clone()));
    tokio::spawn(super::prune::prune_loop(outbox));
}

async fn claim_loop(outbox: Arc<Outbox>, dispatcher: Arc<Dispatcher>, catalog: Catalog) {
    let due = outbox.store.outbox_due();
    let mut stop = outbox.stop.subscribe();
    let mut failing = false;
    let mut more = false;
    loop {
        if !more {
            tokio::select! {
                () = tokio::time::sleep(POLL_INTERVAL) => {}
                () = due.notified() => {}
                _ = stop.wait_for(|s| *s) => {}
            }
        }
        if *stop.borrow() {
            return;
        }
        let free = MAX_IN_FLIGHT.saturating_sub(outbox.in_flight.load(Ordering::Acquire));
        let limit = free.min(CLAIM_BATCH);
        more = false;
        if limit == 0 {
            continue;
        }
        let now = Timestamp::now().0;
        let claimed = outbox
            .store
            .claim_due(&outbox.owner, outbox.lease_until(), now, limit as i64)
            .await;
        let rows = match claimed {
            Ok(rows) => {
                failing = false;
                rows
            }
            Err(err) => {
                if !failing {
                    tracing::warn!(%err, "cannot claim due deliveries; retrying");
                }
                failing = true;
                continue;
            }
        };
        more = rows.len() == limit;
        for (webhook, rows) in by_webhook(&catalog, rows) {
            for batch in batches(webhook.as_deref(), rows) {
                for row in &batch {
                    outbox.hold(&row.id);
                }
                outbox.in_flight.fetch_add(batch.len(), Ordering::AcqRel);
                let (outbox, dispatcher, webhook) =
                    (outbox.clone(), dispatcher.clone(), webhook.clone());
                tokio::spawn(async move {
                    let count = batch.len();
                    send_claimed(&outbox, &dispatcher, webhook, batch).await;
                    outbox.in_flight.fetch_sub(count, Ordering::AcqRel);
                });
            }
        }
    }
}

/// Claimed rows grouped by webhook (as the catalog has it), each group in claim order.
fn by_webhook(
    catalog: &Catalog,
    rows: Vec<ClaimedDelivery>,
) -> Vec<(Option<Arc<Webhook>>, Vec<ClaimedDelivery>)> {
    let mut groups: Vec<(String, Option<Arc<Webhook>>, Vec<ClaimedDelivery>)> = Vec::new();
    for row in rows {
        match groups.iter_mut().find(|(id, ..)| *id == row.webhook_id) {
            Some((.., group)) => group.push(row),
            None => groups.push((
                row.webhook_id.clone(),
                catalog.webhook(&row.webhook_id),
                vec![row],
            )),
        }
    }
    groups
        .into_iter()
        .map(|(_, webhook, rows)| (webhook, rows))
        .collect()
}

/// What goes out in one request: a batched webhook's rows in batches (in the order their
/// events arrived: ids are time-ordered), every other row alone.
fn batches(webhook: Option<&Webhook>, mut rows: Vec<ClaimedDelivery>) -> Vec<Vec<ClaimedDelivery>> {
    match webhook {
        Some(webhook) if is_batched(webhook) => {
            rows.sort_by(|a, b| a.id.cmp(&b.id));
            group_claimed(webhook, rows, |row| row.payload.len())
        }
        _ => rows.into_iter().map(|row| vec![row]).collect(),
    }
}

/// One attempt of claimed rows (one request: a batch, or a single row), and each row's outcome
/// written back.
async fn send_claimed(
    outbox: &Outbox,
    dispatcher: &Dispatcher,
    webhook: Option<Arc<Webhook>>,
    rows: Vec<ClaimedDelivery>,
) {
    let mut priors = Vec::with_capacity(rows.len());
    let mut messages = Vec::with_capacity(rows.len());
    for row in rows {
        priors.push((
            row.id.clone(),
            Prior {
                attempts: row.attempts,
                manual: row.manual,
                history: row.history,
            },
        ));
        messages.push(Message {
            id: row.id,
            event: row.event,
            body: Bytes::from(row.payload),
        });
    }
    let Some(webhook) = webhook else {
        // The catalog has not seen this webhook yet (or it was just deleted): later.
        for (id, prior) in priors {
            outbox.release(&id, prior, Duration::from_secs(1));
        }
        return;
    };
    if is_batched(&webhook) {
        let messages: Vec<&Message> = messages.iter().collect();
        return attempt_rows(dispatcher, &webhook, &messages, priors).await;
    }
    for (message, (id, prior)) in messages.iter().zip(priors) {
        let (attempt, record) = dispatcher.attempt_once(&webhook, message).await;
        outbox.complete(&id, prior, &attempt, record);
    }
}

async fn renew_loop(outbox: Arc<Outbox>) {
    let every = outbox.config.lease / 3;
    let mut stop = outbox.stop.subscribe();
    while pause(&mut stop, every).await {
        let started = Timestamp::now().0;
        let ids = outbox.held_ids();
        match outbox
            .store
            .renew_leases(&ids, &outbox.owner, started + millis(outbox.config.lease))
            .await
        {
            Ok(_) => outbox.renewed_at.store(started, Ordering::Release),
            Err(err) => tracing::warn!(%err, held = ids.len(), "cannot renew delivery leases"),
        }
    }
}

async fn usage_loop(outbox: Arc<Outbox>) {
    let mut stop = outbox.stop.subscribe();
    loop {
        match outbox.store.outbox_usage().await {
            Ok(rows) => {
                let stats = outbox.budget.refresh(&rows, Timestamp::now().0);
                crate::metrics::record_outbox(&stats);
                outbox.counters.set_outbox(stats);
            }
            Err(err) => tracing::debug!(%err, "cannot read the outbox usage"),
        }
        if !pause(&mut stop, USAGE_INTERVAL).await {
            return;
        }
    }
}
