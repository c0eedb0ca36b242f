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

/// `tenancy.filter.*`: paging and filters shared by the list methods.
pub mod filter {
    /// `tenancy.filter.v2`.
    pub mod v2 {
        include!(concat!(env!("OUT_DIR"), "/tenancy.filter.v2.rs"));
        include!(concat!(env!("OUT_DIR"), "/tenancy.filter.v2.serde.rs"));
    }
}

/// `tenancy.instance.*`: instances and their domains.
pub mod instance {
    /// `tenancy.instance.v2`: the messages and `InstanceService`.
    pub mod v2 {
        include!(concat!(env!("OUT_DIR"), "/tenancy.instance.v2.rs"));
        include!(concat!(env!("OUT_DIR"), "/tenancy.instance.v2.serde.rs"));
    }
}

/// `tenancy.org.*`: organizations and their domains.
pub mod org {
    /// `tenancy.org.v2`: the messages and `OrganizationService`.
    pub mod v2 {
        include!(concat!(env!("OUT_DIR"), "/tenancy.org.v2.rs"));
        include!(concat!(env!("OUT_DIR"), "/tenancy.org.v2.serde.rs"));
    }
}

/// `<package>.<Service>/<Method>` of every method of the protos (the request paths).
pub fn method_paths() -> Vec<String> {
    use prost::Message as _;
    let Ok(set) = prost_types::FileDescriptorSet::decode(FILE_DESCRIPTOR_SET) else {
        return Vec::new();
    };
    let mut paths = Vec::new();
    for file in &set.file {
        for service in &file.service {
            for method in &service.method {
                paths.push(format!(
                    "{}.{}/{}",
                    file.package(),
                    service.name(),
                    method.name()
                ));
            }
        }
    }
    paths
}
