//! The outbox's byte budget: undelivered bytes per webhook and in total, read from the store
//! every second (so it counts every node's rows) plus what this node added since.

use std::collections::HashMap;
use std::sync::Mutex;

use admin_api::OutboxStats;
use admin_api::model::DeliveryStatus;
use admin_api::store::OutboxUsage;

/// Limits and the last known usage.
#[derive(Debug)]
pub struct Budget {
    webhook_limit: u64,
    total_limit: u64,
    usage: Mutex<Usage>,
}

#[derive(Debug, Default)]
struct Usage {
    /// Bytes per webhook at the last read, plus those added since.
    by_webhook: HashMap<String, u64>,
    total: u64,
}

impl Budget {
    /// A budget of `webhook_limit` bytes per webhook and `total_limit` in all.
    pub fn new(webhook_limit: u64, total_limit: u64) -> Self {
        Self {
            webhook_limit,
            total_limit,
            usage: Mutex::new(Usage::default()),
        }
    }

    /// Counts `size` more bytes for `webhook_id`, unless that would pass a limit.
    pub fn try_reserve(&self, webhook_id: &str, size: u64) -> bool {
        let mut usage = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        let hook = usage.by_webhook.get(webhook_id).copied().unwrap_or(0);
        if hook + size > self.webhook_limit || usage.total + size > self.total_limit {
            return false;
        }
        *usage.by_webhook.entry(webhook_id.to_owned()).or_default() += size;
        usage.total += size;
        true
    }

    /// Replaces the usage with a fresh read of the store; returns the totals for stats and gauges.
    pub fn refresh(&self, rows: &[OutboxUsage], now_ms: i64) -> OutboxStats {
        let mut stats = OutboxStats::default();
        let mut fresh = Usage::default();
        let mut oldest: Option<i64> = None;
        for row in rows {
            let bytes = u64::try_from(row.bytes).unwrap_or(0);
            let count = u64::try_from(row.count).unwrap_or(0);
            *fresh.by_webhook.entry(row.webhook_id.clone()).or_default() += bytes;
            fresh.total += bytes;
            match row.status {
                DeliveryStatus::Pending => {
                    stats.pending += count;
                    stats.pending_bytes += bytes;
                    oldest = match (oldest, row.oldest_due) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
                _ => {
                    stats.dead += count;
                    stats.dead_bytes += bytes;
                }
            }
        }
        stats.oldest_due_seconds = oldest.map_or(0.0, |due| (now_ms - due).max(0) as f64 / 1000.0);
        *self.usage.lock().unwrap_or_else(|e| e.into_inner()) = fresh;
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(hook: &str, status: DeliveryStatus, bytes: i64, oldest: Option<i64>) -> OutboxUsage {
        OutboxUsage {
            webhook_id: hook.into(),
            status,
            count: 2,
            bytes,
            oldest_due: oldest,
        }
    }

    #[test]
    fn limits_per_webhook_and_in_total() {
        let budget = Budget::new(100, 150);
        assert!(budget.try_reserve("a", 60));
        assert!(!budget.try_reserve("a", 50), "over the webhook's 100");
        assert!(budget.try_reserve("b", 80));
        assert!(!budget.try_reserve("c", 20), "over the total of 150");
        let stats = budget.refresh(
            &[
                row("a", DeliveryStatus::Pending, 10, Some(1_000)),
                row("a", DeliveryStatus::Dead, 85, None),
            ],
            3_500,
        );
        assert_eq!((stats.pending, stats.pending_bytes), (2, 10));
        assert_eq!((stats.dead, stats.dead_bytes), (2, 85));
        assert!((stats.oldest_due_seconds - 2.5).abs() < 1e-9);
        assert!(!budget.try_reserve("a", 6), "dead rows count: 95 + 6 > 100");
        assert!(budget.try_reserve("a", 5));
        assert!(
            budget.try_reserve("c", 20),
            "the refresh forgot b's reservation"
        );
    }
}
