"""What the benchmarks against QEMU share: running a VMM on the test guest, rounds that
alternate between configurations, and medians."""
import statistics
import subprocess

# QEMU's isa-debug-exit turns the guest's exit status 0 into (0 << 1) | 1.
QEMU_DEBUG_EXIT = ["-device", "isa-debug-exit,iobase=0xf4,iosize=4"]
QEMU_SUCCESS = 1


def guest_output(cmd, success_status, timeout):
    """Runs a VMM to completion and returns the guest's console output."""
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    if r.returncode != success_status:
        raise RuntimeError("%s failed (%d): %s\nguest output ends:\n%s" % (cmd[0], r.returncode, r.stderr,
                                                                        r.stdout[-2000:]))
    return r.stdout


def alternate(configs, rounds):
    """Runs each configuration once per round, in turn; returns their samples by name."""
    samples = {name: [] for name in configs}
    for _ in range(rounds):
        for name, run in configs.items():
            samples[name].append(run())
    return samples


def medians(samples, keys):
    """Per configuration, the median of each key over its samples."""
    return {name: {k: statistics.median(s[k] for s in runs) for k in keys} for name, runs in samples.items()}
