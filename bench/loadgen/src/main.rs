//! Load generator of the benchmarks: Socket.IO clients (Engine.IO 4 over WebSocket) in Rust, so
//! that figures are not bound by a Node.js client. Three workloads, each bounded in size and time:
//!
//! - `idle`: open N clients and hold them, answering every heartbeat; report the server's RSS per
//!   connection (from `/proc/<pid>/status`) and how many clients were dropped.
//! - `fanout`: N clients; M broadcasts through the server's REST emit endpoint; report the delivery
//!   ratio, the latency from request to receipt (p50/p99/max) and the server's CPU time per
//!   delivered message (from `/proc/<pid>/stat`).
//! - `forward`: N clients each emit E events with an acknowledgement, one in flight per client;
//!   report acked events per second, the ack latency and the server's CPU time per event.
//!
//! And `receive`, the webhook receiver the forwarding servers post to (`receiver.rs`).
//!
//! A workload's result is one JSON object on stdout. Raise the file limit for many clients
//! (`ulimit -n 20000`).

mod client;
mod proc_stats;
mod receiver;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};

use client::{Client, Shared};
use proc_stats::Server;

#[derive(Parser)]
#[command(about = "Socket.IO load generator (Engine.IO 4, WebSocket)")]
struct Cli {
    #[command(subcommand)]
    workload: Workload,
}

#[derive(Subcommand)]
enum Workload {
    /// Hold N idle clients; RSS per connection, clients dropped.
    Idle {
        #[command(flatten)]
        common: Common,
        /// Seconds to hold the clients after they are all connected.
        #[arg(long, default_value_t = 30)]
        hold_secs: u64,
    },
    /// Broadcasts through the REST emit endpoint to N clients.
    Fanout {
        #[command(flatten)]
        common: Common,
        /// Emit endpoint (POST, JSON body `{namespace, event, data}`).
        #[arg(long)]
        emit_url: String,
        /// Bearer token of the emit endpoint.
        #[arg(long, default_value = "")]
        emit_key: String,
        /// Broadcasts to send.
        #[arg(long, default_value_t = 200)]
        messages: u64,
        /// Broadcasts per second.
        #[arg(long, default_value_t = 50)]
        rate: u64,
    },
    /// Each client emits events with acks, one in flight.
    Forward {
        #[command(flatten)]
        common: Common,
        /// Events per client.
        #[arg(long, default_value_t = 100)]
        events: u64,
    },
    /// A webhook receiver: `200 {}` to every POST, `GET /count` the number received; runs until
    /// stopped.
    Receive {
        /// Port on 127.0.0.1 (0: any; the bound port is printed as `listening port=N`).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Answer each webhook this many milliseconds after reading it (a backend's own time).
        #[arg(long, default_value_t = 0)]
        delay_ms: u64,
    },
}

#[derive(Args, Clone)]
struct Common {
    /// Server base URL.
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    url: String,
    /// Namespace.
    #[arg(long, default_value = "/bench")]
    namespace: String,
    /// Clients.
    #[arg(long, default_value_t = 100)]
    clients: usize,
    /// JWT: in the CONNECT auth payload (`{"token"}`) for v4, in the query for v2.
    #[arg(long)]
    token: Option<String>,
    /// Behave as socket.io-client v2 (Engine.IO 3) instead of v3/v4.
    #[arg(long)]
    v2: bool,
    /// Send a desktop browser's handshake headers (origin, user agent, a 436-byte cookie…).
    #[arg(long)]
    browser_headers: bool,
    /// The server's process id, for RSS and CPU.
    #[arg(long)]
    pid: u32,
    /// Longest wait for the workload to complete, seconds.
    #[arg(long, default_value_t = 120)]
    timeout_secs: u64,
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let result = match cli.workload {
        Workload::Idle { common, hold_secs } => idle(&common, hold_secs).await,
        Workload::Fanout {
            common,
            emit_url,
            emit_key,
            messages,
            rate,
        } => fanout(&common, &emit_url, &emit_key, messages, rate).await,
        Workload::Forward { common, events } => forward(&common, events).await,
        Workload::Receive { port, delay_ms } => {
            receiver::run(port, Duration::from_millis(delay_ms))
                .await
                .map(|()| Value::Null)
        }
    };
    match result {
        Ok(report) => println!("{report}"),
        Err(err) => {
            eprintln!("loadgen: {err}");
            std::process::exit(1);
        }
    }
}

