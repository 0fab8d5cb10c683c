//! The process's memory settings. enrichd runs on mimalloc (v3, as the
//! `mimalloc` crate builds it) and changes two things about it, both
//! before the runtime's threads start: no transparent huge pages
//! (`small_pages`), and, for commands that exit after one burst of work,
//! freed memory returned at once (`purge_at_once`). A crate of its own
//! because the second is C FFI and the rest of the workspace forbids
//! unsafe code.
use libmimalloc_sys::{mi_option_get, mi_option_set, mi_option_t};

/// mimalloc v3's `mi_option_purge_delay`: its place in `mi_option_e`
/// (the bindings name no constant for it). The test below reads the
/// documented default through it, so a mimalloc that moved it fails there.
const PURGE_DELAY: mi_option_t = 15;

/// Turns transparent huge pages off for this process, before its threads
/// start, unless `MIMALLOC_ALLOW_THP=1` asks to keep them. On a kernel whose
/// THP setting is `always`, the allocator's first touch of each 2 MB region
/// faulted in, and zeroed, the whole region: `enrichd serve` held 62 MB
/// after start with them and 46 MB without, and the 600-source one-shot
/// peaked at 104 MB against 75 MB (and took 0.35 s against 0.25 s). The
/// hot path's throughput did not move (`enrichd-bench hot`, both ways).
pub fn small_pages() {
    #[cfg(target_os = "linux")]
    if std::env::var("MIMALLOC_ALLOW_THP").as_deref() != Ok("1") {
        // Best effort: a kernel without the flag keeps its default.
        let _ = rustix::thread::disable_transparent_huge_pages(true);
    }
}

/// How long mimalloc keeps freed memory committed before returning it to
/// the system, in milliseconds (v3's default: 1,000).
pub fn purge_delay_ms() -> std::ffi::c_long {
    // SAFETY: reads one entry of mimalloc's option table (initialising it
    // from the environment on first use); `PURGE_DELAY` is a valid option.
    #[allow(unsafe_code)]
    unsafe {
        mi_option_get(PURGE_DELAY)
    }
}

/// Returns freed memory to the system at once, for a process that makes
/// one burst of work and exits (`enrichd enrich`): with v3's one-second
/// delay, the memory a 600-source call's connections freed stayed resident
/// while the next ones were allocated, and the process peaked 10 MB higher.
/// A server keeps the delay (it reuses what it freed). An operator's
/// `MIMALLOC_PURGE_DELAY` wins. Call before any other thread starts.
pub fn purge_at_once() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: writes one entry of mimalloc's option table, which mimalloc
    // documents as not thread safe: called before the runtime's threads
    // exist. `PURGE_DELAY` is a valid option and 0 a valid delay.
    #[allow(unsafe_code)]
    unsafe {
        mi_option_set(PURGE_DELAY, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_is_v3_s_default_until_set_to_at_once() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(purge_delay_ms(), 1_000, "mimalloc v3's documented default");
        }
        purge_at_once();
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(purge_delay_ms(), 0);
        }
    }
}
