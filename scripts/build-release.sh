#!/usr/bin/env bash
# Builds the release binary, target/release/nightcrier.
#
# On Linux with glibc the binary is linked statically (a static PIE, so it keeps address
# randomisation): the process then maps one file instead of the binary plus libc, libm,
# libgcc_s and the dynamic loader, which is about 1 MiB less resident memory per daemon.
# Name resolution still reads /etc/hosts and DNS (glibc's files and dns lookups are built
# in). Set NIGHTCRIER_DYNAMIC=1, or run `cargo build --release`, for a dynamically linked
# binary; it behaves the same. The default features stay on, so the binary keeps
# `nightcrier simulate` and `nightcrier demo` (an edge build without them:
# `cargo build --release --no-default-features`).
set -euo pipefail

root="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "${root}"

host="$(rustc -vV | sed -n 's/^host: //p')"
if [[ "${NIGHTCRIER_DYNAMIC:-0}" != 1 && "${host}" == *-linux-gnu ]]; then
    # Only the final link is static; build scripts and proc-macros stay as they are.
    cargo rustc --release --locked --bin nightcrier -- -C target-feature=+crt-static
else
    cargo build --release --locked
fi
