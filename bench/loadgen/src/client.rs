//! One Socket.IO client over an Engine.IO 4 WebSocket: connects to a namespace, answers
//! heartbeats, records broadcast latencies and emits events with acknowledgements.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// What every client of a run adds to.
pub struct Shared {
    start: Instant,
    /// Broadcast messages received.
    pub received: AtomicU64,
    /// Clients whose connection ended before the run did.
    pub dropped: AtomicU64,
    /// Heartbeats answered.
    pub pongs: AtomicU64,
    latencies_us: Mutex<Vec<u64>>,
}

impl Default for Shared {
    fn default() -> Self {
        Self {
            start: Instant::now(),
            received: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            pongs: AtomicU64::new(0),
            latencies_us: Mutex::new(Vec::new()),
        }
    }
}

impl Shared {
    /// Microseconds since the run started: the clock broadcasts carry.
    pub fn now_micros(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn record(&self, micros: u64) {
        self.record_all(&[micros]);
    }

    fn record_all(&self, micros: &[u64]) {
        self.latencies_us
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(micros);
    }

    /// p50, p99 and max of the recorded latencies, in milliseconds.
    pub fn latency_summary(&self) -> Value {
        let mut all = self
            .latencies_us
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        all.sort_unstable();
        let at = |p: f64| {
            let idx = ((p * all.len() as f64) as usize).min(all.len().saturating_sub(1));
            all.get(idx).map_or(0.0, |us| *us as f64 / 1000.0)
        };
        json!({"count": all.len(), "p50": at(0.50), "p99": at(0.99), "max": at(1.0)})
    }
}

/// What the connection's task is asked to do.
enum Command {
    /// Emit `events` events one after the other, each waiting for its ack, until `end`; answer
    /// how many were acked and each one's latency (microseconds).
    Forward {
        events: u64,
        end: Instant,
        done: oneshot::Sender<(u64, Vec<u64>)>,
    },
}

/// A connected client; dropping it closes its connection.
pub struct Client {
    commands: mpsc::UnboundedSender<Command>,
    closing: Arc<AtomicBool>,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.closing.store(true, Ordering::Release);
        self.task.abort();
    }
}

/// What a desktop Chrome adds to a WebSocket handshake, with a cookie of 436 bytes (analytics
/// and session cookies of a typical site): `--browser-headers`.
const BROWSER_HEADERS: [(&str, &str); 8] = [
    ("origin", "https://app.example.com"),
    (
        "user-agent",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    ),
    ("pragma", "no-cache"),
    ("cache-control", "no-cache"),
    ("accept-encoding", "gzip, deflate, br, zstd"),
    ("accept-language", "en-US,en;q=0.9,fr;q=0.8"),
    (
        "sec-websocket-extensions",
        "permessage-deflate; client_max_window_bits",
    ),
    (
        "cookie",
        "_ga=GA1.1.1234567890.1732600000; _ga_ABCDEF1234=GS1.1.1732600000.1.1.1732600100.0.0.0; _gid=GA1.2.987654321.1732600000; session=eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyLTEyMzQ1Njc4OTAiLCJpYXQiOjE3MzI2MDAwMDB9.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU; csrftoken=Zk9xV2p3bE1uT3BRclN0VXZXeFl6QWJDZEVmR2hJaktsTW5PcFFyU3Q; theme=dark; locale=en-US; consent=analytics%3Dtrue%2Cmarketing%3Dfalse; _fbp=fb.1.1732600000000.1234567890",
    ),
];

