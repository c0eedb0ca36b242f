//! The messages and services generated from `proto/` (see build.rs).
#![allow(
    clippy::all,
    clippy::pedantic,
    missing_debug_implementations,
    unreachable_pub
)]

/// The encoded `FileDescriptorSet` of every proto, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/tenancy_descriptor.bin"));

pub mod filter {
    pub mod v2 {
        include!(concat!(env!("OUT_DIR"), "/tenancy.filter.v2.rs"));
        include!(concat!(env!("OUT_DIR"), "/tenancy.filter.v2.serde.rs"));
    }
}

pub mod instance {
    pub mod v2 {
        include!(concat!(env!("OUT_DIR"), "/tenancy.instance.v2.rs"));
        include!(concat!(env!("OUT_DIR"), "/tenancy.instance.v2.serde.rs"));
    }
}

pub mod org {
    pub mod v2 {
        include!(concat!(env!("OUT_DIR"), "/tenancy.org.v2.rs"));
        include!(concat!(env!("OUT_DIR"), "/tenancy.org.v2.serde.rs"));
    }
}
