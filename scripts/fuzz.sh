#!/usr/bin/env bash
# Builds the libFuzzer harnesses with clang (build-fuzz/) and runs each for a bounded time
# (FUZZ_SECONDS, default 30) on the corpus in tests/fuzz/corpus. New inputs go to a scratch
# copy, not into the repository. Exits non-zero on any finding.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
CC=clang-14 CXX=clang++-14 cmake -S . -B build-fuzz -G Ninja -DBULKHEAD_FUZZ=ON >/dev/null
targets=(fuzz_descriptor_chain fuzz_vhost_user_messages fuzz_scsi_cdb fuzz_net_device fuzz_e1000 fuzz_ide fuzz_balloon)
ninja -C build-fuzz "${targets[@]}" >&2
scratch=$(mktemp -d); trap 'rm -rf "$scratch"' EXIT
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t" "tests/fuzz/corpus/$t"
  echo "fuzz: $t for ${FUZZ_SECONDS:-30} s" >&2
  if ! (cd "$scratch" && "$OLDPWD/build-fuzz/bin/$t" -max_total_time="${FUZZ_SECONDS:-30}" -timeout=10 \
        -rss_limit_mb=4096 -print_final_stats=1 "$scratch/$t" "$OLDPWD/tests/fuzz/corpus/$t" >"$scratch/$t.log" 2>&1); then
    tail -60 "$scratch/$t.log" >&2
    echo "fuzz: $t found a problem (the crashing input is in the log above)" >&2
    exit 1
  fi
  grep -E "number_of_executed_units|new_units_added" "$scratch/$t.log" >&2
done
