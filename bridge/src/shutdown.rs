//! Stopping a node: the signals that start and cut a stop, and [`Stopping`], the phase every
//! layer reads while the node hands its clients over to the other nodes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use socketioxide::ProtocolVersion;

/// Resolves at the first SIGTERM or SIGINT; from then on a second one ends the process at once
/// (exit code 1), without the drain.
pub async fn signal() {
    next_signal().await;
    tracing::info!("shutdown requested: draining (a second signal stops at once)");
    tokio::spawn(async {
        next_signal().await;
        tracing::warn!("second signal: stopping at once, without the drain");
        std::process::exit(1);
    });
}

async fn next_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

/// Where a stop is: serving, draining (clients are being handed over; `/readyz` says so, new
/// Engine.IO sessions are refused, the emit API still answers), then closed (no socket left; the
/// emit API answers 503 `shutting_down`).
#[derive(Debug, Default)]
pub struct Stopping {
    draining: AtomicBool,
    closed: AtomicBool,
    /// Polling sessions the drain closed: their next poll is answered with a close packet.
    /// Filled during the drain only, at most one entry per session the node held.
    closed_polling: Mutex<HashMap<Box<str>, ProtocolVersion>>,
}

impl Stopping {
    /// The stop began: load balancers and new clients are to go elsewhere.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Every socket is gone.
    pub fn close(&self) {
        self.draining.store(true, Ordering::Release);
        self.closed.store(true, Ordering::Release);
    }

    /// Whether the stop began.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Whether every socket is gone.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Records a polling session the drain closed.
    pub fn closed_polling(&self, sid: &str, protocol: ProtocolVersion) {
        self.closed_polling
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(sid.into(), protocol);
    }

    /// The protocol of `sid` if the drain closed it as a polling session.
    pub fn closed_session(&self, sid: &str) -> Option<ProtocolVersion> {
        if !self.is_draining() {
            return None;
        }
        self.closed_polling
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(sid)
            .copied()
    }
}
