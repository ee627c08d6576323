//! Serving a listener: HTTP/1 connections with a header-read timeout (slowloris), a cap on open
//! connections, and a graceful stop that gives open requests a bounded time.
//!
//! `axum::serve` sets neither a header-read timeout nor a connection cap, so a client that opens
//! connections and trickles headers could hold every file descriptor of the process.
//!
//! `transport.rs` is what each connection reads and writes through (the write timeout, the kill
//! switch, the Engine.IO 3 CONNECT rewrite).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioTimer;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tower::ServiceExt;

mod transport;

use transport::Held;

/// Most bytes hyper buffers while reading a request head (its minimum).
const HTTP_READ_BUFFER: usize = 8192;
/// Least time between two "connection cap reached" warnings.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// What one listener accepts.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once; more are closed as soon as accepted.
    pub max_connections: usize,
    /// Time a client has to send a request's headers; also how long a keep-alive connection may
    /// stay idle between requests.
    pub header_timeout: Duration,
    /// Longest a write to a client may wait for room (a client that stopped reading): then the
    /// connection fails and is closed.
    pub write_timeout: Duration,
}

/// A connection's end, shared between its transport and whoever may close it.
#[derive(Default)]
struct Kill {
    dead: AtomicBool,
    /// The waiting reader, woken when the connection dies so that its session closes now
    /// rather than at the next heartbeat timeout.
    reader: Mutex<Option<std::task::Waker>>,
    /// Set when the connection became an Engine.IO 3 WebSocket: its reads go through a
    /// [`ConnectRewriter`] from then on.
    v2_connects: AtomicBool,
    /// The Engine.IO session a polling client upgraded to a WebSocket on this connection.
    session: Mutex<Option<Box<str>>>,
}

impl Kill {
    fn kill(&self) {
        self.dead.store(true, Ordering::Release);
        if let Some(reader) = self.reader.lock().unwrap_or_else(|e| e.into_inner()).take() {
            reader.wake();
        }
    }

    fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire)
    }
}

/// The open connections of a listener by client address, so that one can be closed from
/// elsewhere: a socket whose authentication timed out takes its Engine.IO connection with it,
/// and a stopping node closes its clients' WebSockets.
#[derive(Default)]
pub struct Connections {
    open: Mutex<HashMap<SocketAddr, Arc<Kill>>>,
    /// Engine.IO sessions upgraded from polling → the connection of their WebSocket (the
    /// handshake's address is that of an earlier polling request).
    upgraded: Mutex<HashMap<Box<str>, SocketAddr>>,
}

impl Connections {
    /// Closes the connection from `remote`, if it is open; reads and writes on it fail from now.
    pub fn close(&self, remote: &SocketAddr) -> bool {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(remote).map(|kill| kill.kill()).is_some()
    }

    /// Rewrites the CONNECT frames the client at `remote` sends from now on (an Engine.IO 3
    /// WebSocket: see `socket::v2_compat`).
    pub fn rewrite_v2_connects(&self, remote: &SocketAddr) {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(kill) = open.get(remote) {
            kill.v2_connects.store(true, Ordering::Release);
        }
    }

    /// Records that the Engine.IO session `sid` now runs as a WebSocket on the connection from
    /// `remote`, so that [`Connections::close_session`] finds it.
    pub fn name_session(&self, remote: &SocketAddr, sid: &str) {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let Some(kill) = open.get(remote) else {
            return;
        };
        *kill.session.lock().unwrap_or_else(|e| e.into_inner()) = Some(sid.into());
        // The first upgrade keeps it: a second one for the same session (engineioxide answers
        // 101 before refusing it) must not hide the real one.
        self.upgraded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(sid.into())
            .or_insert(*remote);
    }

    /// Closes the WebSocket connection of the Engine.IO session `sid`: the one it upgraded on,
    /// else `handshake` (a session that began on a WebSocket); false when neither is open.
    pub fn close_session(&self, sid: &str, handshake: Option<SocketAddr>) -> bool {
        let upgraded = self
            .upgraded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(sid)
            .copied();
        upgraded
            .or(handshake)
            .is_some_and(|remote| self.close(&remote))
    }

    fn add(&self, remote: SocketAddr) -> Arc<Kill> {
        let kill = Arc::new(Kill::default());
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(remote, kill.clone());
        kill
    }

    fn remove(&self, remote: &SocketAddr, kill: &Arc<Kill>) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.get(remote).is_some_and(|k| Arc::ptr_eq(k, kill)) {
            open.remove(remote);
        }
        drop(open);
        if let Some(sid) = kill
            .session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let mut upgraded = self.upgraded.lock().unwrap_or_else(|e| e.into_inner());
            if upgraded.get(&sid) == Some(remote) {
                upgraded.remove(&sid);
            }
        }
    }
}

