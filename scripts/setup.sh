#!/usr/bin/env bash
# Installs every Debian package Bulkhead's build, tests and benchmarks need.
# Idempotent: when everything is present it only runs dpkg-query and exits.
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config file
  clang-14 libclang-rt-14-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libseccomp-dev libcap-ng-dev libcap-ng-utils
  protobuf-compiler libprotobuf-dev
  libselinux1-dev libsepol-dev selinux-policy-dev selinux-policy-default
  checkpolicy semodule-utils policycoreutils setools
  liburing-dev libcli11-dev libfmt-dev libspdlog-dev libslirp-dev
  qemu-system-x86 qemu-utils busybox-static cpio e2fsprogs acpica-tools
  python3 lz4 xz-utils zstd kmod iproute2 xorriso
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "setup: installing ${missing[*]}" >&2
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
$SUDO apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
