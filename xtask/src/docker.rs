//! The Docker engine and the PostgreSQL test images (`cargo xtask images`).

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tenancy_testkit::docker::{CONTAINER_LABEL, IMAGE_NAME, RECIPE, VERSIONS, image_tag};

fn quiet(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn engine_answers() -> bool {
    quiet("docker", &["info"])
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

fn apt_install(package: &str) -> Result<(), String> {
    if !is_root() {
        return Err(format!(
            "{package} is not installed and installing it needs root"
        ));
    }
    println!("installing {package} (Debian's package)");
    let installed = Command::new("sh")
        .args([
            "-c",
            &format!("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq {package} >/dev/null"),
        ])
        .status()
        .is_ok_and(|s| s.success());
    if installed {
        Ok(())
    } else {
        Err(format!("apt-get could not install {package}"))
    }
}

/// An engine that answers: the one running, else Debian's `docker.io` installed and
/// `dockerd` started (vfs storage: it runs wherever root does, nested or not).
/// `Err` says in one line why there is none.
pub fn ensure_engine() -> Result<(), String> {
    if engine_answers() {
        return Ok(());
    }
    if std::env::var_os("DOCKER_HOST").is_some() {
        return Err("DOCKER_HOST is set and its engine does not answer".into());
    }
    if !quiet("dockerd", &["--version"]) {
        apt_install("docker.io")?;
    }
    if !is_root() {
        return Err("no engine answers and starting dockerd needs root".into());
    }
    let log = std::env::temp_dir().join("tenancy-dockerd.log");
    let log_file = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err_file = log_file.try_clone().map_err(|e| e.to_string())?;
    println!(
        "starting dockerd --storage-driver=vfs (log: {})",
        log.display()
    );
    // Its own process group: an interrupted test run does not take the engine with it.
    let mut dockerd = Command::new("dockerd")
        .arg("--storage-driver=vfs")
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(err_file)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("dockerd did not start: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if engine_answers() {
            return Ok(());
        }
        if let Ok(Some(status)) = dockerd.try_wait() {
            return Err(format!("dockerd exited ({status}); see {}", log.display()));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    Err(format!(
        "dockerd did not answer within 60 s; see {}",
        log.display()
    ))
}

fn image_present(reference: &str) -> bool {
    quiet("docker", &["image", "inspect", reference])
}

/// Whether every test image of the current recipe is in the engine.
pub fn images_present() -> bool {
    engine_answers()
        && VERSIONS
            .iter()
            .all(|(major, _)| image_present(&format!("{IMAGE_NAME}:{}", image_tag(*major))))
}

/// Builds the image of `major` from Debian's `suite` unless the engine has it, then points
/// the moving tag `<major>` at it.
fn ensure_image(major: u32, suite: &str, work: &Path) -> Result<()> {
    let tag = image_tag(major);
    let image = format!("{IMAGE_NAME}:{tag}");
    if image_present(&image) {
        println!("image {image}: present");
    } else {
        let started = Instant::now();
        let root = work.join(format!("rootfs-{major}"));
        let log = work.join(format!("build-{major}.log"));
        let _ = std::fs::remove_dir_all(&root);
        let recipe = work.join("postgres.sh");
        let mirror = std::env::var("TENANCY_DEBIAN_MIRROR")
            .unwrap_or_else(|_| "http://deb.debian.org/debian".into());
        let log_file = std::fs::File::create(&log)?;
        let built = Command::new("bash")
            .arg(&recipe)
            .args([&major.to_string(), suite])
            .arg(&root)
            .arg(&mirror)
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .status()?;
        if !built.success() {
            bail!(
                "building the root filesystem of {image} failed; see {}",
                log.display()
            );
        }
        let import = format!(
            "tar -C '{}' -c . | docker import \
             --change 'USER postgres' --change 'EXPOSE 5432' \
             --change 'CMD [\"/usr/local/bin/postgres\", \"-D\", \"/var/lib/postgresql/data\"]' \
             --change 'LABEL org.tenancy.recipe={tag}' - '{image}' >/dev/null",
            root.display()
        );
        let imported = Command::new("sh").args(["-c", &import]).status()?;
        let _ = std::fs::remove_dir_all(&root);
        if !imported.success() {
            bail!("docker import of {image} failed");
        }
        println!(
            "image {image}: built from Debian {suite} in {:.0} s",
            started.elapsed().as_secs_f64()
        );
    }
    if !quiet("docker", &["tag", &image, &format!("{IMAGE_NAME}:{major}")]) {
        bail!("docker tag {image} failed");
    }
    Ok(())
}

/// `cargo xtask images`: the engine, then the test images. Without an engine it says why
/// in one line and succeeds (the tests then use the embedded cluster); with one, a failed
/// build is an error.
pub fn images() -> Result<()> {
    if let Err(why) = ensure_engine() {
        println!("no Docker engine, so no test images: {why}");
        return Ok(());
    }
    if !quiet("debootstrap", &["--version"]) && !Path::new("/usr/sbin/debootstrap").exists() {
        apt_install("debootstrap").map_err(anyhow::Error::msg)?;
    }
    let work = std::env::temp_dir().join(format!("tenancy-images-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    std::fs::write(work.join("postgres.sh"), RECIPE).context("writing the recipe")?;
    // Both images at once: most of a build is waiting for the mirror.
    let results: Vec<Result<()>> = std::thread::scope(|scope| {
        let builds: Vec<_> = VERSIONS
            .iter()
            .map(|(major, suite)| scope.spawn(|| ensure_image(*major, suite, &work)))
            .collect();
        builds
            .into_iter()
            .map(|b| {
                b.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("image build panicked")))
            })
            .collect()
    });
    let failed = results.iter().any(Result::is_err);
    for result in results {
        if let Err(e) = result {
            eprintln!("xtask: {e:#}");
        }
    }
    if failed {
        bail!(
            "building the test images failed (logs kept in {})",
            work.display()
        );
    }
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

/// Removes the shared test containers (`cargo xtask db stop`).
pub fn remove_containers() {
    if !engine_answers() {
        return;
    }
    let label = format!("label={}={}", CONTAINER_LABEL.0, CONTAINER_LABEL.1);
    let listed = Command::new("docker")
        .args(["ps", "-aq", "--filter", &label])
        .output();
    let ids: Vec<String> = listed
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if !ids.is_empty() {
        let mut args = vec!["rm".to_owned(), "-f".to_owned()];
        args.extend(ids.iter().cloned());
        if Command::new("docker")
            .args(&args)
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            println!("removed {} test container(s)", ids.len());
        }
    }
}
