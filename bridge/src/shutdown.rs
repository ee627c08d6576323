//! Stopping a node: the signals that start and cut a stop, and [`Stopping`], the phase every
//! layer reads while the node hands its clients over to the other nodes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use socketioxide::ProtocolVersion;

/// Listens to SIGTERM and SIGINT from this call on; the future resolves at the first one, and
/// from then on a second one ends the process at once (exit code 1), without the drain.
pub fn signal() -> impl Future<Output = ()> {
    // Registered now, before the node says it listens: a signal sent as soon as the `listening`
    // line appears must start a graceful stop, not kill the process. Listened to once for both
    // signals: a second signal between two registrations would be lost.
    let mut signals = Signals::new();
    async move {
        signals.next().await;
        tracing::info!("shutdown requested: draining (a second signal stops at once)");
        tokio::spawn(async move {
            signals.next().await;
            tracing::warn!("second signal: stopping at once, without the drain");
            std::process::exit(1);
        });
    }
}

/// SIGTERM and SIGINT, each listened to for the life of the process.
struct Signals {
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Self {
                terminate: signal(SignalKind::terminate()).ok(),
                interrupt: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        Self {}
    }

    /// The next SIGTERM or SIGINT.
    #[cfg(unix)]
    async fn next(&mut self) {
        async fn recv(signal: Option<&mut tokio::signal::unix::Signal>) {
            match signal {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            () = recv(self.terminate.as_mut()) => {}
            () = recv(self.interrupt.as_mut()) => {}
        }
    }

    /// The next Ctrl-C.
    #[cfg(not(unix))]
    async fn next(&mut self) {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Where a stop is: serving, draining (clients are being handed over; `/readyz` says so, new
/// Engine.IO sessions are refused, the emit API still answers), then closed (no socket left; the
/// emit API answers 503 `shutting_down`).
#[derive(Debug, Default)]
pub struct Stopping {
    draining: AtomicBool,
    closed: AtomicBool,
    /// Sessions the hand-over closed (the protocol of polling ones, whose next poll is answered
    /// with a close packet). Filled during the drain only, one entry per session the node held.
    handed_over: Mutex<HashMap<Box<str>, Option<ProtocolVersion>>>,
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

    /// Records a session the hand-over is closing; `polling` gives a polling session's protocol.
    pub fn hand_over(&self, sid: &str, polling: Option<ProtocolVersion>) {
        self.handed_over
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(sid.into(), polling);
    }

    /// Whether the hand-over closed the session `sid`.
    pub fn was_handed_over(&self, sid: &str) -> bool {
        self.is_draining()
            && self
                .handed_over
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains_key(sid)
    }

    /// The protocol of `sid` if the hand-over closed it as a polling session.
    pub fn closed_polling(&self, sid: &str) -> Option<ProtocolVersion> {
        if !self.is_draining() {
            return None;
        }
        self.handed_over
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(sid)
            .copied()
            .flatten()
    }
}