/// Serves `router` on `listener` until `stop` turns true, then lets open connections finish for
/// at most `drain`.
pub async fn serve(
    name: &'static str,
    listener: TcpListener,
    router: Router,
    limits: Limits,
    connections: Arc<Connections>,
    stop: watch::Receiver<bool>,
    drain: Duration,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut stopping = stop.clone();
    let mut last_warning: Option<Instant> = None;
    loop {
        let stopped = async {
            let _ = stopping.wait_for(|s| *s).await;
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stopped => break,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors, most likely: pause instead of spinning.
                tracing::warn!(listener = name, %err, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refuse(name, limits.max_connections, &mut last_warning);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            name,
            remote,
            router: router.clone(),
            limits,
            slot,
            connections: connections.clone(),
        };
        tokio::spawn(connection.run(stream, stop.clone()));
    }
    // Every slot back means every connection is closed.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(drain, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            listener = name,
            "open connections did not finish in time; closing them"
        );
    }
}

fn refuse(name: &'static str, max: usize, last_warning: &mut Option<Instant>) {
    metrics::counter!(crate::metrics::CONNECTIONS_REFUSED, "listener" => name).increment(1);
    if last_warning.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
        *last_warning = Some(Instant::now());
        tracing::warn!(
            listener = name,
            max,
            "connection cap reached; closing new connections (BRIDGE_MAX_CONNECTIONS)"
        );
    }
}

/// Requests in flight on a connection, and when the last one ended.
struct Activity {
    in_flight: AtomicUsize,
    since: Mutex<Instant>,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            since: Mutex::new(Instant::now()),
        }
    }
}

/// A request in flight; its end restarts the idle clock.
struct Busy<'a>(&'a Activity);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        *self.0.since.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Activity {
    fn begin(&self) -> Busy<'_> {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy(self)
    }

    /// Resolves once no request has been in flight for `limit`.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let since = *self.since.lock().unwrap_or_else(|e| e.into_inner());
            let busy = self.in_flight.load(Ordering::Acquire) > 0;
            if !busy && since.elapsed() >= limit {
                return;
            }
            let wait = if busy {
                limit
            } else {
                limit.saturating_sub(since.elapsed())
            };
            tokio::time::sleep(wait.max(Duration::from_millis(10))).await;
        }
    }
}

/// One accepted connection and the slot it holds.
struct Connection {
    name: &'static str,
    remote: SocketAddr,
    router: Router,
    limits: Limits,
    slot: OwnedSemaphorePermit,
    connections: Arc<Connections>,
}

impl Connection {
    async fn run(self, stream: TcpStream, stop: watch::Receiver<bool>) {
        let mut stop = stop;
        let remote = self.remote;
        let router = self.router.clone();
        let activity = Arc::new(Activity::default());
        let busy = activity.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            // What `into_make_service_with_connect_info` would add: handlers read the address.
            req.extensions_mut().insert(ConnectInfo(remote));
            let router = router.clone();
            let busy = busy.clone();
            async move {
                let _request = busy.begin();
                router.oneshot(req).await
            }
        });
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_timeout)
            // hyper's smallest read buffer: request heads are small, bodies are streamed.
            .max_buf_size(HTTP_READ_BUFFER)
            .keep_alive(true);
        let io = Held::new(
            stream,
            &self.limits,
            remote,
            self.connections.clone(),
            self.name,
            self.slot,
        );
        let connection = builder.serve_connection(io, service).with_upgrades();
        tokio::pin!(connection);
        let stopped = async {
            let _ = stop.wait_for(|s| *s).await;
        };
        let result = tokio::select! {
            result = connection.as_mut() => result,
            () = stopped => {
                // Finish the request in flight, then close (WebSockets were closed before).
                connection.as_mut().graceful_shutdown();
                connection.await
            }
            // hyper's header timeout starts only once the next request's first bytes arrive.
            () = activity.idle_for(self.limits.header_timeout) => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        };
        if let Err(err) = result {
            tracing::debug!(listener = self.name, %remote, %err, "connection ended with an error");
        }
    }
}

/// Counts an open connection in `bridge_http_connections` for as long as it lives.
struct Gauge(metrics::Gauge);

impl Gauge {
    fn open(listener: &'static str) -> Self {
        let gauge = metrics::gauge!(crate::metrics::HTTP_CONNECTIONS, "listener" => listener);
        gauge.increment(1.0);
        Self(gauge)
    }
}

impl Drop for Gauge {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}
