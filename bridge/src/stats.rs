//! Live counters behind `/admin/stats` (Prometheus gets the same events through `metrics`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use admin_api::{NodeStats, OutboxStats, Stats, StatsSource};

use crate::cluster::Cluster;

/// This node's counters since start.
#[derive(Debug, Default)]
pub struct Counters {
    connections: Mutex<BTreeMap<String, u64>>,
    events_in: AtomicU64,
    webhooks_sent: AtomicU64,
    webhooks_failed: AtomicU64,
    attempts: AtomicU64,
    attempt_ms_total: AtomicU64,
    emits: AtomicU64,
    outbox: Mutex<OutboxStats>,
    refused_full: AtomicU64,
    refused_unavailable: AtomicU64,
}

impl Counters {
    /// A socket connected to `namespace`.
    pub fn connected(&self, namespace: &str) {
        let mut map = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry(namespace.to_owned()).or_default() += 1;
        metrics::gauge!(crate::metrics::CONNECTIONS, "namespace" => namespace.to_owned())
            .increment(1.0);
    }

    /// A socket of `namespace` went away.
    pub fn disconnected(&self, namespace: &str) {
        let mut map = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = map.get_mut(namespace) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                map.remove(namespace);
            }
        }
        metrics::gauge!(crate::metrics::CONNECTIONS, "namespace" => namespace.to_owned())
            .decrement(1.0);
    }

    /// A client event arrived.
    pub fn event_in(&self) {
        self.events_in.fetch_add(1, Ordering::Relaxed);
    }

    /// A webhook delivery succeeded.
    pub fn webhook_sent(&self) {
        self.webhooks_sent.fetch_add(1, Ordering::Relaxed);
    }

    /// An HTTP attempt to a webhook took `duration`.
    pub fn webhook_attempt(&self, duration: std::time::Duration) {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        let ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        self.attempt_ms_total.fetch_add(ms, Ordering::Relaxed);
    }

    /// A webhook delivery failed for good.
    pub fn webhook_failed(&self) {
        self.webhooks_failed.fetch_add(1, Ordering::Relaxed);
    }

    /// An emit API message went out.
    pub fn emitted(&self) {
        self.emits.fetch_add(1, Ordering::Relaxed);
    }
}

impl Counters {
    /// `n` durable events were refused: the outbox was over its byte budget.
    pub fn refused_outbox_full(&self, n: usize) {
        self.refused_full.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// `n` durable events were refused: the store could not be written.
    pub fn refused_store_unavailable(&self, n: usize) {
        self.refused_unavailable
            .fetch_add(n as u64, Ordering::Relaxed);
    }

    /// The outbox as last read from the store.
    pub fn set_outbox(&self, stats: OutboxStats) {
        *self.outbox.lock().unwrap_or_else(|e| e.into_inner()) = stats;
    }
}

/// What `/admin/stats` shows: this node's counters and its place in the cluster.
pub struct NodeView {
    /// The counters.
    pub counters: Arc<Counters>,
    /// The node and its adapter.
    pub cluster: Cluster,
}

impl StatsSource for NodeView {
    fn snapshot(&self) -> Stats {
        let health = &self.cluster.health;
        Stats {
            node: NodeStats {
                id: self.cluster.node_id.to_string(),
                adapter: self.cluster.adapter.as_str().to_owned(),
                adapter_connected: health.check().is_ok(),
                adapter_error: health.check().err(),
                adapter_lost: health.times_lost(),
            },
            ..self.counters.snapshot()
        }
    }
}

impl StatsSource for Counters {
    fn snapshot(&self) -> Stats {
        Stats {
            node: NodeStats::default(),
            connections: self
                .connections
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            events_in: self.events_in.load(Ordering::Relaxed),
            webhooks_sent: self.webhooks_sent.load(Ordering::Relaxed),
            webhooks_failed: self.webhooks_failed.load(Ordering::Relaxed),
            webhook_attempts: self.attempts.load(Ordering::Relaxed),
            webhook_attempt_ms_total: self.attempt_ms_total.load(Ordering::Relaxed),
            emits: self.emits.load(Ordering::Relaxed),
            outbox: OutboxStats {
                refused_full: self.refused_full.load(Ordering::Relaxed),
                refused_unavailable: self.refused_unavailable.load(Ordering::Relaxed),
                ..self
                    .outbox
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone()
            },
        }
    }
}
