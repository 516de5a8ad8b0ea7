#!/usr/bin/env python3
"""Benchmarks of svirt-pool against the tools people use today, on data it builds itself.

Each row times svirt-pool and its peer on the same tree in the same run (median of
--runs runs, interleaved) and prints the ratio. Needs root, a release build
(cargo build --release), the refpolicy (selinux-policy-default), chcon and setfiles.

    scripts/bench/pools.py [--files 100000] [--dirs 100] [--runs 3] [--burst 10000]
                           [--watch-dirs 10000] [--binary target/release/svirt-pool]

Rows:
  first labeling   N unlabeled files to one label:     svirt-pool scan   vs  chcon -R
  rescan           the same, every label already right: svirt-pool scan   vs  chcon -R
                   (both beside their floors, scan_floor.c built here with cc: the
                   system calls of the safe protocol svirt-pool follows, and the cheaper
                   by-name calls it refuses; see the file)
  restore          N files back to file_contexts:       svirt-pool scan   vs  setfiles -F
  burst            agent running, files created by two writers: labeled, p50, p99
  memory           agent RSS while watching the tree (files in --watch-dirs directories)
(attach + detach: scripts/bench/attach.py; listing: listing.py; one file: one_file.py)
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "clients", "python"))
sys.path.insert(0, os.path.join(HERE, ".."))
import svirtpool  # noqa: E402
from agentproc import Agent  # noqa: E402

IMAGES = "/var/lib/libvirt/images"
FILE_CONTEXTS = "/etc/selinux/default/contexts/files/file_contexts"
GUEST_LABEL = "system_u:object_r:svirt_image_t:s0:c17,c42"
STALE = "system_u:object_r:etc_t:s0"


def make_tree(root, files, dirs):
    per_dir = max(1, files // dirs)
    for d in range(dirs):
        sub = os.path.join(root, "d%05d" % d)
        os.makedirs(sub)
        for f in range(per_dir):
            with open(os.path.join(sub, "f%06d.img" % f), "wb"):
                pass
    return per_dir * dirs


def timed(argv, **kw):
    t = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, **kw)
    return time.perf_counter() - t


def relabel_all(root, label):
    """Puts `label` on everything below root (setup, not timed)."""
    subprocess.run(["chcon", "-R", label, root], check=True)


def write_config(state, pool_path, resting=None, extra=""):
    path = os.path.join(state, "bench.toml")
    with open(path, "w") as f:
        f.write('state_dir = "%s"\n[api]\nsocket = "%s/api.sock"\nidle_timeout_secs = 600\n%s\n'
                '[[pool]]\nname = "bench"\ntype = "dir"\npath = "%s"\n' % (state, state, extra, pool_path))
        if resting:
            f.write('resting_label = "%s"\n' % resting)
    return path


def median_pair(runs, a, b, setup):
    """Interleaved: setup, time a; setup, time b; `runs` times. Returns the medians."""
    return tuple(median_each(runs, [a, b], setup))


def median_each(runs, timers, setup):
    """Interleaved: setup, time each of `timers` in turn; `runs` times. The medians."""
    times = [[] for _ in timers]
    for _ in range(runs):
        for t, timer in zip(times, timers):
            setup()
            t.append(timer())
    return [statistics.median(t) for t in times]


def build_scan_floor(dir):
    """Compiles scan_floor.c; None (and why, on stderr) if this machine cannot."""
    out = os.path.join(dir, "scan_floor")
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scan_floor.c")
    r = subprocess.run(["cc", "-O2", "-pthread", "-o", out, src], capture_output=True, text=True)
    if r.returncode != 0:
        print("pools.py: the scan floors are left out: %s" % r.stderr.strip(), file=sys.stderr)
        return None
    return out


def burst(binary, state, pool, total, writers=2):
    """Files created by `writers` threads while the agent runs; latency from create to
    the agent's Monitor event for the file (sent after its label is written)."""
    config = write_config(state, pool)
    agent = Agent(binary, config).wait_ready()
    created, seen = {}, {}
    done = threading.Event()
    client = svirtpool.Client(os.path.join(state, "api.sock"), timeout=60)
    stream = client.monitor()

    def listen():
        for ev in stream:
            if ev["kind"] in ("appeared", "relabeled") and ev["volume"].endswith(".img"):
                seen.setdefault(ev["volume"], time.perf_counter())
                if len(seen) >= total:
                    break
        done.set()

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    time.sleep(0.5)

    def write(w):
        for i in range(total // writers):
            p = os.path.join(pool, "w%d-%06d.img" % (w, i))
            created[p] = time.perf_counter()
            with open(p, "wb") as f:
                f.write(b"x")

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.wait(30)
    lat = sorted((seen[p] - created[p]) * 1000 for p in created if p in seen)
    # Every file must end up labeled, event or not (an overflow rescan sends no events).
    labeled = sum(1 for p in created if os.getxattr(p, "security.selinux").rstrip(b"\0") ==
                  b"system_u:object_r:virt_image_t:s0")
    agent.stop()
    client.close()
    p50 = statistics.median(lat) if lat else float("nan")
    p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else float("nan")
    return labeled, len(created), p50, p99


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=100000)
    ap.add_argument("--dirs", type=int, default=100)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--burst", type=int, default=10000)
    ap.add_argument("--watch-dirs", type=int, default=10000)
    ap.add_argument("--binary", default="target/release/svirt-pool")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("pools.py: run as root")
    binary = os.path.abspath(a.binary)
    # Made here too: a host without libvirt has no image pool (0711, as libvirt makes it).
    os.makedirs(IMAGES, mode=0o711, exist_ok=True)
    work = tempfile.mkdtemp(prefix="svirt-bench-", dir=IMAGES)
    state = tempfile.mkdtemp(prefix="svirt-bench-state-")
    rows = []
    floors = []
    try:
        tree = os.path.join(work, "tree")
        n = make_tree(tree, a.files, a.dirs)
        cfg_guest = write_config(state, tree, resting=GUEST_LABEL)
        scan = lambda cfg: (lambda: timed([binary, "--config", cfg, "scan"]))
        chcon = lambda: timed(["chcon", "-R", GUEST_LABEL, tree])

        def strip():
            subprocess.run(["setfattr", "-h", "-x", "security.selinux", tree], stderr=subprocess.DEVNULL)
            relabel_all(tree, STALE)

        # The floors walk on as many threads as svirt-pool's scan (every core, up to 8).
        floor_bin = build_scan_floor(state)
        threads = str(min(os.cpu_count() or 1, 8))
        floor = lambda how: (lambda: timed([floor_bin, how, tree, threads, GUEST_LABEL]))
        timers = [scan(cfg_guest), chcon] + ([floor("safe"), floor("byname")] if floor_bin else [])
        for name, setup, target in [("first labeling", strip, 0.45),
                                    ("rescan, all right", lambda: relabel_all(tree, GUEST_LABEL), 0.28)]:
            s, c, *fl = median_each(a.runs, timers, setup)
            rows.append(("%s, %d files" % (name, n), s, c, "chcon -R", target))
            if fl:
                floors.append((name, s, c, fl[0], fl[1]))

        state2 = tempfile.mkdtemp(prefix="svirt-bench-state-")
        cfg_default = write_config(state2, tree)
        setfiles = lambda: timed(["setfiles", "-F", FILE_CONTEXTS, tree])
        s, c = median_pair(a.runs, scan(cfg_default), setfiles, lambda: relabel_all(tree, GUEST_LABEL))
        rows.append(("restore defaults, %d files" % n, s, c, "setfiles -F", 0.15))
        shutil.rmtree(state2)

        # Memory while watching: the same number of files spread over --watch-dirs dirs.
        shutil.rmtree(tree)
        wtree = os.path.join(work, "watch")
        wn = make_tree(wtree, a.files, a.watch_dirs)
        wstate = tempfile.mkdtemp(prefix="svirt-bench-state-")
        agent = Agent(binary, write_config(wstate, wtree)).wait_ready()
        rss = agent.rss_kib()
        peak = agent.peak_rss_kib()
        ready = agent.ready_after
        agent.stop()
        shutil.rmtree(wstate)
        shutil.rmtree(wtree)

        bpool = os.path.join(work, "burst")
        os.makedirs(bpool)
        bstate = tempfile.mkdtemp(prefix="svirt-bench-state-")
        labeled, total, p50, p99 = burst(binary, bstate, bpool, a.burst)
        shutil.rmtree(bstate)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)

    print("%-36s %12s %12s %-12s %8s %8s" % ("row (median of %d)" % a.runs, "svirt-pool", "peer", "peer tool", "ratio", "goal"))
    for name, s, c, tool, target in rows:
        ok = "ok" if s / c <= target else "MISSED"
        print("%-36s %10.3f s %10.3f s %-12s %7.2fx %6s %s" % (name, s, c, tool, s / c, "<=%.2fx" % target, ok))
    for name, s, c, safe, byname in floors:
        print("%-36s %s: safe protocol %.3f s (%.2fx chcon; svirt-pool %.2fx of it), by name %.3f s (%.2fx chcon, refused)" % (
            "  floors", name, safe, safe / c, s / safe, byname, byname / c))
    print("%-36s %d/%d labeled, p50 %.1f ms, p99 %.1f ms (target: all, p99 <= 50 ms) %s" % (
        "burst, 2 writers", labeled, total, p50, p99, "ok" if labeled == total and p99 <= 50 else "MISSED"))
    print("%-36s %.1f MiB RSS after the first scan, peak %.1f MiB during it, ready after %.2f s (target: peak <= 32 MiB) %s" % (
        "watching %d files / %d dirs" % (wn, a.watch_dirs), rss / 1024, peak / 1024, ready,
        "ok" if peak <= 32 * 1024 else "MISSED"))


if __name__ == "__main__":
    main()
