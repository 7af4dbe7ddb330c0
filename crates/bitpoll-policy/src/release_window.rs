//! The release-age window of a run: `--min-release-age` or the policy's `min-release-age`,
//! turned into the absolute cut-off the resolver applies and the lock records.

use bitpoll_simple::Timestamp;

use crate::{Policy, ReleaseAge, ReleaseAgeError};

/// The age in force and the cut-off it gave.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub age: ReleaseAge,
    pub cutoff: Timestamp,
}

/// Why no window could be made of what the command line gave.
#[derive(Debug, thiserror::Error)]
pub enum WindowError {
    #[error("--min-release-age: {0}")]
    Age(#[source] ReleaseAgeError),
    #[error("release cut-off `{0}` is not an RFC 3339 time")]
    Cutoff(String),
}

impl bitpoll_error_class::Classify for WindowError {
    fn class(&self) -> bitpoll_error_class::ErrorClass {
        bitpoll_error_class::ErrorClass::BadInput
    }
}

/// The window for a run: the command line's age over the policy's; the cut-off is
/// `recorded` when given (a re-run reproducing a lock, or `check`), else the start of the UTC
/// day `age` before `now`. Whole days keep a day's runs in agreement, so a refresh that finds
/// nothing new leaves the lock as it was. No age, or a zero age, is no window.
pub fn window(
    cli_age: Option<&str>,
    policy: &Policy,
    recorded: Option<&str>,
    now: Timestamp,
) -> Result<Option<Window>, WindowError> {
    let age = match cli_age {
        Some(text) => Some(ReleaseAge::parse(text).map_err(WindowError::Age)?),
        None => policy.min_release_age,
    };
    let Some(age) = age.filter(|a| a.seconds > 0) else {
        return Ok(None);
    };
    let cutoff = match recorded {
        Some(text) => {
            Timestamp::parse(text).ok_or_else(|| WindowError::Cutoff(text.to_string()))?
        }
        None => {
            let at = now.unix_secs() - age.seconds as i64;
            Timestamp::from_unix(at - at.rem_euclid(86_400))
        }
    };
    Ok(Some(Window { age, cutoff }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cut_off_is_the_start_of_the_day_the_age_reaches_back_to() {
        let now = Timestamp::parse("2026-11-29T03:10:00Z").unwrap();
        let policy = Policy::default();
        let w = window(Some("7 days"), &policy, None, now).unwrap().unwrap();
        assert_eq!(w.cutoff.to_rfc3339(), "2026-11-22T00:00:00Z");
        let w = window(Some("36 hours"), &policy, None, now)
            .unwrap()
            .unwrap();
        assert_eq!(w.cutoff.to_rfc3339(), "2026-11-27T00:00:00Z");
        // A recorded cut-off wins over the clock.
        let w = window(Some("7 days"), &policy, Some("2026-01-01T00:00:00Z"), now)
            .unwrap()
            .unwrap();
        assert_eq!(w.cutoff.to_rfc3339(), "2026-01-01T00:00:00Z");
        assert!(window(None, &policy, None, now).unwrap().is_none());
        assert!(window(Some("0 days"), &policy, None, now)
            .unwrap()
            .is_none());
        assert!(window(Some("soon"), &policy, None, now).is_err());
    }
}
