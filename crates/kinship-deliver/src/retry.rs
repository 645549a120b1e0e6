//! When to try again: exponential backoff with full jitter, capped, and never sooner than the
//! receiver's `Retry-After` (itself capped, so a hostile answer cannot park a delivery forever).

use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub first: Duration,
    pub cap: Duration,
}

impl Default for Schedule {
    /// 1 s, 2 s, 4 s … up to an hour: twelve attempts span about a day and a half.
    fn default() -> Self {
        Self { first: Duration::from_secs(1), cap: Duration::from_secs(3600) }
    }
}

/// The wait before attempt `attempts + 1`, given `attempts` made. `unit` in [0, 1) is the
/// jitter (random, from the caller). The wait is between half and all of the exponential step,
/// so retries of many deliveries spread out but none comes back immediately.
pub fn next_attempt_in(schedule: Schedule, attempts: u32, retry_after: Option<Duration>, unit: f64) -> Duration {
    let step = schedule.first.saturating_mul(1u32.checked_shl(attempts.saturating_sub(1).min(30)).unwrap_or(u32::MAX)).min(schedule.cap);
    let jittered = step.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0));
    match retry_after {
        Some(after) => jittered.max(after.min(schedule.cap)),
        None => jittered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_with_jitter_up_to_the_cap_and_honour_retry_after() {
        let s = Schedule::default();
        assert_eq!(next_attempt_in(s, 1, None, 1.0), Duration::from_secs(1));
        assert_eq!(next_attempt_in(s, 3, None, 1.0), Duration::from_secs(4));
        assert_eq!(next_attempt_in(s, 3, None, 0.0), Duration::from_secs(2));
        assert_eq!(next_attempt_in(s, 40, None, 1.0), Duration::from_secs(3600));
        assert_eq!(next_attempt_in(s, 1, Some(Duration::from_secs(30)), 0.0), Duration::from_secs(30));
        assert_eq!(next_attempt_in(s, 1, Some(Duration::from_secs(1 << 40)), 0.0), Duration::from_secs(3600));
    }
}
