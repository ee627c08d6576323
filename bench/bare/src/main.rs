//! Bare socketioxide doing the bridge's job, the Rust reference of `bench/compare.mjs`: what
//! socketioxide costs on its own, so the bridge's own layers can be told from upstream's.
//!
//! The same job as `bench/node-ref/server.mjs`: JWT (HS256) checked at the handshake; every
//! client event forwarded as a Standard Webhooks-signed POST over keep-alive HTTP, in order per
//! socket, the ack answered once the webhook is queued; a REST emit endpoint (POST /v1/emit
//! `{namespace, event, data}`, bearer key) broadcasting to a namespace. Served as the bridge
//! serves (hyper's HTTP/1 builder with its smallest read buffer, 1 KiB WebSocket reads); no
//! store, no durable outbox, no rate limits, no retries, no Engine.IO 3 (v2) clients.
//!
//! Env: PORT (0 = any; the bound port is printed as `listening port=N`), JWT_SECRET,
//! WEBHOOK_URL, WEBHOOK_SECRET (whsec_…), EMIT_KEY.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, Data, Event, SocketRef, TryData};
use socketioxide::handler::ConnectHandler;
use tokio::sync::mpsc;

/// What every handler needs, read once from the environment.
struct Job {
    jwt_key: DecodingKey,
    webhook_url: String,
    signing_key: Vec<u8>,
    emit_key: String,
    http: reqwest::Client,
}

/// The user a verified token named, kept in the socket's extensions.
#[derive(Clone)]
struct UserId(Option<String>);

/// The socket's webhook queue, made on its first event.
#[derive(Clone)]
struct Queue(mpsc::UnboundedSender<String>);

/// Claims the reference reads.
#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
}

/// Why a handshake is refused.
#[derive(Debug)]
struct Unauthorized;

impl std::fmt::Display for Unauthorized {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("unauthorized")
    }
}

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let secret = env(
        "WEBHOOK_SECRET",
        "whsec_YmVuY2gtd2ViaG9vay1zZWNyZXQtMzItYnl0ZXMtb2s=",
    );
    let job = Arc::new(Job {
        jwt_key: DecodingKey::from_secret(env("JWT_SECRET", "bench-secret").as_bytes()),
        webhook_url: env("WEBHOOK_URL", "http://127.0.0.1:4000/"),
        signing_key: STANDARD
            .decode(secret.trim_start_matches("whsec_"))
            .expect("WEBHOOK_SECRET is whsec_ and base64"),
        emit_key: env("EMIT_KEY", "bench-key"),
        http: reqwest::Client::new(),
    });
    let (layer, io) = SocketIo::builder().ws_read_buffer_size(1024).build_layer();
    let on_connect = {
        let job = job.clone();
        move |socket: SocketRef| on_connect(job.clone(), socket)
    };
    let check = {
        let job = job.clone();
        move |socket: SocketRef, TryData(auth): TryData<Value>| {
            let job = job.clone();
            async move { check_token(&job, &socket, auth.ok()) }
        }
    };
    io.ns("/bench", on_connect.with(check));
    let router = Router::new()
        .route("/v1/emit", post(emit))
        .with_state((job, io))
        .layer(layer);
    serve(router).await;
}

/// Serves `router` as the bridge's listener does: HTTP/1, hyper's smallest read buffer.
async fn serve(router: Router) {
    let port: u16 = env("PORT", "0").parse().expect("PORT is a port number");
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    println!(
        "listening port={}",
        listener.local_addr().expect("address").port()
    );
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let service = TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).max_buf_size(8192);
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

/// Connect middleware: a token, when sent (`auth.token` or `?token=`), must verify.
fn check_token(job: &Job, socket: &SocketRef, auth: Option<Value>) -> Result<(), Unauthorized> {
    let from_auth = auth
        .as_ref()
        .and_then(|a| a.get("token"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let from_query = || {
        let query = socket.req_parts().uri.query()?;
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix("token="))
            .map(str::to_owned)
    };
    let Some(token) = from_auth.or_else(from_query) else {
        socket.extensions.insert(UserId(None));
        return Ok(());
    };
    let mut validation = Validation::new(Algorithm::HS256);
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<Claims>(&token, &job.jwt_key, &validation)
        .map_err(|_| Unauthorized)?
        .claims;
    socket.extensions.insert(UserId(claims.sub));
    Ok(())
}

async fn on_connect(job: Arc<Job>, socket: SocketRef) {
    socket.on_fallback(
        move |socket: SocketRef, Event(event): Event, Data(args): Data<Value>, ack: AckSender| {
            let job = job.clone();
            async move { forward(&job, &socket, event, args, ack) }
        },
    );
}

/// Queues the event's webhook on the socket's queue, then acks.
fn forward(job: &Arc<Job>, socket: &SocketRef, event: String, args: Value, ack: AckSender) {
    let user = socket.extensions.get::<UserId>().and_then(|u| u.0);
    let rooms: Vec<String> = socket.rooms().into_iter().map(|r| r.to_string()).collect();
    let body = json!({
        "type": "event",
        "namespace": socket.ns(),
        "event": event,
        "args": args,
        "ack": true,
        "socket": {"id": socket.id.to_string(), "user_id": user, "rooms": rooms},
        "timestamp": chrono::Utc::now().to_rfc3339(),
    })
    .to_string();
    let queue = match socket.extensions.get::<Queue>() {
        Some(queue) => queue,
        None => {
            let queue = Queue(spawn_sender(job.clone()));
            socket.extensions.insert(queue.clone());
            queue
        }
    };
    let _ = queue.0.send(body);
    let _ = ack.send(&json!({"ok": true}));
}

/// A socket's sender task: posts its webhooks in order, one in flight.
fn spawn_sender(job: Arc<Job>) -> mpsc::UnboundedSender<String> {
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        while let Some(body) = rx.recv().await {
            post_webhook(&job, body).await;
        }
    });
    tx
}

/// One signed POST; the answer is read and dropped.
async fn post_webhook(job: &Job, body: String) {
    let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
    let timestamp = chrono::Utc::now().timestamp().to_string();
    let mut mac = Hmac::<Sha256>::new_from_slice(&job.signing_key).expect("any key length");
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    let signature = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    let sent = job
        .http
        .post(&job.webhook_url)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp)
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await;
    if let Ok(res) = sent {
        let _ = res.bytes().await;
    }
}

/// The body of `POST /v1/emit`.
#[derive(Deserialize)]
struct Emit {
    namespace: String,
    event: String,
    data: Value,
}

/// `POST /v1/emit`: a broadcast to a namespace, with the bearer key.
async fn emit(
    State((job, io)): State<(Arc<Job>, SocketIo)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let bearer = format!("Bearer {}", job.emit_key);
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(bearer.as_str()) {
        return StatusCode::UNAUTHORIZED;
    }
    let Ok(emit) = serde_json::from_slice::<Emit>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let Some(ns) = io.of(emit.namespace.as_str()) else {
        return StatusCode::NOT_FOUND;
    };
    match ns.emit(&emit.event, &emit.data).await {
        Ok(()) => StatusCode::OK,
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}
