//! Deliveries: the record of one webhook message (durable ones, and the log of failures).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Timestamp;

/// One message to one webhook, with the outcome of its attempts.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Delivery {
    /// The `webhook-id` header value, `msg_…`.
    pub id: String,
    /// The webhook it is for.
    pub webhook_id: String,
    /// Event name, or `$connect` / `$disconnect`.
    pub event: String,
    /// The JSON body sent.
    pub payload: serde_json::Value,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: i64,
    /// When the next attempt is due, while pending.
    pub next_attempt_at: Option<Timestamp>,
    /// HTTP status of the last attempt, if any answered.
    pub last_status: Option<i64>,
    /// Error of the last attempt.
    pub last_error: Option<String>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// State of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    /// A 2xx answered.
    Delivered,
    /// Failed for good (a final 4xx, or a non-durable delivery out of retries).
    Failed,
    /// A durable delivery that used up its retry schedule.
    Dead,
}

impl DeliveryStatus {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Dead => "dead",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "pending" => Some(Self::Pending),
            "delivered" => Some(Self::Delivered),
            "failed" => Some(Self::Failed),
            "dead" => Some(Self::Dead),
            _ => None,
        }
    }
}
