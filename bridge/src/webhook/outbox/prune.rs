//! Retention: delivered rows go after `delivered_retention`, failed and dead ones after
//! `failed_retention`, deleted in bounded batches in the background.

use std::sync::Arc;
use std::time::Duration;

use admin_api::model::{DeliveryStatus, Timestamp};

use super::{Outbox, millis, pause};

/// Rows deleted per statement.
const PRUNE_BATCH: i64 = 1000;

/// How often to prune: every minute, more often for retentions under four minutes.
pub fn interval(shortest_retention: Duration) -> Duration {
    (shortest_retention / 4).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// Prunes until the outbox shuts down.
pub async fn prune_loop(outbox: Arc<Outbox>) {
    let config = &outbox.config;
    let every = interval(config.delivered_retention.min(config.failed_retention));
    let mut stop = outbox.stop.subscribe();
    while pause(&mut stop, every).await {
        let now = Timestamp::now().0;
        for (status, keep) in [
            (DeliveryStatus::Delivered, config.delivered_retention),
            (DeliveryStatus::Failed, config.failed_retention),
            (DeliveryStatus::Dead, config.failed_retention),
        ] {
            prune(&outbox, status, now - millis(keep)).await;
        }
    }
}

async fn prune(outbox: &Outbox, status: DeliveryStatus, before: i64) {
    loop {
        match outbox
            .store
            .prune_deliveries(status, before, PRUNE_BATCH)
            .await
        {
            Ok(n) => {
                metrics::counter!(crate::metrics::DELIVERIES_PRUNED, "status" => status.as_str())
                    .increment(n);
                if n < PRUNE_BATCH as u64 {
                    return;
                }
                // Let other writers in between batches.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(err) => {
                tracing::debug!(%err, "cannot prune deliveries");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_follows_short_retentions_within_bounds() {
        assert_eq!(
            interval(Duration::from_secs(7 * 86_400)),
            Duration::from_secs(60)
        );
        assert_eq!(interval(Duration::from_secs(8)), Duration::from_secs(2));
        assert_eq!(interval(Duration::from_millis(10)), Duration::from_secs(1));
    }
}
