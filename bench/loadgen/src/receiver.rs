//! The webhook receiver of the benchmarks: answers every POST `200 {}` once its body is read.
//! `GET /` answers how many events it has received (a batch counts each of its deliveries),
//! `GET /latency` the emit-to-receipt latency of the events received since the last such call
//! (from the `t` the load generator puts in each event, wall-clock microseconds), and
//! `GET /requests` how many POSTs it got. In Rust so that a forwarding server's rate is not bound
//! by its receiver (a Node.js `http` server took most of a core at the bridge's rate).

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use tokio::net::TcpListener;

/// Latency samples kept between two reads (a bounded run sends far fewer).
const MAX_SAMPLES: usize = 4_000_000;

#[derive(Default)]
struct Counts {
    events: AtomicU64,
    requests: AtomicU64,
    latencies_us: Mutex<Vec<u64>>,
}

/// Microseconds since the Unix epoch.
pub fn wall_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Serves on 127.0.0.1:`port` (0: any) until the process is stopped; prints `listening port=N`.
/// Each webhook is answered `delay` after it was read: a backend's own time, or one further away.
pub async fn run(port: u16, delay: Duration) -> Result<(), String> {
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| format!("bind: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?.port();
    println!("listening port={bound}");
    let counts = Arc::new(Counts::default());
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let counts = counts.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| answer(req, counts.clone(), delay));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// `GET` answers a count or the latency; anything else is a webhook: read, counted, `200 {}`.
async fn answer(
    req: Request<Incoming>,
    counts: Arc<Counts>,
    delay: Duration,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() == Method::GET {
        let text = match req.uri().path() {
            "/latency" => latency(&counts).to_string(),
            "/requests" => counts.requests.load(Ordering::Relaxed).to_string(),
            _ => counts.events.load(Ordering::Relaxed).to_string(),
        };
        return Ok(Response::new(Full::new(Bytes::from(text))));
    }
    // A body cut short is not a delivery.
    if let Ok(body) = req.into_body().collect().await {
        let now = wall_micros();
        counts.requests.fetch_add(1, Ordering::Relaxed);
        let sent = sent_times(&body.to_bytes());
        counts
            .events
            .fetch_add(sent.len().max(1) as u64, Ordering::Relaxed);
        let mut samples = counts
            .latencies_us
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for t in sent {
            if samples.len() < MAX_SAMPLES {
                samples.push(now.saturating_sub(t));
            }
        }
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut res = Response::new(Full::new(Bytes::from_static(b"{}")));
    res.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(res)
}

/// The `t` of each event a body carries: one for a plain body, one per delivery of a batch.
/// A scan for `"t":` rather than a JSON parse, so that the receiver's cost stays small beside the
/// server's (the load generator's argument is the only object with that key; `"timestamp":`
/// does not match).
fn sent_times(body: &[u8]) -> Vec<u64> {
    const KEY: &[u8] = b"\"t\":";
    let mut times = Vec::new();
    let mut rest = body;
    while let Some(at) = rest.windows(KEY.len()).position(|w| w == KEY) {
        rest = &rest[at + KEY.len()..];
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if let Some(t) = std::str::from_utf8(&rest[..digits])
            .ok()
            .and_then(|d| d.parse().ok())
        {
            times.push(t);
        }
    }
    times
}

/// p50, p99 and max of the samples since the last call, in ms; clears them.
fn latency(counts: &Counts) -> Value {
    let mut all = std::mem::take(
        &mut *counts
            .latencies_us
            .lock()
            .unwrap_or_else(|e| e.into_inner()),
    );
    all.sort_unstable();
    let at = |p: f64| {
        let idx = ((p * all.len() as f64) as usize).min(all.len().saturating_sub(1));
        all.get(idx).map_or(0.0, |us| *us as f64 / 1000.0)
    };
    json!({"samples": all.len(), "p50": at(0.5), "p99": at(0.99), "max": all.last().map_or(0.0, |us| *us as f64 / 1000.0)})
}
