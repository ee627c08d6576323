//! Durations as operators write them (`250ms`, `5s`, `2m`), and the durable retry schedule built
//! from them (a list of delays, with jitter, honouring `Retry-After`): read by the configuration,
//! used by the outbox.

use std::time::Duration;

/// Delays between the attempts of a durable delivery; one attempt more than delays, then `dead`.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule(Vec<Duration>);

/// The default: 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 2 h, 4 h, 8 h (about 15 h in all).
pub const DEFAULT_SCHEDULE: &str = "5s,30s,2m,10m,30m,1h,2h,4h,8h";

impl Schedule {
    /// Parses `5s,30s,2m,…` (units ms, s, m, h, d); an empty list means a single attempt.
    pub fn parse(text: &str) -> Result<Self, String> {
        let delays = text
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(parse_duration)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self(delays))
    }

    /// When to try again after `attempts` failed attempts: the scheduled delay with ±20 %
    /// jitter, or the server's `Retry-After` when that is later; `None` once the schedule is used up.
    pub fn next_delay(&self, attempts: i64, retry_after: Option<Duration>) -> Option<Duration> {
        let index = usize::try_from(attempts.checked_sub(1)?).ok()?;
        let base = *self.0.get(index)?;
        let jittered = base.mul_f64(rand::random_range(0.8..=1.2));
        Some(retry_after.map_or(jittered, |after| after.max(jittered)))
    }

    /// Total attempts a delivery gets.
    pub fn attempts(&self) -> usize {
        self.0.len() + 1
    }
}

/// `250ms`, `5s`, `2m`, `1h`, `7d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?} has no unit (ms, s, m, h or d)"))?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} does not start with a whole number"))?;
    let ms = match unit {
        "ms" => Some(n),
        "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        "d" => n.checked_mul(86_400_000),
        _ => return Err(format!("{text:?}: unit must be ms, s, m, h or d")),
    };
    ms.map(Duration::from_millis)
        .ok_or_else(|| format!("{text:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_schedule_is_about_fifteen_hours() {
        let s = Schedule::parse(DEFAULT_SCHEDULE).unwrap();
        assert_eq!(s.attempts(), 10);
        let total: Duration = s.0.iter().sum();
        assert_eq!(
            total,
            Duration::from_secs(5 + 30 + 120 + 600 + 1800 + 3600 * 15)
        );
    }

    #[test]
    fn delays_have_jitter_honour_retry_after_and_end() {
        let s = Schedule::parse("100ms, 1s").unwrap();
        for _ in 0..50 {
            let d = s.next_delay(1, None).unwrap();
            assert!(
                d >= Duration::from_millis(80) && d <= Duration::from_millis(120),
                "{d:?}"
            );
        }
        assert_eq!(
            s.next_delay(1, Some(Duration::from_secs(30))),
            Some(Duration::from_secs(30))
        );
        assert!(
            s.next_delay(2, Some(Duration::from_millis(1))).unwrap() >= Duration::from_millis(800)
        );
        assert_eq!(s.next_delay(3, None), None);
        assert_eq!(s.next_delay(0, None), None);
        assert_eq!(Schedule::parse("").unwrap().attempts(), 1);
    }

    #[test]
    fn durations_need_a_known_unit() {
        assert_eq!(
            parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86_400)
        );
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        for bad in ["5", "s", "5x", "-1s", "1.5s", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
