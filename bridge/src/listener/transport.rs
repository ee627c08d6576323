//! An accepted connection's transport: writes to a client that stopped reading fail after the
//! write timeout, a killed connection fails every read and write, and an Engine.IO 3 WebSocket's
//! reads pass through the CONNECT rewriter.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncRead;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

use super::{Connections, Gauge, Kill};
use crate::v2_connect::frames::ConnectRewriter;

/// The connection's transport with its slot: a WebSocket upgrade takes the transport over, so
/// the slot (and the gauge) stay taken until the WebSocket closes, not just its handshake.
///
/// Writes that wait for room longer than the write timeout fail. A client that stops reading
/// would otherwise block its WebSocket writer forever, and engineioxide's heartbeat close waits
/// behind that writer: the socket would stay listed, holding its queued messages.
pub(super) struct Held {
    io: TokioIo<TcpStream>,
    write_timeout: Duration,
    /// Running while a write waits for room.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Set once a write timed out or the connection was closed from elsewhere: reads and
    /// writes fail from then on.
    kill: Arc<Kill>,
    remote: SocketAddr,
    connections: Arc<Connections>,
    listener: &'static str,
    /// For an Engine.IO 3 WebSocket: its CONNECT frames' rewriter and what it has produced.
    v2: Option<Box<V2Reads>>,
    _slot: OwnedSemaphorePermit,
    _gauge: Gauge,
}

impl Held {
    /// Wraps an accepted stream; `slot` and `gauge` are released when the transport is dropped.
    pub(super) fn new(
        stream: TcpStream,
        limits: &super::Limits,
        remote: SocketAddr,
        connections: Arc<Connections>,
        listener: &'static str,
        slot: OwnedSemaphorePermit,
    ) -> Self {
        Held {
            io: TokioIo::new(stream),
            write_timeout: limits.write_timeout,
            stalled: None,
            kill: connections.add(remote),
            remote,
            connections,
            listener,
            v2: None,
            _slot: slot,
            _gauge: Gauge::open(listener),
        }
    }
}

/// The read side of an Engine.IO 3 WebSocket.
#[derive(Default)]
struct V2Reads {
    rewriter: ConnectRewriter,
    /// Rewritten bytes not read yet.
    ready: BytesMut,
}

impl Held {
    /// One write through `write`: fails on a dead connection; a write that cannot proceed
    /// waits for room under the write timeout; one that does clears the timer.
    fn write_with(
        &mut self,
        cx: &mut Context<'_>,
        write: impl FnOnce(&mut TokioIo<TcpStream>, &mut Context<'_>) -> Poll<std::io::Result<usize>>,
    ) -> Poll<std::io::Result<usize>> {
        if self.kill.is_dead() {
            return Poll::Ready(Err(closed()));
        }
        match write(&mut self.io, cx) {
            Poll::Pending => self.wait_for_room(cx),
            ready => {
                self.stalled = None;
                ready
            }
        }
    }

    /// What a write that could not proceed returns: still pending, or an error past the timeout.
    fn wait_for_room<T>(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<T>> {
        let timeout = self.write_timeout;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match stalled.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => {
                self.stalled = None;
                self.kill.kill();
                metrics::counter!(crate::metrics::SLOW_READERS_CLOSED, "listener" => self.listener)
                    .increment(1);
                tracing::info!(
                    listener = self.listener,
                    "closing a connection whose client stopped reading"
                );
                Poll::Ready(Err(stopped_reading()))
            }
        }
    }
}

fn stopped_reading() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "the client stopped reading")
}

fn closed() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        "connection closed by the bridge",
    )
}

impl Held {
    /// Reads through the CONNECT rewriter: raw bytes in, rewritten bytes out.
    fn poll_read_v2(
        &mut self,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        let Held { io, v2, .. } = self;
        let Some(v2) = v2.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        loop {
            if !v2.ready.is_empty() {
                let n = v2.ready.len().min(buf.remaining());
                buf.put_slice(&v2.ready[..n]);
                v2.ready.advance(n);
                if v2.ready.is_empty() {
                    // Idle connections keep nothing.
                    v2.ready = BytesMut::new();
                }
                return Poll::Ready(Ok(()));
            }
            let mut raw = [0u8; 1024];
            let mut raw_buf = tokio::io::ReadBuf::new(&mut raw);
            match Pin::new(io.inner_mut()).poll_read(cx, &mut raw_buf) {
                Poll::Ready(Ok(())) if raw_buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => v2.rewriter.feed(raw_buf.filled(), &mut v2.ready),
                other => return other,
            }
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.connections.remove(&self.remote, &self.kill);
    }
}

impl hyper::rt::Read for Held {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.kill.is_dead() {
            return Poll::Ready(Err(closed()));
        }
        if self.v2.is_none() && self.kill.v2_connects.load(Ordering::Acquire) {
            self.v2 = Some(Box::default());
        }
        let read = if self.v2.is_some() {
            self.poll_read_v2(cx, buf)
        } else {
            Pin::new(&mut self.io).poll_read(cx, buf)
        };
        if read.is_pending() {
            *self.kill.reader.lock().unwrap_or_else(|e| e.into_inner()) = Some(cx.waker().clone());
            // Killed between the check and the registration: wake now rather than never.
            if self.kill.is_dead() {
                cx.waker().wake_by_ref();
            }
        }
        read
    }
}

impl hyper::rt::Write for Held {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.write_with(cx, |io, cx| Pin::new(io).poll_write(cx, buf))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.write_with(cx, |io, cx| Pin::new(io).poll_write_vectored(cx, bufs))
    }
}