impl Client {
    /// Opens the WebSocket, reads the open packet and connects to `namespace`: as a v4 client
    /// (Engine.IO 4, token in the auth payload) or a v2 one (Engine.IO 3, token in the query,
    /// the client sending the heartbeats).
    pub async fn connect(
        base: &str,
        namespace: &str,
        token: Option<&str>,
        v2: bool,
        browser: bool,
        shared: Arc<Shared>,
    ) -> Result<Self, String> {
        let query = match (v2, token) {
            (true, Some(t)) => format!("EIO=3&transport=websocket&token={t}"),
            (true, None) => "EIO=3&transport=websocket".to_owned(),
            (false, _) => "EIO=4&transport=websocket".to_owned(),
        };
        let url = format!("{}/socket.io/?{query}", base.replacen("http", "ws", 1));
        let mut request = url
            .into_client_request()
            .map_err(|e| format!("request: {e}"))?;
        if browser {
            for (name, value) in BROWSER_HEADERS {
                request
                    .headers_mut()
                    .insert(name, HeaderValue::from_static(value));
            }
        }
        let (mut ws, _) = tokio_tungstenite::connect_async(request)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let open = next_text(&mut ws).await?;
        let Some(handshake) = open.strip_prefix('0') else {
            return Err(format!("expected the open packet, got {open:?}"));
        };
        let ping_interval = serde_json::from_str::<Value>(handshake)
            .ok()
            .and_then(|h| h["pingInterval"].as_u64())
            .unwrap_or(25_000);
        // Namespace prefix of packets: "" for "/", "/chat," otherwise.
        let prefix = if namespace == "/" {
            String::new()
        } else {
            format!("{namespace},")
        };
        let connect = if v2 {
            // Engine.IO 3 clients put the query in the CONNECT packet of a custom namespace.
            match token {
                Some(t) if namespace != "/" => format!("40{namespace}?token={t},"),
                _ => format!("40{prefix}"),
            }
        } else {
            let auth = token.map_or(String::new(), |t| json!({ "token": t }).to_string());
            format!("40{prefix}{auth}")
        };
        ws.send(Message::text(connect))
            .await
            .map_err(|e| format!("send CONNECT: {e}"))?;
        loop {
            let frame = next_text(&mut ws).await?;
            if frame == "2" {
                ws.send(Message::text("3"))
                    .await
                    .map_err(|e| e.to_string())?;
            } else if frame.starts_with(&format!("40{prefix}")) {
                break;
            } else if frame.starts_with(&format!("44{prefix}")) {
                return Err(format!("refused: {frame}"));
            }
        }
        let (commands, mut incoming) = mpsc::unbounded_channel::<Command>();
        let closing = Arc::new(AtomicBool::new(false));
        let task = {
            let (closing, shared) = (closing.clone(), shared.clone());
            tokio::spawn(async move {
                // Engine.IO 3: the client pings, the server answers.
                let ping_every = v2.then(|| Duration::from_millis(ping_interval));
                let mut conn = Connection::new(ws, prefix, shared.clone(), ping_every);
                loop {
                    let alive = tokio::select! {
                        () = tokio::time::sleep_until(conn.next_ping.into()), if v2 => conn.ping().await,
                        frame = conn.ws.next() => match frame {
                            Some(Ok(Message::Text(text))) => conn.on_frame(text.as_str()).await,
                            _ => false,
                        },
                        Some(Command::Forward { events, end, done }) = incoming.recv() => {
                            let (acked, latencies, alive) = conn.forward(events, end).await;
                            let _ = done.send((acked, latencies));
                            alive
                        }
                    };
                    if !alive {
                        if !closing.load(Ordering::Acquire) {
                            shared.dropped.fetch_add(1, Ordering::Relaxed);
                        }
                        return;
                    }
                }
            })
        };
        Ok(Self {
            commands,
            closing,
            shared,
            task,
        })
    }

    /// Emits `events` events one after the other, each waiting for its ack (at most `deadline`
    /// in all); returns how many were acked. The connection's own task emits and reads the acks,
    /// so an event costs the load generator one write and one read, no hand-over between tasks.
    pub async fn emit_with_acks(&self, events: u64, deadline: Duration) -> u64 {
        let (done, result) = oneshot::channel();
        let end = Instant::now() + deadline;
        if self
            .commands
            .send(Command::Forward { events, end, done })
            .is_err()
        {
            return 0;
        }
        let (acked, latencies) = result.await.unwrap_or_default();
        self.shared.record_all(&latencies);
        acked
    }
}

type WebSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A connection as its task drives it.
struct Connection {
    ws: WebSocket,
    shared: Arc<Shared>,
    /// `42<namespace>,` and `43<namespace>,`: the prefixes of events and acks.
    event_prefix: String,
    ack_prefix: String,
    next_ack: u64,
    /// An Engine.IO 3 client's heartbeat: how often, and when next.
    ping_every: Option<Duration>,
    next_ping: Instant,
}

