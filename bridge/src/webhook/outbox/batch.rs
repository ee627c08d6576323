//! Group commit: one task writes what arrives on a channel in batches, so the items that arrive
//! while one write is in flight go together in the next one.

use std::future::Future;

use tokio::sync::mpsc;

/// Largest batch in bytes (bodies); rows are capped by `admin_api::store::MAX_BATCH_ROWS`.
pub const MAX_BATCH_BYTES: usize = 4 << 20;

/// Something with a size in bytes, for batching.
pub trait Weighed {
    /// Its size.
    fn bytes(&self) -> usize;
}

/// Takes batches from `rx` and hands each to `write`, until every sender is gone.
pub async fn run<T, F, Fut>(mut rx: mpsc::Receiver<T>, max_rows: usize, mut write: F)
where
    T: Weighed,
    F: FnMut(Vec<T>) -> Fut,
    Fut: Future<Output = ()>,
{
    while let Some(first) = rx.recv().await {
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
        write(batch).await;
    }
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
        run(rx, 2, |batch| {
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
