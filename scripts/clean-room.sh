#!/usr/bin/env bash
# Runs a command in a clean Debian 12 (bookworm) root that has only Rust and git: the
# environment in which the README's times for scripts/demo.sh and scripts/test.sh were
# measured.
#
#   scripts/clean-room.sh DIR [COMMAND]
#
# The first call creates DIR with `debootstrap --variant=minbase`, adding git,
# ca-certificates, and gcc + libc6-dev (the C compiler and linker every Rust build on
# Linux needs), and the /etc/hosts every installed Debian has; DIR must not be inside a
# git work tree. Each call then bind-mounts this host's rustup toolchains read-only
# (rustup's home and the directory of the `cargo` proxy; CARGO_HOME is the root's own
# /root/.cargo, so no crate cache is shared), /proc, /sys, /dev, /dev/pts and
# /etc/resolv.conf, runs COMMAND (default: an interactive shell) with bash as root in
# /root, and unmounts everything it mounted, also when COMMAND fails. This host's extra
# CA certificates (/usr/local/share/ca-certificates) are copied in and the variables
# naming the CA bundle (SSL_CERT_FILE, NODE_EXTRA_CA_CERTS, PIP_CERT, ...) passed
# through, so behind a TLS-inspecting proxy the root reaches the package registries as
# the host does.
#
# Example: a fresh clone of a checkout, and the test command in it:
#   git clone --bare . /srv/clean/src/nightcrier.git    # once DIR exists
#   scripts/clean-room.sh /srv/clean \
#       'git clone /src/nightcrier.git nightcrier && cd nightcrier && scripts/test.sh'
#
# Needs root, rustup, debootstrap (apt-get install debootstrap) and a reachable Debian
# mirror (DEBIAN_MIRROR, default http://deb.debian.org/debian).
set -euo pipefail

fail() { printf 'clean-room: %s\n' "$*" >&2; exit 1; }

(($# >= 1)) || fail "usage: scripts/clean-room.sh DIR [COMMAND]"
[[ "$(id -u)" == 0 ]] || fail "must run as root (debootstrap, mount and chroot need it)"
dir=$1
command=${2:-}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

command -v rustup >/dev/null 2>&1 || fail "rustup not found; the Rust toolchain is mounted from rustup's home"
cargo_path=$(command -v cargo) || fail "cargo not found on PATH"
# The directory of rustup's proxies (cargo, rustc, ...), and rustup's home with the toolchains.
cargo_bin=$(cd -- "$(dirname -- "${cargo_path}")" && pwd -P)
rustup_home=$(rustup show home)

if [[ ! -e "${dir}/etc/debian_version" ]]; then
    mkdir -p "${dir}"
    dir=$(cd -- "${dir}" && pwd -P)
    if git -C "${dir}" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        fail "${dir} is inside a git work tree; choose a directory outside it"
    fi
    command -v debootstrap >/dev/null 2>&1 || fail "debootstrap not found (apt-get install debootstrap)"
    printf 'clean-room: creating Debian bookworm in %s\n' "${dir}" >&2
    debootstrap --variant=minbase --include=git,ca-certificates,gcc,libc6-dev \
        bookworm "${dir}" "${mirror}" >&2
fi
dir=$(cd -- "${dir}" && pwd -P)
# debootstrap writes no /etc/hosts; every installed Debian has this one.
if [[ ! -e "${dir}/etc/hosts" ]]; then
    printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"${dir}/etc/hosts"
fi

mounted=()
cleanup() {
    local i
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
        umount "${mounted[i]}" 2>/dev/null || umount -l "${mounted[i]}" || true
    done
}
trap cleanup EXIT

# bind SOURCE TARGET [ro]
bind() {
    local target="${dir}$2"
    if [[ -d "$1" ]]; then mkdir -p "${target}"; else touch "${target}"; fi
    mount --bind "$1" "${target}"
    mounted+=("${target}")
    if [[ "${3:-}" == ro ]]; then
        mount -o remount,bind,ro "${target}"
    fi
}

bind /proc /proc
bind /sys /sys
bind /dev /dev
bind /dev/pts /dev/pts
bind /etc/resolv.conf /etc/resolv.conf ro
bind "${cargo_bin}" /opt/rust/bin ro
bind "${rustup_home}" /opt/rust/rustup ro

# This host's extra CA certificates (a TLS-inspecting proxy's, say), so the root reaches
# the package registries the way the host does; and the variables that point tools at
# the CA bundle, passed through when set.
local_ca=/usr/local/share/ca-certificates
if compgen -G "${local_ca}/*.crt" >/dev/null &&
    ! diff -rq "${local_ca}" "${dir}${local_ca}" >/dev/null 2>&1; then
    mkdir -p "${dir}${local_ca}"
    cp -f "${local_ca}"/*.crt "${dir}${local_ca}/"
    chroot "${dir}" update-ca-certificates >/dev/null 2>&1 || fail "update-ca-certificates failed in ${dir}"
fi
env=(HOME=/root TERM="${TERM:-dumb}" LANG=C.UTF-8
    PATH=/opt/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    RUSTUP_HOME=/opt/rust/rustup CARGO_HOME=/root/.cargo)
for name in SSL_CERT_FILE SSL_CERT_DIR NODE_EXTRA_CA_CERTS PIP_CERT REQUESTS_CA_BUNDLE \
    CURL_CA_BUNDLE GIT_SSL_CAINFO; do
    if [[ -n "${!name:-}" && -e "${dir}${!name}" ]]; then
        env+=("${name}=${!name}")
    fi
done

status=0
if [[ -n "${command}" ]]; then
    chroot "${dir}" /usr/bin/env -i "${env[@]}" /bin/bash -c "cd /root && ${command}" || status=$?
else
    chroot "${dir}" /usr/bin/env -i "${env[@]}" /bin/bash -c 'cd /root && exec bash -i' || status=$?
fi
exit "${status}"
