//! The webhook receiver of the benchmarks: answers every POST `200 {}` once its body is read, and
//! `GET /count` with how many it has received. In Rust so that a forwarding server's rate is not
//! bound by its receiver (a Node.js `http` server took most of a core at the bridge's rate).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Serves on 127.0.0.1:`port` (0: any) until the process is stopped; prints `listening port=N`.
pub async fn run(port: u16) -> Result<(), String> {
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| format!("bind: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?.port();
    println!("listening port={bound}");
    let received = Arc::new(AtomicU64::new(0));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let received = received.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| answer(req, received.clone()));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// `GET` answers the count; anything else is a webhook: read, counted, `200 {}`.
async fn answer(
    req: Request<Incoming>,
    received: Arc<AtomicU64>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() == Method::GET {
        let count = received.load(Ordering::Relaxed).to_string();
        return Ok(Response::new(Full::new(Bytes::from(count))));
    }
    // A body cut short is not a delivery.
    if req.into_body().collect().await.is_ok() {
        received.fetch_add(1, Ordering::Relaxed);
    }
    let mut res = Response::new(Full::new(Bytes::from_static(b"{}")));
    res.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(res)
}
