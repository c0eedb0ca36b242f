//! PostgreSQL test containers from images built on this machine (no registry).
//!
//! `cargo xtask images` builds one image per [`VERSIONS`] entry from Debian's packages with
//! the recipe `images/postgres.sh` and tags it `tenancy-test-postgres:<major>-<key>`, where
//! the key is a hash of the recipe: the tests only ever use an image of the current recipe,
//! and a changed recipe is what rebuilds them.
//!
//! All test processes of a machine share one container per image (testcontainers'
//! reusable containers, found by name): `nextest` runs every test in its own process, and
//! a container per test would copy the whole image each time with the `vfs` storage
//! driver. `cargo xtask db stop` removes the containers.

use std::time::Duration;

use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{GenericImage, ImageExt, ReuseDirective};

/// The repository name of the test images.
pub const IMAGE_NAME: &str = "tenancy-test-postgres";

/// The label every test container carries (`cargo xtask db stop` removes them by it).
pub const CONTAINER_LABEL: (&str, &str) = ("org.tenancy.test", "postgres");

/// The recipe that builds an image's root filesystem (`postgres.sh <major> <suite> <dir>`).
pub const RECIPE: &str = include_str!("../images/postgres.sh");

/// The PostgreSQL majors there are images for, with the Debian suite that packages each.
/// The first is the default (`TENANCY_TEST_PG` picks another).
pub const VERSIONS: [(u32, &str); 2] = [(15, "bookworm"), (17, "trixie")];

/// FNV-1a over bytes: a stable content key (not a security hash).
pub(crate) fn fnv1a<'a>(bytes: impl IntoIterator<Item = &'a u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x100_0000_01b3)
    })
}

/// The tag of the image of `major` built by the current recipe, e.g. `15-3f2a…`.
pub fn image_tag(major: u32) -> String {
    let suite = VERSIONS
        .iter()
        .find(|(m, _)| *m == major)
        .map_or("", |(_, suite)| suite);
    let key = fnv1a(
        RECIPE
            .as_bytes()
            .iter()
            .chain(format!("{major}/{suite}").as_bytes()),
    );
    format!("{major}-{key:016x}")
}

/// The PostgreSQL major the tests ask for: `TENANCY_TEST_PG`, else the first of [`VERSIONS`].
pub fn requested_major() -> Result<u32, String> {
    major_named(std::env::var("TENANCY_TEST_PG").ok().as_deref())
}

fn major_named(value: Option<&str>) -> Result<u32, String> {
    match value {
        None => Ok(VERSIONS[0].0),
        Some(value) => value
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|major| VERSIONS.iter().any(|(m, _)| m == major))
            .ok_or_else(|| {
                let known: Vec<String> = VERSIONS.iter().map(|(m, _)| m.to_string()).collect();
                format!(
                    "TENANCY_TEST_PG={value} is not one of the test images' versions ({})",
                    known.join(", ")
                )
            }),
    }
}

/// Whether the engine answers and holds the image of `major`; `Err` says why not.
pub async fn image_available(major: u32) -> Result<(), String> {
    use testcontainers::bollard::Docker;
    let docker = Docker::connect_with_defaults().map_err(|e| format!("no Docker client: {e}"))?;
    docker
        .ping()
        .await
        .map_err(|e| format!("no Docker engine answered ({e})"))?;
    let image = format!("{IMAGE_NAME}:{}", image_tag(major));
    docker.inspect_image(&image).await.map(drop).map_err(|e| {
        format!("the engine has no image {image} ({e}); `cargo xtask images` builds it")
    })
}

/// A running container of the image of `major`, reused when one is already up: its host
/// port on 127.0.0.1. Call [`image_available`] first for a clear error when the image is
/// missing (testcontainers would try to pull it from a registry).
pub async fn start(major: u32) -> Result<u16, String> {
    let tag = image_tag(major);
    // Processes that start at the same moment would race to create the same name.
    let lock = tokio::task::spawn_blocking(|| {
        let path = std::env::temp_dir().join("tenancy-test-docker.lock");
        let file = std::fs::File::create(&path)?;
        file.lock().map(|()| file)
    })
    .await
    .map_err(|e| format!("locking the container start: {e}"))?
    .map_err(|e| format!("locking the container start: {e}"))?;
    let request = GenericImage::new(IMAGE_NAME.to_owned(), tag.clone())
        .with_exposed_port(5432.tcp())
        .with_wait_for(WaitFor::message_on_stderr(
            "database system is ready to accept connections",
        ))
        .with_container_name(format!("tenancy-test-pg{tag}"))
        .with_label(CONTAINER_LABEL.0, CONTAINER_LABEL.1)
        .with_reuse(ReuseDirective::Always)
        .with_startup_timeout(Duration::from_secs(120))
        // Published on loopback only: a test server is not for the network.
        .with_host_config_modifier(|config| {
            config.publish_all_ports = Some(false);
            config.port_bindings = Some(
                [(
                    "5432/tcp".to_owned(),
                    Some(vec![testcontainers::bollard::models::PortBinding {
                        host_ip: Some("127.0.0.1".to_owned()),
                        host_port: Some(String::new()),
                    }]),
                )]
                .into(),
            );
        });
    let container = request
        .start()
        .await
        .map_err(|e| format!("starting the container of {IMAGE_NAME}:{tag}: {e}"))?;
    let port = container
        .get_host_port_ipv4(5432)
        .await
        .map_err(|e| format!("reading the container's port: {e}"))?;
    drop(lock);
    Ok(port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_major_is_one_there_is_an_image_for() {
        assert_eq!(major_named(None), Ok(15));
        assert_eq!(major_named(Some("17")), Ok(17));
        assert_eq!(
            major_named(Some("16")),
            Err("TENANCY_TEST_PG=16 is not one of the test images' versions (15, 17)".into())
        );
    }

    #[test]
    fn the_tag_follows_the_recipe_and_the_version() {
        let (fifteen, seventeen) = (image_tag(15), image_tag(17));
        assert!(fifteen.starts_with("15-") && seventeen.starts_with("17-"));
        assert_ne!(fifteen[3..], seventeen[3..]);
        assert_eq!(fifteen, image_tag(15), "stable");
    }
}
