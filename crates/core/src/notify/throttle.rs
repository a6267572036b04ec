//! No floods: the same kind from the same node is mailed at most once per window. Occurrences inside the window
//! are counted; the next mail (the next occurrence after the window, or a summary when the window closes)
//! reports them.

use chrono::{DateTime, Utc};
use std::time::Duration;

/// What is remembered per kind and node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Throttle {
    pub last_mailed_at: DateTime<Utc>,
    /// Occurrences since the last mail that were not mailed.
    pub repeats: u32,
    /// When the first of them happened.
    pub repeats_since: Option<DateTime<Utc>>,
}

/// What to do with an occurrence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Mail it, reporting the earlier occurrences that were only counted.
    Mail { repeats: u32, since: Option<DateTime<Utc>> },
    /// Count it for the next mail.
    Count,
}

fn window_end(state: &Throttle, window: Duration) -> DateTime<Utc> {
    state.last_mailed_at + chrono::Duration::from_std(window).unwrap_or(chrono::TimeDelta::MAX)
}

/// Decides about an occurrence at `now`; returns the decision and the state to remember.
pub fn decide(state: Option<&Throttle>, now: DateTime<Utc>, window: Duration) -> (Decision, Throttle) {
    match state {
        Some(s) if now < window_end(s, window) => {
            (Decision::Count, Throttle { repeats: s.repeats + 1, repeats_since: s.repeats_since.or(Some(now)), ..*s })
        }
        Some(s) => (
            Decision::Mail { repeats: s.repeats, since: s.repeats_since },
            Throttle { last_mailed_at: now, repeats: 0, repeats_since: None },
        ),
        None => (
            Decision::Mail { repeats: 0, since: None },
            Throttle { last_mailed_at: now, repeats: 0, repeats_since: None },
        ),
    }
}

/// Whether the window closed on counted occurrences that no mail reported yet: they get a summary mail now,
/// which opens a new window.
pub fn summary_due(state: &Throttle, now: DateTime<Utc>, window: Duration) -> bool {
    state.repeats > 0 && now >= window_end(state, window)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(minutes: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::minutes(minutes)
    }
    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn first_occurrence_is_mailed_repeats_in_the_window_are_counted() {
        let (d, s) = decide(None, t(0), HOUR);
        assert_eq!(d, Decision::Mail { repeats: 0, since: None });
        let (d, s) = decide(Some(&s), t(10), HOUR);
        assert_eq!(d, Decision::Count);
        let (d, s) = decide(Some(&s), t(20), HOUR);
        assert_eq!(d, Decision::Count);
        assert_eq!((s.repeats, s.repeats_since, s.last_mailed_at), (2, Some(t(10)), t(0)));
        assert!(!summary_due(&s, t(59), HOUR));
        // After the window the next occurrence is mailed with the count.
        let (d, s) = decide(Some(&s), t(61), HOUR);
        assert_eq!(d, Decision::Mail { repeats: 2, since: Some(t(10)) });
        assert_eq!((s.repeats, s.last_mailed_at), (0, t(61)));
    }

    #[test]
    fn a_window_that_closes_on_counted_repeats_is_due_a_summary() {
        let (_, s) = decide(None, t(0), HOUR);
        assert!(!summary_due(&s, t(120), HOUR), "nothing counted, nothing to report");
        let (_, s) = decide(Some(&s), t(5), HOUR);
        assert!(!summary_due(&s, t(59), HOUR));
        assert!(summary_due(&s, t(60), HOUR));
    }

    #[test]
    fn the_window_is_configurable() {
        let (_, s) = decide(None, t(0), Duration::from_secs(60));
        assert_eq!(decide(Some(&s), t(1), Duration::from_secs(60)).0, Decision::Mail { repeats: 0, since: None });
        assert_eq!(decide(Some(&s), t(1), Duration::from_secs(120)).0, Decision::Count);
    }
}
