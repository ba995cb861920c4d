//! How long to wait before trying a request again: the one backoff rule the listing and the
//! runner share.

use std::time::Duration;

/// Exponential backoff with jitter: `base * 2^(round-1)`, capped at `cap`, then a random point
/// in its upper half, so requests that failed together (20 listing pages, 8 workers) do not all
/// come back at the same instant. Round 0 counts as round 1.
pub fn backoff(round: u32, base: Duration, cap: Duration) -> Duration {
    let full = backoff_ceiling(round, base, cap);
    let half = full / 2;
    let spread = u64::try_from((full - half).as_millis()).unwrap_or(u64::MAX);
    let extra = if spread == 0 {
        0
    } else {
        rand::Rng::gen_range(&mut rand::thread_rng(), 0..=spread)
    };
    (half + Duration::from_millis(extra)).min(full)
}

/// The longest wait [`backoff`] may pick for `round`: `base * 2^(round-1)`, capped.
pub fn backoff_ceiling(round: u32, base: Duration, cap: Duration) -> Duration {
    let factor = 2u32.saturating_pow(round.saturating_sub(1).min(20));
    base.saturating_mul(factor).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_doubles_and_is_capped() {
        let base = Duration::from_millis(500);
        let cap = Duration::from_secs(30);
        assert_eq!(backoff_ceiling(0, base, cap), base);
        assert_eq!(backoff_ceiling(1, base, cap), base);
        assert_eq!(backoff_ceiling(2, base, cap), Duration::from_secs(1));
        assert_eq!(backoff_ceiling(4, base, cap), Duration::from_secs(4));
        assert_eq!(backoff_ceiling(10, base, cap), cap);
        assert_eq!(backoff_ceiling(u32::MAX, base, cap), cap);
        assert_eq!(backoff_ceiling(u32::MAX, Duration::MAX, cap), cap);
    }

    #[test]
    fn the_wait_is_jittered_within_the_upper_half() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(60);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let first = backoff(1, base, cap);
            assert!(first >= base / 2 && first <= base, "{first:?}");
            let third = backoff(3, base, cap);
            assert!(
                third >= Duration::from_millis(200) && third <= Duration::from_millis(400),
                "{third:?}"
            );
            let late = backoff(40, base, cap);
            assert!(late >= cap / 2 && late <= cap, "{late:?}");
            seen.insert(third);
        }
        assert!(seen.len() > 1, "the wait must vary between tries");
        assert_eq!(backoff(1, Duration::ZERO, cap), Duration::ZERO);
    }
}
