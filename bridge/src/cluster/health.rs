//! Whether this node's adapter connection is up, as its drivers last saw it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// The adapter connection's state: up, or down with the reason.
#[derive(Debug)]
pub struct Health {
    up: AtomicBool,
    reason: Mutex<String>,
    lost: AtomicU64,
    /// Listening connections lost and not back yet (the Postgres driver has one per namespace).
    listeners_down: AtomicUsize,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            up: AtomicBool::new(true),
            reason: Mutex::new(String::new()),
            lost: AtomicU64::new(0),
            listeners_down: AtomicUsize::new(0),
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

    /// One of several listening connections is lost: down until every lost one is back.
    pub fn listener_lost(&self, reason: impl Into<String>) {
        self.listeners_down.fetch_add(1, Ordering::AcqRel);
        self.down(reason);
    }

    /// A listening connection lost earlier is back (or gone for good); up if it was the last.
    pub fn listener_back(&self) {
        if self.listeners_down.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.up();
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

    #[test]
    fn up_only_once_every_lost_listener_is_back() {
        let health = Health::default();
        health.listener_lost("first");
        health.listener_lost("second");
        health.listener_back();
        assert_eq!(health.check(), Err("second".to_owned()));
        health.listener_back();
        assert!(health.check().is_ok());
        assert_eq!(health.times_lost(), 1);
    }
}
