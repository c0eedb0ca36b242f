//! Compiles the crate's `proto/` with protox, a protobuf compiler in Rust, so
//! no `protoc` has to be installed: prost messages, tonic services, pbjson's proto3-JSON
//! serde impls, and the encoded descriptor set that server reflection serves.

use std::path::PathBuf;

use prost::Message as _;

const PROTOS: &[&str] = &[
    "tenancy/instance/v2/instance_service.proto",
    "tenancy/org/v2/org_service.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("proto");
    println!("cargo:rerun-if-changed={}", root.display());
    let descriptors = protox::compile(PROTOS, [&root])?;
    let encoded = descriptors.encode_to_vec();
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("tenancy_descriptor.bin"), &encoded)?;
    tonic_prost_build::configure()
        // Well-known types from pbjson-types, which carry proto3-JSON serde impls.
        .compile_well_known_types(true)
        .extern_path(".google.protobuf", "::pbjson_types")
        // prost's codec plus the check of every request's text (src/codec.rs).
        .codec_path("crate::codec::CheckedCodec")
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    pbjson_build::Builder::new()
        .register_descriptors(&encoded)?
        .build(&[".tenancy"])?;
    Ok(())
}
