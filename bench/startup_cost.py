#!/usr/bin/env python3
"""Start-up cost of confinement: launch to guest-ready, with and without the sandbox.

Each round starts the same VM (test guest, 256M, a virtio-scsi disk, so core, serial and
virtio-scsi processes all start) three ways: Bulkhead confined (the default), Bulkhead with
--no-sandbox, and QEMU microvm booting the same guest binary for reference. The time is taken
from the launch until the guest's first serial line (BH-BOOT), and until the VMM exits.
Rounds alternate; medians are reported with ratios.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from vmm_runs import QEMU_DEBUG_EXIT, alternate, medians


def timed(args):
    start = time.monotonic()
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ready = None
    for line in p.stdout:
        if ready is None and line.startswith("BH-BOOT"):
            ready = time.monotonic() - start
    p.wait()
    done = time.monotonic() - start
    if ready is None:
        raise RuntimeError("%s: no BH-BOOT line (exit %d): %s" % (args[0], p.returncode, p.stderr.read()))
    return {"ready": ready * 1000, "exit": done * 1000}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bin-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build", "bin"))
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("startup_cost.py: run as root (the sandbox needs it)")
    bulkhead = os.path.join(args.bin_dir, "bulkhead")
    guest = os.path.join(args.bin_dir, "bulkhead-test-guest.elf")
    with tempfile.TemporaryDirectory() as tmp:
        disk = os.path.join(tmp, "disk.img")
        with open(disk, "wb") as f:
            f.truncate(16 << 20)
        variants = {
            "bulkhead_sandbox": [bulkhead, "run", "--cmdline", "hello", "--disk", disk],
            "bulkhead_no_sandbox": [bulkhead, "run", "--no-sandbox", "--cmdline", "hello", "--disk", disk],
            "qemu_microvm": ["qemu-system-x86_64", "-enable-kvm", "-M", "microvm", "-m", "256M", "-nodefaults",
                             "-no-user-config", "-nographic", "-serial", "stdio"] + QEMU_DEBUG_EXIT +
                            ["-kernel", guest, "-append", "hello"],
        }
        samples = alternate({name: (lambda c=command: timed(c)) for name, command in variants.items()}, args.rounds)
    result = {name: {k: round(v, 1) for k, v in m.items()} for name, m in medians(samples, ["ready", "exit"]).items()}
    sandbox, bare, qemu = result["bulkhead_sandbox"], result["bulkhead_no_sandbox"], result["qemu_microvm"]
    result["confinement_cost_ms"] = round(sandbox["ready"] - bare["ready"], 1)
    result["ratio_sandbox_vs_no_sandbox"] = round(sandbox["ready"] / bare["ready"], 2)
    result["ratio_sandbox_vs_qemu"] = round(sandbox["ready"] / qemu["ready"], 2)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print("launch to guest-ready / to exit, median of %d rounds (ms):" % args.rounds)
    for name in variants:
        print("  %-22s %8.1f %8.1f" % (name, result[name]["ready"], result[name]["exit"]))
    print("confinement costs %.1f ms at start-up (x%.2f); Bulkhead confined vs QEMU microvm: x%.2f"
          % (result["confinement_cost_ms"], result["ratio_sandbox_vs_no_sandbox"], result["ratio_sandbox_vs_qemu"]))


if __name__ == "__main__":
    main()
