//! How many arenas glibc's allocator keeps.
//!
//! glibc gives threads that allocate at the same time arenas of their own, up to eight per
//! core, and memory freed in one arena serves only that arena again. A run that reaches the
//! index has many short-lived threads (the client's blocking reads, a thread per build
//! environment, removals of build directories) and its peak resident memory was more arenas
//! than heap: a cold run of treeherder's set peaked at 46-50 MiB against 17 MiB of heap. Two
//! arenas took that peak to 42-43 MiB (inventree's set: 43-44 to 37-38 MiB, zulip's 56-58 to
//! about 50 MiB, warm runs 3-5 MiB less), at no cost in time that alternating runs could tell
//! from the noise. Offline, where the resolver threads allocate side by side for the whole run,
//! the same setting saved 1-2 MiB and cost 6-11% of the time, so offline updates keep
//! glibc's default. Elsewhere (another C library, another system) there is nothing to set.

/// Caps glibc's arenas at two. Must run before the program starts a thread: arenas already
/// made stay.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)] // glibc has no other way to say this
pub fn fewer_arenas() {
    // SAFETY: `mallopt` takes two integers and changes one of the allocator's settings,
    // taking the allocator's own lock to do so; `M_ARENA_MAX` is one it documents
    // (mallopt(3)). No other thread exists yet to be allocating. A refusal (it returns 0)
    // leaves the default.
    let _ = unsafe { libc::mallopt(libc::M_ARENA_MAX, 2) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn fewer_arenas() {}
