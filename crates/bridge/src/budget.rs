//! The bridge's budget for `error` frames: an agent or a git host that fails in a loop must
//! not fill the session's log. At most [`ErrorBudget::PER_MINUTE`] go out a minute; the rest
//! are counted, and the next one that fits says how many were held back. Pure: time comes in.

#[derive(Debug, Default)]
pub struct ErrorBudget {
    /// When each error of the last minute went out (ms), oldest first.
    sent: Vec<u64>,
    held_back: u64,
}

/// What to do with an error message.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send it, perhaps with a note on those held back before.
    Send(String),
    /// Over the budget: counted, not sent.
    HoldBack,
}

impl ErrorBudget {
    pub const PER_MINUTE: usize = 20;

    pub fn admit(&mut self, message: String, now_ms: u64) -> Verdict {
        self.sent.retain(|at| now_ms.saturating_sub(*at) < 60_000);
        if self.sent.len() >= Self::PER_MINUTE {
            self.held_back += 1;
            return Verdict::HoldBack;
        }
        self.sent.push(now_ms);
        match std::mem::take(&mut self.held_back) {
            0 => Verdict::Send(message),
            n => Verdict::Send(format!(
                "{message} ({n} earlier error messages were not sent: more than {} a minute)",
                Self::PER_MINUTE
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twenty_a_minute_then_a_note_on_the_rest() {
        let mut budget = ErrorBudget::default();
        for i in 0..20 {
            assert_eq!(
                budget.admit(format!("e{i}"), i),
                Verdict::Send(format!("e{i}"))
            );
        }
        assert_eq!(budget.admit("e20".into(), 100), Verdict::HoldBack);
        assert_eq!(budget.admit("e21".into(), 59_000), Verdict::HoldBack);
        // A minute after the first, one fits again and tells of the two held back.
        assert_eq!(
            budget.admit("e22".into(), 60_000),
            Verdict::Send(
                "e22 (2 earlier error messages were not sent: more than 20 a minute)".into()
            )
        );
        assert_eq!(
            budget.admit("e23".into(), 60_001),
            Verdict::Send("e23".into())
        );
    }
}
