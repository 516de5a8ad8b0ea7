#!/usr/bin/env python3
"""First labeling of files in directories others can write, beside sealed ones and chcon.

A file in a sealed directory (root's, not group or other writable) is labeled through
its descriptor; in any other directory svirt-pool first proves that the file's only
link is the pool name (an inotify watch on the inode held across two reads of the
directory: docs/labels.md, "Writing a label safely"). This prints what that proof
costs, on the same files, beside `chcon -R` (which proves nothing) and, with
--binary-old, beside an older build. Median of --runs runs, interleaved. Needs root, a
release build, the refpolicy and chcon.

    scripts/bench/unsealed.py [--files 20000] [--runs 3] [--binary target/release/svirt-pool]
                              [--binary-old PATH]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time

IMAGES = "/var/lib/libvirt/images"
STALE = "system_u:object_r:etc_t:s0"


def timed(argv):
    t = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--binary", default="target/release/svirt-pool")
    ap.add_argument("--binary-old")
    args = ap.parse_args()
    os.makedirs(IMAGES, exist_ok=True)
    top = tempfile.mkdtemp(prefix="svirt-bench-unsealed-", dir=IMAGES)
    state = tempfile.mkdtemp(prefix="svirt-bench-state-")
    try:
        pools = {}
        for kind, mode in (("sealed", 0o755), ("unsealed", 0o1777)):
            pool = os.path.join(top, kind)
            os.makedirs(os.path.join(pool, "d"))
            os.chmod(os.path.join(pool, "d"), mode)
            for i in range(args.files):
                open(os.path.join(pool, "d", "f%06d.img" % i), "wb").close()
            pools[kind] = pool
        config = os.path.join(state, "c.toml")
        with open(config, "w") as f:
            f.write('state_dir = "%s"\n[api]\nsocket = "%s/api.sock"\n' % (state, state))
            for kind, pool in pools.items():
                f.write('[[pool]]\nname = "%s"\ntype = "dir"\npath = "%s"\n' % (kind, pool))
        tools = [("svirt-pool", args.binary)]
        if args.binary_old:
            tools.append(("older build", args.binary_old))
        # Both pools right first: each timed scan then relabels only the pool made stale.
        subprocess.run([args.binary, "--config", config, "scan"], check=True, stdout=subprocess.DEVNULL)
        times = {}
        for _ in range(args.runs):
            for kind, pool in pools.items():
                for name, binary in tools:
                    subprocess.run(["chcon", "-R", STALE, pool], check=True)
                    # One pool at a time: the other is already right and costs a walk.
                    t = timed([binary, "--config", config, "scan"])
                    times.setdefault((kind, name), []).append(t)
                subprocess.run(["chcon", "-R", STALE, pool], check=True)
                t = timed(["chcon", "-R", "system_u:object_r:virt_image_t:s0", pool])
                times.setdefault((kind, "chcon -R"), []).append(t)
        print("first labeling of %d files in one directory (median of %d)" % (args.files, args.runs))
        names = [n for n, _ in tools] + ["chcon -R"]
        print("%-10s" % "directory" + "".join("%16s" % n for n in names) + "   vs chcon")
        for kind in pools:
            med = {n: statistics.median(times[(kind, n)]) for n in names}
            print("%-10s" % kind + "".join("%14.3f s" % med[n] for n in names)
                  + "   %.2fx" % (med["svirt-pool"] / med["chcon -R"]))
        print("(each svirt-pool scan also rescans the other pool, whose labels are right)")
    finally:
        shutil.rmtree(top, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
