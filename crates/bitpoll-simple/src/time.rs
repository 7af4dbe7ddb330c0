//! Just enough RFC 3339 to compare upload times with `--exclude-newer`.

/// An instant as seconds and nanoseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    secs: i64,
    nanos: u32,
}

fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    // Shift the year to start in March so the leap day is the last day of the year.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn number(text: &str, digits: usize) -> Option<u32> {
    (text.len() == digits && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

/// The inverse of `days_from_civil`: (year, month, day) of a day number.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

impl Timestamp {
    /// The instant `secs` seconds after the Unix epoch.
    pub fn from_unix(secs: i64) -> Timestamp {
        Timestamp { secs, nanos: 0 }
    }

    /// The current time from the system clock.
    pub fn now() -> Timestamp {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp {
            secs: since.as_secs() as i64,
            nanos: since.subsec_nanos(),
        }
    }

    pub(crate) fn from_parts(secs: i64, nanos: u32) -> Timestamp {
        Timestamp { secs, nanos }
    }

    /// Seconds and nanoseconds since the Unix epoch.
    pub(crate) fn parts(&self) -> (i64, u32) {
        (self.secs, self.nanos)
    }

    /// Seconds since the Unix epoch (fractions dropped).
    pub fn unix_secs(&self) -> i64 {
        self.secs
    }

    /// `YYYY-MM-DDTHH:MM:SSZ`, to the second: one spelling per instant, for the lock.
    pub fn to_rfc3339(&self) -> String {
        let days = self.secs.div_euclid(86_400);
        let rest = self.secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
            rest / 3600,
            rest % 3600 / 60,
            rest % 60
        )
    }

    /// Parses `YYYY-MM-DD` (midnight UTC) or an RFC 3339 date-time such as
    /// `2024-01-31T12:00:00.123456Z` or `2024-01-31T12:00:00+02:00`; a date-time without
    /// an offset is taken as UTC.
    pub fn parse(text: &str) -> Option<Timestamp> {
        let text = text.trim();
        let date = text.get(..10)?;
        let year = number(date.get(0..4)?, 4)? as i64;
        let month = number(date.get(5..7)?, 2)?;
        let day = number(date.get(8..10)?, 2)?;
        if &date[4..5] != "-"
            || &date[7..8] != "-"
            || !(1..=12).contains(&month)
            || !(1..=31).contains(&day)
        {
            return None;
        }
        let days = days_from_civil(year, month, day);
        let rest = &text[10..];
        if rest.is_empty() {
            return Some(Timestamp {
                secs: days * 86_400,
                nanos: 0,
            });
        }
        let rest = rest.strip_prefix(['T', 't', ' '])?;
        let hour = number(rest.get(0..2)?, 2)?;
        let minute = number(rest.get(3..5)?, 2)?;
        let second = number(rest.get(6..8)?, 2)?;
        if &rest[2..3] != ":" || &rest[5..6] != ":" || hour > 23 || minute > 59 || second > 60 {
            return None;
        }
        let mut rest = &rest[8..];
        let mut nanos = 0u32;
        if let Some(frac) = rest.strip_prefix('.') {
            let len = frac.bytes().take_while(u8::is_ascii_digit).count();
            if len == 0 {
                return None;
            }
            let digits = &frac[..len.min(9)];
            nanos = digits.parse::<u32>().ok()? * 10u32.pow(9 - digits.len() as u32);
            rest = &frac[len..];
        }
        let offset: i64 = match rest {
            "" | "Z" | "z" => 0,
            _ => {
                let sign = match &rest[..1] {
                    "+" => 1,
                    "-" => -1,
                    _ => return None,
                };
                let hh = number(rest.get(1..3)?, 2)? as i64;
                let mm = number(rest.get(4..6)?, 2)? as i64;
                if rest.len() != 6 || &rest[3..4] != ":" {
                    return None;
                }
                sign * (hh * 3600 + mm * 60)
            }
        };
        let secs = days * 86_400 + (hour * 3600 + minute * 60 + second) as i64 - offset;
        Some(Timestamp { secs, nanos })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders() {
        assert_eq!(Timestamp::parse("1970-01-01").unwrap().secs, 0);
        assert_eq!(
            Timestamp::parse("2000-03-01T00:00:00Z").unwrap().secs,
            951_868_800
        );
        let a = Timestamp::parse("2024-01-31T12:00:00.5Z").unwrap();
        let b = Timestamp::parse("2024-01-31T14:00:00.400000+02:00").unwrap();
        assert!(b < a);
        assert_eq!(a.nanos, 500_000_000);
        assert!(Timestamp::parse("2024-13-01").is_none());
        assert!(Timestamp::parse("yesterday").is_none());
        assert!(Timestamp::parse("2024-01-31T12:00").is_none());
    }

    #[test]
    fn formats_what_it_parses() {
        for text in [
            "1970-01-01T00:00:00Z",
            "2000-02-29T23:59:59Z",
            "2024-12-31T00:00:01Z",
            "1969-12-31T12:00:00Z",
        ] {
            assert_eq!(Timestamp::parse(text).unwrap().to_rfc3339(), text);
        }
        assert_eq!(
            Timestamp::parse("2024-01-31T14:00:00.4+02:00")
                .unwrap()
                .to_rfc3339(),
            "2024-01-31T12:00:00Z"
        );
    }
}
