#!/usr/bin/env bash
# Sets up this machine, builds Bulkhead and boots the demo VM: the built-in test guest with
# the default devices (the serial console on this terminal). Arguments go to `bulkhead run`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
exec build/bin/bulkhead run "$@"
