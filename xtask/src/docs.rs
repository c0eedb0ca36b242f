//! `cargo xtask docs` (rustdoc and the book, warnings denied) and `cargo xtask consumer`
//! (the newcomer's crate built from a clean copy, by path and by git).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{has, workspace_root};

/// The rustdoc of every crate with all features, then the book; any warning (a broken
/// intra-doc link, an unclosed tag) fails. `missing_docs` is denied in each library
/// crate's root, so clippy in `lint` already fails on an undocumented public item.
pub fn docs() -> Result<()> {
    let cargo_bin = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    println!("$ RUSTDOCFLAGS='-D warnings' cargo doc --workspace --all-features --no-deps");
    let status = Command::new(&cargo_bin)
        .args(["doc", "--workspace", "--all-features", "--no-deps"])
        .env("RUSTDOCFLAGS", "-D warnings")
        .current_dir(workspace_root())
        .status()?;
    if !status.success() {
        bail!("cargo doc failed ({status})");
    }
    if !has("mdbook") {
        bail!("mdbook is not installed: `cargo install --locked mdbook` (.ci/run does)");
    }
    println!("$ mdbook build docs");
    let output = Command::new("mdbook")
        .args(["build", "docs"])
        .current_dir(workspace_root())
        .output()?;
    let log = String::from_utf8_lossy(&output.stderr);
    eprint!("{log}");
    // mdbook exits 0 on warnings such as a link to a missing chapter; they fail here.
    if !output.status.success() || log.contains("WARN") || log.contains("ERROR") {
        bail!("mdbook build docs failed or warned");
    }
    Ok(())
}

/// Copies what a clone of the repository would hold (tracked and new unignored files of
/// the working tree) into a directory outside the checkout (so no workspace above it
/// claims the crate), then builds and tests
/// `examples/consumer` there: once as it is (path dependencies), once with its
/// dependencies switched to git dependencies on this repository's committed `HEAD` —
/// the recipe docs/src/library.md gives another repository.
pub fn consumer() -> Result<()> {
    let root = workspace_root();
    let work = std::env::temp_dir().join(format!("tenancy-consumer-{}", std::process::id()));
    let copy = work.join("copy");
    clean_copy(&root, &copy)?;
    // One target directory for both builds, kept in the checkout between runs (only the
    // build is reused, never the sources).
    let target = root.join("target/consumer");
    let result = build_both(&root, &work, &copy, &target);
    std::fs::remove_dir_all(&work)?;
    result
}

fn build_both(root: &Path, work: &Path, copy: &Path, target: &Path) -> Result<()> {
    println!("== examples/consumer with path dependencies, from a clean copy");
    test_crate(&copy.join("examples/consumer"), target, true)?;

    println!("== examples/consumer with git dependencies on HEAD");
    let head = git(root, &["rev-parse", "HEAD"])?;
    let from_git = work.join("from-git");
    copy_dir(&copy.join("examples/consumer/src"), &from_git.join("src"))?;
    let manifest = std::fs::read_to_string(copy.join("examples/consumer/Cargo.toml"))?;
    let url = format!("file://{}", root.display());
    let manifest = manifest
        .replace(
            "path = \"../../crates/core\"",
            &format!("git = \"{url}\", rev = \"{head}\""),
        )
        .replace(
            "path = \"../../crates/testkit\"",
            &format!("git = \"{url}\", rev = \"{head}\""),
        );
    if manifest.contains("path =") {
        bail!("examples/consumer/Cargo.toml has a path dependency this recipe does not know");
    }
    std::fs::write(from_git.join("Cargo.toml"), manifest)?;
    // The same versions of everything else as the path build.
    std::fs::copy(
        copy.join("examples/consumer/Cargo.lock"),
        from_git.join("Cargo.lock"),
    )?;
    // git's own client fetches where libgit2 may not (a shallow clone, as some CI makes).
    test_crate(&from_git, target, false)
}

