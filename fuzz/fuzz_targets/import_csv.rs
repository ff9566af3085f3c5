//! libFuzzer target: the importer (`market_data::fuzzing::import_csv`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    market_data::fuzzing::import_csv(data);
});
