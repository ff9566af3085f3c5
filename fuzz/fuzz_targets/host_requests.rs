//! libFuzzer target: the request checks of `trdr host-service` (`host_service::fuzzing::host_requests`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    host_service::fuzzing::host_requests(data);
});
