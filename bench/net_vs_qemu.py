#!/usr/bin/env python3
"""Networking from the test guest: Bulkhead's NIC processes (virtio-net, e1000) vs QEMU's
in-process virtio-net-pci and e1000, on the same host end in the same run, same guest binary:
user-mode networking (Bulkhead's bh-slirp helper and QEMU's -netdev user: the same libslirp)
and a tap in a network namespace of the benchmark's own (root only), where QEMU's vhost-net is
measured too when the host has /dev/vhost-net.

The guest (bench-net, bench-e1000) polls its rings from CPL3. It measures the round-trip time
of 64-byte UDP datagrams to an echo server on the host, a stream of full-size datagrams from
the guest to a sink (stream_*), and a flood of full-size datagrams from the server to the guest
(rx_*); for the e1000 also the cost of one register read (a VM exit and the device's answer).
Host CPU per gigabyte is the CPU time of every process of the VMM (its device processes and
helpers included) over the bytes of both streams, for the whole run (boot and round trips
included, the same for both VMMs). Rounds alternate between configurations; medians.
"""
import argparse
import json
import os
import re
import resource
import socket
import subprocess
import sys
import threading
import time

from vmm_runs import QEMU_DEBUG_EXIT, QEMU_SUCCESS, alternate, guest_output, medians

HERE = os.path.dirname(os.path.abspath(__file__))
NICS = {
    "virtio-net": {"scenario": "bench-net", "model": "virtio", "qemu": "virtio-net-pci,netdev=n0,mrg_rxbuf=on",
                   "metrics": ["rtt_ns", "stream_pps", "stream_mbps", "rx_pps", "rx_mbps"]},
    "e1000": {"scenario": "bench-e1000", "model": "e1000", "qemu": "e1000,netdev=n0",
              "metrics": ["access_ns", "rtt_ns", "stream_pps", "stream_mbps", "rx_pps", "rx_mbps"]},
}
LOWER_IS_BETTER = {"rtt_ns", "access_ns", "cpu_ms_per_gb"}
NETNS, TAP, TAP_ADDRESS = "bh-bench-%d" % os.getpid(), "bhbench0", "10.0.3.1"


def serve(address):
    """The benchmark's server: echoes datagrams, floods on "FLOOD count size", and sinks the
    next port. Prints its port, then serves until killed."""
    while True:
        echo = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        echo.bind((address, 0))
        port = echo.getsockname()[1]
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sink.bind((address, port + 1))
            break
        except OSError:
            echo.close()
            sink.close()

    def drain():
        while True:
            sink.recv(65536)

    threading.Thread(target=drain, daemon=True).start()
    print(port, flush=True)
    while True:
        data, peer = echo.recvfrom(65536)
        words = data.split()
        if len(words) == 3 and words[0] == b"FLOOD":
            payload = bytes(int(words[2]))
            for _ in range(int(words[1])):
                echo.sendto(payload, peer)
            for _ in range(3):
                time.sleep(0.05)
                echo.sendto(b"END", peer)
        else:
            echo.sendto(data, peer)


class Server:
    """`serve` in a child process, in the benchmark's network namespace or ours."""

    def __init__(self, address, netns=None):
        cmd = [sys.executable, os.path.abspath(__file__), "--serve", address]
        if netns:
            cmd = ["ip", "netns", "exec", netns] + cmd
        self.process = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        self.port = int(self.process.stdout.readline())

    def close(self):
        self.process.kill()
        self.process.wait()


def parse(nic, output):
    m = re.search(r"BH-RESULT %s .*" % NICS[nic]["scenario"], output)
    if not m or "lost=0" not in m.group(0):
        raise RuntimeError("no clean %s result in guest output:\n%s" % (NICS[nic]["scenario"], output[-2000:]))
    line = m.group(0)
    values = {k: int(re.search(k + r"=(\d+)", line).group(1)) for k in NICS[nic]["metrics"]}
    values["bytes"] = 20000 * 1514 + int(re.search(r"rx_received=(\d+)", line).group(1)) * 1514
    return values


