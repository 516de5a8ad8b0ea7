#!/usr/bin/env python3
"""Load: many concurrent API clients doing mixed operations while files keep arriving in
the pool. Every reply must be a success or an expected refusal (a conflict, detaching
what is not held); afterwards the state must match the labels (no drift), no pair may be
shared, and SQLite's integrity check must pass.

    scripts/reliability/load.py [--clients 50] [--ops 1000] [--binary target/release/svirt-pool]
"""
import argparse
import collections
import json
import os
import random
import shutil
import sqlite3
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
EXPECTED = {"io.svirtpool.Refused"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--ops", type=int, default=1000)
    ap.add_argument("--binary", default="target/release/svirt-pool")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("load.py: run as root")
    binary = os.path.abspath(a.binary)
    # Made here too: a host without libvirt has no image pool (0711, as libvirt makes it).
    os.makedirs(IMAGES, mode=0o711, exist_ok=True)
    pool = tempfile.mkdtemp(prefix="svirt-load-", dir=IMAGES)
    state = tempfile.mkdtemp(prefix="svirt-load-state-")
    config = os.path.join(state, "c.toml")
    with open(config, "w") as f:
        f.write('state_dir = "%s"\n[api]\nsocket = "%s/api.sock"\nmax_connections = 512\n'
                '[[pool]]\nname = "p"\ntype = "dir"\npath = "%s"\n' % (state, state, pool))
    volumes = [os.path.join(pool, "v%03d.img" % i) for i in range(100)]
    for v in volumes:
        open(v, "wb").close()
    agent = Agent(binary, config).wait_ready()
    sock = os.path.join(state, "api.sock")
    counts = collections.Counter()
    unexpected = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(n):
        rng = random.Random(n)
        c = svirtpool.Client(sock, timeout=120)
        me = "6f7a1c2e-0f4b-4d1e-9a57-%012d" % n
        c.define_guest(me, "load%d" % n)
        for _ in range(a.ops):
            op = rng.choice(["attach", "attach", "detach", "list", "volumes", "get", "release"])
            v = rng.choice(volumes)
            try:
                if op == "attach":
                    c.attach(me, v, rng.choice(["rw", "ro", "shared"]))
                elif op == "detach":
                    c.detach(me, v)
                elif op == "list":
                    c.list_guests()
                elif op == "volumes":
                    c.call("ListVolumes", {"pool": "p", "limit": 50})
                elif op == "get":
                    c.get_guest(me)
                else:
                    c.release(me)
                with lock:
                    counts[op] += 1
            except svirtpool.VarlinkError as e:
                with lock:
                    if e.name in EXPECTED:
                        counts["refused"] += 1
                    else:
                        unexpected.append("%s: %s" % (op, e))
            except Exception as e:  # noqa: BLE001 - anything else is a failure to report
                with lock:
                    unexpected.append("%s: %r" % (op, e))
                return
        c.close()

    def arrivals():
        i = 0
        while not stop.is_set():
            open(os.path.join(pool, "arrived%06d.img" % i), "wb").close()
            i += 1
            time.sleep(0.002)
        counts["files arrived"] = i

    t0 = time.perf_counter()
    writer = threading.Thread(target=arrivals)
    writer.start()
    clients = [threading.Thread(target=client, args=(n,)) for n in range(a.clients)]
    for t in clients:
        t.start()
    for t in clients:
        t.join()
    stop.set()
    writer.join()
    took = time.perf_counter() - t0
    time.sleep(1)
    status = json.loads(subprocess.run([binary, "--config", config, "status", "--json"],
                                       capture_output=True, text=True, check=True).stdout)
    drift = [v["path"] for p in status["pools"] for v in p["volumes"] if v["drift"]]
    guests = json.loads(subprocess.run([binary, "--config", config, "guest", "list"],
                                       capture_output=True, text=True, check=True).stdout)
    pairs = [g["categories"] for g in guests]
    agent.stop()
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(state, "state.db"), uri=True)
    integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
    db.close()
    shutil.rmtree(pool, ignore_errors=True)
    shutil.rmtree(state, ignore_errors=True)
    total = sum(v for k, v in counts.items() if k != "files arrived")
    print("%d clients x %d ops in %.1f s (%.0f ops/s): %s" % (a.clients, a.ops, took, total / took, dict(counts)))
    print("unexpected errors: %d; drift after: %d; shared pairs: %d; integrity_check: %s" % (
        len(unexpected), len(drift), len(pairs) - len(set(pairs)), integrity))
    for u in unexpected[:10]:
        print("  ", u)
    ok = not unexpected and not drift and len(pairs) == len(set(pairs)) and integrity == "ok"
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
