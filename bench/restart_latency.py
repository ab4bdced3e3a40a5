#!/usr/bin/env python3
"""Device restart latency: how long the guest waits when a device process dies.

--device scsi (the default): the test guest runs scsi-verify (writes, flushes and reads back
1 MiB rounds, 16 requests in flight, and prints "BH-STALL scsi us=N" whenever two completions
are 2 ms or more apart; flushes are not timed). This script SIGKILLs bh-virtio-scsi again and
again; the supervisor restarts it, the core replays the vhost-user set-up and the new process
resubmits what the dead one left in flight.
--device serial: the guest reads the UART's scratch register in a loop (serial-probe) and
reports every read that took 2 ms or more; bh-serial is killed, and the new process resumes the
UART from its state page and answers the read the vCPU was waiting on.
--device ide: the same with the IDE controller's sector count register (ide-probe, the disk on
IDE); bh-ide is killed and the new process resumes both channels from its state page.
--device balloon: the guest inflates and deflates one page again and again (balloon-probe);
bh-balloon is killed, and the new process resubmits the request the dead one left in flight.

Per kill, the guest's longest wait is the time from the kill to its next completed request
(bounded below by 2 ms: a shorter one is not reported and counted as "< 2 ms"). Reported:
median, 90th percentile and maximum over the kills. QEMU has no such number: a vhost-user
back-end that dies stops its device until the VM is restarted, and its serial port cannot die
on its own.
"""

# Per device: the guest's workload, the progress line that says it runs, the process to kill,
# its name, and how the disk is attached.
DEVICES = {
    "scsi": (["--cmdline", "scsi-verify=1000000"], "round=3", "bh-virtio-scsi", "virtio-scsi", ""),
    "serial": (["--cmdline", "serial-probe=100000"], "BH-READY serial-probe", "bh-serial", "serial", ""),
    "ide": (["--cmdline", "ide-probe=100000"], "BH-READY ide-probe", "bh-ide", "IDE", ",bus=ide"),
    "balloon": (["--balloon", "on", "--cmdline", "balloon-probe=100000"], "BH-READY balloon-probe", "bh-balloon",
                "virtio-balloon", ""),
}
import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time


def device_pid(launcher_pid, name):
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        if comm == name and ppid == launcher_pid:
            return int(entry)
    return None


class Lines:
    """Collects a pipe's lines with the time each arrived."""

    def __init__(self, pipe):
        self.lines = []
        self.lock = threading.Lock()
        threading.Thread(target=self._read, args=(pipe,), daemon=True).start()

    def _read(self, pipe):
        for line in pipe:
            with self.lock:
                self.lines.append((time.monotonic(), line))

    def snapshot(self):
        with self.lock:
            return list(self.lines)


def measure(bin_dir, device, kills, spacing):
    workload, started, process, _, attach = DEVICES[device]
    with tempfile.TemporaryDirectory(dir="/dev/shm") as d:
        image = os.path.join(d, "disk.img")
        with open(image, "wb") as f:
            f.truncate(16 << 20)
        vm = subprocess.Popen([os.path.join(bin_dir, "bulkhead"), "run", "--disk", image + attach, "--device-restarts",
                               "%d/60" % (kills + 10)] + workload,
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = Lines(vm.stdout), Lines(vm.stderr)
        kill_times = []
        try:
            deadline = time.monotonic() + 60
            while not any(started in l for _, l in out.snapshot()):
                if time.monotonic() > deadline or vm.poll() is not None:
                    raise RuntimeError("the guest did not start its workload:\n" + "".join(l for _, l in err.snapshot()))
                time.sleep(0.05)
            for i in range(kills):
                time.sleep(spacing)
                pid = device_pid(vm.pid, process)
                if pid is None:
                    raise RuntimeError("no %s after %d kills" % (process, i))
                kill_times.append(time.monotonic())
                os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + 10
                while sum("restarted it (" in l for _, l in err.snapshot()) < i + 1:
                    if time.monotonic() > deadline:
                        raise RuntimeError("no restart after kill %d:\n%s" % (i + 1, "".join(l for _, l in err.snapshot())))
                    time.sleep(0.005)
            time.sleep(spacing)
        finally:
            vm.send_signal(signal.SIGTERM)
            vm.wait(30)
        stalls = [(t, int(m.group(1))) for t, l in out.snapshot()
                  for m in [re.search(r"BH-STALL %s us=(\d+)" % device, l)] if m]
        if any(re.search(r"BH-RESULT \S+ failed", l) for _, l in out.snapshot()):
            raise RuntimeError("the guest saw an error")
        waits = []
        bounds = kill_times + [float("inf")]
        for i in range(kills):
            inside = [us for t, us in stalls if bounds[i] <= t < bounds[i + 1]]
            waits.append(max(inside) if inside else 0)
        return waits


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build", "bin"))
    ap.add_argument("--device", choices=sorted(DEVICES), default="scsi")
    ap.add_argument("--kills", type=int, default=30)
    ap.add_argument("--spacing", type=float, default=1.1,
                    help="seconds between kills (a device that dies within 1 s of its start is restarted with a backoff)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    waits = measure(args.bin_dir, args.device, args.kills, args.spacing)
    ms = sorted(w / 1000 for w in waits)
    result = {"kills": len(ms), "median_ms": statistics.median(ms), "p90_ms": ms[int(0.9 * (len(ms) - 1))],
              "max_ms": ms[-1], "under_2ms": sum(1 for w in waits if w == 0)}
    if args.json:
        print(json.dumps(result))
    else:
        print("%s restart, guest's wait from SIGKILL to its next completion over %d kills:" % (
            DEVICES[args.device][3], result["kills"]))
        print("  median %.1f ms, p90 %.1f ms, max %.1f ms (%d kills under 2 ms)" % (
            result["median_ms"], result["p90_ms"], result["max_ms"], result["under_2ms"]))
        print("  target: median <= 20 ms (Cloud Hypervisor retries a vhost-user reconnect every 100 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
