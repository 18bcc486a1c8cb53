//! When a silence holds: between two instants (`starts_at`/`ends_at`, RFC 3339), or every
//! week on some days between two wall-clock times of a named time zone from the system's tz
//! database. A weekly window follows the zone's clock across daylight-saving changes: a
//! window "Sunday 01:00–04:00 Europe/Berlin" is two hours long on the night the clocks go
//! forward, and four on the night they go back.

use std::time::SystemTime;

use jiff::civil::{Time, Weekday};
use jiff::tz::TimeZone;
use jiff::Timestamp;

/// Every week, on `days`, from `start` to `end` on the zone's clock; an `end` not after
/// `start` ends on the next day (`22:00`–`02:00`; `00:00`–`00:00` is the whole day).
#[derive(Clone, Debug)]
pub struct WeeklyWindow {
    pub days: Vec<Weekday>,
    pub start: Time,
    pub end: Time,
    pub zone_name: String,
    pub zone: TimeZone,
}

impl PartialEq for WeeklyWindow {
    fn eq(&self, other: &WeeklyWindow) -> bool {
        self.days == other.days
            && self.start == other.start
            && self.end == other.end
            && self.zone_name == other.zone_name
    }
}

/// When a silence holds.
#[derive(Clone, Debug, PartialEq)]
pub enum ActiveTime {
    /// From `starts_at` (included) to `ends_at` (excluded).
    Between {
        starts_at: Timestamp,
        ends_at: Timestamp,
    },
    Weekly(WeeklyWindow),
}

impl ActiveTime {
    /// Whether the silence holds at `at`.
    pub fn contains(&self, at: Timestamp) -> bool {
        match self {
            ActiveTime::Between { starts_at, ends_at } => *starts_at <= at && at < *ends_at,
            ActiveTime::Weekly(window) => window.contains(at),
        }
    }

    /// Whether it will never hold again after `at`.
    pub fn is_over(&self, at: Timestamp) -> bool {
        match self {
            ActiveTime::Between { ends_at, .. } => *ends_at <= at,
            ActiveTime::Weekly(_) => false,
        }
    }

    /// As shown by `nightcrier check`.
    pub fn describe(&self) -> String {
        match self {
            ActiveTime::Between { starts_at, ends_at } => format!("{starts_at} to {ends_at}"),
            ActiveTime::Weekly(w) => {
                let days: Vec<&str> = w.days.iter().map(|d| day_name(*d)).collect();
                format!(
                    "weekly {} {}–{} {}",
                    days.join(","),
                    w.start.strftime("%H:%M"),
                    w.end.strftime("%H:%M"),
                    w.zone_name
                )
            }
        }
    }
}

impl WeeklyWindow {
    /// A window that started on today's date or yesterday's (when it crosses midnight) on
    /// the zone's clock, and has not ended. A wall-clock time that does not exist (skipped
    /// by a change to summer time) is moved forward by the gap (02:30 becomes 03:30), one
    /// that occurs twice is the first of the two.
    pub fn contains(&self, at: Timestamp) -> bool {
        let local = at.to_zoned(self.zone.clone());
        let today = local.date();
        let crosses_midnight = self.end <= self.start;
        let candidates = [Some(today), today.yesterday().ok()];
        candidates.into_iter().flatten().any(|day| {
            if !self.days.contains(&day.weekday()) {
                return false;
            }
            let end_day = if crosses_midnight {
                match day.tomorrow() {
                    Ok(next) => next,
                    Err(_) => return false,
                }
            } else {
                day
            };
            let start = self.zone.to_ambiguous_zoned(day.to_datetime(self.start));
            let end = self.zone.to_ambiguous_zoned(end_day.to_datetime(self.end));
            match (start.compatible(), end.compatible()) {
                (Ok(start), Ok(end)) => start.timestamp() <= at && at < end.timestamp(),
                _ => false,
            }
        })
    }
}