impl Connection {
    fn new(
        ws: WebSocket,
        prefix: String,
        shared: Arc<Shared>,
        ping_every: Option<Duration>,
    ) -> Self {
        Self {
            ws,
            shared,
            event_prefix: format!("42{prefix}"),
            ack_prefix: format!("43{prefix}"),
            next_ack: 1,
            ping_every,
            next_ping: Instant::now() + ping_every.unwrap_or_default(),
        }
    }

    async fn send(&mut self, message: Message) -> bool {
        self.ws.send(message).await.is_ok()
    }

    /// Sends an Engine.IO 3 ping and schedules the next.
    async fn ping(&mut self) -> bool {
        self.next_ping = Instant::now() + self.ping_every.unwrap_or_default();
        self.send(Message::text("2")).await
    }

    /// Answers a heartbeat or records a broadcast; `false` when the connection is gone.
    async fn on_frame(&mut self, text: &str) -> bool {
        match text {
            "2" => {
                self.shared.pongs.fetch_add(1, Ordering::Relaxed);
                self.send(Message::text("3")).await
            }
            "3" => {
                self.shared.pongs.fetch_add(1, Ordering::Relaxed);
                true
            }
            _ => {
                if let Some(body) = text.strip_prefix(self.event_prefix.as_str()) {
                    on_broadcast(body, &self.shared);
                }
                true
            }
        }
    }

    /// The id of `text` when it is an ack.
    fn ack_id(&self, text: &str) -> Option<u64> {
        let rest = text.strip_prefix(self.ack_prefix.as_str())?;
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        rest[..digits].parse().ok()
    }

    /// The forward workload on this connection: how many were acked, their latencies, and
    /// whether the connection is still up.
    async fn forward(&mut self, events: u64, end: Instant) -> (u64, Vec<u64>, bool) {
        let mut latencies = Vec::with_capacity(usize::try_from(events).unwrap_or(0));
        let alive = self.forward_into(events, end, &mut latencies).await;
        (latencies.len() as u64, latencies, alive)
    }

    /// Emits and awaits each ack in turn until `events` were acked or `end`; `false` when the
    /// connection ended.
    async fn forward_into(&mut self, events: u64, end: Instant, latencies: &mut Vec<u64>) -> bool {
        for i in 0..events {
            if self.ping_every.is_some() && Instant::now() >= self.next_ping && !self.ping().await {
                return false;
            }
            let id = self.next_ack;
            self.next_ack += 1;
            let sent = Instant::now();
            // `t`: wall-clock microseconds, for the receiver's emit-to-receipt latency.
            let packet = format!(
                "{}{id}[\"tick\",{{\"i\":{i},\"t\":{}}}]",
                self.event_prefix,
                crate::receiver::wall_micros()
            );
            if !self.send(Message::text(packet)).await {
                return false;
            }
            loop {
                // An Engine.IO 3 client keeps pinging while it waits.
                let wake = match self.ping_every {
                    Some(_) => end.min(self.next_ping),
                    None => end,
                };
                let frame = match tokio::time::timeout_at(wake.into(), self.ws.next()).await {
                    Ok(Some(Ok(Message::Text(text)))) => text,
                    Ok(Some(Ok(_))) => continue,
                    Ok(_) => return false,
                    Err(_) if Instant::now() >= end => return true,
                    Err(_) => {
                        if !self.ping().await {
                            return false;
                        }
                        continue;
                    }
                };
                if self.ack_id(frame.as_str()) == Some(id) {
                    break;
                }
                if !self.on_frame(frame.as_str()).await {
                    return false;
                }
            }
            latencies.push(u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX));
        }
        true
    }
}

/// A broadcast `["bench", {"t": micros}]`: the latency from the request that carried it.
fn on_broadcast(body: &str, shared: &Shared) {
    if let Ok(Value::Array(items)) = serde_json::from_str::<Value>(body)
        && let Some(t) = items.get(1).and_then(|d| d["t"].as_u64())
    {
        shared.record(shared.now_micros().saturating_sub(t));
    }
    shared.received.fetch_add(1, Ordering::Relaxed);
}

async fn next_text<S>(ws: &mut S) -> Result<String, String>
where
    S: StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => return Ok(text.to_string()),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => return Err(e.to_string()),
            Ok(None) => return Err("closed".into()),
            Err(_) => return Err("no frame within 10 s".into()),
        }
    }
}
