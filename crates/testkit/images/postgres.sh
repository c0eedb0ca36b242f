#!/usr/bin/env bash
# Builds the root filesystem of a PostgreSQL test image from Debian's packages, with no
# image registry: `postgres.sh <major> <debian suite> <rootfs dir> [mirror]`.
# `cargo xtask images` runs it, imports the directory with `docker import` and tags the
# image by a hash of this file, so a change here is what rebuilds the images.
#
# The server is initialised at build time (a container starts in seconds, not after an
# initdb) and tuned for tests exactly like the embedded cluster: trust auth, fsync,
# synchronous_commit and full_page_writes off. Never use this image for data you keep.
set -euo pipefail
major="$1" suite="$2" root="$3" mirror="${4:-http://deb.debian.org/debian}"

debootstrap --variant=minbase --include="postgresql-${major}" "$suite" "$root" "$mirror" >&2

# Debian's package creates a cluster `main` owned by postgresql-common; the image runs the
# server binary itself on a cluster of its own, so the wrapper scripts are not needed.
data=/var/lib/postgresql/data
rm -rf "$root/var/lib/postgresql/${major}" "$root/etc/postgresql/${major}"
install -d -o "$(chroot "$root" id -u postgres)" -g "$(chroot "$root" id -g postgres)" -m 0700 "$root$data"
chroot "$root" su postgres -s /bin/sh -c \
  "/usr/lib/postgresql/${major}/bin/initdb -D $data -U postgres --auth=trust --encoding=UTF8 --locale=C --wal-segsize=1" >&2
cat >>"$root$data/postgresql.conf" <<CONF
listen_addresses = '*'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
jit = off
log_destination = 'stderr'
CONF
echo "host all all all trust" >>"$root$data/pg_hba.conf"
ln -s "/usr/lib/postgresql/${major}/bin/postgres" "$root/usr/local/bin/postgres"

# Smaller image, faster start: with the vfs storage driver every container copies it.
rm -rf "$root"/usr/share/{doc,man,info,lintian,linda} "$root"/var/cache/apt/* \
  "$root"/var/lib/apt/lists/* "$root"/var/cache/debconf/*-old "$root"/var/log/*
# The JIT (LLVM, 130 MB) is off in tests; perl only serves postgresql-common's wrappers.
rm -rf "$root/usr/lib/postgresql/${major}/lib/"{llvmjit*,bitcode} "$root"/usr/lib/x86_64-linux-gnu/lib{LLVM,z3}* \
  "$root"/usr/share/perl "$root"/usr/lib/x86_64-linux-gnu/perl "$root"/usr/share/i18n
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} +
