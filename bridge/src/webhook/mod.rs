//! Webhooks: the body, Standard Webhooks signing, sending with retries, and reply parsing.

pub mod batcher;
pub mod body;
pub mod dispatch;
pub mod openapi;
pub mod outbox;
pub mod queue_budget;
pub mod reply;
pub mod sender;
pub mod sign;

pub use dispatch::{Dispatcher, Job, Mode, OnDone, Outcome, SocketQueues};
pub use reply::Reply;
pub use sender::{Message, Sender};

/// A new delivery id, as the `webhook-id` header carries it.
pub fn message_id() -> String {
    format!("msg_{}", uuid::Uuid::now_v7().simple())
}
