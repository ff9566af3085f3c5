//! libFuzzer target: the store's series reader (`market_data::fuzzing::series_csv`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    market_data::fuzzing::series_csv(data);
});
