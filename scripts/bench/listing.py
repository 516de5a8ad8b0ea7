#!/usr/bin/env python3
"""ListVolumes paging: does a page cost the same wherever it starts?

Builds --files empty files in --dirs directories, runs the agent on them and times,
through the API (medians of --runs, page size --limit):
  first page, a page from the middle, the last page  (each: one ListVolumes call)
  the whole listing, page after page                  vs  a Python scandir + lstat +
  the whole listing in one call (`more`: pages streamed)   getxattr walk of the same tree
Needs root and a release build (cargo build --release).

    scripts/bench/listing.py [--files 100000] [--dirs 100] [--limit 500] [--runs 5]
"""
import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "clients", "python"))
sys.path.insert(0, os.path.join(HERE, ".."))
import svirtpool  # noqa: E402
from agentproc import Agent  # noqa: E402

sys.path.insert(0, HERE)
from pools import IMAGES, make_tree, write_config  # noqa: E402


def peer_listing(root):
    """What a picker without svirt-pool does: walk, stat and read every label."""
    out = []
    stack = [root]
    while stack:
        d = stack.pop()
        for e in os.scandir(d):
            st = os.lstat(e.path)
            if e.is_dir(follow_symlinks=False):
                stack.append(e.path)
                continue
            try:
                label = os.getxattr(e.path, "security.selinux", follow_symlinks=False)
            except OSError:
                label = None
            out.append((e.path, st.st_size, label))
    return out


def median_time(runs, fn):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=100000)
    ap.add_argument("--dirs", type=int, default=100)
    ap.add_argument("--limit", type=int, default=500)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--binary", default="target/release/svirt-pool")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("listing.py: run as root")
    os.makedirs(IMAGES, mode=0o711, exist_ok=True)
    work = tempfile.mkdtemp(prefix="svirt-bench-list-", dir=IMAGES)
    state = tempfile.mkdtemp(prefix="svirt-bench-state-")
    try:
        tree = os.path.join(work, "tree")
        n = make_tree(tree, a.files, a.dirs)
        per_dir = n // a.dirs
        agent = Agent(os.path.abspath(a.binary), write_config(state, tree)).wait_ready()
        try:
            c = svirtpool.Client(os.path.join(state, "api.sock"))

            def page(after):
                params = {"pool": "bench", "limit": a.limit}
                if after:
                    params["after"] = after
                return c.call("ListVolumes", params)[0]

            def file_at(i):
                return os.path.join(tree, "d%05d" % (i // per_dir), "f%06d.img" % (i % per_dir))

            first = median_time(a.runs, lambda: page(None))
            middle = median_time(a.runs, lambda: page(file_at(n // 2)))
            last = median_time(a.runs, lambda: page(file_at(n - a.limit // 2)))

            def everything():
                after, count = None, 0
                while True:
                    p = page(after)
                    count += len(p["volumes"])
                    after = p.get("next")
                    if after is None:
                        return count

            def streamed():
                count = 0
                for p in c.stream("ListVolumes", {"pool": "bench", "limit": a.limit}):
                    count += len(p["volumes"])
                return count

            assert everything() == streamed() == n
            full, stream, peer = [], [], []
            for _ in range(max(1, a.runs // 2)):  # interleaved
                for times, fn in ((full, everything), (stream, streamed), (peer, lambda: peer_listing(tree))):
                    t = time.perf_counter()
                    fn()
                    times.append(time.perf_counter() - t)
            full, stream, peer = (statistics.median(x) for x in (full, stream, peer))
            c.close()
        finally:
            agent.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)

    print("ListVolumes, %d files in %d dirs, pages of %d (medians of %d)" % (n, a.dirs, a.limit, a.runs))
    print("  first page %8.1f ms   middle page %8.1f ms   last page %8.1f ms   last/first %.2fx" % (
        first * 1e3, middle * 1e3, last * 1e3, last / first))
    print("  whole listing by pages %8.2f s   peer (scandir+lstat+getxattr) %8.2f s   ratio %.2fx" % (
        full, peer, full / peer))
    print("  whole listing streamed %8.2f s   (one call with `more`)                ratio %.2fx" % (
        stream, stream / peer))


if __name__ == "__main__":
    main()
