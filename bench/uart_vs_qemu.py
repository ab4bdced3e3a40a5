#!/usr/bin/env python3
"""UART register access cost: Bulkhead vs QEMU, same guest binary, same run.

The test guest times N reads of the 16550's LSR and N writes of its scratch register from
CPL3 (bench-uart), and N accesses to a port no device claims (bench-exit: the cost of a
PIO exit alone, which bounds what any VMM can do on this host). Rounds alternate between
the VMMs; medians are reported with the Bulkhead/QEMU ratio (lower is better for Bulkhead).
"""
import argparse
import json
import os
import re
import sys

from vmm_runs import QEMU_DEBUG_EXIT, QEMU_SUCCESS, alternate, guest_output, medians

HERE = os.path.dirname(os.path.abspath(__file__))


def parse(output):
    values = {}
    for name, key in (("bench-uart", "lsr_read_ns"), ("bench-uart", "scr_write_ns"),
                      ("bench-exit", "read_ns"), ("bench-exit", "write_ns")):
        m = re.search(r"BH-RESULT %s .*?\b%s=(\d+)" % (name, key), output)
        if not m:
            raise RuntimeError("no %s %s in guest output:\n%s" % (name, key, output))
        values["%s.%s" % (name, key)] = int(m.group(1))
    return values


def run_bulkhead(bin_dir, cmdline, poll_us, guest_dir=None):
    args = [os.path.join(bin_dir, "bulkhead"), "run", "--cmdline", cmdline,
            "--kernel", os.path.join(guest_dir or bin_dir, "bulkhead-test-guest.elf")]
    if poll_us is not None:
        args += ["--device-poll-us", str(poll_us)]
    return parse(guest_output(args, 0, 600))


def run_qemu(bin_dir, cmdline):
    args = (["qemu-system-x86_64", "-enable-kvm", "-M", "microvm", "-m", "256M", "-smp", "1", "-nodefaults",
             "-no-user-config", "-nographic", "-serial", "stdio"] + QEMU_DEBUG_EXIT +
            ["-kernel", os.path.join(bin_dir, "bulkhead-test-guest.elf"), "-append", cmdline])
    return parse(guest_output(args, QEMU_SUCCESS, 600))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin-dir", default=os.path.join(HERE, "..", "build", "bin"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iterations", type=int, default=20000)
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--baseline-bin-dir", help="an earlier build of Bulkhead to run beside this one (same guest binary)")
    args = ap.parse_args()

    cmdline = "bench-exit=%d bench-uart=%d" % (args.iterations, args.iterations)
    configs = {"qemu": lambda: run_qemu(args.bin_dir, cmdline),
               "bulkhead": lambda: run_bulkhead(args.bin_dir, cmdline, None),
               "bulkhead-no-polling": lambda: run_bulkhead(args.bin_dir, cmdline, 0)}
    if args.baseline_bin_dir:
        configs["bulkhead-baseline"] = lambda: run_bulkhead(args.baseline_bin_dir, cmdline, None, args.bin_dir)
    rows = [("LSR read (reply needed)", "bench-uart.lsr_read_ns"), ("scratch write (posted)", "bench-uart.scr_write_ns"),
            ("unclaimed port read (exit floor)", "bench-exit.read_ns"),
            ("unclaimed port write (exit floor)", "bench-exit.write_ns")]
    med = medians(alternate(configs, args.rounds), [key for _, key in rows])
    print("UART access from CPL3, median of %d rounds x %d accesses (ns per access)" % (args.rounds, args.iterations))
    print("| access | QEMU 7.2 | Bulkhead | ratio | Bulkhead, device polling off | ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    result = {"rounds": args.rounds, "iterations": args.iterations, "medians": med, "ratios": {}}
    for label, key in rows:
        q, b, n = med["qemu"][key], med["bulkhead"][key], med["bulkhead-no-polling"][key]
        result["ratios"][key] = b / q
        print("| %s | %.0f | %.0f | %.2fx | %.0f | %.2fx |" % (label, q, b, b / q, n, n / q))
    if args.baseline_bin_dir:
        print("| access | Bulkhead baseline (%s) | Bulkhead | this / baseline |" % args.baseline_bin_dir)
        print("|---|---:|---:|---:|")
        for label, key in rows:
            b, n = med["bulkhead-baseline"][key], med["bulkhead"][key]
            print("| %s | %.0f | %.0f | %.2fx |" % (label, b, n, n / b))
    worst = max(result["ratios"]["bench-uart.lsr_read_ns"], result["ratios"]["bench-uart.scr_write_ns"])
    print("target: <= 1.3x QEMU per access: %s (worst %.2fx)" % ("met" if worst <= 1.3 else "MISSED", worst))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