/// `mon` … `sun` (any case, or the full English name).
pub fn parse_day(text: &str) -> Option<Weekday> {
    let lower = text.trim().to_ascii_lowercase();
    let day = match lower.get(..3)? {
        "mon" => Weekday::Monday,
        "tue" => Weekday::Tuesday,
        "wed" => Weekday::Wednesday,
        "thu" => Weekday::Thursday,
        "fri" => Weekday::Friday,
        "sat" => Weekday::Saturday,
        "sun" => Weekday::Sunday,
        _ => return None,
    };
    let full = day_full_name(day);
    (lower.len() == 3 || lower == full).then_some(day)
}

fn day_name(day: Weekday) -> &'static str {
    &day_full_name(day)[..3]
}

fn day_full_name(day: Weekday) -> &'static str {
    match day {
        Weekday::Monday => "monday",
        Weekday::Tuesday => "tuesday",
        Weekday::Wednesday => "wednesday",
        Weekday::Thursday => "thursday",
        Weekday::Friday => "friday",
        Weekday::Saturday => "saturday",
        Weekday::Sunday => "sunday",
    }
}

/// `HH:MM` on a 24-hour clock.
pub fn parse_clock(text: &str) -> Option<Time> {
    let (hour, minute) = text.trim().split_once(':')?;
    if hour.len() != 2 || minute.len() != 2 {
        return None;
    }
    let hour: i8 = hour.parse().ok()?;
    let minute: i8 = minute.parse().ok()?;
    Time::new(hour, minute, 0, 0).ok()
}

/// A zone of the system's tz database (`/usr/share/zoneinfo`), by its IANA name.
pub fn time_zone(name: &str) -> Result<TimeZone, String> {
    TimeZone::get(name).map_err(|_| {
        format!(
            "{} is not a time zone of the system's tz database (an IANA name such as \
             Europe/Berlin or America/New_York; is tzdata installed?)",
            super::matcher::quote(name)
        )
    })
}

/// An RFC 3339 instant (`2026-03-29T01:00:00+01:00`, `2026-03-29T00:00:00Z`).
pub fn parse_instant(text: &str) -> Result<Timestamp, String> {
    text.trim().parse::<Timestamp>().map_err(|_| {
        format!(
            "{} is not an RFC 3339 time such as 2026-03-29T01:00:00Z or \
             2026-03-29T03:00:00+02:00",
            super::matcher::quote(text)
        )
    })
}

