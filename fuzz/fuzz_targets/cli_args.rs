//! libFuzzer target: the CLI's argument values (`fuzz_argument` of
//! `crates/cli/src/args.rs`, included here because `cli` is a binary crate).
#![no_main]

#[path = "../../crates/cli/src/args.rs"]
mod args;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    args::fuzz_argument(data);
});
