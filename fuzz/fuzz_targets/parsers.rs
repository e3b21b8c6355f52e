//! Fuzzes every provider's parser with each input: no panic, `parse` and
//! `parse_each` agree, every event a parser accepts is one DynamoDB would store
//! and every part it quarantines a record DynamoDB would store
//! (`fuzz_support::check_parser`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    mailhooks::fuzz_support::check_all_parsers(data);
});
