//! Deliveries: the record of one webhook message (durable ones, and the log of failures).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Timestamp;

/// Attempts kept in a delivery's history; older ones are dropped first.
pub const MAX_HISTORY: usize = 20;

/// One message to one webhook, as listings show it (without payload and history).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliverySummary {
    /// The `webhook-id` header value, `msg_…`.
    pub id: String,
    /// The webhook it is for.
    pub webhook_id: String,
    /// Event name: the client event, or the lifecycle event (`$connect`, `$join`, …).
    pub event: String,
    /// The socket whose event it carries, when known.
    pub socket_id: Option<String>,
    /// The body's per-socket sequence number, when known.
    pub seq: Option<i64>,
    /// Size of the body in bytes.
    pub size: i64,
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

/// One delivery with its body and the history of its attempts.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Delivery {
    /// The listing fields.
    #[serde(flatten)]
    pub summary: DeliverySummary,
    /// The JSON body sent.
    pub payload: serde_json::Value,
    /// The last attempts (at most 20), oldest first.
    pub history: Vec<AttemptRecord>,
}

/// One HTTP attempt of a delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AttemptRecord {
    /// When it started.
    pub at: Timestamp,
    /// HTTP status, when one came back.
    pub status: Option<i64>,
    /// What went wrong, for a failed attempt.
    pub error: Option<String>,
    /// How long it took, in milliseconds.
    pub duration_ms: i64,
}

/// Appends `record` to a history, keeping the last [`MAX_HISTORY`] entries.
pub fn push_history(history: &mut Vec<AttemptRecord>, record: AttemptRecord) {
    history.push(record);
    if history.len() > MAX_HISTORY {
        let excess = history.len() - MAX_HISTORY;
        history.drain(..excess);
    }
}

/// State of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_keeps_the_last_entries() {
        let mut history = Vec::new();
        for n in 0..25 {
            push_history(
                &mut history,
                AttemptRecord {
                    at: Timestamp(n),
                    status: Some(500),
                    error: None,
                    duration_ms: 1,
                },
            );
        }
        assert_eq!(history.len(), MAX_HISTORY);
        assert_eq!(history[0].at, Timestamp(5));
        let json = serde_json::to_string(&history[0]).unwrap();
        let back: AttemptRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back, history[0]);
    }
}
