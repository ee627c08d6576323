//! Whether this node's adapter connection is up, as its drivers last saw it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The adapter connection's state: up, or down with the reason.
#[derive(Debug)]
pub struct Health {
    up: AtomicBool,
    reason: Mutex<String>,
    lost: AtomicU64,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            up: AtomicBool::new(true),
            reason: Mutex::new(String::new()),
            lost: AtomicU64::new(0),
        }
    }
}

impl Health {
    /// The connection answers.
    pub fn up(&self) {
        if !self.up.swap(true, Ordering::AcqRel) {
            tracing::info!("adapter connection restored; this node is back in the cluster");
        }
    }

    /// The connection is lost; `reason` says how.
    pub fn down(&self, reason: impl Into<String>) {
        let reason = reason.into();
        // The reason first: a `check` that sees the connection down must never read an empty one.
        *self.reason.lock().unwrap_or_else(|e| e.into_inner()) = reason.clone();
        if self.up.swap(false, Ordering::AcqRel) {
            self.lost.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%reason, "adapter connection lost; serving this node's sockets only until it returns");
        }
    }

    /// `Ok` while up, else why not.
    pub fn check(&self) -> Result<(), String> {
        if self.up.load(Ordering::Acquire) {
            return Ok(());
        }
        Err(self
            .reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone())
    }

    /// How many times the connection was lost since start.
    pub fn times_lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn down_then_up_counts_one_loss_and_keeps_the_reason_while_down() {
        let health = Health::default();
        assert!(health.check().is_ok());
        health.down("connection refused");
        health.down("still refused");
        assert_eq!(health.check(), Err("still refused".to_owned()));
        assert_eq!(health.times_lost(), 1);
        health.up();
        assert!(health.check().is_ok());
        health.down("again");
        assert_eq!(health.times_lost(), 2);
    }
}
