//! Fuzzes the MIME encoded-word decoder: no panic on any text.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = mailhooks::providers::mime_words::decode(text);
    }
});
