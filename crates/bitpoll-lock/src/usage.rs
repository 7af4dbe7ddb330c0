//! The CPU time a run used, for its timeline (`update --timings`).
//!
//! A cold run of a large set keeps every core busy: its own unpacking and parsing, and the
//! Python processes of the build backends it asks. Waits in the timeline say what a thread
//! waited for, not how much work the machine had; these totals do. std has no `getrusage`.

use bitpoll_timings::CpuTime;

/// User and system time of this process and of the children it has waited for, so far.
#[cfg(unix)]
#[allow(unsafe_code)] // getrusage(2), which std does not wrap
pub fn cpu_time() -> Option<CpuTime> {
    let read = |who| {
        // SAFETY: an all-zero `rusage` is a valid value (integers and timevals).
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: getrusage writes the struct it is given, which outlives the call.
        let rc = unsafe { libc::getrusage(who, &mut usage) };
        let ms = |t: libc::timeval| t.tv_sec as f64 * 1000.0 + t.tv_usec as f64 / 1000.0;
        (rc == 0).then(|| ms(usage.ru_utime) + ms(usage.ru_stime))
    };
    Some(CpuTime {
        program_ms: read(libc::RUSAGE_SELF)?,
        children_ms: read(libc::RUSAGE_CHILDREN)?,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
    })
}

#[cfg(not(unix))]
pub fn cpu_time() -> Option<CpuTime> {
    None
}
