//! Fuzzes the uspeedo parser: no panic, and every event it accepts is storable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    mailhooks::fuzz_support::check_parser("uspeedo", data);
});
