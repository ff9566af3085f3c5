//! libFuzzer target: the request checks of `trdr serve` (`api_server::fuzzing::api_requests`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    api_server::fuzzing::api_requests(data);
});
