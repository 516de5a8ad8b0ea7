#!/usr/bin/env python3
"""How each cost grows with the pool: 10,000 -> 100,000 -> 1,000,000 files.

For each size (files in size/1000 directories), one run each, beside its peer:
  first labeling   svirt-pool scan  vs  chcon -R     (every label wrong)
  rescan           svirt-pool scan  vs  chcon -R     (every label right)
  agent            RSS and time to READY (initial scan and watches)
  ListVolumes      the last page of 500 through the API
Needs root and a release build. 1,000,000 files take a few minutes and ~1 GB of inodes:

    scripts/bench/scale.py [--sizes 10000,100000,1000000]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "clients", "python"))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
import svirtpool  # noqa: E402
from agentproc import Agent  # noqa: E402
from pools import GUEST_LABEL, IMAGES, STALE, make_tree, relabel_all, timed, write_config  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--binary", default="target/release/svirt-pool")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("scale.py: run as root")
    binary = os.path.abspath(a.binary)
    os.makedirs(IMAGES, mode=0o711, exist_ok=True)
    rows = []
    for n in [int(s) for s in a.sizes.split(",")]:
        work = tempfile.mkdtemp(prefix="svirt-bench-scale-", dir=IMAGES)
        state = tempfile.mkdtemp(prefix="svirt-bench-state-")
        try:
            tree = os.path.join(work, "tree")
            files = make_tree(tree, n, max(1, n // 1000))
            cfg = write_config(state, tree, resting=GUEST_LABEL)
            relabel_all(tree, STALE)
            first = timed([binary, "--config", cfg, "scan"])
            relabel_all(tree, STALE)
            chcon_first = timed(["chcon", "-R", GUEST_LABEL, tree])
            rescan = timed([binary, "--config", cfg, "scan"])
            chcon_rescan = timed(["chcon", "-R", GUEST_LABEL, tree])
            agent = Agent(binary, cfg).wait_ready()
            rss, ready = agent.rss_kib(), agent.ready_after
            c = svirtpool.Client(os.path.join(state, "api.sock"))
            per_dir = files // max(1, n // 1000)
            last = os.path.join(tree, "d%05d" % (n // 1000 - 1), "f%06d.img" % (per_dir - 250))
            t = time.perf_counter()
            c.call("ListVolumes", {"pool": "bench", "limit": 500, "after": last})
            page = time.perf_counter() - t
            c.close()
            agent.stop()
            rows.append((files, first, chcon_first, rescan, chcon_rescan, rss, ready, page))
        finally:
            shutil.rmtree(work, ignore_errors=True)
            shutil.rmtree(state, ignore_errors=True)
    print("%10s %22s %22s %10s %8s %12s" % ("files", "first labeling (chcon)", "rescan (chcon)", "agent RSS", "READY", "last page"))
    for files, f, cf, r, cr, rss, ready, page in rows:
        print("%10d %8.2f s (%5.2f s) %4.2fx %7.2f s (%5.2f s) %4.2fx %7.1f MiB %6.2f s %9.1f ms" % (
            files, f, cf, f / cf, r, cr, r / cr, rss / 1024, ready, page * 1e3))


if __name__ == "__main__":
    main()
