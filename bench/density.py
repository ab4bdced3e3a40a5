#!/usr/bin/env python3
"""Density: N idle VMs of 64 MiB started at once, on Bulkhead (each confined) and on QEMU,
with the same guest binary (the test guest's idle scenario: interrupts on, halted between
timer ticks) in the same run.

Per VMM: the start rate (VMs that reached "BH-READY idle" per second, from the first start),
host memory per VM (the PSS of every process of the VM, summed: pages they share, guest RAM
included, count once), host CPU per idle VM over a window, the first failure (which VM and
why), and, after teardown, what was left: processes, state directories, VM uids. With --ramp,
VMs are added in steps until one fails or --max is reached.
"""
import argparse
import glob
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
FIRST_VM_UID = 1900000000  # launcher/vm_identity.h
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def children_map():
    kids = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = open(stat).read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        kids.setdefault(int(fields[1]), []).append(int(stat.split("/")[2]))
    return kids


def tree(pid, kids):
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        todo += kids.get(p, [])
    return pids


def mem_available_mib():
    for line in open("/proc/meminfo"):
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return 0


def pss_kib(pid):
    try:
        for line in open("/proc/%d/smaps_rollup" % pid):
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_ticks(pid):
    try:
        fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except OSError:
        return 0


class Fleet:
    def __init__(self, vmm, bin_dir, workdir):
        self.vmm, self.bin_dir, self.workdir = vmm, bin_dir, workdir
        self.procs, self.logs = [], []
        self.guest = os.path.join(bin_dir, "bulkhead-test-guest.elf")

    def start(self, i):
        log = os.path.join(self.workdir, "%s-%d.log" % (self.vmm, i))
        if self.vmm == "bulkhead":
            cmd = [os.path.join(self.bin_dir, "bulkhead"), "run", "--name", "density%d" % i, "--memory", "64M",
                   "--cmdline", "idle", "--serial", "file=" + log]
        else:
            cmd = ["qemu-system-x86_64", "-enable-kvm", "-M", "microvm", "-m", "64M", "-smp", "1", "-nodefaults",
                   "-no-user-config", "-display", "none", "-serial", "file:" + log,
                   "-device", "isa-debug-exit,iobase=0xf4,iosize=4", "-kernel", self.guest, "-append", "idle"]
        err = open(log + ".err", "w")
        self.procs.append(subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err))
        self.logs.append(log)

    def ready(self, i):
        try:
            return "BH-READY idle" in open(self.logs[i]).read()
        except OSError:
            return False

    def failure(self, i):
        if self.procs[i].poll() is None:
            return None
        return "VM %d exited with %d: %s" % (i, self.procs[i].returncode, open(self.logs[i] + ".err").read().strip()[-300:])

    def wait_ready(self, first, timeout):
        pending, deadline = set(range(first, len(self.procs))), time.time() + timeout
        while pending and time.time() < deadline:
            for i in sorted(pending):
                if self.ready(i):
                    pending.discard(i)
                elif self.failure(i):
                    return self.failure(i)
            time.sleep(0.05)
        return "VM %d not idle after %d s" % (min(pending), timeout) if pending else None

    def measure(self, window, available_before):
        host_used = available_before - mem_available_mib()
        kids = children_map()
        pids = [p for proc in self.procs for p in tree(proc.pid, kids)]
        pss = sum(pss_kib(p) for p in pids)
        before = sum(cpu_ticks(p) for p in pids)
        time.sleep(window)
        used = sum(cpu_ticks(p) for p in pids) - before
        n = len(self.procs)
        return {"vms": n, "processes_per_vm": len(pids) / n, "pss_mib_per_vm": pss / 1024 / n,
                "host_mib_per_vm": host_used / n, "fits": int(available_before / (host_used / n)),
                "cpu_percent_per_vm": 100.0 * used / CLOCK_TICKS / window / n}

    def stop(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        deadline = time.time() + 5
        while True:
            left = self.leftovers()
            if not any(left.values()) or time.time() > deadline:
                return left
            time.sleep(0.2)

    def leftovers(self):
        left = {"processes": 0, "state_dirs": len(glob.glob("/run/bulkhead/density*")), "vm_uids": 0}
        for status in glob.glob("/proc/[0-9]*/status"):
            try:
                text = open(status).read()
            except OSError:
                continue
            name = text.split("\n", 1)[0].split()[-1]
            uid = int(next(l for l in text.splitlines() if l.startswith("Uid:")).split()[1])
            left["processes"] += name.startswith("bh-") or (self.vmm == "qemu" and name.startswith("qemu-system"))
            left["vm_uids"] += uid >= FIRST_VM_UID
        return left


def run(vmm, args):
    with tempfile.TemporaryDirectory() as workdir:
        fleet = Fleet(vmm, args.bin_dir, workdir)
        result = {"vmm": vmm, "failure": None}
        target = args.vms if vmm == "bulkhead" or not args.qemu_vms else args.qemu_vms
        if args.ramp:
            target = min(args.step, target)
        available_before = mem_available_mib()
        t0 = time.time()
        while True:
            first = len(fleet.procs)
            for i in range(first, target):
                fleet.start(i)
            failure = fleet.wait_ready(first, args.timeout)
            if failure:
                result["failure"] = failure
                break
            result["start_rate_vms_per_s"] = len(fleet.procs) / (time.time() - t0)
            if not args.ramp or target >= args.max or (vmm == "qemu" and args.qemu_vms and target >= args.qemu_vms):
                break
            target = min(target + args.step, args.max)
        time.sleep(2)  # past start-up
        result.update(fleet.measure(args.window, available_before))
        result["reached"] = sum(fleet.ready(i) for i in range(len(fleet.procs)))
        result["left_after_teardown"] = fleet.stop()
        return result


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin-dir", default=os.path.join(HERE, "..", "build", "bin"))
    ap.add_argument("--vms", type=int, default=50)
    ap.add_argument("--ramp", action="store_true", help="add --step VMs at a time until one fails or --max")
    ap.add_argument("--step", type=int, default=100)
    ap.add_argument("--max", type=int, default=600)
    ap.add_argument("--window", type=float, default=10.0, help="seconds over which idle CPU is measured")
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--vmm", choices=["bulkhead", "qemu", "both"], default="both")
    ap.add_argument("--qemu-vms", type=int, help="at most this many QEMU VMs (the count that fits is extrapolated)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()

    results = [run(v, args) for v in (["bulkhead", "qemu"] if args.vmm == "both" else [args.vmm])]
    print("Idle VMs of 64 MiB (test guest `idle`, 10 Hz tick). PSS: of all of a VM's processes; host: the drop")
    print("in MemAvailable per VM (kernel memory included); fits: MemAvailable before / host MiB per VM")
    print("| VMM | VMs idle | processes/VM | PSS MiB/VM | host MiB/VM | fits | CPU %/idle VM | start rate (VMs/s) | first failure | left after teardown |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for r in results:
        print("| %s | %d | %.1f | %.1f | %.1f | %d | %.2f | %.1f | %s | %s |" % (
            r["vmm"], r["reached"], r["processes_per_vm"], r["pss_mib_per_vm"], r["host_mib_per_vm"], r["fits"],
            r["cpu_percent_per_vm"], r.get("start_rate_vms_per_s", 0), r["failure"] or "none",
            ", ".join("%s %d" % kv for kv in r["left_after_teardown"].items())))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0 if all(not any(r["left_after_teardown"].values()) for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
