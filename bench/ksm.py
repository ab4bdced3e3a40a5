#!/usr/bin/env python3
"""KSM and Bulkhead's guest RAM: two identical VMs fill 32 MiB each with the same pages
(test guest `fill=32`, then `idle`), with KSM scanning fast; how many pages KSM merged
(/sys/kernel/mm/ksm/pages_sharing), for Bulkhead and for QEMU with its default anonymous RAM
(which it marks MADV_MERGEABLE) and with a shared memfd (memory-backend-memfd,share=on, what
vhost-user needs). KSM merges only private anonymous pages, and Bulkhead's guest RAM is a
shared memfd. Restores KSM's settings at the end. Needs root.
"""
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
KSM = "/sys/kernel/mm/ksm/"
BIN = os.path.join(HERE, "..", "build", "bin")
GUEST = os.path.join(BIN, "bulkhead-test-guest.elf")
CMDLINE = "fill=32 idle=600"


def ksm(name, value=None):
    if value is None:
        return open(KSM + name).read().strip()
    with open(KSM + name, "w") as f:
        f.write(str(value))


def commands(vmm, i):
    if vmm == "bulkhead":
        return [os.path.join(BIN, "bulkhead"), "run", "--name", "ksm%d" % i, "--memory", "128M", "--cmdline", CMDLINE]
    memory = ["-object", "memory-backend-memfd,id=mem,size=128M,share=on", "-numa", "node,memdev=mem"] \
        if vmm == "qemu-memfd" else []
    return ["qemu-system-x86_64", "-enable-kvm", "-M", "microvm", "-m", "128M", "-smp", "1", "-nodefaults",
            "-no-user-config", "-display", "none", "-serial", "stdio", "-kernel", GUEST, "-append", CMDLINE] + memory


def measure(vmm, seconds):
    ksm("run", 2)  # unmerge everything first
    ksm("run", 1)
    vms = [subprocess.Popen(commands(vmm, i), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True) for i in range(2)]
    for vm in vms:
        for line in vm.stdout:
            if "BH-RESULT fill" in line:
                break
    time.sleep(seconds)
    sharing = int(ksm("pages_sharing"))
    for vm in vms:
        vm.terminate()
        vm.wait()
    return sharing


def main():
    saved = {n: ksm(n) for n in ("run", "pages_to_scan", "sleep_millisecs")}
    try:
        ksm("pages_to_scan", 20000)
        ksm("sleep_millisecs", 10)
        print("Two identical VMs, 32 MiB of identical pages each (8192 pages), KSM scanning for 20 s")
        print("| VMM, guest RAM | pages_sharing |")
        print("|---|---:|")
        for vmm, label in (("bulkhead", "Bulkhead, shared memfd"), ("qemu", "QEMU, anonymous (mem-merge=on)"),
                           ("qemu-memfd", "QEMU, memory-backend-memfd,share=on")):
            print("| %s | %d |" % (label, measure(vmm, 20)), flush=True)
    finally:
        ksm("run", 2)
        for n, v in saved.items():
            ksm(n, v)
    return 0


if __name__ == "__main__":
    sys.exit(main())
