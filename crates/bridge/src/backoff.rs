//! Reconnect delays: exponential from a base, capped, with jitter so that many sandboxes
//! cut off together do not all knock again at the same instant.

use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    n_failures: u32,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff {
            base,
            max,
            n_failures: 0,
        }
    }

    /// The delay before the next attempt. `unit` is a random number in `[0, 1)`: the delay is
    /// drawn from the upper half of the current step, so it still grows steadily.
    pub fn next_delay(&mut self, unit: f64) -> Duration {
        let factor = 2u32.saturating_pow(self.n_failures.min(20));
        let step = self.base.saturating_mul(factor).min(self.max);
        self.n_failures = self.n_failures.saturating_add(1);
        let unit = unit.clamp(0.0, 1.0);
        step / 2 + step.mul_f64(unit / 2.0)
    }

    /// After a connection that worked, start again from the base.
    pub fn reset(&mut self) {
        self.n_failures = 0;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(Duration::from_millis(500), Duration::from_secs(60))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn doubles_caps_and_resets() {
        let mut backoff = Backoff::default();
        let top: Vec<Duration> = (0..10).map(|_| backoff.next_delay(1.0)).collect();
        assert_eq!(
            top,
            [500, 1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000].map(ms)
        );
        backoff.reset();
        assert_eq!(backoff.next_delay(0.0), ms(250));
        assert_eq!(backoff.next_delay(0.0), ms(500));
        assert_eq!(backoff.next_delay(0.5), ms(1500));
    }

    #[test]
    fn survives_many_failures() {
        let mut backoff = Backoff::default();
        for _ in 0..1000 {
            assert!(backoff.next_delay(0.99) <= Duration::from_secs(60));
        }
    }
}
