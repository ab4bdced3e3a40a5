#!/usr/bin/env bash
# Downloads a Debian kernel package into a cache and prints the directory holding
#   vmlinuz  (the bzImage, as shipped)
#   vmlinux  (the ELF inside it, with its PVH note; decompressed from the bzImage payload)
#   lib/modules/<version>/ (the package's modules, with modules.dep from depmod)
#   version  (the kernel release, e.g. 6.1.0-56-cloud-amd64)
#
#   fetch-kernel.sh [linux-image-cloud-amd64 | linux-image-amd64]
#
# Cache: $BULKHEAD_CACHE (default ~/.cache/bulkhead)/kernels. Needs apt-get, dpkg-deb, depmod
# (kmod) and the decompressor of the kernel's payload (lz4, xz, zstd or gzip).
set -euo pipefail
meta=${1:-linux-image-cloud-amd64}
cache=${BULKHEAD_CACHE:-$HOME/.cache/bulkhead}/kernels
mkdir -p "$cache"

# With no package lists yet (a fresh machine, or lists cleaned after an install) apt-cache
# fails: that is the cue to update them, not the end of this script.
pkg=$(apt-cache depends "$meta" 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}') || true
if [ -z "$pkg" ]; then
  apt-get update -q >/dev/null
  pkg=$(apt-cache depends "$meta" | awk '/Depends: linux-image-/{print $2; exit}') || true
fi
[ -n "$pkg" ] || { echo "fetch-kernel: cannot resolve $meta" >&2; exit 1; }
dir=$cache/$pkg
if [ ! -s "$dir/vmlinux" ] || [ ! -s "$dir/version" ]; then
  tmp=$(mktemp -d "$cache/.fetch.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && apt-get download "$pkg" >/dev/null 2>&1) || { echo "fetch-kernel: apt-get download $pkg failed" >&2; exit 1; }
  dpkg-deb -x "$tmp"/*.deb "$tmp/root"
  cp "$tmp"/root/boot/vmlinuz-* "$tmp/vmlinuz"
  version=$(ls "$tmp/root/lib/modules")
  depmod -b "$tmp/root" "$version"
  # The protected-mode payload starts after (setup_sects + 1) * 512 bytes, at payload_offset
  # (setup header 0x248) and is payload_length (0x24c) bytes long.
  vals=($(od -An -tu1 -j $((0x1f1)) -N1 "$tmp/vmlinuz") $(od -An -tu4 -j $((0x248)) -N8 "$tmp/vmlinuz"))
  sects=${vals[0]}; off=${vals[1]}; len=${vals[2]}
  [ "$sects" -eq 0 ] && sects=4
  start=$(( (sects + 1) * 512 + off ))
  magic=$(od -An -tx1 -j "$start" -N4 "$tmp/vmlinuz" | tr -d ' ')
  case "$magic" in
    02214c18) dec="lz4 -dc" ;;
    fd377a58) dec="xz -dc" ;;
    28b52ffd) dec="zstd -dc" ;;
    1f8b08*) dec="gzip -dc" ;;
    *) echo "fetch-kernel: unknown payload compression (magic $magic)" >&2; exit 1 ;;
  esac
  # lz4's legacy frames are followed by the kernel's size trailer; tolerate that warning.
  tail -c +$((start + 1)) "$tmp/vmlinuz" | head -c "$len" | $dec > "$tmp/vmlinux" 2>/dev/null || true
  [ "$(head -c4 "$tmp/vmlinux" | od -An -tx1 | tr -d ' ')" = "7f454c46" ] || { echo "fetch-kernel: no ELF in $pkg's payload" >&2; exit 1; }
  rm -rf "$dir"; mkdir -p "$dir"
  mv "$tmp/vmlinuz" "$tmp/vmlinux" "$dir/"
  mkdir -p "$dir/lib"
  mv "$tmp/root/lib/modules" "$dir/lib/"
  echo "$version" > "$dir/version"
fi
echo "$dir"