/// `at` as a jiff instant (the clock's time before 1970 or past 9999 is clamped).
pub fn timestamp(at: SystemTime) -> Timestamp {
    Timestamp::try_from(at).unwrap_or(match at.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(_) => Timestamp::MAX,
        Err(_) => Timestamp::MIN,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn berlin_sunday_night() -> WeeklyWindow {
        WeeklyWindow {
            days: vec![Weekday::Sunday],
            start: parse_clock("01:00").unwrap(),
            end: parse_clock("04:00").unwrap(),
            zone_name: "Europe/Berlin".into(),
            zone: time_zone("Europe/Berlin").unwrap(),
        }
    }

    #[test]
    fn between_includes_the_start_and_excludes_the_end() {
        let between = ActiveTime::Between {
            starts_at: at("2026-12-01T22:00:00Z"),
            ends_at: at("2026-12-02T02:00:00Z"),
        };
        assert!(!between.contains(at("2026-12-01T21:59:59Z")));
        assert!(between.contains(at("2026-12-01T22:00:00Z")));
        assert!(between.contains(at("2026-12-02T01:59:59Z")));
        assert!(!between.contains(at("2026-12-02T02:00:00Z")));
        assert!(between.is_over(at("2026-12-02T02:00:00Z")));
    }

    #[test]
    fn a_weekly_window_follows_the_zones_clock_on_an_ordinary_sunday() {
        let window = berlin_sunday_night();
        // 2026-03-22 is a Sunday in winter time (UTC+1): 01:00–04:00 is 00:00Z–03:00Z.
        assert!(!window.contains(at("2026-03-21T23:59:00Z")));
        assert!(window.contains(at("2026-03-22T00:00:00Z")));
        assert!(window.contains(at("2026-03-22T02:30:00Z")));
        assert!(!window.contains(at("2026-03-22T03:00:00Z")));
        // Saturday at the same hour is outside.
        assert!(!window.contains(at("2026-03-21T01:00:00Z")));
    }

    #[test]
    fn a_weekly_window_is_shorter_on_the_night_the_clocks_go_forward() {
        let window = berlin_sunday_night();
        // 2026-03-29, last Sunday of March: 02:00 CET becomes 03:00 CEST. 01:00 CET is
        // 00:00Z, 04:00 CEST is 02:00Z: two hours, not three.
        assert!(!window.contains(at("2026-03-28T23:59:00Z")));
        assert!(window.contains(at("2026-03-29T00:00:00Z")));
        assert!(window.contains(at("2026-03-29T01:30:00Z")), "03:30 CEST");
        assert!(
            !window.contains(at("2026-03-29T02:30:00Z")),
            "04:30 CEST is past the end, though 03:30 at the winter offset"
        );
    }

    #[test]
    fn a_start_in_the_skipped_hour_moves_forward_by_the_gap() {
        let window = WeeklyWindow {
            start: parse_clock("02:30").unwrap(),
            ..berlin_sunday_night()
        };
        // 02:30 does not exist on 2026-03-29; it becomes 03:30 CEST, 01:30Z.
        assert!(!window.contains(at("2026-03-29T01:29:59Z")));
        assert!(window.contains(at("2026-03-29T01:30:00Z")));
    }

    #[test]
    fn a_weekly_window_is_longer_on_the_night_the_clocks_go_back() {
        let window = berlin_sunday_night();
        // 2026-10-25: 03:00 CEST becomes 02:00 CET. 01:00 CEST is 23:00Z the day before,
        // 04:00 CET is 03:00Z: four hours.
        assert!(!window.contains(at("2026-10-24T22:59:00Z")));
        assert!(window.contains(at("2026-10-24T23:00:00Z")));
        assert!(window.contains(at("2026-10-25T02:30:00Z")));
        assert!(!window.contains(at("2026-10-25T03:00:00Z")));
    }

    #[test]
    fn a_window_that_crosses_midnight_ends_on_the_next_day() {
        let window = WeeklyWindow {
            days: vec![Weekday::Friday],
            start: parse_clock("22:00").unwrap(),
            end: parse_clock("02:00").unwrap(),
            zone_name: "America/New_York".into(),
            zone: time_zone("America/New_York").unwrap(),
        };
        // Friday 2026-12-04 22:00 EST is 2026-12-05T03:00Z; Saturday 02:00 EST is 07:00Z.
        assert!(window.contains(at("2026-12-05T03:00:00Z")));
        assert!(
            window.contains(at("2026-12-05T06:59:00Z")),
            "Saturday 01:59"
        );
        assert!(!window.contains(at("2026-12-05T07:00:00Z")));
        assert!(
            !window.contains(at("2026-12-06T04:00:00Z")),
            "Saturday night"
        );
        // 00:00 to 00:00 is the whole day: Saturday in New York is 05:00Z to 05:00Z.
        let whole_saturday = WeeklyWindow {
            days: vec![Weekday::Saturday],
            start: parse_clock("00:00").unwrap(),
            end: parse_clock("00:00").unwrap(),
            ..window
        };
        assert!(!whole_saturday.contains(at("2026-12-05T04:59:59Z")));
        assert!(whole_saturday.contains(at("2026-12-05T05:00:00Z")));
        assert!(whole_saturday.contains(at("2026-12-06T04:59:59Z")));
        assert!(!whole_saturday.contains(at("2026-12-06T05:00:00Z")));
    }

    #[test]
    fn days_clocks_zones_and_instants_are_parsed_or_refused() {
        assert_eq!(parse_day("Sun"), Some(Weekday::Sunday));
        assert_eq!(parse_day("wednesday"), Some(Weekday::Wednesday));
        assert_eq!(parse_day("sunny"), None);
        assert_eq!(parse_clock("07:30"), Time::new(7, 30, 0, 0).ok());
        assert_eq!(parse_clock("24:00"), None);
        assert_eq!(parse_clock("7:30"), None);
        let e = time_zone("Europe/Atlantis").unwrap_err();
        assert!(e.contains("\"Europe/Atlantis\" is not a time zone"), "{e}");
        assert_eq!(
            parse_instant("2026-03-29T03:00:00+02:00").unwrap(),
            at("2026-03-29T01:00:00Z")
        );
        assert!(parse_instant("2026-03-29 03:00").is_err());
    }
}