/// Connects `common.clients` clients, 100 at a time.
async fn connect_all(common: &Common, shared: &Arc<Shared>) -> Result<Vec<Client>, String> {
    let mut clients = Vec::with_capacity(common.clients);
    let deadline = Instant::now() + Duration::from_secs(common.timeout_secs);
    while clients.len() < common.clients {
        if Instant::now() > deadline {
            return Err(format!("only {} clients connected in time", clients.len()));
        }
        let batch = (common.clients - clients.len()).min(100);
        let connecting = (0..batch).map(|_| {
            Client::connect(
                &common.url,
                &common.namespace,
                common.token.as_deref(),
                common.v2,
                common.browser_headers,
                shared.clone(),
            )
        });
        for client in futures_util::future::join_all(connecting).await {
            clients.push(client?);
        }
    }
    Ok(clients)
}

async fn idle(common: &Common, hold_secs: u64) -> Result<Value, String> {
    let server = Server::new(common.pid);
    let shared = Arc::new(Shared::default());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = server.rss_kib()?;
    let clients = connect_all(common, &shared).await?;
    // Let allocations settle (first heartbeats, buffers) before reading.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let connected = server.rss_kib()?;
    tokio::time::sleep(Duration::from_secs(hold_secs)).await;
    let dropped = shared.dropped.load(Ordering::Relaxed);
    let pongs = shared.pongs.load(Ordering::Relaxed);
    let after = server.rss_kib()?;
    drop(clients);
    Ok(json!({
        "workload": "idle",
        "v2": common.v2,
        "clients": common.clients,
        "rss_before_kib": before,
        "rss_connected_kib": connected,
        "rss_after_hold_kib": after,
        "kib_per_connection": (connected.saturating_sub(before)) as f64 / common.clients as f64,
        "held_secs": hold_secs,
        "heartbeats_answered": pongs,
        "dropped": dropped,
    }))
}

async fn fanout(
    common: &Common,
    emit_url: &str,
    emit_key: &str,
    messages: u64,
    rate: u64,
) -> Result<Value, String> {
    let server = Server::new(common.pid);
    let shared = Arc::new(Shared::default());
    let clients = connect_all(common, &shared).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let http = reqwest::Client::new();
    let expected = messages * common.clients as u64;
    let cpu_before = server.cpu_secs()?;
    let started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(1) as f64));
    for _ in 0..messages {
        ticker.tick().await;
        let body = json!({
            "namespace": common.namespace,
            "event": "bench",
            "data": {"t": shared.now_micros()},
        });
        let res = http
            .post(emit_url)
            .header("authorization", format!("Bearer {emit_key}"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| format!("emit request: {e}"))?;
        if !res.status().is_success() {
            return Err(format!("emit answered {}", res.status()));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(common.timeout_secs);
    while shared.received.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = server.cpu_secs()? - cpu_before;
    let received = shared.received.load(Ordering::Relaxed);
    drop(clients);
    let latency = shared.latency_summary();
    Ok(json!({
        "workload": "fanout",
        "v2": common.v2,
        "clients": common.clients,
        "messages": messages,
        "expected": expected,
        "delivered": received,
        "delivery_ratio": received as f64 / expected as f64,
        "latency_ms": latency,
        "seconds": elapsed,
        "server_cpu_secs": cpu,
        "server_cpu_us_per_delivered": cpu * 1e6 / received.max(1) as f64,
        "dropped": shared.dropped.load(Ordering::Relaxed),
    }))
}

async fn forward(common: &Common, events: u64) -> Result<Value, String> {
    let server = Server::new(common.pid);
    let shared = Arc::new(Shared::default());
    let clients = connect_all(common, &shared).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cpu_before = server.cpu_secs()?;
    // The load generator's own CPU: on a shared machine it bounds what the server can be offered.
    let own = Server::new(std::process::id());
    let own_before = own.cpu_secs()?;
    let started = Instant::now();
    let deadline = Duration::from_secs(common.timeout_secs);
    let runs = clients.iter().map(|c| c.emit_with_acks(events, deadline));
    let acked: u64 = futures_util::future::join_all(runs).await.into_iter().sum();
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = server.cpu_secs()? - cpu_before;
    let own_cpu = own.cpu_secs()? - own_before;
    drop(clients);
    Ok(json!({
        "workload": "forward",
        "client_cpu_us_per_event": own_cpu * 1e6 / acked.max(1) as f64,
        "v2": common.v2,
        "clients": common.clients,
        "events": events * common.clients as u64,
        "acked": acked,
        "acked_per_sec": acked as f64 / elapsed,
        "ack_latency_ms": shared.latency_summary(),
        "seconds": elapsed,
        "server_cpu_secs": cpu,
        "server_cpu_us_per_event": cpu * 1e6 / acked.max(1) as f64,
        "dropped": shared.dropped.load(Ordering::Relaxed),
    }))
}