fn test_crate(dir: &Path, target: &Path, locked: bool) -> Result<()> {
    let mut args = vec!["test"];
    if locked {
        args.push("--locked");
    }
    println!("$ (cd {}) cargo {}", dir.display(), args.join(" "));
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(&args)
        .env("CARGO_TARGET_DIR", target)
        .env("CARGO_NET_GIT_FETCH_WITH_CLI", "true")
        .current_dir(dir)
        .status()?;
    if !status.success() {
        bail!("the consumer crate failed in {} ({status})", dir.display());
    }
    Ok(())
}

fn clean_copy(root: &Path, copy: &Path) -> Result<()> {
    let files = git(
        root,
        &["ls-files", "--cached", "--others", "--exclude-standard"],
    )?;
    for file in files.lines() {
        let from = root.join(file);
        // A tracked file deleted in the working tree is not part of the copy.
        if !from.is_file() {
            continue;
        }
        let to = copy.join(file);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(&from, &to).with_context(|| format!("copying {file}"))?;
    }
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target: PathBuf = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let output = Command::new("git").args(args).current_dir(dir).output()?;
    if !output.status.success() {
        bail!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// The library crates, in the order their dependencies need.
const LIBRARIES: [&str; 7] = [
    "tenancy-core",
    "tenancy-postgres",
    "tenancy-eventstore",
    "tenancy-projection",
    "tenancy-testkit",
    "tenancy-challenge",
    "tenancy-api",
];

/// `cargo package` of every library crate (manifest metadata and file list), then a
/// build of the packaged sources alone: the `.crate` files unpacked into a workspace of
/// their own, where they find each other through `[patch.crates-io]` (the crates are not
/// published, so `cargo package`'s own verification cannot resolve them).
pub fn package() -> Result<()> {
    let root = workspace_root();
    let cargo_bin = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut args = vec![
        "package",
        "--no-verify",
        "--exclude-lockfile",
        "--allow-dirty",
    ];
    for library in LIBRARIES {
        args.extend(["-p", library]);
    }
    println!("$ cargo {}", args.join(" "));
    let status = Command::new(&cargo_bin)
        .args(&args)
        .current_dir(&root)
        .status()?;
    if !status.success() {
        bail!("cargo package failed ({status})");
    }

    let version = env!("CARGO_PKG_VERSION");
    let check = root.join("target/package-check");
    if check.exists() {
        std::fs::remove_dir_all(&check)?;
    }
    std::fs::create_dir_all(&check)?;
    let mut manifest = String::from("[workspace]\nresolver = \"3\"\nmembers = [\n");
    let mut patches = String::from("\n[patch.crates-io]\n");
    for library in LIBRARIES {
        let crate_file = root.join(format!("target/package/{library}-{version}.crate"));
        let status = Command::new("tar")
            .arg("-xzf")
            .arg(&crate_file)
            .arg("-C")
            .arg(&check)
            .status()?;
        if !status.success() {
            bail!("cannot unpack {}", crate_file.display());
        }
        manifest.push_str(&format!("    \"{library}-{version}\",\n"));
        patches.push_str(&format!(
            "{library} = {{ path = \"{library}-{version}\" }}\n"
        ));
    }
    manifest.push_str("]\n");
    manifest.push_str(&patches);
    std::fs::write(check.join("Cargo.toml"), manifest)?;
    // The workspace's versions of everything else.
    std::fs::copy(root.join("Cargo.lock"), check.join("Cargo.lock"))?;
    println!("$ (cd target/package-check) cargo check --workspace --all-features");
    let status = Command::new(&cargo_bin)
        .args(["check", "--workspace", "--all-features"])
        .env("CARGO_TARGET_DIR", root.join("target"))
        .current_dir(&check)
        .status()?;
    if !status.success() {
        bail!("the packaged crates do not build on their own ({status})");
    }
    Ok(())
}
