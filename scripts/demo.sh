#!/usr/bin/env bash
# Sets up this machine, builds Bulkhead and boots the demo VM: the built-in test guest with
# the default devices, the serial console on this terminal, a scratch disk on virtio-scsi and
# a NIC on user-mode networking, every process confined (run as root). Arguments, if any, go
# to `bulkhead run` instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
if [ $# -gt 0 ]; then
  exec build/bin/bulkhead run "$@"
fi
scratch=$(mktemp /tmp/bulkhead-demo-XXXXXX.img)
trap 'rm -f "$scratch"' EXIT
truncate -s 64M "$scratch"
build/bin/bulkhead run --cpus 2 --disk "$scratch" --net user --cmdline "hello smp scsi-disk net"
