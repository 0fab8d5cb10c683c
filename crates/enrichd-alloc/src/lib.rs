//! The allocator's settings. enrichd runs on mimalloc (v3, as the
//! `mimalloc` crate builds it); this crate holds the one setting enrichd
//! changes, behind a safe function. It is a crate of its own because the
//! call is C FFI and the rest of the workspace forbids unsafe code.
use libmimalloc_sys::{mi_option_get, mi_option_set, mi_option_t};

/// mimalloc v3's `mi_option_purge_delay`: its place in `mi_option_e`
/// (the bindings name no constant for it). The test below reads the
/// documented default through it, so a mimalloc that moved it fails there.
const PURGE_DELAY: mi_option_t = 15;

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
