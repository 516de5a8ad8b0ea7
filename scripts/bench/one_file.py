#!/usr/bin/env python3
"""The cost of one small job: `svirt-pool scan` of a pool holding one file, beside the
one-shot tools an admin would run instead (medians of --runs, interleaved).

  with resting_label set      scan   vs  chcon LABEL FILE
  with file_contexts defaults scan   vs  matchpathcon FILE (one file_contexts lookup)
                                         and chcon
Needs root, a release build (cargo build --release), chcon and matchpathcon.

    scripts/bench/one_file.py [--runs 21]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from pools import GUEST_LABEL, IMAGES, median_pair, timed, write_config  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=21)
    ap.add_argument("--binary", default="target/release/svirt-pool")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("one_file.py: run as root")
    binary = os.path.abspath(a.binary)
    os.makedirs(IMAGES, mode=0o711, exist_ok=True)
    pool = tempfile.mkdtemp(prefix="svirt-bench-one-", dir=IMAGES)
    state = tempfile.mkdtemp(prefix="svirt-bench-state-")
    try:
        f = os.path.join(pool, "disk.img")
        open(f, "wb").close()
        resting = write_config(state, pool, resting=GUEST_LABEL)
        scan = lambda cfg: (lambda: timed([binary, "--config", cfg, "scan"]))
        chcon = lambda: timed(["chcon", GUEST_LABEL, f])
        noop = lambda: None
        s1, c1 = median_pair(a.runs, scan(resting), chcon, noop)
        state2 = tempfile.mkdtemp(prefix="svirt-bench-state-")
        defaults = write_config(state2, pool)
        lookup = lambda: timed(["matchpathcon", f])
        s2, m2 = median_pair(a.runs, scan(defaults), lookup, noop)
        shutil.rmtree(state2)
    finally:
        shutil.rmtree(pool, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)
    print("scan of a 1-file pool (medians of %d)" % a.runs)
    print("  resting_label set:        scan %6.1f ms   chcon %6.1f ms          ratio %.2fx" % (
        s1 * 1e3, c1 * 1e3, s1 / c1))
    print("  file_contexts defaults:   scan %6.1f ms   matchpathcon %6.1f ms   ratio %.2fx (%.1fx chcon)" % (
        s2 * 1e3, m2 * 1e3, s2 / m2, s2 / c1))


if __name__ == "__main__":
    main()
