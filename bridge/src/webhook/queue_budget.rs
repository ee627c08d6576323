//! Bytes waiting in memory for webhook deliveries, bounded per webhook and in total.
//!
//! A hanging endpoint keeps every message queued for it while it is retried; counting messages
//! alone let a few sockets with 1 MB events hold gigabytes. A message is charged when it enters
//! a queue and released when its delivery ends; past either bound new messages are refused
//! (`queue_full` to the client) rather than held.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The bounds and what is held now.
#[derive(Debug)]
pub struct QueueBudget {
    webhook_limit: usize,
    total_limit: usize,
    total: AtomicUsize,
    per_webhook: Mutex<HashMap<String, usize>>,
}

/// Bytes held for one queued message; given back when dropped.
#[derive(Debug)]
pub struct Charge {
    budget: Arc<QueueBudget>,
    webhook_id: String,
    bytes: usize,
}

impl QueueBudget {
    /// At most `webhook_limit` bytes per webhook and `total_limit` in all.
    pub fn new(webhook_limit: usize, total_limit: usize) -> Arc<Self> {
        Arc::new(Self {
            webhook_limit,
            total_limit,
            total: AtomicUsize::new(0),
            per_webhook: Mutex::new(HashMap::new()),
        })
    }

    /// Takes `bytes` for `webhook_id`, or `None` when either bound would be passed.
    pub fn charge(self: &Arc<Self>, webhook_id: &str, bytes: usize) -> Option<Charge> {
        let mut per_webhook = self.per_webhook.lock().unwrap_or_else(|e| e.into_inner());
        let held = per_webhook.get(webhook_id).copied().unwrap_or(0);
        let total = self.total.load(Ordering::Acquire);
        if held + bytes > self.webhook_limit || total + bytes > self.total_limit {
            return None;
        }
        per_webhook.insert(webhook_id.to_owned(), held + bytes);
        self.total.fetch_add(bytes, Ordering::AcqRel);
        metrics::gauge!(crate::metrics::QUEUED_BYTES).increment(bytes as f64);
        Some(Charge {
            budget: self.clone(),
            webhook_id: webhook_id.to_owned(),
            bytes,
        })
    }

    /// Bytes held now, in all.
    pub fn held(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        let mut per_webhook = self
            .budget
            .per_webhook
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(held) = per_webhook.get_mut(&self.webhook_id) {
            *held = held.saturating_sub(self.bytes);
            if *held == 0 {
                per_webhook.remove(&self.webhook_id);
            }
        }
        self.budget.total.fetch_sub(self.bytes, Ordering::AcqRel);
        metrics::gauge!(crate::metrics::QUEUED_BYTES).decrement(self.bytes as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_per_webhook_and_in_total_and_gives_back_on_drop() {
        let budget = QueueBudget::new(100, 150);
        let a1 = budget.charge("a", 60).unwrap();
        assert!(budget.charge("a", 50).is_none(), "over a's 100");
        let b1 = budget.charge("b", 80).unwrap();
        assert!(budget.charge("b", 20).is_none(), "over the total 150");
        assert_eq!(budget.held(), 140);
        drop(a1);
        assert_eq!(budget.held(), 80);
        let a2 = budget.charge("a", 70).unwrap();
        drop((a2, b1));
        assert_eq!(budget.held(), 0);
        assert!(budget.per_webhook.lock().unwrap().is_empty());
    }
}