def measured(cmd, success_status, nic):
    """Runs a VMM to completion; its results and the CPU its processes used per gigabyte."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    values = parse(nic, guest_output(cmd, success_status, 300))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    values["cpu_ms_per_gb"] = int(cpu * 1000 / (values.pop("bytes") / 1e9))
    return values


def bulkhead(args, nic, backend, port, poll_us=None, bin_dir=None):
    net = ("user" if backend == "user" else "tap=" + TAP) + ",model=" + NICS[nic]["model"]
    arg = ("tap:%d" if backend == "tap" else "%d") % port
    cmd = [os.path.join(bin_dir or args.bin_dir, "bulkhead"), "run", "--memory", "256M", "--net", net,
           "--kernel", os.path.join(args.bin_dir, "bulkhead-test-guest.elf"),
           "--cmdline", "%s=%s" % (NICS[nic]["scenario"], arg)]
    if poll_us is not None:
        cmd += ["--device-poll-us", str(poll_us)]
    if backend == "tap":
        cmd = ["ip", "netns", "exec", NETNS] + cmd
    return measured(cmd, 0, nic)


def qemu(args, nic, backend, port, vhost=False):
    netdev = "user,id=n0" if backend == "user" else "tap,id=n0,ifname=%s,script=no,downscript=no,vhost=%s" % (
        TAP, "on" if vhost else "off")
    arg = ("tap:%d" if backend == "tap" else "%d") % port
    cmd = ["qemu-system-x86_64", "-enable-kvm", "-M", "pc", "-m", "256M", "-nodefaults", "-no-user-config",
           "-nographic", "-serial", "stdio"] + QEMU_DEBUG_EXIT + [
           "-netdev", netdev, "-device", NICS[nic]["qemu"],
           "-kernel", os.path.join(args.bin_dir, "bulkhead-test-guest.elf"),
           "-append", "%s=%s" % (NICS[nic]["scenario"], arg)]
    if backend == "tap":
        cmd = ["ip", "netns", "exec", NETNS] + cmd
    return measured(cmd, QEMU_SUCCESS, nic)


def ratio(metric, ours, theirs):
    """How much better than the other (above 1: better), whichever way the metric points."""
    if not ours or not theirs:
        return float("nan")
    return theirs / ours if metric in LOWER_IS_BETTER else ours / theirs


def make_netns():
    def ip(*a):
        subprocess.run(["ip"] + list(a), check=True)

    ip("netns", "add", NETNS)
    ip("-n", NETNS, "tuntap", "add", "dev", TAP, "mode", "tap", "vnet_hdr")
    ip("-n", NETNS, "addr", "add", TAP_ADDRESS + "/24", "dev", TAP)
    ip("-n", NETNS, "link", "set", TAP, "up")


def tap_unavailable():
    if os.geteuid() != 0:
        return "taps need root"
    if not os.path.exists("/dev/net/tun"):
        return "no /dev/net/tun"
    if subprocess.run(["which", "ip"], capture_output=True).returncode != 0:
        return "no ip (iproute2)"
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin-dir", default=os.path.join(HERE, "..", "build", "bin"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--baseline-bin-dir", help="an earlier build of Bulkhead to run beside this one (same guest binary)")
    ap.add_argument("--nic", action="append", choices=sorted(NICS), help="which NICs (default: all)")
    ap.add_argument("--backend", action="append", choices=["user", "tap"], help="which host ends (default: both)")
    ap.add_argument("--serve", metavar="ADDRESS", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        return serve(args.serve)
    args.nic = args.nic or list(NICS)
    args.backend = args.backend or ["user", "tap"]

    results = {}
    for backend in args.backend:
        if backend == "tap":
            why = tap_unavailable()
            if why:
                print("\ntap: skipped (%s)" % why)
                continue
            make_netns()
        server = Server(TAP_ADDRESS if backend == "tap" else "127.0.0.1", NETNS if backend == "tap" else None)
        try:
            for nic in args.nic:
                metrics = NICS[nic]["metrics"] + ["cpu_ms_per_gb"]
                configs = {"bulkhead": lambda: bulkhead(args, nic, backend, server.port),
                           "qemu": lambda: qemu(args, nic, backend, server.port)}
                if backend == "tap" and os.path.exists("/dev/vhost-net") and nic == "virtio-net":
                    configs["qemu vhost-net"] = lambda: qemu(args, nic, backend, server.port, vhost=True)
                if nic == "virtio-net":
                    configs["bulkhead, polling 200 us"] = lambda: bulkhead(args, nic, backend, server.port, 200)
                if args.baseline_bin_dir:
                    configs["bulkhead baseline"] = lambda: bulkhead(args, nic, backend, server.port,
                                                                    bin_dir=args.baseline_bin_dir)
                med = medians(alternate(configs, args.rounds), metrics)
                key = "%s, %s" % (nic, backend)
                results[key] = {"medians": med, "ratio": {k: ratio(k, med["bulkhead"][k], med["qemu"][k]) for k in metrics}}
                others = [c for c in configs if c not in ("bulkhead", "qemu")]
                print("\n%s on %s, median of %d rounds (ratio above 1: Bulkhead better)" % (nic, backend, args.rounds))
                print("| metric | QEMU | Bulkhead | ratio |" + "".join(" %s |" % c for c in others))
                print("|---|---:|---:|---:|" + "---:|" * len(others))
                for k in metrics:
                    row = "| %s | %d | %d | %.2fx |" % (k, med["qemu"][k], med["bulkhead"][k], results[key]["ratio"][k])
                    for c in others:
                        row += " %d (%.2fx) |" % (med[c][k], ratio(k, med["bulkhead"][k], med[c][k]))
                    print(row)
                if backend == "tap" and nic == "virtio-net" and "qemu vhost-net" not in configs:
                    print("(QEMU vhost-net: not measured, this host has no /dev/vhost-net)")
        finally:
            server.close()
            if backend == "tap":
                subprocess.run(["ip", "netns", "del", NETNS])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
