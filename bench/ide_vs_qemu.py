#!/usr/bin/env python3
"""IDE from the test guest: Bulkhead's IDE process vs QEMU's in-process piix3-ide, same guest
binary, same image (1 GiB in /dev/shm), same run.

The guest (bench-ide) measures the cost of one register access (an alternate-status read:
one port-I/O exit, and for Bulkhead one round trip to the device process), sequential reads
by PIO (READ MULTIPLE, 32-bit string I/O) and reads and writes by bus-master DMA, 128 KiB a
command. It polls (no interrupts). Rounds alternate between configurations; medians are
reported, with Bulkhead's ratio to QEMU (for the access cost, QEMU's cost over ours: above
1.0x is better for Bulkhead in every column).
"""
import argparse
import json
import os
import re
import sys

from vmm_runs import QEMU_DEBUG_EXIT, QEMU_SUCCESS, alternate, guest_output, medians

HERE = os.path.dirname(os.path.abspath(__file__))
METRICS = ["access_ns", "pio_read_mbps", "dma_read_mbps", "dma_write_mbps"]


def parse(output):
    m = re.search(r"BH-RESULT bench-ide .*", output)
    if not m:
        raise RuntimeError("no bench-ide result in guest output:\n" + output[-2000:])
    return {k: int(re.search(k + r"=(\d+)", m.group(0)).group(1)) for k in METRICS}


def bulkhead(args, image, poll_us):
    cmd = [os.path.join(args.bin_dir, "bulkhead"), "run", "--memory", "512M", "--disk", image + ",bus=ide",
           "--kernel", os.path.join(args.bin_dir, "bulkhead-test-guest.elf"), "--device-poll-us", str(poll_us),
           "--cmdline", "bench-ide=%d" % args.scale]
    return parse(guest_output(cmd, 0, 900))


def qemu(args, image):
    cmd = ["qemu-system-x86_64", "-enable-kvm", "-M", "pc", "-m", "512M", "-nodefaults", "-no-user-config",
           "-nographic", "-serial", "stdio"] + QEMU_DEBUG_EXIT + [
           "-drive", "file=%s,format=raw,if=ide,index=0,aio=io_uring" % image,
           "-kernel", os.path.join(args.bin_dir, "bulkhead-test-guest.elf"), "-append", "bench-ide=%d" % args.scale]
    return parse(guest_output(cmd, QEMU_SUCCESS, 900))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin-dir", default=os.path.join(HERE, "..", "build", "bin"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--scale", type=int, default=1, help="guest transfer-size multiplier")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()

    image = "/dev/shm/bulkhead-ide-bench-%d.img" % os.getpid()
    with open(image, "wb") as f:
        f.truncate(1 << 30)
    try:
        configs = {"bulkhead": lambda: bulkhead(args, image, 200),
                   "bulkhead, polling off": lambda: bulkhead(args, image, 0),
                   "qemu": lambda: qemu(args, image)}
        med = medians(alternate(configs, args.rounds), METRICS)
    finally:
        os.unlink(image)
    ratio = {k: (med["qemu"][k] / med["bulkhead"][k] if k == "access_ns" else med["bulkhead"][k] / med["qemu"][k])
             for k in METRICS}
    print("median of %d rounds" % args.rounds)
    print("| metric | QEMU | Bulkhead | ratio (>1: Bulkhead better) | Bulkhead, polling off |")
    print("|---|---:|---:|---:|---:|")
    for k in METRICS:
        print("| %s | %d | %d | %.2fx | %d |" % (k, med["qemu"][k], med["bulkhead"][k], ratio[k],
                                              med["bulkhead, polling off"][k]))
    cost = 1 / ratio["access_ns"]
    throughput = min(ratio["pio_read_mbps"], ratio["dma_read_mbps"], ratio["dma_write_mbps"])
    print("\ntargets: register access <= 1.3x QEMU's cost: %s (%.2fx); throughput >= 1.0x QEMU: %s (worst %.2fx)" %
          ("met" if cost <= 1.3 else "MISSED", cost, "met" if throughput >= 1.0 else "MISSED", throughput))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"medians": med, "ratio": ratio}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
