#!/usr/bin/env python3
"""Disk I/O from the test guest: Bulkhead's virtio-scsi process vs QEMU's in-process
virtio-scsi-pci, same guest binary, same image, same run.

The guest (bench-scsi) polls for completions from CPL3 (no interrupts) and measures 4 KiB
random reads and writes at queue depth 1 and 32 and 128 KiB sequential transfers (queue
depth 4). Rounds alternate between configurations; medians are reported. QEMU runs with
aio=io_uring and aio=threads; the better of the two is the baseline for each metric.
Images: a raw file in /dev/shm (the target of the issue) and one on a disk-backed file
system (page cache), because Bulkhead serves memory-backed images inline (see
device-procs/virtio-scsi/block_backend.h) and disk-backed ones through io_uring.
"""
import argparse
import json
import os
import re
import sys

from vmm_runs import QEMU_DEBUG_EXIT, QEMU_SUCCESS, alternate, guest_output, medians

HERE = os.path.dirname(os.path.abspath(__file__))
METRICS = ["randread_qd1_iops", "randread_qd32_iops", "randwrite_qd1_iops", "randwrite_qd32_iops",
           "seqread_128k_mbps", "seqwrite_128k_mbps"]


def parse(output):
    m = re.search(r"BH-RESULT bench-scsi .*", output)
    if not m:
        raise RuntimeError("no bench-scsi result in guest output:\n" + output[-2000:])
    return {k: int(re.search(k + r"=(\d+)", m.group(0)).group(1)) for k in METRICS}


def bulkhead(args, image, poll_us, bin_dir=None):
    cmd = [os.path.join(bin_dir or args.bin_dir, "bulkhead"), "run", "--memory", "512M", "--disk", image,
           "--kernel", os.path.join(args.bin_dir, "bulkhead-test-guest.elf"),
           "--device-poll-us", str(poll_us), "--cmdline", "bench-scsi=%d" % args.scale]
    return parse(guest_output(cmd, 0, 900))


def qemu(args, image, aio):
    cmd = ["qemu-system-x86_64", "-enable-kvm", "-M", "pc", "-m", "512M", "-nodefaults", "-no-user-config",
           "-nographic", "-serial", "stdio"] + QEMU_DEBUG_EXIT + [
           "-device", "virtio-scsi-pci,id=scsi0",
           "-drive", "file=%s,format=raw,if=none,id=d0,aio=%s" % (image, aio), "-device", "scsi-hd,drive=d0,bus=scsi0.0",
           "-kernel", os.path.join(args.bin_dir, "bulkhead-test-guest.elf"), "-append", "bench-scsi=%d" % args.scale]
    return parse(guest_output(cmd, QEMU_SUCCESS, 900))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin-dir", default=os.path.join(HERE, "..", "build", "bin"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--scale", type=int, default=4, help="guest op-count multiplier")
    ap.add_argument("--disk-dir", default="/var/tmp", help="a disk-backed directory for the second image")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--baseline-bin-dir", help="an earlier build of Bulkhead to run beside this one (same guest binary)")
    args = ap.parse_args()

    results = {}
    for label, directory in (("tmpfs (/dev/shm)", "/dev/shm"), ("disk-backed (%s)" % args.disk_dir, args.disk_dir)):
        image = os.path.join(directory, "bulkhead-bench-%d.img" % os.getpid())
        with open(image, "wb") as f:
            f.truncate(1 << 30)
        try:
            configs = {"bulkhead": lambda: bulkhead(args, image, 200),
                       "bulkhead, polling off": lambda: bulkhead(args, image, 0),
                       "qemu aio=io_uring": lambda: qemu(args, image, "io_uring"),
                       "qemu aio=threads": lambda: qemu(args, image, "threads")}
            if args.baseline_bin_dir:
                configs["bulkhead baseline"] = lambda: bulkhead(args, image, 200, args.baseline_bin_dir)
            med = medians(alternate(configs, args.rounds), METRICS)
        finally:
            os.unlink(image)
        qemu_best = {k: max(med["qemu aio=io_uring"][k], med["qemu aio=threads"][k]) for k in METRICS}
        results[label] = {"medians": med, "qemu_best": qemu_best,
                          "ratio": {k: med["bulkhead"][k] / qemu_best[k] for k in METRICS}}
        print("\n%s, median of %d rounds" % (label, args.rounds))
        print("| metric | QEMU io_uring | QEMU threads | Bulkhead | ratio to best QEMU | Bulkhead, polling off |")
        print("|---|---:|---:|---:|---:|---:|")
        for k in METRICS:
            print("| %s | %d | %d | %d | %.2fx | %d |" % (k, med["qemu aio=io_uring"][k], med["qemu aio=threads"][k],
                                                       med["bulkhead"][k], results[label]["ratio"][k],
                                                       med["bulkhead, polling off"][k]))
        if args.baseline_bin_dir:
            print("| metric | Bulkhead baseline (%s) | Bulkhead | this / baseline |" % args.baseline_bin_dir)
            print("|---|---:|---:|---:|")
            for k in METRICS:
                b = med["bulkhead baseline"][k]
                print("| %s | %d | %d | %.2fx |" % (k, b, med["bulkhead"][k], med["bulkhead"][k] / b))
    target = results["tmpfs (/dev/shm)"]["ratio"]
    worst = min(target["randread_qd32_iops"], target["randwrite_qd32_iops"])
    print("\ntarget: >= 1.2x QEMU's IOPS at QD32 on /dev/shm: %s (worst %.2fx)" % ("met" if worst >= 1.2 else "MISSED", worst))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
