//! libFuzzer target: the strategy YAML parser (`strategy::fuzzing::strategy_yaml`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    strategy::fuzzing::strategy_yaml(data);
});
