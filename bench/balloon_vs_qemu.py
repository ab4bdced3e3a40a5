#!/usr/bin/env python3
"""Balloon speed: Bulkhead's virtio-balloon process vs QEMU's in-process virtio-balloon, same
guest binary, same run. The test guest touches MIB of its RAM, then times inflating all of it
(page numbers to the device, 256 per buffer as Linux sends them, the host punching the pages
out of guest RAM) and deflating it again (bench-balloon). Reported: time per GiB and host
memory returned per second; medians of alternating rounds.
"""
import argparse
import json
import os
import re
import sys

from vmm_runs import QEMU_DEBUG_EXIT, QEMU_SUCCESS, alternate, guest_output, medians

HERE = os.path.dirname(os.path.abspath(__file__))


def parse(output):
    m = re.search(r"BH-RESULT bench-balloon mib=(\d+) inflate_us=(\d+) deflate_us=(\d+) result=ok", output)
    if not m:
        raise RuntimeError("no bench-balloon result in guest output:\n" + output[-2000:])
    mib = int(m.group(1))
    return {"inflate_ms_per_gib": int(m.group(2)) / 1000 * 1024 / mib, "deflate_ms_per_gib": int(m.group(3)) / 1000 * 1024 / mib}


def run_bulkhead(bin_dir, mib, memory):
    return parse(guest_output([os.path.join(bin_dir, "bulkhead"), "run", "--memory", memory, "--balloon", "on",
                               "--cmdline", "bench-balloon=%d" % mib], 0, 600))


def run_qemu(bin_dir, mib, memory):
    return parse(guest_output(["qemu-system-x86_64", "-enable-kvm", "-M", "pc", "-m", memory, "-nodefaults",
                               "-no-user-config", "-nographic", "-serial", "stdio", "-device", "virtio-balloon-pci"] +
                              QEMU_DEBUG_EXIT + ["-kernel", os.path.join(bin_dir, "bulkhead-test-guest.elf"),
                                                 "-append", "bench-balloon=%d" % mib], QEMU_SUCCESS, 600))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin-dir", default=os.path.join(HERE, "..", "build", "bin"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    memory = "%dM" % (args.mib + 128)
    configs = {"qemu": lambda: run_qemu(args.bin_dir, args.mib, memory),
               "bulkhead": lambda: run_bulkhead(args.bin_dir, args.mib, memory)}
    keys = ["inflate_ms_per_gib", "deflate_ms_per_gib"]
    med = medians(alternate(configs, args.rounds), keys)
    print("Balloon, %d MiB touched then inflated and deflated, median of %d rounds" % (args.mib, args.rounds))
    print("| | QEMU 7.2 | Bulkhead | ratio (Bulkhead / QEMU, lower is better) |")
    print("|---|---:|---:|---:|")
    for key, label in zip(keys, ["inflate 1 GiB (ms)", "deflate 1 GiB (ms)"]):
        q, b = med["qemu"][key], med["bulkhead"][key]
        print("| %s | %.0f | %.0f | %.2fx |" % (label, q, b, b / q))
    q, b = med["qemu"]["inflate_ms_per_gib"], med["bulkhead"]["inflate_ms_per_gib"]
    print("| host memory returned (GiB/s) | %.2f | %.2f | %.2fx (higher is better) |" % (1000 / q, 1000 / b, q / b))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(med, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
