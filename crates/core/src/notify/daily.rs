//! When the daily communication notice is due: once per local day, at the configured local time in the
//! configured zone, correct across daylight-saving changes; a notice missed while the daemon was down is sent
//! when it starts again, but never twice for one day.

use chrono::{DateTime, Days, LocalResult, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// The instant of the notice on local `date`. A time that does not exist that day (skipped by a spring-forward
/// change) moves forward by the gap; a time that happens twice (autumn) is the first.
pub fn slot(date: NaiveDate, time: NaiveTime, tz: Tz) -> DateTime<Utc> {
    let mut local = date.and_time(time);
    for _ in 0..=24 * 4 {
        match tz.from_local_datetime(&local) {
            LocalResult::Single(t) => return t.with_timezone(&Utc),
            LocalResult::Ambiguous(first, _) => return first.with_timezone(&Utc),
            LocalResult::None => local += chrono::Duration::minutes(15),
        }
    }
    // No zone skips a whole day; should one ever, the notice goes at the UTC reading of the time.
    Utc.from_utc_datetime(&date.and_time(time))
}

/// What the scheduler should do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Due {
    /// Send the notice for this local date, and remember it.
    Send(NaiveDate),
    /// The notice was just enabled (nothing remembered): remember this date as done, send nothing; the first
    /// notice goes at the next slot.
    Start(NaiveDate),
    Nothing,
}

/// The latest local date whose slot is at or before `now`.
fn latest_slot_date(now: DateTime<Utc>, time: NaiveTime, tz: Tz) -> NaiveDate {
    let today = now.with_timezone(&tz).date_naive();
    if slot(today, time, tz) <= now { today } else { today.checked_sub_days(Days::new(1)).unwrap_or(today) }
}

/// Decides at `now`, given the last date a notice was sent for (or started from).
pub fn due(now: DateTime<Utc>, time: NaiveTime, tz: Tz, last: Option<NaiveDate>) -> Due {
    let date = latest_slot_date(now, time, tz);
    match last {
        None => Due::Start(date),
        Some(last) if date > last => Due::Send(date),
        Some(_) => Due::Nothing,
    }
}

/// When to look again: the next slot after `now`.
pub fn next_slot(now: DateTime<Utc>, time: NaiveTime, tz: Tz) -> DateTime<Utc> {
    let date = latest_slot_date(now, time, tz);
    slot(date.checked_add_days(Days::new(1)).unwrap_or(date), time, tz)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Europe::Brussels;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap_or_default()
    }
    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap_or_default()
    }
    fn hm(s: &str) -> NaiveTime {
        NaiveTime::parse_from_str(s, "%H:%M").unwrap_or_default()
    }

    #[test]
    fn local_time_follows_daylight_saving() {
        // 08:00 in Brussels is 07:00 UTC in winter and 06:00 UTC in summer.
        assert_eq!(slot(date("2026-03-28"), hm("08:00"), Brussels), at("2026-03-28T07:00:00Z"));
        assert_eq!(slot(date("2026-03-29"), hm("08:00"), Brussels), at("2026-03-29T06:00:00Z"));
        assert_eq!(slot(date("2026-10-25"), hm("08:00"), Brussels), at("2026-10-25T07:00:00Z"));
    }

    #[test]
    fn a_skipped_time_moves_forward_and_a_repeated_time_counts_once() {
        // 2026-03-29 02:30 does not exist in Brussels (02:00 -> 03:00): sent at 03:00 local, 01:00 UTC.
        assert_eq!(slot(date("2026-03-29"), hm("02:30"), Brussels), at("2026-03-29T01:00:00Z"));
        // 2026-10-25 02:30 happens twice: the first one (CEST, 00:30 UTC).
        let first = slot(date("2026-10-25"), hm("02:30"), Brussels);
        assert_eq!(first, at("2026-10-25T00:30:00Z"));
        assert_eq!(due(first, hm("02:30"), Brussels, Some(date("2026-10-24"))), Due::Send(date("2026-10-25")));
        // An hour later the clock reads 02:30 again: nothing more that day.
        let second = at("2026-10-25T01:30:00Z");
        assert_eq!(due(second, hm("02:30"), Brussels, Some(date("2026-10-25"))), Due::Nothing);
    }

    #[test]
    fn once_per_day_and_a_missed_slot_is_caught_up_once() {
        let t = hm("08:00");
        // Before today's slot, yesterday's was sent: nothing.
        assert_eq!(due(at("2026-11-22T06:59:00Z"), t, Brussels, Some(date("2026-11-21"))), Due::Nothing);
        // At the slot: today's.
        assert_eq!(
            due(at("2026-11-22T07:00:00Z"), t, Brussels, Some(date("2026-11-21"))),
            Due::Send(date("2026-11-22"))
        );
        // Down for three days: one notice on start, for the latest day.
        assert_eq!(
            due(at("2026-11-25T12:00:00Z"), t, Brussels, Some(date("2026-11-21"))),
            Due::Send(date("2026-11-25"))
        );
        // Started for the first time: remember, do not send.
        assert_eq!(due(at("2026-11-22T12:00:00Z"), t, Brussels, None), Due::Start(date("2026-11-22")));
        assert_eq!(due(at("2026-11-22T06:00:00Z"), t, Brussels, None), Due::Start(date("2026-11-21")));
    }

    #[test]
    fn the_next_slot_is_tomorrow_once_today_passed() {
        let t = hm("08:00");
        assert_eq!(next_slot(at("2026-11-22T06:00:00Z"), t, Brussels), at("2026-11-22T07:00:00Z"));
        assert_eq!(next_slot(at("2026-11-22T07:00:00Z"), t, Brussels), at("2026-11-23T07:00:00Z"));
        assert_eq!(next_slot(at("2026-03-28T08:00:00Z"), t, Brussels), at("2026-03-29T06:00:00Z"));
    }
}
