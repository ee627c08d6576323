//! A client's pending acknowledgement, answered once.
//!
//! socketioxide's `AckSender` fails when the socket's packet buffer is full (128 packets) and is
//! consumed by the attempt, so answers that come in bursts (the outbox acknowledges a whole batch
//! of durable events at once) would be lost. [`Ack`] keeps the socket and the ack id and, when the
//! buffer is full, waits for room for a bounded time.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use socketioxide::adapter::Adapter;
use socketioxide::extract::AckSender;
use socketioxide::handler::FromMessageParts;
use socketioxide::socket::Socket;
use socketioxide::{SendError, SocketError};

/// How long an answer waits for room in a full socket buffer before it is dropped.
const PATIENCE: Duration = Duration::from_secs(2);
/// Pause between two tries.
const STEP: Duration = Duration::from_millis(5);

/// The acknowledgement a client waits for.
pub struct Ack<A: Adapter> {
    socket: Arc<Socket<A>>,
    id: i64,
}

impl<A: Adapter> Ack<A> {
    /// The acknowledgement `id` of `socket`.
    pub fn new(socket: Arc<Socket<A>>, id: i64) -> Self {
        Self { socket, id }
    }

    /// Answers with `data` as the callback's argument(s); waits for room when the buffer is full.
    pub fn send<T: Serialize + Send + 'static>(self, data: T) {
        if !matches!(
            self.try_send(&data),
            Err(SendError::Socket(SocketError::InternalChannelFull))
        ) {
            return;
        }
        tokio::spawn(async move {
            let until = tokio::time::Instant::now() + PATIENCE;
            loop {
                tokio::time::sleep(STEP).await;
                match self.try_send(&data) {
                    Err(SendError::Socket(SocketError::InternalChannelFull))
                        if tokio::time::Instant::now() < until => {}
                    Err(err) => {
                        tracing::debug!(sid = %self.socket.id, %err, "acknowledgement dropped");
                        return;
                    }
                    Ok(()) => return,
                }
            }
        });
    }

    fn try_send<T: Serialize>(&self, data: &T) -> Result<(), SendError> {
        // The extractor ignores the message; any value does.
        let mut unused = socketioxide_core::Value::Bytes(bytes::Bytes::new());
        let sender = AckSender::from_message_parts(&self.socket, &mut unused, &Some(self.id))
            .unwrap_or_else(|never| match never {});
        sender.send(data)
    }
}
