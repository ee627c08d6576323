//! Group commit: tasks write what arrives on a channel in batches, so the items that arrive while
//! a write is in flight go together in the next one. Several writers may share one channel: while
//! one waits for its commit (an fsync), the next gathers and sends its batch.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Mutex, mpsc};

/// Largest batch in bytes (bodies); rows are capped by `admin_api::store::MAX_BATCH_ROWS`.
pub const MAX_BATCH_BYTES: usize = 4 << 20;

/// Something with a size in bytes, for batching.
pub trait Weighed {
    /// Its size.
    fn bytes(&self) -> usize;
}

/// Takes batches from `rx` and hands each to `write`, until every sender is gone.
pub async fn run<T, F, Fut>(rx: Arc<Mutex<mpsc::Receiver<T>>>, max_rows: usize, mut write: F)
where
    T: Weighed,
    F: FnMut(Vec<T>) -> Fut,
    Fut: Future<Output = ()>,
{
    while let Some(batch) = next_batch(&rx, max_rows).await {
        write(batch).await;
    }
}

/// Waits for one item, then takes whatever else is already there, within the caps.
async fn next_batch<T: Weighed>(rx: &Mutex<mpsc::Receiver<T>>, max_rows: usize) -> Option<Vec<T>> {
    let mut rx = rx.lock().await;
    let first = rx.recv().await?;
    let mut bytes = first.bytes();
    let mut batch = vec![first];
    while batch.len() < max_rows && bytes < MAX_BATCH_BYTES {
        match rx.try_recv() {
            Ok(item) => {
                bytes += item.bytes();
                batch.push(item);
            }
            Err(_) => break,
        }
    }
    Some(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Weighed for usize {
        fn bytes(&self) -> usize {
            *self
        }
    }

    #[tokio::test]
    async fn what_waits_goes_in_one_batch_within_the_caps() {
        let (tx, rx) = mpsc::channel(100);
        for n in [1, 2, 3, MAX_BATCH_BYTES, 5, 6] {
            tx.send(n).await.unwrap();
        }
        drop(tx);
        let mut batches = Vec::new();
        run(Arc::new(Mutex::new(rx)), 2, |batch| {
            batches.push(batch);
            async {}
        })
        .await;
        assert_eq!(
            batches,
            vec![vec![1, 2], vec![3, MAX_BATCH_BYTES], vec![5, 6]]
        );
    }
}
