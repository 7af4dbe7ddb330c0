//! The release-age window of a run: `--min-release-age` or the policy's `min-release-age`,
//! turned into the absolute cut-off the resolver applies and the lock records.

use bitpoll_client::Timestamp;
use bitpoll_lockfile::Lock;
use bitpoll_policy::{Policy, ReleaseAge};

use crate::exit::bad_input;

/// The age in force and the cut-off it gave.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub age: ReleaseAge,
    pub cutoff: Timestamp,
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
) -> anyhow::Result<Option<Window>> {
    let age = match cli_age {
        Some(text) => Some(
            ReleaseAge::parse(text)
                .map_err(|e| bad_input(anyhow::anyhow!("--min-release-age: {e}")))?,
        ),
        None => policy.min_release_age,
    };
    let Some(age) = age.filter(|a| a.seconds > 0) else {
        return Ok(None);
    };
    let cutoff = match recorded {
        Some(text) => Timestamp::parse(text).ok_or_else(|| {
            bad_input(anyhow::anyhow!(
                "release cut-off `{text}` is not an RFC 3339 time"
            ))
        })?,
        None => {
            let at = now.unix_secs() - age.seconds as i64;
            Timestamp::from_unix(at - at.rem_euclid(86_400))
        }
    };
    Ok(Some(Window { age, cutoff }))
}

/// Keeps the previous lock's cut-off when the clock moved it but nothing else changed: the
/// lock records no field that changes when nothing changed, and the older cut-off reproduces
/// these very pins (it produced them). `lock` must be normalised; its fingerprint is redone.
pub fn keep_previous_cutoff(lock: &mut Lock, previous: Option<&Lock>) {
    let Some(previous) = previous else {
        return;
    };
    let same_window = previous.inputs.min_release_age.is_some()
        && previous.inputs.min_release_age == lock.inputs.min_release_age;
    let earlier = match (
        previous
            .inputs
            .release_cutoff
            .as_deref()
            .and_then(Timestamp::parse),
        lock.inputs
            .release_cutoff
            .as_deref()
            .and_then(Timestamp::parse),
    ) {
        (Some(old), Some(new)) => old < new,
        _ => false,
    };
    if !same_window || !earlier {
        return;
    }
    let mut inputs = lock.inputs.clone();
    inputs.release_cutoff = previous.inputs.release_cutoff.clone();
    let unchanged = previous.inputs == inputs
        && previous.nixpkgs == lock.nixpkgs
        && previous.targets == lock.targets
        && previous.packages == lock.packages
        && previous.build_packages == lock.build_packages;
    if unchanged {
        lock.inputs = inputs;
        lock.fingerprint =
            bitpoll_lockfile::fingerprint(&lock.inputs, lock.nixpkgs.as_ref(), &lock.targets);
    }
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
