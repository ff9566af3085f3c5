//! Compiles `proto/` with protox, a protobuf compiler written in Rust, so
//! building needs no system `protoc`. The generated code lives in `OUT_DIR`
//! and is never checked in, so it cannot drift from the `.proto` files.

use std::path::PathBuf;

use prost::Message;

const PROTOS: &[&str] = &[
    "trdr/v1/common.proto",
    "trdr/v1/results.proto",
    "trdr/v1/training_host.proto",
    "trdr/v1/data_host.proto",
    "trdr/v1/operations.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    println!("cargo:rerun-if-changed={}", proto_dir.display());
    let descriptors = protox::compile(PROTOS, [&proto_dir])?;
    // Server reflection answers from the encoded descriptors.
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("trdr_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
