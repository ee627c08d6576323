//! Token-bucket rate limits: per socket (client events) and per API key (emit API).

use std::time::{Duration, Instant};

/// A sustained rate with bursts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Sustained operations per second.
    pub per_second: f64,
    /// Largest burst.
    pub burst: f64,
}

/// A token bucket: `burst` tokens, refilled at `per_second`.
#[derive(Debug)]
pub struct TokenBucket {
    rate: RateLimit,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: RateLimit) -> Self {
        Self {
            rate,
            tokens: rate.burst,
            last: Instant::now(),
        }
    }

    /// Takes one token at `now`; `false` when the bucket is empty.
    pub fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate.per_second).min(self.rate.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Time until the next token, after a refused `take`.
    pub fn wait_time(&self) -> Duration {
        Duration::from_secs_f64(((1.0 - self.tokens) / self.rate.per_second).max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_refills() {
        let mut bucket = TokenBucket::new(RateLimit {
            per_second: 10.0,
            burst: 3.0,
        });
        let t0 = bucket.last;
        assert!((0..3).all(|_| bucket.take(t0)));
        assert!(!bucket.take(t0));
        assert!(bucket.wait_time() <= Duration::from_millis(100));
        assert!(bucket.take(t0 + Duration::from_millis(100)));
        assert!(!bucket.take(t0 + Duration::from_millis(100)));
    }
}
