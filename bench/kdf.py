"""Benchmark of the key files' Argon2id levels: time and memory here, and on a Raspberry Pi 4.

Each level derives a key in a fresh child process (so its peak RSS is the
derivation's own), best of ``--rounds``, wall time and CPU time (the CPU
time moves less when other work shares the machine):

- ``interactive``: libsodium's INTERACTIVE level (2 passes, 64 MiB), the
  old default and the reference of this run;
- ``default``: what new key files use (``conode.keyfile.DEFAULT_*``);
- ``max``: the most a key file may ask for (``MAX_OPSLIMIT``, ``MAX_MEMLIMIT``);
- ``moderate``: libsodium's MODERATE (3 passes, 256 MiB), for comparison.

The Raspberry Pi 4 column is a documented scaling, not a measurement: a
Pi 4's ``cryptsetup benchmark`` (libargon2's reference code, as libsodium
runs on ARM) reports Argon2id with 4 passes over 320 139 KiB on 4 threads
in 2 000 ms, i.e. 4 x 312.6 MiB / 2 s / 4 cores = 156 MiB of memory passed
per second per core (https://blog.stackframe.dev/46). A derivation of
``opslimit`` passes over ``memlimit`` bytes on one core then takes about
``opslimit x memlimit / 156 MiB/s``. A lone thread has the memory bus to
itself, so this errs towards slow.

Usage: ``python bench/kdf.py [--quick] [--rounds N]``. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Any, Final

import nacl.pwhash.argon2id as argon2id

from conode.keyfile import DEFAULT_MEMLIMIT, DEFAULT_OPSLIMIT, MAX_MEMLIMIT, MAX_OPSLIMIT

PI4_MIB_PASSES_PER_S: Final = 4 * 320_139 / 1024 / 2.0 / 4
"""Argon2id memory passes per second on one Raspberry Pi 4 core (see the docstring)."""

LEVELS: Final = {
    "interactive": (argon2id.OPSLIMIT_INTERACTIVE, argon2id.MEMLIMIT_INTERACTIVE),
    "default": (DEFAULT_OPSLIMIT, DEFAULT_MEMLIMIT),
    "max": (MAX_OPSLIMIT, MAX_MEMLIMIT),
    "moderate": (argon2id.OPSLIMIT_MODERATE, argon2id.MEMLIMIT_MODERATE),
}

_CHILD: Final = """
import resource, sys, time
import nacl.pwhash.argon2id as argon2id
ops, mem = int(sys.argv[1]), int(sys.argv[2])
before = resource.getrusage(resource.RUSAGE_SELF)
start = time.perf_counter()
argon2id.kdf(32, b"correct horse battery staple", b"s" * 16, opslimit=ops, memlimit=mem)
elapsed = time.perf_counter() - start
after = resource.getrusage(resource.RUSAGE_SELF)
cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
print(elapsed, cpu, before.ru_maxrss, after.ru_maxrss)
"""


def derive_once(opslimit: int, memlimit: int) -> tuple[float, float, float]:
    """(wall s, CPU s, MiB added to the peak RSS) of one derivation in a child process."""
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(opslimit), str(memlimit)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    seconds, cpu, base_kib, peak_kib = float(out[0]), float(out[1]), int(out[2]), int(out[3])
    return seconds, cpu, (peak_kib - base_kib) / 1024


def measure(opslimit: int, memlimit: int, rounds: int) -> dict[str, Any]:
    """The best of ``rounds`` derivations, their memory, and the Pi 4 estimate."""
    runs = [derive_once(opslimit, memlimit) for _ in range(rounds)]
    seconds = min(s for s, _, _ in runs)
    mib = memlimit / (1 << 20)
    return {
        "opslimit": opslimit,
        "memlimit_mib": mib,
        "ms": round(seconds * 1000, 1),
        "cpu_ms": round(min(c for _, c, _ in runs) * 1000, 1),
        "rss_added_mib": round(max(m for _, _, m in runs), 1),
        "mib_passes_per_s": round(opslimit * mib / min(c for _, c, _ in runs)),  # per CPU second
        "pi4_estimate_ms": round(opslimit * mib / PI4_MIB_PASSES_PER_S * 1000),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round per level")
    parser.add_argument("--rounds", type=int, default=5, metavar="N", help="default 5")
    args = parser.parse_args()
    rounds = 1 if args.quick else args.rounds
    with open("/proc/loadavg") if os.path.exists("/proc/loadavg") else open(os.devnull) as f:
        load = f.read().split()[:3]
    figures: dict[str, Any] = {"rounds": rounds, "loadavg": load}
    print(f"Argon2id (libsodium, one thread), best of {rounds}; load average {' '.join(load)}")
    print(
        f"{'level':<12} {'ops':>3} {'MiB':>5} {'ms here':>8} {'CPU ms':>8} {'+RSS MiB':>9} "
        f"{'Pi 4 ms (est.)':>15}"
    )
    for name, (ops, mem) in LEVELS.items():
        row = measure(ops, mem, rounds)
        figures[name] = row
        print(
            f"{name:<12} {ops:>3} {row['memlimit_mib']:>5.0f} {row['ms']:>8.1f} "
            f"{row['cpu_ms']:>8.1f} {row['rss_added_mib']:>9.1f} {row['pi4_estimate_ms']:>15}"
        )
    reference = figures["interactive"]["cpu_ms"]
    figures["default_vs_interactive"] = round(figures["default"]["cpu_ms"] / reference, 2)
    figures["max_vs_default"] = round(figures["max"]["cpu_ms"] / figures["default"]["cpu_ms"], 2)
    print(
        f"CPU time, default / interactive (the reference): {figures['default_vs_interactive']}x; "
        f"max / default: {figures['max_vs_default']}x"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
